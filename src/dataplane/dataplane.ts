// The data plane on more than one thread (`data_workers` > 1; native-notes/multicore.md): the main thread keeps
// control, timers, the FDB's one writer and the ports it reads itself; each worker (worker.ts) reads the ports given
// to it and forwards with the same engine.
//
// Who reads which port. Per bridge, the ports a worker can serve are spread over the main thread (owner 0) and the
// workers (1 .. n-1) by their order of port id. A bridge keeps all its ports on the main thread while it has what a
// worker's engine does not carry: a bond (failover switches the bond port's I/O), a mirror or a running capture (they
// see every frame at every port), an egress rate limit (its bucket is the main thread's), or while a handover pauses
// I/O. Ports with port security or QoS (their buckets and holds are the main thread's), host and vxlan ports are
// always read by the main thread. Every thread holds every port for sending, with an fd of its own (a dup()).
//
// Changes reach the workers as a whole port table per bridge under a new epoch (sync()), between two batches of
// theirs; sync() waits (Atomics.wait, bounded) until every worker has applied it, so a control request that changed a
// port is answered only when no thread forwards with the old table any more. A port moves between readers by
// stop-then-start: the old reader has stopped before the new one starts, so no frame is read twice and a flow keeps
// its order. The same round trip brings the workers' counters (folded into the main thread's ports: stats are
// complete when sync(true) ran first) and the learning rings are drained into the FDB whenever a worker signals.

import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import { PacketPort, unixSocket } from '../io/native.js';
import { PortCounter } from '../io/native-types.js';
import { LearnRing, type LearnSink } from './learn-ring.js';
import {
  BRIDGE_FIELDS, counterSlabBytes, ENGINE_FIELDS, PORT_FIELDS, ROW, ROW_FIELDS, ROW_GEN, ROW_NATIVE, type MainToWorker, type PortSnap, type WorkerInit,
  type WorkerToMain,
} from './protocol.js';

/** Entries per learning ring (per worker and bridge). */
export const LEARN_RING_ENTRIES = 4096;
/** How long sync() waits for a worker's answer before it gives up on that worker for this round. */
export const SYNC_TIMEOUT_MS = 2000;
/** The first sync also waits for the workers to start (a V8 isolate, the modules, the addon each). */
export const START_TIMEOUT_MS = 10_000;
const RX_KINDS = new Set(['tap', 'attach', 'uplink']);
/** The largest VLAN id a learning entry can carry (entries are range-checked before they reach the FDB). */
const VID_MAX = 4094;

/** Atomics.waitAsync (V8 has it since Node 16; TypeScript's lib only from ES2024). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

export interface DataPlaneBridge {
  name: string;
  bridge: Bridge;
  /** the bridge's uplink is a bond (failover replaces the bond port's I/O, which a worker's copy does not follow) */
  hasBond(): boolean;
}

/**
 * Whether workers may read this bridge's ports: not while it has what a worker's engine does not carry, a bond, a
 * mirror or a running capture (mirrors and captures see every frame at every port, a mirror output included), or an
 * egress rate limit (src/bridge/qos.ts: one bucket, on the main thread, for what every thread would send to the port).
 */
function workersMayRead(b: DataPlaneBridge): boolean {
  return !b.hasBond() && b.bridge.mirrors.length === 0 && !b.bridge.portList.some((p) => p.tap !== null || (p.qos !== null && p.qos.egressLimited));
}

/** Whether a worker can read this port: a TAP or AF_PACKET fd the addon opened, of a kind without main-thread work. */
function workerCanRead(p: BridgePort): boolean {
  return p.io instanceof PacketPort && !p.io.isClosed && RX_KINDS.has(p.kind) && p.security === null && p.qos === null;
}

export interface DataPlaneOptions {
  /** threads forwarding in all, the main thread included (>= 2) */
  count: number;
  /** the daemon's bridges now; those created after start() (a reload) stay with the main thread */
  bridges(): DataPlaneBridge[];
  directPoll: boolean;
  log: Logger;
  /** I/O paused for a handover: every port stays with the main thread, which does not read either */
  paused(): boolean;
  /** a worker's read of a port failed (as PortIo's onError on the main thread) */
  onIoError(bridge: string, port: string, io: PacketPort, errno: number, syscall: string, stopped: boolean): void;
}

