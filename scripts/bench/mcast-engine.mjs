// Micro-benchmark of step "multicast" (IGMP/MLD snooping, issue 22): no I/O, no root. Runs against dist/
// (`npm run build` first; `npm run bench:engine` runs it after engine.mjs).
//
//   1. The cost for unicast: a Bridge with two fake ports and 1000 FDB entries forwarding known unicast, with snooping
//      off against snooping on and 1000 groups in the MDB. Modes run interleaved in short slices, each timed by this
//      process's CPU time; the best slice of each counts (target: within 5%).
//   2. A multicast stream: 60-byte IPv4 UDP frames to one of 1000 registered groups (one member among 4 guests each)
//      against the same frames with snooping off (flooded to every port): decisions per second.
//   3. Allocation: one million multicast frames after warm-up, GCs counted (0 means nothing allocated per frame).
//   4. A data-plane worker's engine (data_workers > 1): the same stream through a copy of the MDB (Mdb.importState(),
//      src/dataplane/mdb-publish.ts) against the main thread's; then one million frames, one in eight an IGMPv2 report
//      handed to the punt ring (src/dataplane/punt-ring.ts, drained between passes), GCs counted.
//
// Usage: node --expose-gc scripts/bench/mcast-engine.mjs [--quick]

import { PerformanceObserver, performance } from 'node:perf_hooks';

const dist = new URL('../../dist/', import.meta.url);
const { Bridge } = await import(new URL('bridge/bridge.js', dist));
const { BridgePort } = await import(new URL('bridge/port.js', dist));
const { McastSnooping } = await import(new URL('bridge/mcast.js', dist));
const { defaultMcastSettings } = await import(new URL('mdb/config.js', dist));
const { PuntRing, PuntWriter } = await import(new URL('dataplane/punt-ring.js', dist));

const quick = process.argv.includes('--quick');
const BATCH = 64;
const SLOT = 80;
const VNET = 10;
const GROUPS = 1000;
const TWO32 = 0x1_0000_0000;

class NullIo {
  constructor() {
    this.tx = new Uint32Array(4 * BATCH);
    this.counters = new Float64Array(16);
  }

  send(count) {
    return count;
  }
}

function writeMac(buf, off, mac) {
  const hi = Math.floor(mac / TWO32);
  const lo = (mac - hi * TWO32) >>> 0;
  buf.set([hi >>> 8, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff], off);
}

/** A bridge with `nports` fake ports; snooping on with GROUPS groups (port 1 + (g % (nports - 1)) a member of each) when `snoop`. */
function setup(nports, snoop) {
  const bridge = new Bridge({ name: 'bench', maxPorts: 8, fdbMax: 4096, ageingTimeMs: 300_000 });
  const ports = [];
  for (let id = 0; id < nports; id++) {
    const p = new BridgePort(id, `p${id}`, 'tap', { learning: true, flood: true, isolated: false }, 1500, 0);
    p.io = new NullIo();
    bridge.addPort(p);
    bridge.setPortState(p, 'up');
    ports.push(p);
  }
  bridge.nowMs = 1_000_000;
  if (snoop) {
    const mc = new McastSnooping(defaultMcastSettings(), 8);
    bridge.setMulticast(mc);
    const g = new Int32Array(4);
    g[2] = 0xffff;
    for (let i = 0; i < GROUPS; i++) {
      g[3] = (0xef010000 + i) | 0;
      const m = mc.mdb.member(0, g, 1 + (i % (nports - 1)));
      mc.mdb.setExclude(m, 1e12);
    }
  }
  return { bridge, ports };
}

