// The data plane on more than one thread (`data_workers` > 1; native-notes/multicore.md): the main thread keeps
// control, timers, the FDB's one writer and the ports it reads itself; each worker (worker.ts) reads the ports given
// to it and forwards with the same engine.
//
// Who reads which port. Per bridge, the ports a worker can serve are spread over the main thread (owner 0) and the
// workers (1 .. n-1): a port keeps the reader it was given for as long as that reader lives and the bridge stays
// eligible; a new port goes to the thread of this bridge that reads the fewest (ties: the lowest id, the main thread
// first), so an addif or delif moves no other port. A bridge keeps all its ports on the main thread while it has
// what a worker's engine does not carry: a bond (failover switches the bond port's I/O), a mirror or a running
// capture (they see every frame at every port), an egress rate limit (its bucket is the main thread's), or while a
// handover pauses I/O. Ports with port security or QoS (their buckets and holds are the main thread's), host and
// vxlan ports are always read by the main thread. Every thread holds every port for sending, with an fd of its own
// (a dup()); a vhost-user port instead as a peer of the main thread's port (src/native/vhost-user.cc: the same rings,
// each under its lock), whose guest TX ring the reader drains; its connection stays on the main thread.
//
// A port changes reader by stop, acknowledge, start: the new reader starts only once no other thread can read it.
// The main thread stops reading a port before it posts the table that gives it to a worker; it reads a port again,
// and another worker is told to read it, only after the worker that read it acknowledged the table that stopped it.
// So no two threads read one port, and the frames of one port reach the engines in the order the port delivered them.
//
// Changes reach the workers as a whole port table per bridge under a new epoch (sync()), applied between two
// batches of theirs; sync() waits (Atomics.wait, bounded by a timeout) until every worker acknowledged it. When a
// worker does not acknowledge in time, sync() throws DataPlaneTimeout: the change is made on the main thread, but
// that worker may still forward with its old table, so the control request that caused it must not be answered as
// applied. The worker keeps every port it was given (the main thread does not read them) until it acknowledges.
// A worker whose apply threw acknowledges with that epoch marked failed: sync() throws DataPlaneApplyFailed and
// sends that worker its whole tables again at the next sync.
// A stuck worker: one that stays late for STUCK_SYNC_TIMEOUTS sync timeouts in a row (it did not acknowledge within
// SYNC_TIMEOUT_MS, and acknowledged no table at all in the (STUCK_SYNC_TIMEOUTS - 1) x SYNC_TIMEOUT_MS after that
// or after its last acknowledgement of an older table, as the tick sees it) is
// terminated (worker.terminate(); logged once, counted in workers_terminated): once its thread has exited (its fds
// close with it) its ports go to the other threads as a failed worker's do. It is not started again.
// A handover asks awaitReadsStopped() after its pause: it waits (bounded) until no worker may read a port any more,
// and names the workers that may; the handover is refused while there are any (src/handover/serve.ts).
// Each acknowledgement brings the workers' counters (folded into the main thread's ports; lastFolded() says when),
// and the learning rings are drained into the FDB whenever a worker signals: an entry is learned only while its port
// id still names the port it was pushed for (its port key) and that port is a member of its VLAN.
// IGMP/MLD snooping (mdb-publish.ts): the main thread is the MDB's one writer; a sync carries a whole copy of a
// bridge's MDB to each worker whose copy is behind, and the control frames a worker reads come back through its punt
// ring, drained like the learning ring.

import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import { PacketPort, unixSocket, VhostUserIo } from '../io/native.js';
import { PortCounter } from '../io/native-types.js';
import { LearnRing, type LearnSink } from './learn-ring.js';
import { stuckWorkerId, WORKER_STUCK_ENV } from './test-hooks.js';
import { MDB_PUBLISH_INTERVAL_MS, MdbPublished, PuntConsumer } from './mdb-publish.js';
import { PuntRing } from './punt-ring.js';
import {
  ACK_EPOCH, ACK_FAILED, ACK_WORDS, BRIDGE_FIELDS, counterSlabBytes, ENGINE_FIELDS, mcastCounterBase, type McastPublish, PORT_FIELDS, ROW, ROW_FIELDS, ROW_GEN, ROW_NATIVE, type MainToWorker, type PortSnap, type WorkerInit,
  type WorkerToMain,
} from './protocol.js';

/** Entries per learning ring (per worker and bridge). */
export const LEARN_RING_ENTRIES = 4096;
/** Slots per punt ring (per worker and bridge; punt-ring.ts: 2 KiB each). */
export const PUNT_RING_SLOTS = 128;
/** How long sync() waits for the workers' acknowledgement before it throws DataPlaneTimeout. */
export const SYNC_TIMEOUT_MS = 2000;
/** A worker late for this many sync timeouts in a row (SYNC_TIMEOUT_MS each) is terminated. */
export const STUCK_SYNC_TIMEOUTS = 3;
/** The first sync also waits for the workers to start (a V8 isolate, the modules, the addon each). */
export const START_TIMEOUT_MS = 10_000;
/** tick() asks the workers for their counters at least this often (what lastFolded() reports). */
export const FOLD_INTERVAL_MS = 1000;
const RX_KINDS = new Set(['tap', 'attach', 'uplink', 'vhost-user']);
/** The largest VLAN id a learning entry can carry (entries are range-checked before they reach the FDB). */
const VID_MAX = 4094;

