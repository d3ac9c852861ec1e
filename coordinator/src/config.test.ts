// Command-line configuration: defaults, flag → setting mapping, and startup errors that name the flag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { parseConfig } from './config';
import { sampleSize, updateSettings, DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';

const TOKEN = { FEDLORA_ADMIN_TOKEN: 'a-long-enough-admin-token' };
const invalid = (re: RegExp) => (err: unknown) =>
  isFedloraError(err, 'CONFIG_INVALID') && re.test(err.message);

test('when only the admin token is given, then the defaults are the CPU federation recipe', () => {
  const c = parseConfig([], TOKEN);
  assert.ok(c !== 'help');
  assert.equal(c.port, 8080);
  assert.equal(c.dataDir, '.fedlora/coordinator');
  assert.equal(c.strategy, 'fedavg');
  const options = c.settings.strategyOptions;
  assert.deepEqual(
    [options.fedadam.eta, options.fedavgm.eta, options.fedavgm.momentum],
    [0.01, 1, 0.9],
    'each strategy uses its own default',
  );
  const m = parseConfig(['--strategy', 'fedavgm', '--server-momentum', '0.8'], TOKEN);
  assert.ok(m !== 'help');
  assert.deepEqual([m.strategy, m.settings.strategyOptions.fedavgm.momentum], ['fedavgm', 0.8]);
  assert.deepEqual(
    [c.settings.maxLength, c.settings.batchSize, c.settings.learningRate, c.settings.maxSteps],
    [64, 16, 2e-3, 12],
  );
  assert.deepEqual(c.stop, { rounds: null, patience: null, targetAccuracy: null });
});

test('when round flags are given, then they land in the settings and stop rules', () => {
  const c = parseConfig(
    [
      '--sites-per-round',
      '0.5',
      '--min-sites',
      '3',
      '--lr',
      '0.01',
      '--encoding',
      'int8',
      '--rounds',
      '5',
      '--target-accuracy',
      '0.9',
      '--site-token',
      'Site A=0123456789abcdef',
      '--port',
      '0',
    ],
    { ...TOKEN, FEDLORA_SITE_TOKENS: 'site-b=fedcba9876543210' },
  );
  assert.ok(c !== 'help');
  assert.deepEqual(c.settings.sitesPerRound, { kind: 'fraction', value: 0.5 });
  assert.equal(c.settings.minSites, 3);
  assert.equal(c.settings.learningRate, 0.01);
  assert.equal(c.settings.encoding, 'int8');
  assert.deepEqual(c.stop, { rounds: 5, patience: null, targetAccuracy: 0.9 });
  assert.deepEqual(c.presetSites, [
    { name: 'Site A', token: '0123456789abcdef' },
    { name: 'site-b', token: 'fedcba9876543210' },
  ]);
  assert.equal(c.port, 0);
});

test('when the config is bad, then parsing fails with CONFIG_INVALID naming the flag', () => {
  assert.throws(() => parseConfig([], {}), invalid(/admin token is required/));
  assert.throws(() => parseConfig(['--strategy', 'fedsgd'], TOKEN), invalid(/--strategy/));
  assert.throws(() => parseConfig(['--server-momentum', '1'], TOKEN), invalid(/--server-momentum/));
  assert.throws(() => parseConfig(['--server-lr', '0'], TOKEN), invalid(/--server-lr/));
  assert.throws(() => parseConfig(['--encoding', 'fp8'], TOKEN), invalid(/--encoding/));
  assert.throws(() => parseConfig(['--lr', 'fast'], TOKEN), invalid(/--lr/));
  assert.throws(
    () => parseConfig(['--sites-per-round', '2', '--min-sites', '3'], TOKEN),
    invalid(/at least minSites/),
  );
  assert.throws(() => parseConfig(['--bogus'], TOKEN), invalid(/bogus/));
  assert.throws(() => parseConfig(['--site-token', 'nameonly'], TOKEN), invalid(/NAME=TOKEN/));
});

test('when sites per round is a fraction or a count, then the sample size follows it and never drops below minSites', () => {
  const s = (spr: string, minSites: number) =>
    updateSettings({ settings: DEFAULT_SETTINGS, stop: DEFAULT_STOP }, { sitesPerRound: spr, minSites })
      .settings;
  assert.equal(sampleSize(s('0.5', 1), 5), 3); // ceil(2.5)
  assert.equal(sampleSize(s('1.0', 1), 5), 5);
  assert.equal(sampleSize(s('1', 1), 5), 1); // "1" is a count
  assert.equal(sampleSize(s('0.1', 2), 5), 2);
  assert.equal(sampleSize(s('4', 2), 3), 3);
});

test('when admin edge flags are given, then allowed origins are normalized and login limits replace the defaults', () => {
  const d = parseConfig([], TOKEN);
  assert.ok(d !== 'help');
  assert.deepEqual(d.allowedOrigins, [], 'default: only the coordinator’s own origin');
  assert.deepEqual(d.loginLimits, {
    attemptsPerWindow: 10,
    windowMs: 60_000,
    maxFailures: 10,
    lockoutMs: 15 * 60_000,
  });
  const c = parseConfig(
    [
      '--allowed-origin',
      'https://Fedlora.example.org/',
      '--allowed-origin',
      'http://10.0.0.5:8080,https://b.example',
      '--login-attempts-per-minute',
      '5',
      '--login-lockout-failures',
      '3',
      '--login-lockout-minutes',
      '60',
    ],
    { ...TOKEN, FEDLORA_ALLOWED_ORIGINS: 'https://b.example, https://c.example' },
  );
  assert.ok(c !== 'help');
  assert.deepEqual(c.allowedOrigins, [
    'https://fedlora.example.org',
    'http://10.0.0.5:8080',
    'https://b.example',
    'https://c.example',
  ]);
  assert.deepEqual(c.loginLimits, {
    attemptsPerWindow: 5,
    windowMs: 60_000,
    maxFailures: 3,
    lockoutMs: 3_600_000,
  });
  assert.throws(
    () => parseConfig(['--allowed-origin', 'fedlora.example.org'], TOKEN),
    invalid(/--allowed-origin/),
  );
  assert.throws(
    () => parseConfig(['--allowed-origin', 'https://x.example/console'], TOKEN),
    invalid(/--allowed-origin/),
  );
  assert.throws(
    () => parseConfig(['--login-lockout-failures', '0'], TOKEN),
    invalid(/--login-lockout-failures/),
  );
  assert.throws(
    () => parseConfig(['--login-attempts-per-minute', 'many'], TOKEN),
    invalid(/--login-attempts-per-minute/),
  );
});

test('when update-bound flags are given, then they land in the settings; by default the bounds are derived', () => {
  const d = parseConfig([], TOKEN);
  assert.ok(d !== 'help');
  assert.deepEqual(
    [d.settings.maxDeltaNorm, d.settings.deltaNormPolicy, d.settings.siteWeights, d.settings.maxSiteWeight],
    [null, 'clip', 'examples', null],
  );
  const c = parseConfig(
    [
      ...['--max-delta-norm', '2.5', '--delta-norm-policy', 'reject'],
      ...['--site-weights', 'equal', '--max-site-weight', '500'],
    ],
    TOKEN,
  );
  assert.ok(c !== 'help');
  assert.deepEqual(
    [c.settings.maxDeltaNorm, c.settings.deltaNormPolicy, c.settings.siteWeights, c.settings.maxSiteWeight],
    [2.5, 'reject', 'equal', 500],
  );
  const auto = parseConfig(['--max-delta-norm', 'auto', '--max-site-weight', 'auto'], TOKEN);
  assert.ok(auto !== 'help');
  assert.deepEqual([auto.settings.maxDeltaNorm, auto.settings.maxSiteWeight], [null, null]);
  assert.throws(() => parseConfig(['--max-delta-norm', '0'], TOKEN), invalid(/--max-delta-norm/));
  assert.throws(() => parseConfig(['--delta-norm-policy', 'drop'], TOKEN), invalid(/--delta-norm-policy/));
  assert.throws(() => parseConfig(['--site-weights', 'sqrt'], TOKEN), invalid(/--site-weights/));
  assert.throws(() => parseConfig(['--max-site-weight', '0.5'], TOKEN), invalid(/--max-site-weight/));
  // the same validator takes PUT /api/settings: null or "auto" derive the value again
  const back = updateSettings(
    { settings: c.settings, stop: DEFAULT_STOP },
    { maxDeltaNorm: null, maxSiteWeight: 'auto' },
  );
  assert.deepEqual([back.settings.maxDeltaNorm, back.settings.maxSiteWeight], [null, null]);
});

test('when site edge flags are given, then the unauthenticated-connection cap and deadline replace the defaults', () => {
  const d = parseConfig([], TOKEN);
  assert.ok(d !== 'help');
  assert.deepEqual(d.connections, { maxPerAddress: 32, authDeadlineMs: 30_000 });
  const c = parseConfig(['--max-unauthenticated-per-address', '500', '--auth-deadline-s', '10'], TOKEN);
  assert.ok(c !== 'help');
  assert.deepEqual(c.connections, { maxPerAddress: 500, authDeadlineMs: 10_000 });
  assert.throws(
    () => parseConfig(['--max-unauthenticated-per-address', '0'], TOKEN),
    invalid(/--max-unauthenticated-per-address/),
  );
  assert.throws(() => parseConfig(['--auth-deadline-s', '1.5'], TOKEN), invalid(/--auth-deadline-s/));
});

test('when observability flags are given, then the metrics token, port and log format are checked and kept', () => {
  const c = parseConfig(['--metrics-port', '9464', '--log-format', 'json'], {
    ...TOKEN,
    FEDLORA_METRICS_TOKEN: 'a-long-enough-metrics-token',
  });
  assert.ok(c !== 'help');
  assert.deepEqual([c.metricsToken, c.metricsPort, c.logFormat], ['a-long-enough-metrics-token', 9464, 'json']);

  const d = parseConfig([], TOKEN);
  assert.ok(d !== 'help');
  assert.deepEqual([d.metricsToken, d.metricsPort, d.logFormat], [undefined, undefined, 'text'], '/metrics off, text lines');
  assert.throws(() => parseConfig(['--metrics-token', 'short'], TOKEN), invalid(/metrics token must be at least 16/));
  assert.throws(() => parseConfig(['--log-format', 'xml'], TOKEN), invalid(/--log-format must be one of text, json/));
  assert.throws(() => parseConfig(['--metrics-port', '70000'], TOKEN), invalid(/--metrics-port/));
});

test('when promotion flags are given, then the policy, metric and tolerance land in the settings; by default every version is promoted', () => {
  const d = parseConfig([], TOKEN);
  assert.ok(d !== 'help');
  assert.deepEqual([d.settings.promotion, d.settings.promotionMetric, d.settings.promotionTolerance], ['always', 'accuracy', 0]);
  const c = parseConfig(['--promotion', 'auto', '--promotion-metric', 'macro_f1', '--promotion-tolerance', '0.01'], TOKEN);
  assert.ok(c !== 'help');
  assert.deepEqual([c.settings.promotion, c.settings.promotionMetric, c.settings.promotionTolerance], ['auto', 'macro_f1', 0.01]);
  assert.throws(() => parseConfig(['--promotion', 'sometimes'], TOKEN), invalid(/^--promotion: must be one of always, auto, never-worse, manual/));
  assert.throws(() => parseConfig(['--promotion-metric', 'f1'], TOKEN), invalid(/^--promotion-metric: must be one of accuracy, macro_f1, loss/));
  assert.throws(() => parseConfig(['--promotion-tolerance=-1'], TOKEN), invalid(/^--promotion-tolerance: must be a number ≥ 0/));
});

test('when federated evaluation is asked for, then --federated-eval, --heldout none and the fed_* promotion metrics parse; --heldout none needs both others', () => {
  const c = parseConfig(['--federated-eval', '--heldout', 'none', '--labels', 'ham,spam', '--promotion-metric', 'fed_worst_site_accuracy'], TOKEN);
  assert.ok(c !== 'help');
  assert.deepEqual([c.federatedEval, c.heldout, c.labels, c.settings.promotionMetric], [true, 'none', ['ham', 'spam'], 'fed_worst_site_accuracy']);
  const plain = parseConfig([], TOKEN);
  assert.ok(plain !== 'help');
  assert.equal(plain.federatedEval, false);
  assert.throws(() => parseConfig(['--heldout', 'none', '--labels', 'ham,spam'], TOKEN), invalid(/--heldout none needs --federated-eval/));
  assert.throws(() => parseConfig(['--heldout', 'none', '--federated-eval'], TOKEN), invalid(/--labels/));
});

test('when TLS files are given, then both are needed and they land in the config (flags or environment)', () => {
  const c = parseConfig(['--tls-cert', 'cert.pem', '--tls-key', 'key.pem'], TOKEN);
  assert.ok(c !== 'help');
  assert.deepEqual(c.tls, { certFile: 'cert.pem', keyFile: 'key.pem' });
  const e = parseConfig([], { ...TOKEN, FEDLORA_TLS_CERT: 'c.pem', FEDLORA_TLS_KEY: 'k.pem' });
  assert.ok(e !== 'help');
  assert.deepEqual(e.tls, { certFile: 'c.pem', keyFile: 'k.pem' });
  const plain = parseConfig([], TOKEN);
  assert.ok(plain !== 'help' && plain.tls === undefined);
  assert.throws(() => parseConfig(['--tls-cert', 'cert.pem'], TOKEN), invalid(/both --tls-cert FILE and --tls-key FILE/));
});

test('when --task mlm is given, then it needs --mlm-text, adapts every linear layer and compares loss by default; classification flags are refused with it', () => {
  const c = parseConfig(['--task', 'mlm', '--mlm-text', 'notes.txt', '--head-transform'], TOKEN);
  assert.ok(c !== 'help');
  assert.deepEqual([c.task, c.mlmText, c.headTransform], ['mlm', 'notes.txt', true]);
  assert.deepEqual(c.lora.targetModules, ['query', 'key', 'value', 'attention.output', 'intermediate', 'output']);
  assert.equal(c.settings.promotionMetric, 'loss');
  const chosen = parseConfig(['--task', 'mlm', '--mlm-text', 'notes.txt', '--targets', 'query,value', '--promotion-metric', 'accuracy'], TOKEN);
  assert.ok(chosen !== 'help');
  assert.deepEqual([chosen.lora.targetModules, chosen.settings.promotionMetric], [['query', 'value'], 'accuracy']);
  const plain = parseConfig([], TOKEN);
  assert.ok(plain !== 'help');
  assert.deepEqual([plain.task, plain.headTransform, plain.settings.promotionMetric], ['classification', false, 'accuracy']);
  assert.throws(() => parseConfig(['--task', 'mlm'], TOKEN), invalid(/--task mlm needs --mlm-text/));
  assert.throws(() => parseConfig(['--task', 'summarize'], TOKEN), invalid(/--task must be one of classification, mlm/));
  assert.throws(() => parseConfig(['--task', 'mlm', '--mlm-text', 'n.txt', '--heldout', 'h.csv'], TOKEN), invalid(/--heldout does not apply to --task mlm/));
  assert.throws(() => parseConfig(['--task', 'mlm', '--mlm-text', 'n.txt', '--federated-eval'], TOKEN), invalid(/--federated-eval does not apply/));
  assert.throws(() => parseConfig(['--head-transform'], TOKEN), invalid(/--head-transform needs --task mlm/));
  assert.throws(() => parseConfig(['--mlm-text', 'n.txt'], TOKEN), invalid(/--mlm-text needs --task mlm/));
});