/** Known unicast between 500 MACs behind port 0 and 500 behind port 1 (1000 FDB entries). */
function unicastLoad(s) {
  const macs = [[], []];
  for (let side = 0; side < 2; side++) {
    for (let i = 0; i < 500; i++) {
      const mac = (side === 0 ? 0x0200 : 0x0280) * TWO32 + i + 1;
      macs[side].push(mac);
      s.bridge.fdb.learn(0, mac, side, s.bridge.nowMs);
    }
  }
  const frames = 1024;
  const slab = new Uint8Array(2 * frames * SLOT);
  const batches = [[], []];
  for (let side = 0; side < 2; side++) {
    for (let b = 0; b < frames / BATCH; b++) {
      const desc = new Int32Array(3 * BATCH);
      for (let i = 0; i < BATCH; i++) {
        const k = b * BATCH + i;
        const off = (side * frames + k) * SLOT + 4 + VNET;
        desc[3 * i] = off;
        desc[3 * i + 1] = 60;
        writeMac(slab, off, macs[1 - side][(k * 7) % 500]);
        writeMac(slab, off + 6, macs[side][(k * 13) % 500]);
        slab[off + 12] = 0x08;
      }
      batches[side].push(desc);
    }
  }
  return () => {
    for (let b = 0; b < frames / BATCH; b++) {
      s.bridge.receive(s.ports[0], slab, batches[0][b], BATCH);
      s.bridge.receive(s.ports[1], slab, batches[1][b], BATCH);
    }
    return 2 * frames;
  };
}

