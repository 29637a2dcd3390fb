// Whose vxlan netdev is it (src/daemon/vxlan-owner.ts): what must match before an existing netdev is adopted, who
// holds a VNI, a `local` address the host does not have, and the record of the netdevs the daemon created.
import { describe, expect, it } from 'vitest';
import { parseConfig, type VxlanPortConfig } from '../../src/config/config.js';
import { CreatedVxlans, localAddressProblem, vniHolders, vxlanDifferences, vxlanLocalWarnings } from '../../src/daemon/vxlan-owner.js';
import type { LinkKind } from '../../src/io/native-types.js';
import { silentLogger } from '../../src/log.js';

function spec(entry: string): VxlanPortConfig {
  return parseConfig(`bridges: [ { name: xenbr0, vxlan: [ ${entry} ] } ]`).bridges[0].vxlan[0];
}

const link = (o: Partial<LinkKind>): LinkKind => ({ kind: 'vxlan', vni: 200, port: 4789, local: '', group: '', link: 0, ...o });

describe('vxlanDifferences: adopt only what matches', () => {
  it('adopts a netdev that matches the entry', () => {
    expect(vxlanDifferences(spec('{ name: vx200, vni: 200, local: 198.18.40.1, remotes: [198.18.40.2] }'), link({ local: '198.18.40.1' }), null)).toEqual([]);
    expect(vxlanDifferences(spec('{ name: vx200, vni: 200, local: "2001:db8::1", group: "ff05::1:2", dev: u0 }'),
      link({ local: '2001:db8:0:0::1', group: 'ff05::1:2', link: 7 }), 7)).toEqual([]);
  });

  it('names every attribute that differs: the issue\'s netdev on dstport 8472 with its own remote', () => {
    // ip link add X type vxlan id 200 dstport 8472 remote 198.18.40.9
    const d = vxlanDifferences(spec('{ name: X, vni: 200, local: 198.18.40.1, remotes: [198.18.40.2] }'), link({ port: 8472, group: '198.18.40.9' }), null);
    expect(d).toEqual([
      'dstport 8472 (config 4789)',
      'local none (config 198.18.40.1)',
      'its own remote 198.18.40.9 (config: remotes as FDB entries, no default remote)',
    ]);
  });

  it('compares the VNI, the group, the kind and the underlay device', () => {
    expect(vxlanDifferences(spec('{ name: X, vni: 200 }'), link({ vni: 201 }), null)).toEqual(['VNI 201 (config 200)']);
    expect(vxlanDifferences(spec('{ name: X, vni: 200, group: 239.1.1.1, dev: u0 }'), link({ group: '239.1.1.2', link: 3 }), 4)).toEqual([
      'group 239.1.1.2 (config 239.1.1.1)', 'underlay ifindex 3 (config dev u0 = ifindex 4)',
    ]);
    expect(vxlanDifferences(spec('{ name: X, vni: 200 }'), link({ kind: 'veth' }), null)).toEqual(['it is not a vxlan netdev (kind "veth")']);
  });
});

describe('vniHolders', () => {
  it('names the other netdevs with that VNI on that UDP port', () => {
    const list = [
      { ...link({ vni: 300 }), name: 'vxother' }, { ...link({ vni: 300, port: 8472 }), name: 'vxlinux' }, { ...link({ vni: 301 }), name: 'vx301' },
      { ...link({ vni: 300 }), name: 'vx300' },
    ];
    expect(vniHolders(300, 4789, list, 'vx300')).toEqual(['vxother']);
  });
});

describe('local address the host does not have', () => {
  const addrs = { u0: [{ address: '198.18.40.1', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: false, cidr: null }],
    u1: [{ address: 'fe80::1%u1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '00:00:00:00:00:00', internal: false, cidr: null, scopeid: 3 }] };
  it('warns about it, and not about an address the host has', () => {
    expect(localAddressProblem(spec('{ name: vx1, vni: 1, local: 198.18.40.1 }'), addrs)).toBeNull();
    expect(localAddressProblem(spec('{ name: vx1, vni: 1 }'), addrs)).toBeNull();
    expect(localAddressProblem(spec('{ name: vx1, vni: 1, local: 198.18.40.7 }'), addrs)).toMatch(/^local 198\.18\.40\.7 is not an address of this host/);
    const cfg = parseConfig('bridges: [ { name: xenbr0, vxlan: [ { name: vx1, vni: 1, local: 198.18.40.1 }, { name: vx2, vni: 2, local: 198.18.40.7 } ] } ]');
    expect(vxlanLocalWarnings(cfg.bridges, addrs)).toEqual([expect.stringMatching(/^bridges\[0\]\.vxlan\[1\]: local 198\.18\.40\.7 is not an address/)]);
  });
});

describe('CreatedVxlans', () => {
  it('owns a netdev by name and ifindex, and checks what it loads', () => {
    const c = new CreatedVxlans();
    c.setLogger(silentLogger());
    let changes = 0;
    c.onChange = () => changes++;
    c.created('vx200', 12, 200);
    expect(c.owns('vx200', 12)).toBe(true);
    // same name, re-made by someone else: another ifindex
    expect(c.owns('vx200', 13)).toBe(false);
    expect(c.owns('vx201', 12)).toBe(false);
    const again = new CreatedVxlans();
    again.setLogger(silentLogger());
    again.load([...c.list(), { name: 'bad/name', ifindex: 3, vni: 1 }, { name: 'vx9', ifindex: 0, vni: 1 }, null, 'x']);
    expect(again.list()).toEqual([{ name: 'vx200', ifindex: 12, vni: 200 }]);
    c.forget('vx200');
    expect(c.owns('vx200', 12)).toBe(false);
    expect(changes).toBe(2);
  });
});
