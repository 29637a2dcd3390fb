// IPv4 multicast classification and IGMPv1/v2/v3 (RFC 1112, 2236, 3376), plus PIM hello (RFC 7761) and
// multicast router discovery (RFC 4286) as far as a snooping switch needs them (RFC 4541).
//
//   IPv4 header (IHL*4 bytes, options such as Router Alert allowed)
//   +---------+------------------------------------------------+
//   | IGMP    | type(1) max_resp(1) checksum(2) group(4)       |  v1/v2: 8 bytes
//   |         |   query v3: + s_qrv(1) qqic(1) nsrc(2) src*4   |  >= 12 bytes
//   |         |   report v3: type 0x22, rsvd(2) csum(2) rsvd(2) nrec(2), then records:
//   |         |     rtype(1) auxlen(1) nsrc(2) group(4) src(4*nsrc) aux(4*auxlen)
//   +---------+------------------------------------------------+
//
// classifyIpv4() reads the packet at buf[p .. p+len) (the Ethernet payload) into a caller-owned
// McastPacket, so the per-frame path allocates nothing. Every offset is range-checked against the IPv4
// total length, which is range-checked against `len`; a v3 report's records are all checked before the
// function returns (checkGroupRecords(), shared with MLDv2: one walker parameterised by the address size), so
// readGroupRecord() can walk them without checks. A packet that claims to be IGMP
// but fails a check is MC_MALFORMED with `reason` (an MC_BAD_* code, names in MALFORMED_REASONS).
//
// Addresses are kept as four int32 words, IPv4 as the IPv4-mapped IPv6 form ::ffff:a.b.c.d, so that
// IGMP and MLD share one multicast database (src/mdb/).

/** What a packet is to the snooping switch. */
export const MC_DATA = 0;
export const MC_QUERY = 1;
/** IGMPv1/v2 membership report, MLDv1 report: join `group` (EXCLUDE {}) */
export const MC_REPORT = 2;
/** IGMPv2 leave, MLDv1 done */
export const MC_LEAVE = 3;
/** IGMPv3 / MLDv2 report: `recCount` group records from `recOff` */
export const MC_REPORT_V3 = 4;
/** PIM hello or multicast router advertisement: the sender is a multicast router */
export const MC_ROUTER = 5;
/** IGMP/MLD that is none of the above (unknown type): flooded, not learned */
export const MC_OTHER = 6;
/** IGMP/MLD that failed a check: dropped, counted by `reason` */
export const MC_MALFORMED = 7;

/** Malformed reasons (McastPacket.reason); names in MALFORMED_REASONS (stats keys). */
export const MC_BAD_IP_HEADER = 0;
export const MC_BAD_TRUNCATED = 1;
export const MC_BAD_CHECKSUM = 2;
export const MC_BAD_GROUP = 3;
export const MC_BAD_RECORD = 4;
export const MC_BAD_FRAGMENT = 5;
export const MC_BAD_LENGTH = 6;
export const MALFORMED_REASONS = ['ip_header', 'truncated', 'checksum', 'bad_group', 'bad_record', 'fragment', 'bad_length'] as const;
export type MalformedReason = (typeof MALFORMED_REASONS)[number];

/** IGMPv3 / MLDv2 group record types (RFC 3376 4.2.12). */
export const REC_IS_IN = 1;
export const REC_IS_EX = 2;
export const REC_TO_IN = 3;
export const REC_TO_EX = 4;
export const REC_ALLOW = 5;
export const REC_BLOCK = 6;

export const IPPROTO_IGMP = 2;
export const IPPROTO_PIM = 103;
const IGMP_QUERY = 0x11;
const IGMP_V1_REPORT = 0x12;
const IGMP_V2_REPORT = 0x16;
const IGMP_LEAVE = 0x17;
const IGMP_V3_REPORT = 0x22;
const IGMP_MRD_ADVERT = 0x30;
/** ::ffff:0:0/96, the IPv4-mapped prefix, in the third word */
export const V4_MAPPED = 0xffff;
/** 224.0.0.13 all-PIM-routers */
const ALL_PIM_ROUTERS_V4 = 0xe000000d | 0;

