// Micro-benchmarks of the forwarding engine alone: no I/O, no root. Runs against dist/ (npm run build first; `npm run
// bench:engine` does both and passes --expose-gc).
//
//   1. forwarding decisions per second: a Bridge with two ports whose PortIo is a fake (send() accepts everything and
//      does nothing), batches of 64 frames of known-unicast traffic between N/2 MACs behind each port (FDB of N = 1k and
//      100k entries), both directions. The 64 KiB of frames (1024 per direction, like a hot rx slab) are re-addressed
//      with fresh random MACs between passes, outside the timed part, so lookups hit the whole table, not 1024 entries.
//      The same with 802.1Q: an access port and a trunk (a tag pushed one way, popped the other).
//      The same with one mirror of all ports (both directions) to a third port (issue 14): the cost of a copy per frame,
//      against no mirror (where a frame pays one null check per port it touches).
//      Port security (issue 10): two ports each sending from its own MAC (the way a locked VIF must), 3/4 IPv4 UDP
//      and 1/4 IPv6 ICMPv6 between the two guests, unlocked against every port locked as docs/configuration.md's example (one
//      IPv4, one IPv6 address), locked with 4 IPv4 and 4 IPv6 entries where the source matches the last (the longest
//      scan), and the example lock plus ra_guard and dhcp_guard. The modes run interleaved in short slices, each
//      timed by this process's CPU time (process.cpuUsage), and the best slice of each mode counts: on a machine
//      shared with other work that is the figure least disturbed by it.
//   2. FDB alone, ns per operation: lookup (hit, miss), learn refresh (known MAC, same port), learn insert, learn insert
//      with eviction (table full), learn move (MAC on another port).
//   3. allocation proof: after warm-up, one million frames through the engine at 100k entries with a PerformanceObserver
//      on 'gc' entries and v8 heap statistics before/after: no GC and no heap growth means no allocation per frame.
//
// Usage: node --expose-gc scripts/bench/engine.mjs [--json FILE] [--quick]

import { performance, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Session } from 'node:inspector';

