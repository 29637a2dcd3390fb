// The MDB as data-plane workers see it (src/dataplane/mdb-publish.ts, native-notes/multicore.md "The MDB"): a whole
// copy of the main thread's MDB (Mdb.exportState(), cloned as postMessage clones it, Mdb.importState()), and the
// control frames a worker reads punted to the main thread (punt-ring.ts). Property-style, seeded:
//   - the copy is the writer's state exactly, and decides every (vid, group, source, port, time) as the writer does,
//     over random joins, leaves, source lists, router ports, static entries, sweeps and port removals;
//   - a copy is the state at its publication: changes the writer makes after it (a concurrent update) are not in it,
//     and none of them is half in it;
//   - the engine on a "worker" (copy + punt ring) forwards data and control frames to the same ports as the main
//     thread's engine, per VLAN, when its copy is current; what it punts builds the main thread's MDB.
import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { McastSnooping, type McastSettings } from '../../src/bridge/mcast.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { REC_ALLOW, REC_BLOCK, REC_IS_EX, REC_IS_IN, REC_TO_EX, REC_TO_IN } from '../../src/frame/igmp.js';
import { Mdb, type MdbState } from '../../src/mdb/mdb.js';
import { EthernetHeader } from '../../src/frame/ethernet.js';
import { defaultMcastSettings } from '../../src/mdb/config.js';
import { MdbPublished, PuntConsumer } from '../../src/dataplane/mdb-publish.js';
import { PuntRing, PuntWriter } from '../../src/dataplane/punt-ring.js';
import { addFakePort, BatchBuilder, type FakeIo } from '../support/fake-io.js';
import {
  igmpLeave, igmpQuery, igmpV2Report, igmpV3Report, ipv4Frame, mldDone, mldQuery, mldV1Report, mldV2Report, udpTo,
} from '../support/mcast-frames.js';
import { prng } from '../support/prng.js';

const G = (n: number): Int32Array => Int32Array.from([0, 0, 0xffff, (0xef000000 | n) | 0]);
const S = (n: number): Int32Array => Int32Array.from([0, 0, 0xffff, (0xc6120000 | n) | 0]);
const PORTS = 6;
const GROUPS = 6;
const SOURCES = 4;
const VIDS = [1, 2];

/** The copy a worker gets: exportState() cloned as postMessage clones it, imported into an MDB of the same sizes. */
function publish(from: Mdb, into: Mdb): void {
  into.importState(structuredClone(from.exportState()));
}

