-- fedlora's coordinator state in PostgreSQL (coordinator/src/postgres): the adapter registry (versions with their
-- bytes, the current pointer, round history) and the enrolled sites. Records are jsonb (their TypeScript types are the
-- schema; registry/types.ts and sites/types.ts); the columns beside them are what queries and constraints need.

CREATE TABLE versions (
  -- v0, v1, …: id = 'v' || seq
  seq integer PRIMARY KEY CHECK (seq >= 0),
  id text NOT NULL UNIQUE,
  round integer NOT NULL CHECK (round >= 0),
  record jsonb NOT NULL,
  -- encodeAdapter() bytes (bytea: one transaction makes the bytes and the record durable together)
  native bytea NOT NULL,
  -- the strategy's server state (FedAdam moments…) as safetensors, or null
  strategy_state bytea
);
-- a round makes at most one version: a second leader replaying a round cannot publish it twice
CREATE UNIQUE INDEX versions_one_per_round ON versions (round) WHERE round > 0;

CREATE TABLE current_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version_id text NOT NULL REFERENCES versions (id)
);

CREATE TABLE rounds (
  seq bigserial PRIMARY KEY,
  round integer NOT NULL,
  round_id text NOT NULL UNIQUE,
  record jsonb NOT NULL
);

CREATE TABLE sites (
  id text PRIMARY KEY,
  -- sha256 hex of the join token (the token itself is never stored)
  token_hash text NOT NULL UNIQUE,
  record jsonb NOT NULL
);