const dist = new URL('../../dist/', import.meta.url);
let Bridge, BridgePort, Fdb, Mirror, PortSecurity, lockSpecFrom;
try {
  ({ PortSecurity, lockSpecFrom } = await import(new URL('bridge/lock.js', dist)));
  ({ Bridge } = await import(new URL('bridge/bridge.js', dist)));
  ({ Mirror } = await import(new URL('bridge/mirror.js', dist)));
  ({ BridgePort } = await import(new URL('bridge/port.js', dist)));
  ({ Fdb } = await import(new URL('fdb/fdb.js', dist)));
} catch (err) {
  console.error(`cannot load the engine from dist/ (run \`npm run build\` first): ${err.message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonIdx = args.indexOf('--json');
const jsonOut = jsonIdx >= 0 ? args[jsonIdx + 1] : null;
const TRIALS = quick ? 3 : 7;
const FRAMES_PER_TRIAL = quick ? 500_000 : 2_000_000;

const TWO32 = 0x1_0000_0000;
const BATCH = 64;
const SLOT = 80; // pad 4 | vnet header 10 | frame 60 | pad 6
const VNET = 10;
const FRAMES_PER_DIR = 1024;

// xorshift32: allocation-free pseudo-random numbers in [0, n)
let rng = 0x12345678;
function rand(n) {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return (rng >>> 0) % n;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function writeMac(buf, off, mac) {
  const hi = Math.floor(mac / TWO32);
  const lo = (mac - hi * TWO32) >>> 0;
  buf[off] = hi >>> 8;
  buf[off + 1] = hi & 0xff;
  buf[off + 2] = lo >>> 24;
  buf[off + 3] = (lo >>> 16) & 0xff;
  buf[off + 4] = (lo >>> 8) & 0xff;
  buf[off + 5] = lo & 0xff;
}

/** N/2 distinct locally administered unicast MACs per side: 02:00:.. on side 0, 02:80:.. on side 1. */
function macSet(count, side) {
  const macs = new Float64Array(count);
  const base = (side === 0 ? 0x0200 : 0x0280) * TWO32;
  for (let i = 0; i < count; i++) macs[i] = base + ((Math.imul(i + 1, 0x9e3779b1) >>> 0) & 0xffffff) * 256 + (i & 0xff);
  return macs;
}

class NullIo {
  constructor() {
    this.tx = new Uint32Array(4 * BATCH);
    this.counters = new Float64Array(16);
    this.sent = 0;
  }

  send(count) {
    this.sent += count;
    return count;
  }
}

/**
 * A bridge with two fake ports and an FDB of `entries` (half behind each port), plus pre-built rx batches.
 * With `tagged`, port 0 is an access port of VLAN 10 (untagged frames in, a tag pushed towards port 1) and port 1 a
 * trunk of VLAN 10 (tagged frames in, the tag popped towards port 0): the cost of tag handling in the engine.
 */
function forwardingSetup(entries, tagged = false, mirror = false) {
  const bridge = new Bridge({ name: 'bench', maxPorts: 4, fdbMax: entries + 1024, ageingTimeMs: 300_000 });
  const ports = [];
  for (let id = 0; id < 2; id++) {
    const port = new BridgePort(id, `p${id}`, 'tap', { learning: true, flood: true, isolated: false }, 1500, 0);
    port.io = new NullIo();
    bridge.addPort(port);
    if (tagged) bridge.setPortVlan(port, id === 0 ? { mode: 'access', vlan: 10 } : { mode: 'trunk', vlans: [10], native: null });
    bridge.setPortState(port, 'up');
    ports.push(port);
  }
  if (mirror) {
    // the output port: receives one copy of every frame, as on the selected port's wire
    const out = new BridgePort(2, 'mirror0', 'tap', { learning: true, flood: true, isolated: false }, 1500, 0);
    out.io = new NullIo();
    bridge.addPort(out);
    bridge.setPortState(out, 'up');
    bridge.setMirrors([new Mirror({ name: 'all', ports: 'all', direction: 'both', vlans: null, output: 'mirror0', outputVlan: null })]);
  }
  const vid = tagged ? 10 : 0;
  const half = entries / 2;
  const macs = [macSet(half, 0), macSet(half, 1)];
  bridge.nowMs = 1_000_000;
  for (let side = 0; side < 2; side++) for (let i = 0; i < half; i++) bridge.fdb.learn(vid, macs[side][i], side, bridge.nowMs);
  if (bridge.fdb.size !== entries) throw new Error(`FDB holds ${bridge.fdb.size}, expected ${entries}`);
  // slab: FRAMES_PER_DIR frames from port 0 then FRAMES_PER_DIR from port 1
  const slab = new Uint8Array(2 * FRAMES_PER_DIR * SLOT);
  const batches = [[], []];
  for (let side = 0; side < 2; side++) {
    for (let b = 0; b < FRAMES_PER_DIR / BATCH; b++) {
      const desc = new Int32Array(3 * BATCH);
      for (let i = 0; i < BATCH; i++) {
        const slot = side * FRAMES_PER_DIR + b * BATCH + i;
        const off = slot * SLOT + 4 + VNET;
        desc[3 * i] = off;
        desc[3 * i + 1] = 60;
        if (tagged && side === 1) {
          slab.set([0x81, 0x00, 0x00, vid, 0x08, 0x00], off + 12); // 802.1Q VID 10, then IPv4
        } else {
          slab[off + 12] = 0x08; // IPv4
          slab[off + 13] = 0x00;
        }
      }
      batches[side].push(desc);
    }
  }
  const readdress = () => {
    for (let side = 0; side < 2; side++) {
      const own = macs[side];
      const other = macs[1 - side];
      for (let k = 0; k < FRAMES_PER_DIR; k++) {
        const off = (side * FRAMES_PER_DIR + k) * SLOT + 4 + VNET;
        writeMac(slab, off, other[rand(half)]);
        writeMac(slab, off + 6, own[rand(half)]);
      }
    }
  };
  readdress();
  const nb = FRAMES_PER_DIR / BATCH;
  /** One pass: every batch of both directions, interleaved. 2 * FRAMES_PER_DIR frames. */
  const pass = () => {
    for (let b = 0; b < nb; b++) {
      bridge.receive(ports[0], slab, batches[0][b], BATCH);
      bridge.receive(ports[1], slab, batches[1][b], BATCH);
    }
  };
  return { bridge, ports, pass, readdress, framesPerPass: 2 * FRAMES_PER_DIR };
}

function benchForwarding(entries, tagged = false, mirror = false) {
  const s = forwardingSetup(entries, tagged, mirror);
  const passes = Math.ceil(FRAMES_PER_TRIAL / s.framesPerPass);
  // warm-up: let V8 optimise receive(), learn(), lookup()
  for (let i = 0; i < 300; i++) {
    s.readdress();
    s.pass();
  }
  const fwd0 = s.bridge.counters.forwarded;
  const rates = [];
  for (let t = 0; t < TRIALS; t++) {
    let ms = 0;
    for (let p = 0; p < passes; p++) {
      s.readdress();
      const t0 = performance.now();
      s.pass();
      ms += performance.now() - t0;
    }
    rates.push((passes * s.framesPerPass) / (ms / 1000));
  }
  const forwarded = s.bridge.counters.forwarded - fwd0;
  const expected = TRIALS * passes * s.framesPerPass;
  if (forwarded !== expected || s.bridge.counters.flooded !== 0) {
    throw new Error(`expected ${expected} known-unicast frames, forwarded ${forwarded}, flooded ${s.bridge.counters.flooded}`);
  }
  if (mirror && s.bridge.mirrors[0].mirrored !== forwarded + 300 * s.framesPerPass) {
    throw new Error(`expected one mirror copy per frame, got ${s.bridge.mirrors[0].mirrored} for ${forwarded + 300 * s.framesPerPass} frames`);
  }
  return { entries, tagged, mirror, median_per_s: median(rates), best_per_s: Math.max(...rates), trials: rates.length, frames_per_trial: passes * s.framesPerPass };
}

/**
 * Two guests, one MAC and one IPv4/IPv6 address each, unicast to each other; `mode` 'unlocked', 'locked' or
 * 'locked+guards'. Every frame must be forwarded (a lock drop would be a bug in the setup).
 */
function lockSetup(mode) {
  const bridge = new Bridge({ name: 'bench', maxPorts: 4, fdbMax: 4096, ageingTimeMs: 300_000 });
  const macs = [0x00163e000100, 0x00163e000200];
  const ports = [];
  for (let id = 0; id < 2; id++) {
    const port = new BridgePort(id, `vif${id + 1}.0`, 'tap', { learning: true, flood: true, isolated: false }, 1500, 0);
    port.io = new NullIo();
    bridge.addPort(port);
    bridge.setPortState(port, 'up');
    if (mode !== 'unlocked') {
      const mac = macs[id].toString(16).padStart(12, '0').match(/../g).join(':');
      const long = mode === 'locked-8';
      const r = lockSpecFrom({
        mac,
        ipv4: long ? ['198.18.100.0/24', '198.18.101.1', '198.18.102.0/25', `198.18.0.${id + 1}`] : [`198.18.0.${id + 1}`],
        ipv6: long ? ['2001:db8:100::/64', '2001:db8:101::1', '2001:db8:102::/48', `2001:db8::${id + 1}`] : [`2001:db8::${id + 1}`],
      });
      port.security = PortSecurity.build(r.spec, { raGuard: mode === 'locked+guards', dhcpGuard: mode === 'locked+guards' });
    }
    ports.push(port);
  }
  bridge.nowMs = 1_000_000;
  for (let side = 0; side < 2; side++) bridge.fdb.learn(0, macs[side], side, bridge.nowMs);
  const frameLen = 78; // 14 + 40 + 8 + payload: IPv6 needs more than 60 bytes
  const slot = 112;
  const slab = new Uint8Array(2 * FRAMES_PER_DIR * slot);
  const batches = [[], []];
  for (let side = 0; side < 2; side++) {
    for (let b = 0; b < FRAMES_PER_DIR / BATCH; b++) {
      const desc = new Int32Array(3 * BATCH);
      for (let i = 0; i < BATCH; i++) {
        const k = b * BATCH + i;
        const off = (side * FRAMES_PER_DIR + k) * slot + 4 + VNET;
        desc[3 * i] = off;
        desc[3 * i + 1] = frameLen;
        writeMac(slab, off, macs[1 - side]);
        writeMac(slab, off + 6, macs[side]);
        const p = off + 14;
        if (k % 4 !== 3) {
          slab.set([0x08, 0x00], off + 12);
          // IPv4 UDP 198.18.0.(side+1):5000 -> 198.18.0.(2-side):5001
          slab.set([0x45, 0, 0, 64, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, side + 1, 198, 18, 0, 2 - side], p);
          slab.set([0x13, 0x88, 0x13, 0x89, 0, 44, 0, 0], p + 20);
        } else {
          slab.set([0x86, 0xdd], off + 12);
          // IPv6 ICMPv6 echo 2001:db8::(side+1) -> 2001:db8::(2-side)
          slab.set([0x60, 0, 0, 0, 0, 24, 58, 64], p);
          slab.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, side + 1], p + 8);
          slab.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 - side], p + 24);
          slab.set([128, 0, 0, 0, 0, 1, 0, 1], p + 40);
        }
      }
      batches[side].push(desc);
    }
  }
  const nb = FRAMES_PER_DIR / BATCH;
  const pass = () => {
    for (let b = 0; b < nb; b++) {
      bridge.receive(ports[0], slab, batches[0][b], BATCH);
      bridge.receive(ports[1], slab, batches[1][b], BATCH);
    }
  };
  return { bridge, ports, pass, framesPerPass: 2 * FRAMES_PER_DIR };
}

const LOCK_MODES = ['unlocked', 'locked', 'locked-8', 'locked+guards'];

/** Decisions/s per lock mode: best of many interleaved CPU-time slices (see the header). */
function benchLock() {
  const setups = Object.fromEntries(LOCK_MODES.map((m) => [m, lockSetup(m)]));
  for (let i = 0; i < 300; i++) for (const m of LOCK_MODES) setups[m].pass();
  const fwd0 = Object.fromEntries(LOCK_MODES.map((m) => [m, setups[m].bridge.counters.forwarded]));
  const best = Object.fromEntries(LOCK_MODES.map((m) => [m, 0]));
  const slices = quick ? 20 : 60;
  const passesPerSlice = Math.max(1, Math.round(FRAMES_PER_TRIAL / 10 / setups.unlocked.framesPerPass));
  for (let r = 0; r < slices; r++) {
    for (const m of LOCK_MODES) {
      const c0 = process.cpuUsage();
      for (let p = 0; p < passesPerSlice; p++) setups[m].pass();
      const c = process.cpuUsage(c0);
      best[m] = Math.max(best[m], (passesPerSlice * setups[m].framesPerPass) / ((c.user + c.system) / 1e6));
    }
  }
  for (const m of LOCK_MODES) {
    const s = setups[m];
    const forwarded = s.bridge.counters.forwarded - fwd0[m];
    const expected = slices * passesPerSlice * s.framesPerPass;
    if (forwarded !== expected) {
      throw new Error(`lock bench (${m}): expected ${expected} frames forwarded, got ${forwarded}; drops ${JSON.stringify(s.ports.map((p) => p.drops()))}`);
    }
  }
  return best;
}

/** ns per op of fn(i) over n ops (median of TRIALS). */
function timeOps(n, fn, before) {
  const res = [];
  for (let t = 0; t < TRIALS; t++) {
    if (before) before();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    res.push(((performance.now() - t0) * 1e6) / n);
  }
  return median(res);
}

function benchFdb(entries) {
  const half = entries / 2;
  const macs = macSet(entries, 0);
  const fresh = macSet(entries, 1);
  const order = new Int32Array(1 << 20);
  for (let i = 0; i < order.length; i++) order[i] = rand(entries);
  const mask = order.length - 1;
  const now = 1_000_000;
  const full = () => {
    const f = new Fdb({ maxEntries: entries, maxPorts: 4, ageingTimeMs: 300_000 });
    for (let i = 0; i < entries; i++) f.learn(0, macs[i], i < half ? 0 : 1, now);
    return f;
  };
  let fdb = full();
  let sink = 0;
  const N = quick ? 500_000 : 2_000_000;
  const r = {};
  r.lookup_hit_ns = timeOps(N, (i) => { sink += fdb.lookup(0, macs[order[i & mask]]); });
  r.lookup_miss_ns = timeOps(N, (i) => { sink += fdb.lookup(0, fresh[order[i & mask]]); });
  r.learn_refresh_ns = timeOps(N, (i) => { const k = order[i & mask]; fdb.learn(0, macs[k], k < half ? 0 : 1, now); });
  // move: every op moves a MAC to the other port (then back on the next visit)
  let flip = 2;
  r.learn_move_ns = timeOps(Math.min(N, entries), (i) => { fdb.learn(0, macs[i], flip, now + i); }, () => { flip = flip === 2 ? 3 : 2; });
  // insert into an empty table, up to full
  r.learn_insert_ns = timeOps(entries, (i) => { fdb.learn(0, macs[i], i & 1, now); },
    () => { fdb = new Fdb({ maxEntries: entries, maxPorts: 4, ageingTimeMs: 300_000 }); });
  // insert into a full table: each insert evicts the oldest entry of the port holding most
  let base = 0;
  r.learn_evict_ns = timeOps(entries, (i) => { fdb.learn(0, fresh[i] + base, i & 1, now + 1); },
    () => { fdb = full(); base = base === 0 ? 2 : 0; });
  if (sink === 0.5) console.log(sink);
  return { entries, ...r };
}

/** Runs `fn` under V8's sampling heap profiler; returns bytes allocated per function (self), largest first. */
async function allocationSites(fn) {
  const session = new Session();
  session.connect();
  const post = (method, params = {}) => new Promise((resolve, reject) => {
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res)));
  });
  await post('HeapProfiler.startSampling', {
    samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
  });
  fn();
  const { profile } = await post('HeapProfiler.stopSampling');
  session.disconnect();
  const sites = new Map();
  const walk = (node, caller) => {
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'} (${f.url.replace(/^.*\/dist\//, 'dist/').replace(/^.*\/scripts\//, 'scripts/')}:${f.lineNumber + 1})`;
    if (node.selfSize > 0) {
      const key = caller ? `${name} <- ${caller}` : name;
      sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, name);
  };
  walk(profile.head, '');
  return [...sites.entries()].sort((a, b) => b[1] - a[1]).map(([site, bytes]) => ({ site, bytes }));
}

