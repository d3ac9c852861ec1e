// Public API of fedlora's secure aggregation (SecAgg+: Bonawitz et al. 2017; Bell et al. 2020). See docs/SECAGG.md.

export { SecAggSite, type SecAggSiteOptions } from './site';
export { SecAggServer, thresholdShortfall, type SecAggResult, type SecAggServerOptions } from './server';
export * from './messages';
export { buildGraph, defaultDegree, defaultThreshold, type SecAggGraph } from './graph';
export { checkQuantizationBound, dequantizeSum, layoutOf, quantizeWeighted, type DecodedSum, type QuantizationParams, type VectorLayout } from './quantize';
export { combineShares, combineRobust, splitSecret, SHARE_BYTES } from './shamir';
export type { AttemptContext } from './masks';
export { simulateSecAgg, simulatedSite, SECAGG_STAGES, type SecAggStage, type SimulatedSite, type SimulationOptions, type SimulationOutcome } from './simulate';
