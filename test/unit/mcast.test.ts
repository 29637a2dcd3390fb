import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { McastSnooping } from '../../src/bridge/mcast.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { classifyIpv4, MC_QUERY, McastPacket, REC_ALLOW, REC_BLOCK, REC_IS_EX, REC_IS_IN, REC_TO_EX, REC_TO_IN } from '../../src/frame/igmp.js';
import { classifyIpv6 } from '../../src/frame/mld.js';
import { defaultMcastSettings, mcastSettingsFrom } from '../../src/mdb/config.js';
import type { McastSettings } from '../../src/bridge/mcast.js';
import { addFakePort, BatchBuilder, type FakeIo } from '../support/fake-io.js';
import { traceFrame } from '../../src/observe/trace.js';
import {
  igmpLeave, igmpQuery, tagged, igmpV1Report, igmpV2Report, igmpV3Report, ipv4Frame, mldDone, mldQuery, mldV1Report, mldV2Report, udpTo,
} from '../support/mcast-frames.js';

const S1 = '198.18.5.1';
const S2 = '198.18.5.2';
const GROUP = '239.1.2.3';

describe('step "multicast" (IGMP/MLD snooping)', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let p: { port: BridgePort; io: FakeIo }[];
  let mc: McastSnooping;

  const rx = (i: number, ...frames: Buffer[]): void => {
    for (const f of frames) batch.add(f);
    br.receive(p[i].port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };
  /** frames each port has been sent since the last call */
  const got = (): number[] => p.map((x) => {
    const n = x.io.sent.length;
    x.io.sent.length = 0;
    return n;
  });
  const setup = (s: McastSettings = defaultMcastSettings()): void => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    mc = new McastSnooping(s, 16);
    br.setMulticast(mc);
    batch = new BatchBuilder();
    // 0 uplink (router side), 1..3 guests, 4 sender guest
    p = [['peth0', 'uplink'], ['vif1.0', 'tap'], ['vif2.0', 'tap'], ['vif3.0', 'tap'], ['vif4.0', 'tap']]
      .map(([n, kind]) => addFakePort(br, batch, n, { kind: kind as 'tap' | 'uplink' }));
    br.nowMs = 1000;
  };

  beforeEach(() => setup());

  it('sends a registered group to its members only, and an unregistered one everywhere', () => {
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 1, 1, 0]); // nobody joined: flooded (multicast_flood_unregistered)
    rx(1, igmpV2Report(GROUP, '198.18.0.1', '00:16:3e:00:00:01'));
    expect(got()).toEqual([0, 0, 0, 0, 0]); // report suppression: no router port yet, no other host
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 1, 0, 0, 0]);
    expect(mc.counters.mdbForwarded).toBe(1);
  });

  it('learns a router port from a general query, sends it reports and the group stream', () => {
    rx(0, igmpQuery());
    expect(got()).toEqual([0, 1, 1, 1, 1]); // queries are flooded
    rx(1, igmpV2Report(GROUP, '198.18.0.1', '00:16:3e:00:00:01'));
    expect(got()).toEqual([1, 0, 0, 0, 0]); // the report goes to the router port only
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 0, 0, 0]);
    expect(mc.portStats(p[0].port, br.nowMs)).toMatchObject({ queries_rx: 1, is_router: true });
    expect(mc.portStats(p[1].port, br.nowMs)).toMatchObject({ reports_rx: 1, mdb_entries: 1 });
  });

  it('a `never` port that sends queries does not become a router port', () => {
    const s = mcastSettingsFrom({ ports: [{ name: 'vif3.0', multicast_router: 'never' }] }).settings;
    setup(s);
    rx(3, igmpQuery('0.0.0.0', { mac: '00:16:3e:00:00:03' }));
    got();
    rx(1, igmpV2Report(GROUP));
    expect(got()).toEqual([0, 0, 0, 0, 0]);
    expect(mc.portStats(p[3].port, br.nowMs).is_router).toBe(false);
  });

  it('a leave stops the stream after the last member query time; fast leave at once', () => {
    // port 2 stays a member throughout: the group stays registered (an unregistered one is flooded)
    rx(2, igmpV2Report(GROUP, '198.18.0.2', '00:16:3e:00:00:02'));
    rx(1, igmpV2Report(GROUP));
    rx(1, igmpLeave(GROUP));
    br.nowMs += mc.lastMemberQueryTimeMs - 1;
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 1, 1, 0, 0]);
    br.nowMs += 1;
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 1, 0, 0]);
    const s = mcastSettingsFrom({ ports: [{ name: 'vif1.0', multicast_fast_leave: true }] }).settings;
    setup(s);
    rx(2, igmpV2Report(GROUP, '198.18.0.2', '00:16:3e:00:00:02'));
    rx(1, igmpV2Report(GROUP));
    rx(1, igmpLeave(GROUP));
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 1, 0, 0]);
    expect(mc.mdb.members).toBe(1);
    expect(mc.mdb.counters.membersLeft).toBe(1);
  });

  it('membership times out after the membership interval without new reports', () => {
    rx(1, igmpV1Report(GROUP));
    br.tick(br.nowMs + mc.membershipIntervalMs, 1 << 20);
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 1, 1, 0]); // unregistered again: flooded
  });

  it('IGMPv3 source filtering: INCLUDE {S1} receives S1 and not S2; EXCLUDE {S2} the reverse', () => {
    rx(1, igmpV3Report([{ type: REC_ALLOW, group: GROUP, sources: [S1] }]));
    rx(2, igmpV3Report([{ type: REC_TO_EX, group: GROUP, sources: [S2] }], '198.18.0.2', '00:16:3e:00:00:02'));
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 1, 1, 0, 0]);
    rx(4, udpTo(S2, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 0, 0, 0]);
    // BLOCK S1 lowers its timer to the last member query time
    rx(1, igmpV3Report([{ type: REC_BLOCK, group: GROUP, sources: [S1] }]));
    br.nowMs += mc.lastMemberQueryTimeMs;
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 1, 0, 0]);
    // TO_IN {} from port 2 is a leave
    rx(2, igmpV3Report([{ type: REC_TO_IN, group: GROUP }], '198.18.0.2', '00:16:3e:00:00:02'));
    br.nowMs += mc.lastMemberQueryTimeMs;
    br.tick(br.nowMs, 1 << 20);
    expect(mc.mdb.groups).toBe(0);
    expect(mc.mdb.check()).toBeNull();
  });

  it('IS_IN / IS_EX records refresh membership', () => {
    rx(1, igmpV3Report([{ type: REC_IS_EX, group: GROUP }, { type: REC_IS_IN, group: '239.9.9.9', sources: [S1] }]));
    rx(4, udpTo(S2, GROUP, '00:16:3e:00:00:04'), udpTo(S1, '239.9.9.9', '00:16:3e:00:00:04'), udpTo(S2, '239.9.9.9', '00:16:3e:00:00:04'));
    expect(p[1].io.sent).toHaveLength(2);
    expect(p[2].io.sent).toHaveLength(0);
  });

  it('floods link-local groups and never learns them', () => {
    rx(1, igmpV2Report('224.0.0.251'));
    rx(4, udpTo(S1, '224.0.0.251', '00:16:3e:00:00:04'), udpTo('fe80::4', 'ff02::1', '00:16:3e:00:00:04'));
    expect(got()).toEqual([2, 2, 2, 2, 0]);
    expect(mc.mdb.groups).toBe(0);
  });

  it('with multicast_flood_unregistered false, an unregistered group goes to router ports only', () => {
    setup(mcastSettingsFrom({ multicast_flood_unregistered: false }).settings);
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 0, 0, 0]);
    rx(0, igmpQuery());
    got();
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 0, 0, 0, 0]);
  });

  it('per-VLAN override: snooping off in one VLAN floods as before', () => {
    setup(mcastSettingsFrom({ multicast_vlans: [{ vlan: 0, multicast_snooping: false }] }).settings);
    rx(1, igmpV2Report(GROUP));
    expect(got()).toEqual([1, 0, 1, 1, 1]);
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 1, 1, 0]);
  });

  it('MLDv1 and MLDv2: members get the stream, non-members nothing', () => {
    rx(0, mldQuery());
    got();
    rx(1, mldV1Report('ff0e::1:3'));
    rx(2, mldV2Report([{ type: REC_ALLOW, group: 'ff0e::1:3', sources: ['2001:db8::4'] }], 'fe80::2', '00:16:3e:00:00:02'));
    expect(got()).toEqual([2, 0, 0, 0, 0]);
    rx(4, udpTo('2001:db8::4', 'ff0e::1:3', '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 1, 0, 0]);
    rx(4, udpTo('2001:db8::5', 'ff0e::1:3', '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 1, 0, 0, 0]);
    rx(1, mldDone('ff0e::1:3'));
    expect(got()).toEqual([1, 0, 0, 0, 0]); // the done, to the router port
    br.nowMs += mc.lastMemberQueryTimeMs;
    rx(4, udpTo('2001:db8::5', 'ff0e::1:3', '00:16:3e:00:00:04'));
    expect(got()).toEqual([1, 0, 0, 0, 0]);
  });

  it('drops malformed IGMP and counts it by reason', () => {
    const bad = Buffer.from(igmpV2Report(GROUP));
    bad[14 + 24 + 2] ^= 0xff; // checksum
    rx(1, bad);
    expect(got()).toEqual([0, 0, 0, 0, 0]);
    expect(mc.malformed[2]).toBe(1);
    expect(mc.portStats(p[1].port, br.nowMs).malformed_rx).toBe(1);
  });

  it('a port going down loses its learnt memberships and router role', () => {
    rx(0, igmpQuery());
    rx(1, igmpV2Report(GROUP));
    br.setPortState(p[1].port, 'down');
    br.setPortState(p[0].port, 'down');
    expect(mc.mdb.groups).toBe(0);
    expect(mc.mdb.isRouter(p[0].port.id, 0, br.nowMs)).toBe(false);
  });

  it('a query heard in one VLAN of a trunk makes it a router port in that VLAN only', () => {
    setup(mcastSettingsFrom({ multicast_flood_unregistered: false }).settings);
    br.setPortVlan(p[0].port, { mode: 'trunk', vlans: [10, 20], native: null });
    br.setPortVlan(p[1].port, { mode: 'access', vlan: 10 });
    br.setPortVlan(p[2].port, { mode: 'access', vlan: 20 });
    br.setPortVlan(p[3].port, { mode: 'access', vlan: 10 });
    br.setPortVlan(p[4].port, { mode: 'access', vlan: 20 });
    rx(0, tagged(igmpQuery(), 10));
    expect(got()).toEqual([0, 1, 0, 1, 0]);
    rx(2, igmpV2Report(GROUP, '198.18.0.2', '00:16:3e:00:00:02'));
    expect(got()).toEqual([0, 0, 0, 0, 0]); // VLAN 20 has no router port: the report goes nowhere
    rx(1, igmpV2Report(GROUP, '198.18.0.1', '00:16:3e:00:00:01'));
    expect(got()).toEqual([1, 0, 0, 0, 0]); // VLAN 10's report to the uplink
    rx(4, udpTo(S1, '239.9.9.9', '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 0, 0, 0, 0]); // unregistered in VLAN 20: router ports only, and there are none
    expect(mc.mdb.isRouter(p[0].port.id, 10, br.nowMs)).toBe(true);
    expect(mc.mdb.isRouter(p[0].port.id, 20, br.nowMs)).toBe(false);
  });

  it('a PIM hello makes a router port', () => {
    rx(0, ipv4Frame('198.18.0.254', '224.0.0.13', 103, Buffer.from([0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105]), { mac: '00:16:3e:00:00:fe' }));
    rx(1, igmpV2Report(GROUP));
    expect(got()).toEqual([1, 1, 1, 1, 1]); // the hello flooded (1..4), then the report to the router (0) only
  });

  it('trace runs the same step, read only: a group to its member, a report to router ports, nothing learned', () => {
    rx(1, igmpV2Report(GROUP));
    got();
    const t = traceFrame(br, p[4].port, udpTo(S1, GROUP, '00:16:3e:00:00:04'), br.nowMs);
    expect(t.egress.map((e) => e.port)).toEqual(['vif1.0']);
    const before = mc.mdb.members;
    const r = traceFrame(br, p[2].port, igmpV2Report('239.7.7.7', '198.18.0.2', '00:16:3e:00:00:02'), br.nowMs);
    expect(r.egress).toEqual([]); // no router port yet
    expect(mc.mdb.members).toBe(before);
    expect(mc.portStats(p[2].port, br.nowMs).reports_rx).toBe(0);
    // the frame the trace predicted is what receive() does
    rx(4, udpTo(S1, GROUP, '00:16:3e:00:00:04'));
    expect(got()).toEqual([0, 1, 0, 0, 0]);
  });

  it('stays off when the bridge has no McastSnooping (multicast flooded, reports to everyone)', () => {
    br.setMulticast(null);
    rx(1, igmpV2Report(GROUP));
    expect(got()).toEqual([1, 0, 1, 1, 1]);
  });
});

describe('the querier (multicast_querier)', () => {
  const make = (extra: Record<string, unknown> = {}): { br: Bridge; mc: McastSnooping; p: { port: BridgePort; io: FakeIo }[]; batch: BatchBuilder } => {
    const r = mcastSettingsFrom({ multicast_querier: true, multicast_querier_ipv4: '198.18.0.100', multicast_query_interval: 10, ...extra });
    expect(r.problems).toEqual([]);
    const br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    const mc = new McastSnooping(r.settings, 16);
    const batch = new BatchBuilder();
    mc.slab = () => batch.slab;
    br.setMulticast(mc);
    const p = ['vif1.0', 'vif2.0'].map((n) => addFakePort(br, batch, n));
    return { br, mc, p, batch };
  };
  const pkt = new McastPacket();
  const classify = (hex: string): number => {
    const f = Buffer.from(hex, 'hex');
    return (f[12] === 0x08 ? classifyIpv4 : classifyIpv6)(f, 14, f.length - 14, pkt);
  };

  it('sends valid IGMPv3 and MLDv2 general queries to every port, startup queries a quarter interval apart', () => {
    const { br, p } = make();
    br.tick(1000, 100);
    for (const x of p) {
      expect(x.io.sent).toHaveLength(2);
      expect(classify(x.io.sent[0])).toBe(MC_QUERY);
      expect([pkt.version, pkt.family, pkt.src[3] >>> 0]).toEqual([3, 4, 0xc6120064]);
      expect(classify(x.io.sent[1])).toBe(MC_QUERY);
      expect([pkt.version, pkt.family, pkt.src[0] >>> 0]).toEqual([2, 6, 0xfe800000]);
      x.io.sent.length = 0;
    }
    br.tick(1000 + 2499, 100);
    expect(p[0].io.sent).toHaveLength(0);
    br.tick(1000 + 2500, 100);
    expect(p[0].io.sent).toHaveLength(2);
  });

  it('falls back to IGMPv2 queries after an IGMPv2 report', () => {
    const { br, p, batch } = make();
    batch.add(igmpV2Report(GROUP));
    br.receive(p[0].port, batch.slab, batch.desc, batch.count);
    batch.reset();
    br.tick(1000, 100);
    expect(classify(p[1].io.sent[0])).toBe(MC_QUERY);
    expect(pkt.version).toBe(2);
  });

  it('stops in a VLAN when a lower-addressed querier is heard, resumes after the other querier present interval', () => {
    const { br, mc, p, batch } = make();
    br.nowMs = 1000;
    batch.add(igmpQuery('0.0.0.0', { src: '198.18.0.1' }));
    br.receive(p[0].port, batch.slab, batch.desc, batch.count);
    batch.reset();
    for (const x of p) x.io.sent.length = 0;
    br.tick(1000, 100);
    // IPv4 silenced, IPv6 still sent
    expect(p[1].io.sent.map((h) => classify(h) === MC_QUERY && pkt.family)).toEqual([6]);
    const other = 2 * 10_000 + 10_000 / 2;
    p[1].io.sent.length = 0;
    br.tick(1000 + other, 100);
    expect(p[1].io.sent.map((h) => classify(h) === MC_QUERY && pkt.family)).toEqual([4, 6]);
    // a higher address does not silence it
    expect(mc.querier).not.toBeNull();
  });

  describe('per VLAN', () => {
    /** uplink trunk 10,20,30; vif1.0 access 10; vif2.0 access 20; vif3.0 trunk 30 (VLAN 30 is carried only tagged) */
    const vlanMake = (extra: Record<string, unknown> = {}): ReturnType<typeof make> & { q: { port: BridgePort; io: FakeIo }[] } => {
      const m = make(extra);
      const up = addFakePort(m.br, m.batch, 'peth0', { kind: 'uplink' });
      const v3 = addFakePort(m.br, m.batch, 'vif3.0');
      m.br.setPortVlan(up.port, { mode: 'trunk', vlans: [10, 20, 30], native: null });
      m.br.setPortVlan(m.p[0].port, { mode: 'access', vlan: 10 });
      m.br.setPortVlan(m.p[1].port, { mode: 'access', vlan: 20 });
      m.br.setPortVlan(v3.port, { mode: 'trunk', vlans: [30], native: null });
      return { ...m, q: [m.p[0], m.p[1], up, v3] };
    };
    /** the queries on the wire: [vid (0: untagged), family, version] */
    const queries = (x: { io: FakeIo }): number[][] => x.io.sent.splice(0).map((h) => {
      const f = Buffer.from(h, 'hex');
      const vid = f.readUInt16BE(12) === 0x8100 ? f.readUInt16BE(14) & 0xfff : 0;
      const u = vid === 0 ? f : Buffer.concat([f.subarray(0, 12), f.subarray(16)]);
      expect(classify(u.toString('hex'))).toBe(MC_QUERY);
      return [vid, pkt.family, pkt.version];
    });
    const rxOn = (m: ReturnType<typeof vlanMake>, i: number, f: Buffer): void => {
      m.batch.add(f);
      m.br.receive(m.q[i].port, m.batch.slab, m.batch.desc, m.batch.count);
      m.batch.reset();
    };

    it('queries every VLAN in use, tagged on trunks, a VLAN carried only by trunks too', () => {
      const m = vlanMake();
      m.br.tick(1000, 100);
      expect(queries(m.q[2])).toEqual([[10, 4, 3], [10, 6, 2], [20, 4, 3], [20, 6, 2], [30, 4, 3], [30, 6, 2]]);
      expect(queries(m.q[0])).toEqual([[0, 4, 3], [0, 6, 2]]);
      expect(queries(m.q[1])).toEqual([[0, 4, 3], [0, 6, 2]]);
      expect(queries(m.q[3])).toEqual([[30, 4, 3], [30, 6, 2]]);
      expect(m.mc.querier!.state(1000, [10, 20, 30], String).map((v) => v.vlan)).toEqual([10, 20, 30]);
    });

    it('a lower-addressed querier in VLAN 10 silences it in VLAN 10 only; an IGMPv2 report falls back in that VLAN only', () => {
      const m = vlanMake();
      m.br.nowMs = 1000;
      rxOn(m, 2, tagged(igmpQuery('0.0.0.0', { src: '198.18.0.1' }), 10));
      rxOn(m, 1, igmpV2Report(GROUP, '198.18.0.2', '00:16:3e:00:00:02'));
      for (const x of m.q) x.io.sent.length = 0;
      m.br.tick(1000, 100);
      expect(queries(m.q[2])).toEqual([[10, 6, 2], [20, 4, 2], [20, 6, 2], [30, 4, 3], [30, 6, 2]]);
      const st = m.mc.querier!.state(1000, [10, 20, 30], String);
      expect(st.map((v) => [v.vlan, v.ipv4.querier, v.igmp_version])).toEqual([[10, 'other', 3], [20, 'self', 2], [30, 'self', 3]]);
    });

    it('multicast_vlans turns the querier on or off per VLAN', () => {
      const m = vlanMake({ multicast_querier: false, multicast_vlans: [{ vlan: 20, multicast_querier: true }, { vlan: 30, multicast_snooping: false, multicast_querier: true }] });
      m.br.tick(1000, 100);
      expect(queries(m.q[2])).toEqual([[20, 4, 3], [20, 6, 2]]);
      expect(queries(m.q[0])).toEqual([]);
      expect(queries(m.q[3])).toEqual([]);
    });

    it('sends every query VLAN of a trunk even when they exceed its tx queue (64 frames here)', () => {
      const m = vlanMake();
      const many = Array.from({ length: 40 }, (_, i) => 100 + i);
      m.br.setPortVlan(m.q[2].port, { mode: 'trunk', vlans: [10, 20, 30, ...many], native: null });
      m.br.tick(1000, 100);
      const q = queries(m.q[2]);
      expect(q).toHaveLength(86);
      expect(q.at(-1)).toEqual([139, 6, 2]);
    });
  });

  it('on a leave it sends group-specific queries to that port, last_member_count times, last_member_interval apart', () => {
    const { br, p, batch, mc } = make();
    br.tick(1000, 100); // general queries
    for (const x of p) x.io.sent.length = 0;
    br.nowMs = 1100;
    batch.add(igmpV2Report(GROUP)).add(igmpLeave(GROUP));
    br.receive(p[0].port, batch.slab, batch.desc, batch.count);
    batch.reset();
    br.tick(1100, 100);
    expect(p[0].io.sent).toHaveLength(1);
    expect(classify(p[0].io.sent[0])).toBe(MC_QUERY);
    expect([pkt.version, pkt.group[3] >>> 0, pkt.maxRespMs]).toEqual([2, 0xef010203, 1000]);
    expect(p[1].io.sent).toHaveLength(0);
    br.tick(1100 + 999, 100);
    expect(p[0].io.sent).toHaveLength(1);
    br.tick(1100 + 1000, 100);
    expect(p[0].io.sent).toHaveLength(2);
    br.tick(1100 + 5000, 100);
    expect(p[0].io.sent.filter((h) => classify(h) === MC_QUERY && pkt.group[3] !== 0)).toHaveLength(2);
    expect(mc.querier!.groupQueriesSent).toBe(2);
    // MLD: a done gets MLD group-specific queries
    batch.add(mldV1Report('ff0e::1:3')).add(mldDone('ff0e::1:3'));
    br.receive(p[1].port, batch.slab, batch.desc, batch.count);
    batch.reset();
    p[1].io.sent.length = 0;
    br.tick(br.nowMs, 100);
    expect(classify(p[1].io.sent[0])).toBe(MC_QUERY);
    expect([pkt.family, pkt.group[0] >>> 0, pkt.group[3]]).toEqual([6, 0xff0e0000, 0x10003]);
  });

  describe('group-and-source-specific queries', () => {
    const S3 = '198.18.5.3';
    /** ones' complement sum of 16-bit words (0xffff over a packet with a valid checksum) */
    const sum16 = (b: Buffer, init = 0): number => {
      let x = init;
      for (let i = 0; i + 1 < b.length; i += 2) x += b.readUInt16BE(i);
      if (b.length & 1) x += b[b.length - 1] << 8;
      while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
      return x;
    };
    /** An IGMPv3 query on the wire: its fields, its sources, and whether the IP and IGMP checksums hold. */
    const igmpV3 = (hex: string): { dst: string; mac: string; group: string; s: number; qrv: number; qqic: number; code: number; sources: string[]; ipOk: boolean; igmpOk: boolean } => {
      const f = Buffer.from(hex, 'hex');
      const ihl = (f[14] & 15) * 4;
      const total = f.readUInt16BE(16);
      const q = f.subarray(14 + ihl, 14 + total);
      const ip = (b: Buffer): string => [...b].join('.');
      const n = q.readUInt16BE(10);
      expect(q.length).toBe(12 + 4 * n);
      return {
        dst: ip(f.subarray(30, 34)), mac: f.subarray(0, 6).toString('hex'), group: ip(q.subarray(4, 8)), s: (q[8] >> 3) & 1, qrv: q[8] & 7, qqic: q[9], code: q[1],
        sources: Array.from({ length: n }, (_, i) => ip(q.subarray(12 + 4 * i, 16 + 4 * i))),
        ipOk: sum16(f.subarray(14, 14 + ihl)) === 0xffff, igmpOk: sum16(q) === 0xffff,
      };
    };
    const gsq = (x: { io: FakeIo }): string[] => x.io.sent.splice(0).filter((h) => h.slice(0, 12) === '01005e010203');
    const timers = (mc: McastSnooping, nowMs: number): string[] => mc.mdb.entries(nowMs).map((e) => `${[...e.source ?? []].at(-1)! & 0xff}:${e.timerMs}`).sort();

    it('BLOCK: the source timer drops to LMQT and last_member_count queries for (G, S1) go to that port, S flag clear', () => {
      const { br, p, batch, mc } = make({ multicast_last_member_interval: 0.5 });
      br.tick(1000, 100);
      for (const x of p) x.io.sent.length = 0;
      br.nowMs = 1100;
      batch.add(igmpV3Report([{ type: REC_ALLOW, group: GROUP, sources: [S1, S2, S3] }])).add(igmpV3Report([{ type: REC_BLOCK, group: GROUP, sources: [S1, S3, '198.18.5.9'] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      // membership interval 2 x 10 s + 10 s = 30 s; LMQT 2 x 0.5 s = 1 s
      expect(timers(mc, 1100)).toEqual(['1:1000', '2:30000', '3:1000']);
      br.tick(1100, 100);
      const [q] = gsq(p[0]).map(igmpV3);
      expect(q).toEqual({
        dst: GROUP, mac: '01005e010203', group: GROUP, s: 0, qrv: 2, qqic: 10, code: 5, sources: [S1, S3], ipOk: true, igmpOk: true,
      });
      expect(gsq(p[1])).toEqual([]);
      br.tick(1100 + 499, 100);
      expect(gsq(p[0])).toEqual([]);
      br.tick(1100 + 500, 100);
      expect(gsq(p[0]).map(igmpV3).map((x) => [x.s, x.sources])).toEqual([[0, [S1, S3]]]);
      br.tick(1100 + 1000, 100);
      expect(gsq(p[0])).toEqual([]);
      expect(mc.querier!.sourceQueriesSent).toBe(2);
    });

    it('a source a host asks for again goes in the retransmissions with the S flag set, the others with it clear', () => {
      const { br, p, batch, mc } = make({ multicast_last_member_interval: 0.5, multicast_last_member_count: 3 });
      br.tick(1000, 100);
      for (const x of p) x.io.sent.length = 0;
      br.nowMs = 1100;
      batch.add(igmpV3Report([{ type: REC_IS_IN, group: GROUP, sources: [S1, S2] }])).add(igmpV3Report([{ type: REC_BLOCK, group: GROUP, sources: [S1, S2] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      br.tick(1100, 100);
      expect(gsq(p[0]).map(igmpV3).map((x) => [x.s, x.sources])).toEqual([[0, [S1, S2]]]);
      br.nowMs = 1300;
      batch.add(igmpV3Report([{ type: REC_IS_IN, group: GROUP, sources: [S1] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      br.tick(1600, 100);
      expect(gsq(p[0]).map(igmpV3).map((x) => [x.s, x.sources])).toEqual([[1, [S1]], [0, [S2]]]);
      br.tick(2100, 100);
      expect(timers(mc, 2100)).toEqual([`1:${1300 + 40_000 - 2100}`, '2:500']);
      expect(gsq(p[0]).map(igmpV3).map((x) => [x.s, x.sources])).toEqual([[1, [S1]], [0, [S2]]]);
      br.tick(2600, 100); // three sent: done; S2 ran out
      expect(gsq(p[0])).toEqual([]);
      expect(timers(mc, 2600)).toEqual([`1:${1300 + 40_000 - 2600}`]);
    });

    it('TO_IN with fewer sources: the sources left out are lowered and asked', () => {
      const { br, p, batch, mc } = make({ multicast_last_member_interval: 0.5 });
      br.tick(1000, 100);
      for (const x of p) x.io.sent.length = 0;
      br.nowMs = 1100;
      batch.add(igmpV3Report([{ type: REC_ALLOW, group: GROUP, sources: [S1, S2] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      br.nowMs = 1200;
      batch.add(igmpV3Report([{ type: REC_TO_IN, group: GROUP, sources: [S2] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      expect(timers(mc, 1200)).toEqual(['1:1000', '2:30000']);
      br.tick(1200, 100);
      // no group-specific query: the port was in INCLUDE mode
      expect(gsq(p[0]).map(igmpV3).map((x) => [x.s, x.sources])).toEqual([[0, [S1]]]);
    });

    it('MLDv2: the query carries the sources, and its ICMPv6 checksum holds', () => {
      const { br, p, batch } = make();
      br.tick(1000, 100);
      for (const x of p) x.io.sent.length = 0;
      batch.add(mldV2Report([{ type: REC_ALLOW, group: 'ff0e::1:3', sources: ['2001:db8::1', '2001:db8::2'] }]))
        .add(mldV2Report([{ type: REC_BLOCK, group: 'ff0e::1:3', sources: ['2001:db8::2'] }]));
      br.receive(p[1].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      br.tick(1000, 100);
      const f = Buffer.from(p[1].io.sent[0], 'hex');
      expect(f.subarray(0, 6).toString('hex')).toBe('333300010003');
      const plen = f.readUInt16BE(18);
      const icmp = f.subarray(14 + 40 + 8, 14 + 40 + plen);
      expect(icmp.length).toBe(28 + 16);
      expect([icmp[0], icmp[24] & 7, (icmp[24] >> 3) & 1, icmp.readUInt16BE(26)]).toEqual([130, 2, 0, 1]);
      expect(icmp.subarray(28, 44).toString('hex')).toBe('20010db8000000000000000000000002');
      // pseudo-header: source, destination, length, next header 58
      let pseudo = sum16(f.subarray(22, 54));
      pseudo = sum16(Buffer.from([0, 0, icmp.length >> 8, icmp.length & 0xff, 0, 0, 0, 58]), pseudo);
      expect(sum16(icmp, pseudo)).toBe(0xffff);
    });

    it('none while another querier is in charge of the VLAN, or the VLAN is in IGMPv2 compatibility mode', () => {
      const { br, p, batch } = make();
      br.tick(1000, 100);
      for (const x of p) x.io.sent.length = 0;
      batch.add(igmpV2Report('239.9.9.9', '198.18.0.3', '00:16:3e:00:00:03'));
      batch.add(igmpV3Report([{ type: REC_ALLOW, group: GROUP, sources: [S1] }])).add(igmpV3Report([{ type: REC_BLOCK, group: GROUP, sources: [S1] }]));
      br.receive(p[0].port, batch.slab, batch.desc, batch.count);
      batch.reset();
      br.tick(1000, 100);
      expect(gsq(p[0])).toEqual([]);
    });
  });

  it('refuses a querier IPv6 source that is not link-local', () => {
    expect(mcastSettingsFrom({ multicast_querier_ipv6: '2001:db8::1' }).problems.map((x) => x[0])).toEqual(['multicast_querier_ipv6']);
  });
});
