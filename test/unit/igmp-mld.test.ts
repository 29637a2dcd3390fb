import { describe, expect, it } from 'vitest';
import {
  classifyIpv4, MALFORMED_REASONS, MC_DATA, MC_LEAVE, MC_MALFORMED, MC_QUERY, MC_REPORT, MC_REPORT_V3, MC_ROUTER, McastPacket, McastRecord,
  readGroupRecord, readRecordSource, REC_ALLOW, REC_IS_EX, REC_TO_IN,
} from '../../src/frame/igmp.js';
import { classifyIpv6 } from '../../src/frame/mld.js';
import {
  igmpLeave, igmpQuery, igmpV1Report, igmpV2Report, igmpV3Report, ip4, ip6, ipv4Frame, ipv6Frame, mldDone, mldQuery, mldV1Report, mldV2Report, udpTo,
} from '../support/mcast-frames.js';

const ETH = 14;
const pkt = new McastPacket();

function v4(frame: Buffer, len = frame.length - ETH): number {
  return classifyIpv4(frame, ETH, len, pkt);
}
function v6(frame: Buffer, len = frame.length - ETH): number {
  return classifyIpv6(frame, ETH, len, pkt);
}
function words4(a: string): number[] {
  return [0, 0, 0xffff, ip4(a).readInt32BE(0)];
}
function words6(a: string): number[] {
  const b = ip6(a);
  return [0, 4, 8, 12].map((o) => b.readInt32BE(o));
}
function reason(): string {
  return MALFORMED_REASONS[pkt.reason];
}

