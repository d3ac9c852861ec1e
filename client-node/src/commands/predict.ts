// `fedlora-site predict`: classify a text with the federation's current (or a given) global adapter.

import { BACKEND_NAMES, type BackendName } from '@fedlora/shared/node/backend.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parseFlags, strFlag } from '../args';
import { DEFAULT_STATE_DIR } from '../agent/state';
import { predictText, type PredictOptions } from '../agent/predict';

export const help = `fedlora-site predict --text TEXT [options]
  Fetches the global adapter (current version, or --version) from the coordinator, merges it into the verified
  base model, and prints the predicted label and every label's probability.

  --text TEXT           the text to classify
  --version ID          adapter version id (default: the coordinator's current version)
  --state-dir DIR       keys and site.json from join (default ${DEFAULT_STATE_DIR}; env FEDLORA_STATE_DIR)
  --model DIR           this site's copy of the base model (default: the shipped fedlora-bert-mini)
  --backend NAME        tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or automatic)
  --json                print {"versionId","label","probabilities"} as one JSON line`;

export function parse(argv: string[], env: NodeJS.ProcessEnv = process.env): (PredictOptions & { json: boolean }) | 'help' {
  const f = parseFlags(argv, {
    text: { type: 'string' }, version: { type: 'string' }, 'state-dir': { type: 'string' }, model: { type: 'string' },
    backend: { type: 'string' }, json: { type: 'boolean' },
  });
  if (f.help) return 'help';
  const text = strFlag(f.text);
  if (!text) throw new FedloraError('CONFIG_INVALID', '--text TEXT is required');
  const backend = strFlag(f.backend) as BackendName | undefined;
  if (backend && !BACKEND_NAMES.includes(backend))
    throw new FedloraError('CONFIG_INVALID', `--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${backend}"`);
  return {
    text,
    version: strFlag(f.version),
    stateDir: strFlag(f['state-dir']) ?? env.FEDLORA_STATE_DIR ?? DEFAULT_STATE_DIR,
    modelDir: strFlag(f.model),
    backend,
    json: Boolean(f.json),
  };
}

export async function run(o: PredictOptions & { json: boolean }, out: (line: string) => void = console.log): Promise<number> {
  const p = await predictText(o);
  if (o.json) {
    out(JSON.stringify({ versionId: p.versionId, label: p.label, probabilities: p.probabilities }));
    return 0;
  }
  out(`${p.label}   (adapter ${p.versionId}, ${p.backend})`);
  const width = Math.max(...Object.keys(p.probabilities).map((l) => l.length));
  for (const [label, prob] of Object.entries(p.probabilities)) out(`  ${label.padEnd(width)}  ${prob.toFixed(4)}`);
  return 0;
}