/** A classified multicast packet (one per engine, filled in place). */
export class McastPacket {
  /** MC_* */
  kind = MC_DATA;
  /** 4 or 6 */
  family = 4;
  /** IGMP 1..3, MLD 1..2 (queries and reports); 0 for data */
  version = 0;
  /** MC_BAD_* when kind is MC_MALFORMED */
  reason = 0;
  /** IP source and destination, four words each (IPv4: 0, 0, 0xffff, address) */
  readonly src = new Int32Array(4);
  readonly dst = new Int32Array(4);
  /** The group a query, v1/v2 report or leave names (all zero: a general query) */
  readonly group = new Int32Array(4);
  /** Query: maximum response time in ms */
  maxRespMs = 0;
  /** v3/MLDv2 query: number of sources and the offset of the first */
  nSources = 0;
  srcOff = 0;
  /** v3/MLDv2 report: number of group records and the offset of the first (all checked) */
  recCount = 0;
  recOff = 0;
}

/** One group record of a v3/MLDv2 report (readGroupRecord fills it). */
export class McastRecord {
  type = 0;
  readonly group = new Int32Array(4);
  nSources = 0;
  /** offset of the first source, and the size of an address: 4 (IGMPv3) or 16 (MLDv2) */
  srcOff = 0;
  addrLen = 4;
}

function be16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function be32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

function setV4(w: Int32Array, a: number): void {
  w[0] = 0;
  w[1] = 0;
  w[2] = V4_MAPPED;
  w[3] = a;
}

/** Reads the address of `addrLen` bytes at buf[o] into four words: 4 (IPv4, stored IPv4-mapped) or 16 (IPv6). */
export function readAddress(buf: Uint8Array, o: number, w: Int32Array, addrLen: number): void {
  if (addrLen === 4) {
    setV4(w, be32(buf, o));
    return;
  }
  w[0] = be32(buf, o);
  w[1] = be32(buf, o + 4);
  w[2] = be32(buf, o + 8);
  w[3] = be32(buf, o + 12);
}