/** A view that throws when the codec reads at or past `limit` (a plain Uint8Array would read undefined silently). */
function fenced(frame: Buffer, limit: number): Uint8Array {
  return new Proxy(frame, {
    get(t, k, r) {
      if (typeof k === 'string' && /^\d+$/.test(k) && Number(k) >= limit) throw new RangeError(`read at ${k}, limit ${limit}`);
      const v = Reflect.get(t, k, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  }) as unknown as Uint8Array;
}

describe('IGMP codec', () => {
  it('reads v1 and v2 reports and leaves, group as IPv4-mapped words', () => {
    expect(v4(igmpV2Report('239.1.2.3'))).toBe(MC_REPORT);
    expect(pkt.version).toBe(2);
    expect([...pkt.group]).toEqual(words4('239.1.2.3'));
    expect([...pkt.src]).toEqual(words4('198.18.0.1'));
    expect(v4(igmpV1Report('239.1.2.4'))).toBe(MC_REPORT);
    expect(pkt.version).toBe(1);
    expect(v4(igmpLeave('239.1.2.3'))).toBe(MC_LEAVE);
    expect([...pkt.group]).toEqual(words4('239.1.2.3'));
  });

  it('reads v2 and v3 queries with their response times', () => {
    expect(v4(igmpQuery())).toBe(MC_QUERY);
    expect(pkt.version).toBe(2);
    expect(pkt.maxRespMs).toBe(10_000);
    expect([...pkt.group]).toEqual(words4('0.0.0.0'));
    expect(v4(igmpQuery('239.1.2.3', { v3: true }))).toBe(MC_QUERY);
    expect(pkt.version).toBe(3);
    expect([...pkt.group]).toEqual(words4('239.1.2.3'));
  });

  it('walks the records and sources of a v3 report', () => {
    const f = igmpV3Report([
      { type: REC_IS_EX, group: '239.1.1.1' },
      { type: REC_ALLOW, group: '239.1.1.2', sources: ['198.18.1.1', '198.18.1.2'] },
      { type: REC_TO_IN, group: '239.1.1.3' },
    ]);
    expect(v4(f)).toBe(MC_REPORT_V3);
    expect(pkt.recCount).toBe(3);
    const rec = new McastRecord();
    const src = new Int32Array(4);
    let o = pkt.recOff;
    o = readGroupRecord(f, o, rec, 4);
    expect([rec.type, rec.nSources, ...rec.group]).toEqual([REC_IS_EX, 0, ...words4('239.1.1.1')]);
    o = readGroupRecord(f, o, rec, 4);
    expect([rec.type, rec.nSources]).toEqual([REC_ALLOW, 2]);
    readRecordSource(f, rec, 1, src);
    expect([...src]).toEqual(words4('198.18.1.2'));
    readGroupRecord(f, o, rec, 4);
    expect(rec.type).toBe(REC_TO_IN);
  });

  it('classifies UDP to a group as data and a PIM hello as a router', () => {
    expect(v4(udpTo('198.18.0.9', '239.1.2.3'))).toBe(MC_DATA);
    expect([...pkt.dst]).toEqual(words4('239.1.2.3'));
    expect(v4(ipv4Frame('198.18.0.254', '224.0.0.13', 103, Buffer.from([0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105])))).toBe(MC_ROUTER);
  });

  it('counts each kind of malformed IGMP by reason', () => {
    const bad = Buffer.from(igmpV2Report('239.1.2.3'));
    bad[ETH + 24 + 7] ^= 1; // group byte: checksum no longer matches
    expect(v4(bad)).toBe(MC_MALFORMED);
    expect(reason()).toBe('checksum');
    expect(v4(igmpV2Report('198.18.0.7'))).toBe(MC_MALFORMED);
    expect(reason()).toBe('bad_group');
    const v3 = Buffer.from(igmpV3Report([{ type: REC_IS_EX, group: '239.1.1.1' }]));
    v3[ETH + 24 + 7] = 2; // two records announced, one present (checksum fixed below)
    v3.writeUInt16BE(0, ETH + 24 + 2);
    let s = 0;
    for (let i = ETH + 24; i < ETH + 24 + 16; i += 2) s += v3.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    v3.writeUInt16BE(~s & 0xffff, ETH + 24 + 2);
    expect(v4(v3)).toBe(MC_MALFORMED);
    expect(reason()).toBe('bad_record');
    const ihl = Buffer.from(igmpV2Report('239.1.2.3'));
    ihl[ETH] = 0x44;
    expect(v4(ihl)).toBe(MC_MALFORMED);
    expect(reason()).toBe('ip_header');
    const frag = Buffer.from(igmpV2Report('239.1.2.3'));
    frag[ETH + 6] = 0x20; // more fragments
    expect(v4(frag)).toBe(MC_MALFORMED);
    expect(reason()).toBe('fragment');
    const f = igmpV2Report('239.1.2.3');
    expect(v4(f, 30)).toBe(MC_MALFORMED); // IPv4 total length beyond the frame
    expect(reason()).toBe('ip_header');
  });

  it('never reads past the packet, whatever length it is cut to', () => {
    const frames = [
      igmpV3Report([{ type: REC_ALLOW, group: '239.1.1.2', sources: ['198.18.1.1', '198.18.1.2'] }, { type: REC_IS_EX, group: '239.1.1.1' }]),
      igmpQuery('0.0.0.0', { v3: true }), igmpV2Report('239.1.2.3'), igmpLeave('239.1.2.3'),
    ];
    for (const f of frames) {
      const ipLen = f.readUInt16BE(ETH + 2);
      for (let cut = 0; cut <= ipLen; cut++) {
        const g = Buffer.from(f);
        // the IPv4 header claims `cut` bytes; the buffer ends there too
        if (cut >= 4) g.writeUInt16BE(cut, ETH + 2);
        const kind = classifyIpv4(fenced(g, ETH + cut), ETH, cut, pkt);
        if (cut < ipLen) expect(kind).toBe(MC_MALFORMED);
      }
    }
  });
});

describe('MLD codec', () => {
  it('reads MLDv1 reports and dones behind a hop-by-hop header', () => {
    expect(v6(mldV1Report('ff0e::1:3'))).toBe(MC_REPORT);
    expect([...pkt.group]).toEqual(words6('ff0e::1:3'));
    expect([...pkt.src]).toEqual(words6('fe80::1'));
    expect(v6(mldDone('ff0e::1:3'))).toBe(MC_LEAVE);
  });

  it('reads v1 and v2 queries', () => {
    expect(v6(mldQuery())).toBe(MC_QUERY);
    expect([pkt.version, pkt.maxRespMs]).toEqual([1, 1000]);
    expect(v6(mldQuery('::', { v2: true }))).toBe(MC_QUERY);
    expect(pkt.version).toBe(2);
  });

  it('walks the records of an MLDv2 report', () => {
    const f = mldV2Report([{ type: REC_ALLOW, group: 'ff0e::5', sources: ['2001:db8::1', '2001:db8::2'] }, { type: REC_IS_EX, group: 'ff0e::6' }]);
    expect(v6(f)).toBe(MC_REPORT_V3);
    expect(pkt.recCount).toBe(2);
    const rec = new McastRecord();
    const src = new Int32Array(4);
    const o = readGroupRecord(f, pkt.recOff, rec, 16);
    expect([...rec.group]).toEqual(words6('ff0e::5'));
    readRecordSource(f, rec, 1, src);
    expect([...src]).toEqual(words6('2001:db8::2'));
    readGroupRecord(f, o, rec, 16);
    expect([rec.type, ...rec.group]).toEqual([REC_IS_EX, ...words6('ff0e::6')]);
  });

  it('takes neighbour discovery and UDP as data, and rejects a bad checksum', () => {
    const ns = Buffer.alloc(24);
    ns[0] = 135;
    expect(v6(ipv6Frame('fe80::1', 'ff02::1:ff00:2', 58, ns))).toBe(MC_DATA);
    expect(v6(udpTo('2001:db8::9', 'ff0e::1:3'))).toBe(MC_DATA);
    const bad = Buffer.from(mldV1Report('ff0e::1:3'));
    bad[bad.length - 1 - (bad.length - ETH - 40 - 8 - 24)] ^= 1;
    expect(v6(bad)).toBe(MC_MALFORMED);
    expect(reason()).toBe('checksum');
  });

  it('never reads past the packet, whatever length it is cut to', () => {
    const frames = [
      mldV2Report([{ type: REC_ALLOW, group: 'ff0e::5', sources: ['2001:db8::1'] }, { type: REC_IS_EX, group: 'ff0e::6' }]),
      mldQuery('::', { v2: true }), mldV1Report('ff0e::1:3'),
    ];
    for (const f of frames) {
      const payload = f.readUInt16BE(ETH + 4);
      for (let cut = 1; cut <= payload; cut++) {
        const g = Buffer.from(f);
        g.writeUInt16BE(cut, ETH + 4);
        const kind = classifyIpv6(fenced(g, ETH + 40 + cut), ETH, 40 + cut, pkt);
        // without the 4 bytes of the ICMPv6 type after the hop-by-hop header it is not MLD (data)
        if (cut < payload) expect(kind).toBe(cut >= 8 && cut < 12 ? MC_DATA : MC_MALFORMED);
      }
    }
  });
});
