// The vxlan verbs of the CLI (node dist/cli/main.js) against a control server with scripted methods: what they send,
// what they print, their usage errors.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../src/control/server.js';
import { silentLogger } from '../../src/log.js';
import { cliRunner, recorder, type RecordedCall } from '../support/cli-run.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-vxcli-'));
const socket = join(dir, 'ctl.sock');
const calls: RecordedCall[] = [];
const run = cliRunner(socket);

const SHOW = {
  name: 'vx10010', vni: 10010, local: '198.18.20.1', remotes: ['198.18.20.2'], group: null, dev: null, port: 4789, vlan: 10,
  vlan_mode: 'access', state: 'up', ifindex: 5, mtu: 1500, underlay: 'u0', underlay_mtu: 1600, mtu_short: false, kernel_learning: true, persist: false,
};
const record = recorder(calls);

let server: ControlServer;
beforeAll(async () => {
  server = new ControlServer(socket, new Map([
    record('vxlan.show', [SHOW]),
    record('vxlan.add', SHOW),
    record('vxlan.del', null),
    record('vxlan.remote.add', SHOW),
    record('vxlan.remote.del', SHOW),
  ]), silentLogger());
  await server.listen();
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tapbridge vxlan', () => {
  it('show prints a table, -j the daemon\'s JSON', async () => {
    const t = await run('vxlan', 'show', 'xenbr0');
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^port\s+vni\s+local\s+vlan\s+state\s+mtu\s+remotes \/ group/);
    expect(t.stdout).toMatch(/vx10010\s+10010\s+198\.18\.20\.1\s+10\s+up\s+1500\s+198\.18\.20\.2/);
    const j = await run('vxlan', 'show', 'xenbr0', '-j');
    expect(JSON.parse(j.stdout)).toEqual([SHOW]);
  });

  it('add sends the config file\'s keys of a vxlan entry; del and remote add|del send bridge, name (and ip)', async () => {
    calls.length = 0;
    const a = await run('vxlan', 'add', 'xenbr0', 'vx20', '--vni', '20', '--local', '198.18.20.1', '--remote', '198.18.20.2', '--remote', '198.18.20.3',
      '--vlan', '20', '--dstport', '8472', '--ttl', '9', '--no-kernel-learning', '--persist');
    expect(a.code, a.stderr).toBe(0);
    expect((await run('vxlan', 'add', 'xenbr0', 'vx30', '--vni', '30', '--group', '239.1.1.30', '--dev', 'u0', '--trunk', '10,20', '--native', '10')).code).toBe(0);
    expect((await run('vxlan', 'del', 'xenbr0', 'vx20')).code).toBe(0);
    expect((await run('vxlan', 'remote', 'add', 'xenbr0', 'vx10010', '198.18.20.9')).code).toBe(0);
    expect((await run('vxlan', 'remote', 'del', 'xenbr0', 'vx10010', '198.18.20.9')).code).toBe(0);
    const defined = (p: Record<string, unknown>) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined && v !== null));
    expect(calls.map((c) => ({ method: c.method, params: defined(c.params) }))).toEqual([
      { method: 'vxlan.add', params: { bridge: 'xenbr0', name: 'vx20', vni: 20, local: '198.18.20.1', remotes: ['198.18.20.2', '198.18.20.3'], port: 8472, ttl: 9, kernel_learning: false, persist: true, vlan: 20 } },
      { method: 'vxlan.add', params: { bridge: 'xenbr0', name: 'vx30', vni: 30, group: '239.1.1.30', dev: 'u0', trunk: '10,20', native_vlan: 10 } },
      { method: 'vxlan.del', params: { bridge: 'xenbr0', name: 'vx20' } },
      { method: 'vxlan.remote.add', params: { bridge: 'xenbr0', name: 'vx10010', ip: '198.18.20.9' } },
      { method: 'vxlan.remote.del', params: { bridge: 'xenbr0', name: 'vx10010', ip: '198.18.20.9' } },
    ]);
  });

  it('usage errors exit 2', async () => {
    expect((await run('vxlan')).code).toBe(2);
    expect((await run('vxlan', 'add', 'xenbr0', 'vx1')).stderr).toMatch(/vxlan add needs --vni N/);
    expect((await run('vxlan', 'add', 'xenbr0', 'vx1', '--vni', 'ten')).code).toBe(2);
    expect((await run('vxlan', 'remote', 'swap', 'xenbr0', 'vx1', '198.18.0.1')).code).toBe(2);
    expect((await run('vxlan', 'remote', 'add', 'xenbr0', 'vx1')).code).toBe(2);
  });
});
