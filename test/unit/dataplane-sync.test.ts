// DataPlane (src/dataplane/dataplane.ts) driven with fake workers and fake port I/O (no threads, no addon): who
// reads which port across syncs, a worker that does not acknowledge, and learning entries of a port whose id was
// given to another port. The fake worker applies a table when it is posted and acknowledges at once unless told not to.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { DataPlane, DataPlaneApplyFailed, DataPlaneTimeout, STUCK_SYNC_TIMEOUTS, SYNC_TIMEOUT_MS, type DataPlaneHooks, type RxIo, type WorkerLike } from '../../src/dataplane/dataplane.js';
import { LEARN, LearnRing } from '../../src/dataplane/learn-ring.js';
import { McastSnooping } from '../../src/bridge/mcast.js';
import { defaultMcastSettings } from '../../src/mdb/config.js';
import { Mdb } from '../../src/mdb/mdb.js';
import { PuntRing } from '../../src/dataplane/punt-ring.js';
import { EthernetHeader } from '../../src/frame/ethernet.js';
import { igmpV2Report } from '../support/mcast-frames.js';
import { MALFORMED_REASONS } from '../../src/frame/igmp.js';
import { type McastPublish, mcastCounterBase, ACK_FAILED, PORT_FIELDS, ROW, ROW_FIELDS, ROW_GEN, type MainToWorker, type PortSnap, type WorkerInit } from '../../src/dataplane/protocol.js';
import { macHi, macLo } from '../../src/fdb/fdb.js';
import { parseMac } from '../../src/frame/mac.js';
import { silentLogger } from '../../src/log.js';
import { addFakePort, BatchBuilder, FakeIo } from '../support/fake-io.js';

/** A port's I/O the main thread reads (reading) until the data plane stops it. */
class FakeRxIo extends FakeIo implements RxIo {
  readonly kind = 'tap' as const;
  readonly fd = 100;
  isClosed = false;
  reading = true;
  stop(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
  }
}

class FakeWorker extends EventEmitter implements WorkerLike {
  readonly ack: Int32Array;
  readonly rings = new Map<string, LearnRing>();
  /** per bridge, the table last applied */
  readonly tables = new Map<string, PortSnap[]>();
  /** acknowledge each table when it is posted */
  answering = true;
  /** answer the next tables as failed to apply (as the worker does when apply() throws) */
  failing = false;
  /** tables posted, per epoch: the bridges they carried (and the MDB copies: mcast.ts, mdb-publish.ts) */
  readonly posted: Array<{ epoch: number; bridges: string[]; mcast: Record<string, McastPublish | null> }> = [];
  lastEpoch = 0;
  /** per epoch: the ports (names) this worker was told to start and to stop reading */
  readonly started = new Map<number, string[]>();
  readonly stoppedAt = new Map<number, string[]>();

  constructor(readonly init: WorkerInit) {
    super();
    this.ack = new Int32Array(init.ack);
    for (const b of init.bridges) this.rings.set(b.name, new LearnRing(b.ring));
  }

  reads(bridge: string): string[] {
    return (this.tables.get(bridge) ?? []).filter((s) => s.rx).map((s) => s.name);
  }

  postMessage(m: MainToWorker): void {
    this.lastEpoch = m.epoch;
    if (m.type === 'sync') this.posted.push({ epoch: m.epoch, bridges: Object.keys(m.tables), mcast: m.mcast ?? {} });
    if (m.type === 'sync' && this.failing) Atomics.store(this.ack, ACK_FAILED, m.epoch);
    if (m.type === 'sync') {
      for (const [name, snaps] of Object.entries(m.tables)) {
        const before = new Set(this.reads(name));
        this.tables.set(name, snaps.map((s) => ({ ...s })));
        const after = new Set(this.reads(name));
        this.started.set(m.epoch, [...(this.started.get(m.epoch) ?? []), ...[...after].filter((n) => !before.has(n))]);
        this.stoppedAt.set(m.epoch, [...(this.stoppedAt.get(m.epoch) ?? []), ...[...before].filter((n) => !after.has(n))]);
      }
    }
    if (this.answering) this.answer();
  }

  answer(): void {
    Atomics.store(this.ack, 0, this.lastEpoch);
  }

  exited = false;

