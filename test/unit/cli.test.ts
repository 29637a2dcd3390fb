// The CLI as a user runs it (node dist/cli/main.js), against a control server with scripted methods.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../src/control/server.js';
import { ControlError } from '../../src/control/errors.js';
import { silentLogger } from '../../src/log.js';
import { cliRunner, recorder, type RecordedCall } from '../support/cli-run.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-cli-'));
const socket = join(dir, 'ctl.sock');
const calls: RecordedCall[] = [];
const run = cliRunner(socket);

const record = recorder(calls, (params) => {
  if (params.bridge === 'nope') throw new ControlError('no_such_bridge', 'no such bridge: nope');
});

let server: ControlServer;
beforeAll(async () => {
  server = new ControlServer(socket, new Map([
    record('show', [{ name: 'xenbr0', uplink: { name: 'peth0', kind: 'uplink', state: 'up' }, ports: [{ name: 'vif1.0', kind: 'tap', state: 'up', ifindex: 7 }] }]),
    record('showmacs', [{ port: 'vif1.0', mac: '00:16:3e:00:00:01', vlan: 0, static: false, age: 1.5 }]),
    record('addif', { name: 'vif9.0', kind: 'attach', state: 'absent', ifindex: 0 }),
    record('fdb.add', null),
    record('setageing', null),
    record('lock.set', { port: 'vif1.0', mode: 'locked', mac: '00:16:3e:00:01:00', ipv4: ['198.18.0.1'], ipv6: [], allow_ethertypes: [], ra_guard: false, dhcp_guard: false }),
    record('lock.show', [{ port: 'vif1.0', mode: 'locked', mac: '00:16:3e:00:01:00', ipv4: ['198.18.0.1', '198.18.1.0/24'], ipv6: ['2001:db8::1'], allow_ethertypes: [], ra_guard: true, dhcp_guard: false }]),
  ]), silentLogger());
  await server.listen();
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tapbridge CLI', () => {
  it('prints help and version', async () => {
    const h = await run('--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: tapbridge/);
    const v = await run('--version');
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('version: prints the CLI version and exits 3 when the daemon is unreachable', async () => {
    const r = await run('version', '--socket', join(dir, 'missing.sock'));
    expect(r.stdout).toMatch(/^tapbridge \d+\.\d+\.\d+\ndaemon unreachable/);
    expect(r.stderr).toMatch(/cannot reach the daemon/);
    expect(r.code).toBe(3);
    const j = await run('version', '--json', '--socket', join(dir, 'missing.sock'));
    expect(JSON.parse(j.stdout)).toMatchObject({ daemon: null });
    expect(j.code).toBe(3);
  });

  it('exits 2 on usage errors', async () => {
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('showmacs')).code).toBe(2);
    expect((await run('show', '--bogus')).code).toBe(2);
    expect((await run('setageing', 'xenbr0', 'soon')).code).toBe(2);
  });

  it('exits 3 when the daemon is unreachable', async () => {
    const r = await run('show', '--socket', join(dir, 'missing.sock'));
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach the daemon/);
  });

  it('prints JSON with -j and a brctl-like table without', async () => {
    const j = await run('show', '-j');
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)[0].ports[0].name).toBe('vif1.0');
    const t = await run('showmacs', 'xenbr0');
    expect(t.stdout).toMatch(/^port\s+mac addr\s+vlan\s+is static\?\s+ageing timer/);
    expect(t.stdout).toMatch(/vif1\.0\s+00:16:3e:00:00:01\s+0\s+no\s+1\.50/);
  });

  it('accepts options after arguments and passes them as named params', async () => {
    calls.length = 0;
    expect((await run('addif', 'xenbr0', 'vif9.0', '--kind', 'attach')).code).toBe(0);
    expect((await run('fdb', 'add', 'xenbr0', '00:16:3e:00:00:09', 'vif9.0', '--vlan', '5')).code).toBe(0);
    expect((await run('-j', 'setageing', 'xenbr0', '600')).code).toBe(0);
    expect(calls).toEqual([
      { method: 'addif', params: { bridge: 'xenbr0', ifname: 'vif9.0', kind: 'attach' } },
      { method: 'fdb.add', params: { bridge: 'xenbr0', mac: '00:16:3e:00:00:09', port: 'vif9.0', vlan: 5 } },
      { method: 'setageing', params: { bridge: 'xenbr0', seconds: 600 } },
    ]);
  });

  it('exits 1 when the request fails and names why', async () => {
    const r = await run('showmacs', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such bridge: nope \(no_such_bridge\)/);
  });

  it('check-config: 0 for a good file, 2 with key paths for a bad one', async () => {
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(good, 'bridges: [ { name: xenbr0, ports: [ { name: vif1.0 } ] } ]\n');
    writeFileSync(bad, 'bridges: [ { name: xenbr0, ports: [ { name: vif1.0, kind: nic } ] } ]\n');
    expect((await run('check-config', good)).code).toBe(0);
    const r = await run('check-config', bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bridges\[0\]\.ports\[0\]\.kind: must be "tap", "attach", "host" or "vhost-user"/);
  });

  it('check-config warns about a vxlan `local` address this host does not have (exit 0)', async () => {
    const f = join(dir, 'vxlan-local.yaml');
    // 198.18.255.254 (benchmarking range) is an address of no interface here
    writeFileSync(f, 'bridges: [ { name: xenbr0, vxlan: [ { name: vx200, vni: 200, local: 198.18.255.254, remotes: [198.18.255.253] } ] } ]\n');
    const r = await run('check-config', f);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: bridges\[0\]\.vxlan\[0\]: local 198\.18\.255\.254 is not an address of this host/m);
  });

  it('a request line over 1 MiB gets an error reply and the connection closes; the server keeps serving', async () => {
    const { createConnection } = await import('node:net');
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = createConnection(socket);
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (buf += d));
      sock.on('close', () => resolve(buf));
      sock.on('error', reject);
      sock.on('connect', () => sock.write('x'.repeat(1024 * 1024 + 10)));
    });
    expect(JSON.parse(reply.trim())).toMatchObject({ error: { code: -32600, data: { code: 'request_too_large' } } });
    expect((await run('show', '-j')).code).toBe(0);
  });

  it('daemon exits 2 on a bad config', async () => {
    const bad = join(dir, 'bad2.yaml');
    writeFileSync(bad, 'bridges: [ { name: xenbr0, mtu: 12 } ]\n');
    const r = await run('daemon', '--config', bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bridges\[0\]\.mtu/);
  });

  it('refuses to start a second daemon on a socket that answers', async () => {
    const cfg = join(dir, 'empty.yaml');
    writeFileSync(cfg, `control_socket: ${socket}\nbridges: []\n`);
    const r = await run('daemon', '--config', cfg);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/another daemon answers/);
  });

  it('lock set / show: the lists become arrays, --disabled excludes --mac, the human table lists every address', async () => {
    calls.length = 0;
    const r = await run('lock', 'set', 'xenbr0', 'vif1.0', '--mac', '00:16:3e:00:01:00', '--ipv4', '198.18.0.1, 198.18.1.0/24', '--ipv6', '2001:db8::1');
    expect(r.code, r.stderr).toBe(0);
    expect(calls).toEqual([{ method: 'lock.set', params: { bridge: 'xenbr0', port: 'vif1.0', mac: '00:16:3e:00:01:00', ipv4: ['198.18.0.1', '198.18.1.0/24'], ipv6: ['2001:db8::1'] } }]);
    calls.length = 0;
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0', '--disabled')).code).toBe(0);
    expect(calls).toEqual([{ method: 'lock.set', params: { bridge: 'xenbr0', port: 'vif1.0', disabled: true } }]);
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0')).code).toBe(2);
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0', '--disabled', '--mac', '00:16:3e:00:01:00')).code).toBe(2);
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0', '--disabled', '--ipv4', '198.18.0.1')).code).toBe(2);
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0', '--disabled', '--allow-ethertypes', '0x88cc')).code).toBe(2);
    calls.length = 0;
    expect((await run('lock', 'set', 'xenbr0', 'vif1.0', '--mac', '00:16:3e:00:01:00', '--allow-ethertypes', '0x88cc,0x88b5')).code).toBe(0);
    expect(calls).toEqual([{ method: 'lock.set', params: { bridge: 'xenbr0', port: 'vif1.0', mac: '00:16:3e:00:01:00', allow_ethertypes: ['0x88cc', '0x88b5'] } }]);
    expect((await run('lock', 'frob')).code).toBe(2);
    const show = await run('lock', 'show', 'xenbr0');
    expect(show.code).toBe(0);
    expect(show.stdout.split('\n').map((l) => l.trimEnd())).toEqual([
      'port            lock      mac                 ra_guard  dhcp_guard  allowed',
      'vif1.0          locked    00:16:3e:00:01:00   on        off         198.18.0.1',
      `${' '.repeat(68)}198.18.1.0/24`,
      `${' '.repeat(68)}2001:db8::1`,
      '',
    ]);
  });
});
