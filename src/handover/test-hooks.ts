// Test knob of the takeover: TAPBRIDGE_TAKEOVER_DELAY_MS (0..120000) makes the new daemon block that long after it
// adopted every fd and replayed the state, before it asks the old daemon to stop, as a slow start-up would (a first
// data-worker sync that waits, records that each sync again). The wait blocks the event loop (Atomics.wait), as
// those syncs do. Unset or 0: nothing happens. A set knob is logged at warn.

import type { Logger } from '../log.js';

export const TAKEOVER_DELAY_ENV = 'TAPBRIDGE_TAKEOVER_DELAY_MS';

export function takeoverTestDelayMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[TAKEOVER_DELAY_ENV];
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0 || ms > 120_000) throw new Error(`${TAKEOVER_DELAY_ENV} must be an integer 0..120000 (ms), got ${JSON.stringify(raw)}`);
  return ms;
}

export async function takeoverTestDelay(log: Logger): Promise<void> {
  const ms = takeoverTestDelayMs();
  if (ms === 0) return;
  log.warn({ delay_ms: ms }, `${TAKEOVER_DELAY_ENV}: blocking before the old daemon is asked to stop (a test knob)`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
