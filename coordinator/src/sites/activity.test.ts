// Site activity: rounds contributed count only accepted uploads of rounds that made a version; the last error is the
// latest rejection or failure; everything survives a reopen from the same storage.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../storage';
import type { RoundRecord } from '../registry/types';
import { ActivityTracker } from './activity';

function record(
  round: number,
  outcome: RoundRecord['outcome'],
  failures: RoundRecord['failures'] = [],
): RoundRecord {
  return {
    round,
    roundId: `r${round}`,
    startedAt: '2025-01-01T00:00:00.000Z',
    durationMs: 1,
    outcome,
    reason: null,
    stage: 'version',
    strategy: 'fedavg',
    baseVersionId: 'v0',
    versionId: outcome === 'aggregated' ? `v${round}` : null,
    sampled: 2,
    participants: 2,
    updates: 1,
    failures,
    rejections: [],
    uploadedBytes: 0,
    bytesPerUpload: [],
  };
}

test('when uploads and rounds end, then contributions, last error and last seen follow, and survive a reopen', async () => {
  const storage = new MemoryStorage();
  let t = 0;
  const now = () => new Date(Date.UTC(2025, 0, 1, 0, 0, t++));
  const a = await ActivityTracker.open(storage, { now });
  assert.deepEqual(a.get('x'), { lastSeen: null, roundsContributed: 0, lastError: null });

  a.onStatus({ siteId: 'a', online: true, ready: true }); // t=0
  a.onEvent({ type: 'upload', round: 1, siteId: 'a', accepted: true }); // t=1
  a.onEvent({ type: 'upload', round: 1, siteId: 'b', accepted: false, code: 'DELTA_INVALID' }); // t=2, t=3
  a.onEvent({ type: 'round:end', record: record(1, 'aggregated') });
  // round 2: a delivers but the round keeps the old adapter (no version) → not a contribution; b times out
  a.onEvent({ type: 'upload', round: 2, siteId: 'a', accepted: true }); // t=4
  a.onEvent({ type: 'round:end', record: record(2, 'kept', [{ siteId: 'b', code: 'TIMEOUT' }]) }); // t=5, t=6
  await a.save();

  assert.deepEqual(a.get('a'), {
    lastSeen: '2025-01-01T00:00:04.000Z',
    roundsContributed: 1,
    lastError: null,
  });
  assert.deepEqual(a.get('b'), {
    lastSeen: '2025-01-01T00:00:05.000Z',
    roundsContributed: 0,
    lastError: { code: 'TIMEOUT', round: 2, at: '2025-01-01T00:00:06.000Z' },
  });
  const reopened = await ActivityTracker.open(storage);
  assert.deepEqual(reopened.get('a'), a.get('a'));
  assert.deepEqual(reopened.get('b'), a.get('b'));
});
