// IPv6 multicast classification and MLDv1/v2 (RFC 2710, 3810), plus PIM hello and multicast router
// advertisements (RFC 4286) as far as a snooping switch needs them (RFC 4541).
//
//   IPv6 header (40)  [hop-by-hop / destination / routing headers]  ICMPv6 (next header 58):
//     MLDv1  type(1) code(1) csum(2) max_resp_ms(2) rsvd(2) group(16)                      24 bytes
//     query v2: + s_qrv(1) qqic(1) nsrc(2) src*16                                      >= 28 bytes
//     report v2: type 143, rsvd(1) csum(2) rsvd(2) nrec(2), then records:
//       rtype(1) auxlen(1) nsrc(2) group(16) src(16*nsrc) aux(4*auxlen)
//
// classifyIpv6() fills the caller-owned McastPacket (igmp.ts) in place: nothing is allocated per frame.
// Every offset is checked against the IPv6 payload length, which is checked against `len`; at most
// MAX_EXT_HEADERS extension headers are walked (a longer chain, or a fragment header, is data: it is
// not MLD as a switch can read it). ICMPv6 checksums are verified with the pseudo-header; a v2 report's
// records are all checked before the function returns.

import {
  checkGroupRecords, MC_BAD_CHECKSUM, MC_BAD_GROUP, MC_BAD_IP_HEADER, MC_BAD_LENGTH, MC_BAD_RECORD, MC_BAD_TRUNCATED, MC_DATA, MC_LEAVE,
  MC_MALFORMED, MC_OTHER, MC_QUERY, MC_REPORT, MC_REPORT_V3, MC_ROUTER, McastPacket, onesSum, readAddress,
} from './igmp.js';

const IPV6_HLEN = 40;
const NH_HOP_BY_HOP = 0;
const NH_ROUTING = 43;
const NH_DEST_OPTS = 60;
const NH_ICMPV6 = 58;
const NH_PIM = 103;
/** extension headers walked before the packet is taken as data */
export const MAX_EXT_HEADERS = 4;

const MLD_QUERY = 130;
const MLD_V1_REPORT = 131;
const MLD_V1_DONE = 132;
const MLD_V2_REPORT = 143;
const MLD_MRD_ADVERT = 151;

function be16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function read128(b: Uint8Array, o: number, w: Int32Array): void {
  readAddress(b, o, w, 16);
}

/** ff00::/8 */
export function isIpv6Multicast(w: Int32Array): boolean {
  return (w[0] >>> 24) === 0xff;
}

/**
 * The all-nodes and all-routers groups of every scope (ffX::1, ffX::2): always flooded, never learned,
 * as the kernel bridge does for ff02::1.
 */
export function isIpv6AllNodesOrRouters(w: Int32Array): boolean {
  return (w[0] & 0xfff0ffff) === (0xff000000 | 0) && w[1] === 0 && w[2] === 0 && (w[3] === 1 || w[3] === 2);
}

function malformed(pkt: McastPacket, reason: number): number {
  pkt.kind = MC_MALFORMED;
  pkt.reason = reason;
  return MC_MALFORMED;
}

/** The ICMPv6 checksum over buf[q .. q+n) with the IPv6 pseudo-header of the packet at p holds. */
function icmpv6ChecksumOk(buf: Uint8Array, p: number, q: number, n: number): boolean {
  let s = onesSum(buf, p + 8, 32, 0); // source and destination
  s += (n >>> 16) + (n & 0xffff) + NH_ICMPV6;
  return onesSum(buf, q, n, s) === 0xffff;
}

/** MLDv2 Maximum Response Code to ms (RFC 3810 5.1.3). */
function mldv2MaxRespMs(code: number): number {
  return code < 0x8000 ? code : ((code & 0x0fff) | 0x1000) << (((code >>> 12) & 7) + 3);
}