/** The Internet checksum's folded one's-complement sum of buf[o .. o+n), plus `initial`. */
export function onesSum(b: Uint8Array, o: number, n: number, initial: number): number {
  let s = initial;
  const end = o + (n & ~1);
  for (let i = o; i < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if ((n & 1) !== 0) s += b[o + n - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** True for an IPv4 multicast address (224.0.0.0/4). */
export function isIpv4Multicast(a: number): boolean {
  return (a >>> 28) === 0xe;
}

/** 224.0.0.0/24: link-local control groups, always flooded and never learned. */
export function isIpv4LinkLocalGroup(a: number): boolean {
  return (a >>> 8) === 0xe00000;
}

/**
 * Classifies the IPv4 packet at buf[p .. p+len). Returns pkt.kind: MC_DATA for a sound header that is not
 * IGMP (nor a PIM hello), src/dst set; MC_MALFORMED when the IPv4 header does not hold together (such a
 * packet has no group to forward by) or IGMP fails a check.
 */
export function classifyIpv4(buf: Uint8Array, p: number, len: number, pkt: McastPacket): number {
  pkt.family = 4;
  pkt.version = 0;
  pkt.recCount = 0;
  pkt.nSources = 0;
  if (len < 20) return malformed(pkt, MC_BAD_TRUNCATED);
  const b0 = buf[p];
  const ihl = (b0 & 0x0f) * 4;
  const total = be16(buf, p + 2);
  if ((b0 >>> 4) !== 4 || ihl < 20 || total < ihl || total > len) return malformed(pkt, MC_BAD_IP_HEADER);
  setV4(pkt.src, be32(buf, p + 12));
  const dst = be32(buf, p + 16);
  setV4(pkt.dst, dst);
  const proto = buf[p + 9];
  const fragment = (be16(buf, p + 6) & 0x3fff) !== 0;
  if (proto === IPPROTO_PIM) {
    // PIMv2 hello (version 2, type 0) to 224.0.0.13
    if (!fragment && dst === ALL_PIM_ROUTERS_V4 && total - ihl >= 4 && buf[p + ihl] === 0x20) pkt.kind = MC_ROUTER;
    else pkt.kind = MC_DATA;
    return pkt.kind;
  }
  if (proto !== IPPROTO_IGMP) {
    pkt.kind = MC_DATA;
    return MC_DATA;
  }
  if (fragment) return malformed(pkt, MC_BAD_FRAGMENT);
  const q = p + ihl;
  const n = total - ihl;
  if (n < 8) return malformed(pkt, MC_BAD_TRUNCATED);
  if (onesSum(buf, q, n, 0) !== 0xffff) return malformed(pkt, MC_BAD_CHECKSUM);
  const type = buf[q];
  const group = be32(buf, q + 4);
  switch (type) {
    case IGMP_QUERY: {
      if (group !== 0 && !isIpv4Multicast(group)) return malformed(pkt, MC_BAD_GROUP);
      setV4(pkt.group, group);
      const code = buf[q + 1];
      if (n === 8) {
        pkt.version = code === 0 ? 1 : 2;
        pkt.maxRespMs = code === 0 ? 10_000 : code * 100;
      } else if (n >= 12) {
        const nsrc = be16(buf, q + 10);
        if (12 + 4 * nsrc > n) return malformed(pkt, MC_BAD_TRUNCATED);
        pkt.version = 3;
        // RFC 3376 4.1.1: codes >= 128 are a floating-point exponent/mantissa
        pkt.maxRespMs = (code < 128 ? code : ((code & 0x0f) | 0x10) << (((code >>> 4) & 7) + 3)) * 100;
        pkt.nSources = nsrc;
        pkt.srcOff = q + 12;
      } else {
        return malformed(pkt, MC_BAD_LENGTH);
      }
      pkt.kind = MC_QUERY;
      return MC_QUERY;
    }
    case IGMP_V1_REPORT:
    case IGMP_V2_REPORT:
    case IGMP_LEAVE:
      if (!isIpv4Multicast(group)) return malformed(pkt, MC_BAD_GROUP);
      setV4(pkt.group, group);
      pkt.version = type === IGMP_V1_REPORT ? 1 : 2;
      pkt.kind = type === IGMP_LEAVE ? MC_LEAVE : MC_REPORT;
      return pkt.kind;
    case IGMP_V3_REPORT: {
      const nrec = be16(buf, q + 6);
      if (!checkGroupRecords(buf, q + 8, q + n, nrec, 4)) return malformed(pkt, MC_BAD_RECORD);
      pkt.version = 3;
      pkt.recCount = nrec;
      pkt.recOff = q + 8;
      pkt.kind = MC_REPORT_V3;
      return MC_REPORT_V3;
    }
    case IGMP_MRD_ADVERT:
      pkt.kind = MC_ROUTER;
      return MC_ROUTER;
    default:
      pkt.kind = MC_OTHER;
      return MC_OTHER;
  }
}

function malformed(pkt: McastPacket, reason: number): number {
  pkt.kind = MC_MALFORMED;
  pkt.reason = reason;
  return MC_MALFORMED;
}

// Group records, the same walk for IGMPv3 (addrLen 4) and MLDv2 (addrLen 16):
//   rtype(1) auxlen(1) nsrc(2) group(addrLen) src(addrLen*nsrc) aux(4*auxlen)

/**
 * Checks the `nrec` group records of an IGMPv3 / MLDv2 report from buf[o] to `end`: each lies within `end`, has a known
 * record type and a multicast group. False at the first that does not.
 */
export function checkGroupRecords(buf: Uint8Array, o: number, end: number, nrec: number, addrLen: number): boolean {
  for (let r = 0; r < nrec; r++) {
    if (o + 4 + addrLen > end) return false;
    const rt = buf[o];
    const size = 4 + addrLen + addrLen * be16(buf, o + 2) + 4 * buf[o + 1];
    const multicast = addrLen === 4 ? isIpv4Multicast(be32(buf, o + 4)) : buf[o + 4] === 0xff;
    if (rt < REC_IS_IN || rt > REC_BLOCK || o + size > end || !multicast) return false;
    o += size;
  }
  return true;
}

/** Reads the group record at `o` (checked by checkGroupRecords) into rec; returns the next record's offset. */
export function readGroupRecord(buf: Uint8Array, o: number, rec: McastRecord, addrLen: number): number {
  rec.type = buf[o];
  const nsrc = be16(buf, o + 2);
  rec.nSources = nsrc;
  rec.addrLen = addrLen;
  readAddress(buf, o + 4, rec.group, addrLen);
  rec.srcOff = o + 4 + addrLen;
  return o + 4 + addrLen + addrLen * nsrc + 4 * buf[o + 1];
}

/** Reads source `i` of the record last read into `rec` into w. */
export function readRecordSource(buf: Uint8Array, rec: McastRecord, i: number, w: Int32Array): void {
  readAddress(buf, rec.srcOff + rec.addrLen * i, w, rec.addrLen);
}