interface BridgeSlot {
  /** the engine this slot was made for (a bridge re-created by a reload is another one) */
  bridge: Bridge;
  ring: LearnRing;
  counters: Float64Array;
  /** the counters folded so far, per row (protocol.ts layout) */
  folded: Float64Array;
  /** ioKey of each port id this worker holds an fd for */
  held: Map<number, number>;
  /** the port table last sent, without fds (JSON) */
  sent: string;
  ports: string[];
}

interface WorkerHandle {
  id: number;
  worker: Worker;
  ack: Int32Array;
  slots: Map<string, BridgeSlot>;
  alive: boolean;
  timeouts: number;
  exited: Promise<void>;
}

export interface DataPlaneShow {
  data_workers: number;
  epoch: number;
  syncs: number;
  learned_from_workers: number;
  workers: Array<{
    id: number; alive: boolean; ports: string[]; batches: number; frames: number; learn_pushed: number; learn_dropped: number;
    sync_timeouts: number;
  }>;
}

export class DataPlane {
  private readonly opts: DataPlaneOptions;
  private readonly log: Logger;
  private readonly workers: WorkerHandle[] = [];
  private readonly clock = new Float64Array(new SharedArrayBuffer(8));
  private readonly ioKeys = new WeakMap<object, number>();
  private nextIoKey = 1;
  /** main-thread ports whose reading this module stopped (a worker reads them) */
  private readonly stoppedHere = new Set<PacketPort>();
  private epoch = 0;
  private syncs = 0;
  private learned = 0;
  private stopped = false;
  private mainPorts = new Map<string, string[]>();
  /** per bridge at start: the workers' batch counters (worker id - 1 indexes them) */
  private readonly readers = new Map<Bridge, Int32Array>();
  /** I/O objects a worker could not adopt: read by the main thread only */
  private readonly refused = new Set<number>();