/** Atomics.waitAsync (V8 has it since Node 16; TypeScript's lib only from ES2024). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** A port's I/O as the data plane moves it between readers (the addon's PacketPort; a fake in unit tests). */
export interface RxIo {
  readonly fd: number;
  /** 'vhost-user': stop()/resume() concern the guest's TX ring only; workers adopt `device` instead of a dup of fd */
  readonly kind: 'tap' | 'packet' | 'vhost-user';
  readonly device?: number;
  readonly isClosed: boolean;
  stop(): void;
  resume(): void;
}

/** The part of a worker_threads Worker the data plane uses. */
export interface WorkerLike {
  postMessage(m: MainToWorker): void;
  on(event: 'message', listener: (m: WorkerToMain) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

/** What the data plane needs from the addon and worker_threads (unit tests pass fakes). */
export interface DataPlaneHooks {
  /** the port's I/O when a worker could read it and send to it (an open TAP or AF_PACKET fd), else null */
  rxIo(p: BridgePort): RxIo | null;
  dup(fd: number): number;
  closeFd(fd: number): void;
  spawn(init: WorkerInit, name: string): WorkerLike;
  /** the clock (ms) that times how long a worker stays late (default performance.now()) */
  nowMs?(): number;
}

const NATIVE_HOOKS: DataPlaneHooks = {
  rxIo: (p) => (p.io instanceof PacketPort && !p.io.isClosed ? p.io : p.io instanceof VhostUserIo && !p.io.isClosed ? p.io.rxHandle : null),
  dup: (fd) => unixSocket.dup(fd),
  closeFd: (fd) => unixSocket.close(fd),
  spawn: (init, name) => new Worker(new URL('./worker.js', import.meta.url), { workerData: init, name }) as unknown as WorkerLike,
};

/** sync() could not confirm that every worker applied the current port tables. */
export class DataPlaneSyncError extends Error {
  /** the workers (ids) concerned */
  readonly workers: number[];
  constructor(message: string, workers: number[]) {
    super(message);
    this.workers = workers;
  }
}

/** A worker did not acknowledge in time (or had not acknowledged an earlier table). */
export class DataPlaneTimeout extends DataPlaneSyncError {
  constructor(workers: number[], timeoutMs: number) {
    super(`data worker${workers.length > 1 ? 's' : ''} ${workers.join(', ')} did not acknowledge the new port tables within ${timeoutMs} ms: ` +
      'the change is made on the main thread, but may not be in force on the ports those workers read', workers);
    this.name = 'DataPlaneTimeout';
  }
}

/** A worker acknowledged, but applying the tables threw there (its error is logged as 'data worker error'). */
export class DataPlaneApplyFailed extends DataPlaneSyncError {
  constructor(workers: number[]) {
    super(`data worker${workers.length > 1 ? 's' : ''} ${workers.join(', ')} failed to apply the new port tables (see the log): ` +
      'the change is made on the main thread, but may be in force only in part on the ports those workers read; the whole tables are sent again at the next sync', workers);
    this.name = 'DataPlaneApplyFailed';
  }
}

export interface DataPlaneBridge {
  name: string;
  bridge: Bridge;
  /** the bridge's uplink is a bond (failover replaces the bond port's I/O, which a worker's copy does not follow) */
  hasBond(): boolean;
}

/**
 * Whether workers may read this bridge's ports: not while it has what a worker's engine does not carry, a bond, a
 * mirror or a running capture (mirrors and captures see every frame at every port, a mirror output included), an
 * egress rate limit (src/bridge/qos.ts: one bucket, on the main thread, for what every thread would send to the
 * port). Neither IGMP/MLD snooping (workers forward with a copy of the MDB: mdb-publish.ts) nor a vhost-user port
 * (every thread sends into its rings through a peer, under the ring's lock) keeps a bridge here.
 */
function workersMayRead(b: DataPlaneBridge): boolean {
  return !b.hasBond() && b.bridge.mirrors.length === 0 &&
    !b.bridge.portList.some((p) => p.tap !== null || (p.qos !== null && p.qos.egressLimited));
}

export interface DataPlaneOptions {
  /** threads forwarding in all, the main thread included (>= 2) */
  count: number;
  /** the daemon's bridges now; those created after start() (a reload) stay with the main thread */
  bridges(): DataPlaneBridge[];
  directPoll: boolean;
  log: Logger;
  /** I/O paused for a handover: every port goes back to the main thread, which does not read either */
  paused(): boolean;
  /** a worker's read of a port failed (as PortIo's onError on the main thread) */
  onIoError(bridge: string, port: string, io: RxIo, errno: number, syscall: string, stopped: boolean): void;
  /** the addon and worker_threads (default); unit tests pass fakes */
  hooks?: DataPlaneHooks;
}

interface BridgeSlot {
  /** the engine this slot was made for (a bridge re-created by a reload is another one) */
  bridge: Bridge;
  ring: LearnRing;
  /** IGMP/MLD control frames the worker read, for the MDB's writer */
  punt: PuntRing;
  /** the MDB last published to the worker */
  mdb: MdbPublished;
  counters: Float64Array;
  /** the counters folded so far, per row (protocol.ts layout) */
  folded: Float64Array;
  /** ioKey of each port id this worker holds an fd for */
  held: Map<number, number>;
  /** the port table last sent (fds as sent); null: send it again */
  sent: PortSnap[] | null;
  /** the ports this worker was told to read in the table last sent */
  reading: Map<RxIo, string>;
}

interface WorkerHandle {
  id: number;
  worker: WorkerLike;
  ack: Int32Array;
  slots: Map<string, BridgeSlot>;
  /** false once its thread exited (its fds are closed with it) */
  alive: boolean;
  /** the last epoch posted to it */
  posted: number;
  /** the last failed epoch (ACK_FAILED) already reported */
  failedSeen: number;
  /** it did not acknowledge `posted` in time (a later acknowledgement clears it) */
  late: boolean;
  /** when (hooks' clock, ms) it last became late, or last acknowledged a table while late (slow, not stuck) */
  lateSinceMs: number;
  /** the epoch it had acknowledged at the last settle() */
  ackedSeen: number;
  /** told to terminate: it was stuck (STUCK_SYNC_TIMEOUTS) */
  terminated: boolean;
  timeouts: number;
  /** ports it was told to stop reading (or to close), by the epoch of that table: busy until it acknowledges it */
  releasing: Map<RxIo, number>;
  exited: Promise<void>;
}

export interface DataPlaneShow {
  data_workers: number;
  epoch: number;
  syncs: number;
  learned_from_workers: number;
  /** workers terminated because they were stuck */
  workers_terminated: number;
  workers: Array<{
    id: number; alive: boolean; ports: string[]; batches: number; frames: number; learn_pushed: number; learn_dropped: number;
    sync_timeouts: number;
    /** terminated because it was stuck */
    terminated: boolean;
    punt_pushed: number; punt_dropped: number;
  }>;
}

/** Which thread should read each port (0: the main thread), and which ports the main thread reads. */
interface Assignment {
  owners: Map<BridgePort, number>;
  mainPorts: Map<string, string[]>;
}

export class DataPlane {
  private readonly opts: DataPlaneOptions;
  private readonly log: Logger;
  private readonly hooks: DataPlaneHooks;
  private readonly workers: WorkerHandle[] = [];
  private readonly clock = new Float64Array(new SharedArrayBuffer(8));
  /** identities of I/O objects and ports (PortSnap.ioKey, PortSnap.portKey) */
  private readonly keys = new WeakMap<object, number>();
  private nextKey = 1;
  /** main-thread ports whose reading this module stopped (a worker reads them, or has not acknowledged it stopped) */
  private readonly stoppedHere = new Set<RxIo>();
  /** the thread each port's I/O was given to (sticky: kept while that thread lives and the bridge is eligible) */
  private assigned = new Map<RxIo, number>();
  private epoch = 0;
  private syncs = 0;
  private learned = 0;
  private terminatedCount = 0;
  private stopped = false;
  private mainPorts = new Map<string, string[]>();
  /** per bridge at start: the workers' batch counters (worker id - 1 indexes them) */
  private readonly readers = new Map<Bridge, Int32Array>();
  /** I/O objects a worker could not adopt: read by the main thread only */
  private readonly refused = new Set<number>();
  /** when and at which epoch the workers' counters were last folded into the main thread's */
  private folded = { epoch: 0, atMs: 0 };
  /** the last sync left a port unread while another worker stops reading it */
  private heldBack = false;
  /** runs punted IGMP/MLD frames through the main thread's MDB */
  private readonly punts = new PuntConsumer();
  /** a publication of the MDB after a drain is scheduled; when the last one ran (performance.now() ms) */
  private publishPending = false;
  private lastPublishAtMs = -Infinity;

  constructor(opts: DataPlaneOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 2) throw new RangeError('a data plane on threads needs count >= 2');
    this.opts = opts;
    this.log = opts.log;
    this.hooks = opts.hooks ?? NATIVE_HOOKS;
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
    const stuck = stuckWorkerId();
    if (stuck !== null) this.log.warn({ worker: stuck }, `${WORKER_STUCK_ENV}: this data worker ignores the main thread from its first stopped read on (a test knob)`);
    for (let id = 1; id < this.opts.count; id++) this.spawn(id);
    // a worker that starts late reads its ports from its acknowledgement on; until then nobody reads them
    this.syncBestEffort(true, START_TIMEOUT_MS);
  }

  private spawn(id: number): void {
    const ackBuf = new SharedArrayBuffer(4 * ACK_WORDS);
    const slots = new Map<string, BridgeSlot>();
    const init: WorkerInit = { id, clock: this.clock.buffer as SharedArrayBuffer, ack: ackBuf, directPoll: this.opts.directPoll, bridges: [] };
    for (const b of this.opts.bridges()) {
      const layout = b.bridge.fdb.sharedLayout();
      if (layout === null) throw new Error(`bridge ${b.name}: its FDB is not shared (data_workers needs a shared table)`);
      const maxPorts = b.bridge.ports.length;
      const ring = new LearnRing(LEARN_RING_ENTRIES);
      const punt = new PuntRing(PUNT_RING_SLOTS);
      const counters = new Float64Array(new SharedArrayBuffer(counterSlabBytes(maxPorts)));
      slots.set(b.name, {
        bridge: b.bridge, ring, punt, mdb: new MdbPublished(), counters, folded: new Float64Array(counters.length), held: new Map(), sent: null,
        reading: new Map(),
      });
      const readers = this.readers.get(b.bridge);
      if (readers === undefined) throw new Error(`bridge ${b.name}: no reader counters`);
      init.bridges.push({
        name: b.name, maxPorts, fdb: layout, readers: readers.buffer as SharedArrayBuffer, reader: id - 1, ring: ring.buffer, punt: punt.buffer,
        counters: counters.buffer as SharedArrayBuffer,
      });
    }
    const worker = this.hooks.spawn(init, `tapbridge-dp${id}`);
    const h: WorkerHandle = {
      id, worker, ack: new Int32Array(ackBuf), slots, alive: true, posted: 0, failedSeen: 0, late: false, lateSinceMs: 0, ackedSeen: 0, terminated: false, timeouts: 0, releasing: new Map(), exited: Promise.resolve(),
    };
    h.exited = new Promise((resolve) => worker.on('exit', () => resolve()));
    worker.on('message', (m: WorkerToMain) => this.onMessage(h, m));
    worker.on('error', (err) => {
      // the thread ends: its ports go to the others once it has exited (its fds close with it)
      this.log.error({ err, worker: id }, 'data worker failed');
    });
    worker.on('exit', (code) => {
      // a terminated stuck worker was logged when it was terminated
      if (!this.stopped && h.alive && !h.terminated) this.log.error({ worker: id, code }, 'data worker exited; its ports go back to the main thread');
      this.lose(h);
    });
    for (const slot of slots.values()) {
      this.armDrain(h, slot);
      this.armPuntDrain(h, slot);
    }
    this.workers.push(h);
  }

  /** A worker's thread has exited (its fds are closed): the next sync gives its ports to the others. */
  private lose(h: WorkerHandle): void {
    if (!h.alive) return;
    h.alive = false;
    h.late = false;
    h.releasing.clear();
    for (const slot of h.slots.values()) {
      slot.held.clear();
      slot.reading.clear();
      // it may have ended inside a batch: its counter must not hold removed FDB entries back
      slot.bridge.fdb.readerGone(h.id - 1);
    }
    this.syncSoon();
  }

  private syncSoon(): void {
    if (!this.stopped) setImmediate(() => this.syncBestEffort(false, SYNC_TIMEOUT_MS));
  }

  private onMessage(h: WorkerHandle, m: WorkerToMain): void {
    if (m.type === 'io_error') {
      const port = h.slots.get(m.bridge)?.bridge.portByName(m.port) ?? null;
      const io = port !== null ? this.hooks.rxIo(port) : null;
      if (io !== null && this.keys.get(io) === m.ioKey) this.opts.onIoError(m.bridge, m.port, io, m.errno, m.syscall, m.stopped);
    } else if (m.type === 'adopt_failed') {
      // the port stays with the main thread for reading; its table is sent again so the worker can send to it
      this.refused.add(m.ioKey);
      this.log.error({ worker: h.id, bridge: m.bridge, port: m.port, reason: m.message }, 'data worker could not take a port; the main thread reads it');
      const slot = h.slots.get(m.bridge);
      if (slot !== undefined) {
        slot.held.delete(slot.bridge.portByName(m.port)?.id ?? -1);
        slot.sent = null;
      }
      this.syncSoon();
    } else if (m.type === 'fatal') {
      this.log.error({ worker: h.id, reason: m.message }, 'data worker error');
    }
  }

  /** The coarse clock the workers' engines read (the main thread's, set every tick). */
  setClock(nowMs: number): void {
    this.clock[0] = nowMs;
  }

  /**
   * The daemon's tick: the clock, the learning rings, the port tables (link events, reloads, re-opened ports and
   * ended captures reach the workers here at the latest), and the workers' counters at least every
   * FOLD_INTERVAL_MS. A worker that does not acknowledge is counted (sync_timeouts) and logged once; the tick
   * does not wait for it again until it has.
   */
  tick(nowMs: number): void {
    this.setClock(nowMs);
    this.settle();
    this.terminateStuck();
    this.drain();
    this.syncBestEffort(nowMs - this.folded.atMs >= FOLD_INTERVAL_MS, SYNC_TIMEOUT_MS);
  }

  /**
   * sync() where no request waits for the answer (start, tick, a worker lost, a handover's pause and resume): a
   * timeout is logged and counted by sync, not thrown; the late worker keeps its ports until it acknowledges.
   */
  syncBestEffort(force: boolean, timeoutMs = SYNC_TIMEOUT_MS): void {
    try {
      this.sync(force, timeoutMs);
    } catch (err) {
      if (!(err instanceof DataPlaneSyncError)) throw err;
    }
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
      learn: (hi, lo, portId, portKey) => {
        const vid = hi >>> 16;
        if (vid > VID_MAX) return;
        const p = br.ports[portId];
        // the worker's copy may be some syncs behind: learn only for the port the entry was pushed for (not another
        // one given its id since), while it still learns, is up and carries the VLAN
        if (p === null || p === undefined || this.keys.get(p) !== portKey) return;
        if (!p.learning || p.state !== 'up' || !p.vlan.isMember(vid)) return;
        fdb.learnHL(vid, hi & 0xffff, lo, portId, now);
        this.learned++;
      },
      arp: (hi, lo, ip) => {
        if (hi >>> 16 <= VID_MAX) fdb.setIpv4(hi >>> 16, hi & 0xffff, lo, ip);
      },
    };
    slot.ring.drain(sink);
  }

