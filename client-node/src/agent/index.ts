// Public API of the Node site agent (used by the CLI commands, the e2e tests and `npm start`).

export { SiteAgent, type AgentEvent, type SiteAgentOptions } from './site-agent';
export { joinFederation, type JoinOptions, type JoinResult } from './join';
export { predictText, type PredictOptions, type Prediction } from './predict';
export { DEFAULT_STATE_DIR, loadKeys, loadSiteConfig, type SiteConfig } from './state';
export { backoffDelay, Backoff, DEFAULT_BACKOFF, type BackoffOptions } from '@fedlora/shared/connection/backoff.ts';
export { verifyBaseModel, checkModelFiles, downloadBaseModel } from './model-check';
export { buildUpload } from '@fedlora/shared/round/participant.ts';
