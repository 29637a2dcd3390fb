import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { McastSnooping } from '../../src/bridge/mcast.js';
import { defaultMcastSettings } from '../../src/mdb/config.js';
import { addressWords, formatAddressWords, mdbAdd, mdbDel, mdbShow } from '../../src/mdb/control.js';
import { recorderOf, RuntimeJournal } from '../../src/state/journal.js';
import { addFakePort, BatchBuilder } from '../support/fake-io.js';

describe('mdb control', () => {
  it('parses and formats addresses both ways', () => {
    for (const a of ['239.1.2.3', 'ff0e::1:3', 'ff02::1', '2001:db8::1', 'fe80::200:ff:fe00:1']) expect(formatAddressWords(addressWords(a)!)).toBe(a);
    expect(addressWords('239.1.2')).toBeNull();
  });

  it('mdb add / show / del: a permanent entry with and without a source', () => {
    const br = new Bridge({ name: 'xenbr0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000 });
    br.setMulticast(new McastSnooping(defaultMcastSettings(), 8));
    const batch = new BatchBuilder();
    const p = addFakePort(br, batch, 'vif1.0');
    mdbAdd(br, p.port, '239.1.2.3', 0, null);
    mdbAdd(br, p.port, '239.1.2.4', 0, '198.18.0.9');
    const show = mdbShow(br, 0);
    expect(show.entries).toEqual([
      { vlan: 0, group: '239.1.2.3', source: null, port: 'vif1.0', timer_s: 0, kind: 'permanent', mode: 'exclude' },
      { vlan: 0, group: '239.1.2.4', source: '198.18.0.9', port: 'vif1.0', timer_s: 0, kind: 'permanent', mode: 'include' },
    ]);
    expect(() => mdbAdd(br, p.port, '198.18.0.1', 0, null)).toThrow(/multicast address/);
    expect(() => mdbAdd(br, p.port, '239.1.2.3', 0, 'ff0e::1')).toThrow(/unicast/);
    mdbDel(br, p.port, '239.1.2.3', 0, null);
    expect(() => mdbDel(br, p.port, '239.1.2.3', 0, null)).toThrow(/no permanent MDB entry/);
    mdbDel(br, p.port, '239.1.2.4', 0, '198.18.0.9');
    expect(mdbShow(br, 0).entries).toEqual([]);
  });

  it('records runtime permanent entries in the journal; a del of one removes its record', () => {
    const j = new RuntimeJournal();
    const ctx = { untaggedVid: () => 10, configHasPort: () => true, configHasFdb: () => false, portQos: () => null };
    recorderOf('mdb.add')!({ bridge: 'xenbr0', port: 'vif1.0', group: '239.1.2.3' }, undefined, j, ctx);
    recorderOf('mdb.add')!({ bridge: 'xenbr0', port: 'vif1.0', group: '239.1.2.3', source: '198.18.0.9', vlan: 10 }, undefined, j, ctx);
    expect(j.list().map((r) => [r.method, r.params])).toEqual([
      ['mdb.add', { bridge: 'xenbr0', port: 'vif1.0', group: '239.1.2.3', vlan: 10 }],
      ['mdb.add', { bridge: 'xenbr0', port: 'vif1.0', group: '239.1.2.3', vlan: 10, source: '198.18.0.9' }],
    ]);
    recorderOf('mdb.del')!({ bridge: 'xenbr0', port: 'vif1.0', group: '239.1.2.3', vlan: 10 }, undefined, j, ctx);
    expect(j.size).toBe(1);
    // delif drops the port's records
    recorderOf('delif')!({ bridge: 'xenbr0', ifname: 'vif1.0' }, undefined, j, { ...ctx, configHasPort: () => false });
    expect(j.size).toBe(0);
  });
});

describe('mdb snapshot', () => {
  it('round-trips learnt members, sources, router ports; permanent entries and expired timers stay out', async () => {
    const { mdbSnapshot, restoreMdb } = await import('../../src/mdb/snapshot.js');
    const make = (): { br: Bridge; mc: McastSnooping; batch: BatchBuilder } => {
      const br = new Bridge({ name: 'xenbr0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000 });
      const mc = new McastSnooping(defaultMcastSettings(), 8);
      br.setMulticast(mc);
      const batch = new BatchBuilder();
      for (const n of ['peth0', 'vif1.0', 'vif2.0']) addFakePort(br, batch, n);
      return { br, mc, batch };
    };
    const a = make();
    const g = addressWords('239.1.2.3')!;
    const s1 = addressWords('198.18.0.1')!;
    const mdb = a.mc.mdb;
    mdb.setExclude(mdb.member(0, g, 1), 50_000);
    const m2 = mdb.member(0, g, 2);
    mdb.allowSource(m2, s1, 40_000);
    mdb.addStatic(0, addressWords('239.9.9.9')!, 1, null);
    mdb.member(0, addressWords('239.5.5.5')!, 2); // INCLUDE {} with no timer: nothing to carry
    mdb.heardRouter(0, 0, 30_000);
    const snap = JSON.parse(JSON.stringify(mdbSnapshot([a.br], 10_000)));
    const b = make();
    const r = restoreMdb(snap, new Map([['xenbr0', b.br]]), 0);
    expect(r).toEqual({ restored: 3, skipped: 0 });
    expect(mdbShow(b.br, 0).entries.map((e) => [e.port, e.group, e.source, e.mode, Math.round(e.timer_s)]).sort()).toEqual([
      ['vif1.0', '239.1.2.3', null, 'exclude', 40],
      ['vif2.0', '239.1.2.3', '198.18.0.1', 'include', 30],
    ]);
    expect(mdbShow(b.br, 0).router_ports).toEqual([{ vlan: 0, port: 'peth0', kind: 'auto', timer_s: 20 }]);
  });

  it('router rows keep their VLAN; a row of the previous format (no vlan) is restored in the untagged VLAN and the VLANs of the entries', async () => {
    const { mdbSnapshot, restoreMdb } = await import('../../src/mdb/snapshot.js');
    const make = (): { br: Bridge; mc: McastSnooping } => {
      const br = new Bridge({ name: 'xenbr0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000 });
      const mc = new McastSnooping(defaultMcastSettings(), 8);
      br.setMulticast(mc);
      const batch = new BatchBuilder();
      const up = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
      br.setPortVlan(up.port, { mode: 'trunk', vlans: [10, 20, 30], native: 10 });
      addFakePort(br, batch, 'vif1.0');
      return { br, mc };
    };
    const a = make();
    a.mc.mdb.heardRouter(0, 20, 30_000);
    const snap = JSON.parse(JSON.stringify(mdbSnapshot([a.br], 10_000)));
    expect(snap.bridges.xenbr0.routers).toEqual([{ port: 'peth0', vlan: 20, timer_ms: 20_000 }]);
    const b = make();
    expect(restoreMdb(snap, new Map([['xenbr0', b.br]]), 0)).toEqual({ restored: 1, skipped: 0 });
    expect(mdbShow(b.br, 0).router_ports.map((r) => r.vlan)).toEqual([20]);
    const old = { saved_at: Date.now(), bridges: { xenbr0: { entries: [{ vlan: 30, group: '239.1.2.3', source: null, port: 'vif1.0', mode: 'exclude', timer_ms: 9000 }], routers: [{ port: 'peth0', timer_ms: 9000 }], queriers: [] } } };
    const c = make();
    expect(restoreMdb(old, new Map([['xenbr0', c.br]]), 0)).toEqual({ restored: 2, skipped: 0 });
    expect(mdbShow(c.br, 0).router_ports.map((r) => r.vlan)).toEqual([10, 30]);
  });
});
