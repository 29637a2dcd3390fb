// Port security: VIF locking (XenServer's locking_mode, done in the bridge), RA guard and DHCP guard.
//
// Model: one PortSecurity per port that needs checks (null otherwise: an unlocked port without guards
// costs one null compare). It is precomputed when the config is loaded or `lock set` runs and replaced
// as a whole between batches. checkSecurity() runs at ingress, before learning, and returns a drop
// reason (SEC_PASS when the frame may go on); the engine counts it in port.securityDrops[reason].
//
//   lock: disabled        every frame                                               -> lock_disabled
//   lock: { mac, ipv4, ipv6, allow_ethertypes }
//     source MAC other than `mac`                                                   -> lock_mac
//     ARP: sender MAC not `mac`, or sender IP not in ipv4 (0.0.0.0 probes allowed)  -> lock_arp
//     IPv4 source not in ipv4 (0.0.0.0 UDP 68 -> 67, a DHCP client, allowed)       -> lock_ipv4
//     IPv6 source not in ipv6 (+ fe80:: EUI-64 of `mac` when ipv6 is not empty);
//       from :: only DAD: a neighbour solicitation for an allowed target           -> lock_ipv6
//     NA for a target not allowed; NS/NA with a link-layer option other than `mac`  -> lock_nd
//     any other ethertype, unless listed in allow_ethertypes                        -> lock_other
//   An empty (or missing) ipv4 list means no IPv4 and no ARP at all; the same for ipv6.
//   ra_guard    ICMPv6 router advertisement (134) or redirect (137)                 -> ra_guard
//   dhcp_guard  what a DHCP client takes, judged by destination port as the clients do (busybox udhcpc,
//               dhclient and systemd-networkd ignore the source port):
//               UDP to port 68 whose BOOTP op is 2 (BOOTREPLY), or whose op byte is not in this
//               packet while more fragments follow; any UDP to port 546 (DHCPv6 client) -> dhcp_guard
//   Both guards walk the IPv6 extension-header chain (RFC 7113); a packet whose chain does not reach
//   the upper-layer header in its first fragment (RFC 7112), or is malformed, is dropped by the guard.
//   Later fragments carry no upper-layer header and pass (their first fragment was checked).
//
// Tags: every check judges the ethertype behind all VLAN tags. A Linux neighbour strips a VID 0 tag
// (0x8100 or 0x88a8) and reads what is inside, so a router advertisement behind `88a8 VID 0` is still a
// router advertisement to it. checkFull() walks up to SEC_MAX_TAGS tags (TPIDs 0x8100, 0x88a8, 0x9100),
// range-checking each, and checks the packet behind the last one exactly as an untagged one. A frame
// whose walk does not reach an ethertype (more than SEC_MAX_TAGS tags, or a tag cut by the end of the
// frame) is dropped: `lock_other` on a locked port, else `ra_guard` (or `dhcp_guard` when only that guard
// is on). A TPID listed in allow_ethertypes therefore never matches: list the inner ethertype instead.
//
// Notes on performance
//   No allocation: addresses are int32 words compared against small typed arrays (prefix + mask), the
//   header walk keeps its results in module-level scalars. A locked port reads a few header bytes and
//   scans a table of a handful of entries. checkSecurity() is a small fast path (the locked MAC; IPv4
//   from the first allowed entry, not UDP under the DHCP guard; IPv6 TCP, UDP or non-NDP ICMPv6 without
//   extension headers from an allowed address, not UDP under the DHCP guard); checkFull() decides every
//   case on its own.

import { isIPv4, isIPv6 } from 'node:net';
import { ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, type EthernetHeader, isVlanTpid, VLAN_HLEN } from '../frame/ethernet.js';
import { formatMac, macIsMulticast, parseMac } from '../frame/mac.js';

export const SEC_PASS = 0;
export const SEC_LOCK_MAC = 1;
export const SEC_LOCK_ARP = 2;
export const SEC_LOCK_IPV4 = 3;
export const SEC_LOCK_IPV6 = 4;
export const SEC_LOCK_ND = 5;
export const SEC_LOCK_OTHER = 6;
export const SEC_LOCK_DISABLED = 7;
export const SEC_RA_GUARD = 8;
export const SEC_DHCP_GUARD = 9;
/** Size of a port's securityDrops array (index = reason). */
export const SEC_REASON_COUNT = 10;

