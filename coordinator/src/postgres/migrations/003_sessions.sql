-- Console sessions shared by every coordinator process (http/session.ts): a login on one is valid on all. Only the
-- SHA-256 of a session id is stored, so the table never hands out a live cookie.
CREATE TABLE admin_sessions (
  id_hash text PRIMARY KEY,
  expires_at bigint NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);
