// One JSON and the markdown tables of docs/performance.md from one `scripts/bench/all.sh` run: reads the steps' outputs
// from ALL_WORK (main.json from run.sh, vhost.tsv from vhost-user.sh, the printed output of every step, steps.tsv),
// writes ALL_OUT and prints the tables, the load average before and after, and the targets of issues 13 and 23 as
// MET / MISS with their ratios. A step that failed or did not run leaves its tables out and says so.
//
//   node scripts/bench/all-report.mjs                  (ALL_WORK=dir ALL_OUT=out.json ..., run by all.sh)
//   node scripts/bench/all-report.mjs --from FILE      prints the tables of an earlier run's JSON again

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import { collectText, emit, fmt, kilo, machine, ratio, ROWS, targets13 } from './report.mjs';

const read = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : null);

// vhost-user.sh's records: "vhost CASE REP METRIC VALUE"; metric "skipped" carries a reason, not a number.
export function parseVhost(tsv) {
  const skipped = {};
  const numeric = [];
  for (const line of (tsv ?? '').split('\n')) {
    const [, kase, , metric, ...rest] = line.split('\t');
    if (metric === 'skipped') skipped[kase] = rest.join('\t');
    else numeric.push(line);
  }
  const { raw, medians } = collectText(numeric.join('\n'));
  const byCase = (o) => Object.fromEntries(Object.entries(o).map(([key, v]) => [key.replace(/^vhost\//, ''), v]));
  return { medians: byCase(medians), skipped, raw: byCase(raw) };
}

// mcast.sh's lines: "multicast_snooping: true  sent N:  g1 N  g2 N ...  daemon CPU X% of a core (...)".
export function parseMcast(text) {
  const rows = [];
  for (const line of (text ?? '').split('\n')) {
    const m = /^multicast_snooping: (true|false)\s+sent (\d+):((?:\s+g\d+ \d+)+)\s+daemon CPU ([\d.]+)% of a core/.exec(line);
    if (!m) continue;
    const guests = {};
    for (const g of m[3].trim().split(/\s{2,}/)) {
      const [name, n] = g.split(' ');
      guests[name] = Number(n);
    }
    rows.push({ snooping: m[1] === 'true', sent: Number(m[2]), received: guests, cpu_pct: Number(m[4]), line });
  }
  return rows;
}

// bond-modes.sh's rows: "MODE REP VM1_MBIT VM2_MBIT SUM_MBIT   member=NMB ...".
export function parseBonds(text) {
  const rows = [];
  for (const line of (text ?? '').split('\n')) {
    const m = /^(active-backup|balance-slb|802\.3ad)\s+(\d+)\s+([\d.]+|nan)\s+([\d.]+|nan)\s+([\d.]+|nan)\s+(.*)$/.exec(line.trim());
    if (m) rows.push({ mode: m[1], rep: Number(m[2]), vm1_mbit: Number(m[3]), vm2_mbit: Number(m[4]), sum_mbit: Number(m[5]), per_member: m[6].trim() });
  }
  return rows;
}

// tenants.sh prints its own markdown table and MET / MISS lines: kept as they are, from the table's head on.
export function tenantsTable(text) {
  if (!text) return null;
  const i = text.indexOf('| row | g1 does |');
  return i < 0 ? null : text.slice(i).trim();
}

// vhost-user.sh's loop rows (cases "loop/IMPL": one testpmd circulating frames through the switch, the switch's own
// counters) when the run has any, else its txrx rows (cases "IMPL": testpmd txonly -> rxonly, from older runs or
// --mode txrx): the mode issue 23's targets are evaluated on, and the case-name prefix of its rows.
export function vhostMode(V) {
  const keys = [...Object.keys(V?.medians ?? {}), ...Object.keys(V?.skipped ?? {})];
  return keys.some((k) => k.startsWith('loop/')) ? { mode: 'loop', prefix: 'loop/' } : { mode: 'txrx', prefix: '' };
}

// The targets of issue 23 §3, each MET / MISS (n/a when a row is missing) with the figures behind it.
export function targets23(M, V) {
  const g = (key, m) => M?.[key]?.[m] ?? null;
  const { mode, prefix } = vhostMode(V);
  const v = (kase, m) => V?.medians?.[prefix + kase]?.[m] ?? null;
  const how = mode === 'loop' ? 'frames the switch forwarded, one testpmd looping them' : 'testpmd txonly -> rxonly';
  const x = (r) => (r === null ? 'n/a' : `${r.toFixed(2)}x`);
  const list = [];
  const add = (name, value, ok, detail) => list.push({ name, value, ok: value === null ? null : ok(value), detail });
  let r = ratio(v('vhost-user', 'kpps'), v('tap', 'kpps'));
  add('60-byte frames through vhost-user >= 2x the TAP path', r, (a) => a >= 2,
    `${x(r)} (${fmt(v('vhost-user', 'kpps'), 1)} vs ${fmt(v('tap', 'kpps'), 1)} kpps, ${how})`);
  const us = v('vhost-user', 'cpu_us');
  add('vhost-user CPU per frame <= 1.0 us', us, (a) => a <= 1.0,
    `${fmt(us, 2)} us (TAP path ${fmt(v('tap', 'cpu_us'), 2)} us, OVS-DPDK ${fmt(v('ovs-dpdk', 'cpu_us'), 2)} us of a polling PMD)`);
  r = ratio(v('vhost-user', 'kpps'), v('ovs-dpdk', 'kpps'));
  add('vhost-user within 2x of OVS-DPDK pps', r, (a) => a >= 0.5,
    V?.skipped?.[prefix + 'ovs-dpdk'] ? `OVS-DPDK skipped: ${V.skipped[prefix + 'ovs-dpdk']}` :
      `${x(r)} OVS-DPDK (${fmt(v('vhost-user', 'kpps'), 1)} vs ${fmt(v('ovs-dpdk', 'kpps'), 1)} kpps)`);
  r = ratio(g('tapbridge/uplink', 'pps'), g('tapbridge/tap', 'pps'));
  add('TAP<->AF_PACKET 60-byte frames >= TAP<->TAP', r, (a) => a >= 1,
    `${x(r)} (${fmt(kilo(g('tapbridge/uplink', 'pps')), 0)} vs ${fmt(kilo(g('tapbridge/tap', 'pps')), 0)} kpps; offered ` +
    `${fmt(kilo(g('tapbridge/uplink', 'offered')), 0)} / ${fmt(kilo(g('tapbridge/tap', 'offered')), 0)}; ` +
    `packet_mmap: false ${fmt(kilo(g('tapbridge/uplink-recvmsg', 'pps')), 0)} kpps)`);
  r = ratio(g('tapbridge/uplink', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps'));
  add('TCP TAP<->AF_PACKET >= 0.9x kernel bridge', r, (a) => a >= 0.9,
    `${x(r)} (${fmt(g('tapbridge/uplink', 'tcp1_gbps'), 2)} vs ${fmt(g('kernel/veth', 'tcp1_gbps'), 2)} Gbit/s; packet_mmap: false ` +
    `${x(ratio(g('tapbridge/uplink-recvmsg', 'tcp1_gbps'), g('kernel/veth', 'tcp1_gbps')))})`);
  const au = g('tapbridge/uplink', 'cpu_us');
  add('CPU per frame on the AF_PACKET side <= 2.0 us', au, (a) => a <= 2.0,
    `${fmt(au, 2)} us with rings, ${fmt(g('tapbridge/uplink-recvmsg', 'cpu_us'), 2)} us with packet_mmap: false ` +
    `(TAP<->TAP ${fmt(g('tapbridge/tap', 'cpu_us'), 2)} us)`);
  return list;
}

const verdict = (t) => (t.ok === null ? 'n/a' : t.ok ? '**MET**' : '**MISS**');

export function render(r) {
  const out = [];
  const M = r.main?.medians ?? null;
  const g = (key, m) => M?.[key]?.[m] ?? null;
  const mc = r.machine;
  out.push(`# tapbridge bench --all, ${r.date}${r.quick ? ' (--quick: 1 rep, short durations; not for the docs)' : ''}`);
  out.push('');
  out.push(`${mc.nproc} vCPU ${mc.cpu_model}, kernel ${mc.kernel}, Node ${mc.node.replace(/^v/, '')}, vde2 ${mc.vde2 ?? '-'}, ` +
    `Open vSwitch ${mc.openvswitch ?? '-'}${r.git ? `, tapbridge at ${r.git}` : ''}. ` +
    `Load average before ${r.load.before}, after ${r.load.after}. Took ${Math.round(r.elapsed_s / 60)} min ` +
    `(${r.steps.map((s) => `${s.name} ${s.seconds} s${s.status === 0 ? '' : `, FAILED with status ${s.status}`}`).join('; ')}).`);
  const load1 = Number(String(r.load.before ?? '').split(' ')[0]);
  if (load1 > mc.nproc / 2) {
    out.push('');
    out.push(`WARNING: load average ${load1} before the run on ${mc.nproc} CPUs: other work shared the machine, so these figures measure it ` +
      'too; for the docs, run on a quiet machine.');
  }
  out.push('');

  if (M) {
    const s = r.main.settings;
    out.push(`## The bridges side by side (run.sh: ${s.reps} rep(s), medians; iperf3 -t ${s.tcp_seconds}, flood window ${s.flood_seconds} s, ` +
      `ping -c ${s.ping_count}, ${s.load_ping_count} under load)`);
    out.push('');
    out.push('| implementation | path | TCP 1 stream | TCP 2 streams | 60-byte frames (offered) | CPU per 60-byte frame | ping avg (p50 / p99) | ping p50 / p99 under 1 TCP stream | RSS |');
    out.push('|----------------|------|-------------:|--------------:|---------------:|----------------------:|---------------------:|----------------------------------:|----:|');
    // run.sh's rows, in the docs' words where they differ
    const docLabel = {
      'tapbridge/uplink': ['tapbridge', 'TAP <-> AF_PACKET uplink (PACKET_MMAP rings)'],
      'tapbridge/uplink-recvmsg': ['tapbridge', 'TAP <-> AF_PACKET uplink, `packet_mmap: false`'],
      'kernel/veth': ['Linux kernel bridge', 'veth <-> veth'],
      'ovs/tap': ['Open vSwitch userspace (netdev, TSO)', 'TAP <-> TAP'],
      'ovs/uplink': ['Open vSwitch userspace (netdev, TSO)', 'TAP <-> AF_PACKET'],
    };
    for (const [key, ...labels] of ROWS) {
      if (!M[key]) continue;
      const [impl, path] = docLabel[key] ?? labels;
      const kernel = key.startsWith('kernel');
      const cpu = g(key, 'cpu_us');
      out.push(`| ${impl} | ${path} | ${fmt(g(key, 'tcp1_gbps'), 2)} Gbit/s | ${fmt(g(key, 'tcp2_gbps'), 2)} Gbit/s | ` +
        `${fmt(kilo(g(key, 'pps')), 0)} kpps (${fmt(kilo(g(key, 'offered')), 0)}${kernel ? ', the generator\'s ceiling' : ''}) | ` +
        `${cpu === null ? (kernel ? 'in kernel' : '-') : `${fmt(cpu, 2)} us`} | ` +
        `${fmt(g(key, 'ping_ms'), 3)} ms (${fmt(g(key, 'ping_p50_ms'), 3)} / ${fmt(g(key, 'ping_p99_ms'), 3)}) | ` +
        `${fmt(g(key, 'load_ping_p50_ms'), 3)} / ${fmt(g(key, 'load_ping_p99_ms'), 3)} ms | ` +
        `${g(key, 'rss_mb') === null ? '-' : `${fmt(g(key, 'rss_mb'), 1)} MB`} |`);
    }
    for (const sk of r.main.skipped ?? []) out.push(`\nNOTE: ${sk}`);
    if (r.main.soak) {
      const k = r.main.soak;
      out.push('');
      out.push(`Soak (tapbridge TAP<->TAP, ${k.seconds} s, 100k source MACs): ${k.fdb_entries} FDB entries, RSS idle ${fmt(k.rss_idle_mb, 1)} MB, ` +
        `max ${fmt(k.rss_max_mb, 1)} MB, last ${fmt(k.rss_last_mb, 1)} MB.`);
    }
    out.push('');
    out.push("## Issue 13's targets");
    out.push('');
    out.push('| target | result |');
    out.push('|---|---|');
    for (const t of r.targets_issue13) out.push(`| ${t.name} | ${verdict(t)}: ${t.detail} |`);
    out.push('');
    out.push('## PACKET_MMAP rings on AF_PACKET ports (issue 23 section 2)');
    out.push('');
    out.push('| path | TCP 1 stream | 60-byte kpps (offered) | CPU per 60-byte frame (user + sys) | ping avg / p50 | CPU per ping frame |');
    out.push('|------|-------------:|-----------------------:|----------------------:|---------------:|-------------------:|');
    for (const [key, path] of [['tapbridge/tap', 'TAP <-> TAP'], ['tapbridge/uplink', 'TAP <-> AF_PACKET, rings'],
      ['tapbridge/uplink-recvmsg', 'TAP <-> AF_PACKET, `packet_mmap: false`'], ['kernel/veth', 'kernel bridge']]) {
      if (!M[key]) continue;
      const cpu = g(key, 'cpu_us');
      out.push(`| ${path} | ${fmt(g(key, 'tcp1_gbps'), 2)} Gbit/s | ${fmt(kilo(g(key, 'pps')), 0)} (${fmt(kilo(g(key, 'offered')), 0)}) | ` +
        `${cpu === null ? 'in kernel' : `${fmt(cpu, 2)} us (${fmt(g(key, 'cpu_user_us'), 2)} + ${fmt(g(key, 'cpu_sys_us'), 2)})`} | ` +
        `${fmt(g(key, 'ping_ms'), 3)} / ${fmt(g(key, 'ping_p50_ms'), 3)} ms | ${g(key, 'ping_cpu_us') === null ? '-' : `${fmt(g(key, 'ping_cpu_us'), 0)} us`} |`);
    }
    out.push('');
  } else {
    out.push('(main step: no result; the bridges side by side, issue 13 and PACKET_MMAP tables are left out)');
    out.push('');
  }

  const V = r.vhost;
  if (V) {
    out.push('## vhost-user against the TAP path and OVS-DPDK (vhost-user.sh)');
    out.push('');
    out.push(`Memory: ${V.hugepages ? '2 MiB hugepages (reserved for the run, given back after)' : `--no-huge (${V.skipped.all ?? 'hugepages not used'})`}.`);
    out.push('');
    const labels = [['vhost-user', 'tapbridge vhost-user (testpmd virtio_user <-> vhost-user ports)'],
      ['tap', 'tapbridge TAP (testpmd af_packet <-> TAPs)'], ['ovs-dpdk', 'OVS-DPDK `dpdkvhostuserclient` (PMD thread polling one core)']];
    const loop = labels.filter(([k]) => V.medians[`loop/${k}`] || V.skipped[`loop/${k}`]);
    if (loop.length) {
      out.push('One testpmd with both ports on one lcore (CPU 1), `--forward-mode=mac --tx-first`: a fixed set of 60-byte frames ' +
        'circulates port 0 -> switch -> port 1 -> testpmd -> port 0; the switch pinned to CPU 0. Frames per second and CPU per ' +
        'frame from the switch\'s own counters (frames it sent out of its two ports, its process\'s CPU time); a CPU share under ' +
        '100% means the switch waited for frames: the rate is then the loop\'s, not the switch\'s limit.');
      out.push('');
      out.push('| path | switch forwarded, kpps | switch CPU per frame | switch CPU, % of one | bytes per frame | switch drops | MAC moves | testpmd RX / TX (dropped RX / TX) |');
      out.push('|---|---|---|---|---|---|---|---|');
      for (const [kase, label] of loop) {
        if (V.skipped[`loop/${kase}`]) { out.push(`| ${label} | skipped: ${V.skipped[`loop/${kase}`]} | | | | | | |`); continue; }
        const m = V.medians[`loop/${kase}`];
        const n = (k, d = 0) => fmt(m[k] ?? null, d);
        out.push(`| ${label} | ${n('kpps', 1)} | ${fmt(m.cpu_us ?? null, 2)} µs${m.cycles_per_frame ? ` (PMD: ${fmt(m.cycles_per_frame, 0)} cycles per frame)` : ''} | ` +
          `${n('cpu_pct')} | ${n('bytes_per_frame', 1)} | ${n('switch_drops')} | ${n('mac_moves')} | ${n('testpmd_rx')} / ${n('testpmd_tx')} (${n('testpmd_rx_dropped')} / ${n('testpmd_tx_dropped')}) |`);
      }
      out.push('');
    }
    const txrx = labels.filter(([k]) => V.medians[k] || V.skipped[k]);
    if (txrx.length) {
      out.push('testpmd txonly -> the switch -> a second testpmd rxonly (two busy-polling testpmds beside the switch on 2 CPUs: the ' +
        'receiving one\'s share of a CPU, not the switch, sets much of the delivered rate).');
      out.push('');
      out.push('| path | 60-byte frames delivered, kpps | switch CPU per frame |');
      out.push('|---|---|---|');
      for (const [kase, label] of txrx) {
        if (V.skipped[kase]) { out.push(`| ${label} | skipped: ${V.skipped[kase]} | |`); continue; }
        const m = V.medians[kase];
        out.push(`| ${label} | ${fmt(m.kpps ?? null, 1)} | ${fmt(m.cpu_us ?? null, 2)} µs${m.cycles_per_frame ? ` (PMD: ${fmt(m.cycles_per_frame, 0)} cycles per frame)` : ''} |`);
      }
      out.push('');
    }
  } else {
    out.push('(vhost step: no result)');
    out.push('');
  }

  out.push("## Issue 23's targets");
  out.push('');
  out.push('| target | result |');
  out.push('|---|---|');
  for (const t of r.targets_issue23) out.push(`| ${t.name} | ${verdict(t)}: ${t.detail} |`);
  out.push('');

  if (r.tenants) {
    out.push('## Many guests: a noisy neighbour (tenants.sh)');
    out.push('');
    out.push(r.tenants);
    out.push('');
  }
  if (r.bond_modes?.length) {
    out.push('## Bond modes (bond-modes.sh)');
    out.push('');
    out.push('| mode | rep | vm1 -> ext1 Mbit/s | vm2 -> ext2 Mbit/s | sum Mbit/s | sent per member |');
    out.push('|---|---|---|---|---|---|');
    for (const b of r.bond_modes) out.push(`| ${b.mode} | ${b.rep} | ${fmt(b.vm1_mbit, 0)} | ${fmt(b.vm2_mbit, 0)} | ${fmt(b.sum_mbit, 0)} | ${b.per_member} |`);
    out.push('');
  }
  if (r.mcast?.length) {
    out.push('## Multicast snooping (mcast.sh)');
    out.push('');
    out.push('```');
    for (const m of r.mcast) out.push(m.line.trim());
    out.push('```');
    out.push('');
  }
  // a step that ran but whose output had nothing this report reads (failed early, or its format changed)
  const found = { tenants: r.tenants, bonds: r.bond_modes?.length, mcast: r.mcast?.length };
  for (const s of r.steps) {
    if (s.name in found && !found[s.name]) out.push(`(${s.name} step: no result rows in its output; it is in the JSON's outputs.${s.name})`);
  }
  return out.join('\n');
}

function gitHead(dir) {
  try { return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return null; }
}

function main() {
  const fromIdx = process.argv.indexOf('--from');
  if (fromIdx > 0) {
    console.log(render(JSON.parse(readFileSync(process.argv[fromIdx + 1], 'utf8'))));
    return;
  }
  const env = process.env;
  const W = env.ALL_WORK;
  const steps = (read(join(W, 'steps.tsv')) ?? '').split('\n').filter(Boolean).map((l) => {
    const [name, status, seconds] = l.split('\t');
    return { name, status: Number(status), seconds: Number(seconds) };
  });
  const main = read(join(W, 'main.json')) ? JSON.parse(read(join(W, 'main.json'))) : null;
  const vtsv = read(join(W, 'vhost.tsv'));
  let vhost = null;
  if (vtsv !== null) {
    vhost = parseVhost(vtsv);
    vhost.hugepages = vhost.medians.all?.hugepages === 1;
  }
  const result = {
    date: new Date().toISOString(),
    quick: env.ALL_QUICK === '1',
    git: gitHead(dirname(new URL(import.meta.url).pathname)),
    machine: machine(),
    load: { before: env.ALL_LOAD_BEFORE, after: env.ALL_LOAD_AFTER },
    elapsed_s: Number(env.ALL_ELAPSED),
    steps,
    main,
    vhost,
    tenants: tenantsTable(read(join(W, 'tenants.out'))),
    bond_modes: parseBonds(read(join(W, 'bonds.out'))),
    mcast: parseMcast(read(join(W, 'mcast.out'))),
    outputs: Object.fromEntries(steps.map((s) => [s.name, read(join(W, `${s.name}.out`))])),
  };
  result.targets_issue13 = main ? targets13(main.medians) : [];
  result.targets_issue23 = targets23(main?.medians ?? null, vhost);
  emit(render(result), result, env.ALL_OUT);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
