// The stages of one federated round, in order, in a module of their own (no zod) so that the admin console's browser
// bundle can share the list without the message schemas.

export const ROUND_STAGES = ['sample', 'configure', 'train', 'collect', 'aggregate', 'evaluate', 'version'] as const;
export type RoundStage = (typeof ROUND_STAGES)[number];
