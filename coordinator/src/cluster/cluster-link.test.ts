// Two socket.io servers joined through a real Redis by ClusterLink: a site request forwarded from the process that
// holds the site's socket is answered by the leader's handler, and a refusal comes back with the leader's code and
// is logged on the leader (the process that decided), not only relayed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { skipUnlessServers, startRedis, type TestServer } from '../testing-servers';
import type { SiteServer } from '../socket/presence';
import { ClusterLink, type ClusterHandlers, type ForwardedRequest } from './cluster-link';

const skip = skipUnlessServers('redis');
const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

function handlers(o: { leader: boolean; handle?: (r: ForwardedRequest) => Promise<void> }): ClusterHandlers {
  return {
    localReady: () => [],
    isLeader: () => o.leader,
    handle: o.handle ?? (async () => {}),
    siteLeft: () => {},
    availabilityChanged: () => {},
  };
}

test('when a follower forwards a site request, then the leader handles it, and a refusal is answered with its code and logged on the leader', { skip, timeout: 60_000 }, async () => {
  const redis: TestServer = await startRedis();
  cleanup.push(() => redis.stop());
  const logs: { process: string; event: string; fields: Record<string, unknown> }[] = [];
  const links: ClusterLink[] = [];
  for (const name of ['leader', 'follower']) {
    const http = createServer();
    const io = new Server(http) as unknown as SiteServer;
    const link = await ClusterLink.connect(io, redis.url, (event, fields) => logs.push({ process: name, event, fields: fields ?? {} }), 5_000);
    cleanup.push(async () => {
      await link.close();
      await new Promise((r) => (io as unknown as Server).close(() => r(null)));
    });
    links.push(link);
  }
  const handled: ForwardedRequest[] = [];
  links[0].attach(
    handlers({
      leader: true,
      handle: async (r) => {
        handled.push(r);
        if (r.event === 'round:fail') throw new FedloraError('WRONG_ROUND', 'round 3 is running; this report is for round 2');
      },
    }),
  );
  links[1].attach(handlers({ leader: false }));

  await links[1].forward({ event: 'update:upload', siteId: 'site-a', payload: { roundId: 'r3', blob: new Uint8Array([1, 2, 3]) } });
  const refused = await links[1].forward({ event: 'round:fail', siteId: 'site-b', payload: { roundId: 'r2' } }).then(
    () => null,
    (err: unknown) => err,
  );

  assert.deepEqual(handled.map((r) => [r.event, r.siteId]), [['update:upload', 'site-a'], ['round:fail', 'site-b']]);
  assert.deepEqual(new Uint8Array((handled[0].payload as { blob: Uint8Array }).blob), new Uint8Array([1, 2, 3]), 'binary survives Redis');
  assert.ok(refused instanceof FedloraError && refused.code === 'WRONG_ROUND', `the leader's code reaches the follower: ${String(refused)}`);
  const line = logs.find((l) => l.event === 'cluster.forwarded_refused');
  assert.equal(line?.process, 'leader');
  assert.deepEqual({ ...line?.fields }, { event: 'round:fail', siteId: 'site-b', code: 'WRONG_ROUND', error: 'round 3 is running; this report is for round 2' });
});
