// Multicast database: per (vid, group) the member ports, each with its IGMPv3/MLDv2 filter mode and
// source list, and timers; plus the router ports. Typed arrays, fixed pools, like src/fdb/fdb.ts.
//
// Model (RFC 3376 6.2 / RFC 3810 7.2, the router-side state a snooping switch keeps per port)
//   group    (vid, address[4 words])  -> a list of members            pool: maxGroups (multicast_max_groups)
//   member   (group, port): mode INCLUDE or EXCLUDE, group timer       pool: MEMBERS_PER_GROUP * maxGroups
//   source   (member, address): timer, or `excluded`                   pool: SOURCES_PER_GROUP * maxGroups
//   IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d), so IGMP and MLD share the tables.
//
//   Forwarding a packet from source S to (vid, G) to a member (takes()):
//     EXCLUDE with a running group timer: unless S is on its list as excluded;
//     INCLUDE (or EXCLUDE whose timer ran out): only if S is on its list with a running timer.
//   An IGMPv2/MLDv1 join is EXCLUDE {}; a leave is TO_IN {} (the group timer is lowered to the last
//   member query time, or the member goes at once with fast leave).
//   Static (permanent) members are EXCLUDE {} or INCLUDE {static sources}; they never age.
//
//   Caps: a new group when `maxGroups` groups exist is refused (`groupsFull`); a new member on a port that
//   holds `portMax[port]` members (mdb_max, 0 = none) is refused (`portFull`); a member or source when
//   its pool is exhausted is refused (`membersFull` / `sourcesFull`). Nothing is evicted: the sender of
//   a report flood fills its own cap first, and memory never grows past the pools allocated here.
//
//   Router ports: a mode per port, `auto` (a query, PIM hello or MRD advertisement heard on the port in VLAN v makes
//   it a router port for VLAN v only, until that (port, v) timer runs out: the kernel bridge's per-port-VLAN
//   multicast context), `always` (a router port in every VLAN it is a member of) or `never` (what arrives there
//   never makes it one). Learnt (port, vid) timers live in a fixed pool of router slots (maxRouters), chained per
//   VLAN from rHead[vid]; a slot is freed when its timer ran out (sweep), its port goes, or its VLAN stops snooping.
//   A new (port, vid) when the pool is full is refused and counted (`routersFull`).
//
// Time
//   One coarse clock: callers pass nowMs. Expired timers are ignored by takes() at once, and entries are
//   removed by a budgeted sweep(nowMs, budget) over the member pool; no timer per entry.
//
// Notes on performance
//   The per-frame work is one hash probe (five int32 compares) and a walk of the group's member list;
//   for an EXCLUDE {} member (every IGMPv2/MLDv1 join) the source list is empty. Nothing allocates.

const EMPTY = -1;
export const MODE_INCLUDE = 1;
export const MODE_EXCLUDE = 2;
export const MEMBERS_PER_GROUP = 4;
export const SOURCES_PER_GROUP = 4;

export const ROUTER_AUTO = 0;
export const ROUTER_ALWAYS = 1;
export const ROUTER_NEVER = 2;
export const ROUTER_MODES = ['auto', 'always', 'never'] as const;
export type RouterModeName = (typeof ROUTER_MODES)[number];

export const VID_SLOTS = 4096;

export interface MdbCounters {
  /** groups created, members added */
  groupsAdded: number;
  membersAdded: number;
  /** members that timed out (sweep) */
  membersAged: number;
  /** members removed by a leave with fast leave */
  membersLeft: number;
  /** refused: bridge cap (multicast_max_groups), per-port cap (mdb_max), member pool, source pool */
  groupsFull: number;
  portFull: number;
  membersFull: number;
  sourcesFull: number;
  /** router (port, VLAN) timers refused: the router slot pool was full */
  routersFull: number;
}

export interface MdbRouterView {
  port: number;
  vid: number;
  /** ms left on the (port, vid) timer */
  timerMs: number;
}

export interface MdbEntryView {
  vid: number;
  /** the group and source as four words (IPv4-mapped for IPv4) */
  group: Int32Array;
  source: Int32Array | null;
  port: number;
  /** ms left on the timer (0 for permanent entries, and for an excluded source) */
  timerMs: number;
  permanent: boolean;
  /** member filter mode; 'exclude' for a source means it is blocked */
  mode: 'include' | 'exclude';
}

export interface MdbOptions {
  /** multicast_max_groups */
  maxGroups: number;
  maxPorts: number;
  /** learnt router (port, VLAN) timers; default max(256, 4 x maxPorts) */
  maxRouters?: number;
}

