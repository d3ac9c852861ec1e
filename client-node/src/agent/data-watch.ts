// Watches a site's data (its --data file, or the folder of files) and reloads it when it changes, so that the next
// round trains on the current data without a restart (continual re-training, issue 20). fs.watch on the folder that
// holds the data (a file replaced by rename keeps being seen) says when to look; a poll of the files' size and mtime
// catches what fs.watch misses (network file systems, some editors). A reload that fails (a malformed row, an unknown
// label, a half-written line) is logged with its cause and changes nothing: the last good dataset stays in use until
// the data is fixed.

import { watch, statSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { describeError } from '@fedlora/shared/errors.ts';
import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { loadSiteData, siteDataFiles, type DataLocation } from './site-data';

export interface DataWatchOptions {
  loc: DataLocation;
  /** reads the data (default loadSiteData); throws on bad data */
  load?: (loc: DataLocation) => LabeledDataset;
  /** more checks of a reloaded dataset (e.g. the federation's labels); throw to refuse it */
  check?: (ds: LabeledDataset) => void;
  /** a reload produced a dataset with other rows than the current one */
  onChange: (next: LabeledDataset, previous: LabeledDataset) => void;
  log: (line: string) => void;
  /** how often the files' size and mtime are compared (default 2 s) */
  pollMs?: number;
  /** how long after a change event the data is read, so a burst of writes is read once (default 200 ms) */
  settleMs?: number;
}

/** size and mtime of each data file: what a poll compares */
function signature(loc: DataLocation): string {
  return siteDataFiles(loc)
    .map((f) => {
      try {
        const s = statSync(f);
        return `${f}\u0000${s.size}\u0000${s.mtimeMs}`;
      } catch {
        return `${f}\u0000missing`;
      }
    })
    .join('\n');
}

function sameRows(a: LabeledDataset, b: LabeledDataset): boolean {
  if (a.examples.length !== b.examples.length) return false;
  return a.examples.every((e, i) => e.text === b.examples[i].text && e.label === b.examples[i].label);
}

export class SiteDataWatch {
  private current: LabeledDataset;
  private seen: string;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private settle: NodeJS.Timeout | null = null;
  /** the last reload error, so that a poll seeing the same broken file does not log it again */
  private lastError: string | null = null;

  /** Reads the data once; throws (FILE_NOT_FOUND, DATA_INVALID…) when it cannot, as a site must not start without. */
  constructor(private readonly o: DataWatchOptions) {
    this.seen = signature(o.loc);
    this.current = this.read();
  }

  get dataset(): LabeledDataset {
    return this.current;
  }

  private read(): LabeledDataset {
    const ds = (this.o.load ?? loadSiteData)(this.o.loc);
    this.o.check?.(ds);
    return ds;
  }

  /** Starts watching; timers and watchers never keep the process alive on their own. */
  start(): void {
    if (this.poll) return;
    const { loc } = this.o;
    let folder: string;
    try {
      folder = statSync(loc.data).isDirectory() ? loc.data : dirname(loc.data);
    } catch {
      folder = dirname(loc.data);
    }
    try {
      this.watcher = watch(folder, { persistent: false }, () => this.soon());
      this.watcher.on('error', (err) => {
        this.o.log(`data watch: ${describeError(err)}; polling every ${(this.o.pollMs ?? 2000) / 1000} s instead`);
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (err) {
      this.o.log(`data watch unavailable (${describeError(err)}); polling every ${(this.o.pollMs ?? 2000) / 1000} s`);
    }
    this.poll = setInterval(() => {
      if (signature(loc) !== this.seen) this.reload();
    }, this.o.pollMs ?? 2000);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poll) clearInterval(this.poll);
    if (this.settle) clearTimeout(this.settle);
    this.poll = this.settle = null;
  }

  private soon(): void {
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      this.settle = null;
      if (signature(this.o.loc) !== this.seen) this.reload();
    }, this.o.settleMs ?? 200);
    this.settle.unref();
  }

  /**
   * Reads the data again now. Returns true when its rows changed (onChange ran), false when they did not or the
   * data could not be read (then the error is logged once and the last good dataset stays).
   */
  reload(): boolean {
    this.seen = signature(this.o.loc);
    let next: LabeledDataset;
    try {
      next = this.read();
    } catch (err) {
      const why = describeError(err);
      if (why !== this.lastError)
        this.o.log(`data reload failed: ${why}; keeping the last good data (${this.current.examples.length} examples)`);
      this.lastError = why;
      return false;
    }
    this.lastError = null;
    if (sameRows(next, this.current)) return false;
    const previous = this.current;
    this.current = next;
    this.o.onChange(next, previous);
    return true;
  }
}
