// Issue 23 defect 10: `npm start` put every site's join token on the coordinator's command line, where any user of
// the machine reads it (ps, /proc/<pid>/cmdline). The processes it launches now carry no token in argv; the tokens
// travel in their environment, and the coordinator and site agent still read every one of them from there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../coordinator/src/config';
import { parse as parseJoin } from '../client-node/src/commands/join';
import { coordinatorCommand, siteJoinCommand, siteRunCommand } from '../scripts/start-commands';

const ADMIN = 'admin-token-start-0123456789';
const SITES = [
  { name: 'site-a', token: 'site-a.join-token-aaaaaaaaaaaaaaaa' },
  { name: 'site-b', token: 'site-b.join-token-bbbbbbbbbbbbbbbb' },
];
const SECRETS = [ADMIN, ...SITES.map((s) => s.token)];

const leaks = (args: string[]) => args.filter((a) => SECRETS.some((secret) => a.includes(secret)));

test('when npm start builds the coordinator command, then no token is in argv and the coordinator still gets them all', () => {
  const cmd = coordinatorCommand({
    repo: '/repo',
    port: 8123,
    dataDir: '/run/coordinator',
    rounds: 3,
    minSites: 2,
    maxSteps: '12',
    lr: '0.002',
    maxLength: '64',
    strategy: 'fedavg',
    encoding: 'fp32',
    heldoutLimit: '100',
    adminToken: ADMIN,
    siteTokens: SITES,
  });
  assert.deepEqual(leaks(cmd.args), []);
  assert.ok(!cmd.args.includes('--site-token') && !cmd.args.includes('--admin-token'));
  // the coordinator parses exactly what it is started with: argv after its bin, plus this environment
  const config = parseConfig(cmd.args.slice(1), cmd.env);
  assert.ok(config !== 'help');
  assert.equal(config.adminToken, ADMIN);
  assert.deepEqual(config.presetSites, SITES);
  assert.deepEqual([config.port, config.heldoutLimit, config.stop.rounds], [8123, 100, 3]);
});

test('when npm start builds the site agent commands, then no token is in argv and join still reads its own', () => {
  const joinCmd = siteJoinCommand({
    repo: '/repo',
    coordinator: 'http://127.0.0.1:8123',
    data: '/run/sites/site-a.csv',
    stateDir: '/run/site-a',
    token: SITES[0].token,
  });
  assert.deepEqual(leaks(joinCmd.args), []);
  assert.equal(joinCmd.args[1], 'join');
  const options = parseJoin(joinCmd.args.slice(2), joinCmd.env);
  assert.ok(options !== 'help');
  assert.equal(options.token, SITES[0].token);

  const runCmd = siteRunCommand({ repo: '/repo', stateDir: '/run/site-a' });
  assert.deepEqual(leaks(runCmd.args), []);
  assert.deepEqual(runCmd.env, {}, 'run authenticates with its keys: no token at all');
});