  terminate(): Promise<number> {
    this.exited = true;
    this.emit('exit', 1);
    return Promise.resolve(1);
  }
}

interface Lab {
  dp: DataPlane;
  bridge: Bridge;
  workers: FakeWorker[];
  batch: BatchBuilder;
  add(name: string): { port: BridgePort; io: FakeRxIo };
  paused: { value: boolean };
  /** the clock (ms) that times how long a worker stays late */
  clock: { ms: number };
  /** a handover's pause: as Daemon.pauseIo, every port stops being read by the main thread */
  pause(): void;
  /** a handover's pause ends: as Daemon.resumeIo, the main thread reads again what the data plane let go */
  unpause(): void;
}

function lab(count: number, ports: string[], mcast = false): Lab {
  const bridge = new Bridge({ name: 'br0', maxPorts: 16, fdbMax: 64, ageingTimeMs: 300_000, sharedFdb: true });
  if (mcast) bridge.setMulticast(new McastSnooping({ ...defaultMcastSettings(), maxGroups: 16 }, 16));
  const batch = new BatchBuilder();
  const add = (name: string): { port: BridgePort; io: FakeRxIo } => {
    const { port } = addFakePort(bridge, batch, name);
    const io = new FakeRxIo(() => batch.slab);
    port.io = io;
    return { port, io };
  };
  for (const n of ports) add(n);
  const workers: FakeWorker[] = [];
  const clock = { ms: 0 };
  const hooks: DataPlaneHooks = {
    nowMs: () => clock.ms,
    rxIo: (p) => (p.io instanceof FakeRxIo && !p.io.isClosed ? p.io : null),
    dup: (fd) => fd,
    closeFd: () => undefined,
    spawn: (init) => {
      const w = new FakeWorker(init);
      workers.push(w);
      return w;
    },
  };
  const paused = { value: false };
  const dp = new DataPlane({
    count, bridges: () => [{ name: 'br0', bridge, hasBond: () => false }], directPoll: false, log: silentLogger(), paused: () => paused.value,
    onIoError: () => undefined, hooks,
  });
  dp.start(0);
  const unpause = (): void => {
    paused.value = false;
    for (const p of bridge.portList) if (p.io instanceof FakeRxIo && dp.mainMayRead(p.io)) p.io.resume();
  };
  const pause = (): void => {
    paused.value = true;
    for (const p of bridge.portList) if (p.io instanceof FakeRxIo) p.io.stop();
  };
  return { dp, bridge, workers, batch, add, paused, clock, pause, unpause };
}

/** Who reads each port now: 'main', 'w1', 'w2' ... (more than one entry: two threads read it). */
function readers(l: Lab): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of l.bridge.portList) {
    const who: string[] = [];
    if (p.io instanceof FakeRxIo && p.io.reading) who.push('main');
    for (const w of l.workers) if (!w.exited && w.reads('br0').includes(p.name)) who.push(`w${w.init.id}`);
    out.set(p.name, who);
  }
  return out;
}

