// scripts/bench/all-report.mjs and report.mjs (plain ESM scripts, run here with node): a figure a step did not produce
// is printed as '-', never as a measured 0 (null / 1e3 is 0 in JavaScript).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');

/** Runs `expr` (with targets23, render, parseVhost and vhostMode of all-report.mjs in scope) in node; returns what it prints. */
function evalReport(expr: string): string {
  const url = (f: string): string => `file://${join(ROOT, 'scripts', 'bench', f)}`;
  const code = `import { targets23, render, parseVhost, vhostMode } from '${url('all-report.mjs')}'; console.log(${expr});`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
}

describe('bench --all report: missing figures', () => {
  it('issue 23 targets without the main step: the AF_PACKET row says "-", not "0 vs 0 kpps"', () => {
    const out = evalReport(`JSON.stringify(targets23(null, null))`);
    const list = JSON.parse(out) as Array<{ name: string; ok: boolean | null; detail: string }>;
    const row = list.find((t) => t.name.startsWith('TAP<->AF_PACKET 60-byte frames'))!;
    expect(row.ok).toBeNull();
    expect(row.detail).not.toMatch(/\b0 vs 0 kpps/);
    expect(row.detail).toContain('- vs - kpps');
  });

  it('a main row without a flood figure: the tables print "-" for its kpps', () => {
    const r = {
      date: 'x', quick: true, machine: { nproc: 2, cpu_model: 'cpu', kernel: 'k', node: 'v20' }, load: { before: '0 0 0', after: '0 0 0' }, elapsed_s: 1, steps: [{ name: 'main', status: 0, seconds: 1 }],
      main: { medians: { 'tapbridge/tap': { tcp1_gbps: 10, ping_ms: 0.2 } }, skipped: [], settings: { reps: 1, tcp_seconds: 1, flood_seconds: 1, ping_count: 1, load_ping_count: 1 } }, vhost: null, tenants: null,
      bond_modes: null, mcast: null, outputs: {}, targets_issue13: [], targets_issue23: [],
    };
    const out = evalReport(`render(${JSON.stringify(r)})`);
    const lines = out.split('\n').filter((l) => l.includes('10.00 Gbit/s'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l, l).not.toMatch(/\| 0 kpps|\| 0 \(0\)/);
  });
});

describe('bench --all report: vhost-user loop rows', () => {
  // vhost-user.sh --tsv records of a run with both modes: loop rows are "loop/IMPL", txrx rows "IMPL"
  const rec = (kase: string, metric: string, value: string | number): string => `vhost\t${kase}\t1\t${metric}\t${value}`;
  const tsv = [
    rec('all', 'hugepages', 1),
    rec('loop/vhost-user', 'kpps', 3000), rec('loop/vhost-user', 'cpu_us', 0.2), rec('loop/vhost-user', 'cpu_pct', 60), rec('loop/vhost-user', 'bytes_per_frame', 60),
    rec('loop/vhost-user', 'switch_drops', 0), rec('loop/vhost-user', 'mac_moves', 0),
    rec('loop/vhost-user', 'testpmd_rx', 9000000), rec('loop/vhost-user', 'testpmd_tx', 9000512),
    rec('loop/vhost-user', 'testpmd_rx_dropped', 0), rec('loop/vhost-user', 'testpmd_tx_dropped', 0),
    rec('loop/tap', 'kpps', 1000), rec('loop/tap', 'cpu_us', 1.5),
    rec('loop/ovs-dpdk', 'skipped', 'ovs-vswitchd-dpdk missing'),
    // txrx rows that would MISS the 2x target: the targets must not read them when loop rows exist
    rec('vhost-user', 'kpps', 100), rec('vhost-user', 'cpu_us', 5), rec('tap', 'kpps', 90), rec('tap', 'cpu_us', 2),
  ].join('\n');
  type Target = { name: string; ok: boolean | null; detail: string };
  const targets = (t: string): Target[] =>
    JSON.parse(evalReport(`JSON.stringify(targets23(null, parseVhost(${JSON.stringify(t)})))`)) as Target[];

  it('parseVhost keeps loop and txrx rows apart and the skip reason under loop/', () => {
    const v = JSON.parse(evalReport(`JSON.stringify(parseVhost(${JSON.stringify(tsv)}))`)) as {
      medians: Record<string, Record<string, number>>; skipped: Record<string, string>;
    };
    expect(v.medians['loop/vhost-user']).toMatchObject({ kpps: 3000, cpu_us: 0.2, testpmd_tx: 9000512, mac_moves: 0 });
    expect(v.medians['vhost-user']).toMatchObject({ kpps: 100 });
    expect(v.skipped).toEqual({ 'loop/ovs-dpdk': 'ovs-vswitchd-dpdk missing' });
  });

  it("issue 23's targets are evaluated on the loop rows when the run has them", () => {
    const list = targets(tsv);
    const two = list.find((t) => t.name.includes('>= 2x the TAP path'))!;
    expect(two.ok).toBe(true);
    expect(two.detail).toContain('3000.0 vs 1000.0 kpps');
    const cpu = list.find((t) => t.name === 'vhost-user CPU per frame <= 1.0 us')!;
    expect(cpu.ok).toBe(true);
    expect(cpu.detail).toMatch(/^0\.20 us/);
    const ovs = list.find((t) => t.name.startsWith('vhost-user within 2x of OVS-DPDK'))!;
    expect(ovs.ok).toBeNull();
    expect(ovs.detail).toBe('OVS-DPDK skipped: ovs-vswitchd-dpdk missing');
  });

  it('a run with txrx rows only (older runs, --mode txrx) is evaluated on them', () => {
    const txrxOnly = tsv.split('\n').filter((l) => !l.includes('\tloop/')).join('\n');
    expect(JSON.parse(evalReport(`JSON.stringify(vhostMode(parseVhost(${JSON.stringify(txrxOnly)})))`))).toEqual({ mode: 'txrx', prefix: '' });
    const two = targets(txrxOnly).find((t) => t.name.includes('>= 2x the TAP path'))!;
    expect(two.ok).toBe(false);
    expect(two.detail).toContain('100.0 vs 90.0 kpps, testpmd txonly -> rxonly');
  });

  it('render prints the loop table (with testpmd counts and the skip) and the txrx table after it', () => {
    const r = {
      date: 'x', quick: true, machine: { nproc: 2, cpu_model: 'cpu', kernel: 'k', node: 'v20' }, load: { before: '0 0 0', after: '0 0 0' }, elapsed_s: 1,
      steps: [{ name: 'vhost', status: 0, seconds: 1 }], main: null, tenants: null, bond_modes: null, mcast: null, outputs: {}, targets_issue13: [], targets_issue23: [],
    };
    const out = evalReport(`render({ ...${JSON.stringify(r)}, vhost: { ...parseVhost(${JSON.stringify(tsv)}), hugepages: true } })`);
    const lines = out.split('\n');
    const loopHead = lines.findIndex((l) => l.startsWith('| path | switch forwarded, kpps |'));
    const txrxHead = lines.findIndex((l) => l.startsWith('| path | 60-byte frames delivered, kpps |'));
    expect(loopHead).toBeGreaterThan(0);
    expect(txrxHead).toBeGreaterThan(loopHead);
    const vhu = lines.slice(loopHead, txrxHead).find((l) => l.startsWith('| tapbridge vhost-user'))!;
    expect(vhu).toBe('| tapbridge vhost-user (testpmd virtio_user <-> vhost-user ports) | 3000.0 | 0.20 µs | 60 | 60.0 | 0 | 0 | 9000000 / 9000512 (0 / 0) |');
    expect(lines.slice(loopHead, txrxHead).find((l) => l.includes('OVS-DPDK'))).toContain('skipped: ovs-vswitchd-dpdk missing');
    // a figure the TAP row did not record is "-", not 0
    expect(lines.slice(loopHead, txrxHead).find((l) => l.startsWith('| tapbridge TAP'))).toContain('| 1.50 µs | - | - | - | - |');
    expect(lines.slice(txrxHead).find((l) => l.startsWith('| tapbridge vhost-user'))).toContain('| 100.0 | 5.00 µs |');
  });
});

describe('bench scripts: --help', () => {
  // the help is the script's header comment (line 2 up to `set -e`): every line of it, the last one too
  for (const script of ['all.sh', 'vhost-user.sh']) {
    it(`${script} --help prints its whole header, to its last line`, () => {
      const file = join(ROOT, 'scripts', 'bench', script);
      const lines = readFileSync(file, 'utf8').split('\n');
      const end = lines.findIndex((l) => l.startsWith('set -e'));
      const header = lines.slice(1, end).filter((l) => l.startsWith('#')).map((l) => l.replace(/^# ?/, ''));
      const out = execFileSync('bash', [file, '--help'], { encoding: 'utf8' });
      expect(out.trimEnd().split('\n')).toEqual(header);
    });
  }
});
