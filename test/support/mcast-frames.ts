// Builders of IGMP / MLD / multicast UDP frames with correct checksums, for the codec and engine tests.

import { isIPv4 } from 'node:net';

export const HOST_MAC = '00:16:3e:00:00:01';

function csum(buf: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) s += buf[buf.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function ip4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

export function ip6(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const words = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), 2 * i));
  return b;
}

function v4Mac(group: string): string {
  const g = ip4(group);
  return `01:00:5e:${(g[1] & 0x7f).toString(16).padStart(2, '0')}:${g[2].toString(16).padStart(2, '0')}:${g[3].toString(16).padStart(2, '0')}`;
}

function v6Mac(group: string): string {
  const g = ip6(group);
  return `33:33:${[...g.subarray(12)].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

function ethHdr(dst: string, src: string, type: number, vid = 0): Buffer {
  const d = Buffer.from(dst.replaceAll(':', ''), 'hex');
  const s = Buffer.from(src.replaceAll(':', ''), 'hex');
  const tag = vid > 0 ? Buffer.from([0x81, 0x00, vid >> 8, vid & 0xff]) : Buffer.alloc(0);
  const t = Buffer.alloc(2);
  t.writeUInt16BE(type);
  return Buffer.concat([d, s, tag, t]);
}

function pad(frame: Buffer): Buffer {
  return frame.length >= 60 ? frame : Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
}

/** An IPv4 packet (with a Router Alert option when `ra`) in an Ethernet frame to the group MAC of `dst`. */
export function ipv4Frame(src: string, dst: string, proto: number, payload: Buffer, opts: { ra?: boolean; mac?: string; vid?: number } = {}): Buffer {
  const opt = opts.ra === true ? Buffer.from([0x94, 0x04, 0, 0]) : Buffer.alloc(0);
  const h = Buffer.alloc(20 + opt.length);
  h[0] = 0x40 | ((20 + opt.length) / 4);
  h.writeUInt16BE(h.length + payload.length, 2);
  h[8] = 1;
  h[9] = proto;
  ip4(src).copy(h, 12);
  ip4(dst).copy(h, 16);
  opt.copy(h, 20);
  h.writeUInt16BE(csum(h), 10);
  return pad(Buffer.concat([ethHdr(v4Mac(dst), opts.mac ?? HOST_MAC, 0x0800, opts.vid), h, payload]));
}

function igmp(type: number, code: number, group: string, rest: Buffer = Buffer.alloc(0)): Buffer {
  const m = Buffer.concat([Buffer.from([type, code, 0, 0]), ip4(group), rest]);
  m.writeUInt16BE(csum(m), 2);
  return m;
}

export function igmpV2Report(group: string, src = '198.18.0.1', mac?: string): Buffer {
  return ipv4Frame(src, group, 2, igmp(0x16, 0, group), { ra: true, mac });
}

export function igmpV1Report(group: string, src = '198.18.0.1'): Buffer {
  return ipv4Frame(src, group, 2, igmp(0x12, 0, group));
}

export function igmpLeave(group: string, src = '198.18.0.1', mac?: string): Buffer {
  return ipv4Frame(src, '224.0.0.2', 2, igmp(0x17, 0, group), { ra: true, mac });
}

/** A general (group 0.0.0.0) or group-specific query; v3 when `v3`. */
export function igmpQuery(group = '0.0.0.0', opts: { v3?: boolean; src?: string; mac?: string } = {}): Buffer {
  const rest = opts.v3 === true ? Buffer.from([2, 125, 0, 0]) : Buffer.alloc(0);
  return ipv4Frame(opts.src ?? '198.18.0.254', group === '0.0.0.0' ? '224.0.0.1' : group, 2, igmp(0x11, 100, group, rest), { ra: true, mac: opts.mac ?? '00:16:3e:00:00:fe' });
}

export interface Rec {
  type: number;
  group: string;
  sources?: string[];
}

export function igmpV3Report(records: Rec[], src = '198.18.0.1', mac?: string): Buffer {
  const recs = records.map((r) => {
    const s = r.sources ?? [];
    const h = Buffer.alloc(8);
    h[0] = r.type;
    h.writeUInt16BE(s.length, 2);
    ip4(r.group).copy(h, 4);
    return Buffer.concat([h, ...s.map(ip4)]);
  });
  const m = Buffer.concat([Buffer.from([0x22, 0, 0, 0, 0, 0, records.length >> 8, records.length & 0xff]), ...recs]);
  m.writeUInt16BE(csum(m), 2);
  return ipv4Frame(src, '224.0.0.22', 2, m, { ra: true, mac });
}

/** A UDP datagram from src to a group (IPv4 or IPv6). */
export function udpTo(src: string, group: string, mac?: string): Buffer {
  const u = Buffer.from([0x13, 0x88, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4]);
  return isIPv4(group) ? ipv4Frame(src, group, 17, u, { mac }) : ipv6Frame(src, group, 17, u, { mac });
}

/** An IPv6 packet in an Ethernet frame; ICMPv6 (58) payloads get their checksum, behind a hop-by-hop RA header when `hbh`. */
export function ipv6Frame(src: string, dst: string, nh: number, payload: Buffer, opts: { hbh?: boolean; mac?: string } = {}): Buffer {
  const body = Buffer.from(payload);
  if (nh === 58) {
    const pseudo = Buffer.alloc(40);
    ip6(src).copy(pseudo, 0);
    ip6(dst).copy(pseudo, 16);
    pseudo.writeUInt32BE(body.length, 32);
    pseudo[39] = 58;
    body.writeUInt16BE(0, 2);
    body.writeUInt16BE(csum(Buffer.concat([pseudo, body])), 2);
  }
  const ext = opts.hbh === true ? Buffer.from([nh, 0, 5, 2, 0, 0, 1, 0]) : Buffer.alloc(0);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(ext.length + body.length, 4);
  h[6] = opts.hbh === true ? 0 : nh;
  h[7] = 1;
  ip6(src).copy(h, 8);
  ip6(dst).copy(h, 24);
  return pad(Buffer.concat([ethHdr(v6Mac(dst), opts.mac ?? HOST_MAC, 0x86dd, 0), h, ext, body]));
}

function mldMsg(type: number, group: string, rest: Buffer = Buffer.alloc(0), maxResp = 0): Buffer {
  const m = Buffer.alloc(24);
  m[0] = type;
  m.writeUInt16BE(maxResp, 4);
  ip6(group).copy(m, 8);
  return Buffer.concat([m, rest]);
}

export function mldV1Report(group: string, src = 'fe80::1', mac?: string): Buffer {
  return ipv6Frame(src, group, 58, mldMsg(131, group), { hbh: true, mac });
}

export function mldDone(group: string, src = 'fe80::1', mac?: string): Buffer {
  return ipv6Frame(src, 'ff02::2', 58, mldMsg(132, group), { hbh: true, mac });
}

export function mldQuery(group = '::', opts: { v2?: boolean; src?: string; mac?: string } = {}): Buffer {
  const rest = opts.v2 === true ? Buffer.from([2, 125, 0, 0]) : Buffer.alloc(0);
  return ipv6Frame(opts.src ?? 'fe80::fe', group === '::' ? 'ff02::1' : group, 58, mldMsg(130, group, rest, 1000), { hbh: true, mac: opts.mac ?? '00:16:3e:00:00:fe' });
}

export function mldV2Report(records: Rec[], src = 'fe80::1', mac?: string): Buffer {
  const recs = records.map((r) => {
    const s = r.sources ?? [];
    const h = Buffer.alloc(20);
    h[0] = r.type;
    h.writeUInt16BE(s.length, 2);
    ip6(r.group).copy(h, 4);
    return Buffer.concat([h, ...s.map(ip6)]);
  });
  const m = Buffer.concat([Buffer.from([143, 0, 0, 0, 0, 0, records.length >> 8, records.length & 0xff]), ...recs]);
  return ipv6Frame(src, 'ff02::16', 58, m, { hbh: true, mac });
}

/** The frame with an 802.1Q tag of `vid` inserted after its MAC addresses. */
export function tagged(frame: Buffer, vid: number): Buffer {
  return Buffer.concat([frame.subarray(0, 12), Buffer.from([0x81, 0x00, vid >> 8, vid & 0xff]), frame.subarray(12)]);
}
