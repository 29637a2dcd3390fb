// Costs of the runtime state (src/state/) on the daemon's one event loop: no I/O but a temp dir, no root. Runs against
// dist/ (npm run build first).
//
//   1. FDB snapshot: collecting N dynamic entries (Daemon.fdbSnapshot; the periodic snapshot collects 4096 pool slots
//      and serialises them per event-loop turn, the collection time of one such slice is shown) and serialising them
//      all at once (shutdown; both on the main loop),
//      the atomic write (temp file, fsync, rename, fsync of the directory; the periodic snapshot does this on libuv's
//      thread pool, shutdown synchronously), parsing it back and restoring it into a fresh daemon (start-up);
//      N = 8192 (the default fdb_max) and 100k.
//   2. a control request's write: the state document with a journal of R records, synchronously, before the reply.
//   3. reload's plan: diffConfig of two configs of P ports that differ in one port.
//
// The ports are fakes (no fds); the disk is whatever holds os.tmpdir(). Usage: node scripts/bench/state.mjs [--quick]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const dist = new URL('../../dist/', import.meta.url);
let Daemon, BridgePort, parseConfig, doc, StateStore, diffConfig, createLogger;
try {
  ({ Daemon } = await import(new URL('daemon/daemon.js', dist)));
  ({ BridgePort } = await import(new URL('bridge/port.js', dist)));
  ({ parseConfig } = await import(new URL('config/config.js', dist)));
  doc = await import(new URL('state/document.js', dist));
  ({ StateStore } = await import(new URL('state/store.js', dist)));
  ({ diffConfig } = await import(new URL('state/reload.js', dist)));
  ({ createLogger } = await import(new URL('log.js', dist)));
} catch (err) {
  console.error(`cannot load tapbridge from dist/ (run \`npm run build\` first): ${err.message}`);
  process.exit(1);
}

const quick = process.argv.includes('--quick');
const TRIALS = quick ? 3 : 7;
const PORTS = 64;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(fn) {
  const out = [];
  for (let i = 0; i < TRIALS; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return median(out);
}

const log = createLogger('silent');

/** A daemon with one bridge of PORTS fake forwarding ports (no fds) and n learned entries. */
function daemonWith(n) {
  const cfg = parseConfig(`bridges: [ { name: xenbr0, fdb_max: ${Math.max(n, 16)} } ]\n`);
  const d = new Daemon(cfg, log);
  const br = d.bridges.get('xenbr0');
  for (let i = 0; i < PORTS; i++) {
    const p = new BridgePort(i, `vif${i}.0`, 'attach', { learning: true, flood: true, isolated: false }, 1500);
    br.bridge.addPort(p);
    p.io = { tx: new Uint32Array(4), counters: new Float64Array(16), send: () => 0 };
    p.state = 'up';
    br.ports.set(p.name, { name: p.name, port: p });
  }
  for (let i = 0; i < n; i++) br.bridge.fdb.learn(0, 0x0200_0000_0000 + i, i % PORTS, 0);
  return d;
}

const dir = mkdtempSync(join(tmpdir(), 'tb-bench-state-'));
try {
  const store = StateStore.open(dir, 'bench.sock');
  console.log(`runtime state costs (median of ${TRIALS}, ms; temp dir on ${tmpdir()})`);
  for (const n of [8192, 100_000]) {
    const d = daemonWith(n);
    let fdb;
    let text = '';
    const collect = time(() => { fdb = { saved_at: Date.now(), bridges: d.fdbSnapshot() }; });
    const serialise = time(() => { text = doc.serializeSnapshot(fdb); });
    const write = time(() => store.writeFdbSync(fdb));
    let parsed;
    const parse = time(() => { parsed = doc.parseSnapshotText(text); });
    const slice = time(() => d.fdbSnapshotSlice('xenbr0', 0, 4096, []));
    const restore = time(() => daemonWith(0).restoreFdb(parsed.fdb.bridges, 0));
    if (daemonWith(0).restoreFdb(parsed.fdb.bridges, 0).restored !== n) throw new Error('restore lost entries');
    const base = time(() => daemonWith(0));
    console.log(`  FDB snapshot of ${n} entries (${(text.length / 1024).toFixed(0)} KiB): main loop: collect ${collect.toFixed(2)} ` +
      `(the periodic snapshot: in slices of 4096 slots, ${slice.toFixed(2)} each) + serialise ${serialise.toFixed(2)}; ` +
      `write+fsync ${write.toFixed(2)} (thread pool); start-up: parse ${parse.toFixed(2)} + restore ${Math.max(0, restore - base).toFixed(2)}`);
  }
  {
    const state = doc.emptyState({ bridges: [] });
    for (const r of [10, 1000]) {
      state.runtime = Array.from({ length: r }, (_, i) => ({ method: 'vlan.set', params: { bridge: 'xenbr0', port: `vif${i}.0`, access: 10 }, key: `vlan:xenbr0/vif${i}.0`, target: `port:xenbr0/vif${i}.0` }));
      console.log(`  a control request's state write (${r} records): ${time(() => store.write(state)).toFixed(2)}`);
    }
  }
  for (const p of [100, 1000]) {
    const ports = (v) => Array.from({ length: p }, (_, i) => `{ name: vif${i}.0, kind: attach, vlan: ${i === 7 ? v : 10} }`).join(', ');
    const a = parseConfig(`bridges: [ { name: xenbr0, ports: [ ${ports(10)} ] } ]\n`);
    const b = parseConfig(`bridges: [ { name: xenbr0, ports: [ ${ports(20)} ] } ]\n`);
    let lines = [];
    const t = time(() => { lines = diffConfig(a, b); });
    console.log(`  reload plan for ${p} ports, one changed: ${t.toFixed(2)} (${lines.map((c) => c.line).join('; ')})`);
  }
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