/** null when two exportState()s are equal, else the first field that differs. */
function stateDiff(a: MdbState, b: MdbState): string | null {
  const keys = new Set([...Object.keys(a.arrays), ...Object.keys(b.arrays)]);
  for (const k of keys) {
    const x = a.arrays[k];
    const y = b.arrays[k];
    if (x === undefined || y === undefined || x.length !== y.length) return k;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${k}[${i}]: ${x[i]} / ${y[i]}`;
  }
  return JSON.stringify(a.numbers) === JSON.stringify(b.numbers) ? null : `numbers ${JSON.stringify(a.numbers)} / ${JSON.stringify(b.numbers)}`;
}

/** The ports a data frame from `src` to (vid, group) reaches by the MDB at nowMs ('unregistered': no group). */
function decide(mdb: Mdb, vid: number, group: Int32Array, src: Int32Array, nowMs: number): string {
  const gid = mdb.findGroup(vid, group);
  const routers: number[] = [];
  for (let p = 0; p < PORTS; p++) if (mdb.isRouter(p, vid, nowMs)) routers.push(p);
  if (gid < 0) return `unregistered routers=${routers.join(',')}`;
  const members = new Set<number>(routers);
  for (let m = mdb.gHead[gid]; m !== -1; m = mdb.mNext[m]) if (mdb.takes(m, src, nowMs)) members.add(mdb.mPort[m]);
  return [...members].sort((a, b) => a - b).join(',');
}

function allDecisions(mdb: Mdb, nowMs: number): string[] {
  const out: string[] = [];
  for (const vid of VIDS) {
    for (let g = 0; g < GROUPS; g++) {
      for (let s = 0; s < SOURCES; s++) {
        for (const dt of [0, 500, 2000, 10_000]) out.push(`${vid} g${g} s${s} +${dt}: ${decide(mdb, vid, G(g), S(s), nowMs + dt)}`);
      }
    }
  }
  return out;
}

/** One random change of the kind reports, leaves, queries, `mdb add|del`, sweeps and port events make. */
function randomOp(mdb: Mdb, rnd: () => number, nowMs: number): void {
  const pick = (n: number): number => Math.floor(rnd() * n);
  const vid = VIDS[pick(VIDS.length)];
  const g = G(pick(GROUPS));
  const port = pick(PORTS);
  const src = S(pick(SOURCES));
  const k = pick(13);
  const m = (): number => mdb.member(vid, g, port);
  const existing = (): number => mdb.findMember(mdb.findGroup(vid, g), port);
  switch (k) {
    case 0: { const x = m(); if (x >= 0) mdb.setExclude(x, nowMs + 1000 + pick(5000)); break; }
    case 1: { const x = m(); if (x >= 0) mdb.allowSource(x, src, nowMs + 500 + pick(5000)); break; }
    case 2: { const x = m(); if (x >= 0) { mdb.setExclude(x, nowMs + 3000); mdb.excludeSource(x, src, nowMs); } break; }
    case 3: { const x = existing(); if (x >= 0) mdb.lowerGroupTimer(x, nowMs + pick(2000)); break; }
    case 4: { const x = existing(); if (x >= 0) { mdb.lowerSource(x, src, nowMs + pick(2) * 1000, nowMs); mdb.pruneIfEmpty(x); } break; }
    case 5: { const x = existing(); if (x >= 0 && !mdb.isStatic(x)) mdb.removeMember(x); break; }
    case 6: mdb.heardRouter(port, vid, nowMs + pick(4000)); break;
    case 11: if (rnd() < 0.3) mdb.forgetRouter(port); break;
    case 7: mdb.addStatic(vid, g, port, rnd() < 0.5 ? null : src); break;
    case 8: mdb.delStatic(vid, g, port, rnd() < 0.5 ? null : src); break;
    case 9: mdb.sweep(nowMs, 1 + pick(64)); break;
    case 10: if (rnd() < 0.2) mdb.removePort(port, rnd() < 0.5); break;
    default: mdb.routerMode[port] = pick(3); mdb.version++; break;
  }
}

describe('the MDB copy a data-plane worker forwards with', () => {
  it('is the writer exactly, and decides every (vid, group, source, port, time) as the writer does (seeded random joins, leaves, sources)', () => {
    for (const seed of [1, 2, 3, 22, 2026]) {
      const rnd = prng(seed);
      const main = new Mdb({ maxGroups: 8, maxPorts: PORTS });
      const copy = new Mdb({ maxGroups: 8, maxPorts: PORTS });
      let now = 1000;
      let publications = 0;
      for (let step = 0; step < 600; step++) {
        const v = main.version;
        randomOp(main, rnd, now);
        now += Math.floor(rnd() * 300);
        // the data plane publishes when the version moved (here: at random, as syncs come)
        if (main.version !== v || rnd() < 0.3) {
          if (rnd() < 0.5) continue;
          publish(main, copy);
          publications++;
          expect(copy.check(), `seed ${seed} step ${step}`).toBeNull();
          expect(stateDiff(copy.exportState(), main.exportState())).toBeNull();
          expect(allDecisions(copy, now), `seed ${seed} step ${step}`).toEqual(allDecisions(main, now));
        }
      }
      expect(publications).toBeGreaterThan(50);
      expect(main.groups).toBeGreaterThanOrEqual(0);
    }
  });

  it('every change the forwarding decision depends on moves the version (what makes the data plane publish)', () => {
    const rnd = prng(7);
    const main = new Mdb({ maxGroups: 8, maxPorts: PORTS });
    let now = 1000;
    let before = structuredClone(main.exportState());
    for (let step = 0; step < 2000; step++) {
      const v = main.version;
      randomOp(main, rnd, now);
      now += Math.floor(rnd() * 300);
      const after = main.exportState();
      const { version: _a, ...restAfter } = after.numbers;
      const { version: _b, ...restBefore } = before.numbers;
      const changed = JSON.stringify(Object.entries(after.arrays).map(([k, a]) => [k, Array.from(a)])) !==
        JSON.stringify(Object.entries(before.arrays).map(([k, a]) => [k, Array.from(a)])) || JSON.stringify(restAfter) !== JSON.stringify(restBefore);
      // sweepCursor moves on every sweep without changing what forwarding reads
      const onlyCursor = changed && JSON.stringify(Object.entries(after.arrays).map(([k, a]) => [k, Array.from(a)])) ===
        JSON.stringify(Object.entries(before.arrays).map(([k, a]) => [k, Array.from(a)]));
      if (changed && !onlyCursor) expect(main.version, `step ${step}`).not.toBe(v);
      before = structuredClone(after);
    }
  });

  it('is the state at its publication: a concurrent update after it is not in the copy, not even in part', () => {
    const rnd = prng(11);
    const main = new Mdb({ maxGroups: 8, maxPorts: PORTS });
    const copy = new Mdb({ maxGroups: 8, maxPorts: PORTS });
    let now = 1000;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 20; i++) randomOp(main, rnd, now);
      // postMessage clones the arrays at the call: what the writer does next (before the worker applies the
      // message, between two of its batches) is not in this copy
      const inFlight: MdbState = structuredClone(main.exportState());
      // the writer's decisions at the publication
      const expected = allDecisions(main, now);
      for (let i = 0; i < 20; i++) randomOp(main, rnd, now + 10);
      copy.importState(inFlight);
      expect(copy.check()).toBeNull();
      expect(allDecisions(copy, now)).toEqual(expected);
      now += 250;
    }
  });

  it('refuses the state of an MDB of other sizes and changes nothing', () => {
    const main = new Mdb({ maxGroups: 8, maxPorts: PORTS });
    main.setExclude(main.member(1, G(1), 2), 5000);
    const other = new Mdb({ maxGroups: 16, maxPorts: PORTS });
    other.setExclude(other.member(1, G(2), 3), 5000);
    const before = structuredClone(other.exportState());
    expect(() => other.importState(structuredClone(main.exportState()))).toThrow(/multicast_max_groups/);
    expect(other.exportState()).toEqual(before);
  });
});

/** A tagged copy of an untagged frame (802.1Q, vid). */
function tagged(frame: Buffer, vid: number): Buffer {
  return Buffer.concat([frame.subarray(0, 12), Buffer.from([0x81, 0x00, vid >> 8, vid & 0xff]), frame.subarray(12)]);
}

interface Engine {
  br: Bridge;
  mc: McastSnooping;
  ports: { port: BridgePort; io: FakeIo }[];
  batch: BatchBuilder;
}

function engine(settings: McastSettings, names: string[]): Engine {
  const br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
  const mc = new McastSnooping(settings, 16);
  br.setMulticast(mc);
  const batch = new BatchBuilder();
  const ports = names.map((n, i) => {
    const p = addFakePort(br, batch, n, { kind: i === 0 ? 'uplink' : 'tap', learning: false });
    br.setPortVlan(p.port, { mode: 'trunk', vlans: [10, 20], native: null });
    return p;
  });
  br.nowMs = 1000;
  return { br, mc, ports, batch };
}

function rx(e: Engine, i: number, frame: Buffer): number[] {
  for (const x of e.ports) x.io.sent.length = 0;
  e.batch.add(frame);
  e.br.receive(e.ports[i].port, e.batch.slab, e.batch.desc, e.batch.count);
  e.batch.reset();
  const out: number[] = [];
  e.ports.forEach((x, k) => {
    if (x.io.sent.length > 0) out.push(k);
  });
  return out;
}

describe('the engine on a data-plane worker (MDB copy + punt ring)', () => {
  const names = ['peth0', 'vif1.0', 'vif2.0', 'vif3.0', 'vif4.0', 'vif5.0'];
  const groups4 = ['239.1.1.1', '239.1.1.2', '239.2.0.9'];
  const groups6 = ['ff3e::1:1', 'ff3e::1:2'];
  const sources4 = ['198.18.9.1', '198.18.9.2', '198.18.9.3'];
  const sources6 = ['2001:db8::9:1', '2001:db8::9:2'];

  for (const floodUnregistered of [true, false]) {
    it(`forwards every frame to the ports the main thread does, per VLAN (seeded; multicast_flood_unregistered ${floodUnregistered})`, () => {
      for (const seed of [5, 6, 7]) {
        const rnd = prng(seed);
        const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
        const settings = { ...defaultMcastSettings(), floodUnregistered, maxGroups: 16 };
        // reference: one thread reads every frame; writer: the main thread's MDB, fed only by what the worker punts
        const main = engine(settings, names);
        const writer0 = engine(settings, names);
        const worker = engine(settings, names);
        const ring = new PuntRing(64);
        const writer = new PuntWriter(ring, 16);
        for (let id = 0; id < 16; id++) writer.portKey[id] = 100 + id;
        worker.mc.punt = writer;
        const consumer = new PuntConsumer();
        const keyOf = (p: BridgePort): number => 100 + p.id;
        const published = new MdbPublished();
        let compared = 0;
        let partial = 0;
        for (let step = 0; step < 400; step++) {
          const vid = pick([10, 20]);
          const host = 1 + Math.floor(rnd() * (names.length - 1));
          const mac = `00:16:3e:00:00:0${host}`;
          const k = Math.floor(rnd() * 10);
          let frame: Buffer;
          if (k === 0) frame = rnd() < 0.5 ? igmpQuery() : mldQuery('::', { v2: true });
          else if (k === 1) frame = igmpV2Report(pick(groups4), `198.18.0.${host}`, mac);
          else if (k === 2) frame = igmpLeave(pick(groups4), `198.18.0.${host}`, mac);
          else if (k === 3) {
            frame = igmpV3Report([{ type: pick([REC_IS_EX, REC_TO_EX, REC_IS_IN, REC_ALLOW, REC_TO_IN, REC_BLOCK]), group: pick(groups4),
              sources: sources4.filter(() => rnd() < 0.5) }], `198.18.0.${host}`, mac);
          } else if (k === 4) frame = rnd() < 0.5 ? mldV1Report(pick(groups6), `fe80::${host}`, mac) : mldDone(pick(groups6), `fe80::${host}`, mac);
          else if (k === 5) {
            frame = mldV2Report([{ type: pick([REC_IS_EX, REC_TO_EX, REC_IS_IN, REC_ALLOW, REC_TO_IN, REC_BLOCK]), group: pick(groups6),
              sources: sources6.filter(() => rnd() < 0.5) }], `fe80::${host}`, mac);
          } else if (k === 6) frame = udpTo(pick(sources4), '224.0.0.251', mac); // link-local: flooded
          else frame = rnd() < 0.6 ? udpTo(pick(sources4), pick(groups4), mac) : udpTo(pick(sources6), pick(groups6), mac);
          frame = tagged(frame, vid);
          const from = k === 0 ? 0 : host;
          // what one thread would do with it, against the worker with its (current) copy of the writer's MDB
          const expected = rx(main, from, frame);
          const got = rx(worker, from, frame);
          expect(got, `seed ${seed} step ${step} kind ${k} vid ${vid}`).toEqual(expected);
          compared++;
          // by the MDB: to some ports and not others
          if (k >= 7 && expected.length > 0 && expected.length < names.length - 1) partial++;
          // the main thread learns what the worker punted: the same MDB as one thread's, field for field
          consumer.drain(ring, writer0.br, keyOf, writer0.br.nowMs);
          expect(stateDiff(writer0.mc.mdb.exportState(), main.mc.mdb.exportState()), `seed ${seed} step ${step}`).toBeNull();
          // time passes; the tick sweeps and the sync publishes
          const dt = Math.floor(rnd() * 400);
          for (const e of [main, writer0, worker]) e.br.nowMs += dt;
          main.mc.tick(main.br.nowMs, 16, main.br.portList);
          writer0.mc.tick(writer0.br.nowMs, 16, writer0.br.portList);
          if (published.behind(writer0.mc, false)) worker.mc.mdb.importState(structuredClone(published.publish(writer0.mc, 1)!.mdb));
        }
        expect(compared).toBe(400);
        expect(partial, `seed ${seed}`).toBeGreaterThan(20);
        expect(ring.dropped).toBe(0);
        expect(main.mc.mdb.groups + main.mc.counters.mdbForwarded).toBeGreaterThan(0);
      }
    });
  }

  it('what a worker punts builds the main thread\'s MDB and router ports; refused for a port replaced or out of the VLAN', () => {
    const settings = { ...defaultMcastSettings(), floodUnregistered: false };
    const main = engine(settings, names);
    const worker = engine(settings, names);
    const ring = new PuntRing(8);
    const writer = new PuntWriter(ring, 16);
    for (let id = 0; id < 16; id++) writer.portKey[id] = 100 + id;
    worker.mc.punt = writer;
    const consumer = new PuntConsumer();
    const keyOf = (p: BridgePort): number => 100 + p.id;
    // the worker reads a query on the uplink and a join on vif1.0: flooded / to the router port only, as on main
    expect(rx(worker, 0, tagged(igmpQuery(), 10))).toEqual([1, 2, 3, 4, 5]);
    expect(consumer.drain(ring, main.br, keyOf, main.br.nowMs)).toBe(true);
    expect(main.mc.mdb.isRouter(0, 10, main.br.nowMs)).toBe(true);
    // (the drain changed the MDB: the data plane publishes it)
    worker.mc.mdb.importState(structuredClone(main.mc.mdb.exportState()));
    expect(rx(worker, 1, tagged(igmpV2Report('239.1.1.1', '198.18.0.1', '00:16:3e:00:00:01'), 10))).toEqual([0]);
    consumer.drain(ring, main.br, keyOf, main.br.nowMs);
    expect(main.mc.portStats(main.ports[1].port, main.br.nowMs)).toMatchObject({ reports_rx: 1, mdb_entries: 1 });
    expect(main.mc.portStats(main.ports[0].port, main.br.nowMs)).toMatchObject({ queries_rx: 1 });
    // the worker's copy knows nothing yet: the stream goes to the router port only (unregistered, not flooded)
    const data = tagged(udpTo('198.18.9.1', '239.1.1.1', '00:16:3e:00:00:05'), 10);
    expect(rx(worker, 5, data)).toEqual([0]);
    worker.mc.mdb.importState(structuredClone(main.mc.mdb.exportState()));
    expect(rx(worker, 5, data)).toEqual([0, 1]);
    // the same group in VLAN 20 is another group, and the query made port 0 a router port in VLAN 10 only
    expect(main.mc.mdb.isRouter(0, 20, main.br.nowMs)).toBe(false);
    expect(rx(worker, 5, tagged(udpTo('198.18.9.1', '239.1.1.1', '00:16:3e:00:00:05'), 20))).toEqual([]);
    // a join read for a port whose id now names another port (key changed), or outside the port's VLANs: refused
    rx(worker, 2, tagged(igmpV2Report('239.1.1.2', '198.18.0.2', '00:16:3e:00:00:02'), 10));
    writer.portKey[3] = 999;
    rx(worker, 3, tagged(igmpV2Report('239.1.1.2', '198.18.0.3', '00:16:3e:00:00:03'), 10));
    main.br.setPortVlan(main.ports[2].port, { mode: 'trunk', vlans: [20], native: null });
    consumer.drain(ring, main.br, keyOf, main.br.nowMs);
    expect(main.mc.mdb.findGroup(10, Int32Array.from([0, 0, 0xffff, 0xef010102 | 0]))).toBe(-1);
    expect(consumer.refused).toBe(2);
  });

  it('a full punt ring drops and counts (the frame is forwarded all the same); a frame longer than a slot too', () => {
    const worker = engine(defaultMcastSettings(), names);
    const ring = new PuntRing(2);
    worker.mc.punt = new PuntWriter(ring, 16);
    for (let i = 0; i < 3; i++) expect(rx(worker, 0, tagged(igmpQuery(), 10))).toEqual([1, 2, 3, 4, 5]);
    expect(ring.pushed).toBe(2);
    expect(ring.dropped).toBe(1);
    const records = Array.from({ length: 40 }, (_, i) => ({ type: REC_IS_EX, group: `239.3.0.${i + 1}`, sources: sources4.concat(sources4, sources4, sources4) }));
    const big = tagged(igmpV3Report(records), 10);
    expect(big.length).toBeGreaterThan(2048);
    ring.drain({ frame: () => undefined });
    expect(ring.push(1, 1, 10, big, 0, big.length, new EthernetHeader())).toBe(false);
    expect(ring.oversize).toBe(1);
    expect(ring.dropped).toBe(2);
  });

  it('malformed IGMP/MLD read by a worker is dropped and counted there, and folds into the main thread\'s counters by reason and port', () => {
    const main = engine(defaultMcastSettings(), names);
    const worker = engine(defaultMcastSettings(), names);
    const ring = new PuntRing(8);
    worker.mc.punt = new PuntWriter(ring, 16);
    // IGMP with a bad checksum
    const bad = ipv4Frame('198.18.0.1', '239.1.1.1', 2, Buffer.from([0x16, 0, 0x12, 0x34, 239, 1, 1, 1]), { ra: true });
    expect(rx(worker, 1, tagged(bad, 10))).toEqual([]);
    expect(ring.pushed).toBe(0);
    const words = McastSnooping.workerCounterWords(16);
    const slab = new Float64Array(words);
    const folded = new Float64Array(words);
    worker.mc.writeWorkerCounters(slab, 0, 16);
    main.mc.foldWorkerCounters(slab, folded, 0, 16);
    expect(main.mc.malformedByReason().checksum).toBe(1);
    expect(main.mc.portStats(main.ports[1].port, 0).malformed_rx).toBe(1);
    // folding again adds nothing; a copy replaced on the worker (counting from zero) adds nothing either
    main.mc.foldWorkerCounters(slab, folded, 0, 16);
    main.mc.foldWorkerCounters(new Float64Array(words), folded, 0, 16);
    expect(main.mc.malformedByReason().checksum).toBe(1);
  });
});
