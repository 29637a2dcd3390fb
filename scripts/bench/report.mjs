// Turns the raw measurements of scripts/bench/run.sh (TSV: impl, path, rep, metric, value) into medians, one table with
// ratios and the targets of issue 5, and a JSON file. Run by run.sh; reads its inputs from BENCH_* environment variables.
//
//   node scripts/bench/report.mjs                       (BENCH_RESULTS=raw.tsv BENCH_OUT=out.json ...)
//   node scripts/bench/report.mjs --from results/X.json  prints the table of an earlier run again

import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpus, release } from 'node:os';
import { execFileSync } from 'node:child_process';

const env = process.env;

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return null;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function machine() {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1];
  } catch { /* keep os.cpus() */ }
  let nproc = cpus().length;
  try { nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()); } catch { /* keep */ }
  let vde = null;
  try { vde = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'vde2'], { encoding: 'utf8' }).trim() || null; } catch { /* none */ }
  let iperf = null;
  try { iperf = execFileSync('iperf3', ['--version'], { encoding: 'utf8' }).split('\n')[0].trim(); } catch { /* none */ }
  let ovs = null;
  try { ovs = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'openvswitch-switch'], { encoding: 'utf8' }).trim() || null; } catch { /* none */ }
  return { nproc, cpu_model: model, kernel: release(), node: process.version, vde2: vde, iperf3: iperf, openvswitch: ovs };
}

export function collect(tsv) {
  return collectText(readFileSync(tsv, 'utf8'));
}

// collectText(TEXT): collect() of the records themselves (all.sh's report reads vhost-user.sh's with it).
export function collectText(text) {
  const raw = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [impl, path, rep, metric, value] = line.split('\t');
    const key = `${impl}/${path}`;
    raw[key] ??= {};
    raw[key][metric] ??= [];
    raw[key][metric].push({ rep: Number(rep), value: Number(value) });
  }
  const medians = {};
  for (const [key, metrics] of Object.entries(raw)) {
    medians[key] = {};
    for (const [m, vals] of Object.entries(metrics)) medians[key][m] = median(vals.map((v) => v.value));
  }
  return { raw, medians };
}

export const ROWS = [
  ['tapbridge/tap', 'tapbridge', 'TAP <-> TAP'],
  ['tapbridge/uplink', 'tapbridge', 'TAP <-> AF_PACKET uplink'],
  ['tapbridge/uplink-recvmsg', 'tapbridge', 'TAP <-> AF_PACKET uplink, packet_mmap: false'],
  ['kernel/veth', 'kernel bridge', 'veth <-> veth (both paths)'],
  ['vde/tap', 'vde_switch', 'TAP <-> TAP'],
  ['vde/uplink', 'vde_switch', 'TAP <-> vde_pcapplug (libpcap)'],
  ['ovs/tap', 'Open vSwitch userspace', 'TAP <-> TAP (netdev, TSO)'],
  ['ovs/uplink', 'Open vSwitch userspace', 'TAP <-> AF_PACKET peth0'],
];

export function fmt(v, digits) {
  return v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
}

/** A count in thousands, or null when the figure is missing (null / 1e3 would print as a measured 0). */
export function kilo(v) {
  return v === null || v === undefined ? null : v / 1e3;
}

