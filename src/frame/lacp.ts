// LACPDU codec (IEEE 802.1AX-2014 §6.4.2, version 1): Slow Protocols frames to 01:80:C2:00:00:02, ethertype
// 0x8809, subtype 1.
//
//   0   dst 01:80:c2:00:00:02 | src (the member's MAC) | 0x8809
//   14  subtype 1, version 1
//   16  TLV 1 Actor Information, length 20: system priority, system (MAC), key, port priority, port, state, 3 reserved
//   36  TLV 2 Partner Information, length 20: the same fields, as the sender sees its partner
//   56  TLV 3 Collector Information, length 16: max delay, 12 reserved
//   72  TLV 0 Terminator, length 0, then 50 reserved bytes: 124 bytes in all (past the 60-byte minimum)
//
// decodeLacpdu() checks the length, subtype, TLV types and lengths before it reads a field, and names what was
// wrong; version 1 and later are accepted (fields of later versions are ignored, 802.1AX §6.4.2.3 "b").
// Version 2 TLVs are not decoded. encodeLacpdu() writes into a caller's buffer (the receive slab, between batches).

import { readMac, writeMac } from './mac.js';

export const ETH_P_SLOW = 0x8809;
export const LACP_SUBTYPE = 1;
export const LACPDU_LEN = 124;
/** Ethernet header, subtype, version, three TLVs and the terminator TLV */
export const LACPDU_MIN_LEN = 14 + 2 + 20 + 20 + 16 + 2;
/** 01:80:c2:00:00:02 as a number (slow protocols multicast) */
export const SLOW_PROTOCOLS_MAC = 0x0180c2000002;

/** Port state bits (802.1AX §6.4.2.3). */
export const LACP_ACTIVITY = 0x01;
export const LACP_TIMEOUT = 0x02; // 1 = short timeout (fast rate)
export const LACP_AGGREGATION = 0x04;
export const LACP_SYNC = 0x08;
export const LACP_COLLECTING = 0x10;
export const LACP_DISTRIBUTING = 0x20;
export const LACP_DEFAULTED = 0x40;
export const LACP_EXPIRED = 0x80;

export interface LacpInfo {
  systemPriority: number;
  /** system ID MAC as a number */
  system: number;
  key: number;
  portPriority: number;
  port: number;
  state: number;
}

export interface Lacpdu {
  version: number;
  actor: LacpInfo;
  partner: LacpInfo;
  collectorMaxDelay: number;
}

export function emptyInfo(): LacpInfo {
  return { systemPriority: 0, system: 0, key: 0, portPriority: 0, port: 0, state: 0 };
}

function u16(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1];
}

function put16(b: Uint8Array, p: number, v: number): void {
  b[p] = (v >> 8) & 0xff;
  b[p + 1] = v & 0xff;
}

/** True when the frame at off is a Slow Protocols frame (ethertype 0x8809, untagged) of at least 15 bytes. */
export function isSlowProtocols(b: Uint8Array, off: number, len: number): boolean {
  return len >= 15 && b[off + 12] === 0x88 && b[off + 13] === 0x09;
}

function readInfo(b: Uint8Array, p: number, into: LacpInfo): void {
  into.systemPriority = u16(b, p + 2);
  into.system = readMac(b, p + 4);
  into.key = u16(b, p + 10);
  into.portPriority = u16(b, p + 12);
  into.port = u16(b, p + 14);
  into.state = b[p + 16];
}

/**
 * Decodes the LACPDU at b[off..off+len) into `into`; returns null, or what is wrong with it. The 50 reserved
 * bytes at the end may be missing; any TLV byte missing refuses the frame.
 */
export function decodeLacpdu(b: Uint8Array, off: number, len: number, into: Lacpdu): string | null {
  if (off < 0 || len < 0 || off + len > b.length) return 'frame outside the buffer';
  if (len < 16) return `frame too short for a slow protocols header (${len} bytes)`;
  if (!isSlowProtocols(b, off, len)) return 'not a slow protocols frame (ethertype 0x8809)';
  if (b[off + 14] !== LACP_SUBTYPE) return `slow protocols subtype ${b[off + 14]} is not LACP (1)`;
  // header, three TLVs and the terminator: the reserved tail may be missing, nothing before it
  if (len < LACPDU_MIN_LEN) return `LACPDU truncated (${len} bytes, at least ${LACPDU_MIN_LEN} needed)`;
  const version = b[off + 15];
  if (version < 1) return 'LACP version 0';
  const p = off + 16;
  if (b[p] !== 1 || b[p + 1] !== 20) return `actor TLV has type ${b[p]} length ${b[p + 1]} (want 1, 20)`;
  if (b[p + 20] !== 2 || b[p + 21] !== 20) return `partner TLV has type ${b[p + 20]} length ${b[p + 21]} (want 2, 20)`;
  if (b[p + 40] !== 3 || b[p + 41] !== 16) return `collector TLV has type ${b[p + 40]} length ${b[p + 41]} (want 3, 16)`;
  into.version = version;
  readInfo(b, p, into.actor);
  readInfo(b, p + 20, into.partner);
  into.collectorMaxDelay = u16(b, p + 42);
  return null;
}

function writeInfo(b: Uint8Array, p: number, type: number, i: LacpInfo): void {
  b[p] = type;
  b[p + 1] = 20;
  put16(b, p + 2, i.systemPriority);
  writeMac(b, p + 4, i.system);
  put16(b, p + 10, i.key);
  put16(b, p + 12, i.portPriority);
  put16(b, p + 14, i.port);
  b[p + 16] = i.state & 0xff;
}

/** Writes a version 1 LACPDU from `src` at b[off]; returns its length (LACPDU_LEN). */
export function encodeLacpdu(b: Uint8Array, off: number, src: number, pdu: Lacpdu): number {
  if (off < 0 || off + LACPDU_LEN > b.length) throw new RangeError(`LACPDU at ${off} does not fit a ${b.length}-byte buffer`);
  b.fill(0, off, off + LACPDU_LEN);
  writeMac(b, off, SLOW_PROTOCOLS_MAC);
  writeMac(b, off + 6, src);
  put16(b, off + 12, ETH_P_SLOW);
  b[off + 14] = LACP_SUBTYPE;
  b[off + 15] = 1;
  const p = off + 16;
  writeInfo(b, p, 1, pdu.actor);
  writeInfo(b, p + 20, 2, pdu.partner);
  b[p + 40] = 3;
  b[p + 41] = 16;
  put16(b, p + 42, pdu.collectorMaxDelay);
  // terminator TLV (type 0, length 0) and reserved bytes are already zero
  return LACPDU_LEN;
}

/** State bits as 802.1AX letters, e.g. "ATGSCD.." (show). */
export function stateString(s: number): string {
  const letters = 'ATGSCDFE';
  let out = '';
  for (let i = 0; i < 8; i++) out += s & (1 << i) ? letters[i] : '.';
  return out;
}
