// A data-plane worker's view of a bridge's FDB (src/fdb/fdb.ts with `shared`): lookups read the shared table
// without a lock (why that is safe: fdb.ts, "Shared"; the worker's batch counter, set around every receive
// batch, is what lets the writer reuse removed entries); learning is pushed to the worker's learning ring for the
// main thread, the table's only writer. The engine (src/bridge/bridge.ts) calls it exactly as it calls the Fdb.

import { FLAG_STATIC, fdbHash, REFRESH_GRANULARITY_MS, type SharedFdbLayout } from '../fdb/fdb.js';
import { LEARN, LEARN_ARP, type LearnRing } from './learn-ring.js';

const EMPTY = -1;
/** Slots of the recently-pushed filter (a direct-mapped cache: a new MAC's burst is pushed once, not per frame). */
const RECENT_SLOTS = 256;

export class WorkerFdb {
  private readonly keyHi: Int32Array;
  private readonly keyLo: Int32Array;
  private readonly port: Int32Array;
  private readonly flags: Uint8Array;
  private readonly seenMs: Float64Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly ring: LearnRing;
  /** per-port caps live with the writer; the engine writes this array when it adds a port */
  readonly portMax: Int32Array;
  /** per port id, the main thread's key of the port under that id (PortSnap.portKey), pushed with each entry */
  private readonly portKey: Int32Array;
  private readonly recentHi = new Int32Array(RECENT_SLOTS);
  private readonly recentLo = new Int32Array(RECENT_SLOTS);
  private readonly recentPort = new Int32Array(RECENT_SLOTS).fill(EMPTY);
  private readonly recentMs = new Float64Array(RECENT_SLOTS);
  /** the entry found by the last find() */
  private foundPort = EMPTY;
  private foundFlags = 0;
  private foundSeen = 0;

  constructor(layout: SharedFdbLayout, ring: LearnRing, maxPorts: number) {
    const n = layout.maxEntries;
    this.keyHi = new Int32Array(layout.keyHi);
    this.keyLo = new Int32Array(layout.keyLo);
    this.port = new Int32Array(layout.port);
    this.flags = new Uint8Array(layout.flags);
    this.seenMs = new Float64Array(layout.seenMs);
    this.buckets = new Int32Array(layout.buckets);
    this.mask = layout.mask;
    if (this.keyHi.length !== n || this.port.length !== n || this.buckets.length !== this.mask + 1) {
      throw new RangeError('shared FDB layout does not match its sizes');
    }
    this.ring = ring;
    this.portMax = new Int32Array(maxPorts);
    this.portKey = new Int32Array(maxPorts);
  }

  /** The main thread's key of the port now under `port` (a new port under a reused id has another key). */
  setPortKey(port: number, key: number): void {
    if (this.portKey[port] === key) return;
    this.portKey[port] = key;
    // what the recently-pushed filter remembers of the old port must not hold back the new one's pushes
    for (let i = 0; i < RECENT_SLOTS; i++) if (this.recentPort[i] === port) this.recentPort[i] = EMPTY;
  }

  /**
   * Finds (hi, lo): true with foundPort/foundFlags/foundSeen set, false when absent (or, rarely, while the writer
   * shifts the entry within its probe run: a miss, so the frame is flooded, never sent to a wrong port).
   */
  private find(hi: number, lo: number): boolean {
    const buckets = this.buckets;
    const mask = this.mask;
    const n = this.port.length;
    let i = fdbHash(hi, lo) & mask;
    // bounded: the table is at most half full, and a probe racing the writer must not loop
    for (let k = 0; k <= mask; k++) {
      const e = Atomics.load(buckets, i);
      if (e === EMPTY || e < 0 || e >= n) return false;
      if (this.keyLo[e] === lo && this.keyHi[e] === hi) {
        this.foundPort = this.port[e];
        this.foundFlags = this.flags[e];
        this.foundSeen = this.seenMs[e];
        return true;
      }
      i = (i + 1) & mask;
    }
    return false;
  }

  lookupHL(vid: number, macHi16: number, macLo32: number): number {
    return this.find((vid << 16) | macHi16, macLo32) ? this.foundPort : -1;
  }

  /**
   * The writer's learnHL() decides; this pushes only what would change the table: a new entry, a move, or
   * a refresh that is due. A burst from one new MAC is pushed once per refresh interval (recently-pushed filter).
   */
  learnHL(vid: number, macHi16: number, macLo32: number, port: number, nowMs: number): void {
    const hi = (vid << 16) | macHi16;
    const lo = macLo32;
    if (this.find(hi, lo)) {
      if ((this.foundFlags & FLAG_STATIC) !== 0) return;
      if (this.foundPort === port && nowMs - this.foundSeen < REFRESH_GRANULARITY_MS) return;
    }
    const slot = fdbHash(hi, lo) & (RECENT_SLOTS - 1);
    if (this.recentPort[slot] === port && this.recentHi[slot] === hi && this.recentLo[slot] === lo &&
      nowMs - this.recentMs[slot] < REFRESH_GRANULARITY_MS) return;
    // the ring counts what it took and what it refused (full)
    if (this.ring.push(LEARN, hi, lo, port, this.portKey[port])) {
      this.recentHi[slot] = hi;
      this.recentLo[slot] = lo;
      this.recentPort[slot] = port;
      this.recentMs[slot] = nowMs;
    }
  }

  /** ARP snooping: the writer records it (the entry may be learned by the same drain). */
  setIpv4(vid: number, macHi16: number, macLo32: number, ip: number): void {
    this.ring.push(LEARN_ARP, (vid << 16) | macHi16, macLo32, ip | 0);
  }

  // The writer makes these changes on its own copy of the port table (the main thread's engine); here they
  // are nothing to do.
  removePort(_port: number): number {
    return 0;
  }

  flushDynamic(_port = -1): number {
    return 0;
  }

  removePortVlans(_port: number, _keep: (vid: number) => boolean): number {
    return 0;
  }

  sweep(_nowMs: number, _budget: number): number {
    return 0;
  }
}
