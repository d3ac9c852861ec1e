-- Console users, their sessions, and the audit trail (issue 21; users/types.ts, audit/chain.ts). A user's password
-- and API token are stored only as hashes; a session names its user (NULL: the bootstrap admin token), whose role is
-- read on each request. The audit log is append-only by use: rows are only ever inserted, each entry chaining the hash
-- of the one before, so an edited, removed or reordered row is found by the chain check.
ALTER TABLE admin_sessions ADD COLUMN username text;
CREATE TABLE users (
  seq bigserial NOT NULL,
  username text PRIMARY KEY,
  token_hash text UNIQUE,
  record jsonb NOT NULL
);
CREATE TABLE audit_log (
  seq bigint PRIMARY KEY,
  entry jsonb NOT NULL
);
