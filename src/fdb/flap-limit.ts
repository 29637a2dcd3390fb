// Bridge-wide limit on flap warnings (Linux net/bridge rate-limits its "received packet with own address" and
// move warnings the same way: a few lines, then silence and a count).
//
// Model
//   The FDB already warns at most once per entry per FLAP_WARN_INTERVAL_MS. N MACs flapping between two ports would
//   still give N warnings per interval, so the bridge as a whole gets `max` warnings per window; every further
//   flapping MAC in that window is counted, and the count is handed out once when the window ends (by the next
//   warning attempt, or by the periodic flush from the ageing sweep) for one summary line:
//   "N more flapping MACs suppressed".
//
// Notes on performance
//   Two compares per flap warning attempt (rare: an entry that moved more than FLAP_MOVES times in a second); no
//   allocation, no timer.

export class FlapWarnLimiter {
  private windowStartMs = -Infinity;
  private warned = 0;
  private suppressed = 0;

  constructor(
    /** warnings per window, bridge-wide */
    readonly max: number,
    readonly windowMs: number,
    /** receives the number of warnings suppressed in a window that ended */
    private readonly onSuppressed?: (count: number) => void,
  ) {}

  /** True when one more warning may be logged now; otherwise it is counted as suppressed. */
  allow(nowMs: number): boolean {
    this.flush(nowMs);
    if (this.warned < this.max) {
      this.warned++;
      return true;
    }
    this.suppressed++;
    return false;
  }

  /** Ends the window when it is over: reports its suppressed count (if any) and starts a fresh one. */
  flush(nowMs: number): void {
    if (nowMs - this.windowStartMs < this.windowMs) return;
    const n = this.suppressed;
    this.windowStartMs = nowMs;
    this.warned = 0;
    this.suppressed = 0;
    if (n > 0 && this.onSuppressed !== undefined) this.onSuppressed(n);
  }

  /** Warnings suppressed so far in the current window. */
  get pending(): number {
    return this.suppressed;
  }
}
