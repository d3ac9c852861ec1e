// Where the coordinator keeps its state: a tiny key → bytes interface, on disk (atomic: temp file + fsync + rename,
// then fsync of the directory, so a crash leaves either the old or the new file, never a torn one) or in memory.

import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';

export interface Storage {
  /** null when absent */
  read(name: string): Promise<Uint8Array | null>;
  /** atomic replace */
  write(name: string, data: Uint8Array | string): Promise<void>;
  /**
   * appends to the file (created if absent) and returns once the bytes are durable. A crash may leave a torn tail:
   * readers of an appended file must tolerate an incomplete last record (sites/registry.ts does)
   */
  append(name: string, data: Uint8Array | string): Promise<void>;
  /** a description for logs ("dir /x" or "memory") */
  readonly where: string;
}

/** Names are relative paths of plain segments; they come from our own code, this only guards against slips. */
function checkName(name: string): void {
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(name) || name.split('/').includes('..'))
    throw new FedloraError('INTERNAL', `storage: bad name ${JSON.stringify(name)}`);
}

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  // the rename itself is durable only once the directory entry is flushed
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export class DirStorage implements Storage {
  readonly where: string;
  constructor(private readonly root: string) {
    this.where = `dir ${root}`;
  }

  async read(name: string): Promise<Uint8Array | null> {
    checkName(name);
    try {
      return new Uint8Array(await readFile(join(this.root, name)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new FedloraError('FILE_UNREADABLE', `cannot read ${join(this.root, name)}`, { cause: err });
    }
  }

  async write(name: string, data: Uint8Array | string): Promise<void> {
    checkName(name);
    await writeFileAtomic(join(this.root, name), data);
  }

  async append(name: string, data: Uint8Array | string): Promise<void> {
    checkName(name);
    const path = join(this.root, name);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'a', 0o600);
    const created = (await fh.stat()).size === 0;
    try {
      await fh.appendFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // a new file's directory entry is durable only once the directory is flushed
    if (created) {
      const dir = await open(dirname(path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }
}

export class MemoryStorage implements Storage {
  readonly where = 'memory';
  readonly files = new Map<string, Uint8Array>();
  /** appends since the last read or write of each file, joined lazily: copying the whole file per append would be
   * quadratic in the number of appends */
  private readonly tails = new Map<string, Uint8Array[]>();

  async read(name: string): Promise<Uint8Array | null> {
    checkName(name);
    this.join(name);
    const b = this.files.get(name);
    return b ? new Uint8Array(b) : null;
  }

  async write(name: string, data: Uint8Array | string): Promise<void> {
    checkName(name);
    this.tails.delete(name);
    this.files.set(name, typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data));
  }

  async append(name: string, data: Uint8Array | string): Promise<void> {
    checkName(name);
    if (!this.files.has(name)) this.files.set(name, new Uint8Array(0));
    const tail = this.tails.get(name) ?? [];
    tail.push(typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data));
    this.tails.set(name, tail);
  }

  private join(name: string): void {
    const tail = this.tails.get(name);
    if (!tail) return;
    this.tails.delete(name);
    const parts = [this.files.get(name) ?? new Uint8Array(0), ...tail];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    this.files.set(name, out);
  }
}

/**
 * A folder of another Storage: every name gets `prefix/` in front. A project's files (issue 21) live in
 * projects/<id>/ of the coordinator's data dir this way, with the same atomic writes and appends.
 */
export function subStorage(parent: Storage, prefix: string): Storage {
  checkName(prefix);
  const at = (name: string) => `${prefix}/${name}`;
  return {
    where: `${parent.where}/${prefix}`,
    read: (name) => parent.read(at(name)),
    write: (name, data) => parent.write(at(name), data),
    append: (name, data) => parent.append(at(name), data),
  };
}

export async function readJson<T>(s: Storage, name: string): Promise<T | null> {
  const b = await s.read(name);
  if (!b) return null;
  try {
    return JSON.parse(new TextDecoder().decode(b)) as T;
  } catch (err) {
    throw new FedloraError('FILE_CORRUPT', `${s.where}: ${name} is not valid JSON`, { cause: err });
  }
}

export function writeJson(s: Storage, name: string, value: unknown): Promise<void> {
  return s.write(name, JSON.stringify(value, null, 2) + '\n');
}