async function allocationProof(entries, frames, tagged = false, mirror = false) {
  const s = forwardingSetup(entries, tagged, mirror);
  // long warm-up: receive(), parseEthernet(), learn(), find() all reach optimised code first
  for (let i = 0; i < 1500; i++) {
    s.readdress();
    s.pass();
  }
  const passes = Math.ceil(frames / s.framesPerPass);
  const run = () => {
    for (let p = 0; p < passes; p++) {
      s.readdress();
      s.pass();
    }
  };
  const gcs = [];
  const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push(e); });
  obs.observe({ entryTypes: ['gc'] });
  const hasGc = typeof globalThis.gc === 'function';
  if (hasGc) globalThis.gc();
  const h0 = getHeapStatistics();
  const t0 = performance.now();
  run();
  const t1 = performance.now();
  const h1 = getHeapStatistics();
  // gc entries are delivered asynchronously: wait a moment, then keep only those inside [t0, t1]
  await new Promise((resolve) => setTimeout(resolve, 200));
  obs.disconnect();
  const during = gcs.filter((e) => e.startTime >= t0 && e.startTime <= t1);
  // the same million frames again under the sampling heap profiler: who allocates, if anything does
  const sites = await allocationSites(run);
  const total = passes * s.framesPerPass;
  return {
    entries,
    frames: total,
    gc_exposed: hasGc,
    gcs_during_run: during.length,
    gc_kinds: during.map((e) => e.detail?.kind ?? e.kind),
    heap_used_before: h0.used_heap_size,
    heap_used_after: h1.used_heap_size,
    heap_delta_bytes: h1.used_heap_size - h0.used_heap_size,
    ms: t1 - t0,
    sampled_bytes_per_frame: sites.reduce((a, x) => a + x.bytes, 0) / total,
    sites: sites.slice(0, 5).map((x) => ({ ...x, bytes_per_frame: x.bytes / total })),
  };
}

