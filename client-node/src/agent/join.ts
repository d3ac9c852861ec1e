// Enrollment of a site: generate (or reuse) its keys, check that the coordinator holds the signing key whose
// fingerprint the join token carries (before the token is sent: an impostor never sees it), register the site's keys
// with the one-time token, authenticate once to get the signed manifest, check the site's data against the
// federation's label set, and record site.json with the pinned fingerprint.
// Re-running join on an enrolled state dir skips the token (containers run `join && run` on every start).

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { generateSiteKeys, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import { checkLabelMapping, formatLabelMapping, labelMapping } from '@fedlora/shared/data/site-data.ts';
import { parseFingerprint } from '@fedlora/shared/crypto/coordinator-trust.ts';
import { parseJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { authenticate, enroll, helloCoordinator, openSocket } from './connection';
import { loadSiteData, UNLABELLED } from './site-data';
import { hasKeys, loadKeys, saveKeys, saveSiteConfig, tryLoadSiteConfig, type SiteConfig } from './state';

export interface JoinOptions {
  coordinator: string;
  /** one-time join token (it carries the coordinator's fingerprint); only needed when the state dir is not enrolled yet */
  token?: string;
  /** the coordinator's fingerprint, for a join token from before pinning or an enrolled state dir that lacks one */
  coordinatorFingerprint?: string;
  /** a private CA's PEM certificate for an https:// coordinator; recorded for run, predict and serve */
  ca?: string;
  data: string;
  textColumn?: string;
  labelColumn?: string;
  stateDir: string;
  /** requested site id (default: derived from the signing key); the coordinator's reply is authoritative */
  siteId?: string;
  log?: (line: string) => void;
}

export interface JoinResult {
  siteId: string;
  /** false when the state dir was already enrolled with this coordinator and the token was not used */
  enrolled: boolean;
  manifest: Manifest;
  mapping: string;
  /** the coordinator fingerprint now pinned in site.json */
  coordinatorFingerprint: string;
}

function defaultSiteId(keys: SiteKeys): string {
  return `site-${createHash('sha256').update(keys.signing.publicKey).digest('hex').slice(0, 12)}`;
}

export async function joinFederation(o: JoinOptions): Promise<JoinResult> {
  const log = o.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const coordinator = o.coordinator.replace(/\/+$/, '');
  const dataPath = resolve(o.data);
  // the data is checked before the token is spent: a typo in --data should not cost a new token
  const dataset = loadSiteData({ data: dataPath, textColumn: o.textColumn, labelColumn: o.labelColumn });
  log(`data: ${dataset.examples.length} examples in ${dataPath}`);

  const previous = tryLoadSiteConfig(o.stateDir);
  if (previous && previous.coordinator !== coordinator)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${o.stateDir} is enrolled with ${previous.coordinator}, not ${coordinator}; use another --state-dir for a second federation`,
    );
  if (previous && !hasKeys(o.stateDir))
    throw new FedloraError(
      'CONFIG_INVALID',
      `${o.stateDir} records site ${previous.siteId} but its keys are gone; delete ${o.stateDir} and join again with a new token`,
    );
  let keys: SiteKeys;
  if (hasKeys(o.stateDir)) keys = loadKeys(o.stateDir);
  else {
    keys = generateSiteKeys();
    saveKeys(o.stateDir, keys); // before enrolling: keys registered with the coordinator must never be lost
  }

  if (!previous && !o.token)
    throw new FedloraError('CONFIG_INVALID', '--token is required to enroll (the one-time join token from the coordinator admin)');
  const token = o.token ? parseJoinToken(o.token) : null;
  const pinned = fingerprintToPin(token?.fingerprint ?? null, o.coordinatorFingerprint, previous?.coordinatorFingerprint, o.stateDir);
  const caFile = o.ca ? resolve(o.ca) : previous?.caFile;
  // the project the token enrolls into (issue 21); a state dir stays with the project it enrolled in
  const project = token ? (token.project ?? undefined) : previous?.project;
  if (previous && token && (previous.project ?? null) !== (token.project ?? null))
    throw new FedloraError('CONFIG_INVALID', `${o.stateDir} is enrolled in project ${previous.project ?? 'default'}, this token is for ${token.project ?? 'default'}; use another --state-dir for another project`);
  const socket = await openSocket(coordinator, { caFile, project });
  try {
    // UNTRUSTED_COORDINATOR here, naming both fingerprints, when the coordinator is not the one the token was made for
    const trust = await helloCoordinator(socket, pinned);
    log(`coordinator ${trust.coordinatorId} proved its signing key ${trust.fingerprint}`);
    let siteId = previous?.siteId;
    if (siteId) log(`already enrolled as ${siteId}: the token is not used again`);
    else {
      if (!token) throw new FedloraError('CONFIG_INVALID', '--token is required to enroll (the one-time join token from the coordinator admin)');
      siteId = await enroll(socket, token.secret, o.siteId ?? defaultSiteId(keys), keys);
      log(`enrolled as ${siteId}`);
    }
    const cfg: SiteConfig = {
      v: 1,
      coordinator,
      siteId,
      data: dataPath,
      ...(o.textColumn ? { textColumn: o.textColumn } : {}),
      ...(o.labelColumn ? { labelColumn: o.labelColumn } : {}),
      enrolledAt: previous?.enrolledAt ?? new Date().toISOString(),
      coordinatorFingerprint: pinned,
      ...(caFile ? { caFile } : {}),
      ...(project ? { project } : {}),
    };
    // saved before the label check: the token is spent now, and a fixed data file only needs `join` again
    saveSiteConfig(o.stateDir, cfg);
    const { manifest } = await authenticate(socket, siteId, keys, pinned);
    // a masked-LM federation (issue 24) trains on the text alone: the site's labels are not used, so not checked
    if (manifest.task?.kind === 'mlm') {
      const mapping = `masked-LM federation: ${dataset.examples.length} documents (the text column; labels unused)`;
      return { siteId, enrolled: !previous, manifest, mapping, coordinatorFingerprint: pinned };
    }
    if (dataset.labels.includes(UNLABELLED))
      throw new FedloraError('DATA_INVALID', `${dataPath} holds unlabelled text (.txt): it serves masked-LM federations only; this coordinator classifies, so give a labelled CSV/TSV/JSONL`);
    const m = labelMapping(dataset, manifest.labels);
    const mapping = formatLabelMapping(m);
    checkLabelMapping(m, dataPath);
    return { siteId, enrolled: !previous, manifest, mapping, coordinatorFingerprint: pinned };
  } finally {
    socket.close();
  }
}

/**
 * The fingerprint to pin: the join token's, --coordinator-fingerprint's, or the one site.json pinned before; they must
 * agree. None at all (a token from before pinning and no flag) is refused: trusting whoever answers would let a
 * swapped coordinator enroll the site.
 */
function fingerprintToPin(fromToken: string | null, fromFlag: string | undefined, pinnedBefore: string | undefined, stateDir: string): string {
  const flag = fromFlag === undefined ? null : parseFingerprint(fromFlag, '--coordinator-fingerprint');
  if (fromToken && flag && fromToken !== flag)
    throw new FedloraError('CONFIG_INVALID', `the join token pins coordinator ${fromToken}, --coordinator-fingerprint says ${flag}`);
  const given = fromToken ?? flag;
  if (given && pinnedBefore && given !== pinnedBefore)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${stateDir} is pinned to coordinator ${pinnedBefore}, not ${given}; use another --state-dir for another coordinator`,
    );
  const pinned = given ?? pinnedBefore;
  if (!pinned)
    throw new FedloraError(
      'CONFIG_INVALID',
      'this join token carries no coordinator fingerprint (a token from before sites pinned the coordinator\'s key): ' +
        'ask the coordinator admin for a new join token, or pass --coordinator-fingerprint FP as the coordinator prints it at start',
    );
  return pinned;
}