/** Counter names (stats `drops` keys) by reason. */
export const SECURITY_DROP_NAMES = [
  'lock_mac', 'lock_arp', 'lock_ipv4', 'lock_ipv6', 'lock_nd', 'lock_other', 'lock_disabled', 'ra_guard', 'dhcp_guard',
] as const;
export type SecurityDropName = (typeof SECURITY_DROP_NAMES)[number];

const LOCK_NONE = 0;
const LOCK_LOCKED = 1;
const LOCK_DISABLED = 2;

/** Most addresses/prefixes per family in one lock (a VIF has a handful). */
export const LOCK_MAX_ADDRESSES = 64;
/** Most VLAN tags (outer included) walked to the ethertype; a frame with more is dropped. */
export const SEC_MAX_TAGS = 4;
/** Most extension headers walked before the chain counts as incomplete. */
const IPV6_MAX_EXT_HEADERS = 16;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_NONE = 59;

const DHCP_CLIENT_PORT = 68;
const DHCPV6_CLIENT_PORT = 546;
const BOOTREPLY = 2;
/** IPv4 flags: more fragments */
const IP_MF = 0x2000;

/** router solicitation: the first NDP type (133..137) */
const ICMPV6_RS = 133;
const ICMPV6_RA = 134;
const ICMPV6_NS = 135;
const ICMPV6_NA = 136;
const ICMPV6_REDIRECT = 137;
const ND_OPT_SOURCE_LL = 1;
const ND_OPT_TARGET_LL = 2;

export type LockSpec =
  | { mode: 'unlocked' }
  | { mode: 'disabled' }
  | { mode: 'locked'; mac: number; ipv4: string[]; ipv6: string[]; allowEthertypes: number[] };

export const UNLOCKED: LockSpec = { mode: 'unlocked' };

/** JSON of `lock show` for one port. */
export interface LockShow {
  port: string;
  mode: 'unlocked' | 'locked' | 'disabled';
  mac: string | null;
  ipv4: string[];
  ipv6: string[];
  allow_ethertypes: string[];
  ra_guard: boolean;
  dhcp_guard: boolean;
}

/** The precomputed tables of one port; immutable once built. */
export class PortSecurity {
  readonly lock: LockSpec;
  readonly raGuard: boolean;
  readonly dhcpGuard: boolean;
  readonly mode: number;
  readonly macHi: number;
  readonly macLo: number;
  /** IPv4 prefixes: network (masked) and mask, int32. */
  readonly v4Net: Int32Array;
  readonly v4Mask: Int32Array;
  /** The first IPv4 entry for the fast path; mask 0 / net 1 (never matches) without one. */
  readonly v4Net0: number;
  readonly v4Mask0: number;
  /** IPv6 prefixes: 4 int32 words each, network (masked) and mask. */
  readonly v6Net: Int32Array;
  readonly v6Mask: Int32Array;
  readonly allowTypes: Int32Array;

  constructor(lock: LockSpec, guards: { raGuard: boolean; dhcpGuard: boolean }) {
    this.lock = lock;
    this.raGuard = guards.raGuard;
    this.dhcpGuard = guards.dhcpGuard;
    this.mode = lock.mode === 'locked' ? LOCK_LOCKED : lock.mode === 'disabled' ? LOCK_DISABLED : LOCK_NONE;
    let v4: [number, number][] = [];
    let v6: [Uint8Array, number][] = [];
    let types: number[] = [];
    if (lock.mode === 'locked') {
      this.macHi = Math.floor(lock.mac / 0x1_0000_0000) | 0;
      this.macLo = (lock.mac % 0x1_0000_0000) | 0;
      v4 = lock.ipv4.map((t) => parseIpv4Prefix(t) ?? badAddress(t));
      v6 = lock.ipv6.map((t) => parseIpv6Prefix(t) ?? badAddress(t));
      if (v6.length > 0) v6.push([eui64LinkLocal(lock.mac), 128]);
      types = lock.allowEthertypes;
    } else {
      this.macHi = 0;
      this.macLo = 0;
    }
    this.v4Net = new Int32Array(v4.length);
    this.v4Mask = new Int32Array(v4.length);
    v4.forEach(([addr, len], i) => {
      const mask = len === 0 ? 0 : (-1 << (32 - len)) | 0;
      this.v4Mask[i] = mask;
      this.v4Net[i] = addr & mask;
    });
    this.v4Net0 = v4.length > 0 ? this.v4Net[0] : 1;
    this.v4Mask0 = v4.length > 0 ? this.v4Mask[0] : 0;
    this.v6Net = new Int32Array(4 * v6.length);
    this.v6Mask = new Int32Array(4 * v6.length);
    v6.forEach(([bytes, len], i) => {
      for (let w = 0; w < 4; w++) {
        const bits = Math.max(0, Math.min(32, len - 32 * w));
        const mask = bits === 0 ? 0 : (-1 << (32 - bits)) | 0;
        const word = (bytes[4 * w] << 24) | (bytes[4 * w + 1] << 16) | (bytes[4 * w + 2] << 8) | bytes[4 * w + 3];
        this.v6Mask[4 * i + w] = mask;
        this.v6Net[4 * i + w] = word & mask;
      }
    });
    this.allowTypes = Int32Array.from(types);
  }

