// Issue 21 must-show 3: every admin action leaves one audit entry with its actor, role, target and outcome, no entry
// holds a secret, and the hash chain names the first entry that was altered, removed or reordered (through the API's
// verify route and `fedlora-coordinator audit verify`). Also: user logins with a password, and their rate limit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '../rounds/settings';
import { DirStorage, MemoryStorage } from '../storage';
import { listeningTestCoordinator, tinyAdapter } from '../testing';
import { AUDIT_FILE, FileAuditLog } from './audit-log';
import { parseAuditLines, verifyAuditChain, type AuditEntry } from './chain';
import { auditCommand } from './audit-command';

const ADMIN = 'audit-test-admin-token-0123456789';
const PASSWORD = 'correct horse battery staple';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'fedlora-audit-'));
}

async function writtenLog(dir: string, n: number): Promise<string[]> {
  const log = await FileAuditLog.open(new DirStorage(dir));
  for (let i = 1; i <= n; i++) await log.append({ actor: 'alice', role: 'operator', action: 'site.revoke', target: `site-${i}`, outcome: 'ok' });
  return readFileSync(join(dir, AUDIT_FILE), 'utf8').trimEnd().split('\n');
}

const check = (lines: string[]) => verifyAuditChain(parseAuditLines(lines.join('\n') + '\n').entries);

