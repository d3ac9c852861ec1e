// The audit trail on the admin API (issue 21): a page of entries (newest first), the whole log as JSONL for an
// auditor, and the chain check (audit/chain.ts), which names the first entry that was altered, removed or moved.

import type { AuditStore } from '../audit/audit-log';
import { verifyAuditChain } from '../audit/chain';
import type { AuditList, AuditVerification } from './admin-schemas';
import type { RegisterRoute } from './api';

const DEFAULT_PAGE = 100;

export function auditRoutes(on: RegisterRoute, d: { audit: AuditStore }): void {
  on('GET /audit', [], async ({ query }, _req, res) => {
    res.json((await d.audit.page({ before: query.before, limit: query.limit ?? DEFAULT_PAGE })) satisfies AuditList);
  });

  on('GET /audit/export', [], async (_input, _req, res) => {
    const entries = await d.audit.all();
    res
      .type('application/x-ndjson')
      .set('Content-Disposition', 'attachment; filename="fedlora-audit.jsonl"')
      .send(entries.map((e) => JSON.stringify(e) + '\n').join(''));
  });

  on('GET /audit/verify', [], async (_input, _req, res) => {
    res.json(verifyAuditChain(await d.audit.all()) satisfies AuditVerification);
  });
}
