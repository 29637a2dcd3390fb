// scripts/bench/all-report.mjs and report.mjs (plain ESM scripts, run here with node): a figure a step did not produce
// is printed as '-', never as a measured 0 (null / 1e3 is 0 in JavaScript).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');

/** Runs `expr` (with targets23 and render of all-report.mjs in scope) in node; returns what it prints. */
function evalReport(expr: string): string {
  const url = (f: string): string => `file://${join(ROOT, 'scripts', 'bench', f)}`;
  const code = `import { targets23, render } from '${url('all-report.mjs')}'; console.log(${expr});`;
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
