-- Run-time settings changes (PUT /api/settings), kept so that a restart or the cluster's next leader applies them
-- again over the command line's settings (registry/types.ts SettingsChange; rounds/federation.ts init). One row per
-- change, in order; the patch is stored as PUT /settings received it.
CREATE TABLE settings_changes (
  seq bigserial PRIMARY KEY,
  change jsonb NOT NULL
);
