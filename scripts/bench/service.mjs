// Micro-benchmarks of the service side: what a Prometheus scrape and an sd_notify datagram cost the main event loop.
// Runs against dist/ (npm run build first). No root.
//
//   1. scrape: DaemonMetrics.scrape() over a scripted stats()/show()/bondShow() of B bridges x P ports with 12 drop
//      reasons each (the size of `tapbridge stats` on a host that large): ms per scrape and bytes of exposition.
//   2. sd_notify: the addon's sdNotify() to a python receiver on an abstract socket: us per datagram (socket, sendmsg,
//      close), i.e. what STATUS= and WATCHDOG=1 cost.
//
// Usage: node scripts/bench/service.mjs

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const dist = new URL('../../dist/', import.meta.url);
const { DaemonMetrics } = await import(new URL('metrics/metrics.js', dist));
const { loadAddon } = await import(new URL('io/native.js', dist));

const REASONS = ['runt', 'bad_src', 'link_local', 'oversize', 'tx_full', 'tx_link_down', 'socket', 'tagged_on_access',
  'vlan_not_member', 'untagged_no_native', 'rx_error', 'kernel_drops'];

function source(bridges, ports) {
  const stats = [];
  const show = [];
  for (let b = 0; b < bridges; b++) {
    const ps = [];
    for (let p = 0; p < ports; p++) {
      ps.push({ name: `vif${p}.${b}`, rx_packets: p * 1000, rx_bytes: p * 64000, tx_packets: p * 999, tx_bytes: p * 63000,
        drops: Object.fromEntries(REASONS.map((r, i) => [r, i * p])) });
    }
    stats.push({ bridge: `xenbr${b}`, fdb: { entries: 100, learned: 200, aged: 50, moved: 3, evicted: 0, flooded: 9 }, ports: ps });
    show.push({ name: `xenbr${b}`, uplink: null, ports: ps.map((p) => ({ name: p.name, kind: 'tap', state: 'up', ifindex: 1 })) });
  }
  return { stats: () => stats, show: () => show, bondShow: () => [] };
}

console.log('scrape (DaemonMetrics.scrape, default metrics included)');
for (const [bridges, ports] of [[1, 10], [1, 100], [4, 250]]) {
  const m = new DaemonMetrics(source(bridges, ports));
  let text = '';
  for (let i = 0; i < 20; i++) text = await m.scrape();
  const n = 100;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) text = await m.scrape();
  const ms = (performance.now() - t0) / n;
  console.log(`  ${bridges} bridge(s) x ${ports} ports: ${ms.toFixed(2)} ms per scrape, ${(text.length / 1024).toFixed(0)} KiB`);
}

const path = `@tb-bench-notify-${process.pid}`;
const rx = spawn(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', ['-c', `import socket\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind("\\0${path.slice(1)}")\nprint("ready", flush=True)\nwhile True: s.recv(8192)`], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => rx.kill('SIGKILL'));
await new Promise((r) => rx.stdout.once('data', r));
const addon = loadAddon();
// a unix datagram queue holds net.unix.max_dgram_qlen (10) datagrams: send in bursts of 8, let the receiver drain
let sent = 0;
let failed = 0;
let busyMs = 0;
for (let burst = 0; burst < 500; burst++) {
  const t0 = performance.now();
  for (let i = 0; i < 8; i++) {
    try {
      addon.sdNotify(path, 'WATCHDOG=1');
      sent++;
    } catch {
      failed++; // receiver queue full (EAGAIN): counted, as the daemon does
    }
  }
  busyMs += performance.now() - t0;
  await new Promise((r) => setTimeout(r, 1));
}
console.log(`sd_notify: ${((busyMs * 1000) / (sent + failed)).toFixed(1)} us per datagram (${sent} sent, ${failed} refused with a full receiver queue)`);
rx.kill('SIGKILL');
