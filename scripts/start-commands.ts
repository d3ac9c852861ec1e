// The command lines `npm start` (scripts/start.ts) launches: the coordinator and each site agent, as argv plus extra
// environment. Secrets (the admin token, the sites' join tokens) go only into the environment: argv is visible to
// every user of the machine (ps, /proc/<pid>/cmdline), a process's environment only to its owner and root.

import { join } from 'node:path';

export interface ChildCommand {
  /** arguments after the node executable */
  args: string[];
  /** added to the parent's environment */
  env: Record<string, string>;
}

export interface CoordinatorCommandOptions {
  repo: string;
  port: number;
  dataDir: string;
  rounds: number;
  minSites: number;
  maxSteps: string;
  lr: string;
  maxLength: string;
  strategy: string;
  encoding: string;
  heldoutLimit?: string;
  adminToken: string;
  /** sites created at startup with these join tokens (the coordinator's FEDLORA_SITE_TOKENS) */
  siteTokens: { name: string; token: string }[];
}

export function coordinatorCommand(o: CoordinatorCommandOptions): ChildCommand {
  return {
    args: [
      join(o.repo, 'coordinator/bin/fedlora-coordinator.js'),
      ...['--port', String(o.port), '--host', '127.0.0.1', '--data-dir', o.dataDir],
      ...['--rounds', String(o.rounds), '--min-sites', String(o.minSites), '--sites-per-round', '1.0'],
      ...['--max-steps', o.maxSteps, '--lr', o.lr, '--max-length', o.maxLength],
      ...['--strategy', o.strategy, '--encoding', o.encoding],
      ...(o.heldoutLimit ? ['--heldout-limit', o.heldoutLimit] : []),
    ],
    env: {
      FEDLORA_ADMIN_TOKEN: o.adminToken,
      FEDLORA_SITE_TOKENS: o.siteTokens.map((s) => `${s.name}=${s.token}`).join(','),
    },
  };
}

/** `fedlora-site join`: the one-time join token travels as FEDLORA_TOKEN. */
export function siteJoinCommand(o: {
  repo: string;
  coordinator: string;
  data: string;
  stateDir: string;
  token: string;
}): ChildCommand {
  return {
    args: [
      join(o.repo, 'client-node/bin/fedlora-site.js'),
      ...['join', '--coordinator', o.coordinator, '--data', o.data, '--state-dir', o.stateDir],
    ],
    env: { FEDLORA_TOKEN: o.token },
  };
}

/** `fedlora-site run`: the site authenticates with the keys in its state dir, so it needs no token at all. */
export function siteRunCommand(o: { repo: string; stateDir: string }): ChildCommand {
  return {
    args: [join(o.repo, 'client-node/bin/fedlora-site.js'), 'run', '--state-dir', o.stateDir],
    env: {},
  };
}