  /** A PortSecurity when the port needs any check, else null (the engine skips the step). */
  static build(lock: LockSpec, guards: { raGuard: boolean; dhcpGuard: boolean }): PortSecurity | null {
    if (lock.mode === 'unlocked' && !guards.raGuard && !guards.dhcpGuard) return null;
    return new PortSecurity(lock, guards);
  }

  v4Allowed(addr: number): boolean {
    const net = this.v4Net;
    const mask = this.v4Mask;
    for (let i = 0; i < net.length; i++) if ((addr & mask[i]) === net[i]) return true;
    return false;
  }

  /** The IPv6 address at b[q .. q+15] is in one of the prefixes. */
  v6Allowed(b: Uint8Array, q: number): boolean {
    const net = this.v6Net;
    const mask = this.v6Mask;
    const w0 = (b[q] << 24) | (b[q + 1] << 16) | (b[q + 2] << 8) | b[q + 3];
    const w1 = (b[q + 4] << 24) | (b[q + 5] << 16) | (b[q + 6] << 8) | b[q + 7];
    const w2 = (b[q + 8] << 24) | (b[q + 9] << 16) | (b[q + 10] << 8) | b[q + 11];
    const w3 = (b[q + 12] << 24) | (b[q + 13] << 16) | (b[q + 14] << 8) | b[q + 15];
    for (let i = 0; i < net.length; i += 4) {
      if ((w0 & mask[i]) === net[i] && (w1 & mask[i + 1]) === net[i + 1] &&
        (w2 & mask[i + 2]) === net[i + 2] && (w3 & mask[i + 3]) === net[i + 3]) return true;
    }
    return false;
  }

  /** The MAC at b[q .. q+5] is the locked one. */
  macIs(b: Uint8Array, q: number): boolean {
    return ((b[q] << 8) | b[q + 1]) === this.macHi &&
      ((b[q + 2] << 24) | (b[q + 3] << 16) | (b[q + 4] << 8) | b[q + 5]) === this.macLo;
  }

  typeAllowed(type: number): boolean {
    const t = this.allowTypes;
    for (let i = 0; i < t.length; i++) if (t[i] === type) return true;
    return false;
  }

  describe(port: string): LockShow {
    const l = this.lock;
    return {
      port,
      mode: l.mode,
      mac: l.mode === 'locked' ? formatMac(l.mac) : null,
      ipv4: l.mode === 'locked' ? [...l.ipv4] : [],
      ipv6: l.mode === 'locked' ? [...l.ipv6] : [],
      allow_ethertypes: l.mode === 'locked' ? l.allowEthertypes.map(formatEthertype) : [],
      ra_guard: this.raGuard,
      dhcp_guard: this.dhcpGuard,
    };
  }
}

function badAddress(t: string): never {
  throw new RangeError(`lock: ${t} is not an address or prefix`);
}

// ------------------------------------------------------------------------------------------ per frame

const WALK_OK = 0;
/** the chain does not reach a complete upper-layer header (or is malformed) */
const WALK_INCOMPLETE = 1;
/** a fragment other than the first: no upper-layer header here */
const WALK_LATER_FRAGMENT = 2;

