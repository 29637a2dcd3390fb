// Forwarding database: (vid, mac) -> port, an open-addressing hashtable on typed arrays.
//
// Model
//   Entries live in a fixed pool of `maxEntries` slots (stable entry ids); the hashtable is an
//   Int32Array of entry ids with linear probing and backward-shift deletion (no tombstones), sized
//   to the next power of two >= 2 * maxEntries so probes stay short. Keys are split in two small
//   integers: hi = vid << 16 | mac[0..1] (< 2^28), lo = mac[2..5] as an int32. Both are Smis, so the
//   per-frame calls (learnHL, lookupHL) pass no doubles and box nothing.
//
//   Dynamic entries of each port sit on an intrusive doubly linked LRU list (oldest at the head).
//   When the bridge is full, the oldest dynamic entry of the port that holds the most dynamic entries
//   is evicted (Open vSwitch's mac-learning policy); when a port has its own cap and reaches it, its
//   own oldest entry is evicted. If nothing is evictable (only static entries), learning stops and the
//   miss is counted (`learnFailed`).
//
//   Finding "the port that holds the most" is O(1) too: ports are kept in buckets by their count of
//   dynamic entries (countHead[c] -> a doubly linked list of the ports holding exactly c), and the
//   highest non-empty bucket is tracked. Every count changes by one at a time, so a port moves to a
//   neighbouring bucket and the maximum moves by at most one (an LFU-cache structure):
//
//     countHead: [ - ][p3][ - ][p1 <-> p7][ - ] ...      maxCount = 3: the victim is lruHead[p1]
//                  0    1    2       3
//
//   counters.evictionSlotsVisited counts the bucket slots looked at to choose victims (1 per eviction;
//   a scan over all port slots would add maxPorts each time).
//
//   Static entries never age, are never moved by learning and are not on any LRU list.
//
// Time
//   One coarse clock: the caller passes nowMs (read once per batch). Refreshing an entry that is
//   seen again only writes when its timestamp is at least REFRESH_GRANULARITY_MS old, so a busy
//   flow costs one hash lookup and a compare per frame. Ageing is a budgeted sweep over the entry
//   pool (`sweep(nowMs, budget)`), never a timer per entry.
//
// Shared (data_workers > 1, src/dataplane/)
//   With `shared`, the arrays a lookup reads (keys, port, flags, seen time, hashtable) live in
//   SharedArrayBuffers that data-plane workers read without a lock (src/dataplane/fdb-view.ts); this object
//   stays the only writer. What keeps a lock-free reader right:
//     - an entry is filled in before the hashtable slot that publishes it is written (Atomics.store);
//     - a move, or a static entry replaced, changes the port with one store: a reader sees the old or the new;
//     - a removed entry keeps its key and port until no reader can still hold it: it waits in `limbo` until
//       every reader has been outside a receive batch since (each reader's batch counter, odd inside a batch,
//       set with setReaders()); only then is it reused. So a key a reader compares never changes under it, and a
//       hit is always that key's entry (or the one just removed, as a moment earlier). Both sides order their
//       plain accesses with an atomic read-modify-write: a reader's add to its counter comes before its lookups,
//       and the writer's add to a fence word comes after the stores that unlink an entry and before it reads the
//       counters; so a reader seen outside a batch cannot still read the unlinked entry's old bucket.
//     - a backward shift running beside a reader's probe can make it miss an entry once: that frame is
//       flooded, never sent to a wrong port.
//   A writer that is descheduled in the middle of a change therefore holds no reader up (no sequence lock: on
//   a busy 2-vCPU host readers gave up and flooded while the writer waited for a core).
//
// Notes on performance
//   learn() and lookup() allocate nothing; MACs are numbers (see frame/mac.ts).

import { FlapWarnLimiter } from './flap-limit.js';

const EMPTY = -1;
const TWO32 = 0x1_0000_0000;

export const FLAG_USED = 1;
export const FLAG_STATIC = 2;

