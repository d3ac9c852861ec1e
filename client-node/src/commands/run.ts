// `fedlora-site run`: the site agent. Takes part in federated rounds until stopped (SIGINT/SIGTERM), reconnecting
// with backoff when the coordinator goes away.

import { BACKEND_NAMES, type BackendName } from '@fedlora/shared/node/backend.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parseFlags, strFlag } from '../args';
import { DEFAULT_STATE_DIR } from '../agent/state';
import { SiteAgent, type SiteAgentOptions } from '../agent/site-agent';

export const help = `fedlora-site run [options]
  Connects to the coordinator recorded by "fedlora-site join", authenticates by signing its challenge, verifies the
  base model against the manifest's SHA-256 hashes (downloading it from the coordinator when no local copy matches;
  never trains on a mismatch), then trains in every round it is sampled for and uploads the sealed, signed delta.
  Reconnects with exponential backoff; SIGINT/SIGTERM stop it cleanly (a second signal exits at once).
  The data (join's --data: a file, or a folder of CSV/TSV/JSONL files) is watched and reloaded when it changes, so the
  next round trains on it without a restart; the coordinator hears how many examples no round of this site trained
  on yet (for its --retrain-min-* trigger). A reload that fails (a malformed row) is logged and the last good data
  kept. docs/OPERATOR.md, "Continual re-training".

  --state-dir DIR       keys and site.json from join (default ${DEFAULT_STATE_DIR}; env FEDLORA_STATE_DIR)
  --backend NAME        tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or automatic)
  --model DIR           this site's copy of the base model (default: the shipped fedlora-bert-mini)
  --no-download         refuse (instead of downloading) when the local base model does not match
  --holdout F           keep the fraction F (0 < F < 1, e.g. 0.1) of the data as a held-out split that is never
                        trained on; the coordinator's federated evaluation (--federated-eval) scores each new
                        version on it and gets back only counts and a loss sum (default: no split)
  --no-watch            read the data once at start (no reloads)
  --once                leave after the first round this site trained in has closed
  --json                print agent events as JSON lines on stdout (for scripts and tests)
  --quiet               no progress bars`;

export function parse(argv: string[], env: NodeJS.ProcessEnv = process.env): (SiteAgentOptions & { json: boolean }) | 'help' {
  const f = parseFlags(argv, {
    'state-dir': { type: 'string' }, backend: { type: 'string' }, model: { type: 'string' }, 'no-download': { type: 'boolean' },
    holdout: { type: 'string' }, 'no-watch': { type: 'boolean' }, once: { type: 'boolean' }, json: { type: 'boolean' }, quiet: { type: 'boolean' },
  });
  if (f.help) return 'help';
  const backend = strFlag(f.backend) as BackendName | undefined;
  if (backend && !BACKEND_NAMES.includes(backend))
    throw new FedloraError('CONFIG_INVALID', `--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${backend}"`);
  const holdout = strFlag(f.holdout) === undefined ? undefined : Number(strFlag(f.holdout));
  if (holdout !== undefined && !(holdout > 0 && holdout < 1))
    throw new FedloraError('CONFIG_INVALID', `--holdout must be a fraction between 0 and 1 (e.g. 0.1), got "${strFlag(f.holdout)}"`);
  return {
    holdout,
    stateDir: strFlag(f['state-dir']) ?? env.FEDLORA_STATE_DIR ?? DEFAULT_STATE_DIR,
    backend,
    modelDir: strFlag(f.model),
    download: !f['no-download'],
    once: Boolean(f.once),
    watchData: !f['no-watch'],
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}

export async function run(o: SiteAgentOptions & { json: boolean }, out: (line: string) => void = console.log): Promise<number> {
  const agent = new SiteAgent({ ...o, onEvent: o.json ? (e) => out(JSON.stringify(e)) : undefined });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(130);
    process.stderr.write(`${sig}: stopping after the current training step (again to exit now)\n`);
    agent.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await agent.run();
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
