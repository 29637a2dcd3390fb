// A data-plane worker (worker_threads): the same engine (src/bridge/bridge.ts) over the ports the main thread
// gave it to read, with its own libuv loop, receive slab and direct polling (src/native/directpoll.cc).
//
// It holds a copy of every port of its bridges: the ones it reads (`rx`) and every other one, which it only
// writes to. Each port's fd here is its own dup() of the main thread's, so either thread writes a frame with one
// write()/sendmmsg() entry of its own: the kernel takes each frame whole, and frames of one flow keep their order
// because one flow enters through one port, read by one thread at a time (the main thread starts another reader
// only after this one acknowledged the table that stopped it: dataplane.ts). Lookups read the shared FDB; learning goes to the
// main thread through the learning ring (src/dataplane/fdb-view.ts). With IGMP/MLD snooping the engine forwards
// multicast by a copy of the main thread's MDB, replaced whole by a sync (mdb-publish.ts), and hands the control
// frames it reads to the punt ring for the main thread's MDB (punt-ring.ts). A vhost-user port is held as a peer of
// the main thread's port (VhostUserPeer: the same guest rings, each under its lock in the addon; no fd of its own),
// read by polling the port's kick here. Nothing here logs on the frame path;
// counters are written into the counter slab when the main thread syncs (protocol.ts).

import { parentPort, workerData } from 'node:worker_threads';
import { Bridge } from '../bridge/bridge.js';
import { BridgePort } from '../bridge/port.js';
import { directPoll, fds, PacketPort, VhostUserPeer } from '../io/native.js';
import { PortCounter } from '../io/native-types.js';
import { WorkerFdb } from './fdb-view.js';
import { LearnRing } from './learn-ring.js';
import { PuntRing, PuntWriter } from './punt-ring.js';
import { McastSnooping } from '../bridge/mcast.js';
import {
  ACK_EPOCH, ACK_FAILED, BRIDGE_FIELDS, mcastCounterBase, type McastPublish, PORT_FIELDS, ROW, ROW_FIELDS, ROW_GEN, ROW_NATIVE, type MainToWorker, type PortSnap, type WorkerBridgeInit,
  type WorkerInit, type WorkerToMain,
} from './protocol.js';
import { stuckWorkerId } from './test-hooks.js';

interface Held {
  port: BridgePort;
  io: PacketPort | VhostUserPeer;
  ioKey: number;
  portKey: number;
  gen: number;
  rx: boolean;
  started: boolean;
  vlanJson: string;
}

let generation = 0;

function post(m: WorkerToMain): void {
  parentPort!.postMessage(m);
}

class WorkerBridge {
  readonly name: string;
  readonly bridge: Bridge<WorkerFdb>;
  private readonly ring: LearnRing;
  private readonly punt: PuntWriter;
  /** the main thread's key of the McastSnooping this bridge's copy follows (0: none) */
  private mcastKey = 0;
  private readonly fdb: WorkerFdb;
  private readonly slab: Float64Array;
  private readonly maxPorts: number;
  private readonly held = new Map<number, Held>();
  private readonly clock: Float64Array;
  /** this worker's batch counter in the FDB's readers array (odd inside a batch: fdb.ts, "Shared") */
  private readonly readers: Int32Array;
  private readonly reader: number;
  batches = 0;
  frames = 0;

  constructor(init: WorkerBridgeInit, clock: Float64Array) {
    this.name = init.name;
    this.maxPorts = init.maxPorts;
    this.ring = new LearnRing(init.ring);
    this.punt = new PuntWriter(new PuntRing(init.punt), init.maxPorts);
    this.slab = new Float64Array(init.counters);
    this.clock = clock;
    this.readers = new Int32Array(init.readers);
    this.reader = init.reader;
    if (!Number.isInteger(this.reader) || this.reader < 0 || this.reader >= this.readers.length) throw new RangeError(`reader index ${this.reader} out of range`);
    const fdb = new WorkerFdb(init.fdb, this.ring, init.maxPorts);
    this.fdb = fdb;
    this.bridge = new Bridge<WorkerFdb>({ name: init.name, maxPorts: init.maxPorts, fdbMax: init.fdb.maxEntries, ageingTimeMs: 0, fdb });
  }

