// The coordinator's log: callers see one function, (event, fields), and pino writes each call as one line on
// stderr, a JSON object (`--log-format json`: {level, time, pid, hostname, msg: event, ...fields}) or today's
// `time event k=v` text (the default: `npm start` and the tests that read the coordinator's output). Both formats
// pass through pino's redact, so a token given as a field by mistake is written as "[redacted]", never in clear.
// A request or round id in the async context (withLogContext) is added to every line logged inside it.

import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, stdTimeFunctions, type DestinationStream, type Level } from 'pino';

export type LogValue = string | number | boolean | null | undefined;
export type Logger = (event: string, fields?: Record<string, LogValue>) => void;

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Field names whose values are secrets: the admin token, join tokens, the metrics token, session cookies and
 * authorization headers. Callers pass ids and codes only; this is the net under that rule (also one level down, for
 * a headers object).
 */
export const REDACTED_FIELDS = [
  'token',
  'adminToken',
  'joinToken',
  'metricsToken',
  'authorization',
  'cookie',
  'set-cookie',
  'session',
  'password',
  'secret',
] as const;
export const REDACTED = '[redacted]';
const REDACT_PATHS = REDACTED_FIELDS.flatMap((k) => [`["${k}"]`, `*["${k}"]`]);

/** keys pino writes itself: a field of the same name would make a second key in the JSON object */
const RESERVED = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

const context = new AsyncLocalStorage<Record<string, LogValue>>();

/** Runs `fn` with `fields` (say a requestId) added to every line logged inside it, across awaits and callbacks. */
export function withLogContext<T>(fields: Record<string, LogValue>, fn: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, fn);
}

/** A logger that adds `fields` (say a roundId) to each line, after the caller's own. */
export function withFields(log: Logger, fields: Record<string, LogValue>): Logger {
  return (event, f) => log(event, { ...f, ...fields });
}

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

/** pino's JSON line back to `time event k=v` (after redaction, so the text format hides the same fields) */
function textLine(json: string): string {
  const { level: _level, time, pid: _pid, hostname: _host, msg, ...fields } = JSON.parse(json) as Record<
    string,
    LogValue
  >;
  return formatLogLine(new Date(String(time)), String(msg), fields) + '\n';
}

/** failures are `error` so that a JSON pipeline can alert on level alone; everything else is `info` */
const levelOf = (event: string): Level => (/(\.|_)(error|failed)$/.test(event) ? 'error' : 'info');

export interface LoggerOptions {
  format?: LogFormat;
  /** where each line goes (default: stderr, written synchronously so that a killed process loses no line) */
  write?: (line: string) => void;
  /** the clock of the `time` field (tests fix it) */
  now?: () => Date;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const write = o.write ?? ((l: string) => void process.stderr.write(l));
  const format = o.format ?? 'text';
  const dest: DestinationStream = { write: format === 'json' ? write : (l) => write(textLine(l)) };
  const now = o.now;
  const logger = pino(
    {
      level: 'info',
      timestamp: now ? () => `,"time":"${now().toISOString()}"` : stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    dest,
  );
  return (event, fields = {}) => {
    const line: Record<string, LogValue> = {};
    for (const [k, v] of Object.entries({ ...fields, ...context.getStore() }))
      if (v !== undefined) line[RESERVED.has(k) ? `${k}_` : k] = v;
    logger[levelOf(event)](line, event);
  };
}

/** Text lines on stderr (or to `write`), as before pino; kept for callers of the package's entry. */
export function stderrLogger(write?: (line: string) => void): Logger {
  return createLogger({ format: 'text', write });
}

/** Collects text lines in memory, time fixed at 0 (tests assert on them); redacted like every other logger. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({
    format: 'text',
    write: (l) => void lines.push(l.replace(/\n$/, '')),
    now: () => new Date(0),
  }) as Logger & { lines: string[] };
  log.lines = lines;
  return log;
}

export const silentLogger: Logger = () => {};
