// Public API of fedlora's aggregation: the Strategy contract, the strategy registry and the built-in strategies.
// A new strategy is one file (its class and its definition: name, options schema, constructor) plus one line below.

import { registerStrategy } from './registry';
import { FEDAVG } from './fedavg';
import { FEDPROX } from './fedprox';
import { FEDADAM } from './fedadam';
import { FEDAVGM } from './fedavgm';
import { MEDIAN } from './median';
import { TRIMMED_MEAN } from './trimmed-mean';
import { MULTI_KRUM } from './multi-krum';

registerStrategy(FEDAVG);
registerStrategy(FEDPROX);
registerStrategy(FEDADAM);
registerStrategy(FEDAVGM);
registerStrategy(MEDIAN);
registerStrategy(TRIMMED_MEAN);
registerStrategy(MULTI_KRUM);

export * from './strategy';
export * from './math';
export * from './registry';
export { FedAvg, FEDAVG, type FedAvgOptions } from './fedavg';
export { FedProx, FEDPROX, type FedProxOptions } from './fedprox';
export { FedAdam, FEDADAM, type FedAdamOptions } from './fedadam';
export { FedAvgM, FEDAVGM, type FedAvgMOptions } from './fedavgm';
export { CoordinateMedian, MEDIAN, sortedMedian } from './median';
export { TrimmedMean, TRIMMED_MEAN, trimCount, sortedTrimmedMean, type TrimmedMeanOptions } from './trimmed-mean';
export { MultiKrum, MULTI_KRUM, byzantineCount, krumScores, multiKrum, type MultiKrumOptions } from './multi-krum';
export { KeptUpdatesAggregator, coordinatewise, type RobustCombination } from './robust';
