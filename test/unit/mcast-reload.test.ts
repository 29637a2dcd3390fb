import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { parseConfig } from '../../src/config/config.js';
import { multicastFor } from '../../src/mdb/config.js';
import { addressWords } from '../../src/mdb/address.js';
import { applyMulticastSettings } from '../../src/mdb/reload.js';
import { mdbShow } from '../../src/mdb/control.js';
import { diffConfig } from '../../src/state/reload.js';
import { addFakePort, BatchBuilder } from '../support/fake-io.js';

const base = `
bridges:
  - name: xenbr0
    multicast_querier: true
    multicast_querier_ipv4: 198.18.0.100
    uplink: { interface: peth0, trunk: [10, 20] }
    mdb: [ { group: 239.9.9.9, port: vif1.0, vlan: 10 } ]
    ports:
      - { name: vif1.0, vlan: 10 }
      - { name: vif2.0, vlan: 20, multicast_fast_leave: true }
`;

const G = addressWords('239.1.2.3')!;

describe('reload of multicast keys', () => {
  it('dry-run: every multicast key is a `~` change in place, never a re-creation', () => {
    const a = parseConfig(base);
    const next = base
      .replace('multicast_querier: true', 'multicast_querier: true\n    multicast_query_interval: 60\n    multicast_vlans: [ { vlan: 20, multicast_snooping: false } ]\n    port_defaults: { multicast_router: never }')
      .replace('{ name: vif1.0, vlan: 10 }', '{ name: vif1.0, vlan: 10, multicast_router: always, mdb_max: 8 }')
      .replace('mdb: [ { group: 239.9.9.9, port: vif1.0, vlan: 10 } ]', 'mdb: []');
    const plan = diffConfig(a, parseConfig(next));
    expect(plan.map((c) => c.line)).toEqual([
      '~ bridge xenbr0 multicast_query_interval default -> 60',
      '~ bridge xenbr0 multicast_vlans default -> [{"vlan":20,"multicast_snooping":false}]',
      '~ bridge xenbr0 mdb [{"group":"239.9.9.9","port":"vif1.0","vlan":10}] -> []',
      '~ bridge xenbr0 port_defaults.multicast_router default -> never',
      '~ port xenbr0/vif1.0 multicast_router default -> always',
      '~ port xenbr0/vif1.0 mdb_max default -> 8',
    ]);
    expect(new Set(plan.map((c) => c.action.do))).toEqual(new Set(['multicast']));
    // port_defaults' other keys still re-create the bridge
    const other = parseConfig(base.replace('multicast_querier: true', 'multicast_querier: true\n    port_defaults: { isolated: true }'));
    expect(diffConfig(a, other).map((c) => c.line)).toEqual(['~ bridge xenbr0 options of later features (re-created)']);
  });

  const make = (): { br: Bridge; vids: number[] } => {
    const cfg = parseConfig(base).bridges[0];
    const br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 64, ageingTimeMs: 300_000 });
    const batch = new BatchBuilder();
    br.setMulticast(multicastFor('xenbr0', cfg.multicast, 16, () => batch.slab));
    const up = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
    br.setPortVlan(up.port, { mode: 'trunk', vlans: [10, 20], native: null });
    for (const [n, vid] of [['vif1.0', 10], ['vif2.0', 20]] as const) {
      const p = addFakePort(br, batch, n);
      br.setPortVlan(p.port, { mode: 'access', vlan: vid });
      br.mcast!.applyPort(p.port);
    }
    const mdb = br.mcast!.mdb;
    mdb.setExclude(mdb.member(10, G, 1), 100_000);
    mdb.setExclude(mdb.member(20, G, 2), 100_000);
    mdb.heardRouter(0, 10, 50_000);
    mdb.heardRouter(0, 20, 50_000);
    br.mcast!.querier!.heardQuery(10, 4, addressWords('198.18.0.1')!, 0);
    return { br, vids: [] };
  };
  const rows = (br: Bridge): string[] => mdbShow(br, 1000).entries.map((e) => `${e.vlan} ${e.group} ${e.port} ${e.kind}`).sort();

  it('in place: a VLAN whose snooping goes off loses its entries and router timers; the rest, the querier election and the MDB object stay', () => {
    const { br } = make();
    const mc = br.mcast!;
    const q = mc.querier!;
    const next = parseConfig(base.replace('multicast_querier: true', 'multicast_querier: true\n    multicast_query_interval: 60\n    multicast_vlans: [ { vlan: 20, multicast_snooping: false } ]')
      .replace('mdb: [ { group: 239.9.9.9, port: vif1.0, vlan: 10 } ]', 'mdb: [ { group: 239.8.8.8, port: vif1.0, vlan: 10 } ]')
      .replace('{ name: vif2.0, vlan: 20, multicast_fast_leave: true }', '{ name: vif2.0, vlan: 20, multicast_router: always }')).bridges[0];
    applyMulticastSettings(br, next.multicast, 16, () => new Uint8Array(4096), 1000);
    expect(br.mcast).toBe(mc);
    expect(mc.querier).toBe(q);
    expect(mc.membershipIntervalMs).toBe(2 * 60_000 + 10_000);
    expect(rows(br)).toEqual(['10 239.1.2.3 vif1.0 temp', '10 239.8.8.8 vif1.0 permanent']);
    expect(mdbShow(br, 1000).router_ports.map((r) => [r.vlan, r.port, r.kind])).toEqual([[null, 'vif2.0', 'always'], [10, 'peth0', 'auto']]);
    expect(mdbShow(br, 1000).querier.vlans.map((v) => [v.vlan, v.ipv4.querier])).toEqual([[10, 'other']]);
    expect(mc.portStats(br.portByName('vif2.0')!, 1000).fast_leave).toBe(false);
  });

  it('multicast_max_groups: a new MDB of the new size with the learnt state carried over; snooping off everywhere drops the step', () => {
    const { br } = make();
    const mc = br.mcast!;
    const next = parseConfig(base.replace('multicast_querier: true', 'multicast_querier: true\n    multicast_max_groups: 100')).bridges[0];
    applyMulticastSettings(br, next.multicast, 16, () => new Uint8Array(4096), 1000);
    expect(br.mcast).not.toBe(mc);
    expect(br.mcast!.mdb.maxGroups).toBe(100);
    expect(rows(br)).toEqual(['10 239.1.2.3 vif1.0 temp', '10 239.9.9.9 vif1.0 permanent', '20 239.1.2.3 vif2.0 temp']);
    expect(mdbShow(br, 1000).router_ports.map((r) => r.vlan)).toEqual([10, 20]);
    const off = parseConfig(base.replace('multicast_querier: true', 'multicast_snooping: false')).bridges[0];
    applyMulticastSettings(br, off.multicast, 16, () => new Uint8Array(4096), 1000);
    expect(br.mcast).toBeNull();
  });
});