  /** Drains every learning and punt ring now (the tick's backstop to the signals). */
  drain(): void {
    for (const h of this.workers) {
      if (!h.alive) continue;
      for (const slot of h.slots.values()) {
        this.drainSlot(slot);
        if (this.drainPunts(slot)) this.publishSoon();
      }
    }
  }

  /** Drains a worker's punt ring whenever it signals, until stop(). */
  private armPuntDrain(h: WorkerHandle, slot: BridgeSlot): void {
    const [word, index] = slot.punt.signalWord;
    const again = (): void => {
      if (this.stopped || !h.alive) return;
      try {
        if (this.drainPunts(slot)) this.publishSoon();
      } catch (err) {
        // a bug must not end the daemon from a promise callback; the tick drains again
        this.log.error({ err, worker: h.id }, 'draining a punt ring failed');
      }
      const r = waitAsync(word, index, Atomics.load(word, index), 1000);
      if (r.async) void r.value.then(again);
      else setImmediate(again);
    };
    again();
  }

  /** The IGMP/MLD frames a worker punted, into the MDB (mdb-publish.ts); true when the MDB changed. */
  private drainPunts(slot: BridgeSlot): boolean {
    return this.punts.drain(slot.punt, slot.bridge, (p) => this.keys.get(p), this.clock[0]);
  }