/** Results of the last walkIpv6(): upper-layer protocol, its offset, and the end of the IPv6 packet. */
let walkProto = 0;
let walkOff = 0;
let walkEnd = 0;

/** Results of the last walkTags(): the ethertype behind every VLAN tag, and the offset of its payload in the frame. */
let tagType = 0;
let tagPayloadOffset = 0;

/**
 * Walks the VLAN tags of the frame at b[off .. off+len), whose outer tag (if any) parseEthernet() read into hdr,
 * to the ethertype behind the last one. False when the frame has more than SEC_MAX_TAGS tags or a tag is cut
 * by the frame's end.
 */
function walkTags(b: Uint8Array, off: number, len: number, hdr: EthernetHeader): boolean {
  let type = hdr.etherType;
  let q = hdr.payloadOffset;
  let tags = hdr.tpid === 0 ? 0 : 1;
  while (isVlanTpid(type)) {
    if (tags === SEC_MAX_TAGS || q + VLAN_HLEN > len) return false;
    type = (b[off + q + 2] << 8) | b[off + q + 3];
    q += VLAN_HLEN;
    tags++;
  }
  tagType = type;
  tagPayloadOffset = q;
  return true;
}

/** Minimum bytes of an upper-layer header the guards and locks read. */
function upperMin(proto: number): number {
  if (proto === IPPROTO_ICMPV6) return 4;
  if (proto === IPPROTO_UDP) return 8;
  if (proto === IPPROTO_TCP) return 20;
  return 0;
}

/**
 * Walks the IPv6 header at b[p ..] (at least 40 bytes, version 6: the caller checked) up to the
 * upper-layer header, within the packet's payload length and the frame's end.
 */
function walkIpv6(b: Uint8Array, p: number, end: number): number {
  const plen = (b[p + 4] << 8) | b[p + 5];
  // payload length 0 is a jumbogram (RFC 2675): bounded by the frame
  const lim = plen === 0 ? end : p + 40 + plen;
  if (lim > end) return WALK_INCOMPLETE;
  walkEnd = lim;
  let next = b[p + 6];
  let q = p + 40;
  for (let n = 0; n < IPV6_MAX_EXT_HEADERS; n++) {
    switch (next) {
      case 0: // Hop-by-Hop
      case 43: // Routing
      case 60: // Destination Options
      case 135: // Mobility
      case 139: // HIP
      case 140: // Shim6
        if (q + 8 > lim) return WALK_INCOMPLETE;
        next = b[q];
        q += (b[q + 1] + 1) * 8;
        break;
      case 51: // AH: length in 4-byte units, minus 2
        if (q + 8 > lim) return WALK_INCOMPLETE;
        next = b[q];
        q += (b[q + 1] + 2) * 4;
        break;
      case 44: { // Fragment
        if (q + 8 > lim) return WALK_INCOMPLETE;
        const fragOff = ((b[q + 2] << 8) | b[q + 3]) & 0xfff8;
        next = b[q];
        q += 8;
        if (fragOff !== 0) {
          walkProto = next;
          walkOff = q;
          return WALK_LATER_FRAGMENT;
        }
        break;
      }
      default:
        walkProto = next;
        walkOff = q;
        if (next === IPPROTO_NONE) return WALK_OK;
        return q + upperMin(next) <= lim ? WALK_OK : WALK_INCOMPLETE;
    }
  }
  return WALK_INCOMPLETE;
}

/** NDP options from b[q] to walkEnd: a link-layer address option (source or target) other than the MAC. */
function ndOptionsBad(sec: PortSecurity, b: Uint8Array, q: number): boolean {
  const end = walkEnd;
  while (q + 2 <= end) {
    const type = b[q];
    const len = b[q + 1] * 8;
    if (len === 0 || q + len > end) return true;
    if ((type === ND_OPT_SOURCE_LL || type === ND_OPT_TARGET_LL) && (len !== 8 || !sec.macIs(b, q + 2))) return true;
    q += len;
  }
  return q !== end;
}

