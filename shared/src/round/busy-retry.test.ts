// An upload answered BUSY is sent again with backoff while the round is open; any other refusal is final; a REPLAY
// after a BUSY means an earlier attempt arrived.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedloraError } from '../errors';
import { sendWithBusyRetry } from './busy-retry';

const busy = () => new FedloraError('BUSY', 'no coordinator leads the federation right now; retry');

function scripted(answers: (string | Error)[]) {
  let calls = 0;
  return {
    send: async () => {
      const a = answers[Math.min(calls++, answers.length - 1)];
      if (a instanceof Error) throw a;
      return a;
    },
    calls: () => calls,
  };
}

test('when the coordinator answers BUSY twice, then the upload is sent a third time, after growing delays, and its reply returned', async () => {
  const s = scripted([busy(), busy(), 'ok']);
  const delays: number[] = [];
  const r = await sendWithBusyRetry(s.send, { stillWanted: () => true, sleep: async (ms) => void delays.push(ms), random: () => 0.5 });
  assert.deepEqual(r, { reply: 'ok', confirmedByReplay: false });
  assert.equal(s.calls(), 3);
  assert.deepEqual(delays, [500, 1000]);
});

test('when a refusal is not BUSY, then it is thrown at once, without a resend', async () => {
  const s = scripted([new FedloraError('WRONG_ROUND', 'round 4 is running')]);
  await assert.rejects(sendWithBusyRetry(s.send, { stillWanted: () => true, sleep: async () => {} }), { code: 'WRONG_ROUND' });
  assert.equal(s.calls(), 1);
});

test('when a resend after BUSY is refused as REPLAY, then an earlier attempt arrived and the upload counts as delivered', async () => {
  const s = scripted([busy(), new FedloraError('REPLAY', 'this update was already received')]);
  const r = await sendWithBusyRetry(s.send, { stillWanted: () => true, sleep: async () => {} });
  assert.deepEqual(r, { reply: null, confirmedByReplay: true });
});

test('when REPLAY comes first (no BUSY before), then it is a refusal like any other', async () => {
  const s = scripted([new FedloraError('REPLAY', 'this update was already received')]);
  await assert.rejects(sendWithBusyRetry(s.send, { stillWanted: () => true, sleep: async () => {} }), { code: 'REPLAY' });
});

test('when the round closes during the backoff, or the attempts run out, then the last BUSY is thrown', async () => {
  let open = true;
  const closing = scripted([busy()]);
  await assert.rejects(
    sendWithBusyRetry(closing.send, { stillWanted: () => open, sleep: async () => void (open = false) }),
    { code: 'BUSY' },
  );
  assert.equal(closing.calls(), 1);
  const always = scripted([busy()]);
  await assert.rejects(sendWithBusyRetry(always.send, { attempts: 4, stillWanted: () => true, sleep: async () => {} }), { code: 'BUSY' });
  assert.equal(always.calls(), 4);
});
