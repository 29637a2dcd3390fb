#!/usr/bin/env node
// Control-plane stall benchmark (issue 9, section 1): ping RTT between two VMs on the bridge
//   1. idle,
//   2. while a control client runs `stats` flat out (one request in flight, the next sent as soon as the reply is read),
//   3. while a control client writes `stats` requests flat out and never reads a reply,
// with the daemon's RSS sampled from /proc during each phase. The bound: phase 2 stays within 2x of phase 1.
//
//   vm1 eth0 (TAP, was vif1.0) 198.18.10.1 --+-- dom0: tapbridge xenbr0
//   vm2 eth0 (TAP, was vif2.0) 198.18.10.2 --+
//
// Usage (root): node scripts/bench/control-stall.mjs [--cli dist/cli/main.js] [--count 100] [--interval 0.05]
//                                                   [--rss-limit-mb 1024] [--json FILE]
// --cli runs another build of tapbridge (e.g. main's, for the "before" figures). Phase 3 stops early when the daemon's
// RSS passes --rss-limit-mb (a daemon without backpressure grows by ~100 MB/s).
//
// Safety: namespaces tb-cstall-<pid>-{dom0,vm1,vm2}, removed on every exit path; addresses from 198.18.0.0/15 only;
// nothing touches the root namespace; ping is bounded by count and deadline; only PIDs started here are killed.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    cli: { type: 'string', default: resolve(here, '../../dist/cli/main.js') },
    count: { type: 'string', default: '100' },
    interval: { type: 'string', default: '0.05' },
    'rss-limit-mb': { type: 'string', default: '1024' },
    json: { type: 'string' },
  },
});
const COUNT = Math.max(5, Math.min(10_000, Number(opt.count) | 0));
const INTERVAL = Math.max(0.01, Math.min(1, Number(opt.interval)));
const RSS_LIMIT = Math.max(64, Number(opt['rss-limit-mb']) | 0) * 1024 * 1024;
if (process.getuid?.() !== 0) {
  console.error('control-stall: must run as root (creates network namespaces)');
  process.exit(1);
}

const prefix = `tb-cstall-${process.pid}`;
const ns = (n) => `${prefix}-${n}`;
const dir = mkdtempSync(join(tmpdir(), 'tb-cstall-'));
const sock = join(dir, 'tb.sock');
const created = [];
let daemon = null;