function checkArp(sec: PortSecurity, b: Uint8Array, p: number, end: number): number {
  // htype 1, ptype 0x0800, hlen 6, plen 4
  if (end - p < 28 || b[p] !== 0 || b[p + 1] !== 1 || b[p + 2] !== 0x08 || b[p + 3] !== 0 || b[p + 4] !== 6 || b[p + 5] !== 4) {
    return SEC_LOCK_ARP;
  }
  if (!sec.macIs(b, p + 8)) return SEC_LOCK_ARP;
  const spa = (b[p + 14] << 24) | (b[p + 15] << 16) | (b[p + 16] << 8) | b[p + 17];
  if (sec.v4Net.length === 0) return SEC_LOCK_ARP;
  if (spa === 0 || sec.v4Allowed(spa)) return SEC_PASS;
  return SEC_LOCK_ARP;
}

/** Offset of the UDP header of the IPv4 packet at b[p], or -1 (not UDP, a later fragment, too short). */
function ipv4Udp(b: Uint8Array, p: number, end: number): number {
  const ihl = (b[p] & 0x0f) * 4;
  if (ihl < 20 || b[p + 9] !== IPPROTO_UDP || (((b[p + 6] << 8) | b[p + 7]) & 0x1fff) !== 0) return -1;
  const q = p + ihl;
  return q + 8 <= end ? q : -1;
}

/** IPv4 on a locked port: the source is allowed, or 0.0.0.0 of a DHCP client (UDP 68 -> 67). */
function checkLockIpv4(sec: PortSecurity, b: Uint8Array, p: number, end: number): number {
  if (end - p < 20 || (b[p] >> 4) !== 4) return SEC_LOCK_IPV4;
  const src = (b[p + 12] << 24) | (b[p + 13] << 16) | (b[p + 14] << 8) | b[p + 15];
  if (sec.v4Allowed(src)) return SEC_PASS;
  return src === 0 ? checkDhcpClient(sec, b, p, end) : SEC_LOCK_IPV4;
}

function checkDhcpClient(sec: PortSecurity, b: Uint8Array, p: number, end: number): number {
  if (sec.v4Net.length === 0) return SEC_LOCK_IPV4;
  const u = ipv4Udp(b, p, end);
  if (u >= 0 && b[u] === 0 && b[u + 1] === 68 && b[u + 2] === 0 && b[u + 3] === 67) return SEC_PASS;
  return SEC_LOCK_IPV4;
}

function checkLockIpv6(sec: PortSecurity, b: Uint8Array, p: number, end: number): number {
  if (end - p < 40 || (b[p] >> 4) !== 6 || sec.v6Net.length === 0) return SEC_LOCK_IPV6;
  const s = p + 8;
  if (sec.v6Allowed(b, s)) {
    // TCP or UDP straight after the fixed header: no NDP to look into
    const nh = b[p + 6];
    if (nh === IPPROTO_TCP || nh === IPPROTO_UDP) return SEC_PASS;
    const walk = walkIpv6(b, p, end);
    if (walk === WALK_INCOMPLETE) return SEC_LOCK_IPV6;
    const type = walk === WALK_OK && walkProto === IPPROTO_ICMPV6 ? b[walkOff] : -1;
    if (type === ICMPV6_NA) {
      if (walkOff + 24 > walkEnd || !sec.v6Allowed(b, walkOff + 8)) return SEC_LOCK_ND;
      return ndOptionsBad(sec, b, walkOff + 24) ? SEC_LOCK_ND : SEC_PASS;
    }
    if (type === ICMPV6_NS) {
      if (walkOff + 24 > walkEnd) return SEC_LOCK_ND;
      return ndOptionsBad(sec, b, walkOff + 24) ? SEC_LOCK_ND : SEC_PASS;
    }
    return SEC_PASS;
  }
  for (let i = 0; i < 16; i++) if (b[s + i] !== 0) return SEC_LOCK_IPV6;
  // from :: only duplicate address detection for an address of this guest
  if (walkIpv6(b, p, end) !== WALK_OK || walkProto !== IPPROTO_ICMPV6 || b[walkOff] !== ICMPV6_NS ||
    walkOff + 24 > walkEnd || !sec.v6Allowed(b, walkOff + 8)) return SEC_LOCK_IPV6;
  return ndOptionsBad(sec, b, walkOff + 24) ? SEC_LOCK_ND : SEC_PASS;
}

