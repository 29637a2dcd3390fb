// Logging: pino, one child logger per subsystem, never per packet. Three ways out on stdout:
//
//   json     JSON lines (the default; what `jq` and log shippers read)
//   pretty   pino-pretty, for a human at a terminal: chosen by itself when stdout is a TTY, or by --log-format pretty
//   journal  JSON lines with the "<N>" syslog-priority prefix journald reads (SyslogLevelPrefix=, on by default), so
//            `journalctl -p warning` filters by level and `journalctl -o cat` still gives plain JSON lines. Chosen when
//            $JOURNAL_STREAM names stdout (device:inode, as sd_journal_stream_fd(3) documents) and the format is json.
//
// The level comes from --log-level, else the config's log_level, else $TAPBRIDGE_LOG_LEVEL, else info. setLogLevel()
// changes it at runtime for the root logger and every child made so far (pino children copy the level when made, so
// they are tracked through pino's onChild hook, weakly); a reload whose log_level changed calls it (src/state/reload.ts).

import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}

export function isLogFormat(v: unknown): v is LogFormat {
  return typeof v === 'string' && (LOG_FORMATS as readonly string[]).includes(v);
}

/** pino's numeric level -> syslog priority (sd-daemon(3): <3> err, <4> warning, <6> info, <7> debug). */
export function syslogPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2; // fatal: crit
  if (pinoLevel >= 50) return 3; // error: err
  if (pinoLevel >= 40) return 4; // warn: warning
  if (pinoLevel >= 30) return 6; // info
  return 7; // debug, trace
}

/** Prefixes each JSON line with "<N>"; pino writes `{"level":NN,` first, so the level is read from the line's head. */
export function journalStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string): void {
      const m = /^\{"level":(\d+)/.exec(line);
      out.write(`<${syslogPriority(m === null ? 30 : Number(m[1]))}>${line}`);
    },
  };
}

/** Whether $JOURNAL_STREAM ("DEV:INODE") is the file on fd 1, i.e. stdout goes to journald. */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const js = env.JOURNAL_STREAM;
  const m = js === undefined ? null : /^(\d+):(\d+)$/.exec(js);
  if (m === null) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** json or pretty; undefined: pretty on a TTY, else json */
  format?: LogFormat;
  /** where lines go (default stdout); tests pass a collecting stream */
  destination?: DestinationStream;
  /** overrides for detection (tests) */
  isTty?: boolean;
  journal?: boolean;
}

/** The output chosen: pretty when asked for or on a TTY (unless json is asked for), journal under journald, else json. */
export function chooseOutput(format: LogFormat | undefined, isTty: boolean, journal: boolean): 'json' | 'pretty' | 'journal' {
  if (format === 'pretty' || (format === undefined && isTty)) return 'pretty';
  return journal ? 'journal' : 'json';
}

const children: WeakRef<Logger>[] = [];
let root: Logger | null = null;

function track(child: Logger): void {
  // prune now and then so a process that makes many short-lived children keeps this list short
  if (children.length >= 256 && children.length % 256 === 0) {
    for (let i = children.length - 1; i >= 0; i--) if (children[i].deref() === undefined) children.splice(i, 1);
  }
  children.push(new WeakRef(child));
}

/** The level when neither --log-level nor log_level says: $TAPBRIDGE_LOG_LEVEL, else info. */
export function defaultLogLevel(): LogLevel {
  const v = process.env.TAPBRIDGE_LOG_LEVEL;
  return isLogLevel(v) ? v : 'info';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? defaultLogLevel();
  const out = chooseOutput(options.format, options.isTty ?? process.stdout.isTTY === true, options.journal ?? stdoutIsJournal());
  const base = options.destination ?? pino.destination({ fd: 1, sync: true });
  let dest: DestinationStream = base;
  if (out === 'pretty') {
    // CommonJS, loaded only when used; prettyFactory formats one JSON line, synchronously, in this process
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as { prettyFactory: (o: Record<string, unknown>) => (line: string) => string };
    const format = prettyFactory({ colorize: options.isTty ?? process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' });
    dest = { write: (line: string): void => void base.write(format(line)) };
  } else if (out === 'journal') {
    dest = journalStream(base);
  }
  const log = pino({ name: 'tapbridge', level, base: { pid: process.pid }, onChild: track }, dest);
  root = log;
  children.length = 0;
  return log;
}

/** Changes the level of the daemon's logger and all its children at runtime (a reload's log_level). */
export function setLogLevel(level: LogLevel): void {
  if (root !== null) root.level = level;
  for (const ref of children) {
    const c = ref.deref();
    if (c !== undefined) c.level = level;
  }
}

/** A logger that drops everything (tests, check-config). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
