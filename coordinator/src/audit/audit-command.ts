// `fedlora-coordinator audit verify <data dir | audit.jsonl>`: checks the audit trail's hash chain offline (the
// coordinator need not run) and names the first entry that was altered, removed or moved. Exit 0 when the chain
// holds (it prints the entry count and the head hash, to compare with a copy kept elsewhere), 1 when it does not,
// 2 for a bad command line.

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_FILE } from './audit-log';
import { parseAuditLines, verifyAuditChain } from './chain';

export const AUDIT_HELP = `fedlora-coordinator audit verify <data dir | ${AUDIT_FILE}> [--json]
  Checks the audit trail's hash chain: every entry's hash, its link to the entry before, and seq without gaps.
  Exit 0: the chain holds (prints entries and head hash); 1: it does not (names the first bad entry); 2: usage.`;

export function auditCommand(argv: string[], out: (line: string) => void = console.log, err: (line: string) => void = console.error): number {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  if (args[0] === '--help' || args[0] === '-h') {
    out(AUDIT_HELP);
    return 0;
  }
  if (args.length !== 2 || args[0] !== 'verify') {
    err(AUDIT_HELP);
    return 2;
  }
  let path = args[1];
  let text: string;
  try {
    if (statSync(path).isDirectory()) path = join(path, AUDIT_FILE);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    err(`fedlora-coordinator audit: cannot read ${path}: ${(e as Error).message}`);
    return 1;
  }
  const { entries, torn } = parseAuditLines(text);
  const check = verifyAuditChain(entries);
  if (json) out(JSON.stringify({ ...check, file: path, tornTail: torn }));
  else if (check.ok) out(`${path}: the chain holds: ${check.entries} entries, head hash ${check.headHash}${torn ? ' (a torn last line, never acknowledged, is ignored)' : ''}`);
  else out(`${path}: the chain is broken at seq ${check.seq}: ${check.reason}`);
  return check.ok ? 0 : 1;
}