/** The guards' reason for a packet they cannot inspect. */
function guardReason(sec: PortSecurity): number {
  return sec.raGuard ? SEC_RA_GUARD : SEC_DHCP_GUARD;
}

function checkGuardsIpv6(sec: PortSecurity, b: Uint8Array, p: number, end: number): number {
  if (end - p < 40 || (b[p] >> 4) !== 6) return guardReason(sec);
  const walk = walkIpv6(b, p, end);
  if (walk === WALK_INCOMPLETE) return guardReason(sec);
  if (walk === WALK_LATER_FRAGMENT) return SEC_PASS;
  const q = walkOff;
  if (walkProto === IPPROTO_ICMPV6) {
    if (sec.raGuard && (b[q] === ICMPV6_RA || b[q] === ICMPV6_REDIRECT)) return SEC_RA_GUARD;
  } else if (walkProto === IPPROTO_UDP) {
    // anything to a DHCPv6 client (port 546), whatever its source port
    if (sec.dhcpGuard && ((b[q + 2] << 8) | b[q + 3]) === DHCPV6_CLIENT_PORT) return SEC_DHCP_GUARD;
  }
  return SEC_PASS;
}

/**
 * The DHCP guard on the IPv4 packet at b[p ..]: UDP to port 68 (any source port) carrying a BOOTREPLY. The
 * packet ends at its total length (frame padding is not read as BOOTP). A first fragment that hides the UDP
 * header or the op byte in a later fragment is dropped; later fragments pass (their first was checked).
 */
function checkGuardIpv4(b: Uint8Array, p: number, end: number): number {
  if (end - p < 20 || (b[p] >> 4) !== 4) return SEC_DHCP_GUARD;
  if (b[p + 9] !== IPPROTO_UDP) return SEC_PASS;
  const ihl = (b[p] & 0x0f) * 4;
  const frag = (b[p + 6] << 8) | b[p + 7];
  if (ihl < 20 || (frag & 0x1fff) !== 0) return SEC_PASS;
  const total = (b[p + 2] << 8) | b[p + 3];
  const ipEnd = total >= ihl && p + total <= end ? p + total : end;
  const more = (frag & IP_MF) !== 0;
  const u = p + ihl;
  if (u + 8 > ipEnd) return more ? SEC_DHCP_GUARD : SEC_PASS;
  if (b[u + 2] !== 0 || b[u + 3] !== DHCP_CLIENT_PORT) return SEC_PASS;
  if (u + 8 >= ipEnd) return more ? SEC_DHCP_GUARD : SEC_PASS;
  return b[u + 8] === BOOTREPLY ? SEC_DHCP_GUARD : SEC_PASS;
}

/**
 * The port-security verdict on the frame at slab[off .. off+len) whose Ethernet header is parsed in
 * hdr: SEC_PASS or the drop reason. The fast path, small enough for V8 to inline into the engine,
 * passes the common frame of a locked VIF: its MAC, IPv4 from its first address or prefix, no guard
 * to run. Everything else goes through checkFull(), which decides every case on its own.
 */
export function checkSecurity(sec: PortSecurity, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): number {
  if (sec.mode === LOCK_LOCKED) {
    if (hdr.srcLo !== sec.macLo || hdr.srcHi !== sec.macHi) return SEC_LOCK_MAC;
    // an ethertype that is no TPID: the packet starts at payloadOffset, behind at most one tag (what checkFull's walk finds)
    if (hdr.etherType === ETH_P_IPV4) {
      const p = off + hdr.payloadOffset;
      if (len - hdr.payloadOffset >= 20 && (slab[p] >> 4) === 4 && (!sec.dhcpGuard || slab[p + 9] !== IPPROTO_UDP) &&
        (((slab[p + 12] << 24) | (slab[p + 13] << 16) | (slab[p + 14] << 8) | slab[p + 15]) & sec.v4Mask0) === sec.v4Net0) {
        return SEC_PASS;
      }
    } else if (hdr.etherType === ETH_P_IPV6) {
      // IPv6 without extension headers, complete in the frame: TCP, UDP (no DHCP guard), or ICMPv6 below the NDP
      // types (neither an RA nor a redirect)
      const p = off + hdr.payloadOffset;
      const nh = slab[p + 6];
      const plen = (slab[p + 4] << 8) | slab[p + 5];
      if (len - hdr.payloadOffset >= 48 && (slab[p] >> 4) === 6 && plen >= 8 && 40 + plen <= len - hdr.payloadOffset &&
        (nh === IPPROTO_TCP || (nh === IPPROTO_UDP && !sec.dhcpGuard) || (nh === IPPROTO_ICMPV6 && slab[p + 40] < ICMPV6_RS)) &&
        sec.v6Allowed(slab, p + 8)) {
        return SEC_PASS;
      }
    }
  }
  return checkFull(sec, slab, off, len, hdr);
}

