// Exception boundaries of the daemon's callbacks: link monitor, timers (tick, miimon, announcements, port re-opens).
//
// An exception thrown from a libuv callback reaches process 'uncaughtException' (or kills the process), so every
// callback the daemon registers runs inside guard.wrap(context, fn). A caught error is logged with its context (at
// most once per context every LOG_EVERY_MS, with the number of errors meanwhile) and counted. Then the state is
// checked (the soundness check the daemon gives: the FDBs' bookkeeping): when it is still sound the daemon keeps
// running; when it is not, or the error is an InvariantError, that is a real invariant breach and onFatal runs
// (the daemon stops its ports, removes the control socket and exits 70).

import type { Logger } from '../log.js';

/** Thrown where continuing would forward with corrupted state. */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

const LOG_EVERY_MS = 10_000;

export class CallbackGuard {
  /** Exceptions caught at the boundaries, by context. */
  readonly errors = new Map<string, number>();
  private readonly lastLogMs = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private fatal = false;

  constructor(
    private readonly log: Logger,
    /** null when the state is sound, else what is broken */
    private readonly soundness: () => string | null,
    private readonly onFatal: (err: unknown, context: string) => void,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** fn wrapped so that an exception is caught, logged with `context`, and judged. */
  wrap<A extends unknown[]>(context: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        this.caught(context, err);
      }
    };
  }

  /** Runs fn once inside the boundary. */
  run(context: string, fn: () => void): void {
    this.wrap(context, fn)();
  }

  private caught(context: string, err: unknown): void {
    this.errors.set(context, (this.errors.get(context) ?? 0) + 1);
    let broken: string | null = err instanceof InvariantError ? err.message : null;
    if (broken === null) {
      try {
        broken = this.soundness();
      } catch (checkErr) {
        broken = `soundness check failed: ${(checkErr as Error).message}`;
      }
    }
    if (broken !== null) {
      if (this.fatal) return;
      this.fatal = true;
      this.log.fatal({ err, context, invariant: broken }, 'invariant breached after an exception; shutting down');
      this.onFatal(err, context);
      return;
    }
    const now = this.nowMs();
    const last = this.lastLogMs.get(context) ?? -Infinity;
    if (now - last < LOG_EVERY_MS) {
      this.suppressed.set(context, (this.suppressed.get(context) ?? 0) + 1);
      return;
    }
    this.lastLogMs.set(context, now);
    const suppressed = this.suppressed.get(context) ?? 0;
    this.suppressed.set(context, 0);
    this.log.error({ err, context, errors: this.errors.get(context), suppressed_since_last_log: suppressed },
      'exception in a daemon callback; state checked and sound, carrying on (logged at most every 10 s per context)');
  }
}
