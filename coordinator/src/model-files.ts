// The base-model files a coordinator lists in its manifest and serves chunk by chunk over 'model:chunk', with their
// SHA-256. One implementation, shared with the site's merge (fedlora-site merge names its parent base by the same
// hash): shared/src/node/model/model-hash.ts.

export { hashModelFiles, modelFileNames, baseModelSha256 } from '@fedlora/shared/node/model/model-hash.ts';