/** Classifies the IPv6 packet at buf[p .. p+len); returns pkt.kind (see igmp.ts for the kinds). */
export function classifyIpv6(buf: Uint8Array, p: number, len: number, pkt: McastPacket): number {
  pkt.family = 6;
  pkt.version = 0;
  pkt.recCount = 0;
  pkt.nSources = 0;
  if (len < IPV6_HLEN) return malformed(pkt, MC_BAD_TRUNCATED);
  const payload = be16(buf, p + 4);
  // payload length 0 is a jumbogram (hop-by-hop option): not on an Ethernet
  if ((buf[p] >>> 4) !== 6 || payload === 0 || IPV6_HLEN + payload > len) return malformed(pkt, MC_BAD_IP_HEADER);
  read128(buf, p + 8, pkt.src);
  read128(buf, p + 24, pkt.dst);
  const end = p + IPV6_HLEN + payload;
  let nh = buf[p + 6];
  let o = p + IPV6_HLEN;
  for (let i = 0; i < MAX_EXT_HEADERS && (nh === NH_HOP_BY_HOP || nh === NH_DEST_OPTS || nh === NH_ROUTING); i++) {
    if (o + 8 > end) return malformed(pkt, MC_BAD_TRUNCATED);
    const size = (buf[o + 1] + 1) * 8;
    if (o + size > end) return malformed(pkt, MC_BAD_TRUNCATED);
    nh = buf[o];
    o += size;
  }
  if (nh === NH_PIM) {
    // PIMv2 hello to ff02::d
    const d = pkt.dst;
    const allPim = d[0] === (0xff020000 | 0) && d[1] === 0 && d[2] === 0 && d[3] === 0xd;
    pkt.kind = allPim && o + 4 <= end && buf[o] === 0x20 ? MC_ROUTER : MC_DATA;
    return pkt.kind;
  }
  if (nh !== NH_ICMPV6 || o + 4 > end) {
    pkt.kind = MC_DATA;
    return MC_DATA;
  }
  const type = buf[o];
  if (type !== MLD_QUERY && type !== MLD_V1_REPORT && type !== MLD_V1_DONE && type !== MLD_V2_REPORT && type !== MLD_MRD_ADVERT) {
    // neighbour discovery and other ICMPv6: data to its group
    pkt.kind = MC_DATA;
    return MC_DATA;
  }
  const n = end - o;
  if (n < 8) return malformed(pkt, MC_BAD_TRUNCATED);
  if (!icmpv6ChecksumOk(buf, p, o, n)) return malformed(pkt, MC_BAD_CHECKSUM);
  switch (type) {
    case MLD_QUERY: {
      if (n < 24) return malformed(pkt, MC_BAD_TRUNCATED);
      read128(buf, o + 8, pkt.group);
      const g = pkt.group;
      if ((g[0] | g[1] | g[2] | g[3]) !== 0 && !isIpv6Multicast(g)) return malformed(pkt, MC_BAD_GROUP);
      if (n === 24) {
        pkt.version = 1;
        pkt.maxRespMs = be16(buf, o + 4);
      } else if (n >= 28) {
        const nsrc = be16(buf, o + 26);
        if (28 + 16 * nsrc > n) return malformed(pkt, MC_BAD_TRUNCATED);
        pkt.version = 2;
        pkt.maxRespMs = mldv2MaxRespMs(be16(buf, o + 4));
        pkt.nSources = nsrc;
        pkt.srcOff = o + 28;
      } else {
        return malformed(pkt, MC_BAD_LENGTH);
      }
      pkt.kind = MC_QUERY;
      return MC_QUERY;
    }
    case MLD_V1_REPORT:
    case MLD_V1_DONE:
      if (n < 24) return malformed(pkt, MC_BAD_TRUNCATED);
      read128(buf, o + 8, pkt.group);
      if (!isIpv6Multicast(pkt.group)) return malformed(pkt, MC_BAD_GROUP);
      pkt.version = 1;
      pkt.kind = type === MLD_V1_DONE ? MC_LEAVE : MC_REPORT;
      return pkt.kind;
    case MLD_V2_REPORT: {
      const nrec = be16(buf, o + 6);
      if (!checkGroupRecords(buf, o + 8, end, nrec, 16)) return malformed(pkt, MC_BAD_RECORD);
      pkt.version = 2;
      pkt.recCount = nrec;
      pkt.recOff = o + 8;
      pkt.kind = MC_REPORT_V3;
      return MC_REPORT_V3;
    }
    case MLD_MRD_ADVERT:
      pkt.kind = MC_ROUTER;
      return MC_ROUTER;
    default:
      pkt.kind = MC_OTHER;
      return MC_OTHER;
  }
}