const out = { date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, quick };
console.log(`tapbridge engine micro-benchmarks (node ${process.version}, ${cpus()[0]?.model}; ${TRIALS} trials, medians)`);
console.log('');
out.forwarding = [];
console.log('forwarding decisions (Bridge.receive, batches of 64 known-unicast 60-byte frames, both directions, fake I/O):');
for (const entries of [1_000, 100_000]) {
  const r = benchForwarding(entries);
  out.forwarding.push(r);
  console.log(`  FDB ${String(entries).padStart(7)} entries: ${(r.median_per_s / 1e6).toFixed(2)} M decisions/s median ` +
    `(best ${(r.best_per_s / 1e6).toFixed(2)} M; ${(1e9 / r.median_per_s).toFixed(1)} ns/frame)`);
}
{
  const r = benchForwarding(1_000, true);
  out.forwarding_tagged = r;
  const plain = out.forwarding.find((f) => f.entries === 1_000).median_per_s;
  console.log(`  FDB    1000 entries, 802.1Q access <-> trunk (push one way, pop the other): ${(r.median_per_s / 1e6).toFixed(2)} M ` +
    `decisions/s (${(1e9 / r.median_per_s).toFixed(1)} ns/frame; difference to untagged ${(1e9 / r.median_per_s - 1e9 / plain).toFixed(1)} ns/frame, noise included)`);
}
{
  const none = benchForwarding(1_000);
  const r = benchForwarding(1_000, false, true);
  out.forwarding_mirror = { none, all_ports: r };
  console.log(`  FDB    1000 entries, one mirror of all ports (both directions) to a third port: ${(r.median_per_s / 1e6).toFixed(2)} M ` +
    `decisions/s vs ${(none.median_per_s / 1e6).toFixed(2)} M with no mirror, same run (${(1e9 / r.median_per_s).toFixed(1)} vs ` +
    `${(1e9 / none.median_per_s).toFixed(1)} ns/frame)`);
}
{
  const best = benchLock();
  out.lock = { unlocked_per_s: best.unlocked, locked_per_s: best.locked, locked_8_entries_per_s: best['locked-8'], locked_guards_per_s: best['locked+guards'] };
  const fewer = (x) => `${((1 - x / best.unlocked) * 100).toFixed(1)}% fewer`;
  console.log('  port security, 2 guests (3/4 IPv4 UDP, 1/4 IPv6 ICMPv6), best CPU-time slice of each, interleaved:');
  console.log(`    unlocked ${(best.unlocked / 1e6).toFixed(2)} M decisions/s; every port locked (1 IPv4, 1 IPv6) ${(best.locked / 1e6).toFixed(2)} M ` +
    `(${fewer(best.locked)}; target < 15%)`);
  console.log(`    locked, 4 + 4 entries, source the last: ${(best['locked-8'] / 1e6).toFixed(2)} M (${fewer(best['locked-8'])}); ` +
    `locked + ra_guard + dhcp_guard: ${(best['locked+guards'] / 1e6).toFixed(2)} M (${fewer(best['locked+guards'])})`);
}
console.log('');
console.log('FDB alone, ns per operation (random keys):');
out.fdb = [];
for (const entries of [1_000, 100_000]) {
  const r = benchFdb(entries);
  out.fdb.push(r);
  console.log(`  ${String(entries).padStart(7)} entries: lookup hit ${r.lookup_hit_ns.toFixed(1)}, miss ${r.lookup_miss_ns.toFixed(1)}, ` +
    `learn refresh ${r.learn_refresh_ns.toFixed(1)}, move ${r.learn_move_ns.toFixed(1)}, insert ${r.learn_insert_ns.toFixed(1)}, ` +
    `insert+evict ${r.learn_evict_ns.toFixed(1)}`);
}
console.log('');
const proof = await allocationProof(100_000, 1_000_000);
out.allocation = proof;
console.log(`allocation proof: ${proof.frames.toLocaleString('en')} frames at ${proof.entries.toLocaleString('en')} FDB entries after warm-up` +
  `${proof.gc_exposed ? ' (heap collected first)' : ' (run with --expose-gc for a clean start)'}:`);