  /** Replaces the port table with `snaps` (between batches: this runs from the message handler). */
  apply(snaps: PortSnap[]): void {
    const want = new Map<number, PortSnap>();
    for (const s of snaps) {
      if (!Number.isInteger(s.id) || s.id < 0 || s.id >= this.maxPorts) throw new RangeError(`port id ${s.id} out of range`);
      want.set(s.id, s);
    }
    for (const [id, h] of this.held) {
      const s = want.get(id);
      if (s === undefined || s.ioKey !== h.ioKey || s.portKey !== h.portKey || s.name !== h.port.name) this.drop(id, h);
    }
    for (const s of snaps) {
      const h = this.held.get(s.id);
      if (h === undefined) this.add(s);
      else {
        if (s.fd >= 0) fds.close(s.fd); // not expected: the fd of an I/O this worker holds already
        this.update(h, s);
      }
    }
  }

  /** Whether applying `snaps` would stop the reading of a port this worker reads (the test knob's trigger). */
  stopsReading(snaps: PortSnap[]): boolean {
    const next = new Map(snaps.map((s) => [s.id, s]));
    for (const [id, h] of this.held) if (h.rx && next.get(id)?.rx !== true) return true;
    return false;
  }

  private add(s: PortSnap): void {
    if (s.ioKind === 'vhost-user') {
      let peer: VhostUserPeer;
      try {
        peer = VhostUserPeer.adopt(s.device, s.name);
      } catch (err) {
        post({ type: 'adopt_failed', bridge: this.name, port: s.name, ioKey: s.ioKey, message: (err as Error).message });
        return;
      }
      this.hold(s, peer);
      return;
    }
    if (s.fd < 0) {
      post({ type: 'adopt_failed', bridge: this.name, port: s.name, ioKey: s.ioKey, message: 'no fd was passed for a new port' });
      return;
    }
    let io: PacketPort;
    try {
      io = PacketPort.adopt(s.fd, s.ioKind, s.name, s.ifindex);
    } catch (err) {
      fds.close(s.fd);
      post({ type: 'adopt_failed', bridge: this.name, port: s.name, ioKey: s.ioKey, message: (err as Error).message });
      return;
    }
    this.hold(s, io);
  }

  private hold(s: PortSnap, io: PacketPort | VhostUserPeer): void {
    const port = new BridgePort(s.id, s.name, s.kind, { learning: s.learning, flood: s.flood, isolated: s.isolated }, s.mtu, s.fdbMax);
    port.io = io;
    port.ifindex = s.ifindex;
    const h: Held = { port, io, ioKey: s.ioKey, portKey: s.portKey, gen: ++generation, rx: false, started: false, vlanJson: '' };
    this.held.set(s.id, h);
    this.fdb.setPortKey(s.id, s.portKey);
    this.punt.portKey[s.id] = s.portKey;
    this.bridge.addPort(port);
    this.update(h, s);
  }

  /**
   * Takes the main thread's MDB (after the port tables of the same message: what the engine's port changes did to
   * the copy is overwritten by the writer's state). null: snooping is off. The copy never learns: control frames go
   * to the punt ring, and it has no querier.
   */
  applyMcast(p: McastPublish | null): void {
    if (p === null) {
      if (this.bridge.mcast !== null) this.bridge.setMulticast(null);
      this.mcastKey = 0;
      return;
    }
    const settings = { ...p.settings, querier: false };
    let mc = this.bridge.mcast;
    if (mc === null || this.mcastKey !== p.key || mc.mdb.maxGroups !== settings.maxGroups || mc.mdb.maxPorts !== p.maxPorts) {
      mc = new McastSnooping(settings, p.maxPorts);
      mc.punt = this.punt;
      this.mcastKey = p.key;
      this.bridge.setMulticast(mc);
    } else {
      mc.apply(settings);
    }
    mc.mdb.importState(p.mdb);
  }

  private update(h: Held, s: PortSnap): void {
    const port = h.port;
    port.learning = s.learning;
    port.flood = s.flood;
    port.isolated = s.isolated;
    port.checkStacked = s.checkStacked;
    port.mtu = s.mtu;
    port.fdbMax = s.fdbMax;
    const vj = JSON.stringify(s.vlan);
    if (vj !== h.vlanJson) {
      this.bridge.setPortVlan(port, s.vlan);
      h.vlanJson = vj;
    }
    this.bridge.setPortState(port, s.state);
    if (s.rx && !h.rx) this.startRx(h);
    else if (!s.rx && h.rx) h.io.stop();
    h.rx = s.rx;
  }