/** The complete verdict (the MAC of a locked port is checked again: it stands alone; tests compare it with the fast path). */
export function checkFull(sec: PortSecurity, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): number {
  const mode = sec.mode;
  if (mode === LOCK_DISABLED) return SEC_LOCK_DISABLED;
  if (mode === LOCK_LOCKED && (hdr.srcLo !== sec.macLo || hdr.srcHi !== sec.macHi)) return SEC_LOCK_MAC;
  // what a neighbour reads: the ethertype behind every tag (no walk when the one parsed is none)
  let type = hdr.etherType;
  let p = off + hdr.payloadOffset;
  if (isVlanTpid(type)) {
    if (!walkTags(slab, off, len, hdr)) return mode === LOCK_LOCKED ? SEC_LOCK_OTHER : guardReason(sec);
    type = tagType;
    p = off + tagPayloadOffset;
  }
  if (type !== ETH_P_IPV4) return checkOther(sec, slab, p, off + len, type);
  if (mode === LOCK_LOCKED) {
    const r = checkLockIpv4(sec, slab, p, off + len);
    if (r !== SEC_PASS) return r;
  }
  return sec.dhcpGuard ? checkGuardIpv4(slab, p, off + len) : SEC_PASS;
}

/** Everything but IPv4: ARP, IPv6 and other ethertypes (the MAC was checked). */
function checkOther(sec: PortSecurity, slab: Uint8Array, p: number, end: number, type: number): number {
  if (sec.mode === LOCK_LOCKED) {
    if (type === ETH_P_ARP) return checkArp(sec, slab, p, end);
    if (type === ETH_P_IPV6) {
      const r = checkLockIpv6(sec, slab, p, end);
      if (r !== SEC_PASS) return r;
    } else if (!sec.typeAllowed(type)) {
      return SEC_LOCK_OTHER;
    }
  }
  if (type === ETH_P_IPV6 && (sec.raGuard || sec.dhcpGuard)) return checkGuardsIpv6(sec, slab, p, end);
  return SEC_PASS;
}

// ------------------------------------------------------------------------------------------ control plane

/** The fe80::/64 address a guest derives from its MAC (modified EUI-64, RFC 4291). */
export function eui64LinkLocal(mac: number): Uint8Array {
  const m = new Uint8Array(6);
  let v = mac;
  for (let i = 5; i >= 0; i--) {
    m[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return Uint8Array.from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
}

function splitPrefix(text: string, max: number): [string, number] | null {
  const slash = text.indexOf('/');
  if (slash < 0) return [text, max];
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return null;
  const len = Number(lenText);
  return len <= max ? [text.slice(0, slash), len] : null;
}

/** "198.18.0.1" or "198.18.0.0/24" -> [address as int32, prefix length], or null. */
export function parseIpv4Prefix(text: string): [number, number] | null {
  const sp = splitPrefix(text, 32);
  if (sp === null || !isIPv4(sp[0])) return null;
  const o = sp[0].split('.').map(Number);
  return [(o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3], sp[1]];
}

/** "2001:db8::1" or "2001:db8::/64" -> [16 bytes, prefix length], or null. */
export function parseIpv6Prefix(text: string): [Uint8Array, number] | null {
  const sp = splitPrefix(text, 128);
  if (sp === null || !isIPv6(sp[0]) || sp[0].includes('%')) return null;
  let addr = sp[0];
  const bytes = new Uint8Array(16);
  // an embedded IPv4 tail (::ffff:198.18.0.1) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4 !== null) {
    const o = v4[1].split('.').map(Number);
    addr = addr.slice(0, v4.index) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, null];
  const h = head === '' ? [] : head.split(':');
  const t = tail === null || tail === '' ? [] : tail.split(':');
  const groups = tail === null ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  return [bytes, sp[1]];
}

function formatEthertype(t: number): string {
  return `0x${t.toString(16).padStart(4, '0')}`;
}

/** An ethertype given as a number or "0x88cc"; null when it is none (must be >= 0x0600). */
function parseEthertype(v: unknown): number | null {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^0x[0-9a-f]{1,4}$/i.test(v)) n = parseInt(v.slice(2), 16);
  else if (typeof v === 'string' && /^\d{1,5}$/.test(v)) n = Number(v);
  else return null;
  return Number.isInteger(n) && n >= 0x0600 && n <= 0xffff ? n : null;
}