function csum16(buf, off, len) {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (buf[off + i] << 8) | buf[off + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * IPv4 UDP from port 0 to the GROUPS groups in turn (checksums irrelevant for data); with `reportEvery` > 0, every
 * reportEvery-th frame an IGMPv2 report (from port 0) for one of the groups instead, its checksums set.
 */
function groupLoad(s, reportEvery) {
  const frames = 1024;
  const slab = new Uint8Array(frames * SLOT);
  const batches = [];
  for (let b = 0; b < frames / BATCH; b++) {
    const desc = new Int32Array(3 * BATCH);
    for (let i = 0; i < BATCH; i++) {
      const k = b * BATCH + i;
      const off = k * SLOT + 4 + VNET;
      const g = (0xef010000 + (k % GROUPS)) >>> 0;
      const report = reportEvery > 0 && k % reportEvery === 0;
      desc[3 * i] = off;
      desc[3 * i + 1] = 60;
      slab.set([0x01, 0x00, 0x5e, (g >>> 16) & 0x7f, (g >>> 8) & 0xff, g & 0xff, 0x02, 0, 0, 0, 0, 0x09, 0x08, 0x00], off);
      slab.set([0x45, 0, 0, report ? 28 : 46, 0, 0, 0, 0, 1, report ? 2 : 17, 0, 0, 198, 18, 0, 9, g >>> 24, (g >>> 16) & 0xff, (g >>> 8) & 0xff, g & 0xff], off + 14);
      if (reportEvery > 0) {
        const ip = csum16(slab, off + 14, 20);
        slab[off + 24] = ip >>> 8;
        slab[off + 25] = ip & 0xff;
      }
      if (report) {
        slab.set([0x16, 0, 0, 0, g >>> 24, (g >>> 16) & 0xff, (g >>> 8) & 0xff, g & 0xff], off + 34);
        const c = csum16(slab, off + 34, 8);
        slab[off + 36] = c >>> 8;
        slab[off + 37] = c & 0xff;
      }
    }
    batches.push(desc);
  }
  return () => {
    for (let b = 0; b < frames / BATCH; b++) s.bridge.receive(s.ports[0], slab, batches[b], BATCH);
    return frames;
  };
}

/** IPv4 UDP from port 0 to the GROUPS groups in turn. */
function multicastLoad(s) {
  return groupLoad(s, 0);
}

/** As multicastLoad, but every 8th frame an IGMPv2 report (from port 0) for one of the groups. */
function mixedLoad(s) {
  return groupLoad(s, 8);
}

/** A worker's engine: snooping with a copy of `main`'s MDB and a punt ring (drained by `drain()`). */
function workerSetup(main, nports) {
  const s = setup(nports, false);
  const mc = new McastSnooping({ ...defaultMcastSettings(), querier: false }, 8);
  s.bridge.setMulticast(mc);
  mc.mdb.importState(structuredClone(main.bridge.mcast.mdb.exportState()));
  const ring = new PuntRing(128);
  mc.punt = new PuntWriter(ring, 8);
  const sink = { frame() {} };
  s.drain = () => ring.drain(sink);
  s.ring = ring;
  return s;
}

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * One million frames of `pass` after 1500 warm-up passes; the frames run and the GCs that started meanwhile
 * (0: nothing allocated per frame). `before()` runs after the warm-up, right before the measured passes.
 */
async function gcsOverMillion(pass, before = () => {}) {
  for (let i = 0; i < 1500; i++) pass();
  const gcs = [];
  const obs = new PerformanceObserver((l) => gcs.push(...l.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  if (typeof globalThis.gc === 'function') globalThis.gc();
  before();
  const t0 = performance.now();
  let n = 0;
  while (n < 1_000_000) n += pass();
  const t1 = performance.now();
  await new Promise((r) => setTimeout(r, 200));
  obs.disconnect();
  return { n, gcs: gcs.filter((e) => e.startTime >= t0 && e.startTime <= t1).length };
}

/** Interleaved slices of each mode's pass; the best rate (frames per CPU second) of each. */
function interleaved(modes, slices, passesPerSlice) {
  const best = Object.fromEntries(Object.keys(modes).map((k) => [k, 0]));
  for (const pass of Object.values(modes)) for (let i = 0; i < 300; i++) pass();
  for (let s = 0; s < slices; s++) {
    for (const [k, pass] of Object.entries(modes)) {
      const t0 = cpuMs();
      let n = 0;
      for (let p = 0; p < passesPerSlice; p++) n += pass();
      const rate = n / ((cpuMs() - t0) / 1000);
      if (rate > best[k]) best[k] = rate;
    }
  }
  return best;
}

const slices = quick ? 10 : 30;
console.log(`step "multicast" (issue 22), node ${process.version}; best of ${slices} interleaved CPU-time slices`);
const uni = interleaved({ off: unicastLoad(setup(2, false)), on: unicastLoad(setup(2, true)) }, slices, 100);
console.log(`  known unicast, 1000 FDB entries: snooping off ${(uni.off / 1e6).toFixed(2)} M decisions/s, on with ${GROUPS} groups ` +
  `${(uni.on / 1e6).toFixed(2)} M (${((1 - uni.on / uni.off) * 100).toFixed(1)}% fewer; target < 5%)`);
const on = setup(5, true);
const mc = interleaved({ flood: multicastLoad(setup(5, false)), mdb: multicastLoad(on) }, slices, 100);
console.log(`  IPv4 multicast stream to ${GROUPS} groups, 5 ports: snooping off (flooded to 4) ${(mc.flood / 1e6).toFixed(2)} M decisions/s, ` +
  `on (to the one member) ${(mc.mdb / 1e6).toFixed(2)} M`);
{
  const { n, gcs: during } = await gcsOverMillion(multicastLoad(on));
  console.log(`  allocation: ${n.toLocaleString('en')} multicast frames through the MDB after warm-up: ${during} GCs ` +
    `(${during === 0 ? 'PASS: nothing allocated per frame' : 'FAIL'})`);
}
{
  const w = workerSetup(on, 5);
  const rates = interleaved({ main: multicastLoad(on), worker: multicastLoad(w) }, slices, 100);
  console.log(`  data worker's copy of the MDB: stream ${(rates.worker / 1e6).toFixed(2)} M decisions/s against the main thread's ` +
    `${(rates.main / 1e6).toFixed(2)} M`);
  const mixed = mixedLoad(w);
  const pass = () => {
    const n = mixed();
    w.drain();
    return n;
  };
  let pushed0 = 0;
  const { n, gcs: during } = await gcsOverMillion(pass, () => {
    pushed0 = w.ring.pushed;
  });
  const punted = w.ring.pushed - pushed0;
  console.log(`  allocation (worker): ${n.toLocaleString('en')} frames, ${punted.toLocaleString('en')} reports punted ` +
    `(${w.ring.dropped} dropped): ${during} GCs (${during === 0 && punted > 0 ? 'PASS: nothing allocated per frame' : 'FAIL'})`);
}