type MdbArray = Int32Array | Uint8Array | Float64Array;

function isMdbArray(v: unknown): v is MdbArray {
  return v instanceof Int32Array || v instanceof Uint8Array || v instanceof Float64Array;
}

/** Mdb.exportState(): an MDB's typed-array and number fields by name (structured-clonable). */
export interface MdbState {
  arrays: Record<string, Int32Array | Uint8Array | Float64Array>;
  numbers: Record<string, number>;
}

function hash5(vid: number, a: Int32Array): number {
  let h = Math.imul(vid ^ 0x27d4eb2d, 0x9e3779b1);
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ a[i], 0x85ebca6b);
    h ^= h >>> 13;
  }
  return h;
}

export class Mdb {
  readonly maxGroups: number;
  readonly maxMembers: number;
  readonly maxSources: number;
  readonly maxPorts: number;
  // groups
  private readonly gVid: Int32Array;
  private readonly gAddr: Int32Array;
  /** first member of each group (EMPTY: the group slot is free) */
  readonly gHead: Int32Array;
  private readonly gUsed: Uint8Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly gFree: Int32Array;
  private gFreeCount: number;
  private groupCount = 0;
  // members
  readonly mPort: Int32Array;
  private readonly mGroup: Int32Array;
  readonly mNext: Int32Array;
  private readonly mPrev: Int32Array;
  private readonly mMode: Uint8Array;
  private readonly mStatic: Uint8Array;
  private readonly mExpiryMs: Float64Array;
  private readonly mSrcHead: Int32Array;
  private readonly mFree: Int32Array;
  private mFreeCount: number;
  // sources
  private readonly sAddr: Int32Array;
  private readonly sNext: Int32Array;
  /** Infinity: static; 0 with sExcluded: a blocked source */
  private readonly sExpiryMs: Float64Array;
  private readonly sExcluded: Uint8Array;
  private readonly sFree: Int32Array;
  private sFreeCount: number;
  /** members per port, and the per-port cap (0 = none) */
  readonly portCount: Int32Array;
  readonly portMax: Int32Array;
  /** router ports: ROUTER_* per port */
  readonly routerMode: Uint8Array;
  // learnt router (port, vid) timers: slot pool, chained per VLAN
  readonly maxRouters: number;
  /** port of each router slot (EMPTY: free) */
  readonly rPort: Int32Array;
  readonly rVid: Int32Array;
  readonly rExpiryMs: Float64Array;
  /** next slot of the same VLAN */
  readonly rNext: Int32Array;
  /** first router slot per VLAN (EMPTY: none) */
  readonly rHead: Int32Array;
  private readonly rFree: Int32Array;
  private rFreeCount: number;
  private sweepCursor = 0;
  /**
   * Bumped by every change of the state forwarding reads (entries, timers, router ports); a data plane on threads
   * publishes the MDB to its workers when it moved (src/dataplane/mdb-publish.ts). Code that writes routerMode or
   * the router slots directly bumps it too.
   */
  version = 0;
  private routerCursor = 0;
  readonly counters: MdbCounters = {
    groupsAdded: 0, membersAdded: 0, membersAged: 0, membersLeft: 0, groupsFull: 0, portFull: 0, membersFull: 0, sourcesFull: 0, routersFull: 0,
  };