describe('DataPlane: a worker that does not acknowledge', () => {
  it('fails the sync, and the main thread does not read that worker\'s ports until it has acknowledged', () => {
    const l = lab(2, ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0']);
    const [w1] = l.workers;
    expect(readers(l).get('vif2.0')).toEqual(['w1']);
    w1.answering = false;
    // a capture starts: every port goes back to the main thread, and worker 1 must stop reading first
    const vif1 = l.bridge.portByName('vif1.0')!;
    vif1.tap = { rx: () => undefined, tx: () => undefined, drop: () => undefined };
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    expect(readers(l).get('vif2.0')).toEqual([]); // not the main thread: worker 1 may still read it
    expect(readers(l).get('vif1.0')).toEqual(['main']);
    expect(() => l.dp.sync(false, 20)).not.toThrow(); // nothing changed for it: a request that changes nothing is answered
    expect(readers(l).get('vif2.0')).toEqual([]);
    expect(l.dp.lateWorkers()).toEqual([1]);
    // a change while it is late fails at once (no second wait), and stats cannot be complete
    l.bridge.setPortState(vif1, 'down');
    expect(() => l.dp.sync(false, 5000)).toThrow(/data worker 1 did not acknowledge/);
    expect(() => l.dp.sync(true, 5000)).toThrow(DataPlaneTimeout);
    expect(l.dp.show().workers[1].sync_timeouts).toBe(1);
    // it acknowledges: the next sync gives its ports to the main thread, and is answered
    w1.answer();
    w1.answering = true;
    expect(() => l.dp.sync(false, 20)).not.toThrow();
    expect(l.dp.lateWorkers()).toEqual([]);
    for (const [n, who] of readers(l)) expect(who, n).toEqual(['main']);
  });

  it('fails the sync when a worker could not apply the tables, and sends them whole again at the next', () => {
    const l = lab(2, ['vif1.0', 'vif2.0']);
    const [w1] = l.workers;
    w1.failing = true;
    l.bridge.setPortState(l.bridge.portByName('vif1.0')!, 'down');
    expect(() => l.dp.sync(false)).toThrow(DataPlaneApplyFailed);
    w1.failing = false;
    const n = w1.posted.length;
    expect(() => l.dp.sync(false)).not.toThrow();
    expect(w1.posted.slice(n).map((p) => p.bridges)).toEqual([['br0']]);
    expect(() => l.dp.sync(false)).not.toThrow();
    expect(w1.posted.length).toBe(n + 1);
  });

  it('keeps a late worker\'s ports unread by the main thread when a handover\'s pause ends', () => {
    const l = lab(2, ['vif1.0', 'vif2.0']);
    const [w1] = l.workers;
    w1.answering = false;
    l.pause();
    expect(() => l.dp.syncBestEffort(false, 20)).not.toThrow();
    l.unpause();
    expect(readers(l).get('vif1.0')).toEqual(['main']);
    expect(readers(l).get('vif2.0')).toEqual([]);
  });

  it('a handover\'s pause: awaitReadsStopped() names a worker that has not acknowledged it, none once it has', () => {
    const l = lab(3, ['vif1.0', 'vif2.0', 'vif3.0']);
    const [w1, w2] = l.workers;
    expect(w1.reads('br0')).toEqual(['vif2.0']);
    expect(w2.reads('br0')).toEqual(['vif3.0']);
    w1.answering = false;
    l.pause();
    l.dp.syncBestEffort(false, 20);
    expect(l.dp.awaitReadsStopped(20)).toEqual([1]);
    w1.answer();
    expect(l.dp.awaitReadsStopped(20)).toEqual([]);
  });

  it(`a worker late for ${STUCK_SYNC_TIMEOUTS} sync timeouts in a row is terminated, counted, and its ports go to the other threads`, () => {
    const l = lab(3, ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0']);
    const [w1, w2] = l.workers;
    expect(w1.reads('br0')).toEqual(['vif2.0']);
    w1.answering = false;
    // a capture starts: every port goes back to the main thread; worker 1 does not acknowledge (late from t = 1000)
    l.clock.ms = 1000;
    l.bridge.portByName('vif1.0')!.tap = { rx: () => undefined, tx: () => undefined, drop: () => undefined };
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    l.clock.ms = 1000 + (STUCK_SYNC_TIMEOUTS - 1) * SYNC_TIMEOUT_MS - 1;
    l.dp.tick(l.clock.ms);
    expect(w1.exited).toBe(false);
    expect(readers(l).get('vif2.0')).toEqual([]); // it may still read it: nobody else does
    // one more sync timeout
    l.clock.ms += 1;
    l.dp.tick(l.clock.ms);
    expect(w1.exited).toBe(true);
    expect(w2.exited).toBe(false);
    const shown = l.dp.show();
    expect(shown.workers_terminated).toBe(1);
    expect(shown.workers[1]).toMatchObject({ id: 1, alive: false, terminated: true });
    expect(shown.workers[2]).toMatchObject({ id: 2, alive: true, terminated: false });
    expect(l.dp.lateWorkers()).toEqual([]);
    // the capture ends: its ports go to the threads left (main and worker 2), each read by exactly one
    l.bridge.portByName('vif1.0')!.tap = null;
    expect(() => l.dp.sync(false, 20)).not.toThrow();
    expect(() => l.dp.sync(false, 20)).not.toThrow();
    for (const [n, who] of readers(l)) expect(who.length, n).toBe(1);
    expect(readers(l).get('vif2.0')).not.toEqual(['w1']);
  });
  it('a late worker that acknowledges an older table while newer ones come is slow, not stuck: its time counts from its last acknowledgement', () => {
    const l = lab(3, ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0']);
    const [w1] = l.workers;
    const vif1 = l.bridge.portByName('vif1.0')!;
    w1.answering = false;
    // a capture starts: worker 1 does not acknowledge in time (late from t = 1000)
    l.clock.ms = 1000;
    vif1.tap = { rx: () => undefined, tx: () => undefined, drop: () => undefined };
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    const first = w1.lastEpoch;
    // a change reaches it while it is late
    l.clock.ms = 2000;
    l.bridge.setPortState(vif1, 'down');
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    expect(w1.lastEpoch).toBeGreaterThan(first);
    // it acknowledges the first table 3 s after it became late: slow, still behind the newest
    l.clock.ms = 4000;
    Atomics.store(w1.ack, 0, first);
    l.dp.tick(l.clock.ms);
    expect(l.dp.lateWorkers()).toEqual([1]);
    // 4.5 s after it became late, 1.5 s after its last acknowledgement: kept
    l.clock.ms = 5500;
    l.dp.tick(l.clock.ms);
    expect(w1.exited).toBe(false);
    // no acknowledgement at all for STUCK_SYNC_TIMEOUTS - 1 sync timeouts after that one: terminated
    l.clock.ms = 4000 + (STUCK_SYNC_TIMEOUTS - 1) * SYNC_TIMEOUT_MS;
    l.dp.tick(l.clock.ms);
    expect(w1.exited).toBe(true);
    expect(l.dp.show().workers_terminated).toBe(1);
  });
});

describe('DataPlane: who reads a port', () => {
  it('data_workers 3: an addif or delif moves no other port, and no port is started in the epoch another worker stops it', () => {
    const names = ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0', 'vif5.0', 'vif6.0', 'vif7.0'];
    const l = lab(3, names);
    const before = readers(l);
    for (const [, who] of before) expect(who.length).toBe(1);
    expect(new Set([...before.values()].map((w) => w[0]))).toEqual(new Set(['main', 'w1', 'w2']));
    // delif of the second port
    const gone = l.bridge.portByName('vif2.0')!;
    l.bridge.removePort(gone);
    (gone.io as FakeRxIo).isClosed = true;
    l.dp.sync(false);
    // addif of a new one
    l.add('vif8.0');
    l.dp.sync(false);
    l.dp.sync(false);
    const after = readers(l);
    for (const n of names) if (n !== 'vif2.0') expect(after.get(n), n).toEqual(before.get(n));
    expect(after.get('vif8.0')!.length).toBe(1);
    for (const w of l.workers) {
      for (const [epoch, started] of w.started) {
        for (const other of l.workers) {
          if (other === w) continue;
          const stopped = other.stoppedAt.get(epoch) ?? [];
          expect(started.filter((n) => stopped.includes(n)), `epoch ${epoch}`).toEqual([]);
        }
      }
    }
  });

  it('a port moving from one worker to another starts on the new one only after the old one acknowledged', () => {
    const l = lab(3, ['vif1.0', 'vif2.0', 'vif3.0']);
    const [w1, w2] = l.workers;
    expect(w2.reads('br0')).toEqual(['vif3.0']);
    // a handover's pause takes every port back; worker 2 does not acknowledge that
    w2.answering = false;
    l.pause();
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    // vif1.0 goes meanwhile, and the pause ends: the ports are spread afresh, vif3.0 to worker 1
    const gone = l.bridge.portByName('vif1.0')!;
    l.bridge.removePort(gone);
    (gone.io as FakeRxIo).isClosed = true;
    l.unpause();
    expect(readers(l).get('vif3.0')).toEqual([]); // worker 2 may still read it (the fake applied the table already)
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    expect(w1.reads('br0')).toEqual([]);
    expect(l.dp.show().workers[1].ports).toEqual([]);
    // worker 2 acknowledges its stop: the next sync starts vif3.0 on worker 1
    w2.answer();
    w2.answering = true;
    l.dp.sync(false, 20);
    expect(w1.reads('br0')).toEqual(['vif3.0']);
    expect(readers(l).get('vif3.0')).toEqual(['w1']);
    expect(readers(l).get('vif2.0')).toEqual(['main']);
  });

  it('a worker that fails keeps its ports until its thread has exited; then the others read them', () => {
    const l = lab(3, ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0']);
    const [, w2] = l.workers;
    expect(w2.reads('br0')).toEqual(['vif3.0']);
    w2.emit('error', new Error('boom'));
    l.dp.sync(false);
    expect(readers(l).get('vif3.0')).toEqual(['w2']);
    void w2.terminate();
    l.dp.sync(false);
    // the thread with the fewest ports of the bridge takes it (main: vif1.0 and vif4.0, worker 1: vif2.0)
    expect(readers(l).get('vif3.0')).toEqual(['w1']);
    for (const [n, who] of readers(l)) expect(who.length, n).toBe(1);
  });
});

describe('DataPlane: learning entries from a worker', () => {
  const mac = parseMac('00:16:3e:00:00:aa')!;
  const entry = (w: FakeWorker, port: string, vid = 0): void => {
    const s = w.tables.get('br0')!.find((x) => x.name === port)!;
    w.rings.get('br0')!.push(LEARN, (vid << 16) | macHi(mac), macLo(mac), s.id, s.portKey);
  };

  it('are not learned on a port that got the id of the removed port they were pushed for (a reload)', () => {
    const l = lab(2, ['vif1.0', 'vif2.0', 'vif3.0']);
    const [w1] = l.workers;
    const a = l.bridge.portByName('vif2.0')!;
    entry(w1, 'vif2.0');
    // a reload removes vif2.0 and adds vif9.0, which gets its id; both before the next sync
    l.bridge.removePort(a);
    (a.io as FakeRxIo).isClosed = true;
    const b = l.add('vif9.0').port;
    expect(b.id).toBe(a.id);
    l.dp.sync(false);
    expect(l.bridge.fdb.lookup(0, mac)).toBe(-1);
    // an entry pushed for the new port is learned
    entry(w1, 'vif9.0');
    l.dp.drain();
    expect(l.bridge.fdb.lookup(0, mac)).toBe(b.id);
  });

  it('are not learned in a VLAN the port is no member of any more', () => {
    const l = lab(2, ['vif1.0', 'vif2.0']);
    const [w1] = l.workers;
    const p = l.bridge.portByName('vif2.0')!;
    l.bridge.setPortVlan(p, { mode: 'access', vlan: 10 });
    l.dp.sync(false);
    entry(w1, 'vif2.0', 10);
    // vlan set before the drain: the worker's entry was for VLAN 10
    l.bridge.setPortVlan(p, { mode: 'access', vlan: 20 });
    l.dp.drain();
    expect(l.bridge.fdb.lookup(10, mac)).toBe(-1);
    entry(w1, 'vif2.0', 20);
    l.dp.drain();
    expect(l.bridge.fdb.lookup(20, mac)).toBe(p.id);
  });
});

describe('DataPlane: counters', () => {
  it('folds what a worker counted into the port, and lastFolded() says when every worker last answered', () => {
    const l = lab(2, ['vif1.0', 'vif2.0']);
    const [w1] = l.workers;
    const slab = new Float64Array(w1.init.bridges[0].counters);
    const p = l.bridge.portByName('vif2.0')!;
    const row = p.id * ROW;
    const rx = ROW_FIELDS + PORT_FIELDS.indexOf('rxPackets');
    const before = p.rxPackets;
    slab[row + ROW_GEN] = 1;
    slab[row + rx] = 7;
    expect(l.dp.lastFolded().atMs).toBe(0);
    l.dp.tick(500); // nothing changed, not yet due: no round trip
    expect(l.dp.lastFolded().atMs).toBe(0);
    l.dp.tick(1000); // due: a round trip, then the fold
    expect(l.dp.lastFolded().atMs).toBe(1000);
    expect(p.rxPackets).toBe(before + 7);
    slab[row + rx] = 10;
    l.dp.tick(2000);
    expect(p.rxPackets).toBe(before + 10);
    // a late worker: the tick goes on (nothing thrown), lastFolded() stays where the last complete round trip was
    w1.answering = false;
    l.dp.tick(3000);
    l.dp.tick(4000);
    expect(l.dp.lastFolded().atMs).toBe(2000);
  });
});

describe('DataPlane: IGMP/MLD snooping on worker threads (the MDB copy, the punt ring)', () => {
  const G1 = Int32Array.from([0, 0, 0xffff, 0xef010203 | 0]);
  const lastMcast = (w: FakeWorker): Record<string, McastPublish | null> => {
    for (let i = w.posted.length - 1; i >= 0; i--) if (Object.keys(w.posted[i].mcast).length > 0) return w.posted[i].mcast;
    return {};
  };
  /** the worker's copy as it would import the last one posted */
  const copyOf = (w: FakeWorker): Mdb => {
    const p = lastMcast(w).br0!;
    const mdb = new Mdb({ maxGroups: p.settings.maxGroups, maxPorts: p.maxPorts });
    mdb.importState(structuredClone(p.mdb));
    return mdb;
  };

  it('a bridge with snooping on has ports read by workers, which get a copy of the MDB at start and with every change before sync returns', () => {
    const l = lab(2, ['vif1.0', 'vif2.0', 'vif3.0', 'vif4.0'], true);
    const [w1] = l.workers;
    const r = readers(l);
    expect(r.get('vif1.0')).toEqual(['main']);
    expect(r.get('vif2.0')).toEqual(['w1']);
    const mc = l.bridge.mcast!;
    expect(lastMcast(w1).br0).not.toBeNull();
    expect(copyOf(w1).findGroup(1, G1)).toBe(-1);
    // nothing changed: nothing posted
    const n = w1.posted.length;
    l.dp.sync(false);
    expect(w1.posted.length).toBe(n);
    // `mdb add`: in the worker's copy when the sync (the request's answer) returns
    expect(mc.mdb.addStatic(1, G1, l.bridge.portByName('vif3.0')!.id, null)).toBe(true);
    l.dp.sync(false);
    expect(w1.posted.length).toBe(n + 1);
    const copy = copyOf(w1);
    expect(copy.findMember(copy.findGroup(1, G1), l.bridge.portByName('vif3.0')!.id)).toBeGreaterThanOrEqual(0);
    // `mdb del`, and an expiry removed by the sweep: the same
    mc.mdb.delStatic(1, G1, l.bridge.portByName('vif3.0')!.id, null);
    l.dp.sync(false);
    expect(copyOf(w1).findGroup(1, G1)).toBe(-1);
    const m = mc.mdb.member(1, G1, l.bridge.portByName('vif2.0')!.id);
    mc.mdb.setExclude(m, 5000);
    l.dp.tick(100);
    expect(copyOf(w1).findGroup(1, G1)).toBeGreaterThanOrEqual(0);
    l.bridge.tick(5000, 1000);
    l.dp.tick(5000);
    expect(copyOf(w1).findGroup(1, G1)).toBe(-1);
    // settings applied in place (a reload): the worker gets them
    const n2 = w1.posted.length;
    mc.apply({ ...mc.settings, floodUnregistered: false });
    l.dp.sync(false);
    expect(w1.posted.length).toBe(n2 + 1);
    expect(lastMcast(w1).br0!.settings.floodUnregistered).toBe(false);
    // snooping turned off: the worker is told so
    l.bridge.setMulticast(null);
    l.dp.sync(false);
    expect(lastMcast(w1)).toEqual({ br0: null });
  });

  it('folds what a worker\'s copy of the snooping counted (malformed IGMP/MLD by reason and port, data by the MDB) into the main thread\'s', () => {
    const l = lab(2, ['vif1.0', 'vif2.0'], true);
    const [w1] = l.workers;
    const slab = new Float64Array(w1.init.bridges[0].counters);
    const base = mcastCounterBase(16);
    // as the worker writes it when it answers: [mdbForwarded, unregisteredToRouters, by reason..., per port...]
    slab[base] = 7;
    slab[base + 2 + MALFORMED_REASONS.indexOf('checksum')] = 3;
    slab[base + 2 + MALFORMED_REASONS.length + 1] = 3;
    l.dp.sync(true);
    const mc = l.bridge.mcast!;
    expect(mc.malformedByReason().checksum).toBe(3);
    expect(mc.portStats(l.bridge.portByName('vif2.0')!, 0).malformed_rx).toBe(3);
    expect(mc.counters.mdbForwarded).toBe(7);
    l.dp.sync(true);
    expect(mc.malformedByReason().checksum).toBe(3);
  });

  it('a late worker: a change of the MDB fails the request, and is not queued to it', () => {
    const l = lab(2, ['vif1.0', 'vif2.0'], true);
    const [w1] = l.workers;
    w1.answering = false;
    const mc = l.bridge.mcast!;
    mc.mdb.addStatic(1, G1, 1, null);
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    const n = w1.posted.length;
    mc.mdb.delStatic(1, G1, 1, null);
    expect(() => l.dp.sync(false, 20)).toThrow(DataPlaneTimeout);
    expect(w1.posted.length).toBe(n);
  });

  it('drains what a worker punted into the MDB (only for the port it was read on), and the tick publishes the result', () => {
    const l = lab(2, ['vif1.0', 'vif2.0'], true);
    const [w1] = l.workers;
    const ring = new PuntRing(w1.init.bridges[0].punt);
    const snap = w1.tables.get('br0')!.find((s) => s.name === 'vif2.0')!;
    const frame = igmpV2Report('239.1.2.3');
    const hdr = new EthernetHeader();
    hdr.etherType = 0x0800;
    hdr.dstHi = 0x0100;
    hdr.dstLo = 0x5e010203;
    hdr.payloadOffset = 14;
    // one with a stale port key (the id now names another port): refused
    expect(ring.push(snap.id, snap.portKey + 1000, 0, frame, 0, frame.length, hdr)).toBe(true);
    l.dp.tick(100);
    expect(l.bridge.mcast!.mdb.groups).toBe(0);
    expect(ring.push(snap.id, snap.portKey, 0, frame, 0, frame.length, hdr)).toBe(true);
    l.dp.tick(200);
    const mdb = l.bridge.mcast!.mdb;
    expect(mdb.findMember(mdb.findGroup(0, G1), snap.id)).toBeGreaterThanOrEqual(0);
    const copy = copyOf(w1);
    expect(copy.findMember(copy.findGroup(0, G1), snap.id)).toBeGreaterThanOrEqual(0);
    expect(l.dp.show().workers[1]).toMatchObject({ punt_pushed: 2, punt_dropped: 0 });
  });
});

describe('DataPlane: vhost-user ports (issue 23)', () => {
  /** The RxIo of a vhost-user port (VhostUserIo.rxHandle): stop/resume concern the guest's TX ring; adopted by device id. */
  class FakeVhostRxIo extends FakeRxIo {
    override readonly kind = 'vhost-user' as unknown as 'tap';
    readonly device = 7;
  }

  it('gives a vhost-user port to a worker like a TAP, by its device id and without a dup of its fd', () => {
    const l = lab(2, ['vif1.0']);
    const { port } = addFakePort(l.bridge, l.batch, 'vif3.0', { kind: 'vhost-user' });
    const io = new FakeVhostRxIo(() => l.batch.slab);
    port.io = io;
    const n = l.workers[0].posted.length;
    l.dp.sync(false);
    expect(l.workers[0].posted.length).toBeGreaterThan(n);
    expect(readers(l).get('vif3.0')).toEqual(['w1']);
    expect(io.reading).toBe(false);
    const snap = l.workers[0].tables.get('br0')!.find((s) => s.name === 'vif3.0')!;
    expect(snap.ioKind).toBe('vhost-user');
    expect(snap.device).toBe(7);
    expect(snap.fd).toBe(-1); // a dup would be the fake's fd (100)
    expect(l.dp.show().workers[1].ports).toEqual(['vif3.0']);
  });

  it('gives a vhost-user port\'s guest TX ring back to the main thread during a handover\'s pause too', () => {
    const l = lab(2, ['vif1.0']);
    const { port } = addFakePort(l.bridge, l.batch, 'vif3.0', { kind: 'vhost-user' });
    const io = new FakeVhostRxIo(() => l.batch.slab);
    port.io = io;
    l.dp.sync(false);
    expect(io.reading).toBe(false); // rxAway(true): worker 1 reads it
    // the pause syncs first: every port back to the main thread. For a TAP nobody resumes it until the pause ends
    // (Daemon.resumeIo); a vhost-user port's handle only says "the main thread may read the ring" (rxAway(false)),
    // and the port's own stop() holds it during the pause, so it is resumed now: nothing else would undo rxAway
    l.paused.value = true;
    l.dp.syncBestEffort(false, 20);
    expect(l.workers[0].reads('br0')).toEqual([]);
    expect(io.reading).toBe(true);
  });
});
