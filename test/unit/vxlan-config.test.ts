import { describe, expect, it } from 'vitest';
import { parseConfig, parseVxlanPort } from '../../src/config/config.js';
import { checkMtu, canonicalAddr, findUnderlay, vxlanMtuWarnings, vxlanOverhead } from '../../src/daemon/vxlan.js';
import { formatVxlanShow } from '../../src/cli/format.js';
import { diffConfig } from '../../src/state/reload.js';
import { configIssues } from '../support/config-issues.js';

const bridge = (vxlan: string): string => `bridges: [ { name: xenbr0, ports: [ { name: vif1.0 } ], vxlan: ${vxlan} } ]`;

describe('vxlan config', () => {
  it('reads the issue example with defaults', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    vxlan:
      - { name: vx10010, vni: 10010, vlan: 10, local: 198.18.20.1, remotes: [198.18.20.2, 198.18.20.3] }
      - { name: vx10020, vni: 10020, vlan: 20, local: 198.18.20.1, group: 239.1.1.20, dev: underlay0 }
      - { name: vx30, vni: 30, local: "2001:db8::1", remotes: ["2001:db8::2"], port: 8472, ttl: 8, tos: 1, kernel_learning: false,
          persist: true, learning: false, flood: false, isolated: true, fdb_max: 100 }
`);
    const [a, b, c] = cfg.bridges[0].vxlan;
    expect(a).toEqual({
      name: 'vx10010', vni: 10010, local: '198.18.20.1', remotes: ['198.18.20.2', '198.18.20.3'], group: null, dev: null, port: 4789,
      ttl: null, tos: null, kernelLearning: true, vlan: { mode: 'access', vlan: 10 }, persist: false, learning: true, flood: true,
      isolated: false, fdbMax: 0, qos: { rateLimit: null, egressRateLimit: null, storm: null },
    });
    expect(b).toMatchObject({ group: '239.1.1.20', dev: 'underlay0', remotes: [] });
    expect(c).toMatchObject({ port: 8472, ttl: 8, tos: 1, kernelLearning: false, persist: true, learning: false, flood: false, isolated: true, fdbMax: 100, vlan: { mode: 'default' } });
  });

  it('names the key path of every problem', () => {
    expect(configIssues(bridge('[ { name: vx1 } ]'))).toEqual(['bridges[0].vxlan[0].vni: is required (1..16777215)']);
    expect(configIssues(bridge('[ { name: vx1, vni: 16777216 } ]'))).toEqual(['bridges[0].vxlan[0].vni: must be an integer 1..16777215, got number 16777216']);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, remotes: [198.18.0.300, 239.1.1.1, 198.18.0.2, 198.18.0.2] } ]'))).toEqual([
      'bridges[0].vxlan[0].remotes[0]: must be an IPv4 or IPv6 address (no zone), got "198.18.0.300"',
      'bridges[0].vxlan[0].remotes[1]: "239.1.1.1" is a multicast address',
      'bridges[0].vxlan[0].remotes[3]: "198.18.0.2" is listed twice',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, group: 198.18.0.1 } ]'))).toEqual([
      'bridges[0].vxlan[0].group: must be a multicast IPv4 or IPv6 address, got "198.18.0.1"',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, group: 239.1.1.1 } ]'))).toEqual([
      'bridges[0].vxlan[0].dev: is required with `group` (the underlay device that joins the multicast group)',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, group: 239.1.1.1, dev: u0, remotes: [198.18.0.2] } ]'))).toEqual([
      'bridges[0].vxlan[0].group: a vxlan port has either `remotes` (head-end replication) or `group` (multicast), not both',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, local: 198.18.0.1, remotes: ["2001:db8::2"] } ]'))).toEqual([
      'bridges[0].vxlan[0]: `local`, `remotes` and `group` must all be IPv4 or all IPv6',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, remotes: ["2001:db8::2"] } ]'))).toEqual([
      'bridges[0].vxlan[0].local: is required for an IPv6 underlay',
    ]);
    expect(configIssues(bridge('[ { name: vx1, vni: 1, port: 0, ttl: 0, colour: red } ]'))).toEqual([
      expect.stringMatching(/^bridges\[0\]\.vxlan\[0\]\.colour: unknown key/),
      'bridges[0].vxlan[0].port: must be an integer 1..65535, got number 0',
      'bridges[0].vxlan[0].ttl: must be an integer 1..255, got number 0',
    ]);
  });

  it('interface names are unique across ports and vxlan ports; (local, port, vni) once per file', () => {
    expect(configIssues(bridge('[ { name: vif1.0, vni: 1 } ]'))).toEqual(['bridges[0].vxlan[0].name: interface "vif1.0" is already used at bridges[0].ports[0].name']);
    expect(configIssues(bridge('[ { name: vx1, vni: 5 }, { name: vx2, vni: 5 } ]'))).toEqual(['bridges[0].vxlan[1].vni: VNI 5 on port 4789 is already used at bridges[0].vxlan[0]']);
    expect(() => parseConfig(bridge('[ { name: vx1, vni: 5 }, { name: vx2, vni: 5, port: 8472 } ]'))).not.toThrow();
  });

  it('a static FDB entry may name a vxlan port, in its VLAN', () => {
    const cfg = parseConfig(`bridges: [ { name: b, vxlan: [ { name: vx1, vni: 1, vlan: 10 } ], fdb: [ { mac: "02:00:00:00:00:01", port: vx1 } ] } ]`);
    expect(cfg.bridges[0].fdb[0]).toMatchObject({ port: 'vx1', vlan: 10 });
  });

  it('vxlan add checks its parameters with the same rules and messages', () => {
    const ok = parseVxlanPort({ name: 'vx9', vni: 9, remotes: ['198.18.0.2'] }, () => null);
    expect(ok).toMatchObject({ port: { name: 'vx9', vni: 9, port: 4789, remotes: ['198.18.0.2'] } });
    expect(parseVxlanPort({ name: 'vx9', vni: 0 }, () => null)).toEqual({ issues: [{ path: 'vxlan.vni', message: 'must be an integer 1..16777215, got number 0' }] });
    expect(parseVxlanPort({ name: 'vif1.0', vni: 3 }, (n) => (n === 'vif1.0' ? 'a port of xenbr0' : null)))
      .toEqual({ issues: [{ path: 'vxlan.name', message: 'interface "vif1.0" is already used by a port of xenbr0' }] });
  });
});

describe('vxlan MTU', () => {
  const spec = (extra: string): ReturnType<typeof parseConfig>['bridges'][number]['vxlan'][number] =>
    parseConfig(bridge(`[ { name: vx1, vni: 1, ${extra} } ]`)).bridges[0].vxlan[0];

  it('50 bytes over IPv4, 70 over IPv6, +4 for an inner tag (default and trunk ports)', () => {
    expect(vxlanOverhead(spec('vlan: 10, local: 198.18.0.1'))).toBe(50);
    expect(vxlanOverhead(spec('local: 198.18.0.1'))).toBe(54);
    expect(vxlanOverhead(spec('trunk: [10, 20], local: 198.18.0.1'))).toBe(54);
    expect(vxlanOverhead(spec('vlan: 10, local: "2001:db8::1"'))).toBe(70);
    expect(vxlanOverhead(spec('local: "2001:db8::1"'))).toBe(74);
  });

  it('fits, or lowers the vxlan MTU so overlay frames never fragment, with a message naming the numbers', () => {
    const s = spec('vlan: 10, local: 198.18.0.1');
    expect(checkMtu(s, 1500, { dev: 'u0', mtu: 1550 })).toEqual({ mtu: 1500, neededUnderlayMtu: 1550, problem: null });
    expect(checkMtu(s, 1500, null).problem).toBeNull();
    const short = checkMtu(s, 1500, { dev: 'u0', mtu: 1500 });
    expect(short.mtu).toBe(1450);
    expect(short.problem).toBe('underlay u0 has MTU 1500, overlay frames of bridge MTU 1500 need 1550 (50 bytes of VXLAN over IPv4); frames above 1450 bytes are dropped at vx1');
    expect(checkMtu(spec('local: 198.18.0.1'), 1500, { dev: 'u0', mtu: 1550 }).mtu).toBe(1496);
    expect(checkMtu(s, 1500, { dev: 'u0', mtu: 100 }).mtu).toBe(68);
  });

  it('check-config warns only where the underlay is known', () => {
    const cfg = parseConfig(bridge('[ { name: vx1, vni: 1, vlan: 10, group: 239.1.1.1, dev: u0 }, { name: vx2, vni: 2, dev: gone0 } ]'));
    const lookup = (n: string) => (n === 'u0' ? { ifindex: 3, flags: 1, mtu: 1500, mac: '02:00:00:00:00:01', txqueuelen: 1000 } : null);
    expect(vxlanMtuWarnings(cfg.bridges, lookup)).toEqual([
      'bridges[0].vxlan[0]: underlay u0 has MTU 1500, overlay frames of bridge MTU 1500 need 1550 (50 bytes of VXLAN over IPv4); frames above 1450 bytes are dropped at vx1',
    ]);
    expect(findUnderlay(cfg.bridges[0].vxlan[1], lookup)).toBeNull();
  });

  it('IPv6 addresses compare in one canonical form', () => {
    expect(canonicalAddr('2001:0db8:0:0::0001')).toBe('2001:db8::1');
    expect(canonicalAddr('198.18.0.1')).toBe('198.18.0.1');
  });

  it('vxlan show marks a port whose underlay is too small', () => {
    const text = formatVxlanShow([{
      name: 'vx1', vni: 1, local: '198.18.0.1', remotes: ['198.18.0.2', '198.18.0.3'], group: null, dev: null, port: 4789, vlan: 10,
      vlan_mode: 'access', state: 'up', ifindex: 4, mtu: 1450, underlay: 'u0', underlay_mtu: 1500, mtu_short: true, kernel_learning: true, persist: false,
    }]);
    expect(text).toMatch(/^vx1 +1 +198\.18\.0\.1 +10 +up +1450! +198\.18\.0\.2 198\.18\.0\.3$/m);
    expect(text).toMatch(/underlay u0 MTU 1500 cannot carry full-size overlay frames/);
  });
});

describe('vxlan reload plan', () => {
  const cfg = (vxlan: string) => parseConfig(bridge(vxlan));
  const lines = (a: string, b: string): string[] => diffConfig(cfg(a), cfg(b)).map((c) => c.line);

  it('remotes, vlan and port flags change in place; the netdev settings re-create the port; entries come and go', () => {
    const base = '{ name: vx1, vni: 1, vlan: 10, local: 198.18.0.1, remotes: [198.18.0.2, 198.18.0.3] }';
    expect(lines(`[ ${base} ]`, `[ ${base} ]`)).toEqual([]);
    expect(lines(`[ ${base} ]`, '[ { name: vx1, vni: 1, vlan: 20, local: 198.18.0.1, remotes: [198.18.0.3, 198.18.0.4], flood: false } ]')).toEqual([
      '~ vxlan xenbr0/vx1 remotes +198.18.0.4 -198.18.0.2',
      '~ vxlan xenbr0/vx1 vlan 10 -> 20',
      '~ vxlan xenbr0/vx1 flood true -> false',
    ]);
    expect(lines(`[ ${base} ]`, '[ { name: vx1, vni: 2, vlan: 10, local: 198.18.0.1, remotes: [198.18.0.2, 198.18.0.3], ttl: 5 } ]')).toEqual([
      '~ vxlan xenbr0/vx1 vni 1 -> 2, ttl null -> 5 (re-created)',
    ]);
    expect(lines(`[ ${base} ]`, '[ { name: vx2, vni: 2 } ]')).toEqual(['- vxlan xenbr0/vx1', '+ vxlan xenbr0/vx2 (vni 2, default)']);
    const plan = diffConfig(cfg(`[ ${base} ]`), cfg('[ { name: vx1, vni: 9 } ]'));
    expect(plan.map((c) => c.targets)).toEqual([['port:xenbr0/vx1']]);
  });
});