  /**
   * The MDB changed by what a worker punted: publish it to the workers soon (coalesced, at most once per
   * MDB_PUBLISH_INTERVAL_MS; the tick's sync publishes whatever changed in between anyway).
   */
  private publishSoon(): void {
    if (this.publishPending || this.stopped) return;
    this.publishPending = true;
    const waitMs = Math.max(0, MDB_PUBLISH_INTERVAL_MS - (performance.now() - this.lastPublishAtMs));
    setTimeout(() => {
      this.publishPending = false;
      this.lastPublishAtMs = performance.now();
      this.syncBestEffort(false);
    }, waitMs).unref();
  }

  private keyOf(o: object): number {
    let k = this.keys.get(o);
    if (k === undefined) {
      k = this.nextKey++;
      this.keys.set(o, k);
    }
    return k;
  }

  /**
   * Brings every worker up to the current port tables; with `force` a round trip happens even when nothing
   * changed (fresh counters for stats). Returns when every worker it posted to acknowledged. Throws
   * DataPlaneTimeout when one did not within timeoutMs, or when a worker that has not acknowledged an earlier
   * table had to get a new one or its counters (it is not waited for again, and not posted to for counters alone).
   */
  sync(force: boolean, timeoutMs = SYNC_TIMEOUT_MS): void {
    if (this.stopped) return;
    this.heldBack = false;
    this.settle();
    const plan = this.assign();
    this.stopMainReads(plan);
    const epoch = ++this.epoch;
    const { waiting, skipped } = this.post(plan, epoch, force);
    if (waiting.length > 0) this.syncs++;
    const late = [...skipped, ...this.awaitAcks(waiting, epoch, timeoutMs)];
    const failed = this.failures(waiting);
    this.settle();
    // what the workers learned before they applied this table (entries of a removed port are refused by its key)
    this.drain();
    this.resumeMainReads(plan);
    // every live worker answered this epoch: the counters folded now are as of now
    this.fold(this.workers.every((h) => !h.alive || (waiting.includes(h) && !late.includes(h))));
    // a port held back while another worker stops reading it starts once that one acknowledged: at once when every
    // worker has acknowledged (the next sync starts it), else at a tick after the late one has
    if (this.heldBack && this.lateWorkers().length === 0) this.syncSoon();
    if (late.length > 0) throw new DataPlaneTimeout(late.map((h) => h.id), timeoutMs);
    if (failed.length > 0) throw new DataPlaneApplyFailed(failed.map((h) => h.id));
  }

