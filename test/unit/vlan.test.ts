// 802.1Q in the engine: the per-port rules table (src/bridge/vlan.ts), ingress classification and drops,
// tag push/pop/rewrite on egress (FakeIo.sent shows the wire bytes after the tx ops), per-VLAN learning and
// flooding, and `setPortVlan` at runtime.
import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { BridgePort } from '../../src/bridge/port.js';
import {
  EGRESS_AS_IS, EGRESS_NOT_MEMBER, EGRESS_TAGGED, EGRESS_UNTAGGED, MODE_ACCESS, MODE_DEFAULT, MODE_TRUNK, parseTrunkList,
  PortVlan, type VlanSpec, vlanSpecFrom,
} from '../../src/bridge/vlan.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';

const M1 = '00:16:3e:00:00:01';
const M2 = '00:16:3e:00:00:02';
const M3 = '00:16:3e:00:00:03';
const BCAST = 'ff:ff:ff:ff:ff:ff';

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');
/** A frame carrying one tag (tpid, tci) in front of `type`, padded to 60 bytes. */
const tagged = (dst: string, src: string, tci: number, type = '0800', payload = '4500', tpid = 0x8100): string =>
  eth(dst, src, hex4(tpid), hex4(tci) + type + payload);
/** The wire bytes of `frame` with a C-tag inserted after the MACs. */
const push = (frame: string, tci: number): string => frame.slice(0, 24) + '8100' + hex4(tci) + frame.slice(24);
/** The wire bytes of `frame` with its tag removed. */
const pop = (frame: string): string => frame.slice(0, 24) + frame.slice(32);
/** The wire bytes of `frame` with its tag replaced. */
const setTag = (frame: string, tci: number): string => frame.slice(0, 24) + '8100' + hex4(tci) + frame.slice(32);

const access = (vlan: number): VlanSpec => ({ mode: 'access', vlan });
const trunk = (vlans: number[] | 'all', native: number | null = null): VlanSpec => ({ mode: 'trunk', vlans, native });
const DEFAULT: VlanSpec = { mode: 'default' };

