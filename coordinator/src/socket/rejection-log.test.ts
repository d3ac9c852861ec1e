// The per-peer budget of rejection log lines (issue 23, defect 6), on a manual clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from '../log';
import { RejectionLog } from './rejection-log';

test('when a peer exceeds its budget, then the rest of its window is one summary line; other peers keep their own budget', () => {
  // Arrange
  let now = 0;
  const log = memoryLogger();
  const r = new RejectionLog(log, { perWindow: 3, windowMs: 1000, maxPeers: 10 }, () => now);

  // Act
  for (let i = 0; i < 10; i++) r.record('request.rejected', '10.0.0.1', { code: i % 2 ? 'BAD_MESSAGE' : 'UNAUTHORIZED' });
  r.record('request.rejected', '10.0.0.2', { code: 'BAD_MESSAGE' });
  now = 1500;
  r.sweep();
  r.record('request.rejected', '10.0.0.1', { code: 'BAD_MESSAGE' });

  // Assert
  const lines = log.lines.map((l) => l.split(' ').slice(1).join(' '));
  assert.deepEqual(lines, [
    'request.rejected peer=10.0.0.1 code=UNAUTHORIZED',
    'request.rejected peer=10.0.0.1 code=BAD_MESSAGE',
    'request.rejected peer=10.0.0.1 code=UNAUTHORIZED',
    'request.rejected peer=10.0.0.2 code=BAD_MESSAGE',
    'request.rejected.suppressed peer=10.0.0.1 count=7 codes=BAD_MESSAGE:4,UNAUTHORIZED:3 seconds=2',
    'request.rejected peer=10.0.0.1 code=BAD_MESSAGE',
  ]);
});

test('when more peers than the table holds are refused, then the least recently seen is reported and forgotten, so memory stays bounded', () => {
  const log = memoryLogger();
  const r = new RejectionLog(log, { perWindow: 1, windowMs: 60_000, maxPeers: 2 }, () => 0);
  for (const peer of ['a', 'a', 'b', 'c']) r.record('request.rejected', peer, { code: 'BAD_MESSAGE' });
  assert.ok(log.lines.some((l) => l.includes('request.rejected.suppressed peer=a count=1')));
  r.close();
  assert.equal(log.lines.filter((l) => l.includes('suppressed')).length, 1, 'b and c had nothing suppressed');
});
