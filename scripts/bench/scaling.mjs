// The report of `scripts/bench/run.sh --scaling` (issue 13, "how cost grows"): medians per implementation and port
// count (forwarded kpps and bridge CPU per frame, unicast pairs and with 10% broadcast) and per number of busy TCP
// streams (ping p50/p99), printed as two tables, written as JSON, and plotted with gnuplot into a PNG next to the JSON.
// Run by run.sh; reads its inputs from BENCH_* environment variables.
//
//   node scripts/bench/scaling.mjs                        (BENCH_RESULTS=raw.tsv BENCH_OUT=out.json ...)
//   node scripts/bench/scaling.mjs --from results/scaling-X.json [--plot]   the tables again (and the PNG)

import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { collect, machine, fmt } from './report.mjs';

const env = process.env;
const IMPLS = [
  ['tapbridge', 'tapbridge'],
  ['kernel', 'kernel bridge'],
  ['vde', 'vde_switch'],
  ['ovs', 'Open vSwitch userspace'],
];
const VARIANTS = ['unicast', 'bcast'];

// tables(medians, ports): the rows of the JSON's "scaling" object.
function tables(M, ports) {
  const g = (key, m) => M[key]?.[m] ?? null;
  const portRows = [];
  const streamRows = [];
  for (const [impl] of IMPLS) {
    for (const n of ports) {
      const key = `${impl}/ports${n}`;
      if (!M[key]) continue;
      const row = { impl, ports: n };
      for (const v of VARIANTS) {
        row[`${v}_fwd_kpps`] = g(key, `${v}_fwd_pps`) === null ? null : g(key, `${v}_fwd_pps`) / 1e3;
        row[`${v}_in_kpps`] = g(key, `${v}_in_pps`) === null ? null : g(key, `${v}_in_pps`) / 1e3;
        row[`${v}_offered_kpps`] = g(key, `${v}_offered_pps`) === null ? null : g(key, `${v}_offered_pps`) / 1e3;
        row[`${v}_drop_kpps`] = g(key, `${v}_drop_pps`) === null ? null : g(key, `${v}_drop_pps`) / 1e3;
        row[`${v}_cpu_us`] = g(key, `${v}_cpu_us`);
        row[`${v}_cpu_util_pct`] = g(key, `${v}_cpu_util_pct`);
      }
      portRows.push(row);
    }
    const key = `${impl}/streams`;
    if (!M[key]) continue;
    for (const s of [0, 1, 2]) {
      streamRows.push({ impl, streams: s, ping_p50_ms: g(key, `busy${s}_ping_p50_ms`), ping_p99_ms: g(key, `busy${s}_ping_p99_ms`),
        ping_ms: g(key, `busy${s}_ping_ms`), loss_pct: g(key, `busy${s}_ping_loss_pct`), tcp_gbps: g(key, `busy${s}_tcp_gbps`) });
    }
  }
  return { ports: portRows, streams: streamRows };
}

