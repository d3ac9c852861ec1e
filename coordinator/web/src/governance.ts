// The console's users, roles and audit trail (issue 21): who is logged in, what their role may do (controls a role
// may not use are hidden: the coordinator refuses them with 403 anyway), the Audit table and, for admins, the Users
// table with role changes, disable/enable and password resets.

import type { AuditEntry, PublicUser, Role } from './api';
import { h } from './dom';

const ORDER: Role[] = ['viewer', 'operator', 'admin'];

/** Marks the page with the caller's role: CSS hides [data-needs] controls and row actions it may not use. */
export function applyRole(role: Role): void {
  document.body.dataset.role = role;
  for (const el of document.querySelectorAll<HTMLElement>('[data-needs]'))
    el.hidden = ORDER.indexOf(role) < ORDER.indexOf(el.dataset.needs as Role);
}

/** Newest first: time, actor (role), action, target, outcome, detail. */
export function renderAudit(body: HTMLElement, entries: AuditEntry[]): void {
  body.replaceChildren(
    ...entries.map((e) =>
      h(
        'tr',
        { 'data-seq': e.seq, class: e.outcome === 'ok' ? '' : 'refused' },
        h('td', {}, e.seq),
        h('td', {}, new Date(e.time).toLocaleString()),
        h('td', { 'data-col': 'actor' }, `${e.actor} (${e.role})`),
        h('td', { 'data-col': 'action' }, e.action),
        h('td', { 'data-col': 'target' }, e.target),
        h('td', { 'data-col': 'outcome' }, e.outcome),
        h('td', { class: 'muted' }, e.detail ?? ''),
      ),
    ),
  );
}

export interface UserActions {
  setRole(username: string, role: Role): void;
  setDisabled(username: string, disabled: boolean): void;
  resetPassword(username: string): void;
  issueToken(username: string): void;
}

export function renderUsers(body: HTMLElement, users: PublicUser[], act: UserActions): void {
  body.replaceChildren(
    ...users.map((u) => {
      const role = h('select', { 'data-col': 'role', onchange: (e: Event) => act.setRole(u.username, (e.target as HTMLSelectElement).value as Role) },
        ...ORDER.map((r) => h('option', { value: r, selected: r === u.role }, r)));
      return h(
        'tr',
        { 'data-user': u.username },
        h('td', {}, u.username),
        h('td', {}, role),
        h('td', {}, u.disabled ? 'disabled' : 'active'),
        h('td', {}, [u.hasPassword && 'password', u.hasToken && 'token'].filter(Boolean).join(', ') || '–'),
        h(
          'td',
          {},
          h('button', { type: 'button', class: 'secondary', onclick: () => act.setDisabled(u.username, !u.disabled) }, u.disabled ? 'Enable' : 'Disable'),
          ' ',
          h('button', { type: 'button', class: 'secondary', onclick: () => act.resetPassword(u.username) }, 'Set password'),
          ' ',
          h('button', { type: 'button', class: 'secondary', onclick: () => act.issueToken(u.username) }, 'New token'),
        ),
      );
    }),
  );
}
