// Active-backup bonding policy for two members (Linux drivers/net/bonding, mode 1), without I/O.
//
// Member link states, as in the bonding driver:
//
//            carrier lost, downdelay > 0               downdelay expired
//     UP  ------------------------------->  FAIL  ------------------------->  DOWN
//      ^  <------- carrier back --------     |                                |  ^
//      |                                     +---- (downdelay 0: at once) ----+  |
//      |        updelay expired                                                  |
//     BACK <----------------------------------- carrier back, updelay > 0 -------+
//      +------------------- carrier lost ----------------------------------------->
//
// A member that goes DOWN counts one link failure. When no member is active, a member coming BACK
// is made active at once (the driver's "making interface the new active one N ms earlier").
//
// Active member selection (bond_select_active_slave):
//   - no member UP: no active member, the bond is down;
//   - the active member stays while UP, except that `primary_reselect: always` switches back to the
//     primary as soon as it is UP; `better` would switch when the primary has a better speed/duplex,
//     which veth and TAP do not report, so it behaves like `failure` (switch only when the active fails);
//   - otherwise the primary if UP, else the other UP member.
// setActive() forces a member (ovs-appctl bond/set-active-member); it holds until the next failure or
// reselection event.
//
// Time is injected (now, setTimer, clearTimer) so tests drive it without waiting.

export type PrimaryReselect = 'always' | 'better' | 'failure';
export type MemberLink = 'up' | 'fail' | 'down' | 'back';

export interface ActiveBackupOptions {
  members: [string, string];
  primary: string;
  primaryReselect: PrimaryReselect;
  updelayMs: number;
  downdelayMs: number;
}

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface FailoverEvent {
  /** previous active member index, or -1 */
  from: number;
  /** new active member index, or -1 (bond down) */
  to: number;
  reason: string;
  /** ms from the first sign of the link change to this decision (downdelay/updelay included) */
  detectionMs: number;
  /** how long the new active member has been up (ms); Infinity when it was up before this run's events */
  newActiveUpForMs: number;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class ActiveBackup {
  readonly members: [string, string];
  readonly primary: number;
  readonly primaryReselect: PrimaryReselect;
  readonly updelayMs: number;
  readonly downdelayMs: number;
  readonly link: MemberLink[] = ['down', 'down'];
  readonly linkFailures = [0, 0];
  /** carrier as last reported, independent of delays */
  private readonly carrier = [false, false];
  private readonly timers: unknown[] = [null, null];
  /** when the pending transition of each member began */
  private readonly since = [0, 0];
  /** when each member last became UP */
  private readonly upAtMs = [-Infinity, -Infinity];
  active = -1;
  private readonly clock: Clock;
  private readonly onChange: (e: FailoverEvent) => void;

  constructor(opts: ActiveBackupOptions, onChange: (e: FailoverEvent) => void, clock: Clock = realClock) {
    this.members = opts.members;
    const p = opts.members.indexOf(opts.primary);
    if (p < 0) throw new Error(`primary ${opts.primary} is not a member`);
    this.primary = p;
    this.primaryReselect = opts.primaryReselect;
    this.updelayMs = opts.updelayMs;
    this.downdelayMs = opts.downdelayMs;
    this.onChange = onChange;
    this.clock = clock;
  }

  index(name: string): number {
    return this.members.indexOf(name);
  }

  get isUp(): boolean {
    return this.active >= 0;
  }

  /** Carrier report for member i (rtnetlink event, miimon poll, or the netdev vanishing). */
  carrierChanged(i: number, up: boolean, source: string): void {
    if (this.carrier[i] === up) return;
    this.carrier[i] = up;
    const now = this.clock.now();
    const state = this.link[i];
    if (!up) {
      if (state === 'up') {
        this.since[i] = now;
        if (this.downdelayMs > 0) {
          this.link[i] = 'fail';
          this.arm(i, this.downdelayMs, () => this.markDown(i, `${source}: carrier lost (after downdelay)`));
        } else {
          this.markDown(i, `${source}: carrier lost`);
        }
      } else if (state === 'back') {
        this.cancel(i);
        this.link[i] = 'down';
      }
      return;
    }
    if (state === 'fail') {
      this.cancel(i);
      this.link[i] = 'up';
      return;
    }
    if (state === 'down') {
      this.since[i] = now;
      if (this.updelayMs > 0 && this.active >= 0) {
        this.link[i] = 'back';
        this.arm(i, this.updelayMs, () => this.markUp(i, `${source}: carrier back (after updelay)`));
      } else {
        this.markUp(i, `${source}: carrier back`);
      }
    }
  }

  /** Member i's netdev was deleted: down at once, whatever downdelay says. */
  vanished(i: number): void {
    this.carrier[i] = false;
    const state = this.link[i];
    this.cancel(i);
    if (state === 'up' || state === 'fail') {
      if (state === 'up') this.since[i] = this.clock.now();
      this.markDown(i, 'netdev deleted');
    } else {
      this.link[i] = 'down';
    }
  }

  private arm(i: number, ms: number, fn: () => void): void {
    this.cancel(i);
    this.timers[i] = this.clock.setTimer(() => {
      this.timers[i] = null;
      fn();
    }, ms);
  }

  private cancel(i: number): void {
    if (this.timers[i] !== null) this.clock.clearTimer(this.timers[i]);
    this.timers[i] = null;
  }

  private markDown(i: number, reason: string): void {
    this.link[i] = 'down';
    this.linkFailures[i]++;
    this.reselect(reason, i);
  }

  private markUp(i: number, reason: string): void {
    this.link[i] = 'up';
    this.upAtMs[i] = this.clock.now();
    this.reselect(reason, i);
  }

  /** Chooses the active member after a change of member i. */
  private reselect(reason: string, changed: number): void {
    const cur = this.active;
    let next = cur;
    const up = (i: number): boolean => i >= 0 && this.link[i] === 'up';
    if (!up(cur)) {
      next = up(this.primary) ? this.primary : up(1 - this.primary) ? 1 - this.primary : -1;
      // no member up: one still waiting out its updelay is made active at once (bond_find_best_slave)
      const back = this.link[0] === 'back' ? 0 : this.link[1] === 'back' ? 1 : -1;
      if (next < 0 && back >= 0) {
        this.cancel(back);
        this.link[back] = 'up';
        this.upAtMs[back] = this.clock.now();
        next = back;
      }
    } else if (this.primaryReselect === 'always' && up(this.primary)) {
      next = this.primary;
    }
    if (next !== cur) this.switchTo(next, reason, this.clock.now() - this.since[changed]);
  }

  private switchTo(next: number, reason: string, detectionMs: number): void {
    const from = this.active;
    this.active = next;
    const newActiveUpForMs = next >= 0 ? this.clock.now() - this.upAtMs[next] : 0;
    this.onChange({ from, to: next, reason, detectionMs, newActiveUpForMs });
  }

  /** Forces member i active (it must be up). Returns an error message or null. */
  setActive(i: number): string | null {
    if (this.link[i] !== 'up') return `${this.members[i]} is not up (${this.link[i]})`;
    if (this.active !== i) this.switchTo(i, 'set-active', 0);
    return null;
  }

  /** Cancels pending timers (shutdown). */
  stop(): void {
    this.cancel(0);
    this.cancel(1);
  }
}
