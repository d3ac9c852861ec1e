-- The coordinator's identity, shared by every process of one federation: sites bind their challenge signatures to
-- the coordinator id, so all processes must answer with the same one; and the base model the adapters belong to.
CREATE TABLE coordinator_identity (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  record jsonb NOT NULL
);