  /** Step: the workers that answered with a failed apply since the last look (their whole tables go again). */
  private failures(list: WorkerHandle[]): WorkerHandle[] {
    const out: WorkerHandle[] = [];
    for (const h of list) {
      const f = Atomics.load(h.ack, ACK_FAILED);
      if (f <= h.failedSeen) continue;
      h.failedSeen = f;
      for (const slot of h.slots.values()) {
        slot.sent = null;
        slot.mdb.reset();
      }
      out.push(h);
    }
    return out;
  }

  /**
   * Whether the main thread may read this I/O when a handover's pause ends: not while this module stopped it (a
   * worker reads it, or has not acknowledged that it stopped).
   */
  mainMayRead(io: RxIo): boolean {
    return !this.stoppedHere.has(io);
  }

  /** The workers that have not acknowledged the last table posted to them (they keep their ports until they do). */
  lateWorkers(): number[] {
    return this.workers.filter((h) => h.alive && h.late).map((h) => h.id);
  }

  private now(): number {
    return this.hooks.nowMs?.() ?? performance.now();
  }

  /**
   * Step: a worker late for STUCK_SYNC_TIMEOUTS sync timeouts in a row is terminated; its ports go to the other
   * threads once its thread has exited (lose()).
   */
  private terminateStuck(): void {
    const now = this.now();
    for (const h of this.workers) {
      if (!h.alive || !h.late || h.terminated || now - h.lateSinceMs < (STUCK_SYNC_TIMEOUTS - 1) * SYNC_TIMEOUT_MS) continue;
      h.terminated = true;
      this.terminatedCount++;
      this.log.error({ worker: h.id, acked: Atomics.load(h.ack, ACK_EPOCH), posted: h.posted, sync_timeouts: STUCK_SYNC_TIMEOUTS },
        'data worker stuck: no acknowledgement for several sync timeouts in a row; terminated, its ports go to the other threads once it has exited');
      void h.worker.terminate().catch(() => undefined);
    }
  }

  /**
   * A handover's pause (after the sync that took every port from the workers): waits until each live worker
   * acknowledged the table that stopped its reads, at most timeoutMs in all. Returns the workers that may still read
   * a port (none: no port is read by a worker any more).
   */
  awaitReadsStopped(timeoutMs: number): number[] {
    const mayRead = (h: WorkerHandle): boolean => h.alive && (h.releasing.size > 0 || [...h.slots.values()].some((s) => s.reading.size > 0));
    this.settle();
    const deadline = performance.now() + timeoutMs;
    for (const h of this.workers) {
      while (mayRead(h)) {
        const seen = Atomics.load(h.ack, ACK_EPOCH);
        const left = deadline - performance.now();
        if (seen >= h.posted || left <= 0) break;
        Atomics.wait(h.ack, ACK_EPOCH, seen, left);
      }
    }
    this.settle();
    return this.workers.filter(mayRead).map((h) => h.id);
  }

