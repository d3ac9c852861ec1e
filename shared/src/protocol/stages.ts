// The stages of one federated round, in order, in a module of their own (no zod) so that the admin console's browser
// bundle can share the list without the message schemas.

export const ROUND_STAGES = ['sample', 'configure', 'train', 'collect', 'aggregate', 'evaluate', 'version'] as const;

/**
 * A secure-aggregation round (SecAgg+, docs/SECAGG.md): the sites exchange keys and share their secrets before they
 * train (setup, share-keys), and the survivors reveal the shares that remove the masks before the sum is aggregated
 * (unmask). The other stages are the plaintext round's.
 */
export const SECURE_ROUND_STAGES = [
  'sample',
  'configure',
  'setup',
  'share-keys',
  'train',
  'collect',
  'unmask',
  'aggregate',
  'evaluate',
  'version',
] as const;

export type RoundStage = (typeof SECURE_ROUND_STAGES)[number];
