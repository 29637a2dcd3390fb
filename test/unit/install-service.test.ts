// install-service into a temp prefix: the unit with the resolved ExecStart=, the example config only when absent, the
// QEMU scripts executable; ExecStart= quoting; and the installed unit through `systemd-analyze verify` and
// `systemd-analyze security --offline=yes` (systemd is not PID 1 here, so only the offline modes).
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { execWord, installService, PACKAGE_ROOT, renderUnit } from '../../src/service/install.js';

const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tb-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
/** The exposure score (0 safe .. 10 exposed) we hold the unit to. */
const MAX_EXPOSURE = 5.0;

function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

describe('install-service', () => {
  it('writes the unit, the example config and the QEMU scripts, and says what to do next', async () => {
    const prefix = join(dir, 'p1');
    const r = await runCli('install-service', '--prefix', prefix);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const unit = readFileSync(join(prefix, 'etc/systemd/system/tapbridge.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${cli} daemon --config /etc/tapbridge/tapbridge.yaml`);
    expect(unit).toMatch(/^Type=notify$/m);
    expect(readFileSync(join(prefix, 'etc/tapbridge/tapbridge.yaml'), 'utf8')).toBe(readFileSync(join(PACKAGE_ROOT, 'contrib/tapbridge.yaml'), 'utf8'));
    for (const s of ['qemu-ifup', 'qemu-ifdown', 'qemu-vhost-user-up', 'qemu-vhost-user-down']) {
      expect(readFileSync(join(prefix, 'etc/tapbridge', s), 'utf8')).toBe(readFileSync(join(PACKAGE_ROOT, 'scripts', s), 'utf8'));
      expect(statSync(join(prefix, 'etc/tapbridge', s)).mode & 0o777).toBe(0o755);
    }
    expect(r.stdout).toContain('unit ' + join(prefix, 'etc/systemd/system/tapbridge.service') + ': installed');
    expect(r.stdout).toContain('systemctl enable --now tapbridge');
    // the example config is a valid config
    const check = await runCli('check-config', join(prefix, 'etc/tapbridge/tapbridge.yaml'));
    expect(check.stdout).toContain(': ok (1 bridge(s), 0 port(s))');
  });

  it('never overwrites an existing config; replaces a changed unit; is idempotent', () => {
    const prefix = join(dir, 'p2');
    mkdirSync(join(prefix, 'etc/tapbridge'), { recursive: true });
    writeFileSync(join(prefix, 'etc/tapbridge/tapbridge.yaml'), 'bridges: [] # mine\n');
    const first = installService({ prefix });
    expect(first.done).toContain(`config ${join(prefix, 'etc/tapbridge/tapbridge.yaml')}: exists, left as it is`);
    expect(readFileSync(join(prefix, 'etc/tapbridge/tapbridge.yaml'), 'utf8')).toBe('bridges: [] # mine\n');
    const again = installService({ prefix });
    expect(again.done.filter((l) => l.endsWith(': unchanged'))).toHaveLength(5);
    writeFileSync(join(prefix, 'etc/systemd/system/tapbridge.service'), '[Service]\n');
    expect(installService({ prefix }).done[0]).toMatch(/: updated$/);
  });

  it('quotes ExecStart= words as systemd reads them', () => {
    expect(execWord('/usr/bin/node')).toBe('/usr/bin/node');
    expect(execWord('/opt/my apps/main.js')).toBe('"/opt/my apps/main.js"');
    expect(execWord('/opt/100%/$HOME')).toBe('/opt/100%%/$$HOME');
    expect(() => execWord('/a\nb')).toThrow(/NUL or newline/);
    expect(renderUnit('ExecStart=@EXEC_START@ daemon\n', '/n', '/m')).toBe('ExecStart=/n /m daemon\n');
    expect(() => renderUnit('ExecStart=/x\n', '/n', '/m')).toThrow(/@EXEC_START@/);
  });

  it('fails with a clear message when it cannot write', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const r = await runCli('install-service', '--prefix', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tapbridge install-service: /);
  });
});

describe.skipIf(!hasAnalyze)(`the installed unit under systemd-analyze${hasAnalyze ? '' : ' (skipped: no systemd-analyze; run scripts/setup-test-deps.sh)'}`, () => {
  const prefix = join(dir, 'p3');
  const unitPath = join(prefix, 'etc/systemd/system/tapbridge.service');

  it('systemd-analyze verify accepts it', () => {
    installService({ prefix });
    const r = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8', timeout: 30_000 });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it(`systemd-analyze security --offline=yes scores it at most ${MAX_EXPOSURE}`, () => {
    installService({ prefix });
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unitPath], { encoding: 'utf8', timeout: 30_000 });
    const m = /Overall exposure level for tapbridge\.service: (\d+\.\d+) (\S+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    console.log(`systemd-analyze security --offline=yes: exposure ${m![1]} ${m![2]}`);
    expect(Number(m![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
    // the settings the issue asks for are in force
    for (const s of ['NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateTmp=', 'ProtectKernelModules=', 'SystemCallArchitectures=']) {
      expect(r.stdout).toContain(`✓ ${s}`);
    }
  });
});
