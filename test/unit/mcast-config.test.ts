import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';

describe('multicast config keys', () => {
  it('defaults as the issue gives them', () => {
    const m = parseConfig('bridges: [ { name: b, ports: [ { name: v1 } ] } ]').bridges[0].multicast;
    expect({ ...m, vlans: [...m.vlans], ports: [...m.ports] }).toEqual({
      snooping: true, querier: false, queryIntervalS: 125, queryResponseIntervalMs: 10_000, lastMemberCount: 2, lastMemberIntervalMs: 1000,
      floodUnregistered: true, maxGroups: 4096, querierIpv4: 0, querierIpv6: null, permanent: [], vlans: [], ports: [],
      portDefaults: { router: 'auto', fastLeave: false, mdbMax: 0 },
    });
  });

  it('reads bridge, VLAN, port_defaults and port keys', () => {
    const m = parseConfig(`
bridges:
  - name: b
    multicast_querier: true
    multicast_querier_ipv4: 198.18.0.1
    multicast_query_interval: 60
    multicast_last_member_interval: 0.5
    multicast_flood_unregistered: false
    multicast_max_groups: 100
    multicast_vlans: [ { vlan: 10, multicast_snooping: false } ]
    port_defaults: { multicast_router: never }
    ports:
      - { name: v1 }
      - { name: v2, multicast_router: always, multicast_fast_leave: true, mdb_max: 8 }
      - { name: h, kind: host, multicast_fast_leave: true }
`).bridges[0].multicast;
    expect([m.querier, m.querierIpv4 >>> 0, m.queryIntervalS, m.lastMemberIntervalMs, m.floodUnregistered, m.maxGroups]).toEqual([true, 0xc6120001, 60, 500, false, 100]);
    expect(m.vlans.get(10)).toEqual({ snooping: false, floodUnregistered: false, querier: true });
    expect(m.portDefaults.router).toBe('never');
    expect(m.ports.get('v1')).toBeUndefined();
    expect(m.ports.get('v2')).toEqual({ router: 'always', fastLeave: true, mdbMax: 8 });
    // the host port does not take port_defaults
    expect(m.ports.get('h')).toEqual({ router: 'auto', fastLeave: true, mdbMax: 0 });
  });

  it('names the key path of each bad value', () => {
    expect(configIssues(`
bridges:
  - name: b
    multicast_snooping: yes please
    multicast_query_interval: 0
    multicast_querier_ipv6: "2001:db8::1"
    multicast_vlans: [ { vlan: 4095 }, { multicast_snooping: true } ]
    port_defaults: { multicast_router: sometimes }
    ports: [ { name: v1, mdb_max: -1 } ]
`)).toEqual([
      'bridges[0].multicast_snooping: must be true or false, got "yes please"',
      'bridges[0].multicast_query_interval: must be an integer 1..3600 seconds, got 0',
      'bridges[0].multicast_querier_ipv6: must be a link-local IPv6 address (fe80::/10; hosts ignore MLD queries from others), got "2001:db8::1"',
      'bridges[0].multicast_vlans[0].vlan: must be an integer 0..4094, got 4095',
      'bridges[0].multicast_vlans[1].vlan: is required (0..4094)',
      'bridges[0].port_defaults.multicast_router: must be one of auto, always, never, got "sometimes"',
      'bridges[0].ports[0].mdb_max: must be an integer 0..1000000 (members per port, 0 = no cap), got -1',
    ]);
  });
});

describe('mdb: permanent entries in the config', () => {
  it('resolves the VLAN from the port, checks group, source and port', () => {
    const m = parseConfig(`
bridges:
  - name: b
    mdb:
      - { group: 239.1.2.3, port: v1 }
      - { group: "ff0e::1", port: v2, vlan: 20, source: "2001:db8::9" }
    ports: [ { name: v1, vlan: 10 }, { name: v2, trunk: [20] } ]
`).bridges[0].multicast;
    expect(m.permanent).toEqual([{ group: '239.1.2.3', port: 'v1', vlan: 10, source: null }, { group: 'ff0e::1', port: 'v2', vlan: 20, source: '2001:db8::9' }]);
    expect(configIssues(`
bridges:
  - name: b
    mdb: [ { group: 198.18.0.1, port: v1 }, { group: 239.1.1.1, port: nope }, { group: 239.1.1.1, port: v1, vlan: 11, source: "2001:db8::1" } ]
    ports: [ { name: v1, vlan: 10 } ]
`)).toEqual([
      'bridges[0].mdb[0].group: must be an IPv4 or IPv6 multicast address, got "198.18.0.1"',
      'bridges[0].mdb[1].port: "nope" is not a port or the uplink of this bridge',
      'bridges[0].mdb[2].source: must be a unicast address of the group\'s family, got "2001:db8::1"',
      'bridges[0].mdb[2].vlan: port "v1" is not a member of VLAN 11',
    ]);
  });
});
