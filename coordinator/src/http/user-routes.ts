// The admin API's user management (issue 21; admin only, as ADMIN_ROUTES declares): list, create, change role,
// disable, reset password, issue an API token. Passwords and tokens are hashed before they reach the store
// (users/password.ts); a token is answered once and never again. Every change is audited by the route table.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';
import { hashPassword, hashUserToken, newUserToken } from '../users/password';
import type { UserStore } from '../users/types';
import type { IssuedToken } from './admin-schemas';
import type { RegisterRoute } from './api';

export function userRoutes(on: RegisterRoute, d: { users: UserStore; log: Logger }): void {
  const existing = async (username: string) => {
    if (!(await d.users.get(username))) throw new FedloraError('NOT_FOUND', `no user ${username}`);
  };

  on('GET /users', [], async (_input, _req, res) => {
    res.json(await d.users.list());
  });

  on('POST /users', [], async ({ body }, _req, res, ctx) => {
    ctx.target = body.username;
    ctx.detail = `role=${body.role}${body.projects ? `,projects=${body.projects.join('+')}` : ''}`;
    const now = new Date().toISOString();
    const user = await d.users.create({
      username: body.username,
      role: body.role,
      disabled: false,
      createdAt: now,
      updatedAt: now,
      passwordHash: body.password === undefined ? null : await hashPassword(body.password),
      tokenHash: null,
      projects: body.projects ?? null,
    });
    d.log('user.created', { user: user.username, role: user.role });
    res.status(201).json(user);
  });

  on('PUT /users/:username', [], async ({ params, body }, _req, res, ctx) => {
    ctx.detail = Object.entries(body)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
      .join(',');
    const user = await d.users.update(params.username, body);
    d.log('user.changed', { user: user.username, role: user.role, disabled: user.disabled });
    res.json(user);
  });

  on('POST /users/:username/password', [], async ({ params, body }, _req, res) => {
    await existing(params.username);
    res.json(await d.users.update(params.username, { passwordHash: await hashPassword(body.password) }));
  });

  // one token per user: issuing a new one ends the old one
  on('POST /users/:username/token', [], async ({ params }, _req, res) => {
    await existing(params.username);
    const token = newUserToken(params.username);
    await d.users.update(params.username, { tokenHash: hashUserToken(token) });
    res.status(201).json({ username: params.username, token } satisfies IssuedToken);
  });
}
