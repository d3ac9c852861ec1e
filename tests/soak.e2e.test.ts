// Issue 18, must-show 3, the small version `npm test` runs (tests/soak-harness.ts; `npm run soak -- --rounds 500
// --sites 50` runs the full one): 30 rounds, 10 socket sites with fake trainers joining and leaving at random.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { otherHandles, runSoak, tcpSockets } from './soak-harness';

test('when 10 socket sites join and leave at random over 30 rounds, then every round ends, RSS after warm-up stays within ±10% of its median, and once all sites left the coordinator holds no more handles than before the first came', { timeout: 120_000 }, async () => {
  // Act
  const r = await runSoak({ rounds: 30, sites: 10, seed: 18_03 });

  // Assert
  console.log(`soak: ${r.seconds.toFixed(1)} s, ${r.joins} joins, ${r.leaves} leaves, RSS ${(r.rss.median / 2 ** 20).toFixed(1)} MiB (${(100 * r.rss.down).toFixed(1)}%..+${(100 * r.rss.up).toFixed(1)}%), handles before ${JSON.stringify(r.before.handles)} after ${JSON.stringify(r.after.handles)} ${JSON.stringify(r.after.peers)} before ${JSON.stringify(r.before.peers)}`);
  assert.equal(r.rounds.length, 30);
  assert.ok(r.leaves > 10 && r.joins > 20, `${r.joins} joins, ${r.leaves} leaves`);
  assert.ok(r.rss.up <= 0.1 && r.rss.down >= -0.1, `RSS ${JSON.stringify(r.rss)}`);
  assert.equal(tcpSockets(r.after), 0, 'no socket outlives its site');
  assert.ok(otherHandles(r.after) <= otherHandles(r.before), `handles before ${JSON.stringify(r.before.handles)}, after ${JSON.stringify(r.after.handles)}`);
});