  /** Step: what each worker acknowledged frees the ports it was told to stop reading. */
  private settle(): void {
    for (const h of this.workers) {
      if (!h.alive) continue;
      const acked = Atomics.load(h.ack, ACK_EPOCH);
      for (const [io, epoch] of h.releasing) if (acked >= epoch) h.releasing.delete(io);
      if (h.late && acked >= h.posted) {
        h.late = false;
        this.log.info({ worker: h.id, epoch: acked }, 'data worker acknowledged again');
      } else if (h.late && acked > h.ackedSeen) {
        // it acknowledged a table older than the newest (changes reach a late worker): slow, not stuck
        h.lateSinceMs = this.now();
      }
      h.ackedSeen = acked;
    }
  }

  /** Step: the thread that should read each port. */
  private assign(): Assignment {
    const live = this.workers.filter((h) => h.alive);
    const paused = this.opts.paused();
    const owners = new Map<BridgePort, number>();
    const mainPorts = new Map<string, string[]>();
    const assigned = new Map<RxIo, number>();
    for (const b of this.opts.bridges()) {
      // the threads that serve this bridge, the main thread first; each one's count of ports here
      const load = new Map<number, number>([[0, 0]]);
      for (const h of live) if ([...h.slots.values()].some((s) => s.bridge === b.bridge)) load.set(h.id, 0);
      const eligible = !paused && load.size > 1 && workersMayRead(b);
      const open: Array<[BridgePort, RxIo]> = [];
      for (const p of b.bridge.portList) {
        owners.set(p, 0);
        const io = eligible && p.security === null && p.qos === null && RX_KINDS.has(p.kind) ? this.hooks.rxIo(p) : null;
        if (io === null || this.refused.has(this.keyOf(io))) continue;
        const before = this.assigned.get(io);
        if (before !== undefined && load.has(before)) {
          owners.set(p, before);
          assigned.set(io, before);
          load.set(before, load.get(before)! + 1);
        } else {
          open.push([p, io]);
        }
      }
      for (const [p, io] of open) {
        let owner = 0;
        for (const [t, n] of load) if (n < load.get(owner)!) owner = t;
        owners.set(p, owner);
        assigned.set(io, owner);
        load.set(owner, load.get(owner)! + 1);
      }
      // a port without I/O (closed, waiting to be re-opened) is read by nobody
      mainPorts.set(b.name, b.bridge.portList.filter((p) => owners.get(p) === 0 && p.io !== null).map((p) => p.name));
    }
    this.assigned = assigned;
    this.mainPorts = mainPorts;
    return { owners, mainPorts };
  }

  /** Whether a worker other than `except` reads `io`, or has not acknowledged that it stopped. */
  private busyElsewhere(io: RxIo, except: WorkerHandle | null): boolean {
    for (const h of this.workers) {
      if (h === except || !h.alive) continue;
      if (h.releasing.has(io)) return true;
      for (const slot of h.slots.values()) if (slot.reading.has(io)) return true;
    }
    return false;
  }

  /** Step: the main thread stops reading what a worker is to read, before that worker is told to start. */
  private stopMainReads(plan: Assignment): void {
    for (const [p, owner] of plan.owners) {
      const io = owner !== 0 ? this.hooks.rxIo(p) : null;
      if (io !== null && !this.stoppedHere.has(io)) {
        io.stop();
        this.stoppedHere.add(io);
      }
    }
  }

  /** Step: the main thread reads again what is its own, once no worker can read it any more. */
  private resumeMainReads(plan: Assignment): void {
    const paused = this.opts.paused();
    for (const [p, owner] of plan.owners) {
      const io = owner === 0 ? this.hooks.rxIo(p) : null;
      if (io === null || !this.stoppedHere.has(io) || this.busyElsewhere(io, null)) continue;
      this.stoppedHere.delete(io);
      // a vhost-user port's resume only lets the main thread read its guest TX ring again; whether it reads is the
      // port's own start/stop, which a handover's pause holds (so it runs while paused too, or nothing would undo it)
      if (!paused || io.kind === 'vhost-user') io.resume();
    }
    for (const io of this.stoppedHere) if (io.isClosed) this.stoppedHere.delete(io);
  }

