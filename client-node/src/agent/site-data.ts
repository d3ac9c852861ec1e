// The Node site's labelled data, loaded once from its file. The label mapping check and the tokenization cache are
// shared with the browser site (shared/src/data/site-data.ts). Nothing here is ever sent.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';

export interface DataLocation {
  data: string;
  textColumn?: string;
  labelColumn?: string;
}

export function loadSiteData(loc: DataLocation): LabeledDataset {
  const ds = loadTabularFile(loc.data, { textColumn: loc.textColumn, labelColumn: loc.labelColumn });
  if (ds.examples.length === 0) throw new FedloraError('DATA_INVALID', `${loc.data} holds no examples`);
  return ds;
}
