// Must-show 3 (protocol part): a site refuses an unmask request that asks for both shares of one site, lists fewer
// than t survivors, or carries a forged or unsigned survivor list; and it answers one unmask request per attempt.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import type { UnmaskRequest } from './messages';
import { simulateSecAgg, simulatedSite } from './simulate';

const ctx = { runId: 'run', roundId: 'round-2', attempt: 0 };
const params = { clip: 1, levels: 2 ** 20, maxWeight: 10 };
// 8 sites: k = 7 (complete graph), t = 5; site-7 drops after share-keys so every site has one dead neighbour
const sites = Array.from({ length: 8 }, (_, i) => simulatedSite(`site-${i}`, { a: { shape: [8], data: new Float32Array(8).fill(0.01 * i) } }, 3));
const drops = { 'masked-upload': new Set(['site-7']) };
const target = 'site-0';

async function refusedWith(tamper: (req: UnmaskRequest) => UnmaskRequest, code: FedloraErrorCode, message: RegExp) {
  await assert.rejects(
    simulateSecAgg({ ctx, params, sites, drops, tamperUnmaskRequest: (id, req) => (id === target ? tamper(req) : req) }),
    (e) => isFedloraError(e, code) && message.test(e.message),
  );
}

test('when the coordinator is honest, then the same round completes (the refusals below come from the tampering)', async () => {
  const outcome = await simulateSecAgg({ ctx, params, sites, drops, tamperUnmaskRequest: (_, req) => req });
  assert.ok(outcome.ok);
  assert.equal(outcome.result.count, 7);
});

test('when an unmask request asks for both the self-mask and the mask-key share of a site, then the site refuses', async () => {
  await refusedWith((req) => ({ ...req, maskKeyOf: [...req.maskKeyOf, req.selfMaskOf[0]] }), 'BAD_MESSAGE', /both shares of site-1/);
  await refusedWith((req) => ({ ...req, selfMaskOf: [...req.selfMaskOf, 'site-7'] }), 'BAD_MESSAGE', /both shares of site-7/);
});

test('when an unmask request lists fewer than t of the site\'s neighbours as survivors, then the site refuses', async () => {
  await refusedWith((req) => ({ ...req, survivors: req.survivors.slice(0, 4) }), 'BAD_MESSAGE', /3 of this site's neighbours as survivors, fewer than the threshold 5/);
});

test('when the survivor list differs from the one the site signed, then the site refuses', async () => {
  await refusedWith((req) => ({ ...req, survivors: req.survivors.filter((s) => s !== 'site-6'), selfMaskOf: req.selfMaskOf.filter((s) => s !== 'site-6'), maskKeyOf: [...req.maskKeyOf, 'site-6'] }), 'BAD_SIGNATURE', /not for the survivor list this site signed/);
});

test('when a signature on the survivor list is forged, then the site refuses', async () => {
  await refusedWith(
    (req) => ({ ...req, signatures: req.signatures.map((s, i) => (i === 0 ? { ...s, signature: s.signature.map((b, j) => (j === 0 ? b ^ 1 : b)) } : s)) }),
    'BAD_SIGNATURE',
    /invalid signature for site-1/,
  );
});

test('when the survivor list carries no signatures or fewer than t, then the site refuses', async () => {
  await refusedWith((req) => ({ ...req, signatures: [] }), 'BAD_SIGNATURE', /signed by 0 neighbours, fewer than the threshold 5/);
  await refusedWith((req) => ({ ...req, signatures: req.signatures.slice(0, 4) }), 'BAD_SIGNATURE', /signed by 4 neighbours/);
});

test('when a signature is moved to another site\'s name, then the site refuses', async () => {
  await refusedWith((req) => ({ ...req, signatures: req.signatures.map((s, i) => (i === 1 ? { ...s, signature: req.signatures[0].signature } : s)) }), 'BAD_SIGNATURE', /invalid signature for site-2/);
});

test('when a site answers the unmask request with a share it was not asked for, then the server refuses the response', async () => {
  await assert.rejects(
    simulateSecAgg({
      ctx,
      params,
      sites,
      drops,
      tamperUnmaskResponse: (res) => (res.siteId === target ? { ...res, maskKeyShares: [...res.maskKeyShares, { owner: 'site-1', share: res.selfMaskShares[0].share }] } : res),
    }),
    (e) => isFedloraError(e, 'BAD_MESSAGE') && /site-0's unmask response does not answer the request/.test(e.message),
  );
});

test('when one site sends a garbage share among more than t, then the round still completes from the honest ones', async () => {
  const outcome = await simulateSecAgg({
    ctx,
    params,
    sites,
    drops,
    tamperUnmaskResponse: (res) => (res.siteId === target ? { ...res, selfMaskShares: res.selfMaskShares.map((s) => ({ ...s, share: s.share.map((b, i) => (i === 0 ? b ^ 0xff : b)) })) } : res),
  });
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
  const expected = sites.filter((s) => s.siteId !== 'site-7').reduce((a, s) => a + 3 * s.delta.a.data[0], 0);
  assert.ok(Math.abs(outcome.result.sum.a.data[0] - expected) <= (7 * 2 * params.clip * params.maxWeight) / params.levels);
});
