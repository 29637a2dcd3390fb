// Logging: pino JSON lines on stdout, one child logger per subsystem, never per packet.

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.TAPBRIDGE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'tapbridge', level, base: { pid: process.pid } });
}

/** A logger that drops everything (tests, check-config). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
