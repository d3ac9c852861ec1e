// The coordinator process: reads flags and environment, loads the base model and held-out data, builds the
// coordinator (app.ts) and listens. Returns an exit code when it is done, or null while it keeps serving.

import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { usageErrorText, USAGE_EXIT_CODE } from '@fedlora/shared/node/command-line.ts';
import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { loadSpamAssassin, spamAssassinEvalSubset } from '@fedlora/shared/node/data/spam-assassin.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { labelIds, sortedLabels, subsetDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { stratifiedSubset } from '@fedlora/shared/data/split.ts';
import { createCoordinator } from './app';
import { coordinatorHelp, parseConfig, type CoordinatorConfig } from './config';
import { loadModelTask } from './eval/model-task';
import { loadMlmTask } from './eval/mlm-task';
import { splitDocuments } from '@fedlora/shared/training/pretrain.ts';
import { createLogger, type Logger } from './log';
import { serveMetrics } from './http/metrics-route';
import { hashModelFiles } from './model-files';
import { DirStorage } from './storage';
import { strategyFromSettings } from './rounds/settings';
import { faultHoldFromEnv } from './rounds/fault-hold';
import { openPostgresStores, redactUrl } from './postgres/stores';
import { auditCommand } from './audit/audit-command';
import { modelProjectFactory } from './projects/model-project';
import { OidcLogin } from './users/oidc';