const sh = (file, args, timeout = 15_000) => execFileSync(file, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
const ip = (n, ...args) => sh('ip', ['-n', ns(n), ...args]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cleanup() {
  if (daemon !== null && daemon.exitCode === null) {
    try {
      process.kill(daemon.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const n of created.splice(0).reverse()) {
    try {
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function rss(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** ping from vm1 to vm2; resolves { avg, max, loss } in ms / % (never throws). */
function ping() {
  return new Promise((res) => {
    const deadline = Math.ceil(COUNT * INTERVAL + 15);
    const p = spawn('ip', ['netns', 'exec', ns('vm1'), 'ping', '-n', '-q', '-c', String(COUNT), '-i', String(INTERVAL), '-W', '5',
      '-w', String(deadline), '198.18.10.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', () => {
      const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(out);
      const loss = /([\d.]+)% packet loss/.exec(out);
      res({ avg: rtt ? Number(rtt[2]) : NaN, max: rtt ? Number(rtt[3]) : NaN, loss: loss ? Number(loss[1]) : 100 });
    });
  });
}

/** Phase 2: one request in flight, the next one written as soon as a reply line arrives. */
function statsFlatOut() {
  const c = createConnection(sock);
  let replies = 0;
  let stopped = false;
  let buf = '';
  const send = () => c.write('{"jsonrpc":"2.0","id":1,"method":"stats"}\n');
  c.setEncoding('utf8');
  c.on('connect', send);
  c.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      buf = buf.slice(nl + 1);
      replies++;
      if (!stopped) send();
    }
  });
  c.on('error', () => undefined);
  return { stop: () => ((stopped = true), c.destroy(), replies) };
}

/** Phase 3: requests written flat out, replies never read. */
function neverReads() {
  const c = createConnection(sock);
  c.pause();
  let written = 0;
  let stopped = false;
  const chunk = '{"jsonrpc":"2.0","id":1,"method":"stats"}\n'.repeat(500);
  const pump = () => {
    while (!stopped && c.write(chunk)) written += chunk.length;
  };
  c.on('connect', pump);
  c.on('drain', pump);
  c.on('error', () => undefined);
  return { stop: () => ((stopped = true), c.destroy(), written) };
}

async function phase(name, start) {
  const client = start?.();
  const rss0 = rss(daemon.pid);
  let rssMax = rss0;
  let limited = false;
  const t0 = Date.now();
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rss(daemon.pid));
    if (rssMax > RSS_LIMIT && client && !limited) {
      limited = true;
      client.stop();
    }
  }, 100);
  const p = await ping();
  clearInterval(sampler);
  const seconds = (Date.now() - t0) / 1000;
  const n = client && !limited ? client.stop() : null;
  await sleep(500);
  return { phase: name, ping_avg_ms: p.avg, ping_max_ms: p.max, loss_pct: p.loss, rss_start_mb: rss0 / 2 ** 20, rss_max_mb: rssMax / 2 ** 20,
    rss_after_mb: rss(daemon.pid) / 2 ** 20, client_count: n, seconds, stopped_at_rss_limit: limited };
}

async function main() {
  for (const n of ['dom0', 'vm1', 'vm2']) {
    sh('ip', ['netns', 'add', ns(n)]);
    created.push(ns(n));
    ip(n, 'link', 'set', 'lo', 'up');
    sh('ip', ['netns', 'exec', ns(n), 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
  const cfg = join(dir, 'tb.yaml');
  writeFileSync(cfg, JSON.stringify({ control_socket: sock, state_dir: dirname(sock), bridges: [{ name: 'xenbr0', ports: [{ name: 'vif1.0' }, { name: 'vif2.0' }] }] }));
  daemon = spawn('ip', ['netns', 'exec', ns('dom0'), process.execPath, opt.cli, 'daemon', '--config', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200 && !(existsSync(sock) && statSync(sock).isSocket()); i++) {
    if (daemon.exitCode !== null) throw new Error(`daemon exited with ${daemon.exitCode}`);
    await sleep(100);
  }
  for (const [i, vm] of [[1, 'vm1'], [2, 'vm2']]) {
    ip('dom0', 'link', 'set', 'dev', `vif${i}.0`, 'netns', ns(vm));
    ip(vm, 'link', 'set', 'dev', `vif${i}.0`, 'name', 'eth0');
    ip(vm, 'addr', 'add', `198.18.10.${i}/24`, 'dev', 'eth0');
    ip(vm, 'link', 'set', 'dev', 'eth0', 'up');
  }
  // warm up: ARP, caches
  sh('ip', ['netns', 'exec', ns('vm1'), 'ping', '-n', '-q', '-c', '5', '-i', '0.2', '-W', '2', '198.18.10.2'], 20_000);

  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const results = [];
  results.push(await phase('idle'));
  results.push(await phase('stats flat out', statsFlatOut));
  results.push(await phase('idle again'));
  results.push(await phase('never reads', neverReads));
  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

  console.log(`tapbridge control-stall: ${opt.cli}; ping -c ${COUNT} -i ${INTERVAL} vm1 -> vm2; load ${load0} -> ${load1}`);
  console.log('phase            ping avg ms  ping max ms  loss %  daemon RSS start/max/after MB  client');
  for (const r of results) {
    const client = r.phase === 'stats flat out' ? `${r.client_count ?? '?'} stats replies (${((r.client_count ?? 0) / r.seconds).toFixed(0)}/s)`
      : r.phase === 'never reads' ? `${r.client_count === null ? 'stopped at the RSS limit' : `${r.client_count} request bytes written`}` : '';
    console.log(`${r.phase.padEnd(16)} ${r.ping_avg_ms.toFixed(3).padStart(11)}  ${r.ping_max_ms.toFixed(3).padStart(11)}  ${String(r.loss_pct).padStart(6)}  ` +
      `${`${r.rss_start_mb.toFixed(1)} / ${r.rss_max_mb.toFixed(1)} / ${r.rss_after_mb.toFixed(1)}`.padStart(29)}  ${client}`);
  }
  const idle = (results[0].ping_avg_ms + results[2].ping_avg_ms) / 2;
  const ratio = results[1].ping_avg_ms / idle;
  console.log(`stats flat out / idle ping avg: ${ratio.toFixed(2)}x (bound: within 2x) ${ratio <= 2 ? 'OK' : 'OVER'}`);
  console.log(`never reads / idle ping avg: ${(results[3].ping_avg_ms / idle).toFixed(2)}x`);
  if (opt.json) writeFileSync(opt.json, JSON.stringify({ cli: opt.cli, count: COUNT, interval_s: INTERVAL, load: [load0, load1], results, ratio }, null, 2));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`control-stall: ${err.stack ?? err}`);
    process.exit(1);
  },
);
