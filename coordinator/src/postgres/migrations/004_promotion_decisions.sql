-- Promotion and approval (issue 20): a new version is a candidate until the promotion policy or an admin decides.
-- The status ('candidate' | 'promoted' | 'rejected') and the decisions (who, why, the metrics compared, when) live in
-- the version's jsonb record, like its other fields (registry/types.ts: VersionRecord.status, .decisions); versions
-- made before this migration were all made current when published, so they are 'promoted' with no decisions.
UPDATE versions SET record = record || '{"status": "promoted", "decisions": []}'::jsonb WHERE NOT (record ? 'status');
-- the console and GET /api/versions list candidates waiting for approval
CREATE INDEX versions_status ON versions ((record->>'status'));