console.log(`  GCs during the run: ${proof.gcs_during_run}; heap used ${proof.heap_used_before} -> ${proof.heap_used_after} bytes ` +
  `(delta ${proof.heap_delta_bytes} B); ${proof.ms.toFixed(0)} ms`);
console.log(`  sampling heap profiler over the same run: ${proof.sampled_bytes_per_frame.toFixed(2)} bytes allocated per frame`);
for (const x of proof.sites) console.log(`    ${x.bytes_per_frame.toFixed(2)} B/frame  ${x.site}`);
// Without a GC the heap delta is the whole allocation; a GC during the run means at least a young generation's worth
// (~1 MB) was allocated. The sampling profiler gives the same answer with a cause.
const ok = proof.gcs_during_run === 0 && proof.heap_delta_bytes / proof.frames < 0.05 && proof.sampled_bytes_per_frame < 0.05;
console.log(`  ${ok ? 'PASS: the per-frame path allocates nothing' : 'FAIL: the per-frame path allocates (sites above)'}`);
{
  // the same proof with 802.1Q access <-> trunk (tag push/pop) and one mirror of all ports (issue 14)
  const p2 = await allocationProof(1_000, 1_000_000, true, true);
  out.allocation_tagged_mirror = p2;
  // judged by GCs and the sampling profiler: run after the other scenarios, this proof's heap delta (~0.2 B/frame)
  // includes code and feedback of TurboFan re-optimising receive() for the new shapes, which the sampling profiler
  // does not attribute to the per-frame path; the same run alone (a fresh process) shows a delta of ~2 KB in total
  const ok2 = p2.gcs_during_run === 0 && p2.sampled_bytes_per_frame < 0.05;
  console.log(`allocation proof, 802.1Q access <-> trunk with one all-ports mirror: GCs ${p2.gcs_during_run}, heap delta ` +
    `${p2.heap_delta_bytes} B, ${p2.sampled_bytes_per_frame.toFixed(2)} B/frame sampled: ${ok2 ? 'PASS' : 'FAIL'}`);
  out.allocation_tagged_mirror_ok = ok2;
}
const target = out.forwarding.find((f) => f.entries === 100_000).median_per_s;
console.log('');
console.log(`target (issue 5): >= 10 M decisions/s on one core with 100k entries: ${(target / 1e6).toFixed(2)} M -> ${target >= 10e6 ? 'MET' : 'MISSED'}`);
out.allocation_ok = ok;
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
if (args.includes("--check")) process.exitCode = ok && target >= 10e6 ? 0 : 1;
