// `fedlora-site join`: enroll this site with a coordinator using a one-time token (keys are generated and kept
// in the state dir, mode 600, never printed) and check the site's data against the federation's labels.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { parseFlags, strFlag } from '../args';
import { DEFAULT_STATE_DIR } from '../agent/state';
import { joinFederation, type JoinOptions } from '../agent/join';

export const help = `fedlora-site join --coordinator URL --token TOKEN --data FILE [options]
  Enrolls this site: generates its Ed25519 signing key and X25519 box key into the state dir (mode 600), registers
  the public keys with the coordinator using the one-time join token, and checks that the data file loads and that
  its labels are among the federation's (printing the label mapping). Safe to re-run: an enrolled state dir keeps
  its identity and only the data settings are updated (the token is not used again).

  --coordinator URL     coordinator address, e.g. http://localhost:8080 (env FEDLORA_COORDINATOR)
  --token TOKEN         one-time join token from the coordinator admin (env FEDLORA_TOKEN); not needed
                        again once the state dir is enrolled. It ends in ~<fingerprint> of the coordinator's
                        signing key: the site checks the coordinator holds that key before sending the token,
                        and later refuses any manifest or round message it did not sign
  --coordinator-fingerprint FP   the coordinator's fingerprint as it prints it at start (env
                        FEDLORA_COORDINATOR_FINGERPRINT), for a join token from before pinning or to pin an
                        already enrolled state dir; must agree with the token's
  --data FILE|DIR       this site's labelled CSV/TSV/JSONL, or a folder of them read as one dataset (stays on this
                        machine; run watches it and trains on what is added). A masked-LM federation (coordinator
                        --task mlm) reads only the text column, or a .txt file of unlabelled documents (one per line)
  --text-column NAME    --label-column NAME   column names (default: auto-detected)
  --state-dir DIR       where keys and site.json are kept (default ${DEFAULT_STATE_DIR}; env FEDLORA_STATE_DIR)
  --site-id ID          requested site id (default: derived from the site's public key)
  --ca FILE             PEM certificate of a private CA that signed an https:// coordinator's certificate
                        (env FEDLORA_CA_FILE); recorded in site.json for run, predict and serve`;

export function parse(argv: string[], env: NodeJS.ProcessEnv = process.env): JoinOptions | 'help' {
  const f = parseFlags(argv, {
    coordinator: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' },
    'text-column': { type: 'string' }, 'label-column': { type: 'string' }, 'state-dir': { type: 'string' },
    'site-id': { type: 'string' }, 'coordinator-fingerprint': { type: 'string' }, ca: { type: 'string' },
  });
  if (f.help) return 'help';
  const coordinator = strFlag(f.coordinator) ?? env.FEDLORA_COORDINATOR;
  const token = strFlag(f.token) ?? env.FEDLORA_TOKEN;
  const data = strFlag(f.data);
  if (!coordinator) throw new FedloraError('CONFIG_INVALID', '--coordinator URL is required');
  if (!data) throw new FedloraError('CONFIG_INVALID', '--data FILE is required');
  return {
    coordinator,
    token: token || undefined,
    data,
    textColumn: strFlag(f['text-column']),
    labelColumn: strFlag(f['label-column']),
    stateDir: strFlag(f['state-dir']) ?? env.FEDLORA_STATE_DIR ?? DEFAULT_STATE_DIR,
    siteId: strFlag(f['site-id']),
    ca: strFlag(f.ca) ?? (env.FEDLORA_CA_FILE || undefined),
    coordinatorFingerprint: strFlag(f['coordinator-fingerprint']) ?? (env.FEDLORA_COORDINATOR_FINGERPRINT || undefined),
  };
}

export async function run(o: JoinOptions, out: (line: string) => void = console.log): Promise<number> {
  const r = await joinFederation(o);
  out(r.mapping);
  out(
    `${r.enrolled ? 'joined' : 'already joined'} ${o.coordinator} as ${r.siteId} ` +
      `(base model ${r.manifest.baseModel.id}, ${r.manifest.labels.length} labels); coordinator key ${r.coordinatorFingerprint} ` +
      `pinned; state in ${o.stateDir}. Next: fedlora-site run`,
  );
  return 0;
}
