// Transmit hashes of the bond modes that use every member, read from a queued tx entry (off, len, op, arg as
// in PortIo.tx) without allocation:
//
//   slbKey     (source MAC, VLAN): balance-slb, as Open vSwitch's bond_hash_src. The VLAN is the one the frame
//              leaves with (the tx op's tag, else the frame's own tag, else 0).
//   l2Hash     source MAC, destination MAC and VLAN: 802.3ad `hash: layer2` (Linux xmit_hash_policy layer2).
//   l34Hash    IPv4/IPv6 addresses, TCP/UDP/SCTP ports of an unfragmented packet, and the VLAN: `hash: layer3+4`
//              (Open vSwitch balance-tcp). Fragments hash on the L3 part; non-IP frames fall back to l2Hash.
//
// A GSO super-frame is one flow's data: it hashes like that flow's other frames and leaves on one member.
// The 32-bit results are mixed with a finalizer (murmur3 fmix32), so that a few guests spread evenly over
// 256 buckets.

import { TX_OP_NONE, TX_OP_POP_TAG, TX_OP_PUSH_TAG, TX_OP_SET_TAG } from '../io/native-types.js';

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** True when the 2 bytes at p are an 802.1Q / 802.1ad TPID. */
function isTpid(slab: Uint8Array, p: number): boolean {
  const t = (slab[p] << 8) | slab[p + 1];
  return t === 0x8100 || t === 0x88a8;
}

/** The VID the entry leaves with (0 untagged). */
export function txVid(slab: Uint8Array, off: number, len: number, op: number, arg: number): number {
  if (op === TX_OP_PUSH_TAG || op === TX_OP_SET_TAG) return arg & 0xfff;
  if (op === TX_OP_POP_TAG || op !== TX_OP_NONE) return 0;
  if (len >= 18 && isTpid(slab, off + 12)) return ((slab[off + 14] << 8) | slab[off + 15]) & 0xfff;
  return 0;
}

/** The hash of (MAC as hi16/lo32, VID): the balance-slb key. */
export function macVidHash(macHi16: number, macLo32: number, vid: number): number {
  return mix32((macLo32 ^ Math.imul(macHi16 | (vid << 16), 0x9e3779b1)) >>> 0);
}

/** balance-slb: hash of (source MAC, VLAN) of a tx entry. */
export function slbKey(slab: Uint8Array, off: number, len: number, op: number, arg: number): number {
  const hi = (slab[off + 6] << 8) | slab[off + 7];
  const lo = (slab[off + 8] << 24) | (slab[off + 9] << 16) | (slab[off + 10] << 8) | slab[off + 11];
  return macVidHash(hi, lo, txVid(slab, off, len, op, arg));
}

/** 802.3ad layer2: source MAC, destination MAC, VLAN. */
export function l2Hash(slab: Uint8Array, off: number, len: number, op: number, arg: number): number {
  let h = 0;
  for (let i = 0; i < 12; i += 4) h = Math.imul(h ^ ((slab[off + i] << 24) | (slab[off + i + 1] << 16) | (slab[off + i + 2] << 8) | slab[off + i + 3]), 0x01000193);
  return mix32((h ^ txVid(slab, off, len, op, arg)) >>> 0);
}

function word(slab: Uint8Array, p: number): number {
  return (slab[p] << 24) | (slab[p + 1] << 16) | (slab[p + 2] << 8) | slab[p + 3];
}

/** 802.3ad layer3+4: addresses and ports where the frame has them, else l2Hash. Every read is bounds-checked against len. */
export function l34Hash(slab: Uint8Array, off: number, len: number, op: number, arg: number): number {
  let p = off + 12;
  const end = off + len;
  while (p + 4 <= end && isTpid(slab, p)) p += 4;
  if (p + 2 > end) return l2Hash(slab, off, len, op, arg);
  const type = (slab[p] << 8) | slab[p + 1];
  p += 2;
  let h = 0;
  let proto = -1;
  let l4 = -1;
  if (type === 0x0800 && p + 20 <= end && (slab[p] >> 4) === 4) {
    const ihl = (slab[p] & 0x0f) * 4;
    h = word(slab, p + 12) ^ Math.imul(word(slab, p + 16), 0x9e3779b1);
    const frag = ((slab[p + 6] & 0x3f) << 8) | slab[p + 7]; // MF flag and fragment offset
    if (frag === 0 && ihl >= 20) {
      proto = slab[p + 9];
      l4 = p + ihl;
    }
  } else if (type === 0x86dd && p + 40 <= end) {
    for (let i = 8; i < 40; i += 4) h = Math.imul(h ^ word(slab, p + i), 0x01000193);
    proto = slab[p + 6];
    l4 = p + 40;
  } else {
    return l2Hash(slab, off, len, op, arg);
  }
  if ((proto === 6 || proto === 17 || proto === 132) && l4 + 4 <= end) h ^= Math.imul(word(slab, l4), 0x85ebca6b);
  return mix32((h ^ proto ^ (txVid(slab, off, len, op, arg) << 8)) >>> 0);
}
