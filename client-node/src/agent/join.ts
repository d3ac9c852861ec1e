// Enrollment of a site: generate (or reuse) its keys, register them with a one-time token, authenticate once to
// get the manifest, check the site's data against the federation's label set, and record site.json.
// Re-running join on an enrolled state dir skips the token (containers run `join && run` on every start).

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { generateSiteKeys, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import { checkLabelMapping, formatLabelMapping, labelMapping } from '@fedlora/shared/data/site-data.ts';
import { authenticate, enroll, openSocket } from './connection';
import { loadSiteData } from './site-data';
import { hasKeys, loadKeys, saveKeys, saveSiteConfig, tryLoadSiteConfig, type SiteConfig } from './state';

export interface JoinOptions {
  coordinator: string;
  /** one-time join token; only needed when the state dir is not enrolled yet */
  token?: string;
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
  const socket = await openSocket(coordinator);
  try {
    let siteId = previous?.siteId;
    if (siteId) log(`already enrolled as ${siteId}: the token is not used again`);
    else {
      if (!o.token) throw new FedloraError('CONFIG_INVALID', '--token is required to enroll (the one-time join token from the coordinator admin)');
      siteId = await enroll(socket, o.token, o.siteId ?? defaultSiteId(keys), keys);
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
    };
    // saved before the label check: the token is spent now, and a fixed data file only needs `join` again
    saveSiteConfig(o.stateDir, cfg);
    const { manifest } = await authenticate(socket, siteId, keys);
    const m = labelMapping(dataset, manifest.labels);
    const mapping = formatLabelMapping(m);
    checkLabelMapping(m, dataPath);
    return { siteId, enrolled: !previous, manifest, mapping };
  } finally {
    socket.close();
  }
}