async function loadHeldout(c: CoordinatorConfig): Promise<{ heldout: LabeledDataset | null; labels: string[] }> {
  // no labelled data here: the sites' federated evaluation alone scores versions (parseConfig requires --labels)
  if (c.heldout === 'none') return { heldout: null, labels: c.labels as string[] };
  let heldout: LabeledDataset;
  if (c.heldout) {
    const ds = loadTabularFile(c.heldout, { textColumn: c.textColumn, labelColumn: c.labelColumn });
    heldout = { ...ds, labels: sortedLabels(ds.examples.map((e) => e.label)) };
  } else {
    heldout = spamAssassinEvalSubset(await loadSpamAssassin('heldout'));
  }
  if (c.heldoutLimit && c.heldoutLimit < heldout.examples.length)
    heldout = subsetDataset(heldout, stratifiedSubset(labelIds(heldout), c.heldoutLimit, c.seed + 1));
  return { heldout, labels: c.labels ?? heldout.labels };
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number | null> {
  // `fedlora-coordinator audit verify <dir>`: an offline check, no coordinator started (audit/audit-command.ts)
  if (argv[0] === 'audit') return auditCommand(argv.slice(1));
  let log: Logger = createLogger();
  let config: CoordinatorConfig | 'help';
  try {
    config = parseConfig(argv, env);
  } catch (err) {
    console.error(usageErrorText('fedlora-coordinator', err, coordinatorHelp()));
    return USAGE_EXIT_CODE;
  }
  if (config === 'help') {
    console.log(coordinatorHelp());
    return 0;
  }
  const c = config;
  log = createLogger({ format: c.logFormat });
  try {
    const backend = await initNodeBackend({
      force: c.backend as BackendName | undefined,
      log: (l) => log('backend', { detail: l }),
    });
    log('backend.ready', { backend: backend.name });
    // a masked-LM federation (--task mlm) has no labels: its held-out set is --mlm-text's documents
    const mlm = c.task === 'mlm';
    const { heldout, labels } = mlm ? { heldout: null, labels: [] } : await loadHeldout(c);
    if (mlm) log('task.mlm', { heldoutText: c.mlmText, headTransform: c.headTransform, targets: c.lora.targetModules.join(',') });
    else if (heldout) log('heldout.loaded', { name: heldout.name, examples: heldout.examples.length, labels: labels.length });
    else log('heldout.none', { labels: labels.length, federatedEval: c.federatedEval });
    const modelFiles = await hashModelFiles(c.modelDir);
    // the evaluator reads the current maxLength at each evaluation (PUT /api/settings may change it)
    let settingsOf: () => { maxLength: number } = () => c.settings;
    const task = mlm
      ? loadMlmTask({
          modelDir: c.modelDir,
          lora: c.lora,
          headTransform: c.headTransform,
          heldoutDocs: readMlmText(c.mlmText as string),
          maxLength: () => settingsOf().maxLength,
          seed: c.seed,
        })
      : loadModelTask({
          modelDir: c.modelDir,
          lora: c.lora,
          labels,
          pooling: c.pooling,
          heldout,
          maxLength: () => settingsOf().maxLength,
          seed: c.seed,
        });
    // the round loop rebuilds it the same way when the settings switch it or change its options
    const strategy = strategyFromSettings(c.strategy, c.settings);
    const dataDir = resolve(c.dataDir);
    // PostgreSQL instead of the data dir's files for versions, rounds, sites and the coordinator's identity
    const pg = c.databaseUrl ? await openPostgresStores(c.databaseUrl) : null;
    if (pg) log('store.postgres', { url: redactUrl(c.databaseUrl as string) });
    const coord = await createCoordinator({
      adminToken: c.adminToken,
      storage: new DirStorage(dataDir),
      ...(pg ? { adapterStore: pg.adapters, siteStore: pg.sites, identityStore: { where: 'postgres', read: () => pg.identity.read(), write: (r) => pg.identity.write(r) }, sessionStore: pg.sessions, userStore: pg.users, auditStore: pg.audit } : {}),
      cluster:
        pg && c.redisUrl
          ? {
              redisUrl: c.redisUrl,
              pool: pg.pool,
              nodeId: c.nodeId,
              leasePollMs: c.leaseMs,
              // a leader without its lease must not go on: exit, and let the supervisor restart it as a follower
              onLeaseLost: () => process.exit(3),
            }
          : undefined,
      strategy,
      settings: c.settings,
      stop: c.stop,
      task: {
        modelId: c.modelId,
        modelFamily: task.family,
        modelFiles,
        lora: c.lora,
        labels,
        pooling: c.pooling,
        initialState: task.initialState,
        evaluator: task.evaluator,
        ...(mlm
          ? { mlm: { kind: 'mlm' as const, headTransform: c.headTransform, baseDir: resolve(c.modelDir), basesDir: join(dataDir, 'bases'), tool: 'fedlora-coordinator' } }
          : {}),
      },
      federatedEvaluation: c.federatedEval,
      // more projects beside this one (POST /api/projects, projects.json in the data dir; not in a cluster)
      projectFactory: modelProjectFactory(c),
      autostart: !c.paused,
      presetSites: c.presetSites,
      allowedOrigins: c.allowedOrigins,
      loginLimits: c.loginLimits,
      ...(c.oidc ? { oidc: new OidcLogin(c.oidc) } : {}),
      edge: { connections: c.connections },
      metrics: {
        token: c.metricsToken,
        processMetrics: c.metricsToken !== undefined || c.metricsPort !== undefined,
      },
      log,
      afterStage: faultHoldFromEnv(env, log),
      ...(c.tls ? { tls: { cert: readPem(c.tls.certFile, '--tls-cert'), key: readPem(c.tls.keyFile, '--tls-key') } } : {}),
    });
    settingsOf = () => coord.federation.settings;
    const url = await coord.listen(c.port, c.host);
    // read aloud or pasted to site operators: join tokens carry it, and sites trust only the key it names
    console.log(`coordinator fingerprint ${coord.fingerprint}`);
    console.log(`fedlora coordinator listening on ${url}`);
    const metricsServer =
      c.metricsPort === undefined
        ? null
        : await serveMetrics(coord.metrics, { port: c.metricsPort, host: c.host, token: c.metricsToken });
    // the client secret stays out of the log: only where sign-ins go and come back
    if (c.oidc) log('oidc.enabled', { issuer: c.oidc.issuer, clientId: c.oidc.clientId, redirectUrl: c.oidc.redirectUrl, claim: c.oidc.usernameClaim });
    if (metricsServer) log('metrics.listening', { url: metricsServer.url, bearer: c.metricsToken !== undefined });
    let closing = false;
    const shutdown = async (signal: string) => {
      if (closing) return;
      closing = true;
      log('coordinator.stopping', { signal });
      await metricsServer?.close();
      await coord.close();
      await pg?.close();
      task.dispose();
      process.exit(0);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    if (!c.exitWhenDone) return null;
    for (;;) {
      await coord.federation.whenStopped();
      const st = coord.federation.state;
      if (st !== 'paused' && st !== 'pausing' && st !== 'running') break;
      await new Promise((r) => setTimeout(r, 1000)); // paused: wait for a restart through the API
    }
    await metricsServer?.close();
    await coord.close();
    task.dispose();
    return 0;
  } catch (err) {
    console.error(`fedlora-coordinator: ${describeError(err)}`);
    if (!isFedloraError(err) && err instanceof Error && err.stack) console.error(err.stack);
    return isFedloraError(err, 'CONFIG_INVALID') ? 2 : 1;
  }
}

/** --mlm-text as `fedlora-site pretrain --text` reads it: one document per line, or paragraphs between blank lines. */
function readMlmText(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'FILE_UNREADABLE';
    throw new FedloraError(code, `--mlm-text ${path}: ${(err as Error).message}`, { cause: err });
  }
  const docs = splitDocuments(text);
  if (docs.length === 0) throw new FedloraError('DATA_INVALID', `--mlm-text ${path} holds no text`);
  return docs;
}

/** A PEM file named by a flag; FILE_NOT_FOUND / FILE_UNREADABLE name the flag, never the contents (a key). */
function readPem(path: string, flag: string): Buffer {
  try {
    const b = readFileSync(path);
    if (!b.includes('-----BEGIN ')) throw new FedloraError('CONFIG_INVALID', `${flag} ${path} is not a PEM file`);
    return b;
  } catch (err) {
    if (err instanceof FedloraError) throw err;
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'FILE_UNREADABLE';
    throw new FedloraError(code, `${flag} ${path}: ${(err as Error).message}`, { cause: err });
  }
}
