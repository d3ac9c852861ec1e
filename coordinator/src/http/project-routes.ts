// The projects of a coordinator on the admin API (issue 21): the list (each caller sees the projects it may act on)
// and the creation of a new one (admin only, as ADMIN_ROUTES declares, and audited). A new project starts with no
// sites: POST /projects/<id>/sites enrolls its first ones, with join tokens that name the project.

import type { Project } from '../projects/project';
import type { ProjectHost } from '../projects/project-host';
import { mayUseProject, type Principal } from '../users/auth';
import type { Logger } from '../log';
import type { ProjectRow } from './admin-schemas';
import type { RegisterRoute } from './api';

async function row(p: Project): Promise<ProjectRow> {
  const status = p.federation.status();
  const sites = await p.sites.list();
  return {
    id: p.id,
    namespace: p.namespace,
    modelId: p.model.modelId,
    labels: [...p.model.labels],
    state: status.state,
    strategy: status.strategy,
    currentVersionId: status.currentVersionId,
    sitesEnrolled: sites.filter((s) => s.enrolledAt && !s.revokedAt).length,
  };
}

export function projectRoutes(on: RegisterRoute, d: { projects: ProjectHost; log: Logger }): void {
  on('GET /projects', [], async (_input, _req, res, ctx) => {
    const mine = d.projects.list().filter((p) => mayUseProject(ctx.principal as Principal, p.id));
    res.json(await Promise.all(mine.map(row)));
  });

  on('POST /projects', [], async ({ body }, _req, res, ctx) => {
    ctx.target = body.id;
    ctx.detail = `labels=${body.labels.length}${body.model ? ',model' : ''}${body.heldout ? ',heldout' : ''}`;
    const p = await d.projects.create(body);
    ctx.project = p;
    d.log('project.created', { project: p.id, labels: p.model.labels.length, model: p.model.modelId });
    res.status(201).json(await row(p));
  });
}