  constructor(opts: MdbOptions) {
    const g = opts.maxGroups;
    if (!Number.isInteger(g) || g < 1) throw new RangeError(`multicast_max_groups must be a positive integer, got ${g}`);
    this.maxGroups = g;
    this.maxMembers = g * MEMBERS_PER_GROUP;
    this.maxSources = g * SOURCES_PER_GROUP;
    this.maxPorts = opts.maxPorts;
    this.gVid = new Int32Array(g);
    this.gAddr = new Int32Array(4 * g);
    this.gHead = new Int32Array(g).fill(EMPTY);
    this.gUsed = new Uint8Array(g);
    let size = 1;
    while (size < 2 * g) size *= 2;
    this.buckets = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
    this.gFree = Int32Array.from({ length: g }, (_, i) => g - 1 - i);
    this.gFreeCount = g;
    const m = this.maxMembers;
    this.mPort = new Int32Array(m);
    this.mGroup = new Int32Array(m).fill(EMPTY);
    this.mNext = new Int32Array(m).fill(EMPTY);
    this.mPrev = new Int32Array(m).fill(EMPTY);
    this.mMode = new Uint8Array(m);
    this.mStatic = new Uint8Array(m);
    this.mExpiryMs = new Float64Array(m);
    this.mSrcHead = new Int32Array(m).fill(EMPTY);
    this.mFree = Int32Array.from({ length: m }, (_, i) => m - 1 - i);
    this.mFreeCount = m;
    const s = this.maxSources;
    this.sAddr = new Int32Array(4 * s);
    this.sNext = new Int32Array(s).fill(EMPTY);
    this.sExpiryMs = new Float64Array(s);
    this.sExcluded = new Uint8Array(s);
    this.sFree = Int32Array.from({ length: s }, (_, i) => s - 1 - i);
    this.sFreeCount = s;
    this.portCount = new Int32Array(opts.maxPorts);
    this.portMax = new Int32Array(opts.maxPorts);
    this.routerMode = new Uint8Array(opts.maxPorts);
    const r = opts.maxRouters ?? Math.max(256, 4 * opts.maxPorts);
    this.maxRouters = r;
    this.rPort = new Int32Array(r).fill(EMPTY);
    this.rVid = new Int32Array(r);
    this.rExpiryMs = new Float64Array(r);
    this.rNext = new Int32Array(r).fill(EMPTY);
    this.rHead = new Int32Array(VID_SLOTS).fill(EMPTY);
    this.rFree = Int32Array.from({ length: r }, (_, i) => r - 1 - i);
    this.rFreeCount = r;
  }

  get groups(): number {
    return this.groupCount;
  }

  get members(): number {
    return this.maxMembers - this.mFreeCount;
  }

  // ---- groups ------------------------------------------------------------------------------------

  /** The group id of (vid, group), or -1. */
  findGroup(vid: number, a: Int32Array): number {
    const mask = this.mask;
    const gAddr = this.gAddr;
    for (let i = hash5(vid, a) & mask; ; i = (i + 1) & mask) {
      const id = this.buckets[i];
      if (id === EMPTY) return -1;
      const w = 4 * id;
      if (this.gVid[id] === vid && gAddr[w + 3] === a[3] && gAddr[w] === a[0] && gAddr[w + 1] === a[1] && gAddr[w + 2] === a[2]) return id;
    }
  }

  private addGroup(vid: number, a: Int32Array): number {
    if (this.gFreeCount === 0) {
      this.counters.groupsFull++;
      return -1;
    }
    const id = this.gFree[--this.gFreeCount];
    this.gVid[id] = vid;
    this.gAddr.set(a, 4 * id);
    this.gUsed[id] = 1;
    this.gHead[id] = EMPTY;
    this.version++;
    const mask = this.mask;
    let i = hash5(vid, a) & mask;
    while (this.buckets[i] !== EMPTY) i = (i + 1) & mask;
    this.buckets[i] = id;
    this.groupCount++;
    this.counters.groupsAdded++;
    return id;
  }

