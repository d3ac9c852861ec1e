// One line per event on stderr: ISO timestamp, event name, then key=value fields. Secrets never reach a logger:
// callers pass ids, codes and counts only (tokens and keys are not fields anywhere in the coordinator).

export type LogValue = string | number | boolean | null | undefined;
export type Logger = (event: string, fields?: Record<string, LogValue>) => void;

function formatValue(v: LogValue): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(6);
  const s = String(v);
  return /^[^\s"=]*$/.test(s) && s.length > 0 ? s : JSON.stringify(s);
}

export function formatLogLine(time: Date, event: string, fields: Record<string, LogValue> = {}): string {
  const kv = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${formatValue(v)}`);
  return [time.toISOString(), event, ...kv].join(' ');
}

export function stderrLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return (event, fields) => write(formatLogLine(new Date(), event, fields) + '\n');
}

/** Collects lines in memory (tests assert on them). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = ((event: string, fields?: Record<string, LogValue>) => {
    lines.push(formatLogLine(new Date(0), event, fields));
  }) as Logger & { lines: string[] };
  log.lines = lines;
  return log;
}

export const silentLogger: Logger = () => {};
