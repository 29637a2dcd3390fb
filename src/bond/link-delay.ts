// updelay / downdelay for the bond modes that use every member (balance-slb, 802.3ad), as the Linux bonding driver
// applies them in every mode: a member whose carrier returns is used only after `updelay` ms of carrier, and one whose
// carrier is lost stays in use for `downdelay` ms (a flap shorter than that is not a failure). A netdev that vanishes
// is down at once. Active-backup has its own machine (active-backup.ts), with the same timing.
//
// Per member: `usable` is what the bond acts on; `carrier` what was last reported. One timer per member at most.

import type { Clock } from './active-backup.js';

export class LinkDelay {
  readonly usable: boolean[];
  private readonly carrierUp: boolean[];
  private readonly timers: unknown[];
  private readonly updelayMs: number;
  private readonly downdelayMs: number;
  private readonly clock: Clock;
  private readonly onChange: (i: number, usable: boolean, source: string) => void;

  constructor(count: number, updelayMs: number, downdelayMs: number, clock: Clock, onChange: (i: number, usable: boolean, source: string) => void) {
    this.usable = new Array<boolean>(count).fill(false);
    this.carrierUp = new Array<boolean>(count).fill(false);
    this.timers = new Array<unknown>(count).fill(null);
    this.updelayMs = updelayMs;
    this.downdelayMs = downdelayMs;
    this.clock = clock;
    this.onChange = onChange;
  }

  /**
   * Carrier of member i as reported now. The first carrier of a member that was never usable waits out updelay too,
   * unless `immediate` (a member the previous daemon was using, --takeover).
   */
  carrier(i: number, up: boolean, source: string, immediate = false): void {
    if (this.carrierUp[i] === up) return;
    this.carrierUp[i] = up;
    this.cancel(i);
    if (this.usable[i] === up) return; // a flap within the delay: nothing changes
    const delay = immediate ? 0 : up ? this.updelayMs : this.downdelayMs;
    if (delay === 0) {
      this.set(i, up, source);
      return;
    }
    this.timers[i] = this.clock.setTimer(() => {
      this.timers[i] = null;
      this.set(i, up, `${source} (after ${up ? 'updelay' : 'downdelay'})`);
    }, delay);
  }

  /** Member i's netdev is gone: unusable at once. */
  vanished(i: number, source: string): void {
    this.carrierUp[i] = false;
    this.cancel(i);
    if (this.usable[i]) this.set(i, false, source);
  }

  /** A member waiting out a delay: 'going up' / 'going down', else null. */
  pending(i: number): 'going up' | 'going down' | null {
    if (this.timers[i] === null) return null;
    return this.carrierUp[i] ? 'going up' : 'going down';
  }

  private set(i: number, up: boolean, source: string): void {
    this.usable[i] = up;
    this.onChange(i, up, source);
  }

  private cancel(i: number): void {
    if (this.timers[i] !== null) this.clock.clearTimer(this.timers[i]);
    this.timers[i] = null;
  }

  stop(): void {
    for (let i = 0; i < this.timers.length; i++) this.cancel(i);
  }
}