  private startRx(h: Held): void {
    if (h.started) {
      h.io.resume();
      return;
    }
    h.started = true;
    const port = h.port;
    const bridge = this.bridge;
    const ring = this.ring;
    const punt = this.punt.ring;
    const clock = this.clock;
    const readers = this.readers;
    const reader = this.reader;
    h.io.start(
      (slab, desc, count) => {
        bridge.nowMs = clock[0];
        this.batches++;
        this.frames += count;
        // inside a batch: FDB entries the writer removes now are not reused until this batch is over
        Atomics.add(readers, reader, 1);
        try {
          bridge.receive(port, slab, desc, count);
        } catch {
          // a bug costs one batch, never the worker (counted: batch_errors in stats)
          bridge.discardBatch();
          port.batchErrors++;
        } finally {
          Atomics.add(readers, reader, 1);
        }
        ring.signal();
        punt.signal();
      },
      (errno, syscall, stopped) => {
        if (stopped) h.rx = false;
        post({ type: 'io_error', bridge: this.name, port: port.name, ioKey: h.ioKey, errno, syscall, stopped });
      },
    );
  }

  private drop(id: number, h: Held): void {
    this.bridge.removePort(h.port);
    h.io.close();
    this.held.delete(id);
  }

  /** Absolute counters of every port copy and of the engine, for the main thread to fold (protocol.ts). */
  writeCounters(): void {
    const slab = this.slab;
    for (const [id, h] of this.held) {
      const row = id * ROW;
      slab[row + ROW_GEN] = h.gen;
      const p = h.port;
      for (let f = 0; f < PORT_FIELDS.length; f++) slab[row + ROW_FIELDS + f] = p[PORT_FIELDS[f]];
      const c = h.io.counters;
      for (let i = 0; i < PortCounter.Count; i++) slab[row + ROW_NATIVE + i] = c[i];
    }
    const base = this.maxPorts * ROW;
    const bc = this.bridge.counters;
    const values: Record<(typeof BRIDGE_FIELDS)[number], number> = {
      flooded: bc.flooded, floodedGroup: bc.floodedGroup, forwarded: bc.forwarded, batches: this.batches, frames: this.frames,
    };
    for (let f = 0; f < BRIDGE_FIELDS.length; f++) slab[base + f] = values[BRIDGE_FIELDS[f]];
    if (this.bridge.mcast !== null) this.bridge.mcast.writeWorkerCounters(slab, mcastCounterBase(this.maxPorts), this.maxPorts);
  }

  closeAll(): void {
    for (const [id, h] of this.held) this.drop(id, h);
  }
}

function main(): void {
  const init = workerData as WorkerInit;
  const clock = new Float64Array(init.clock);
  const ack = new Int32Array(init.ack);
  const bridges = new Map<string, WorkerBridge>();
  for (const b of init.bridges) bridges.set(b.name, new WorkerBridge(b, clock));
  if (init.directPoll) directPoll.set(true);
  const answer = (epoch: number): void => {
    for (const wb of bridges.values()) wb.writeCounters();
    Atomics.store(ack, ACK_EPOCH, epoch);
    Atomics.notify(ack, ACK_EPOCH);
  };
  // test knob (test-hooks.ts): stuck from the first table that stops a read
  const stuckId = stuckWorkerId();
  let stuck = false;
  parentPort!.on('message', (m: MainToWorker) => {
    if (!stuck && stuckId === init.id && m.type === 'sync') {
      stuck = Object.keys(m.tables).some((name) => bridges.get(name)?.stopsReading(m.tables[name]) === true);
    }
    if (stuck) return;
    try {
      if (m.type === 'sync') {
        for (const name of Object.keys(m.tables)) {
          const wb = bridges.get(name);
          if (wb === undefined) throw new Error(`unknown bridge ${JSON.stringify(name)}`);
          wb.apply(m.tables[name]);
        }
        const mcast = m.mcast ?? {};
        for (const name of Object.keys(mcast)) {
          const wb = bridges.get(name);
          if (wb === undefined) throw new Error(`unknown bridge ${JSON.stringify(name)}`);
          wb.applyMcast(mcast[name]);
        }
      } else if (m.type === 'stop') {
        directPoll.set(false);
        for (const wb of bridges.values()) wb.closeAll();
        answer(m.epoch);
        parentPort!.close();
        return;
      }
    } catch (err) {
      // the table may be applied in part: the main thread fails the request and sends whole tables again
      Atomics.store(ack, ACK_FAILED, m.epoch);
      post({ type: 'fatal', message: (err as Error).stack ?? String(err) });
    }
    answer(m.epoch);
  });
}

main();