/** A refresh writes the timestamp at most this often per entry. */
export const REFRESH_GRANULARITY_MS = 1000;
/** Moves of one entry inside this window count towards flap detection. */
export const FLAP_WINDOW_MS = 1000;
/** More moves than this inside FLAP_WINDOW_MS is a flap. */
export const FLAP_MOVES = 3;
/** One flap warning per entry per this interval. */
export const FLAP_WARN_INTERVAL_MS = 10_000;
/** Flap warnings per FLAP_WARN_INTERVAL_MS for the whole bridge; further flapping MACs are summed up in one line. */
export const FLAP_WARN_BRIDGE_MAX = 8;

export interface FdbOptions {
  /** Bridge cap (fdb_max). */
  maxEntries: number;
  /** Number of port ids (ports are 0 .. maxPorts-1). */
  maxPorts: number;
  /** Ageing time in ms; 0 = never age. */
  ageingTimeMs: number;
  /** Called (rate-limited per entry) when a MAC keeps moving between two ports. */
  onFlap?: (vid: number, mac: number, fromPort: number, toPort: number, moves: number) => void;
  /** Called once per warning window with the number of flapping MACs whose warning the bridge-wide limit suppressed. */
  onFlapSuppressed?: (count: number) => void;
  /** Keep what lookups read in SharedArrayBuffers for data-plane workers to read without a lock (see "Shared" above). */
  shared?: boolean;
}

/** What a reader in another thread maps (src/dataplane/fdb-view.ts): the buffers behind the lookup arrays. */
export interface SharedFdbLayout {
  maxEntries: number;
  mask: number;
  keyHi: SharedArrayBuffer;
  keyLo: SharedArrayBuffer;
  port: SharedArrayBuffer;
  flags: SharedArrayBuffer;
  seenMs: SharedArrayBuffer;
  buckets: SharedArrayBuffer;
}

export interface FdbCounters {
  learned: number;
  aged: number;
  moved: number;
  evicted: number;
  /** learning refused because the table (or port) was full of static entries */
  learnFailed: number;
  /** port-count bucket slots looked at to choose bridge-wide eviction victims (a probe of the O(1) policy) */
  evictionSlotsVisited: number;
}

export interface FdbEntryView {
  vid: number;
  mac: number;
  port: number;
  isStatic: boolean;
  /** ms since last seen (0 for static entries) */
  ageMs: number;
  /** IPv4 address seen in its ARPs, 0 when none */
  ipv4: number;
}

/** Upper 16 bits of a numeric MAC. */
export function macHi(mac: number): number {
  return Math.floor(mac / TWO32);
}

/** Lower 32 bits of a numeric MAC as an int32 (the FDB's key half). */
export function macLo(mac: number): number {
  return (mac % TWO32) | 0;
}

export const enum AddResult {
  Added = 0,
  Updated = 1,
  Full = 2,
}