  /** Removes a group without members (backward-shift deletion keeps probes short, no tombstones). */
  private removeGroup(id: number): void {
    const mask = this.mask;
    const b = this.buckets;
    let i = hash5(this.gVid[id], this.gAddr.subarray(4 * id, 4 * id + 4)) & mask;
    while (b[i] !== id) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = b[j];
      if (e === EMPTY) break;
      const home = hash5(this.gVid[e], this.gAddr.subarray(4 * e, 4 * e + 4)) & mask;
      // move e into the hole at i unless its home lies cyclically in (i, j]
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        b[i] = e;
        i = j;
      }
    }
    b[i] = EMPTY;
    this.gUsed[id] = 0;
    this.gHead[id] = EMPTY;
    this.gFree[this.gFreeCount++] = id;
    this.groupCount--;
    this.version++;
  }

  // ---- members -----------------------------------------------------------------------------------

  /** The member of `port` in group `gid` (-1: none), or -1. */
  findMember(gid: number, port: number): number {
    if (gid < 0) return -1;
    for (let m = this.gHead[gid]; m !== EMPTY; m = this.mNext[m]) if (this.mPort[m] === port) return m;
    return -1;
  }

  /**
   * The member of `port` in (vid, group), created (INCLUDE {}, no timer) when missing; -1 when a cap
   * refuses it (counted).
   */
  member(vid: number, group: Int32Array, port: number): number {
    let gid = this.findGroup(vid, group);
    if (gid >= 0) {
      const m = this.findMember(gid, port);
      if (m >= 0) return m;
    }
    const cap = this.portMax[port];
    if (cap > 0 && this.portCount[port] >= cap) {
      this.counters.portFull++;
      return -1;
    }
    if (this.mFreeCount === 0) {
      this.counters.membersFull++;
      return -1;
    }
    if (gid < 0) {
      gid = this.addGroup(vid, group);
      if (gid < 0) return -1;
    }
    const m = this.mFree[--this.mFreeCount];
    this.mPort[m] = port;
    this.mGroup[m] = gid;
    this.mMode[m] = MODE_INCLUDE;
    this.mStatic[m] = 0;
    this.mExpiryMs[m] = 0;
    this.mSrcHead[m] = EMPTY;
    const head = this.gHead[gid];
    this.mNext[m] = head;
    this.mPrev[m] = EMPTY;
    if (head !== EMPTY) this.mPrev[head] = m;
    this.gHead[gid] = m;
    this.portCount[port]++;
    this.counters.membersAdded++;
    this.version++;
    return m;
  }

  /** Removes a member, its sources, and its group when it was the last. */
  removeMember(m: number): void {
    const gid = this.mGroup[m];
    if (gid === EMPTY) return;
    this.version++;
    for (let s = this.mSrcHead[m]; s !== EMPTY;) {
      const next = this.sNext[s];
      this.sFree[this.sFreeCount++] = s;
      s = next;
    }
    this.mSrcHead[m] = EMPTY;
    const prev = this.mPrev[m];
    const next = this.mNext[m];
    if (prev !== EMPTY) this.mNext[prev] = next;
    else this.gHead[gid] = next;
    if (next !== EMPTY) this.mPrev[next] = prev;
    this.portCount[this.mPort[m]]--;
    this.mGroup[m] = EMPTY;
    this.mFree[this.mFreeCount++] = m;
    if (this.gHead[gid] === EMPTY) this.removeGroup(gid);
  }

  isStatic(m: number): boolean {
    return this.mStatic[m] === 1;
  }

  /** EXCLUDE mode with the group timer at `expiryMs` (a join, IS_EX, TO_EX); excluded sources are cleared. */
  setExclude(m: number, expiryMs: number): void {
    if (this.mStatic[m] === 1) return;
    this.version++;
    this.mMode[m] = MODE_EXCLUDE;
    if (this.mExpiryMs[m] < expiryMs) this.mExpiryMs[m] = expiryMs;
    this.dropSources(m, true);
  }

  /** Lowers an EXCLUDE member's group timer to `expiryMs` (a leave: TO_IN). */
  lowerGroupTimer(m: number, expiryMs: number): void {
    if (this.mStatic[m] === 1 || this.mMode[m] !== MODE_EXCLUDE) return;
    if (this.mExpiryMs[m] > expiryMs) this.mExpiryMs[m] = expiryMs;
    this.version++;
  }

  /** The source `a` of member m, or -1. */
  findSource(m: number, a: Int32Array): number {
    const sAddr = this.sAddr;
    for (let s = this.mSrcHead[m]; s !== EMPTY; s = this.sNext[s]) {
      const w = 4 * s;
      if (sAddr[w + 3] === a[3] && sAddr[w] === a[0] && sAddr[w + 1] === a[1] && sAddr[w + 2] === a[2]) return s;
    }
    return -1;
  }

  private addSource(m: number, a: Int32Array): number {
    if (this.sFreeCount === 0) {
      this.counters.sourcesFull++;
      return -1;
    }
    const s = this.sFree[--this.sFreeCount];
    this.sAddr.set(a, 4 * s);
    this.sExpiryMs[s] = 0;
    this.sExcluded[s] = 0;
    this.sNext[s] = this.mSrcHead[m];
    this.mSrcHead[m] = s;
    this.version++;
    return s;
  }

  /** Source `a` is wanted until at least `expiryMs` (IS_IN, TO_IN, ALLOW); an excluded one is no longer. */
  allowSource(m: number, a: Int32Array, expiryMs: number): void {
    let s = this.findSource(m, a);
    if (s < 0) s = this.addSource(m, a);
    if (s < 0) return;
    this.sExcluded[s] = 0;
    if (this.sExpiryMs[s] < expiryMs) this.sExpiryMs[s] = expiryMs;
    this.version++;
  }

  /** Source `a` is blocked in EXCLUDE mode (IS_EX / TO_EX list), unless it is also requested. */
  excludeSource(m: number, a: Int32Array, nowMs: number): void {
    let s = this.findSource(m, a);
    if (s >= 0 && this.sExpiryMs[s] > nowMs && this.sExcluded[s] === 0) return;
    if (s < 0) s = this.addSource(m, a);
    if (s < 0) return;
    this.sExcluded[s] = 1;
    this.sExpiryMs[s] = 0;
    this.version++;
  }

  /**
   * A requested source's timer lowered to `expiryMs` (BLOCK, or a v3 leave of one source); removed at once when `now`.
   * True when the source was requested with a running timer (a group-and-source-specific query may ask for it).
   */
  lowerSource(m: number, a: Int32Array, expiryMs: number, nowMs: number): boolean {
    const s = this.findSource(m, a);
    if (s < 0 || this.sExcluded[s] === 1 || this.sExpiryMs[s] === Infinity || this.sExpiryMs[s] <= nowMs) return false;
    if (this.sExpiryMs[s] > expiryMs) this.sExpiryMs[s] = expiryMs;
    this.version++;
    if (expiryMs <= nowMs) this.unlinkSource(m, s);
    return true;
  }

  private unlinkSource(m: number, s: number): void {
    let prev = EMPTY;
    for (let x = this.mSrcHead[m]; x !== EMPTY; prev = x, x = this.sNext[x]) {
      if (x !== s) continue;
      if (prev === EMPTY) this.mSrcHead[m] = this.sNext[x];
      else this.sNext[prev] = this.sNext[x];
      this.sFree[this.sFreeCount++] = x;
      this.version++;
      return;
    }
  }

  /**
   * Lowers to `expiryMs` the timers of member m's requested sources whose timers run out after nowMs and before
   * `beforeMs` (not static, not excluded): after the sources of a TO_IN record were refreshed to the membership
   * interval, these are the sources the record left out. Their addresses go to `out` (four words each, at most
   * out.length / 4); returns how many were lowered. At or before nowMs they are removed at once (fast leave).
   */
  lowerSourcesBefore(m: number, beforeMs: number, expiryMs: number, nowMs: number, out: Int32Array): number {
    let n = 0;
    const max = out.length >> 2;
    for (let s = this.mSrcHead[m]; s !== EMPTY;) {
      const next = this.sNext[s];
      const exp = this.sExpiryMs[s];
      if (this.sExcluded[s] === 0 && exp > nowMs && exp < beforeMs) {
        if (n < max) out.set(this.sAddr.subarray(4 * s, 4 * s + 4), 4 * n);
        n++;
        if (exp > expiryMs) this.sExpiryMs[s] = expiryMs;
        this.version++;
        if (expiryMs <= nowMs) this.unlinkSource(m, s);
      }
      s = next;
    }
    return n;
  }

  /** The timer's expiry (ms) of member m's requested source `a`; -1 when it is not requested (absent or excluded). */
  sourceExpiryMs(m: number, a: Int32Array): number {
    const s = this.findSource(m, a);
    return s < 0 || this.sExcluded[s] === 1 ? -1 : this.sExpiryMs[s];
  }

  /** Whether member m is in EXCLUDE mode (with its group timer running, or permanent). */
  isExclude(m: number, nowMs: number): boolean {
    return this.mMode[m] === MODE_EXCLUDE && (this.mStatic[m] === 1 || this.mExpiryMs[m] > nowMs);
  }

  /** Drops the excluded sources (excluded = true) or those whose timer ran out before nowMs (excluded = false, nowMs given). */
  private dropSources(m: number, excluded: boolean, nowMs = 0): number {
    let prev = EMPTY;
    let left = 0;
    for (let s = this.mSrcHead[m]; s !== EMPTY;) {
      const next = this.sNext[s];
      const drop = excluded ? this.sExcluded[s] === 1 : this.sExcluded[s] === 0 && this.sExpiryMs[s] <= nowMs;
      if (drop) {
        if (prev === EMPTY) this.mSrcHead[m] = next;
        else this.sNext[prev] = next;
        this.sFree[this.sFreeCount++] = s;
        this.version++;
      } else {
        prev = s;
        if (this.sExcluded[s] === 0) left++;
      }
      s = next;
    }
    return left;
  }

  /** Removes member m when it is an INCLUDE member without requested sources left (not permanent). */
  pruneIfEmpty(m: number): void {
    if (this.mGroup[m] === EMPTY || this.mStatic[m] === 1 || this.mMode[m] === MODE_EXCLUDE) return;
    if (this.dropSources(m, false, -1) === 0) {
      this.removeMember(m);
      this.counters.membersLeft++;
    }
  }

  /** Whether member m takes a packet from source `src` (four words) now. */
  takes(m: number, src: Int32Array, nowMs: number): boolean {
    if (this.mMode[m] === MODE_EXCLUDE && (this.mExpiryMs[m] > nowMs || this.mStatic[m] === 1)) {
      if (this.mSrcHead[m] === EMPTY) return true;
      const s = this.findSource(m, src);
      return s < 0 || this.sExcluded[s] === 0;
    }
    const s = this.findSource(m, src);
    return s >= 0 && this.sExcluded[s] === 0 && this.sExpiryMs[s] > nowMs;
  }

  // ---- permanent entries -------------------------------------------------------------------------

  /** A permanent member: EXCLUDE {} without `source`, else INCLUDE {source} (added to its static sources). */
  addStatic(vid: number, group: Int32Array, port: number, source: Int32Array | null): boolean {
    const m = this.member(vid, group, port);
    if (m < 0) return false;
    this.mStatic[m] = 1;
    this.version++;
    if (source === null) {
      this.mMode[m] = MODE_EXCLUDE;
      this.dropSources(m, true);
      return true;
    }
    if (this.mMode[m] !== MODE_EXCLUDE) this.mMode[m] = MODE_INCLUDE;
    let s = this.findSource(m, source);
    if (s < 0) s = this.addSource(m, source);
    if (s < 0) return false;
    this.sExcluded[s] = 0;
    this.sExpiryMs[s] = Infinity;
    this.version++;
    return true;
  }

  /** Removes a permanent member (or one static source of it); false when there is none. */
  delStatic(vid: number, group: Int32Array, port: number, source: Int32Array | null): boolean {
    const gid = this.findGroup(vid, group);
    const m = gid < 0 ? -1 : this.findMember(gid, port);
    if (m < 0 || this.mStatic[m] !== 1) return false;
    if (source === null) {
      this.removeMember(m);
      return true;
    }
    const s = this.findSource(m, source);
    if (s < 0 || this.sExpiryMs[s] !== Infinity) return false;
    this.unlinkSource(m, s);
    if (this.mSrcHead[m] === EMPTY && this.mMode[m] === MODE_INCLUDE) this.removeMember(m);
    return true;
  }

  // ---- ports, ageing -----------------------------------------------------------------------------

  /** Removes the port's members: dynamic ones only (a port went down), or all (the port is gone). */
  removePort(port: number, includeStatic: boolean): number {
    let n = 0;
    for (let m = 0; m < this.maxMembers; m++) {
      if (this.mGroup[m] !== EMPTY && this.mPort[m] === port && (includeStatic || this.mStatic[m] === 0)) {
        this.removeMember(m);
        n++;
      }
    }
    return n;
  }

  /** Removes the dynamic members in `vid` (snooping turned off in that VLAN) and its router timers. */
  flushVlan(vid: number): number {
    let n = 0;
    for (let m = 0; m < this.maxMembers; m++) {
      const gid = this.mGroup[m];
      if (gid !== EMPTY && this.mStatic[m] === 0 && this.gVid[gid] === vid) {
        this.removeMember(m);
        n++;
      }
    }
    while (this.rHead[vid] !== EMPTY) this.unlinkRouter(this.rHead[vid]);
    return n;
  }

  /** Removes every dynamic member (snooping turned off for the bridge). */
  flushDynamic(): void {
    for (let m = 0; m < this.maxMembers; m++) if (this.mGroup[m] !== EMPTY && this.mStatic[m] === 0) this.removeMember(m);
  }

  /**
   * Ages up to `budget` member slots: an EXCLUDE member whose group timer ran out falls back to INCLUDE
   * with its requested sources; sources whose timers ran out go; an INCLUDE member without sources goes.
   * Returns the members removed.
   */
  sweep(nowMs: number, budget: number): number {
    this.sweepRouters(nowMs, budget);
    const max = this.maxMembers;
    let removed = 0;
    for (let k = 0; k < budget && k < max; k++) {
      const m = this.sweepCursor;
      this.sweepCursor = m + 1 === max ? 0 : m + 1;
      if (this.mGroup[m] === EMPTY || this.mStatic[m] === 1) continue;
      if (this.mMode[m] === MODE_EXCLUDE) {
        if (this.mExpiryMs[m] > nowMs) continue;
        this.mMode[m] = MODE_INCLUDE;
        this.version++;
        this.dropSources(m, true);
      }
      if (this.dropSources(m, false, nowMs) === 0) {
        this.removeMember(m);
        this.counters.membersAged++;
        removed++;
      }
    }
    return removed;
  }

  // ---- router ports ------------------------------------------------------------------------------

  /** The router slot of (port, vid), or -1. */
  private findRouter(port: number, vid: number): number {
    for (let r = this.rHead[vid]; r !== EMPTY; r = this.rNext[r]) if (this.rPort[r] === port) return r;
    return -1;
  }

  private unlinkRouter(r: number): void {
    const vid = this.rVid[r];
    let prev = EMPTY;
    for (let x = this.rHead[vid]; x !== EMPTY; prev = x, x = this.rNext[x]) {
      if (x !== r) continue;
      if (prev === EMPTY) this.rHead[vid] = this.rNext[x];
      else this.rNext[prev] = this.rNext[x];
      break;
    }
    this.rPort[r] = EMPTY;
    this.rNext[r] = EMPTY;
    this.rFree[this.rFreeCount++] = r;
    this.version++;
  }

  /**
   * A query, PIM hello or MRD advertisement arrived on the port in `vid`: it is a router port for that VLAN until
   * `expiryMs`. False on a port that is not `auto`, or when the router slot pool is full (counted).
   */
  heardRouter(port: number, vid: number, expiryMs: number): boolean {
    if (this.routerMode[port] !== ROUTER_AUTO) return false;
    let r = this.findRouter(port, vid);
    if (r < 0) {
      if (this.rFreeCount === 0) {
        this.counters.routersFull++;
        return false;
      }
      r = this.rFree[--this.rFreeCount];
      this.rPort[r] = port;
      this.rVid[r] = vid;
      this.rExpiryMs[r] = 0;
      this.rNext[r] = this.rHead[vid];
      this.rHead[vid] = r;
    }
    if (this.rExpiryMs[r] < expiryMs) this.rExpiryMs[r] = expiryMs;
    this.version++;
    return true;
  }

  /** Whether the port is a router port in `vid` now (`always`, or `auto` with a running (port, vid) timer). */
  isRouter(port: number, vid: number, nowMs: number): boolean {
    const mode = this.routerMode[port];
    if (mode === ROUTER_ALWAYS) return true;
    if (mode !== ROUTER_AUTO) return false;
    const r = this.findRouter(port, vid);
    return r >= 0 && this.rExpiryMs[r] > nowMs;
  }

  /** Whether the port is a router port in any VLAN now (stats). */
  isRouterAnywhere(port: number, nowMs: number): boolean {
    const mode = this.routerMode[port];
    if (mode !== ROUTER_AUTO) return mode === ROUTER_ALWAYS;
    for (let r = 0; r < this.maxRouters; r++) if (this.rPort[r] === port && this.rExpiryMs[r] > nowMs) return true;
    return false;
  }

  /** Forgets the port's learnt router timers in every VLAN (the port went down or away, or left `auto`). */
  forgetRouter(port: number): void {
    for (let r = 0; r < this.maxRouters; r++) if (this.rPort[r] === port) this.unlinkRouter(r);
  }

  /** Frees up to `budget` router slots whose timers ran out before nowMs. */
  private sweepRouters(nowMs: number, budget: number): void {
    const max = this.maxRouters;
    for (let k = 0; k < budget && k < max; k++) {
      const r = this.routerCursor;
      this.routerCursor = r + 1 === max ? 0 : r + 1;
      if (this.rPort[r] !== EMPTY && this.rExpiryMs[r] <= nowMs) this.unlinkRouter(r);
    }
  }

  /** The learnt router (port, vid) timers still running, by VLAN then port (control plane, snapshots). */
  routerTimers(nowMs: number): MdbRouterView[] {
    const out: MdbRouterView[] = [];
    for (let r = 0; r < this.maxRouters; r++) {
      if (this.rPort[r] !== EMPTY && this.rExpiryMs[r] > nowMs && this.routerMode[this.rPort[r]] === ROUTER_AUTO) {
        out.push({ port: this.rPort[r], vid: this.rVid[r], timerMs: this.rExpiryMs[r] - nowMs });
      }
    }
    return out.sort((a, b) => a.vid - b.vid || a.port - b.port);
  }

  // ---- control plane -----------------------------------------------------------------------------

  /** Every entry: a member without sources as one (S = null) row, else one row per source. */
  entries(nowMs: number): MdbEntryView[] {
    const out: MdbEntryView[] = [];
    for (let gid = 0; gid < this.maxGroups; gid++) {
      if (this.gUsed[gid] === 0) continue;
      const group = this.gAddr.slice(4 * gid, 4 * gid + 4);
      for (let m = this.gHead[gid]; m !== EMPTY; m = this.mNext[m]) {
        const permanent = this.mStatic[m] === 1;
        const exclude = this.mMode[m] === MODE_EXCLUDE && (permanent || this.mExpiryMs[m] > nowMs);
        const base = { vid: this.gVid[gid], group, port: this.mPort[m], permanent };
        if (exclude) out.push({ ...base, source: null, timerMs: permanent ? 0 : this.mExpiryMs[m] - nowMs, mode: 'exclude' });
        for (let s = this.mSrcHead[m]; s !== EMPTY; s = this.sNext[s]) {
          const exp = this.sExpiryMs[s];
          if (this.sExcluded[s] === 0 && exp <= nowMs && !exclude) continue;
          out.push({
            ...base, source: this.sAddr.slice(4 * s, 4 * s + 4), permanent: exp === Infinity,
            timerMs: exp === Infinity || this.sExcluded[s] === 1 ? 0 : Math.max(0, exp - nowMs), mode: this.sExcluded[s] === 1 ? 'exclude' : 'include',
          });
        }
      }
    }
    return out;
  }

  // ---- replicas (data-plane workers) ---------------------------------------------------------------

  /**
   * The whole state as plain data: every typed-array field (pools, free lists, hashtable, router ports) and every
   * number field, by field name; counters are not part of it. The arrays are this MDB's own (no copy): a
   * postMessage clones them at once. A replica made by importState() of it decides every takes(), findGroup() and
   * isRouter() as this MDB does.
   */
  exportState(): MdbState {
    const arrays: Record<string, MdbArray> = {};
    const numbers: Record<string, number> = {};
    for (const [k, v] of Object.entries(this)) {
      if (typeof v === 'number') numbers[k] = v;
      else if (isMdbArray(v)) arrays[k] = v;
    }
    return { arrays, numbers };
  }

  /**
   * Becomes a copy of `state` (another Mdb's exportState()), in place: its arrays are copied into this one's, so
   * nothing here is allocated. Throws, changing nothing, when the state is of an MDB of other sizes or fields
   * (multicast_max_groups or the port count differ).
   */
  importState(state: MdbState): void {
    const self = this as unknown as Record<string, unknown>;
    const own = Object.entries(this).filter(([, v]) => isMdbArray(v));
    if (own.length !== Object.keys(state.arrays).length) throw new RangeError(`MDB state has ${Object.keys(state.arrays).length} arrays, this MDB ${own.length}`);
    for (const [k, v] of own) {
      const src = state.arrays[k];
      const dst = v as MdbArray;
      if (src === undefined || src.length !== dst.length || src.constructor !== dst.constructor) {
        throw new RangeError(`MDB state field ${k} does not match this MDB (multicast_max_groups or the port count differ)`);
      }
    }
    for (const [k, v] of own) (v as MdbArray).set(state.arrays[k] as never);
    for (const [k, n] of Object.entries(state.numbers)) if (typeof self[k] === 'number') self[k] = n;
  }

  /** null when the lists and counts agree, else the first problem (tests, invariant checks). */
  check(): string | null {
    const perPort = new Int32Array(this.maxPorts);
    let groups = 0;
    for (let gid = 0; gid < this.maxGroups; gid++) {
      if (this.gUsed[gid] === 0) continue;
      groups++;
      if (this.findGroup(this.gVid[gid], this.gAddr.subarray(4 * gid, 4 * gid + 4)) !== gid) return `group ${gid} not found by its key`;
      if (this.gHead[gid] === EMPTY) return `group ${gid} has no members`;
      for (let m = this.gHead[gid]; m !== EMPTY; m = this.mNext[m]) {
        if (this.mGroup[m] !== gid) return `member ${m} on the list of group ${gid} belongs to ${this.mGroup[m]}`;
        perPort[this.mPort[m]]++;
      }
    }
    if (groups !== this.groupCount) return `${groups} groups used, ${this.groupCount} counted`;
    for (let p = 0; p < this.maxPorts; p++) if (perPort[p] !== this.portCount[p]) return `port ${p}: ${perPort[p]} members, ${this.portCount[p]} counted`;
    let routers = 0;
    for (let vid = 0; vid < VID_SLOTS; vid++) {
      for (let r = this.rHead[vid]; r !== EMPTY; r = this.rNext[r]) {
        if (this.rVid[r] !== vid || this.rPort[r] === EMPTY) return `router slot ${r} on the list of VLAN ${vid} holds VLAN ${this.rVid[r]} port ${this.rPort[r]}`;
        routers++;
      }
    }
    if (routers !== this.maxRouters - this.rFreeCount) return `${routers} router slots listed, ${this.maxRouters - this.rFreeCount} in use`;
    return null;
  }
}
