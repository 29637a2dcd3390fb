// balance-slb policy (source load balancing, as in XenServer and Open vSwitch's ofproto/bond.c), without I/O.
//
// Model:
//   - Transmit: each (source MAC, VLAN) hashes (hash.ts slbKey) to one of BUCKETS buckets; each bucket is
//     assigned to one enabled member and carries the bytes sent through it since the last rebalance.
//     A bucket with no member, or whose member is disabled, is given to the enabled member with the least
//     load at the moment it is needed (assign()).
//   - Rebalance (every rebalance_interval, or `bond rebalance`): member loads are the sums of their buckets;
//     while the most loaded member carries more than the least loaded one plus 10% and some bucket of it is
//     lighter than the difference, the heaviest such bucket moves (each move strictly lowers the maximum).
//     Loads then halve, so older traffic weighs less (OVS does the same). Returns the buckets moved: their
//     MACs are announced on their new member.
//   - Failover: a member that is disabled loses every bucket at once (each to the least loaded enabled
//     member); the caller announces the MACs of those buckets on their new members.
//   - Receive: broadcast and multicast are accepted only on the `active` member (the first enabled member,
//     kept while it stays enabled, as OVS's active member); a frame whose source MAC is one of ours (learned
//     behind a local port) is dropped by the caller on every member.
//
// The policy only reads and writes its typed arrays: choose() is the per-frame step (no allocation).

export const BUCKETS = 256;
const NONE = -1;

export class SlbPolicy {
  readonly memberCount: number;
  /** member of each bucket, -1 when none */
  readonly bucketMember = new Int8Array(BUCKETS).fill(NONE);
  /** bytes sent through each bucket since the last halving */
  readonly bucketBytes = new Float64Array(BUCKETS);
  readonly enabled: boolean[];
  /** member that accepts broadcast and multicast, -1 when none is enabled */
  active = NONE;
  /** buckets moved by rebalancing (not by failover) */
  rebalanceMoves = 0;
  /** buckets moved because their member was disabled */
  failoverMoves = 0;
  /** bytes sent per member since the start (metrics) */
  readonly txBytes: Float64Array;

  constructor(memberCount: number) {
    this.memberCount = memberCount;
    this.enabled = new Array<boolean>(memberCount).fill(false);
    this.txBytes = new Float64Array(memberCount);
  }

  /** Member for a frame with key `hash` (slbKey) of `len` bytes, or -1 when no member is enabled. */
  choose(hash: number, len: number): number {
    const b = hash & (BUCKETS - 1);
    let m = this.bucketMember[b];
    if (m < 0 || !this.enabled[m]) m = this.assign(b);
    if (m >= 0) {
      this.bucketBytes[b] += len;
      this.txBytes[m] += len;
    }
    return m;
  }

  /** The member bucket b would use now (no accounting, no assignment): for announcements and show. */
  memberOf(hash: number): number {
    const m = this.bucketMember[hash & (BUCKETS - 1)];
    return m >= 0 && this.enabled[m] ? m : NONE;
  }

  /** Sum of bucket loads per member. */
  loads(): number[] {
    const load = new Array<number>(this.memberCount).fill(0);
    for (let b = 0; b < BUCKETS; b++) if (this.bucketMember[b] >= 0) load[this.bucketMember[b]] += this.bucketBytes[b];
    return load;
  }

  private leastLoaded(load: number[]): number {
    let best = NONE;
    for (let m = 0; m < this.memberCount; m++) if (this.enabled[m] && (best < 0 || load[m] < load[best])) best = m;
    return best;
  }

  private assign(b: number): number {
    const m = this.leastLoaded(this.loads());
    this.bucketMember[b] = m;
    return m;
  }

  /**
   * Member m became usable (true) or unusable (false). Disabling moves its buckets to the remaining members and
   * returns them (the caller announces their MACs); enabling moves nothing (the next rebalance will).
   */
  setEnabled(m: number, on: boolean): number[] {
    if (this.enabled[m] === on) return [];
    this.enabled[m] = on;
    const moved: number[] = [];
    if (!on) {
      for (let b = 0; b < BUCKETS; b++) {
        if (this.bucketMember[b] !== m) continue;
        this.bucketMember[b] = NONE;
        if (this.assign(b) >= 0) {
          moved.push(b);
          this.failoverMoves++;
        }
      }
    }
    if (this.active < 0 || !this.enabled[this.active]) this.active = this.enabled.indexOf(true);
    return moved;
  }

  /** One rebalancing round; returns the buckets that changed member. */
  rebalance(): number[] {
    const moved: number[] = [];
    const load = this.loads();
    for (let round = 0; round < BUCKETS; round++) {
      let from = NONE;
      let to = NONE;
      for (let m = 0; m < this.memberCount; m++) {
        if (!this.enabled[m]) continue;
        if (from < 0 || load[m] > load[from]) from = m;
        if (to < 0 || load[m] < load[to]) to = m;
      }
      if (from < 0 || from === to) break;
      const diff = load[from] - load[to];
      if (diff <= load[to] / 10) break;
      // the heaviest bucket of `from` lighter than diff: moving it lowers max(load[from], load[to])
      let pick = NONE;
      for (let b = 0; b < BUCKETS; b++) {
        const w = this.bucketBytes[b];
        if (this.bucketMember[b] === from && w > 0 && w < diff && (pick < 0 || w > this.bucketBytes[pick])) pick = b;
      }
      if (pick < 0) break;
      this.bucketMember[pick] = to;
      load[from] -= this.bucketBytes[pick];
      load[to] += this.bucketBytes[pick];
      moved.push(pick);
      this.rebalanceMoves++;
    }
    for (let b = 0; b < BUCKETS; b++) this.bucketBytes[b] /= 2;
    return moved;
  }

  /** The receive rule for broadcast and multicast: true when member m accepts them. */
  acceptsFlood(m: number): boolean {
    return m === this.active;
  }

  /** Assignments for --takeover (bucket -> member index, -1 none). */
  snapshot(): number[] {
    return Array.from(this.bucketMember);
  }

  /** Restores assignments taken by snapshot(); entries out of range are ignored. */
  restore(assignments: readonly number[]): void {
    for (let b = 0; b < BUCKETS && b < assignments.length; b++) {
      const m = assignments[b];
      if (Number.isInteger(m) && m >= NONE && m < this.memberCount) this.bucketMember[b] = m;
    }
  }
}
