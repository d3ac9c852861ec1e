// Client-level differential privacy (DP-FedAvg): clipping, noise, adaptive clipping and the RDP accountant.

export { logAdd, logErfc, logSub } from './log-space';
export {
  ORDER_GRIDS,
  ORDER_GRID_NAMES,
  RdpAccountant,
  epsilonFromRdp,
  privacySpent,
  sampledGaussianRdp,
  type GaussianRounds,
  type OrderGridName,
  type PrivacySpent,
  type RdpLedger,
} from './rdp-accountant';
export { noiseMultiplierFor, type NoiseSearch } from './noise-search';
export { addGaussianNoise, gaussianSamples, meanNoiseStd, secureUniforms, type UniformSource } from './gaussian-noise';
export { clipToL2Norm, l2Norm, type ClippedDelta } from './clipping';
export { checkAdaptiveClipping, nextClipNorm, unclippedFraction, type AdaptiveClipping } from './adaptive-clipping';
