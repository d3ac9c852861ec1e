// The coordinator's logger: pino behind the (event, fields) interface, JSON or today's text lines, secrets redacted
// by the logger's config whatever the caller passed, and request/round ids from the async context.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, memoryLogger, withFields, withLogContext, REDACTED } from './log';

const SECRET = 'this-is-a-secret-token-0123456789';

function collect(format: 'json' | 'text') {
  const lines: string[] = [];
  const log = createLogger({ format, write: (l) => void lines.push(l), now: () => new Date(0) });
  return { log, lines };
}

test('when a line carries tokens, cookies or an authorization header as fields, then JSON and text lines show them redacted', () => {
  for (const format of ['json', 'text'] as const) {
    const { log, lines } = collect(format);

    log('site.created', {
      site: 's1',
      token: SECRET,
      joinToken: SECRET,
      adminToken: SECRET,
      metricsToken: SECRET,
      authorization: `Bearer ${SECRET}`,
      cookie: `fedlora_session=${SECRET}`,
    });

    assert.equal(lines.length, 1);
    assert.ok(!lines[0].includes(SECRET), `${format}: ${lines[0]}`);
    if (format === 'json') {
      const o = JSON.parse(lines[0]) as Record<string, unknown>;
      assert.equal(o.msg, 'site.created');
      assert.equal(o.site, 's1');
      for (const k of ['token', 'joinToken', 'adminToken', 'metricsToken', 'authorization', 'cookie'])
        assert.equal(o[k], REDACTED, k);
    } else assert.match(lines[0], /^1970-01-01T00:00:00\.000Z site\.created site=s1 token=\[redacted\] /);
  }
});

test('when the text format is used, then lines read as before pino: time, event, k=v with quoting', () => {
  const { log, lines } = collect('text');

  log('round.end', { round: 3, outcome: 'kept', reason: 'stage collect timed out', accuracy: 0.8125, skip: undefined, v: null });

  assert.equal(
    lines[0],
    '1970-01-01T00:00:00.000Z round.end round=3 outcome=kept reason="stage collect timed out" accuracy=0.812500 v=null\n',
  );
});

test('when a line is logged inside a request context or through withFields, then it names the request or round', async () => {
  const { log, lines } = collect('json');

  await withLogContext({ requestId: 'req-1' }, async () => {
    await new Promise((r) => setTimeout(r, 1));
    log('admin.unauthorized', { path: '/api/status' });
  });
  withFields(log, { roundId: 'r-9' })('upload.accepted', { round: 2, site: 'a' });
  log('outside', {});

  const [a, b, c] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a.requestId, 'req-1');
  assert.equal(a.level, 'info');
  assert.deepEqual([b.round, b.roundId], [2, 'r-9']);
  assert.equal(c.requestId, undefined);
});

test('when a field is named like a key pino writes itself, then it is renamed rather than written twice', () => {
  const { log, lines } = collect('json');

  log('x.failed', { time: 'noon', level: 3 });

  const o = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.equal(o.level, 'error', 'events ending in .failed are errors');
  assert.deepEqual([o.time_, o.level_], ['noon', 3]);
});

test('when the memory logger is used, then its lines are the text format at time 0', () => {
  const log = memoryLogger();
  log('a.b', { peer: 'x', token: SECRET });
  assert.deepEqual(log.lines, ['1970-01-01T00:00:00.000Z a.b peer=x token=[redacted]']);
});