export function ratio(a, b) {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

export function render(result) {
  const M = result.medians;
  const g = (key, m) => M[key]?.[m] ?? null;
  const out = [];
  out.push(`tapbridge bench ${result.date}: ${result.machine.nproc} CPUs (${result.machine.cpu_model}), kernel ${result.machine.kernel}, node ${result.machine.node}`);
  out.push(`medians of ${result.settings.reps} rep(s); iperf3 -t ${result.settings.tcp_seconds}; 60-byte flood window ${result.settings.flood_seconds} s; ` +
    `ping -c ${result.settings.ping_count} -i 0.01` +
    (result.settings.load_ping_count ? `, ${result.settings.load_ping_count} under load` : '') +
    (result.settings.busy_poll_us !== null && result.settings.busy_poll_us !== undefined ? `; tapbridge busy_poll_us ${result.settings.busy_poll_us}` : '') +
    (result.settings.direct_poll !== null && result.settings.direct_poll !== undefined ? `; tapbridge direct_poll ${result.settings.direct_poll}` : '') +
    (result.settings.data_workers !== null && result.settings.data_workers !== undefined ? `; tapbridge data_workers ${result.settings.data_workers}` : '') +
    `; load before/after: ${result.load.before} / ${result.load.after}`);
  out.push('');
  const head = ['implementation', 'path', 'TCP 1 Gb/s', 'TCP 2 Gb/s', 'kpps 60B', 'gen kpps', 'drop@a kpps', 'ping ms', 'ping p50/p99 ms',
    'load p50/p99 ms', 'bridge CPU %', 'CPU us/frame (usr+sys)', 'CPU us/ping frame', 'idle CPU %', 'RSS MB'];
  const rows = [head];
  for (const [key, impl, path] of ROWS) {
    if (!M[key]) continue;
    const cpu = g(key, 'cpu_us');
    rows.push([
      impl, path, fmt(g(key, 'tcp1_gbps'), 2), fmt(g(key, 'tcp2_gbps'), 2), fmt(kilo(g(key, 'pps')), 0),
      fmt(kilo(g(key, 'offered')), 0), fmt(kilo(g(key, 'a_drop_pps')), 0), fmt(g(key, 'ping_ms'), 3),
      `${fmt(g(key, 'ping_p50_ms'), 3)}/${fmt(g(key, 'ping_p99_ms'), 3)}`,
      `${fmt(g(key, 'load_ping_p50_ms'), 3)}/${fmt(g(key, 'load_ping_p99_ms'), 3)}`,
      fmt(g(key, 'cpu_util_pct'), 0),
      cpu === null ? (key.startsWith('kernel') ? 'in kernel' : '-') : `${fmt(cpu, 2)} (${fmt(g(key, 'cpu_user_us'), 2)}+${fmt(g(key, 'cpu_sys_us'), 2)})`,
      fmt(g(key, 'ping_cpu_us'), 1), fmt(g(key, 'idle_cpu_pct'), 2), fmt(g(key, 'rss_mb'), 1),
    ]);
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
  out.push(line(rows[0]));
  out.push('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows.slice(1)) out.push(line(r));
  out.push('');
  out.push('generator ceiling (60-byte frames through the kernel bridge, same generator): ' +
    `${fmt(kilo(g('kernel/veth', 'pps')), 0)} kpps`);
  out.push('');
  out.push('Targets of issue 5 (ratios from this run):');
  for (const t of result.targets) {
    out.push(`  ${t.ok === null ? '  n/a' : t.ok ? 'MET ' : 'MISS'}  ${t.name}: ${t.detail}`);
  }
  if (result.targets_issue13) {
    out.push('');
    out.push('Targets of issue 13 (ratios from this run):');
    for (const t of result.targets_issue13) {
      out.push(`  ${t.ok === null ? '  n/a' : t.ok ? 'MET ' : 'MISS'}  ${t.name}: ${t.detail}`);
    }
  }
  if (result.soak) {
    const s = result.soak;
    out.push('');
    out.push(`soak (tapbridge TAP<->TAP, ${s.seconds} s, 100k source MACs): FDB ${s.fdb_entries} entries, ${fmt(kilo(s.pps), 0)} kpps, ` +
      `RSS idle ${fmt(s.rss_idle_mb, 1)} MB, after fill ${fmt(s.rss_first_mb, 1)}, min ${fmt(s.rss_min_mb, 1)}, max ${fmt(s.rss_max_mb, 1)}, ` +
      `last ${fmt(s.rss_last_mb, 1)}, VmHWM ${fmt(s.rss_hwm_mb, 1)} MB`);
  }
  for (const s of result.skipped) out.push(`NOTE: ${s}`);
  return out.join('\n');
}

function targets(M, soak) {
  const g = (key, m) => M[key]?.[m] ?? null;
  const list = [];
  const r = (a, b) => ratio(a, b);
  const x = (v) => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  // TCP TAP<->TAP >= 0.9x kernel
  let v = r(g('tapbridge/tap', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps'));
  list.push({ name: 'TCP TAP<->TAP >= 0.9x kernel bridge', ratio: v, ok: v === null ? null : v >= 0.9,
    detail: `${x(v)} kernel (1 stream), ${x(r(g('tapbridge/tap', 'tcp2_gbps'), g('kernel/veth', 'tcp2_gbps')))} (2 streams); ` +
      `${x(r(g('tapbridge/tap', 'tcp1_gbps'), g('vde/tap', 'tcp1_gbps')))} vde_switch` });
  v = r(g('tapbridge/uplink', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps'));
  list.push({ name: 'TCP TAP<->AF_PACKET uplink >= 0.6x kernel bridge', ratio: v, ok: v === null ? null : v >= 0.6,
    detail: `${x(v)} kernel (1 stream), ${x(r(g('tapbridge/uplink', 'tcp2_gbps'), g('kernel/veth', 'tcp2_gbps')))} (2 streams); ` +
      `${x(r(g('tapbridge/uplink', 'tcp1_gbps'), g('vde/uplink', 'tcp1_gbps')))} vde_switch+pcapplug` });
  v = r(g('tapbridge/tap', 'pps'), g('vde/tap', 'pps'));
  const ceil = r(g('tapbridge/tap', 'pps'), g('kernel/veth', 'pps'));
  const genBound = ceil !== null && ceil >= 0.95;
  list.push({ name: '60-byte frames TAP<->TAP >= 1.3x vde_switch', ratio: v, ceiling_ratio: ceil,
    ok: v === null ? (genBound ? true : null) : v >= 1.3 || genBound,
    cpu_ratio: r(g('vde/tap', 'cpu_us'), g('tapbridge/tap', 'cpu_us')),
    detail: `${x(v)} vde_switch; ${x(ceil)} of the generator ceiling${genBound ? ' (generator-bound: counts as met)' : ''}; ` +
      `CPU per frame vde_switch / tapbridge ${x(r(g('vde/tap', 'cpu_us'), g('tapbridge/tap', 'cpu_us')))} ` +
      `(the throughput ratio when each bridge gets a whole core; bridge CPU ${fmt(g('tapbridge/tap', 'cpu_util_pct'), 0)}% vs ${fmt(g('vde/tap', 'cpu_util_pct'), 0)}% of a core here)` });
  v = g('tapbridge/tap', 'cpu_us');
  list.push({ name: 'stretch: <= 2.5 us bridge CPU per 60-byte frame', value_us: v, ok: v === null ? null : v <= 2.5,
    detail: `${fmt(v, 2)} us TAP<->TAP (${fmt(g('tapbridge/uplink', 'cpu_us'), 2)} us TAP->uplink); vde_switch ${fmt(g('vde/tap', 'cpu_us'), 2)} us` });
  v = r(g('tapbridge/tap', 'ping_ms'), g('vde/tap', 'ping_ms'));
  list.push({ name: 'ping RTT <= vde_switch', ratio: v, ok: v === null ? null : v <= 1.0,
    detail: `${x(v)} vde_switch TAP<->TAP (${fmt(g('tapbridge/tap', 'ping_ms'), 3)} vs ${fmt(g('vde/tap', 'ping_ms'), 3)} ms); ` +
      `uplink ${x(r(g('tapbridge/uplink', 'ping_ms'), g('vde/uplink', 'ping_ms')))}; kernel ${fmt(g('kernel/veth', 'ping_ms'), 3)} ms` });
  if (soak) {
    const flat = soak.rss_max_mb !== null && soak.rss_first_mb !== null ? soak.rss_max_mb - soak.rss_first_mb : null;
    list.push({ name: 'RSS <= 100 MB with 100k FDB entries, flat under load', value_mb: soak.rss_max_mb,
      ok: soak.rss_max_mb === null ? null : soak.rss_max_mb <= 100 && soak.fdb_entries >= 100000,
      detail: `max ${fmt(soak.rss_max_mb, 1)} MB with ${soak.fdb_entries} entries; growth after fill ${fmt(flat, 1)} MB over ${soak.seconds} s` +
        (soak.seconds < 600 ? ' (shorter than the 10 min of the target: run --soak 600)' : '') });
  }
  list.push({ name: 'engine alone >= 10M decisions/s with 100k FDB entries', ok: null,
    detail: 'see `npm run bench:engine` (scripts/bench/engine.mjs)' });
  return list;
}

// The targets of issue 13, each MET / MISS (or n/a when a row is missing) with the figures behind it.
export function targets13(M) {
  const g = (key, m) => M[key]?.[m] ?? null;
  const r = (a, b) => ratio(a, b);
  const x = (v) => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  const ms = (key, m) => `${fmt(g(key, m), 3)} ms`;
  const kp = (key) => (g(key, 'pps') === null ? '-' : fmt(kilo(g(key, 'pps')), 0));
  const list = [];
  const add = (name, v, ok, detail, extra = {}) => list.push({ name, ratio: v, ok: v === null ? null : ok(v), detail, ...extra });
  let v = r(g('tapbridge/tap', 'ping_ms'), g('vde/tap', 'ping_ms'));
  add('ping RTT TAP<->TAP <= vde_switch', v, (a) => a <= 1.0,
    `${x(v)} vde_switch (${ms('tapbridge/tap', 'ping_ms')} vs ${ms('vde/tap', 'ping_ms')}; p50 ${ms('tapbridge/tap', 'ping_p50_ms')} vs ` +
    `${ms('vde/tap', 'ping_p50_ms')}); Open vSwitch ${ms('ovs/tap', 'ping_ms')}`);
  v = r(g('tapbridge/tap', 'ping_ms'), g('kernel/veth', 'ping_ms'));
  add('stretch: ping RTT TAP<->TAP <= 1.5x kernel bridge', v, (a) => a <= 1.5,
    `${x(v)} kernel (${ms('tapbridge/tap', 'ping_ms')} vs ${ms('kernel/veth', 'ping_ms')})`);
  v = r(g('tapbridge/tap', 'load_ping_p99_ms'), g('vde/tap', 'load_ping_p99_ms'));
  add('ping p99 under one TCP stream TAP<->TAP <= vde_switch', v, (a) => a <= 1.0,
    `${x(v)} vde_switch (p99 ${ms('tapbridge/tap', 'load_ping_p99_ms')} vs ${ms('vde/tap', 'load_ping_p99_ms')}; ` +
    `p50 ${ms('tapbridge/tap', 'load_ping_p50_ms')} vs ${ms('vde/tap', 'load_ping_p50_ms')}; the streams: ` +
    `${fmt(g('tapbridge/tap', 'load_tcp_gbps'), 2)} vs ${fmt(g('vde/tap', 'load_tcp_gbps'), 2)} Gb/s)`);
  v = r(g('tapbridge/tap', 'load_ping_p99_ms'), g('ovs/tap', 'load_ping_p99_ms'));
  add('ping p99 under one TCP stream TAP<->TAP <= Open vSwitch', v, (a) => a <= 1.0,
    `${x(v)} Open vSwitch (p99 ${ms('tapbridge/tap', 'load_ping_p99_ms')} vs ${ms('ovs/tap', 'load_ping_p99_ms')}; ` +
    `uplink ${x(r(g('tapbridge/uplink', 'load_ping_p99_ms'), g('ovs/uplink', 'load_ping_p99_ms')))}: ` +
    `${ms('tapbridge/uplink', 'load_ping_p99_ms')} vs ${ms('ovs/uplink', 'load_ping_p99_ms')}; kernel ${ms('kernel/veth', 'load_ping_p99_ms')})`);
  v = r(g('tapbridge/tap', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps'));
  add('TCP 1 stream TAP<->TAP >= 1.0x kernel bridge', v, (a) => a >= 1.0,
    `${x(v)} kernel (${fmt(g('tapbridge/tap', 'tcp1_gbps'), 2)} vs ${fmt(g('kernel/veth', 'tcp1_gbps'), 2)} Gb/s); ` +
    `${x(r(g('tapbridge/tap', 'tcp1_gbps'), g('ovs/tap', 'tcp1_gbps')))} Open vSwitch`);
  v = r(g('tapbridge/uplink', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps'));
  add('TCP 1 stream TAP<->uplink >= 0.9x kernel bridge', v, (a) => a >= 0.9,
    `${x(v)} kernel (${fmt(g('tapbridge/uplink', 'tcp1_gbps'), 2)} vs ${fmt(g('kernel/veth', 'tcp1_gbps'), 2)} Gb/s); ` +
    `${x(r(g('tapbridge/uplink', 'tcp1_gbps'), g('ovs/uplink', 'tcp1_gbps')))} Open vSwitch`);
  v = r(g('tapbridge/tap', 'tcp2_gbps'), g('tapbridge/tap', 'tcp1_gbps'));
  list.push({ name: 'TCP 2 streams (no ratio target on 2 cores)', ratio: v, ok: null,
    detail: `TAP<->TAP 2 / 1 streams ${x(v)} (${fmt(g('tapbridge/tap', 'tcp2_gbps'), 2)} vs ${fmt(g('tapbridge/tap', 'tcp1_gbps'), 2)} Gb/s; ` +
      `bridge CPU ${fmt(g('tapbridge/tap', 'tcp2_cpu_pct'), 0)}% vs ${fmt(g('tapbridge/tap', 'tcp1_cpu_pct'), 0)}% of a core, ` +
      `${fmt(g('tapbridge/tap', 'tcp2_cpu_pct_per_gbps'), 1)} vs ${fmt(g('tapbridge/tap', 'tcp1_cpu_pct_per_gbps'), 1)} %/Gb/s); ` +
      `kernel ${x(r(g('kernel/veth', 'tcp2_gbps'), g('kernel/veth', 'tcp1_gbps')))}` });
  v = r(g('tapbridge/tap', 'pps'), g('vde/tap', 'pps'));
  add('60-byte frames TAP<->TAP >= 1.5x vde_switch', v, (a) => a >= 1.5,
    `${x(v)} vde_switch (${kp('tapbridge/tap')} vs ${kp('vde/tap')} kpps; bridge CPU ` +
    `${fmt(g('tapbridge/tap', 'cpu_util_pct'), 0)}% vs ${fmt(g('vde/tap', 'cpu_util_pct'), 0)}% of a core; by CPU per frame ` +
    `${x(r(g('vde/tap', 'cpu_us'), g('tapbridge/tap', 'cpu_us')))})`);
  v = r(g('tapbridge/tap', 'pps'), g('ovs/tap', 'pps'));
  add('60-byte frames TAP<->TAP >= 1.5x Open vSwitch', v, (a) => a >= 1.5,
    `${x(v)} Open vSwitch (${kp('tapbridge/tap')} vs ${kp('ovs/tap')} kpps; bridge CPU ` +
    `${fmt(g('tapbridge/tap', 'cpu_util_pct'), 0)}% vs ${fmt(g('ovs/tap', 'cpu_util_pct'), 0)}%; by CPU per frame ` +
    `${x(r(g('ovs/tap', 'cpu_us'), g('tapbridge/tap', 'cpu_us')))}; uplink ${x(r(g('tapbridge/uplink', 'pps'), g('ovs/uplink', 'pps')))})`);
  v = g('tapbridge/tap', 'cpu_us');
  list.push({ name: '60-byte frames: CPU per frame <= 2.0 us', value_us: v, ok: v === null ? null : v <= 2.0,
    detail: `${fmt(v, 2)} us TAP<->TAP (${fmt(g('tapbridge/uplink', 'cpu_us'), 2)} us TAP->uplink); vde_switch ` +
      `${fmt(g('vde/tap', 'cpu_us'), 2)} us, Open vSwitch ${fmt(g('ovs/tap', 'cpu_us'), 2)} us` });
  return list;
}

function main() {
  const fromIdx = process.argv.indexOf('--from');
  if (fromIdx > 0) {
    const result = JSON.parse(readFileSync(process.argv[fromIdx + 1], 'utf8'));
    result.targets = targets(result.medians, result.soak);
    result.targets_issue13 = targets13(result.medians);
    console.log(render(result));
    return;
  }
  const { raw, medians } = collect(env.BENCH_RESULTS);
  let soak = null;
  if (medians['tapbridge/soak']) {
    const s = medians['tapbridge/soak'];
    soak = { seconds: s.seconds, fdb_entries: s.fdb_entries, pps: s.pps, rss_idle_mb: s.rss_idle_mb ?? null,
      rss_first_mb: s.rss_first_mb ?? null, rss_min_mb: s.rss_min_mb ?? null, rss_max_mb: s.rss_max_mb ?? null,
      rss_last_mb: s.rss_last_mb ?? null, rss_hwm_mb: s.rss_hwm_mb ?? null };
    delete medians['tapbridge/soak'];
    delete raw['tapbridge/soak'];
  }
  const result = {
    date: new Date().toISOString(),
    machine: machine(),
    settings: {
      reps: Number(env.BENCH_REPS), tcp_seconds: Number(env.BENCH_TCP_SECONDS), flood_seconds: Number(env.BENCH_FLOOD_SECONDS),
      ping_count: Number(env.BENCH_PING_COUNT), soak_seconds: Number(env.BENCH_SOAK_SECONDS),
      load_ping_count: Number(env.BENCH_LOAD_PING_COUNT),
      busy_poll_us: env.BENCH_BUSY_POLL_US ? Number(env.BENCH_BUSY_POLL_US) : null,
      direct_poll: env.BENCH_DIRECT_POLL ? env.BENCH_DIRECT_POLL === 'true' : null,
      data_workers: env.BENCH_DATA_WORKERS ? Number(env.BENCH_DATA_WORKERS) : null,
    },
    load: { before: env.BENCH_LOAD_BEFORE, after: env.BENCH_LOAD_AFTER },
    elapsed_s: Number(env.BENCH_ELAPSED),
    skipped: (env.BENCH_SKIPPED ?? '').split('\n').filter(Boolean),
    generator_ceiling_pps: medians['kernel/veth']?.pps ?? null,
    medians,
    soak,
    raw,
  };
  result.targets = targets(medians, soak);
  result.targets_issue13 = targets13(medians);
  emit(render(result), result, env.BENCH_OUT);
}

// emit(TEXT, RESULT, FILE): print the report, write the JSON, say where.
export function emit(text, result, file) {
  console.log('');
  console.log(text);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nJSON: ${file}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
