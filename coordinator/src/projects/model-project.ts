// How the coordinator process builds a project from its spec (POST /api/projects, projects.json): the base model
// (the spec's directory or the coordinator's --model), its labels, the held-out set (a CSV/JSONL file on the
// coordinator's machine, or none with federated evaluation), and the strategy and settings: the coordinator's own
// flags with the spec's settings over them. Everything is checked before anything is opened, so a bad spec creates
// nothing.

import { resolve } from 'node:path';
import { FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { labelIds, sortedLabels, subsetDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { stratifiedSubset } from '@fedlora/shared/data/split.ts';
import { isStrategyName } from '@fedlora/shared/aggregation/index.ts';
import type { CoordinatorConfig } from '../config';
import { loadModelTask } from '../eval/model-task';
import { hashModelFiles } from '../model-files';
import { strategyFromSettings, updateSettings, type RoundSettings } from '../rounds/settings';
import type { ProjectFactory, ProjectSpec } from './project-host';

function heldoutOf(spec: ProjectSpec, seed: number): LabeledDataset | null {
  if (spec.heldout === undefined) return null;
  const ds = loadTabularFile(spec.heldout, { textColumn: spec.textColumn, labelColumn: spec.labelColumn });
  let heldout: LabeledDataset = { ...ds, labels: sortedLabels(ds.examples.map((e) => e.label)) };
  const foreign = heldout.labels.filter((l) => !spec.labels.includes(l));
  if (foreign.length > 0)
    throw new FedloraError('CONFIG_INVALID', `project ${spec.id}: the held-out set has labels the project does not (${foreign.slice(0, 5).join(', ')})`);
  heldout = { ...heldout, labels: [...spec.labels] };
  if (spec.heldoutLimit && spec.heldoutLimit < heldout.examples.length)
    heldout = subsetDataset(heldout, stratifiedSubset(labelIds(heldout), spec.heldoutLimit, seed + 1));
  return heldout;
}

/**
 * Projects built like the coordinator's own federation, from the coordinator's configuration `c`. A spec the
 * coordinator cannot serve (a missing or unreadable file, a model directory that is not one) is CONFIG_INVALID naming
 * the project and the cause: an admin's request to fix (400), not a fault of the coordinator.
 */
export function modelProjectFactory(c: CoordinatorConfig): ProjectFactory {
  const build = buildProject(c);
  return async (spec) => {
    try {
      return await build(spec);
    } catch (err) {
      if (!isFedloraError(err) || err.code === 'CONFIG_INVALID') throw err;
      throw new FedloraError('CONFIG_INVALID', `project ${spec.id}: ${err.message}`, { cause: err });
    }
  };
}

function buildProject(c: CoordinatorConfig): ProjectFactory {
  return async (spec) => {
    if (spec.heldout === undefined && !spec.federatedEval)
      throw new FedloraError('CONFIG_INVALID', `project ${spec.id}: give a held-out set (heldout) or turn on federated evaluation (federatedEval)`);
    const { strategy: named, ...patch } = spec.settings ?? {};
    const strategy = named ?? c.strategy;
    if (!isStrategyName(strategy)) throw new FedloraError('CONFIG_INVALID', `project ${spec.id}: unknown strategy ${String(strategy)}`);
    const { settings, stop } = updateSettings({ settings: c.settings, stop: c.stop }, patch);
    const heldout = heldoutOf(spec, c.seed);
    const modelDir = spec.model === undefined ? c.modelDir : resolve(spec.model);
    const modelFiles = await hashModelFiles(modelDir);
    // the evaluator reads the project's current maxLength (PUT /api/projects/<id>/settings may change it)
    let current: () => RoundSettings = () => settings;
    const task = loadModelTask({
      modelDir,
      lora: c.lora,
      labels: [...spec.labels],
      pooling: c.pooling,
      heldout,
      maxLength: () => current().maxLength,
      seed: c.seed,
    });
    return {
      strategy: strategyFromSettings(strategy, settings),
      settings,
      stop,
      federatedEvaluation: spec.federatedEval,
      task: {
        modelId: spec.modelId ?? (spec.model === undefined ? c.modelId : spec.id),
        modelFamily: task.family,
        modelFiles,
        lora: c.lora,
        labels: [...spec.labels],
        pooling: c.pooling,
        initialState: task.initialState,
        evaluator: task.evaluator,
      },
      opened: (p) => {
        current = () => p.federation.settings;
      },
    };
  };
}
