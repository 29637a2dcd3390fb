// Config abuse (issue 9, section 2): a YAML alias bomb, a huge file, loopback and "%" in interface
// names, an over-long control_socket, control_max_clients, a non-integer ageing_time; and the CLI's
// check-config exit code and one-line message for the bomb.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, MAX_CONFIG_BYTES, parseConfig } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const CLI = resolve('dist/cli/main.js');

const BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  'bridges: []',
  '',
].join('\n');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      res({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

describe('config abuse', () => {
  it('turns a YAML alias bomb into one config issue', () => {
    expect(configIssues(BOMB)).toEqual([expect.stringMatching(/^\(yaml\): .*alias.*at most 100 alias expansions/i)]);
  });

  it('check-config: the alias bomb exits 2 with one line, no stack trace', async () => {
    const f = join(dir, 'bomb.yaml');
    writeFileSync(f, BOMB);
    const r = await cli('check-config', f);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/invalid configuration: \(yaml\): /);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('refuses a config file over 4 MiB, naming the limit', async () => {
    const f = join(dir, 'huge.yaml');
    writeFileSync(f, `bridges: []\n${'#'.repeat(MAX_CONFIG_BYTES)}\n`);
    expect(() => loadConfig(f)).toThrow(ConfigError);
    expect(() => loadConfig(f)).toThrow(/at most 4194304 bytes \(4 MiB\)/);
    const r = await cli('check-config', f);
    expect(r.code).toBe(2);
    // a file just under the cap still loads
    const ok = join(dir, 'ok.yaml');
    writeFileSync(ok, `bridges: []\n${'#'.repeat(MAX_CONFIG_BYTES - 100)}\n`);
    expect(loadConfig(ok).bridges).toEqual([]);
  });

  it('refuses lo and "%" in every interface name, with the key path', () => {
    const issues = configIssues(`
bridges:
  - name: xenbr0
    uplink: { interface: "peth%d" }
    ports:
      - { name: lo, kind: attach }
      - { name: "x%d" }
  - name: xenbr1
    uplink: { bond: { name: "bond%d", members: [lo, "p%1"] } }
`);
    expect(issues).toEqual([
      'bridges[0].uplink.interface: "peth%d" contains "%" (the kernel would expand it to a number and create another name)',
      'bridges[0].ports[0].name: "lo" is the loopback device; loopback cannot be a bridge port',
      'bridges[0].ports[1].name: "x%d" contains "%" (the kernel would expand it to a number and create another name)',
      'bridges[1].uplink.bond.name: "bond%d" contains "%" (the kernel would expand it to a number and create another name)',
      'bridges[1].uplink.bond.members[0]: "lo" is the loopback device; loopback cannot be a bridge port',
      'bridges[1].uplink.bond.members[1]: "p%1" contains "%" (the kernel would expand it to a number and create another name)',
    ]);
  });

  it('refuses a control_socket longer than sun_path (107 bytes), accepts 107', () => {
    const long = `/run/${'s'.repeat(103)}`; // 108 bytes
    expect(configIssues(`control_socket: ${long}\nbridges: []\n`)).toEqual([
      'control_socket: is 108 bytes long; a Unix socket path holds at most 107 bytes (sun_path)',
    ]);
    expect(parseConfig(`control_socket: ${long.slice(0, 107)}\nbridges: []\n`).controlSocket).toHaveLength(107);
  });

  it('control_max_clients: default 64, an integer 1..65535', () => {
    expect(parseConfig('bridges: []').controlMaxClients).toBe(64);
    expect(parseConfig('control_max_clients: 5\nbridges: []').controlMaxClients).toBe(5);
    expect(configIssues('control_max_clients: 0\nbridges: []')).toEqual(['control_max_clients: must be an integer 1..65535, got number 0']);
    expect(configIssues('control_max_clients: many\nbridges: []')).toEqual(['control_max_clients: must be an integer 1..65535, got "many"']);
  });

  it('busy_poll_us: default 0 (off), an integer 0..1000000 microseconds', () => {
    expect(parseConfig('bridges: []').busyPollUs).toBe(0);
    expect(parseConfig('busy_poll_us: 20000\nbridges: []').busyPollUs).toBe(20000);
    expect(configIssues('busy_poll_us: -1\nbridges: []')).toEqual(['busy_poll_us: must be an integer (microseconds, 0 = off) 0..1000000, got number -1']);
    expect(configIssues('busy_poll_us: 1000001\nbridges: []')).toEqual(['busy_poll_us: must be an integer (microseconds, 0 = off) 0..1000000, got number 1000001']);
    expect(configIssues('busy_poll_us: 0.5\nbridges: []')).toEqual(['busy_poll_us: must be an integer (microseconds, 0 = off) 0..1000000, got number 0.5']);
  });

  it('direct_poll: default true, a boolean', () => {
    expect(parseConfig('bridges: []').directPoll).toBe(true);
    expect(parseConfig('direct_poll: false\nbridges: []').directPoll).toBe(false);
    expect(configIssues('direct_poll: 1\nbridges: []')).toEqual(['direct_poll: must be true or false, got number 1']);
  });

  it('a non-integer ageing_time names the real range', () => {
    for (const v of ['2.5', 'soon', '-1', '5']) {
      expect(configIssues(`bridges: [{ name: b, ageing_time: ${v} }]`)[0]).toMatch(
        /^bridges\[0\]\.ageing_time: must be 0 \(never age\) or an integer 10\.\.1000000 seconds, got /,
      );
    }
    expect(parseConfig('bridges: [{ name: b, ageing_time: 0 }]').bridges[0]!.ageingTimeS).toBe(0);
    expect(parseConfig('bridges: [{ name: b, ageing_time: 10 }]').bridges[0]!.ageingTimeS).toBe(10);
  });
});