  constructor(opts: DataPlaneOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 2) throw new RangeError('a data plane on threads needs count >= 2');
    this.opts = opts;
    this.log = opts.log;
  }

  /** Starts the workers (count - 1 of them) and hands out the ports. */
  start(nowMs: number): void {
    this.setClock(nowMs);
    // the workers' batch counters, one word each per bridge: the FDB reuses a removed entry only once no worker
    // can still hold it (fdb.ts, "Shared")
    for (const b of this.opts.bridges()) {
      const readers = new Int32Array(new SharedArrayBuffer(4 * (this.opts.count - 1)));
      b.bridge.fdb.setReaders(readers);
      this.readers.set(b.bridge, readers);
    }
    for (let id = 1; id < this.opts.count; id++) this.spawn(id);
    this.sync(true, START_TIMEOUT_MS);
  }

  private spawn(id: number): void {
    const ackBuf = new SharedArrayBuffer(4);
    const slots = new Map<string, BridgeSlot>();
    const init: WorkerInit = { id, clock: this.clock.buffer as SharedArrayBuffer, ack: ackBuf, directPoll: this.opts.directPoll, bridges: [] };
    for (const b of this.opts.bridges()) {
      const layout = b.bridge.fdb.sharedLayout();
      if (layout === null) throw new Error(`bridge ${b.name}: its FDB is not shared (data_workers needs a shared table)`);
      const maxPorts = b.bridge.ports.length;
      const ring = new LearnRing(LEARN_RING_ENTRIES);
      const counters = new Float64Array(new SharedArrayBuffer(counterSlabBytes(maxPorts)));
      slots.set(b.name, { bridge: b.bridge, ring, counters, folded: new Float64Array(counters.length), held: new Map(), sent: '', ports: [] });
      const readers = this.readers.get(b.bridge);
      if (readers === undefined) throw new Error(`bridge ${b.name}: no reader counters`);
      init.bridges.push({
        name: b.name, maxPorts, fdb: layout, readers: readers.buffer as SharedArrayBuffer, reader: id - 1, ring: ring.buffer,
        counters: counters.buffer as SharedArrayBuffer,
      });
    }
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, name: `tapbridge-dp${id}` });
    const h: WorkerHandle = { id, worker, ack: new Int32Array(ackBuf), slots, alive: true, timeouts: 0, exited: Promise.resolve() };
    h.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: WorkerToMain) => this.onMessage(h, m));
    worker.on('error', (err) => {
      this.log.error({ err, worker: id }, 'data worker failed; its ports go back to the main thread');
      this.lose(h);
    });
    worker.on('exit', (code) => {
      if (!this.stopped && h.alive) {
        this.log.error({ worker: id, code }, 'data worker exited; its ports go back to the main thread');
        this.lose(h);
      }
    });
    for (const slot of slots.values()) this.armDrain(h, slot);
    this.workers.push(h);
  }

  /** A worker is gone: the next sync gives its ports to the others (the main thread among them). */
  private lose(h: WorkerHandle): void {
    if (!h.alive) return;
    h.alive = false;
    for (const slot of h.slots.values()) {
      slot.held.clear();
      // it may have ended inside a batch: its counter must not hold removed FDB entries back
      slot.bridge.fdb.readerGone(h.id - 1);
    }
    if (!this.stopped) setImmediate(() => this.sync(false));
  }

  private onMessage(h: WorkerHandle, m: WorkerToMain): void {
    if (m.type === 'io_error') {
      const port = h.slots.get(m.bridge)?.bridge.portByName(m.port) ?? null;
      const io = port?.io;
      if (io instanceof PacketPort && this.ioKeys.get(io) === m.ioKey) this.opts.onIoError(m.bridge, m.port, io, m.errno, m.syscall, m.stopped);
    } else if (m.type === 'adopt_failed') {
      // the port stays with the main thread for reading; its table is sent again so the worker can send to it
      this.refused.add(m.ioKey);
      this.log.error({ worker: h.id, bridge: m.bridge, port: m.port, reason: m.message }, 'data worker could not take a port; the main thread reads it');
      const slot = h.slots.get(m.bridge);
      if (slot !== undefined) {
        slot.held.delete(slot.bridge.portByName(m.port)?.id ?? -1);
        slot.sent = '';
      }
      if (!this.stopped) setImmediate(() => this.sync(false));
    } else if (m.type === 'fatal') {
      this.log.error({ worker: h.id, reason: m.message }, 'data worker error');
    }
  }

  /** The coarse clock the workers' engines read (the main thread's, set every tick). */
  setClock(nowMs: number): void {
    this.clock[0] = nowMs;
  }

  /** Drains a worker's learning ring whenever it signals, until stop(). */
  private armDrain(h: WorkerHandle, slot: BridgeSlot): void {
    const [word, index] = slot.ring.signalWord;
    const again = (): void => {
      if (this.stopped || !h.alive) return;
      try {
        this.drainSlot(slot);
      } catch (err) {
        // a bug must not end the daemon from a promise callback; the tick drains again
        this.log.error({ err, worker: h.id }, 'draining a learning ring failed');
      }
      const r = waitAsync(word, index, Atomics.load(word, index), 1000);
      if (r.async) void r.value.then(again);
      else setImmediate(again);
    };
    again();
  }

  private drainSlot(slot: BridgeSlot): void {
    if (slot.ring.pending === 0) return;
    const br = slot.bridge;
    const fdb = br.fdb;
    const now = this.clock[0];
    const sink: LearnSink = {
      learn: (hi, lo, portId) => {
        if (hi >>> 16 > VID_MAX) return;
        const p = br.ports[portId];
        // the worker's copy may be one sync behind: learn only for a port that still learns here
        if (p === null || p === undefined || !p.learning || p.state !== 'up') return;
        fdb.learnHL(hi >>> 16, hi & 0xffff, lo, portId, now);
        this.learned++;
      },
      arp: (hi, lo, ip) => {
        if (hi >>> 16 <= VID_MAX) fdb.setIpv4(hi >>> 16, hi & 0xffff, lo, ip);
      },
    };
    slot.ring.drain(sink);
  }

  /** Drains every learning ring now (the tick's backstop to the signals). */
  drain(): void {
    for (const h of this.workers) if (h.alive) for (const slot of h.slots.values()) this.drainSlot(slot);
  }

  private keyOf(io: object): number {
    let k = this.ioKeys.get(io);
    if (k === undefined) {
      k = this.nextIoKey++;
      this.ioKeys.set(io, k);
    }
    return k;
  }

  /**
   * Brings every worker up to the current port tables; with `force` a round trip happens even when nothing
   * changed (fresh counters for stats). Returns when every live worker answered or timeoutMs passed.
   */
  sync(force: boolean, timeoutMs = SYNC_TIMEOUT_MS): void {
    if (this.stopped) return;
    const live = this.workers.filter((h) => h.alive);
    const paused = this.opts.paused();
    const owners = new Map<BridgePort, number>();
    const threads = live.length + 1;
    this.mainPorts = new Map();
    const bridges = this.opts.bridges();
    const served = new Set<Bridge>();
    for (const h of live) for (const slot of h.slots.values()) served.add(slot.bridge);
    for (const b of bridges) {
      const here: string[] = [];
      let i = 0;
      const eligible = !paused && served.has(b.bridge) && workersMayRead(b);
      for (const p of b.bridge.portList) {
        let owner = 0;
        if (eligible && workerCanRead(p) && !this.refused.has(this.keyOf(p.io!))) {
          owner = i % threads;
          i++;
        }
        owners.set(p, owner);
        // a port without I/O (closed, waiting to be re-opened) is read by nobody
        if (owner === 0 && p.io !== null) here.push(p.name);
      }
      this.mainPorts.set(b.name, here);
    }
    // the main thread stops reading what moves to a worker before the worker starts
    for (const [p, owner] of owners) {
      if (owner !== 0 && p.io instanceof PacketPort && !this.stoppedHere.has(p.io)) {
        p.io.stop();
        this.stoppedHere.add(p.io);
      }
    }
    const epoch = ++this.epoch;
    const waiting: WorkerHandle[] = [];
    for (let w = 0; w < live.length; w++) {
      const h = live[w];
      const tables: Record<string, PortSnap[]> = {};
      const dups: number[] = [];
      let changed = false;
      for (const [name, slot] of h.slots) {
        const current = bridges.some((b) => b.bridge === slot.bridge);
        const snaps: PortSnap[] = [];
        const rxNames: string[] = [];
        for (const p of current ? slot.bridge.portList : []) {
          const io = p.io;
          if (!(io instanceof PacketPort) || io.isClosed) continue;
          const ioKey = this.keyOf(io);
          const rx = owners.get(p) === w + 1;
          if (rx) rxNames.push(p.name);
          snaps.push({
            id: p.id, name: p.name, kind: p.kind, ioKey, fd: -1, ioKind: io.kind, ifindex: p.ifindex, rx, state: p.state,
            learning: p.learning, flood: p.flood, isolated: p.isolated, checkStacked: p.checkStacked, vlan: p.vlan.spec, mtu: p.mtu,
            fdbMax: p.fdbMax,
          });
        }
        const json = JSON.stringify(snaps);
        slot.ports = rxNames;
        if (json === slot.sent) continue;
        // fds for the ports this worker does not hold yet
        const held = new Map<number, number>();
        for (const s of snaps) {
          if (slot.held.get(s.id) !== s.ioKey) {
            const io = slot.bridge.ports[s.id]!.io as PacketPort;
            try {
              s.fd = unixSocket.dup(io.fd);
              dups.push(s.fd);
            } catch (err) {
              // the main thread keeps reading it (from the next sync on), and the worker cannot send to it
              this.refused.add(s.ioKey);
              this.log.warn({ err, port: s.name }, 'dup of a port fd for a data worker failed; the main thread reads the port');
              if (!this.stopped) setImmediate(() => this.sync(false));
              continue;
            }
          }
          held.set(s.id, s.ioKey);
        }
        tables[name] = snaps.filter((s) => held.has(s.id));
        slot.held = held;
        // a table with a port left out is sent again at the next sync
        slot.sent = held.size === snaps.length ? json : '';
        changed = true;
      }
      if (!changed && !force) continue;
      try {
        h.worker.postMessage({ type: 'sync', epoch, tables } satisfies MainToWorker);
        waiting.push(h);
      } catch (err) {
        for (const fd of dups) unixSocket.close(fd);
        this.log.error({ err, worker: h.id }, 'posting to a data worker failed');
        this.lose(h);
      }
    }
    if (waiting.length > 0) this.syncs++;
    this.waitFor(waiting, epoch, timeoutMs);
    // what the workers learned before they applied this table: a port removed meanwhile is skipped here, before
    // its id can be given to a new port
    this.drain();
    // the main thread reads again what came back, once the worker that had it has stopped
    for (const [p, owner] of owners) {
      if (owner === 0 && p.io instanceof PacketPort && this.stoppedHere.has(p.io)) {
        this.stoppedHere.delete(p.io);
        if (!paused) p.io.resume();
      }
    }
    for (const io of this.stoppedHere) if (io.isClosed) this.stoppedHere.delete(io);
    this.fold();
  }

  private waitFor(list: WorkerHandle[], epoch: number, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    for (const h of list) {
      for (;;) {
        const seen = Atomics.load(h.ack, 0);
        if (seen >= epoch) break;
        const left = deadline - performance.now();
        if (left <= 0) {
          h.timeouts++;
          this.log.error({ worker: h.id, epoch, acked: seen }, 'data worker did not answer a sync in time');
          break;
        }
        Atomics.wait(h.ack, 0, seen, left);
      }
    }
  }

  /** Adds what the workers counted since the last fold to the main thread's ports and engines. */
  private fold(): void {
    for (const h of this.workers) {
      for (const slot of h.slots.values()) {
        const c = slot.counters;
        const f = slot.folded;
        const br = slot.bridge;
        for (let id = 0; id < br.ports.length; id++) {
          const row = id * ROW;
          const gen = c[row + ROW_GEN];
          if (gen === 0) continue;
          if (f[row + ROW_GEN] !== gen) {
            f.fill(0, row, row + ROW);
            f[row + ROW_GEN] = gen;
          }
          const port = br.ports[id];
          const fields = port as unknown as Record<string, number> | null;
          for (let k = 0; k < PORT_FIELDS.length; k++) {
            const i = row + ROW_FIELDS + k;
            const d = c[i] - f[i];
            f[i] = c[i];
            if (fields !== null && d > 0) fields[PORT_FIELDS[k]] += d;
          }
          for (let k = 0; k < PortCounter.Count; k++) {
            const i = row + ROW_NATIVE + k;
            const d = c[i] - f[i];
            f[i] = c[i];
            if (port !== null && k !== PortCounter.TxLastErrno && d > 0) port.savedCounters[k] += d;
          }
        }
        const base = br.ports.length * ROW;
        const bc = br.counters as unknown as Record<string, number>;
        for (let k = 0; k < ENGINE_FIELDS.length; k++) {
          const d = c[base + k] - f[base + k];
          f[base + k] = c[base + k];
          if (d > 0) bc[ENGINE_FIELDS[k]] += d;
        }
      }
    }
  }

  /** data_workers.show */
  show(): DataPlaneShow {
    const workers: DataPlaneShow['workers'] = [{
      id: 0, alive: true, ports: [...this.mainPorts.values()].flat(), batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: 0,
    }];
    for (const h of this.workers) {
      const row = { id: h.id, alive: h.alive, ports: [] as string[], batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: h.timeouts };
      for (const slot of h.slots.values()) {
        if (h.alive) row.ports.push(...slot.ports);
        const base = slot.bridge.ports.length * ROW;
        const v = (name: (typeof BRIDGE_FIELDS)[number]): number => slot.counters[base + BRIDGE_FIELDS.indexOf(name)];
        row.batches += v('batches');
        row.frames += v('frames');
        // the ring itself counts what the worker pushed and what it refused
        row.learn_pushed += slot.ring.pushed;
        row.learn_dropped += slot.ring.dropped;
      }
      workers.push(row);
    }
    return { data_workers: this.opts.count, epoch: this.epoch, syncs: this.syncs, learned_from_workers: this.learned, workers };
  }

  /** Stops the workers (each closes its fds first) and gives every port back to the main thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const epoch = ++this.epoch;
    const live = this.workers.filter((h) => h.alive);
    for (const h of live) {
      try {
        h.worker.postMessage({ type: 'stop', epoch } satisfies MainToWorker);
      } catch {
        // gone already
      }
    }
    this.waitFor(live, epoch, SYNC_TIMEOUT_MS);
    this.fold();
    this.stopped = true;
    // the workers closed their ports: nothing reads the tables beside the main thread any more
    for (const br of this.readers.keys()) br.fdb.setReaders(null);
    for (const io of this.stoppedHere) if (!io.isClosed && !this.opts.paused()) io.resume();
    this.stoppedHere.clear();
    await Promise.all(this.workers.map(async (h) => {
      const t = setTimeout(() => void h.worker.terminate(), 1000);
      await h.exited;
      clearTimeout(t);
    }));
  }
}
