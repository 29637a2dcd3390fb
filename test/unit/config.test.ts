import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';
import { formatMac } from '../../src/frame/mac.js';

const issues = configIssues;

describe('config', () => {
  it('reads the documented example with defaults', () => {
    const cfg = parseConfig(`
control_socket: /run/tb/test.sock
bridges:
  - name: xenbr0
    uplink: { interface: peth0 }
    fdb: [ { mac: 00:16:3e:00:01:00, port: vif1.0 } ]
    ports:
      - { name: vif1.0 }
      - { name: vif2.0, kind: attach }
      - { name: vif3.0, persist: true, learning: false, flood: false, isolated: true, fdb_max: 256 }
`);
    expect(cfg.controlSocket).toBe('/run/tb/test.sock');
    const b = cfg.bridges[0];
    expect(b).toMatchObject({ name: 'xenbr0', ageingTimeS: 300, fdbMax: 8192, mtu: 1500, uplink: { interface: 'peth0' } });
    expect(b.ports[0]).toEqual({
      name: 'vif1.0', kind: 'tap', persist: false, learning: true, flood: true, isolated: false, fdbMax: 0, vlan: { mode: 'default' }, create: null,
      lock: { mode: 'unlocked' }, raGuard: false, dhcpGuard: false, allowStacked: false, qos: { rateLimit: null, egressRateLimit: null, storm: null },
    });
    expect(b.ports[1].kind).toBe('attach');
    expect(b.ports[2]).toMatchObject({ persist: true, learning: false, flood: false, isolated: true, fdbMax: 256 });
    // YAML 1.2: the unquoted MAC stays a string (YAML 1.1 would read a sexagesimal integer)
    expect(formatMac(b.fdb[0].mac)).toBe('00:16:3e:00:01:00');
    expect(b.fdb[0]).toMatchObject({ port: 'vif1.0', vlan: 0 });
  });

  it('defaults the control socket', () => {
    expect(parseConfig('bridges: []').controlSocket).toBe('/run/tapbridge/tapbridge.sock');
  });

  it('names the key path of a wrong kind', () => {
    expect(issues('bridges: [ { name: b, ports: [ { name: a }, { name: c, kind: veth } ] } ]'))
      .toEqual(['bridges[0].ports[1].kind: must be "tap", "attach", "host" or "vhost-user", got "veth"']);
  });

  it('rejects unknown keys at every level', () => {
    const out = issues(`
contrl_socket: /x
bridges:
  - name: b
    agening_time: 5
    uplink: { interface: p0, mode: x }
    ports: [ { name: a, persistent: true } ]
`);
    expect(out).toHaveLength(4);
    expect(out[0]).toMatch(/^contrl_socket: unknown key/);
    expect(out.some((l) => l.startsWith('bridges[0].agening_time: unknown key'))).toBe(true);
    expect(out.some((l) => l.startsWith('bridges[0].uplink.mode: unknown key'))).toBe(true);
    expect(out.some((l) => l.startsWith('bridges[0].ports[0].persistent: unknown key'))).toBe(true);
  });

  it('checks types and ranges', () => {
    const out = issues(`
bridges:
  - name: b
    ageing_time: 5
    fdb_max: 0
    mtu: "1500"
    ports: [ { name: a, learning: "yes", fdb_max: -1 } ]
`);
    expect(out).toEqual([
      'bridges[0].ageing_time: must be 0 (never age) or an integer 10..1000000 seconds, got number 5',
      'bridges[0].fdb_max: must be an integer 1..1000000, got number 0',
      'bridges[0].mtu: must be an integer 68..65535, got "1500"',
      'bridges[0].ports[0].learning: must be true or false, got "yes"',
      'bridges[0].ports[0].fdb_max: must be an integer 1..1000000, got number -1',
    ]);
  });

  it('requires unique interface names of at most 15 bytes across the whole file', () => {
    const out = issues(`
bridges:
  - name: a
    uplink: { interface: peth0 }
    ports: [ { name: vif1.0 }, { name: a-very-long-interface } ]
  - name: b
    ports: [ { name: vif1.0 }, { name: peth0, kind: attach } ]
`);
    expect(out).toContain('bridges[0].ports[1].name: "a-very-long-interface" is 21 bytes long; interface names are at most 15 bytes');
    expect(out).toContain('bridges[1].ports[0].name: interface "vif1.0" is already used at bridges[0].ports[0].name');
    expect(out).toContain('bridges[1].ports[1].name: interface "peth0" is already used at bridges[0].uplink.interface');
  });

  it('rejects duplicate bridge names and duplicate YAML keys', () => {
    expect(issues('bridges: [ { name: a }, { name: a } ]')).toEqual(['bridges[1].name: bridge "a" is already defined at bridges[0].name']);
    const dup = issues('bridges: []\nbridges: []\n');
    expect(dup[0]).toMatch(/^line 2, column 1: .*unique/i);
  });

  it('checks static FDB entries', () => {
    const out = issues(`
bridges:
  - name: b
    ports: [ { name: a } ]
    fdb:
      - { mac: "01:00:5e:00:00:01", port: a }
      - { mac: "00:16:3e:00:00:01", port: nope }
      - { mac: "not-a-mac", port: a }
`);
    expect(out).toEqual([
      'bridges[0].fdb[0].mac: "01:00:5e:00:00:01" is a multicast or zero address; static entries must be unicast',
      'bridges[0].fdb[1].port: "nope" is not a port or the uplink of bridge "b"',
      'bridges[0].fdb[2].mac: "not-a-mac" is not a MAC address (aa:bb:cc:dd:ee:ff)',
    ]);
  });

  it('persist is for TAPs only', () => {
    expect(issues('bridges: [ { name: b, ports: [ { name: a, kind: attach, persist: true } ] } ]'))
      .toEqual(['bridges[0].ports[0].persist: applies only to kind tap (an attached netdev is not the daemon\'s)']);
  });

  it('reports YAML syntax errors with line and column', () => {
    const out = issues('bridges:\n  - name: [unclosed\n');
    expect(out[0]).toMatch(/^line \d+, column \d+: /);
  });

  it('requires bridges and a mapping at the top', () => {
    expect(issues('control_socket: /x')).toEqual(['bridges: is required (a list of bridges)']);
    expect(issues('- a')).toEqual(['(top level): must be a mapping, got a list']);
  });

  it('reads lock, ra_guard, dhcp_guard, allow_stacked and port_defaults', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    port_defaults: { ra_guard: true, dhcp_guard: true, learning: false, fdb_max: 64 }
    ports:
      - { name: vif1.0, lock: { mac: "00:16:3e:00:01:00", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"] } }
      - { name: vif2.0, lock: disabled, ra_guard: false, learning: true }
      - { name: vif3.0, vlan: 10, allow_stacked: true }
`);
    const [p1, p2, p3] = cfg.bridges[0].ports;
    expect(p1).toMatchObject({
      lock: { mode: 'locked', mac: 0x00163e000100, ipv4: ['198.18.0.1'], ipv6: ['2001:db8::1'], allowEthertypes: [] },
      raGuard: true, dhcpGuard: true, learning: false, fdbMax: 64, allowStacked: false,
    });
    expect(p2).toMatchObject({ lock: { mode: 'disabled' }, raGuard: false, dhcpGuard: true, learning: true });
    expect(p3).toMatchObject({ lock: { mode: 'unlocked' }, allowStacked: true });
    const d = parseConfig('bridges: [ { name: b, port_defaults: { lock: disabled }, ports: [ { name: v } ] } ]').bridges[0];
    expect(d.portDefaults.lock).toEqual({ mode: 'disabled' });
    expect(d.ports[0].lock).toEqual({ mode: 'disabled' });
  });

  it('names the key path of bad lock and port_defaults values', () => {
    expect(issues(`bridges: [ { name: b, ports: [ { name: v, lock: { mac: "00:16:3e:00:01:00", ipv4: [198.18.0.300] } } ] } ]`))
      .toEqual(['bridges[0].ports[0].lock.ipv4[0]: "198.18.0.300" is not an IPv4 address or prefix']);
    expect(issues('bridges: [ { name: b, ports: [ { name: v, lock: { ipv4: [] } } ] } ]'))
      .toEqual(['bridges[0].ports[0].lock.mac: is required (the MAC the guest may send with)']);
    expect(issues('bridges: [ { name: b, ports: [ { name: v, lock: locked } ] } ]'))
      .toEqual([expect.stringMatching(/^bridges\[0\]\.ports\[0\]\.lock: must be "disabled" or a mapping/)]);
    expect(issues('bridges: [ { name: b, port_defaults: { lock: { mac: "00:16:3e:00:01:00" }, vlan: 3 } } ]')).toEqual([
      'bridges[0].port_defaults.vlan: unknown key (allowed: learning, flood, isolated, fdb_max, ra_guard, dhcp_guard, lock, rate_limit, egress_rate_limit, storm_control, multicast_router, multicast_fast_leave, mdb_max)',
      expect.stringMatching(/^bridges\[0\]\.port_defaults\.lock: port_defaults can only set lock: disabled/),
    ]);
    expect(issues('bridges: [ { name: b, ports: [ { name: v, lock: { mac: "00:16:3e:00:01:00" } }, { name: w, lock: { mac: "00:16:3e:00:01:00" } } ] } ]'))
      .toEqual(['bridges[0].ports[1].lock.mac: is already the locked MAC of bridges[0].ports[0] ("v")']);
    expect(issues('bridges: [ { name: b, ports: [ { name: v, ra_guard: 1 } ] } ]'))
      .toEqual(['bridges[0].ports[0].ra_guard: must be true or false, got number 1']);
  });
});
