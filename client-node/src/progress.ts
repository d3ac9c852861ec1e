// Progress bars on stderr (stdout is kept for results and --json), via cli-progress; plain lines when not a TTY.

import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** cli-progress format for a TTY (default: training's, with loss and samples/s) */
  format?: string;
}

export function progressBar(label: string, total: number, quiet = false, opts: ProgressOptions = {}): Progress {
  if (quiet) return { update() {}, stop() {} };
  if (!process.stderr.isTTY) {
    // CI logs and child processes: one line every ~10% instead of carriage-return animation
    let lastDecile = -1;
    return {
      update(done, fields) {
        const decile = Math.floor((10 * done) / Math.max(1, total));
        if (decile === lastDecile && done !== total) return;
        lastDecile = decile;
        const extra = fields ? ' ' + Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ') : '';
        process.stderr.write(`${label} ${done}/${total}${extra}\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: opts.format ?? `${label} [{bar}] {value}/{total} | loss {loss} | {sps} samples/s | eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { loss: '-', sps: '-', tps: '-' });
  return { update: (done, fields) => bar.update(done, fields), stop: () => bar.stop() };
}
