// The pieces of the data plane on threads (src/dataplane/) that run without threads: the learning ring, the shared
// FDB with its deferred reuse of removed entries, and a worker's engine (Bridge over a WorkerFdb) against the main thread's engine over
// the same table. The threads themselves: test/netns/data-workers.test.ts and the stress test.
import { describe, expect, it, vi } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { Fdb, macHi, macLo } from '../../src/fdb/fdb.js';
import { parseMac } from '../../src/frame/mac.js';
import { WorkerFdb } from '../../src/dataplane/fdb-view.js';
import { LEARN, LEARN_ARP, LearnRing } from '../../src/dataplane/learn-ring.js';
import { parseConfig } from '../../src/config/config.js';
import { diffConfig } from '../../src/state/reload.js';
import { configIssues } from '../support/config-issues.js';
import { addFakePort, BatchBuilder, eth } from '../support/fake-io.js';

const M1 = '00:16:3e:00:00:01';
/** Atomics' own methods, for spies that pass calls on */
const originals = { add: Atomics.add, sub: Atomics.sub, and: Atomics.and, or: Atomics.or, xor: Atomics.xor, exchange: Atomics.exchange,
  compareExchange: Atomics.compareExchange, store: Atomics.store, load: Atomics.load };
const M2 = '00:16:3e:00:00:02';

function collect(ring: LearnRing): Array<[number, number, number, number]> {
  const out: Array<[number, number, number, number]> = [];
  ring.drain({ learn: (hi, lo, port) => out.push([LEARN, hi, lo, port]), arp: (hi, lo, ip) => out.push([LEARN_ARP, hi, lo, ip]) });
  return out;
}

describe('LearnRing', () => {
  it('refuses a capacity that is not a power of two, and a buffer that is no ring', () => {
    expect(() => new LearnRing(3)).toThrow(RangeError);
    expect(() => new LearnRing(1)).toThrow(RangeError);
    expect(() => new LearnRing(new SharedArrayBuffer(20))).toThrow(/not a learning ring/);
  });

  it('hands entries over in order through a second view of its buffer, drops and counts when full', () => {
    const producer = new LearnRing(4);
    const consumer = new LearnRing(producer.buffer);
    for (let i = 0; i < 4; i++) expect(producer.push(LEARN, i, 10 * i, 7)).toBe(true);
    expect(producer.push(LEARN, 99, 99, 7)).toBe(false);
    expect(consumer.dropped).toBe(1);
    expect(consumer.pending).toBe(4);
    expect(collect(consumer)).toEqual([[LEARN, 0, 0, 7], [LEARN, 1, 10, 7], [LEARN, 2, 20, 7], [LEARN, 3, 30, 7]]);
    expect(consumer.pending).toBe(0);
    // wraps around many times without losing or repeating an entry
    let next = 0;
    for (let round = 0; round < 1000; round++) {
      for (let k = 0; k < 3; k++) producer.push(LEARN_ARP, next + k, 0, -1);
      const got = collect(consumer).map((e) => e[1]);
      expect(got).toEqual([next, next + 1, next + 2]);
      next += 3;
    }
  });

  it('signal() bumps the signal word once per batch that pushed something', () => {
    const ring = new LearnRing(8);
    const v0 = ring.signalValue;
    ring.signal();
    expect(ring.signalValue).toBe(v0);
    ring.push(LEARN, 1, 2, 3);
    ring.push(LEARN, 1, 3, 3);
    ring.signal();
    expect(ring.signalValue).toBe(v0 + 1);
    ring.signal();
    expect(ring.signalValue).toBe(v0 + 1);
  });
});

