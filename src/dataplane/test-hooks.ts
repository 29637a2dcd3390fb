// Test knob of the data plane: TAPBRIDGE_TEST_WORKER_STUCK=<id> makes data worker <id> stuck from the first port table
// that tells it to stop reading a port it reads (a handover's pause, a port moving to another thread): from that
// message on it ignores every message of the main thread, applies and acknowledges nothing, and goes on reading the
// ports it had with its old table, as a worker whose thread hangs in its message handling would. Only an environment
// variable reaches it (no config key); unset or empty: nothing happens. The main thread logs a set knob at warn.

export const WORKER_STUCK_ENV = 'TAPBRIDGE_TEST_WORKER_STUCK';

/** The id of the worker the knob makes stuck, or null when it is unset. */
export function stuckWorkerId(env: NodeJS.ProcessEnv = process.env): number | null {
  const raw = env[WORKER_STUCK_ENV];
  if (raw === undefined || raw === '') return null;
  const id = Number(raw);
  if (!Number.isInteger(id) || id < 1 || id > 63) throw new Error(`${WORKER_STUCK_ENV} must be a data worker id 1..63, got ${JSON.stringify(raw)}`);
  return id;
}
