// The projects one coordinator hosts (issue 21): the default project, built from the coordinator's own flags, and
// the others, each created from a ProjectSpec (POST /api/projects) and remembered in projects.json in the data dir,
// so that a restart opens them again with the same base model, labels, held-out set and settings. A project's files
// live in projects/<id>/ of the data dir; the default project keeps the data dir's own files (data dirs from before
// projects keep working).

import { FedloraError } from '@fedlora/shared/errors.ts';
import { readJson, subStorage, writeJson, type Storage } from '../storage';
import type { Project, ProjectOptions } from './project';
import { baseModelRecord, type BaseModelRecord } from '../app';
import { ProjectSpecSchema, type ProjectSpec } from './project-spec';

/** Builds what a project runs on from its spec (main.ts loads the model and the held-out set; tests use fakes). */
export type ProjectFactory = (
  spec: ProjectSpec,
) => Promise<Omit<ProjectOptions, 'id' | 'storage'> & { /** called once the project is open */ opened?: (p: Project) => void }>;
export type { ProjectSpec };

const FILE = 'projects.json';
/** in projects/<id>/: the base model the project's adapters were trained on */
const BASE_FILE = 'base-model.json';

export class ProjectHost {
  private readonly projects = new Map<string, Project>();
  private specs: ProjectSpec[] = [];
  /** one creation at a time: two POSTs of the same id must not both open it */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly storage: Storage,
    private readonly open: (o: ProjectOptions) => Promise<Project>,
    private readonly factory: ProjectFactory | undefined,
  ) {}

  /**
   * The default project (already open) and every project projects.json names, opened in order. A projects.json
   * that names projects when no factory is given (a cluster, or a test coordinator) is refused: its projects
   * would silently not run.
   */
  static async load(
    storage: Storage,
    defaultProject: Project,
    open: (o: ProjectOptions) => Promise<Project>,
    factory: ProjectFactory | undefined,
  ): Promise<ProjectHost> {
    const host = new ProjectHost(storage, open, factory);
    host.projects.set(defaultProject.id, defaultProject);
    const f = await readJson<{ v: 1; projects: unknown[] }>(storage, FILE);
    if (!f) return host;
    if (f.v !== 1 || !Array.isArray(f.projects))
      throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} has an unknown layout`);
    for (const raw of f.projects) {
      const parsed = ProjectSpecSchema.safeParse(raw);
      if (!parsed.success)
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} holds a project that is not valid: ${parsed.error.issues[0]?.message ?? ''}`);
      await host.openSpec(parsed.data);
      host.specs.push(parsed.data);
    }
    return host;
  }

  get(id: string): Project | undefined {
    return this.projects.get(id);
  }

  list(): Project[] {
    return [...this.projects.values()];
  }

  specOf(id: string): ProjectSpec | undefined {
    return this.specs.find((s) => s.id === id);
  }

  /** Opens a new project and records it in projects.json; CONFLICT when the id is taken. */
  create(spec: ProjectSpec): Promise<Project> {
    const run = this.queue.then(async () => {
      if (this.projects.has(spec.id)) throw new FedloraError('CONFLICT', `a project ${spec.id} exists`);
      const project = await this.openSpec(spec);
      const specs = [...this.specs, spec];
      await writeJson(this.storage, FILE, { v: 1, projects: specs });
      this.specs = specs;
      return project;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private async openSpec(spec: ProjectSpec): Promise<Project> {
    if (!this.factory)
      throw new FedloraError('CONFIG_INVALID', 'this coordinator cannot host more than its default project (cluster mode, or no project factory)');
    const { opened, ...options } = await this.factory(spec);
    const storage = subStorage(this.storage, `projects/${spec.id}`);
    // adapters belong to one base model, as for the default project (app.ts coordinatorIdentity): a project whose
    // model directory now holds other files is refused, naming both, rather than retrained silently on the new base
    const base = baseModelRecord(options.task);
    const recorded = await readJson<BaseModelRecord>(storage, BASE_FILE);
    if (recorded && recorded.sha256 !== base.sha256)
      throw new FedloraError(
        'HASH_MISMATCH',
        `project ${spec.id} holds adapters of base model ${recorded.id} (files sha256 ${recorded.sha256.slice(0, 16)}…), but its model is now ` +
          `${base.id} (files sha256 ${base.sha256.slice(0, 16)}…): serve the base model the project was made with`,
      );
    const project = await this.open({ ...options, id: spec.id, storage });
    if (!recorded) await writeJson(storage, BASE_FILE, base);
    opened?.(project);
    this.projects.set(spec.id, project);
    return project;
  }
}