  /**
   * Step: each worker's port tables, posted where they changed (to every worker with `force`, but a late one only
   * gets changes: its queue stays bounded by them). Returns whom to wait for, and the late workers left out.
   */
  private post(plan: Assignment, epoch: number, force: boolean): { waiting: WorkerHandle[]; skipped: WorkerHandle[] } {
    const bridges = new Set(this.opts.bridges().map((b) => b.bridge));
    const waiting: WorkerHandle[] = [];
    const skipped: WorkerHandle[] = [];
    for (const h of this.workers) {
      if (!h.alive) continue;
      const tables: Record<string, PortSnap[]> = {};
      const dups: number[] = [];
      const readingNext: Array<[BridgeSlot, Map<RxIo, string>]> = [];
      /** the bridges whose MDB copy this worker is to get */
      const mdbBehind: Array<[string, BridgeSlot]> = [];
      for (const [name, slot] of h.slots) {
        const current = bridges.has(slot.bridge);
        const snaps = this.snapshot(h, slot, current, plan);
        const tableSent = slot.sent === null || !sameTable(slot.sent, snaps);
        if (slot.mdb.behind(current ? slot.bridge.mcast : null, tableSent)) mdbBehind.push([name, slot]);
        if (!tableSent) continue;
        tables[name] = this.withFds(slot, snaps, dups);
        const reading = new Map<RxIo, string>();
        for (const s of tables[name]) if (s.rx) reading.set(this.ioOf(slot, s)!, s.name);
        readingNext.push([slot, reading]);
      }
      if (Object.keys(tables).length === 0) {
        // a late worker gets no MDB copies of their own (its queue stays bounded by port table changes); a
        // request that changed the MDB fails for it as for a table (skipped: DataPlaneTimeout)
        if (h.late && (force || mdbBehind.length > 0)) skipped.push(h);
        if (h.late || (!force && mdbBehind.length === 0)) continue;
      }
      const mcast: Record<string, McastPublish | null> = {};
      for (const [name, slot] of mdbBehind) {
        const mc = bridges.has(slot.bridge) ? slot.bridge.mcast : null;
        mcast[name] = slot.mdb.publish(mc, mc === null ? 0 : this.keyOf(mc));
      }
      try {
        h.worker.postMessage({ type: 'sync', epoch, tables, mcast } satisfies MainToWorker);
        h.posted = epoch;
        // a port this worker no longer reads is busy until it acknowledges this table
        for (const [slot, reading] of readingNext) {
          for (const io of slot.reading.keys()) if (!reading.has(io)) h.releasing.set(io, epoch);
          slot.reading = reading;
        }
        waiting.push(h);
      } catch (err) {
        for (const fd of dups) this.hooks.closeFd(fd);
        this.log.error({ err, worker: h.id }, 'posting to a data worker failed; terminating it');
        // its ports go to the others once its thread has exited
        for (const slot of h.slots.values()) {
          slot.sent = null;
          slot.mdb.reset();
        }
        void h.worker.terminate();
      }
    }
    return { waiting, skipped };
  }

  private ioOf(slot: BridgeSlot, s: PortSnap): RxIo | null {
    const p = slot.bridge.ports[s.id];
    return p === null || p === undefined ? null : this.hooks.rxIo(p);
  }

  /** The ports of one bridge as worker `h` is to see them (none for a bridge a reload removed). */
  private snapshot(h: WorkerHandle, slot: BridgeSlot, current: boolean, plan: Assignment): PortSnap[] {
    const snaps: PortSnap[] = [];
    for (const p of current ? slot.bridge.portList : []) {
      const io = this.hooks.rxIo(p);
      if (io === null) continue;
      // stop, acknowledge, start: while another worker may still read the port, this one waits (a later sync starts it)
      const owner = plan.owners.get(p) === h.id;
      const rx = owner && (slot.reading.has(io) || !this.busyElsewhere(io, h));
      if (owner && !rx) this.heldBack = true;
      snaps.push({
        id: p.id, name: p.name, kind: p.kind, ioKey: this.keyOf(io), portKey: this.keyOf(p), fd: -1, device: io.device ?? 0, ioKind: io.kind, ifindex: p.ifindex, rx,
        state: p.state, learning: p.learning, flood: p.flood, isolated: p.isolated, checkStacked: p.checkStacked, vlan: p.vlan.spec, mtu: p.mtu,
        fdbMax: p.fdbMax,
      });
    }
    return snaps;
  }

  /** Dups the fds of the ports this worker does not hold yet; a port whose dup fails is left out (and sent again). */
  private withFds(slot: BridgeSlot, snaps: PortSnap[], dups: number[]): PortSnap[] {
    const held = new Map<number, number>();
    const out: PortSnap[] = [];
    for (const s of snaps) {
      // a vhost-user port is adopted by its device id (no fd of its own)
      if (slot.held.get(s.id) !== s.ioKey && s.ioKind !== 'vhost-user') {
        const io = this.ioOf(slot, s)!;
        try {
          s.fd = this.hooks.dup(io.fd);
          dups.push(s.fd);
        } catch (err) {
          // the main thread keeps reading it (from the next sync on), and the worker cannot send to it
          this.refused.add(s.ioKey);
          this.log.warn({ err, port: s.name }, 'dup of a port fd for a data worker failed; the main thread reads the port');
          this.syncSoon();
          continue;
        }
      }
      held.set(s.id, s.ioKey);
      out.push(s);
    }
    slot.held = held;
    // what was compared against: a table with a port left out is sent again at the next sync
    slot.sent = out.length === snaps.length ? snaps.map((s) => ({ ...s, fd: -1 })) : null;
    return out;
  }

  /** Step: waits until each worker in `list` acknowledged `epoch`; returns the ones that did not in time. */
  private awaitAcks(list: WorkerHandle[], epoch: number, timeoutMs: number): WorkerHandle[] {
    const deadline = performance.now() + timeoutMs;
    const late: WorkerHandle[] = [];
    for (const h of list) {
      for (;;) {
        const seen = Atomics.load(h.ack, ACK_EPOCH);
        if (seen >= epoch) break;
        const left = deadline - performance.now();
        // a worker already late is not waited for again: one stuck worker must not block every tick
        if (left <= 0 || h.late) {
          if (!h.late) {
            h.timeouts++;
            h.late = true;
            h.lateSinceMs = this.now();
            this.log.error({ worker: h.id, epoch, acked: seen, timeout_ms: timeoutMs }, 'data worker did not acknowledge a sync in time; the main thread does not read its ports until it does');
          }
          late.push(h);
          break;
        }
        Atomics.wait(h.ack, ACK_EPOCH, seen, left);
      }
    }
    return late;
  }

