// Ethernet II (DIX) header with optional 802.1Q / 802.1ad tags.
//
//   0      6      12          14 (untagged)   18 (one tag)
//   +------+------+-----------+---------------+
//   | dst  | src  | type/TPID | [TCI][type]   |
//   +------+------+-----------+---------------+
//
// parseEthernet() fills a caller-owned EthernetHeader in place (one per engine), so the per-frame
// path allocates nothing. Frames shorter than 14 bytes are runts; a TPID without room for its TCI
// is malformed (also a runt). Tags are recognised (0x8100 C-tag, 0x88a8 S-tag, 0x9100 legacy QinQ)
// but the bridge decides what to do with them.

export const ETH_HLEN = 14;
export const ETH_ALEN = 6;
export const VLAN_HLEN = 4;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_QINQ1 = 0x9100;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV4 = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_RARP = 0x8035;

export const VLAN_VID_MASK = 0x0fff;

export class EthernetHeader {
  /** Destination MAC: upper 16 bits and lower 32 bits as an int32 (Smis: nothing is boxed per frame). */
  dstHi = 0;
  dstLo = 0;
  /** Source MAC, split the same way. */
  srcHi = 0;
  srcLo = 0;
  /** I/G bit of the destination (broadcast or multicast). */
  dstGroup = false;
  /** I/G bit of the source: never valid on the wire. */
  srcGroup = false;
  /** Outer TPID when the frame carries a tag, else 0. */
  tpid = 0;
  /** Outer TCI (PCP 3 bits, DEI 1, VID 12) when tagged, else 0. */
  tci = 0;
  /** Ethertype after any tags. */
  etherType = 0;
  /** Offset of the payload after the outermost parsed header (14 or 18). */
  payloadOffset = 0;

  /** Destination MAC as one number (control plane, tests). */
  get dst(): number {
    return this.dstHi * 0x1_0000_0000 + (this.dstLo >>> 0);
  }

  /** Source MAC as one number (control plane, tests). */
  get src(): number {
    return this.srcHi * 0x1_0000_0000 + (this.srcLo >>> 0);
  }

  get dstIsBroadcast(): boolean {
    return this.dstHi === 0xffff && this.dstLo === -1;
  }
}

export function isVlanTpid(type: number): boolean {
  return type === ETH_P_8021Q || type === ETH_P_8021AD || type === ETH_P_QINQ1;
}

/**
 * Parses the header of the frame at buf[off .. off+len). Returns false for a runt
 * (shorter than 14 bytes, or a tag without its 4 bytes).
 */
export function parseEthernet(buf: Uint8Array, off: number, len: number, h: EthernetHeader): boolean {
  if (len < ETH_HLEN) return false;
  const d0 = buf[off];
  const s0 = buf[off + 6];
  h.dstHi = (d0 << 8) | buf[off + 1];
  h.dstLo = (buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5];
  h.srcHi = (s0 << 8) | buf[off + 7];
  h.srcLo = (buf[off + 8] << 24) | (buf[off + 9] << 16) | (buf[off + 10] << 8) | buf[off + 11];
  h.dstGroup = (d0 & 1) !== 0;
  h.srcGroup = (s0 & 1) !== 0;
  const type = (buf[off + 12] << 8) | buf[off + 13];
  if (isVlanTpid(type)) {
    if (len < ETH_HLEN + VLAN_HLEN) return false;
    h.tpid = type;
    h.tci = (buf[off + 14] << 8) | buf[off + 15];
    h.etherType = (buf[off + 16] << 8) | buf[off + 17];
    h.payloadOffset = ETH_HLEN + VLAN_HLEN;
  } else {
    h.tpid = 0;
    h.tci = 0;
    h.etherType = type;
    h.payloadOffset = ETH_HLEN;
  }
  return true;
}

/** 01:80:C2:00:00:00 - 01:80:C2:00:00:0F: IEEE 802.1D reserved group addresses, never forwarded. */
const LINK_LOCAL_BASE = 0x0180c2000000;

export function isLinkLocalDst(dst: number): boolean {
  return dst >= LINK_LOCAL_BASE && dst <= LINK_LOCAL_BASE + 0x0f;
}

/** isLinkLocalDst() on a split MAC (hi 16 bits, lo 32 bits as int32). */
export function isLinkLocalHL(hi: number, lo: number): boolean {
  return hi === 0x0180 && (lo & ~0x0f) === (0xc2000000 | 0);
}

export const BROADCAST_MAC = 0xffffffffffff;
