// Public API of fedlora's aggregation: the Strategy contract, the strategy registry and the built-in strategies.
// A new strategy is one file (its class and its definition: name, options schema, constructor) plus one line below.

import { registerStrategy } from './registry';
import { FEDAVG } from './fedavg';
import { FEDPROX } from './fedprox';
import { FEDADAM } from './fedadam';
import { FEDAVGM } from './fedavgm';

registerStrategy(FEDAVG);
registerStrategy(FEDPROX);
registerStrategy(FEDADAM);
registerStrategy(FEDAVGM);

export * from './strategy';
export * from './math';
export * from './registry';
export { FedAvg, FEDAVG, type FedAvgOptions } from './fedavg';
export { FedProx, FEDPROX, type FedProxOptions } from './fedprox';
export { FedAdam, FEDADAM, type FedAdamOptions } from './fedadam';
export { FedAvgM, FEDAVGM, type FedAvgMOptions } from './fedavgm';