  /**
   * Step: adds what the workers counted since the last fold to the main thread's ports and engines; `complete`:
   * every live worker wrote its counters for the current epoch (what lastFolded() reports).
   */
  private fold(complete: boolean): void {
    for (const h of this.workers) for (const slot of h.slots.values()) foldSlot(slot);
    if (complete) this.folded = { epoch: this.epoch, atMs: this.clock[0] };
  }

  /**
   * Without blocking: the epoch and the clock (ms, the tick's clock) of the last round trip every live worker
   * answered. The main thread's port and engine counters hold the workers' counts at least as of then (tick() makes
   * one at least every FOLD_INTERVAL_MS while no worker is late).
   */
  lastFolded(): { epoch: number; atMs: number } {
    return { ...this.folded };
  }

  /** data_workers.show (without a sync: the counters as of lastFolded()) */
  show(): DataPlaneShow {
    const workers: DataPlaneShow['workers'] = [{
      id: 0, alive: true, ports: [...this.mainPorts.values()].flat(), batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: 0,
      terminated: false,
      punt_pushed: 0, punt_dropped: 0,
    }];
    for (const h of this.workers) {
      const row = {
        id: h.id, alive: h.alive, ports: [] as string[], batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: h.timeouts,
        terminated: h.terminated, punt_pushed: 0, punt_dropped: 0,
      };
      for (const slot of h.slots.values()) {
        if (h.alive) row.ports.push(...slot.reading.values());
        const base = slot.bridge.ports.length * ROW;
        const v = (name: (typeof BRIDGE_FIELDS)[number]): number => slot.counters[base + BRIDGE_FIELDS.indexOf(name)];
        row.batches += v('batches');
        row.frames += v('frames');
        // the ring itself counts what the worker pushed and what it refused
        row.learn_pushed += slot.ring.pushed;
        row.learn_dropped += slot.ring.dropped;
        row.punt_pushed += slot.punt.pushed;
        row.punt_dropped += slot.punt.dropped;
      }
      workers.push(row);
    }
    return { data_workers: this.opts.count, epoch: this.epoch, syncs: this.syncs, learned_from_workers: this.learned, workers_terminated: this.terminatedCount, workers };
  }

  /** Stops the workers (each closes its fds first) and gives every port back to the main thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const epoch = ++this.epoch;
    const live = this.workers.filter((h) => h.alive);
    for (const h of live) {
      try {
        h.worker.postMessage({ type: 'stop', epoch } satisfies MainToWorker);
        h.posted = epoch;
      } catch {
        // gone already
      }
    }
    const late = this.awaitAcks(live, epoch, SYNC_TIMEOUT_MS);
    this.fold(late.length === 0);
    this.stopped = true;
    // the workers closed their ports: nothing reads the tables beside the main thread any more
    for (const br of this.readers.keys()) br.fdb.setReaders(null);
    for (const io of this.stoppedHere) if (!io.isClosed && (!this.opts.paused() || io.kind === 'vhost-user')) io.resume();
    this.stoppedHere.clear();
    if (late.length > 0) this.log.error({ workers: late.map((h) => h.id) }, 'data workers did not acknowledge the stop; they are terminated');
    await Promise.all(this.workers.map(async (h) => {
      const t = setTimeout(() => void h.worker.terminate(), 1000);
      await h.exited;
      clearTimeout(t);
    }));
  }
}

/** Whether two tables of one bridge are the same for a worker (fds aside). */
function sameTable(a: PortSnap[], b: PortSnap[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.id !== y.id || x.name !== y.name || x.kind !== y.kind || x.ioKey !== y.ioKey || x.portKey !== y.portKey || x.ioKind !== y.ioKind ||
      x.ifindex !== y.ifindex || x.rx !== y.rx || x.state !== y.state || x.learning !== y.learning || x.flood !== y.flood ||
      x.isolated !== y.isolated || x.checkStacked !== y.checkStacked || x.vlan !== y.vlan || x.mtu !== y.mtu || x.fdbMax !== y.fdbMax) return false;
  }
  return true;
}

/** Adds one (worker, bridge) counter slab's growth since the last fold to the main thread's ports and engine. */
function foldSlot(slot: BridgeSlot): void {
  const c = slot.counters;
  const f = slot.folded;
  const br = slot.bridge;
  for (let id = 0; id < br.ports.length; id++) {
    const row = id * ROW;
    const gen = c[row + ROW_GEN];
    if (gen === 0) continue;
    if (f[row + ROW_GEN] !== gen) {
      // another copy of the port in the worker: its counters started from zero
      f.fill(0, row, row + ROW);
      f[row + ROW_GEN] = gen;
    }
    const port = br.ports[id] ?? null;
    for (let k = 0; k < PORT_FIELDS.length; k++) {
      const i = row + ROW_FIELDS + k;
      const d = c[i] - f[i];
      f[i] = c[i];
      if (port !== null && d > 0) port[PORT_FIELDS[k]] += d;
    }
    for (let k = 0; k < PortCounter.Count; k++) {
      const i = row + ROW_NATIVE + k;
      const d = c[i] - f[i];
      f[i] = c[i];
      if (port !== null && k !== PortCounter.TxLastErrno && d > 0) port.savedCounters[k] += d;
    }
  }
  const base = br.ports.length * ROW;
  for (let k = 0; k < ENGINE_FIELDS.length; k++) {
    const d = c[base + k] - f[base + k];
    f[base + k] = c[base + k];
    if (d > 0) br.counters[ENGINE_FIELDS[k]] += d;
  }
  // what the worker's copy of the snooping counted itself (malformed IGMP/MLD, data by the MDB)
  if (br.mcast !== null) br.mcast.foldWorkerCounters(c, f, mcastCounterBase(br.ports.length), br.ports.length);
}