describe('PortVlan rules table', () => {
  it('default: every VID leaves tagged, the untagged network (vid 0) leaves as it came', () => {
    const v = new PortVlan(DEFAULT);
    expect(v.mode).toBe(MODE_DEFAULT);
    expect(v.pvid).toBe(0);
    expect(v.egress[0]).toBe(EGRESS_AS_IS);
    for (const vid of [1, 10, 4094]) expect(v.egress[vid]).toBe(EGRESS_TAGGED);
    expect(v.describe()).toEqual({ mode: 'trunk', vlans: 'all', native: 0 });
    expect(v.untaggedVid).toBe(0);
  });

  it('access N: member of N only, untagged on egress', () => {
    const v = new PortVlan(access(10));
    expect(v.mode).toBe(MODE_ACCESS);
    expect(v.pvid).toBe(10);
    expect(v.egress[10]).toBe(EGRESS_UNTAGGED);
    for (const vid of [0, 1, 9, 11, 20, 4094]) expect(v.egress[vid]).toBe(EGRESS_NOT_MEMBER);
    expect(v.describe()).toEqual({ mode: 'access', vlans: [10], native: 10 });
  });

  it('trunk without native: listed VIDs tagged, nothing untagged, vid 0 not a member', () => {
    const v = new PortVlan(trunk([10, 20]));
    expect(v.mode).toBe(MODE_TRUNK);
    expect(v.pvid).toBe(0);
    expect(v.egress[10]).toBe(EGRESS_TAGGED);
    expect(v.egress[20]).toBe(EGRESS_TAGGED);
    for (const vid of [0, 1, 11, 30]) expect(v.isMember(vid)).toBe(false);
    expect(v.describe()).toEqual({ mode: 'trunk', vlans: [10, 20], native: null });
  });

  it('trunk with native: the native VLAN leaves untagged, the others tagged', () => {
    const v = new PortVlan(trunk([10, 20], 10));
    expect(v.pvid).toBe(10);
    expect(v.egress[10]).toBe(EGRESS_UNTAGGED);
    expect(v.egress[20]).toBe(EGRESS_TAGGED);
    expect(v.egress[0]).toBe(EGRESS_NOT_MEMBER);
    const all = new PortVlan(trunk('all', 1));
    expect(all.egress[1]).toBe(EGRESS_UNTAGGED);
    expect(all.egress[2]).toBe(EGRESS_TAGGED);
    expect(all.egress[4094]).toBe(EGRESS_TAGGED);
    expect(all.egress[0]).toBe(EGRESS_NOT_MEMBER);
    expect(all.describe()).toEqual({ mode: 'trunk', vlans: 'all', native: 1 });
  });

  it('every rules table covers all 4096 VIDs and 4095 is never a member', () => {
    for (const spec of [DEFAULT, access(10), access(4094), trunk([10, 4094]), trunk('all'), trunk('all', 1), trunk('all', 4094)]) {
      const v = new PortVlan(spec);
      expect(v.egress.length).toBe(4096);
      expect(v.egress[4095]).toBe(EGRESS_NOT_MEMBER);
      expect(v.isMember(4095)).toBe(false);
      for (const bad of [-1, 4096, 1.5, NaN]) expect(v.isMember(bad)).toBe(false);
    }
    expect(() => new PortVlan(access(4095))).toThrow(/not a VID/);
    expect(() => new PortVlan(trunk([10], 4095))).toThrow(/not a VID/);
  });

  it('the stacked-tag check is on for tap and attach ports, off for the uplink, the bond and allow_stacked', () => {
    const flags = { learning: true, flood: true, isolated: false };
    expect(new BridgePort(0, 'vif1.0', 'tap', flags, 1500).checkStacked).toBe(true);
    expect(new BridgePort(0, 'vif1.0', 'attach', flags, 1500).checkStacked).toBe(true);
    expect(new BridgePort(0, 'vif1.0', 'tap', flags, 1500, 0, true).checkStacked).toBe(false);
    expect(new BridgePort(0, 'peth0', 'uplink', flags, 1500).checkStacked).toBe(false);
    expect(new BridgePort(0, 'bond0', 'bond', flags, 1500).checkStacked).toBe(false);
  });

  it('parses trunk lists and rejects bad ones', () => {
    expect(parseTrunkList([10, 20, '100-103'])).toEqual({ vlans: [10, 20, 100, 101, 102, 103] });
    expect(parseTrunkList('20,10, 5-6')).toEqual({ vlans: [5, 6, 10, 20] });
    expect(parseTrunkList('all')).toEqual({ vlans: 'all' });
    expect(parseTrunkList([])).toMatchObject({ error: expect.stringMatching(/empty/) });
    expect(parseTrunkList([10, '5-12'])).toMatchObject({ error: expect.stringMatching(/overlaps/) });
    expect(parseTrunkList([0])).toMatchObject({ error: expect.stringMatching(/out of range/) });
    expect(parseTrunkList([4095])).toMatchObject({ error: expect.stringMatching(/out of range/) });
    expect(parseTrunkList(['20-10'])).toMatchObject({ error: expect.stringMatching(/out of range/) });
    expect(parseTrunkList(['ten'])).toMatchObject({ error: expect.stringMatching(/not a VID/) });
  });

  it('builds specs from the config keys and names the key of each problem', () => {
    expect(vlanSpecFrom(undefined, undefined, undefined)).toEqual({ spec: DEFAULT });
    expect(vlanSpecFrom(10, undefined, undefined)).toEqual({ spec: access(10) });
    expect(vlanSpecFrom(undefined, [10, 20], 20)).toEqual({ spec: trunk([10, 20], 20) });
    const keys = (r: ReturnType<typeof vlanSpecFrom>): string[] => ('problems' in r ? r.problems.map(([k]) => k) : []);
    expect(keys(vlanSpecFrom(4095, undefined, undefined))).toEqual(['vlan']);
    expect(keys(vlanSpecFrom(10, [10], undefined))).toEqual(['vlan']);
    expect(keys(vlanSpecFrom(undefined, [10, 20], 30))).toEqual(['native_vlan']);
    expect(keys(vlanSpecFrom(undefined, [], undefined))).toEqual(['trunk']);
    expect(keys(vlanSpecFrom(10, undefined, 10))).toEqual(['native_vlan']);
    expect(keys(vlanSpecFrom(undefined, undefined, 10))).toEqual(['native_vlan']);
  });
});