/** The hashtable's hash of a key (hi, lo); shared with the readers of a shared table. */
export function fdbHash(hi: number, lo: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

type TypedCtor<T> = { new (n: number): T; new (b: ArrayBufferLike): T; readonly BYTES_PER_ELEMENT: number };

/** A typed array of n elements, over a SharedArrayBuffer when `shared`. */
function alloc<T>(ctor: TypedCtor<T>, n: number, shared: boolean): T {
  return shared ? new ctor(new SharedArrayBuffer(n * ctor.BYTES_PER_ELEMENT)) : new ctor(n);
}

function nextPow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

export class Fdb {
  readonly maxEntries: number;
  readonly maxPorts: number;
  ageingTimeMs: number;

  // entry pool
  private readonly keyHi: Int32Array;
  private readonly keyLo: Int32Array;
  private readonly port: Int32Array;
  private readonly flags: Uint8Array;
  private readonly seenMs: Float64Array;
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private readonly flapStartMs: Float64Array;
  private readonly flapMoves: Uint16Array;
  private readonly flapFrom: Int32Array;
  private readonly flapWarnedMs: Float64Array;
  /** IPv4 address last seen in an ARP from this entry's MAC (ARP snooping), 0 = none */
  private readonly ipv4: Uint32Array;
  private freeHead: number;

  // hashtable of entry ids
  private readonly buckets: Int32Array;
  private readonly mask: number;

  // per port
  private readonly lruHead: Int32Array;
  private readonly lruTail: Int32Array;
  /** dynamic entries per port */
  readonly portDynamic: Int32Array;
  /** per-port cap on dynamic entries, 0 = none */
  readonly portMax: Int32Array;
  // ports bucketed by dynamic-entry count (see the header): list heads per count, links per port
  private readonly countHead: Int32Array;
  private readonly countPrev: Int32Array;
  private readonly countNext: Int32Array;
  private maxCount = 0;
  private readonly flapLimit: FlapWarnLimiter;

  private sweepCursor = 0;
  private used = 0;
  private readonly onFlap: FdbOptions['onFlap'];
  private readonly shared: boolean;
  /** Readers' batch counters (odd while that reader is inside a receive batch); null: no reader in another thread. */
  private readers: Int32Array | null = null;
  /** Removed entries not reusable yet, by generation: the readers' counters when they were removed. */
  private readonly limbo: Array<{ snap: Int32Array; entries: number[] }> = [];
  /** A word only this writer touches, with an atomic read-modify-write: the fence in release(). */
  private readonly fence = new Int32Array(new SharedArrayBuffer(4));

  readonly counters: FdbCounters = { learned: 0, aged: 0, moved: 0, evicted: 0, learnFailed: 0, evictionSlotsVisited: 0 };

  constructor(opts: FdbOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    if (!Number.isInteger(opts.maxPorts) || opts.maxPorts < 1) throw new RangeError('maxPorts must be a positive integer');
    this.maxEntries = opts.maxEntries;
    this.maxPorts = opts.maxPorts;
    this.ageingTimeMs = opts.ageingTimeMs;
    this.onFlap = opts.onFlap;
    const n = opts.maxEntries;
    const sh = opts.shared === true;
    this.keyHi = alloc(Int32Array, n, sh);
    this.keyLo = alloc(Int32Array, n, sh);
    this.port = alloc(Int32Array, n, sh);
    this.flags = alloc(Uint8Array, n, sh);
    this.seenMs = alloc(Float64Array, n, sh);
    this.shared = sh;
    this.lruPrev = new Int32Array(n).fill(EMPTY);
    this.lruNext = new Int32Array(n).fill(EMPTY);
    this.flapStartMs = new Float64Array(n);
    this.flapMoves = new Uint16Array(n);
    this.flapFrom = new Int32Array(n);
    this.flapWarnedMs = new Float64Array(n).fill(-Infinity);
    this.ipv4 = new Uint32Array(n);
    // free list threaded through lruNext
    for (let i = 0; i < n - 1; i++) this.lruNext[i] = i + 1;
    this.lruNext[n - 1] = EMPTY;
    this.freeHead = 0;
    const cap = nextPow2(n * 2);
    this.buckets = alloc(Int32Array, cap, sh).fill(EMPTY);
    this.mask = cap - 1;
    this.lruHead = new Int32Array(opts.maxPorts).fill(EMPTY);
    this.lruTail = new Int32Array(opts.maxPorts).fill(EMPTY);
    this.portDynamic = new Int32Array(opts.maxPorts);
    this.portMax = new Int32Array(opts.maxPorts);
    this.countHead = new Int32Array(n + 1).fill(EMPTY);
    this.countPrev = new Int32Array(opts.maxPorts).fill(EMPTY);
    this.countNext = new Int32Array(opts.maxPorts).fill(EMPTY);
    this.flapLimit = new FlapWarnLimiter(FLAP_WARN_BRIDGE_MAX, FLAP_WARN_INTERVAL_MS, opts.onFlapSuppressed);
  }

  /** The buffers a reader in another thread maps, or null when the table is not shared. */
  sharedLayout(): SharedFdbLayout | null {
    if (!this.shared) return null;
    const b = (a: { buffer: ArrayBufferLike }): SharedArrayBuffer => a.buffer as SharedArrayBuffer;
    return {
      maxEntries: this.maxEntries, mask: this.mask, keyHi: b(this.keyHi), keyLo: b(this.keyLo), port: b(this.port),
      flags: b(this.flags), seenMs: b(this.seenMs), buckets: b(this.buckets),
    };
  }

  /**
   * The batch counters of the readers in other threads (shared tables): one Int32 word per reader, odd while it is
   * inside a receive batch. From now on a removed entry is reused only once every reader has left the batch it
   * was in. null: no such readers (entries are reused at once again).
   */
  setReaders(counters: Int32Array | null): void {
    this.readers = counters;
    if (counters === null) this.reclaim(true);
  }

  /** A reader that is gone (its thread ended, maybe inside a batch) holds nothing back any more. */
  readerGone(index: number): void {
    if (this.readers !== null && index >= 0 && index < this.readers.length) Atomics.store(this.readers, index, 0);
    this.reclaim(false);
  }

  /** Entries removed but waiting for readers (shared tables). */
  get limboSize(): number {
    let n = 0;
    for (const g of this.limbo) n += g.entries.length;
    return n;
  }

  /** Back to the free list: a removed entry, now or (readers in other threads) once no reader can hold it. */
  private release(e: number): void {
    const r = this.readers;
    if (r === null) {
      this.lruNext[e] = this.freeHead;
      this.freeHead = e;
      return;
    }
    // A full fence between the writes that unpublished e (buckets, flags: plain stores) and the loads of the
    // readers' counters below. Without it the loads may complete before the stores are visible (store buffering):
    // a reader that entered a batch (its own atomic add) and then read the old bucket could be seen outside it,
    // and e reused while that reader still compares its key.
    Atomics.add(this.fence, 0, 1);
    const last = this.limbo.length > 0 ? this.limbo[this.limbo.length - 1] : null;
    if (last !== null && Fdb.sameCounters(last.snap, r)) {
      last.entries.push(e);
      return;
    }
    const snap = new Int32Array(r.length);
    for (let i = 0; i < r.length; i++) snap[i] = Atomics.load(r, i);
    this.limbo.push({ snap, entries: [e] });
  }

  private static sameCounters(snap: Int32Array, r: Int32Array): boolean {
    for (let i = 0; i < r.length; i++) if (Atomics.load(r, i) !== snap[i]) return false;
    return true;
  }

  /** Frees the limbo generations no reader can hold any more (all of them with `all`). */
  private reclaim(all: boolean): void {
    const r = this.readers;
    while (this.limbo.length > 0) {
      const g = this.limbo[0];
      if (!all && r !== null) {
        let held = false;
        // a reader that was inside a batch then and is still inside that same batch may hold these entries
        for (let i = 0; i < r.length && !held; i++) held = (g.snap[i] & 1) === 1 && Atomics.load(r, i) === g.snap[i];
        if (held) return;
      }
      this.limbo.shift();
      for (const e of g.entries) {
        this.lruNext[e] = this.freeHead;
        this.freeHead = e;
      }
    }
  }

  /** One more dynamic entry on `port`: it moves up one count bucket. */
  private incDynamic(port: number): void {
    const c = this.portDynamic[port];
    if (c > 0) this.bucketUnlink(port, c);
    this.portDynamic[port] = c + 1;
    this.bucketPush(port, c + 1);
    if (c + 1 > this.maxCount) this.maxCount = c + 1;
  }

  /** One dynamic entry fewer on `port`: it moves down one count bucket. */
  private decDynamic(port: number): void {
    const c = this.portDynamic[port];
    this.bucketUnlink(port, c);
    this.portDynamic[port] = c - 1;
    if (c > 1) this.bucketPush(port, c - 1);
    // the port left bucket c for c-1: the maximum drops by at most one
    if (this.maxCount > 0 && this.countHead[this.maxCount] === EMPTY) this.maxCount--;
  }

  private bucketPush(port: number, c: number): void {
    const head = this.countHead[c];
    this.countPrev[port] = EMPTY;
    this.countNext[port] = head;
    if (head !== EMPTY) this.countPrev[head] = port;
    this.countHead[c] = port;
  }

  private bucketUnlink(port: number, c: number): void {
    const prev = this.countPrev[port];
    const next = this.countNext[port];
    if (prev === EMPTY) this.countHead[c] = next;
    else this.countNext[prev] = next;
    if (next !== EMPTY) this.countPrev[next] = prev;
    this.countPrev[port] = EMPTY;
    this.countNext[port] = EMPTY;
  }

  /** Number of entries (static and dynamic). */
  get size(): number {
    return this.used;
  }

  private static hash(hi: number, lo: number): number {
    return fdbHash(hi, lo);
  }

  /** Entry id of (vid, mac) or -1. */
  private find(hi: number, lo: number): number {
    const buckets = this.buckets;
    const mask = this.mask;
    let i = Fdb.hash(hi, lo) & mask;
    for (;;) {
      const e = buckets[i];
      if (e === EMPTY) return EMPTY;
      if (this.keyLo[e] === lo && this.keyHi[e] === hi) return e;
      i = (i + 1) & mask;
    }
  }

  /** Port of (vid, mac), or -1 when unknown. */
  lookup(vid: number, mac: number): number {
    return this.lookupHL(vid, macHi(mac), macLo(mac));
  }

  /** lookup() with the MAC as its upper 16 bits and lower 32 bits (int32): the per-frame form. */
  lookupHL(vid: number, macHi16: number, macLo32: number): number {
    const e = this.find((vid << 16) | macHi16, macLo32);
    return e === EMPTY ? -1 : this.port[e];
  }

  /**
   * Learns that (vid, mac) was seen on `port` at nowMs. Refreshes, moves (counted, flap-checked)
   * or inserts (evicting per policy when full). Static entries are never changed by learning.
   */
  learn(vid: number, mac: number, port: number, nowMs: number): void {
    this.learnHL(vid, macHi(mac), macLo(mac), port, nowMs);
  }

  /** learn() with the MAC as its upper 16 bits and lower 32 bits (int32): the per-frame form. */
  learnHL(vid: number, macHi16: number, macLo32: number, port: number, nowMs: number): void {
    const hi = (vid << 16) | macHi16;
    const lo = macLo32;
    const e = this.find(hi, lo);
    if (e !== EMPTY) {
      if ((this.flags[e] & FLAG_STATIC) !== 0) return;
      const old = this.port[e];
      if (old === port) {
        if (nowMs - this.seenMs[e] >= REFRESH_GRANULARITY_MS) {
          this.seenMs[e] = nowMs;
          this.lruUnlink(e, old);
          this.lruAppend(e, port);
        }
        return;
      }
      this.move(e, old, port, nowMs);
      return;
    }
    const n = this.insert(hi, lo, port, 0, nowMs);
    if (n !== EMPTY) this.counters.learned++;
  }

  private move(e: number, from: number, to: number, nowMs: number): void {
    // a move into a port at its own cap makes room there first
    if (this.portMax[to] > 0 && this.portDynamic[to] >= this.portMax[to]) {
      const victim = this.lruHead[to];
      if (victim === EMPTY) {
        this.counters.learnFailed++;
        return;
      }
      this.removeEntry(victim);
      this.counters.evicted++;
    }
    this.lruUnlink(e, from);
    this.decDynamic(from);
    this.port[e] = to;
    this.seenMs[e] = nowMs;
    this.lruAppend(e, to);
    this.incDynamic(to);
    this.counters.moved++;
    // flap detection: several moves inside one window
    if (nowMs - this.flapStartMs[e] > FLAP_WINDOW_MS) {
      this.flapStartMs[e] = nowMs;
      this.flapMoves[e] = 1;
    } else if (this.flapMoves[e] < 0xffff) {
      this.flapMoves[e]++;
    }
    this.flapFrom[e] = from;
    if (this.flapMoves[e] > FLAP_MOVES && nowMs - this.flapWarnedMs[e] >= FLAP_WARN_INTERVAL_MS) {
      this.flapWarnedMs[e] = nowMs;
      if (this.onFlap !== undefined && this.flapLimit.allow(nowMs)) {
        this.onFlap(this.keyHi[e] >>> 16, (this.keyHi[e] & 0xffff) * TWO32 + (this.keyLo[e] >>> 0), from, to, this.flapMoves[e]);
      }
    }
  }

  /**
   * Inserts a new entry; evicts per policy when the bridge or the port is full.
   * Returns the entry id or -1 when nothing could be evicted.
   */
  private insert(hi: number, lo: number, port: number, flags: number, nowMs: number): number {
    const isStatic = (flags & FLAG_STATIC) !== 0;
    if (!isStatic && this.portMax[port] > 0 && this.portDynamic[port] >= this.portMax[port]) {
      const victim = this.lruHead[port];
      if (victim === EMPTY) {
        this.counters.learnFailed++;
        return EMPTY;
      }
      this.removeEntry(victim);
      this.counters.evicted++;
    }
    if (this.freeHead === EMPTY && this.limbo.length > 0) this.reclaim(false);
    if (this.freeHead === EMPTY) {
      const victim = this.evictionVictim();
      if (victim === EMPTY) {
        this.counters.learnFailed++;
        return EMPTY;
      }
      this.removeEntry(victim);
      this.counters.evicted++;
      // shared: the victim may still be in a reader's hands; the next learn gets it
      if (this.freeHead === EMPTY) this.reclaim(false);
      if (this.freeHead === EMPTY) {
        this.counters.learnFailed++;
        return EMPTY;
      }
    }
    const e = this.freeHead;
    this.freeHead = this.lruNext[e];
    this.keyHi[e] = hi;
    this.keyLo[e] = lo;
    this.port[e] = port;
    this.flags[e] = FLAG_USED | flags;
    this.seenMs[e] = nowMs;
    this.flapStartMs[e] = -Infinity;
    this.flapMoves[e] = 0;
    this.flapWarnedMs[e] = -Infinity;
    this.ipv4[e] = 0;
    this.lruPrev[e] = EMPTY;
    this.lruNext[e] = EMPTY;
    if (!isStatic) {
      this.lruAppend(e, port);
      this.incDynamic(port);
    }
    const buckets = this.buckets;
    const mask = this.mask;
    let i = Fdb.hash(hi, lo) & mask;
    while (buckets[i] !== EMPTY) i = (i + 1) & mask;
    // published last: a reader in another thread that finds e finds it whole
    if (this.shared) Atomics.store(buckets, i, e);
    else buckets[i] = e;
    this.used++;
    return e;
  }

  /** The oldest dynamic entry of a port holding the most dynamic entries, or -1: O(1). */
  private evictionVictim(): number {
    if (this.maxCount === 0) return EMPTY;
    this.counters.evictionSlotsVisited++;
    const p = this.countHead[this.maxCount];
    return p === EMPTY ? EMPTY : this.lruHead[p];
  }

  private lruAppend(e: number, port: number): void {
    const tail = this.lruTail[port];
    this.lruPrev[e] = tail;
    this.lruNext[e] = EMPTY;
    if (tail === EMPTY) this.lruHead[port] = e;
    else this.lruNext[tail] = e;
    this.lruTail[port] = e;
  }

  private lruUnlink(e: number, port: number): void {
    const prev = this.lruPrev[e];
    const next = this.lruNext[e];
    if (prev === EMPTY) this.lruHead[port] = next;
    else this.lruNext[prev] = next;
    if (next === EMPTY) this.lruTail[port] = prev;
    else this.lruPrev[next] = prev;
    this.lruPrev[e] = EMPTY;
    this.lruNext[e] = EMPTY;
  }

  /** Removes entry e from the table, its LRU list and counts; returns it to the free list. */
  private removeEntry(e: number): void {
    const flags = this.flags[e];
    const port = this.port[e];
    if ((flags & FLAG_STATIC) === 0) {
      this.lruUnlink(e, port);
      this.decDynamic(port);
    }
    // backward-shift deletion
    const buckets = this.buckets;
    const mask = this.mask;
    let i = Fdb.hash(this.keyHi[e], this.keyLo[e]) & mask;
    while (buckets[i] !== e) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const f = buckets[j];
      if (f === EMPTY) break;
      const home = Fdb.hash(this.keyHi[f], this.keyLo[f]) & mask;
      // f may move to i if its home is not cyclically in (i, j]
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!between) {
        buckets[i] = f;
        i = j;
      }
    }
    buckets[i] = EMPTY;
    this.flags[e] = 0;
    this.release(e);
    this.used--;
  }

  /**
   * Adds or replaces a static entry. Returns Full when no dynamic entry could be evicted to make room.
   */
  addStatic(vid: number, mac: number, port: number, nowMs: number): AddResult {
    const hi = (vid << 16) | macHi(mac);
    const lo = macLo(mac);
    const e = this.find(hi, lo);
    if (e !== EMPTY) {
      if ((this.flags[e] & FLAG_STATIC) === 0) {
        this.lruUnlink(e, this.port[e]);
        this.decDynamic(this.port[e]);
      }
      this.flags[e] = FLAG_USED | FLAG_STATIC;
      this.port[e] = port;
      this.seenMs[e] = nowMs;
      return AddResult.Updated;
    }
    return this.insert(hi, lo, port, FLAG_STATIC, nowMs) === EMPTY ? AddResult.Full : AddResult.Added;
  }

  /** Deletes (vid, mac), static or dynamic. Returns false when absent. */
  delete(vid: number, mac: number): boolean {
    const e = this.find((vid << 16) | macHi(mac), macLo(mac));
    if (e === EMPTY) return false;
    this.removeEntry(e);
    return true;
  }

  /** Removes the dynamic entries of `port` (all ports when port < 0). Returns how many. */
  flushDynamic(port = -1): number {
    let removed = 0;
    if (port >= 0) {
      while (this.lruHead[port] !== EMPTY) {
        this.removeEntry(this.lruHead[port]);
        removed++;
      }
      return removed;
    }
    for (let p = 0; p < this.maxPorts; p++) removed += this.flushDynamic(p);
    return removed;
  }

  /** Removes every entry (static too) that points at `port`: the port is being deleted. */
  removePort(port: number): number {
    let removed = this.flushDynamic(port);
    for (let e = 0; e < this.maxEntries; e++) {
      if (this.flags[e] !== 0 && this.port[e] === port) {
        this.removeEntry(e);
        removed++;
      }
    }
    this.portMax[port] = 0;
    return removed;
  }

  /** Records the IPv4 address a MAC used in an ARP (ARP snooping); ignored when the entry is unknown. */
  setIpv4(vid: number, macHi16: number, macLo32: number, ip: number): void {
    const e = this.find((vid << 16) | macHi16, macLo32);
    if (e !== EMPTY) this.ipv4[e] = ip >>> 0;
  }

  /** Removes every entry of `port` whose VLAN fails `keep` (the port left those VLANs). */
  removePortVlans(port: number, keep: (vid: number) => boolean): number {
    let removed = 0;
    for (let e = 0; e < this.maxEntries; e++) {
      if (this.flags[e] !== 0 && this.port[e] === port && !keep(this.keyHi[e] >>> 16)) {
        this.removeEntry(e);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Ages out dynamic entries not seen for ageingTimeMs, visiting at most `budget` pool slots from
   * where the previous sweep stopped. Returns the number aged.
   */
  sweep(nowMs: number, budget: number): number {
    // the periodic caller also ends flap-warning windows, so a summary line follows even when flapping stopped
    this.flapLimit.flush(nowMs);
    if (this.limbo.length > 0) this.reclaim(false);
    if (this.ageingTimeMs <= 0 || this.used === 0) return 0;
    const n = this.maxEntries;
    const limit = nowMs - this.ageingTimeMs;
    let aged = 0;
    let e = this.sweepCursor;
    const steps = Math.min(budget, n);
    for (let k = 0; k < steps; k++) {
      if (this.flags[e] === FLAG_USED && this.seenMs[e] <= limit) {
        this.removeEntry(e);
        aged++;
      }
      e++;
      if (e === n) e = 0;
    }
    this.sweepCursor = e;
    this.counters.aged += aged;
    return aged;
  }

  /** The entry of (vid, mac) without touching it (control plane: trace), or null. */
  peekHL(vid: number, macHi16: number, macLo32: number, nowMs: number): FdbEntryView | null {
    const e = this.find((vid << 16) | macHi16, macLo32);
    if (e === EMPTY) return null;
    const isStatic = (this.flags[e] & FLAG_STATIC) !== 0;
    return {
      vid,
      mac: (macHi16 & 0xffff) * TWO32 + (macLo32 >>> 0),
      port: this.port[e],
      isStatic,
      ageMs: isStatic ? 0 : Math.max(0, nowMs - this.seenMs[e]),
      ipv4: this.ipv4[e],
    };
  }

  /**
   * Checks the table's bookkeeping (control plane, O(maxEntries)): used count, per-port dynamic counts and LRU lists,
   * the count buckets. Returns a description of the first inconsistency, or null when sound.
   */
  checkInvariants(): string | null {
    let used = 0;
    const dyn = new Int32Array(this.maxPorts);
    for (let e = 0; e < this.maxEntries; e++) {
      const f = this.flags[e];
      if (f === 0) continue;
      used++;
      const p = this.port[e];
      if (p < 0 || p >= this.maxPorts) return `entry ${e} points at port ${p}`;
      if ((f & FLAG_STATIC) === 0) dyn[p]++;
      if (this.find(this.keyHi[e], this.keyLo[e]) !== e) return `entry ${e} is not reachable through the hashtable`;
    }
    if (used !== this.used) return `used count ${this.used} but ${used} entries in the pool`;
    let max = 0;
    for (let p = 0; p < this.maxPorts; p++) {
      if (dyn[p] !== this.portDynamic[p]) return `port ${p}: ${this.portDynamic[p]} dynamic entries counted, ${dyn[p]} present`;
      let n = 0;
      for (let e = this.lruHead[p]; e !== EMPTY; e = this.lruNext[e]) {
        if (++n > dyn[p]) return `port ${p}: LRU list longer than its ${dyn[p]} entries`;
      }
      if (n !== dyn[p]) return `port ${p}: LRU list holds ${n} of ${dyn[p]} entries`;
      if (dyn[p] > max) max = dyn[p];
    }
    if (max !== this.maxCount) return `largest port holds ${max} dynamic entries, tracked maximum is ${this.maxCount}`;
    return null;
  }

  /**
   * Visits every entry, or those in pool slots from..to-1 (a snapshot taken a slice per event-loop turn); control
   * plane only: allocates one view object per entry.
   */
  forEach(nowMs: number, cb: (entry: FdbEntryView) => void, from = 0, to = this.maxEntries): void {
    const end = Math.min(to, this.maxEntries);
    for (let e = Math.max(0, from); e < end; e++) {
      const f = this.flags[e];
      if (f === 0) continue;
      const isStatic = (f & FLAG_STATIC) !== 0;
      cb({
        vid: this.keyHi[e] >>> 16,
        mac: (this.keyHi[e] & 0xffff) * TWO32 + (this.keyLo[e] >>> 0),
        port: this.port[e],
        isStatic,
        ageMs: isStatic ? 0 : Math.max(0, nowMs - this.seenMs[e]),
        ipv4: this.ipv4[e],
      });
    }
  }
}