function grid(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
  return [line(rows[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.slice(1).map(line)];
}

const NAME = Object.fromEntries(IMPLS);

export function renderScaling(result) {
  const out = [];
  const s = result.settings;
  out.push(`tapbridge bench --scaling ${result.date}: ${result.machine.nproc} CPUs (${result.machine.cpu_model}), kernel ${result.machine.kernel}, node ${result.machine.node}`);
  out.push(`medians of ${s.reps} rep(s); flood window ${s.flood_seconds} s, ${s.offered_kpps} kpps offered in total (60-byte frames, ` +
    `every host to its pair partner, from one generator process capped at that total); ping -i 0.01 -c ${s.ping_count}; ` +
    `load before/after: ${result.load.before} / ${result.load.after}`);
  out.push('');
  const cpu = (impl, v) => (impl === 'kernel' ? 'in kernel' : fmt(v, 2));
  const head = ['implementation', 'ports', 'unicast: offered kpps', 'in', 'delivered', 'CPU us/frame', 'CPU %',
    '10% bcast: offered kpps', 'in', 'delivered', 'CPU us/frame', 'CPU %'];
  const rows = [head];
  for (const r of result.scaling.ports) {
    const cols = [NAME[r.impl], r.ports];
    for (const v of VARIANTS) {
      cols.push(fmt(r[`${v}_offered_kpps`], 0), fmt(r[`${v}_in_kpps`], 0), fmt(r[`${v}_fwd_kpps`], 0), cpu(r.impl, r[`${v}_cpu_us`]),
        fmt(r[`${v}_cpu_util_pct`], 0));
    }
    rows.push(cols);
  }
  out.push(...grid(rows));
  out.push('(offered: what the generator handed to the hosts\' eth0; in: what the bridge took from them; delivered: frames ' +
    'arriving at the hosts, flooded copies included; CPU per delivered frame)');
  out.push('');
  const srows = [['implementation', 'busy TCP streams', 'ping p50 ms', 'ping p99 ms', 'ping avg ms', 'loss %', 'streams Gb/s']];
  for (const r of result.scaling.streams) {
    srows.push([NAME[r.impl], r.streams, fmt(r.ping_p50_ms, 3), fmt(r.ping_p99_ms, 3), fmt(r.ping_ms, 3), fmt(r.loss_pct, 1),
      r.streams === 0 ? '-' : fmt(r.tcp_gbps, 2)]);
  }
  out.push(...grid(srows));
  for (const x of result.skipped) out.push(`NOTE: ${x}`);
  return out.join('\n');
}

// plot(result, png): three panels (kpps by ports, CPU per frame by ports, ping p50/p99 by busy streams), gnuplot.
function plot(result, png) {
  const dir = mkdtempSync(join(env.BENCH_WORK || tmpdir(), 'plot-'));
  try {
    const series = [];
    for (const [impl, name] of IMPLS) {
      const rows = result.scaling.ports.filter((r) => r.impl === impl);
      if (rows.length) {
        const f = join(dir, `${impl}-ports.dat`);
        writeFileSync(f, '# ports unicast_kpps bcast_kpps unicast_cpu_us bcast_cpu_us\n' + rows.map((r) =>
          [r.ports, r.unicast_fwd_kpps, r.bcast_fwd_kpps, r.unicast_cpu_us, r.bcast_cpu_us].map((v) => (v === null ? 'NaN' : v)).join(' ')).join('\n') + '\n');
        series.push({ impl, name, ports: f });
      }
      const srows = result.scaling.streams.filter((r) => r.impl === impl);
      if (srows.length) {
        const f = join(dir, `${impl}-streams.dat`);
        writeFileSync(f, '# streams p50_ms p99_ms\n' + srows.map((r) =>
          [r.streams, r.ping_p50_ms, r.ping_p99_ms].map((v) => (v === null ? 'NaN' : v)).join(' ')).join('\n') + '\n');
        const s = series.find((x) => x.impl === impl) ?? (series.push({ impl, name }), series[series.length - 1]);
        s.streams = f;
      }
    }
    const color = { tapbridge: '#d62728', kernel: '#1f77b4', vde: '#2ca02c', ovs: '#9467bd' };
    const q = (s) => `'${s.replace(/'/g, "''")}'`;
    const lines = [
      `set terminal pngcairo noenhanced size 1500,620 font 'sans,10'`,
      `set output ${q(png)}`,
      `set multiplot layout 1,3 title ${q(`tapbridge bench --scaling, ${result.date.slice(0, 16)}Z, load ${result.load.before} (${result.settings.offered_kpps} kpps offered)`)}`,
      'set grid', 'set key outside below center horizontal maxcols 2 font ",9"', 'set logscale x 2', `set xtics (${result.settings.ports.join(', ')})`,
      `set xrange [${Math.min(...result.settings.ports) / 1.3}:${Math.max(...result.settings.ports) * 1.3}]`,
      'set yrange [0:*]',
    ];
    // two curves per implementation: column col (solid, label a) and col + 1 (dashed, label b) of file
    const pair = (list, file, col, a, b) => list.flatMap((s) => [
      `${q(s[file])} using 1:${col} with linespoints lw 2 pt 7 lc rgb '${color[s.impl]}' title ${q(`${s.name} ${a}`)}`,
      `${q(s[file])} using 1:${col + 1} with linespoints lw 2 pt 5 dt 2 lc rgb '${color[s.impl]}' title ${q(`${s.name} ${b}`)}`,
    ]).join(', \\\n  ') || '1/0 notitle';
    lines.push("set title 'frames delivered (60 bytes)'", "set xlabel 'TAP ports'", "set ylabel 'kpps'");
    lines.push(`plot ${pair(series.filter((s) => s.ports), 'ports', 2, 'unicast', '10% bcast')}`);
    lines.push("set title 'bridge CPU per delivered frame'", "set ylabel 'us'");
    lines.push(`plot ${pair(series.filter((s) => s.ports && s.impl !== 'kernel'), 'ports', 4, 'unicast', '10% bcast')}`);
    lines.push('unset logscale x', 'set xtics (0, 1, 2)', 'set xrange [-0.2:2.2]', 'set logscale y', 'set yrange [*:*]',
      "set title 'ping RTT while TCP streams run (log scale)'", "set xlabel 'busy TCP streams'", "set ylabel 'ms'");
    lines.push(`plot ${pair(series.filter((s) => s.streams), 'streams', 2, 'p50', 'p99')}`);
    lines.push('unset multiplot');
    const script = join(dir, 'scaling.gp');
    writeFileSync(script, lines.join('\n') + '\n');
    execFileSync('gnuplot', [script], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
    return png;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function tryPlot(result, png) {
  try {
    plot(result, png);
    console.log(`PNG: ${png}`);
    return true;
  } catch (e) {
    console.log(`NOTE: no plot (gnuplot failed: ${String(e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ')})`);
    return false;
  }
}

function main() {
  const fromIdx = process.argv.indexOf('--from');
  if (fromIdx > 0) {
    const file = process.argv[fromIdx + 1];
    const result = JSON.parse(readFileSync(file, 'utf8'));
    console.log(renderScaling(result));
    if (process.argv.includes('--plot')) tryPlot(result, file.replace(/\.json$/, '') + '.png');
    return;
  }
  const { raw, medians } = collect(env.BENCH_RESULTS);
  const ports = (env.BENCH_SCALING_PORTS ?? '').split(',').filter(Boolean).map(Number);
  const result = {
    mode: 'scaling',
    date: new Date().toISOString(),
    machine: machine(),
    settings: { reps: Number(env.BENCH_REPS), flood_seconds: Number(env.BENCH_FLOOD_SECONDS), ping_count: Number(env.BENCH_PING_COUNT),
      ports, offered_kpps: Number(env.BENCH_SCALING_KPPS), bcast_pct: 10,
      busy_poll_us: env.BENCH_BUSY_POLL_US ? Number(env.BENCH_BUSY_POLL_US) : null,
      data_workers: env.BENCH_DATA_WORKERS ? Number(env.BENCH_DATA_WORKERS) : null },
    load: { before: env.BENCH_LOAD_BEFORE, after: env.BENCH_LOAD_AFTER },
    elapsed_s: Number(env.BENCH_ELAPSED),
    skipped: (env.BENCH_SKIPPED ?? '').split('\n').filter(Boolean),
    scaling: tables(medians, ports),
    medians,
    raw,
  };
  const png = env.BENCH_OUT.replace(/\.json$/, '') + '.png';
  console.log('');
  console.log(renderScaling(result));
  mkdirSync(dirname(env.BENCH_OUT), { recursive: true });
  result.plot = env.BENCH_PLOT === '1' && tryPlot(result, png) ? png : null;
  writeFileSync(env.BENCH_OUT, JSON.stringify(result, null, 2) + '\n');
  console.log(`JSON: ${env.BENCH_OUT}`);
}

main();