describe('VLAN-aware forwarding', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  const ports: Record<string, { port: BridgePort; io: FakeIo }> = {};

  /** Adds a port with VLAN rules; names tell the mode (a10 = access 10, t = trunk, d = default). */
  const add = (name: string, spec: VlanSpec): void => {
    const p = addFakePort(br, batch, name);
    br.setPortVlan(p.port, spec);
    ports[name] = p;
  };
  const rx = (name: string, ...frames: string[]): void => {
    for (const f of frames) batch.add(f);
    br.receive(ports[name].port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };
  const sent = (name: string): string[] => ports[name].io.sent;
  const clearSent = (): void => {
    for (const p of Object.values(ports)) p.io.sent.length = 0;
  };
  const where = (vid: number, mac: string): string | null => {
    const id = br.fdb.lookup(vid, parseMac(mac)!);
    return id < 0 ? null : br.ports[id]!.name;
  };

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    batch = new BatchBuilder();
    for (const k of Object.keys(ports)) delete ports[k];
  });

  describe('ingress rules table', () => {
    // For each ingress mode and kind of frame: the internal VLAN it is learned in, or the drop counter.
    const cases: { mode: string; spec: VlanSpec; frame: string; vid?: number; drop?: string }[] = [
      { mode: 'access 10', spec: access(10), frame: 'untagged', vid: 10 },
      { mode: 'access 10', spec: access(10), frame: 'priority-tagged', vid: 10 },
      { mode: 'access 10', spec: access(10), frame: 'tagged 10', drop: 'tagged_on_access' },
      { mode: 'access 10', spec: access(10), frame: 'tagged 20', drop: 'tagged_on_access' },
      { mode: 'access 10', spec: access(10), frame: '802.1ad 20', drop: 'stacked_tag' },
      { mode: 'access 10', spec: access(10), frame: 'priority + C-tag 10', drop: 'stacked_tag' },
      { mode: 'access 10', spec: access(10), frame: 'priority + S-tag 10', drop: 'stacked_tag' },
      { mode: 'access 10', spec: access(10), frame: 'priority + 0x9100', drop: 'stacked_tag' },
      { mode: 'access 10', spec: access(10), frame: 'tagged 4095', drop: 'vlan_reserved' },
      { mode: 'access 10', spec: access(10), frame: '802.1ad 4095', drop: 'vlan_reserved' },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: 'untagged', drop: 'untagged_no_native' },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: 'priority-tagged', drop: 'untagged_no_native' },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: 'tagged 10', vid: 10 },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: 'tagged 20', vid: 20 },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: 'tagged 30', drop: 'vlan_not_member' },
      { mode: 'trunk 10,20', spec: trunk([10, 20]), frame: '802.1ad 20', drop: 'untagged_no_native' },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'untagged', vid: 20 },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'priority-tagged', vid: 20 },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'tagged 20', vid: 20 },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'tagged 30', drop: 'vlan_not_member' },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'priority + C-tag 10', drop: 'stacked_tag' },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: '802.1ad 20', drop: 'stacked_tag' },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'tagged 20 + C-tag 10', drop: 'stacked_tag' },
      { mode: 'trunk 10,20 native 20', spec: trunk([10, 20], 20), frame: 'tagged 4095', drop: 'vlan_reserved' },
      { mode: 'trunk all', spec: trunk('all'), frame: 'tagged 4095', drop: 'vlan_reserved' },
      { mode: 'trunk all native 1', spec: trunk('all', 1), frame: 'tagged 4095', drop: 'vlan_reserved' },
      { mode: 'trunk all', spec: trunk('all'), frame: 'tagged 4094', vid: 4094 },
      { mode: 'trunk all', spec: trunk('all'), frame: 'untagged', drop: 'untagged_no_native' },
      { mode: 'default', spec: DEFAULT, frame: 'untagged', vid: 0 },
      { mode: 'default', spec: DEFAULT, frame: 'priority-tagged', vid: 0 },
      { mode: 'default', spec: DEFAULT, frame: 'tagged 1', vid: 1 },
      { mode: 'default', spec: DEFAULT, frame: 'tagged 30', vid: 30 },
      { mode: 'default', spec: DEFAULT, frame: '802.1ad 20', vid: 0 },
      { mode: 'default', spec: DEFAULT, frame: 'priority + C-tag 10', vid: 0 },
      { mode: 'default', spec: DEFAULT, frame: 'tagged 20 + C-tag 10', vid: 20 },
      { mode: 'default', spec: DEFAULT, frame: 'tagged 4095', drop: 'vlan_reserved' },
      { mode: 'default', spec: DEFAULT, frame: 'tagged 4095 PCP 7', drop: 'vlan_reserved' },
      { mode: 'default', spec: DEFAULT, frame: '802.1ad 4095', drop: 'vlan_reserved' },
      { mode: 'default', spec: DEFAULT, frame: 'priority + C-tag 4095', vid: 0 },
    ];
    const frames: Record<string, string> = {
      untagged: eth(BCAST, M1),
      'priority-tagged': tagged(BCAST, M1, 0xa000),
      'tagged 1': tagged(BCAST, M1, 1),
      'tagged 10': tagged(BCAST, M1, 10),
      'tagged 20': tagged(BCAST, M1, 20),
      'tagged 30': tagged(BCAST, M1, 30),
      'tagged 4094': tagged(BCAST, M1, 4094),
      '802.1ad 20': tagged(BCAST, M1, 20, '0800', '4500', 0x88a8),
      'priority + C-tag 10': tagged(BCAST, M1, 0, '8100', '000a0800'),
      'priority + S-tag 10': tagged(BCAST, M1, 0x2000, '88a8', '000a0800'),
      'priority + 0x9100': tagged(BCAST, M1, 0, '9100', '000a0800'),
      'tagged 20 + C-tag 10': tagged(BCAST, M1, 20, '8100', '000a0800'),
      'priority + C-tag 4095': tagged(BCAST, M1, 0, '8100', '0fff0800'),
      'tagged 4095': tagged(BCAST, M1, 4095),
      'tagged 4095 PCP 7': tagged(BCAST, M1, 0xefff),
      '802.1ad 4095': tagged(BCAST, M1, 4095, '0800', '4500', 0x88a8),
    };

    it.each(cases)('$mode, $frame frame -> vid $vid / drop $drop', ({ spec, frame, vid, drop }) => {
      add('in', spec);
      add('out', DEFAULT);
      rx('in', frames[frame]);
      const d = ports.in.port.drops();
      const none = { tagged_on_access: 0, vlan_not_member: 0, untagged_no_native: 0, vlan_reserved: 0, stacked_tag: 0 };
      const vlanDrops = {
        tagged_on_access: d.tagged_on_access, vlan_not_member: d.vlan_not_member, untagged_no_native: d.untagged_no_native,
        vlan_reserved: d.vlan_reserved, stacked_tag: d.stacked_tag,
      };
      if (drop !== undefined) {
        expect(vlanDrops).toEqual({ ...none, [drop]: 1 });
        expect(br.fdb.size).toBe(0);
        expect(sent('out')).toEqual([]);
      } else {
        expect(vlanDrops).toEqual(none);
        expect(where(vid!, M1)).toBe('in');
        expect(br.fdb.size).toBe(1);
        expect(sent('out')).toHaveLength(1);
      }
    });
  });

  describe('egress tag operations', () => {
    beforeEach(() => {
      add('a10', access(10));
      add('a20', access(20));
      add('t', trunk([10, 20]));
      add('t2', trunk([10, 20]));
      add('n10', trunk([10, 20], 10));
      add('d', DEFAULT);
    });

    it('access -> trunk pushes a tag with PCP 0; access -> access of the same VLAN stays untagged', () => {
      const f = eth(BCAST, M1, '0806', '0001');
      rx('a10', f);
      expect(sent('t')).toEqual([push(f, 10)]);
      expect(sent('t2')).toEqual([push(f, 10)]);
      expect(sent('d')).toEqual([push(f, 10)]);
      expect(sent('n10')).toEqual([f]); // native VLAN leaves untagged
      expect(sent('a20')).toEqual([]);
    });

    it('trunk -> access pops the tag; trunk -> trunk of the same VID leaves the frame untouched, PCP and DEI kept', () => {
      const f = tagged(BCAST, M2, 0xb014, '0800'); // PCP 5, DEI 1, VID 20
      rx('t', f);
      expect(sent('a20')).toEqual([pop(f)]);
      expect(sent('t2')).toEqual([f]);
      expect(sent('n10')).toEqual([f]);
      expect(sent('d')).toEqual([f]);
      expect(sent('a10')).toEqual([]);
      // the tx op is NONE: nothing rewritten
      expect(ports.t2.io.tx[2]).toBe(0);
    });

    it('trunk -> trunk whose native VLAN it is pops the tag', () => {
      const f = tagged(BCAST, M2, 0x600a);
      rx('t', f);
      expect(sent('n10')).toEqual([pop(f)]);
    });

    it('a priority-tagged frame on an access port leaves a trunk with its PCP kept and the VID rewritten (SET_TAG)', () => {
      const f = tagged(BCAST, M1, 0x6000); // PCP 3, VID 0
      rx('a10', f);
      expect(sent('t')).toEqual([setTag(f, 0x600a)]);
      expect(ports.t.io.tx[2]).toBe(3); // TX_OP_SET_TAG
      expect(sent('d')).toEqual([setTag(f, 0x600a)]);
      // leaving untagged: the priority tag goes
      expect(sent('n10')).toEqual([pop(f)]);
      const dei = tagged(BCAST, M1, 0xf000); // PCP 7, DEI 1
      rx('a10', dei);
      expect(sent('t')[1]).toBe(setTag(dei, 0xf00a));
    });

    it('untagged ingress on a native trunk leaves other trunks tagged with PCP 0', () => {
      const f = eth(BCAST, M3);
      rx('n10', f);
      expect(sent('t')).toEqual([push(f, 10)]);
      expect(sent('a10')).toEqual([f]);
      expect(sent('a20')).toEqual([]);
      expect(where(10, M3)).toBe('n10');
    });

    it('default ports are transparent: untagged, priority-tagged and tagged frames pass unchanged', () => {
      add('d2', DEFAULT);
      const frames = [eth(BCAST, M1), tagged(BCAST, M1, 0x6000), tagged(BCAST, M1, 1), tagged(BCAST, M1, 0xa00a), tagged(BCAST, M1, 30)];
      rx('d', ...frames);
      expect(sent('d2')).toEqual(frames);
      for (let i = 0; i < frames.length; i++) expect(ports.d2.io.tx[4 * i + 2]).toBe(0);
      // the untagged network of default ports (vid 0) reaches no access port and no trunk
      expect(sent('a10')).toEqual([pop(frames[3])]);
      expect(sent('a20')).toEqual([]);
      expect(sent('t')).toEqual([frames[3]]); // only VID 10 of those is in the trunk
    });

    it('a default port to a trunk and back: tags kept as they are', () => {
      const f = tagged(BCAST, M1, 0x4014); // PCP 2, VID 20
      rx('d', f);
      expect(sent('t')).toEqual([f]);
      expect(sent('a20')).toEqual([pop(f)]);
      clearSent();
      const g = tagged(BCAST, M2, 0x2014);
      rx('t', g);
      expect(sent('d')).toEqual([g]);
    });

    it('an access port drops an 802.1ad frame (stacked_tag); with allow_stacked it is untagged traffic and gets a C-tag pushed in front', () => {
      const s = tagged(BCAST, M1, 20, '0800', '4500', 0x88a8);
      rx('a10', s);
      expect(ports.a10.port.drops().stacked_tag).toBe(1);
      expect(sent('t')).toEqual([]);
      expect(sent('n10')).toEqual([]);
      ports.a10.port.checkStacked = false; // allow_stacked: true
      rx('a10', s);
      expect(ports.a10.port.drops().tagged_on_access).toBe(0);
      expect(sent('t')).toEqual([push(s, 10)]);
      expect(sent('a20')).toEqual([]);
      expect(sent('n10')).toEqual([s]);
      clearSent();
      // on a default port it is part of the untagged network and passes as it is
      rx('d', s);
      expect(sent('t')).toEqual([]);
      expect(sent('a10')).toEqual([]);
    });

    it('a C-tag inside an S-tag is not looked at (no QinQ): the uplink carries it in its native VLAN', () => {
      const qinq = tagged(BCAST, M1, 100, '8100', '00140800', 0x88a8); // S-tag 100, C-tag 20
      rx('t', qinq);
      expect(ports.t.port.drops().untagged_no_native).toBe(1);
      rx('n10', qinq);
      expect(ports.n10.port.drops().stacked_tag).toBe(1); // a guest's trunk: the double-tag defence
      expect(sent('a10')).toEqual([]);
      ports.n10.port.checkStacked = false; // as on the uplink (QinQ from the physical network)
      rx('n10', qinq);
      expect(sent('a10')).toEqual([qinq]); // native VLAN 10, untouched
      expect(sent('a20')).toEqual([]);
    });

    it('the MTU check ignores the tag', () => {
      ports.a10.port.mtu = 100;
      const f = tagged(BCAST, M2, 10, '0800', '00'.repeat(100)); // 14 + 4 + 100 bytes
      rx('t', f);
      expect(sent('a10')).toEqual([pop(f)]);
      expect(ports.a10.port.drops().oversize).toBe(0);
    });
  });

  describe('learning and flooding per VLAN', () => {
    beforeEach(() => {
      add('a10', access(10));
      add('b10', access(10));
      add('a20', access(20));
      add('t', trunk([10, 20]));
    });

    it('broadcast and unknown unicast are flooded inside their VLAN only', () => {
      rx('a10', eth(BCAST, M1), eth(M3, M1));
      expect(sent('b10')).toEqual([eth(BCAST, M1), eth(M3, M1)]);
      expect(sent('t')).toEqual([push(eth(BCAST, M1), 10), push(eth(M3, M1), 10)]);
      expect(sent('a20')).toEqual([]);
      rx('t', tagged(BCAST, M2, 20));
      expect(sent('a20')).toEqual([pop(tagged(BCAST, M2, 20))]);
      expect(sent('a10')).toEqual([]);
      expect(sent('b10')).toHaveLength(2);
    });

    it('the same MAC in two VLANs has two entries, and unicast to it goes by VLAN', () => {
      rx('a10', eth(BCAST, M1));
      rx('a20', eth(BCAST, M1));
      expect(where(10, M1)).toBe('a10');
      expect(where(20, M1)).toBe('a20');
      expect(where(0, M1)).toBeNull();
      expect(br.fdb.size).toBe(2);
      expect(br.fdb.counters.moved).toBe(0);
      clearSent();
      rx('t', tagged(M1, M2, 20), tagged(M1, M2, 10));
      expect(sent('a20')).toEqual([pop(tagged(M1, M2, 20))]);
      expect(sent('a10')).toEqual([pop(tagged(M1, M2, 10))]);
      expect(sent('b10')).toEqual([]); // known unicast: no flood
      expect(where(10, M2)).toBe('t');
      expect(where(20, M2)).toBe('t');
    });

    it('a MAC known in another VLAN only is unknown here: flooded within this VLAN', () => {
      rx('a20', eth(BCAST, M1));
      clearSent();
      rx('t', tagged(M1, M2, 10));
      expect(sent('a20')).toEqual([]);
      expect(sent('a10')).toEqual([pop(tagged(M1, M2, 10))]);
      expect(sent('b10')).toEqual([pop(tagged(M1, M2, 10))]);
      expect(br.counters.flooded).toBe(1);
    });

    it('an FDB entry pointing at a port outside the frame VLAN is not used', () => {
      // a static entry in VLAN 20 for a port that is only in VLAN 10 (e.g. left over) must not leak the frame
      br.fdb.addStatic(20, parseMac(M1)!, ports.a10.port.id, 0);
      rx('t', tagged(M1, M2, 20));
      expect(sent('a10')).toEqual([]);
    });
  });

  describe('setPortVlan at runtime', () => {
    beforeEach(() => {
      add('p', access(10));
      add('a10', access(10));
      add('a20', access(20));
      add('t', trunk([10, 20]));
    });

    it('moving an access port from 10 to 20 flushes its VLAN 10 entries and changes who it reaches', () => {
      rx('p', eth(BCAST, M1));
      expect(where(10, M1)).toBe('p');
      expect(sent('a10')).toHaveLength(1);
      const flushed = br.setPortVlan(ports.p.port, access(20));
      expect(flushed).toBe(1);
      expect(where(10, M1)).toBeNull();
      clearSent();
      rx('p', eth(BCAST, M1));
      expect(where(20, M1)).toBe('p');
      expect(sent('a20')).toEqual([eth(BCAST, M1)]);
      expect(sent('a10')).toEqual([]);
      expect(sent('t')).toEqual([push(eth(BCAST, M1), 20)]);
      // and VLAN 10 traffic no longer reaches it
      rx('a10', eth(BCAST, M2));
      expect(sent('p')).toEqual([]);
    });

    it('shrinking a trunk flushes only the entries of the VLANs it left (static ones too); entries of other ports stay', () => {
      rx('t', tagged(BCAST, M2, 10), tagged(BCAST, M2, 20));
      rx('a10', eth(BCAST, M1));
      br.fdb.addStatic(10, parseMac(M3)!, ports.t.port.id, 0);
      expect(br.fdb.size).toBe(4);
      const flushed = br.setPortVlan(ports.t.port, trunk([20]));
      expect(flushed).toBe(2);
      expect(where(10, M2)).toBeNull();
      expect(where(10, M3)).toBeNull();
      expect(where(20, M2)).toBe('t');
      expect(where(10, M1)).toBe('a10');
      clearSent();
      rx('t', tagged(BCAST, M2, 10));
      expect(ports.t.port.drops().vlan_not_member).toBe(1);
      expect(sent('a10')).toEqual([]);
    });

    it('access -> native trunk of the same VLAN keeps its entries', () => {
      rx('p', eth(BCAST, M1));
      expect(br.setPortVlan(ports.p.port, trunk([10, 20], 10))).toBe(0);
      expect(where(10, M1)).toBe('p');
      expect(br.setPortVlan(ports.p.port, DEFAULT)).toBe(0); // default carries every VLAN
      expect(br.setPortVlan(ports.p.port, access(20))).toBe(1);
    });
  });
});