describe('shared FDB', () => {
  it('behaves as the unshared table, with and without readers in other threads', () => {
    const a = new Fdb({ maxEntries: 64, maxPorts: 8, ageingTimeMs: 1000 });
    const b = new Fdb({ maxEntries: 64, maxPorts: 8, ageingTimeMs: 1000, shared: true });
    expect(a.sharedLayout()).toBeNull();
    expect(b.sharedLayout()).not.toBeNull();
    // one reader that is never inside a batch: removed entries are reused at the next allocation
    b.setReaders(new Int32Array(new SharedArrayBuffer(4)));
    let rnd = 12345;
    const next = (n: number): number => {
      rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
      return rnd % n;
    };
    for (let step = 0; step < 5000; step++) {
      const mac = 0x00163e000000 + next(100);
      const port = next(8);
      const now = step * 10;
      switch (next(6)) {
        case 0: case 1: case 2: a.learn(1, mac, port, now); b.learn(1, mac, port, now); break;
        case 3: a.sweep(now, 16); b.sweep(now, 16); break;
        case 4: a.delete(1, mac); b.delete(1, mac); break;
        default: a.addStatic(1, mac, port, now); b.addStatic(1, mac, port, now);
      }
      expect(b.lookup(1, mac)).toBe(a.lookup(1, mac));
    }
    expect(b.checkInvariants()).toBeNull();
    expect(b.size).toBe(a.size);
  });

  it('reuses a removed entry only after every reader that was inside a batch has left it', () => {
    const fdb = new Fdb({ maxEntries: 2, maxPorts: 4, ageingTimeMs: 0, shared: true });
    const readers = new Int32Array(new SharedArrayBuffer(8));
    fdb.setReaders(readers);
    const ring = new LearnRing(8);
    const view = new WorkerFdb(fdb.sharedLayout()!, ring, 4);
    const m1 = parseMac(M1)!;
    const m2 = parseMac(M2)!;
    const m3 = parseMac('00:16:3e:00:00:03')!;
    fdb.learn(1, m1, 1, 0);
    fdb.learn(1, m2, 2, 0);
    Atomics.store(readers, 0, 1); // reader 0 is inside a batch (it may hold m1's entry)
    expect(fdb.delete(1, m1)).toBe(true);
    expect(fdb.limboSize).toBe(1);
    // the table has no free entry for m3: m1's is held back, the bridge-wide eviction victim (m2's) too
    fdb.learn(1, m3, 3, 0);
    expect(fdb.lookup(1, m3)).toBe(-1);
    expect(fdb.counters.learnFailed).toBe(1);
    expect(fdb.limboSize).toBe(2);
    expect(view.lookupHL(1, macHi(m1), macLo(m1))).toBe(-1);
    Atomics.store(readers, 0, 2); // the batch is over
    fdb.learn(1, m3, 3, 0);
    expect(fdb.lookup(1, m3)).toBe(3);
    expect(view.lookupHL(1, macHi(m3), macLo(m3))).toBe(3);
    expect(fdb.limboSize).toBe(0); // both held-back entries were freed together
    // a reader that is gone (ended inside a batch) holds nothing back
    Atomics.store(readers, 1, 7);
    fdb.delete(1, m3);
    expect(fdb.limboSize).toBe(1);
    fdb.readerGone(1);
    expect(fdb.limboSize).toBe(0);
    // and without readers, removed entries are free at once, even while the old counters say "inside a batch"
    Atomics.store(readers, 0, 9);
    fdb.setReaders(null);
    fdb.learn(1, m1, 1, 0);
    expect(fdb.delete(1, m1)).toBe(true);
    expect(fdb.limboSize).toBe(0);
    expect(fdb.checkInvariants()).toBeNull();
  });

  it('removing an entry makes an atomic read-modify-write before it loads the readers\' counters', () => {
    // store buffering: without a full fence, the loads of the readers' counters may complete before the stores that
    // unlink the entry are visible, and a reader seen outside a batch may still read the old bucket (fdb.ts, "Shared")
    const fdb = new Fdb({ maxEntries: 16, maxPorts: 4, ageingTimeMs: 0, shared: true });
    const readers = new Int32Array(new SharedArrayBuffer(8));
    fdb.setReaders(readers);
    const m1 = parseMac(M1)!;
    fdb.learn(1, m1, 1, 0);
    const calls: string[] = [];
    const rmw = ['add', 'sub', 'and', 'or', 'xor', 'exchange', 'compareExchange', 'store'] as const;
    const spies = [
      ...rmw.map((name) => vi.spyOn(Atomics, name).mockImplementation(((...a: unknown[]) => {
        calls.push(name);
        return Reflect.apply(originals[name], Atomics, a) as number;
      }) as never)),
      vi.spyOn(Atomics, 'load').mockImplementation(((a: Int32Array, i: number) => {
        if (a === readers) calls.push('load readers');
        return originals.load(a, i);
      }) as never),
    ];
    try {
      expect(fdb.delete(1, m1)).toBe(true);
    } finally {
      for (const s of spies) s.mockRestore();
    }
    const firstLoad = calls.indexOf('load readers');
    expect(firstLoad).toBeGreaterThan(0);
    // an Atomics.store is a full fence too (V8: xchg on x86-64, stlr on arm64), if it comes after the bucket stores
    expect(calls.slice(0, firstLoad).length, calls.join(', ')).toBeGreaterThan(0);
  });

  it('refuses a layout whose sizes do not match', () => {
    const fdb = new Fdb({ maxEntries: 16, maxPorts: 4, ageingTimeMs: 0, shared: true });
    const layout = { ...fdb.sharedLayout()!, maxEntries: 32 };
    expect(() => new WorkerFdb(layout, new LearnRing(8), 4)).toThrow(/does not match/);
  });
});