function addressList(v: unknown, key: string, family: 4 | 6, problems: [string, string][]): string[] {
  if (v === undefined || v === null) return [];
  const items = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v;
  if (!Array.isArray(items)) {
    problems.push([key, `must be a list of IPv${family} addresses or prefixes, got ${typeof v}`]);
    return [];
  }
  if (items.length > LOCK_MAX_ADDRESSES) {
    problems.push([key, `at most ${LOCK_MAX_ADDRESSES} entries, got ${items.length}`]);
    return [];
  }
  const out: string[] = [];
  items.forEach((item, i) => {
    const ok = typeof item === 'string' && (family === 4 ? parseIpv4Prefix(item) : parseIpv6Prefix(item)) !== null;
    if (!ok) problems.push([`${key}[${i}]`, `${JSON.stringify(item)} is not an IPv${family} address or prefix`]);
    else out.push(item as string);
  });
  return out;
}

const LOCK_KEYS = ['mac', 'ipv4', 'ipv6', 'allow_ethertypes'] as const;

/**
 * Builds a LockSpec from the config / RPC value of `lock`: absent (unlocked), "disabled", or a mapping
 * {mac, ipv4, ipv6, allow_ethertypes}. Problems come back as [key, message] pairs, keys relative to `lock`.
 */
export function lockSpecFrom(v: unknown): { spec: LockSpec } | { problems: [string, string][] } {
  if (v === undefined || v === null) return { spec: UNLOCKED };
  if (v === 'disabled') return { spec: { mode: 'disabled' } };
  if (typeof v !== 'object' || Array.isArray(v)) {
    return { problems: [['', `must be "disabled" or a mapping {mac, ipv4, ipv6, allow_ethertypes}, got ${JSON.stringify(v)}`]] };
  }
  const o = v as Record<string, unknown>;
  const problems: [string, string][] = [];
  for (const k of Object.keys(o)) {
    if (!(LOCK_KEYS as readonly string[]).includes(k)) problems.push([k, `unknown key (allowed: ${LOCK_KEYS.join(', ')})`]);
  }
  let mac = 0;
  if (o.mac === undefined) problems.push(['mac', 'is required (the MAC the guest may send with)']);
  else {
    const m = typeof o.mac === 'string' ? parseMac(o.mac) : null;
    if (m === null) problems.push(['mac', `${JSON.stringify(o.mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)`]);
    else if (m === 0 || macIsMulticast(m)) problems.push(['mac', `${String(o.mac)} is a multicast or zero address`]);
    else mac = m;
  }
  const ipv4 = addressList(o.ipv4, 'ipv4', 4, problems);
  const ipv6 = addressList(o.ipv6, 'ipv6', 6, problems);
  const types: number[] = [];
  const at = o.allow_ethertypes;
  if (at !== undefined && at !== null) {
    if (!Array.isArray(at) || at.length > LOCK_MAX_ADDRESSES) {
      problems.push(['allow_ethertypes', `must be a list of at most ${LOCK_MAX_ADDRESSES} ethertypes like 0x88cc`]);
    } else {
      at.forEach((t, i) => {
        const n = parseEthertype(t);
        if (n === null) problems.push([`allow_ethertypes[${i}]`, `${JSON.stringify(t)} is not an ethertype 0x0600..0xffff`]);
        else types.push(n);
      });
    }
  }
  if (problems.length > 0) return { problems };
  return { spec: { mode: 'locked', mac, ipv4, ipv6, allowEthertypes: types } };
}