test('when an entry of the file is edited, removed or two are swapped, then the chain check names the first bad seq', async () => {
  const dir = tempDir();
  try {
    const lines = await writtenLog(dir, 5);
    assert.deepEqual(check(lines), { ok: true, entries: 5, headHash: (JSON.parse(lines[4]) as AuditEntry).hash });

    const edited = [...lines];
    edited[2] = edited[2].replace('"actor":"alice"', '"actor":"mallory"');
    assert.notEqual(edited[2], lines[2]);
    const e = check(edited);
    assert.ok(!e.ok && e.seq === 3 && /altered/.test(e.reason), JSON.stringify(e));

    const removed = lines.filter((_, i) => i !== 2);
    const r = check(removed);
    assert.ok(!r.ok && r.seq === 3 && /removed/.test(r.reason), JSON.stringify(r));

    const swapped = [lines[0], lines[2], lines[1], lines[3], lines[4]];
    const s = check(swapped);
    assert.ok(!s.ok && s.seq === 2, JSON.stringify(s));

    // an edit that also recomputes the entry's own hash still breaks the link of the next entry
    const rehashed = [...lines];
    const fake = { ...(JSON.parse(lines[1]) as AuditEntry), actor: 'mallory' };
    const { entryHash } = await import('./chain');
    rehashed[1] = JSON.stringify({ ...fake, hash: entryHash(fake) });
    const h = check(rehashed);
    assert.ok(!h.ok && h.seq === 3, JSON.stringify(h));

    // the command line says the same, with exit codes
    const out: string[] = [];
    assert.equal(auditCommand(['verify', dir], (l) => out.push(l)), 0);
    assert.match(out[0], /the chain holds: 5 entries/);
    writeFileSync(join(dir, AUDIT_FILE), removed.join('\n') + '\n');
    assert.equal(auditCommand(['verify', dir], (l) => out.push(l)), 1);
    assert.match(out[1], /broken at seq 3/);
    assert.equal(auditCommand(['check', dir], () => {}, () => {}), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('when many entries are appended at once and the log is reopened, then seq counts without gaps and the chain continues', async () => {
  const dir = tempDir();
  try {
    const log = await FileAuditLog.open(new DirStorage(dir));
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ actor: 'a', role: 'admin', action: 'x', target: String(i), outcome: 'ok' })));
    assert.deepEqual(made.map((e) => e.seq).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
    // a crash mid-append leaves a torn last line: it is cut off before the next append
    writeFileSync(join(dir, AUDIT_FILE), readFileSync(join(dir, AUDIT_FILE), 'utf8') + '{"seq":21,"ti');
    const again = await FileAuditLog.open(new DirStorage(dir));
    const next = await again.append({ actor: 'a', role: 'admin', action: 'x', target: 'after', outcome: 'ok' });
    assert.equal(next.seq, 21);
    const all = await again.all();
    assert.deepEqual(verifyAuditChain(all), { ok: true, entries: 21, headHash: next.hash });
    const page = await again.page({ limit: 5, before: 21 });
    assert.deepEqual([page.total, page.entries.map((e) => e.seq)], [21, [20, 19, 18, 17, 16]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Call {
  method?: string;
  token?: string;
  cookie?: string;
  body?: unknown;
}

test('when each admin action is taken, then each leaves exactly one entry with actor, role, target and outcome, and no secret', async () => {
  const storage = new MemoryStorage();
  const coord = await listeningTestCoordinator({ adminToken: ADMIN, storage, settings: { ...DEFAULT_SETTINGS, promotion: 'manual' } });
  const call = async (path: string, c: Call = {}) => {
    const r = await fetch(`${coord.url}/api${path}`, {
      method: c.method ?? 'GET',
      headers: {
        'content-type': 'application/json',
        ...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
        ...(c.cookie ? { cookie: c.cookie, origin: coord.url as string } : {}),
      },
      body: c.body === undefined ? undefined : JSON.stringify(c.body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown>, cookie: r.headers.get('set-cookie') };
  };
  try {
    for (const round of [1, 2, 3])
      await coord.store.addVersion(
        { parent: 'v0', round, strategy: 'fedavg', sites: 2, examples: 20, metrics: null, trainMetrics: {}, uploadedBytes: 0 },
        tinyAdapter(round / 10),
        null,
        { candidate: true },
      );
    const expected: [string, string, string, string, string][] = [];
    const did = (status: number, got: { status: number }, entry: [string, string, string, string, string]) => {
      assert.equal(got.status, status, JSON.stringify(entry));
      expected.push(entry);
    };
    did(201, await call('/users', { method: 'POST', token: ADMIN, body: { username: 'olivia', role: 'operator', password: PASSWORD } }), ['bootstrap-token', 'admin', 'user.create', 'olivia', 'ok']);
    did(201, await call('/users', { method: 'POST', token: ADMIN, body: { username: 'victor', role: 'viewer' } }), ['bootstrap-token', 'admin', 'user.create', 'victor', 'ok']);
    did(401, await call('/login', { method: 'POST', body: { username: 'olivia', password: 'not the password at all' } }), ['anonymous', 'none', 'login', 'olivia', 'UNAUTHORIZED']);
    did(401, await call('/login', { method: 'POST', body: { username: 'nobody', password: PASSWORD } }), ['anonymous', 'none', 'login', '(unknown user)', 'UNAUTHORIZED']);
    const login = await call('/login', { method: 'POST', body: { username: 'olivia', password: PASSWORD } });
    did(200, login, ['olivia', 'operator', 'login', 'olivia', 'ok']);
    assert.deepEqual([login.body.actor, login.body.role], ['olivia', 'operator']);
    const cookie = (login.cookie ?? '').split(';')[0];
    assert.deepEqual((await call('/me', { cookie })).body, { actor: 'olivia', role: 'operator', user: 'olivia', projects: null });
    const site = await call('/sites', { method: 'POST', cookie, body: { name: 'Hospital A' } });
    did(201, site, ['olivia', 'operator', 'site.create', 'hospital-a', 'ok']);
    did(200, await call('/sites/hospital-a', { method: 'DELETE', cookie }), ['olivia', 'operator', 'site.revoke', 'hospital-a', 'ok']);
    did(200, await call('/versions/v1/approve', { method: 'POST', cookie, body: { reason: 'signed off' } }), ['olivia', 'operator', 'version.approve', 'v1', 'ok']);
    did(200, await call('/versions/v2/reject', { method: 'POST', cookie, body: { reason: 'worse on site B' } }), ['olivia', 'operator', 'version.reject', 'v2', 'ok']);
    did(409, await call('/versions/v2/approve', { method: 'POST', cookie, body: { reason: 'second thoughts' } }), ['olivia', 'operator', 'version.approve', 'v2', 'CONFLICT']);
    did(200, await call('/versions/v2/promote', { method: 'POST', cookie, body: { reason: 'roll forward' } }), ['olivia', 'operator', 'version.promote', 'v2', 'ok']);
    did(403, await call('/settings', { method: 'PUT', cookie, body: { minSites: 3 } }), ['olivia', 'operator', 'settings.change', 'settings', 'forbidden']);
    did(200, await call('/settings', { method: 'PUT', token: ADMIN, body: { minSites: 3 } }), ['bootstrap-token', 'admin', 'settings.change', 'settings', 'ok']);
    did(200, await call('/federation/start', { method: 'POST', cookie }), ['olivia', 'operator', 'federation.start', 'federation', 'ok']);
    did(200, await call('/federation/pause', { method: 'POST', cookie }), ['olivia', 'operator', 'federation.pause', 'federation', 'ok']);
    did(200, await call('/users/victor', { method: 'PUT', token: ADMIN, body: { role: 'operator' } }), ['bootstrap-token', 'admin', 'user.change', 'victor', 'ok']);
    did(200, await call('/users/victor/password', { method: 'POST', token: ADMIN, body: { password: 'another long password' } }), ['bootstrap-token', 'admin', 'user.password', 'victor', 'ok']);
    const issued = await call('/users/victor/token', { method: 'POST', token: ADMIN });
    did(201, issued, ['bootstrap-token', 'admin', 'user.token', 'victor', 'ok']);
    did(200, await call('/users/olivia', { method: 'PUT', token: issued.body.token as string, body: { disabled: true } }).then(
      // victor is an operator now: managing users is an admin's
      (r) => (assert.equal(r.status, 403), call('/users/olivia', { method: 'PUT', token: ADMIN, body: { disabled: true } })),
    ), ['bootstrap-token', 'admin', 'user.change', 'olivia', 'ok']);
    expected.splice(expected.length - 1, 0, ['victor', 'operator', 'user.change', 'olivia', 'forbidden']);
    // a console session of the bootstrap token, ended; a logout with no session names no one and records nothing
    const own = await call('/login', { method: 'POST', body: { token: ADMIN } });
    did(200, own, ['bootstrap-token', 'admin', 'login', 'bootstrap-token', 'ok']);
    did(200, await call('/logout', { method: 'POST', cookie: (own.cookie ?? '').split(';')[0] }), ['bootstrap-token', 'admin', 'logout', 'bootstrap-token', 'ok']);
    assert.equal((await call('/logout', { method: 'POST' })).status, 200);
    // olivia's session ended with her account; reads leave no entry
    assert.equal((await call('/status', { cookie })).status, 401);

    const page = await call('/audit?limit=1000', { token: ADMIN });
    const entries = (page.body.entries as AuditEntry[]).slice().reverse();
    assert.deepEqual(entries.map((e) => [e.actor, e.role, e.action, e.target, e.outcome]), expected);
    assert.ok(entries.every((e) => e.project === 'default'));
    assert.equal(entries.find((e) => e.action === 'version.reject')?.detail, 'worse on site B');
    assert.equal(entries.find((e) => e.action === 'settings.change' && e.outcome === 'ok')?.detail, 'minSites');
    assert.deepEqual((await call('/audit/verify', { token: ADMIN })).body, { ok: true, entries: expected.length, headHash: entries.at(-1)?.hash });

    // the export is the same entries as JSONL, and no secret is anywhere in the log
    const exported = await (await fetch(`${coord.url}/api/audit/export`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    assert.deepEqual(parseAuditLines(exported).entries, entries);
    const stored = new TextDecoder().decode((await storage.read(AUDIT_FILE)) as Uint8Array);
    for (const secret of [ADMIN, PASSWORD, 'not the password at all', 'another long password', issued.body.token as string, cookie.split('=')[1]])
      assert.ok(!stored.includes(secret) && !exported.includes(secret), `the audit log holds a secret: ${secret.slice(0, 6)}…`);
  } finally {
    await coord.close();
  }
});

test('when a user logs in with a wrong password too often, then the address is locked out with 429, even for the right password', async () => {
  const coord = await listeningTestCoordinator({ adminToken: ADMIN, loginLimits: { attemptsPerWindow: 100, windowMs: 60_000, maxFailures: 3, lockoutMs: 60_000 } });
  const login = (password: string) =>
    fetch(`${coord.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'olivia', password }) });
  try {
    await fetch(`${coord.url}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ username: 'olivia', role: 'viewer', password: PASSWORD }),
    });
    assert.equal((await login(PASSWORD)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await login('wrong password number ' + i)).status, 401);
    const locked = await login(PASSWORD);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
  } finally {
    await coord.close();
  }
});