describe("a worker's engine over the shared FDB", () => {
  function setup(): { main: Bridge; fdb: Fdb; worker: Bridge<WorkerFdb>; ring: LearnRing; batch: BatchBuilder } {
    const main = new Bridge({ name: 'xenbr0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000, sharedFdb: true });
    const ring = new LearnRing(16);
    const view = new WorkerFdb(main.fdb.sharedLayout()!, ring, 8);
    const worker = new Bridge<WorkerFdb>({ name: 'xenbr0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 0, fdb: view });
    const batch = new BatchBuilder();
    for (const n of ['vif1.0', 'vif2.0', 'vif3.0']) {
      addFakePort(main, batch, n);
      addFakePort(worker as unknown as Bridge, batch, n);
    }
    return { main, fdb: main.fdb, worker, ring, batch };
  }
  const drainInto = (ring: LearnRing, fdb: Fdb, now: number): number =>
    ring.drain({ learn: (hi, lo, port) => fdb.learnHL(hi >>> 16, hi & 0xffff, lo, port, now), arp: (hi, lo, ip) => fdb.setIpv4(hi >>> 16, hi & 0xffff, lo, ip) });

  it('pushes a new MAC once, not per frame; the writer learns it; then the worker forwards to it as unicast', () => {
    const { main, fdb, worker, ring, batch } = setup();
    worker.nowMs = 1000;
    for (let i = 0; i < 5; i++) batch.add(eth(M2, M1));
    worker.receive(worker.ports[0]!, batch.slab, batch.desc, batch.count);
    batch.reset();
    // flooded (M2 unknown): both other ports of the worker got all five; the ring holds one entry
    expect(worker.counters.flooded).toBe(5);
    expect(ring.pending).toBe(1);
    expect(ring.pushed).toBe(1);
    expect(fdb.lookup(1, parseMac(M1)!)).toBe(-1);
    expect(drainInto(ring, fdb, 1000)).toBe(1);
    expect(fdb.lookup(0, parseMac(M1)!)).toBe(0);
    expect(main.fdb.size).toBe(1);
    // M2 on port 1 answers: the worker finds M1 on port 0 in the shared table and sends it there alone
    batch.add(eth(M1, M2));
    worker.receive(worker.ports[1]!, batch.slab, batch.desc, batch.count);
    batch.reset();
    expect(worker.counters.forwarded).toBe(1);
    expect(worker.ports[2]!.txPackets).toBe(5);
    expect(worker.ports[0]!.txPackets).toBe(1);
  });

  it('pushes nothing for a fresh entry on the same port or a static one; a due refresh and a move are pushed', () => {
    const { fdb, worker, ring, batch } = setup();
    const send = (port: number, now: number): void => {
      worker.nowMs = now;
      batch.add(eth(M2, M1));
      worker.receive(worker.ports[port]!, batch.slab, batch.desc, batch.count);
      batch.reset();
    };
    fdb.learn(0, parseMac(M1)!, 0, 0);
    send(0, 500);
    expect(ring.pending).toBe(0);
    send(0, 1500); // a refresh is due after REFRESH_GRANULARITY_MS
    expect(ring.pending).toBe(1);
    drainInto(ring, fdb, 1500);
    send(1, 1600); // moved to port 1
    expect(collect(ring)).toEqual([[LEARN, macHi(parseMac(M1)!), macLo(parseMac(M1)!), 1]]);
    fdb.addStatic(0, parseMac(M1)!, 2, 1700);
    send(0, 5000);
    expect(ring.pending).toBe(0);
  });

  it('counts a full ring as learn drops; the frames are forwarded all the same', () => {
    const { worker, ring, batch } = setup();
    worker.nowMs = 0;
    for (let i = 0; i < 40; i++) batch.add(eth(M2, `00:16:3e:01:00:${i.toString(16).padStart(2, '0')}`));
    worker.receive(worker.ports[0]!, batch.slab, batch.desc, batch.count);
    batch.reset();
    expect(ring.pending).toBe(16);
    expect(ring.dropped).toBe(24);
    expect(ring.pushed).toBe(16);
    expect(worker.ports[1]!.txPackets).toBe(40);
  });
});

describe('data_workers config key', () => {
  it('default 1, an integer 1..64, a change takes effect at restart', () => {
    expect(parseConfig('bridges: []').dataWorkers).toBe(1);
    expect(parseConfig('data_workers: 2\nbridges: []').dataWorkers).toBe(2);
    for (const v of ['0', '65', '1.5', 'two']) {
      expect(configIssues(`data_workers: ${v}\nbridges: []`)[0]).toMatch(/^data_workers: must be an integer \(threads that forward, the main thread included\) 1\.\.64, got /);
    }
    const plan = diffConfig(parseConfig('bridges: []'), parseConfig('data_workers: 4\nbridges: []'));
    expect(plan.map((c) => c.line)).toEqual(['~ data_workers 1 -> 4 (takes effect at restart)']);
    expect(plan[0].action).toEqual({ do: 'atRestart' });
  });
});
