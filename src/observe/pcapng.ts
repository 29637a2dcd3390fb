// pcapng blocks (draft-ietf-opsawg-pcapng), little-endian, the subset `tapbridge capture` writes:
//   SHB  Section Header Block (byte-order magic, version 1.0, section length -1)
//   IDB  Interface Description Block: linktype 1 (Ethernet), snaplen, if_name, if_tsresol 9 (nanoseconds)
//   EPB  Enhanced Packet Block: timestamp, captured/original length, data, epb_flags (direction bits
//        0-1: 01 inbound, 10 outbound), opt_comment (the drop reason under --dropped)
//   ISB  Interface Statistics Block at the end: isb_starttime, isb_endtime, isb_ifrecv (frames the
//        capture saw), isb_ifdrop (frames it could not keep: capture_dropped)
// Every block is `type, total length, body, total length`, bodies padded to 32 bits. Control plane
// only (one Buffer per block or per drain), never on the forwarding path.

export const LINKTYPE_ETHERNET = 1;
export const SNAPLEN = 262_144;
export const BT_SHB = 0x0a0d0d0a;
export const BT_IDB = 0x00000001;
export const BT_EPB = 0x00000006;
export const BT_ISB = 0x00000005;
export const EPB_FLAG_INBOUND = 1;
export const EPB_FLAG_OUTBOUND = 2;

const OPT_END = 0;
const OPT_COMMENT = 1;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
const ISB_STARTTIME = 2;
const ISB_ENDTIME = 3;
const ISB_IFRECV = 4;
const ISB_IFDROP = 5;

const pad4 = (n: number): number => (n + 3) & ~3;

/** Size of an option carrying `len` bytes of value. */
function optSize(len: number): number {
  return 4 + pad4(len);
}

/** Writes one option at p; returns the next offset. */
function putOpt(b: Buffer, p: number, code: number, value: Uint8Array): number {
  b.writeUInt16LE(code, p);
  b.writeUInt16LE(value.length, p + 2);
  b.set(value, p + 4);
  return p + optSize(value.length);
}

function block(type: number, bodyLen: number, fill: (b: Buffer, p: number) => void): Buffer {
  const total = 12 + bodyLen;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  fill(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

function u64(v: bigint): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

/** SHB + IDB for one Ethernet interface with nanosecond timestamps. */
export function pcapngHeader(ifName: string, comment: string): Buffer {
  const c = Buffer.from(comment, 'utf8');
  const shb = block(BT_SHB, 16 + optSize(c.length) + 4, (b, p) => {
    b.writeUInt32LE(0x1a2b3c4d, p);
    b.writeUInt16LE(1, p + 4);
    b.writeUInt16LE(0, p + 6);
    b.writeBigInt64LE(-1n, p + 8);
    p = putOpt(b, p + 16, OPT_COMMENT, c);
    b.writeUInt32LE(OPT_END, p);
  });
  const name = Buffer.from(ifName, 'utf8');
  const idb = block(BT_IDB, 8 + optSize(name.length) + optSize(1) + 4, (b, p) => {
    b.writeUInt16LE(LINKTYPE_ETHERNET, p);
    b.writeUInt32LE(SNAPLEN, p + 4);
    p = putOpt(b, p + 8, IF_NAME, name);
    p = putOpt(b, p, IF_TSRESOL, Uint8Array.of(9));
    b.writeUInt32LE(OPT_END, p);
  });
  return Buffer.concat([shb, idb]);
}

/** Bytes of one EPB with `capLen` bytes of data and an optional comment of `commentLen` bytes. */
export function epbSize(capLen: number, commentLen: number): number {
  return 12 + 20 + pad4(capLen) + optSize(4) + (commentLen > 0 ? optSize(commentLen) : 0) + 4;
}

/**
 * Writes one EPB into `out` at `p` (epbSize() bytes): interface 0, timestamp in ns, `data` captured
 * (its length is both captured and original: frames are never cut at 262144), direction flags, and the
 * comment when not null. Returns the next offset.
 */
export function writeEpb(out: Buffer, p: number, tsNs: bigint, data: Uint8Array, flags: number, comment: Uint8Array | null): number {
  const total = epbSize(data.length, comment?.length ?? 0);
  out.writeUInt32LE(BT_EPB, p);
  out.writeUInt32LE(total, p + 4);
  out.writeUInt32LE(0, p + 8);
  out.writeUInt32LE(Number(tsNs >> 32n), p + 12);
  out.writeUInt32LE(Number(tsNs & 0xffffffffn), p + 16);
  out.writeUInt32LE(data.length, p + 20);
  out.writeUInt32LE(data.length, p + 24);
  out.set(data, p + 28);
  out.fill(0, p + 28 + data.length, p + 28 + pad4(data.length));
  let q = p + 28 + pad4(data.length);
  out.writeUInt16LE(EPB_FLAGS, q);
  out.writeUInt16LE(4, q + 2);
  out.writeUInt32LE(flags, q + 4);
  q += 8;
  if (comment !== null && comment.length > 0) {
    out.writeUInt16LE(OPT_COMMENT, q);
    out.writeUInt16LE(comment.length, q + 2);
    out.set(comment, q + 4);
    out.fill(0, q + 4 + comment.length, q + optSize(comment.length));
    q += optSize(comment.length);
  }
  out.writeUInt32LE(OPT_END, q);
  out.writeUInt32LE(total, q + 4);
  return p + total;
}

/** The ISB that ends a capture: frames seen, frames dropped (capture_dropped), start and end time. */
export function pcapngStats(startNs: bigint, endNs: bigint, received: number, dropped: number): Buffer {
  return block(BT_ISB, 12 + 4 * optSize(8) + 4, (b, p) => {
    b.writeUInt32LE(0, p);
    b.writeUInt32LE(Number(endNs >> 32n), p + 4);
    b.writeUInt32LE(Number(endNs & 0xffffffffn), p + 8);
    const ts = (v: bigint): Uint8Array => {
      const x = Buffer.alloc(8);
      x.writeUInt32LE(Number(v >> 32n), 0);
      x.writeUInt32LE(Number(v & 0xffffffffn), 4);
      return x;
    };
    p = putOpt(b, p + 12, ISB_STARTTIME, ts(startNs));
    p = putOpt(b, p, ISB_ENDTIME, ts(endNs));
    p = putOpt(b, p, ISB_IFRECV, u64(BigInt(received)));
    p = putOpt(b, p, ISB_IFDROP, u64(BigInt(dropped)));
    b.writeUInt32LE(OPT_END, p);
  });
}

/** Reads isb_ifrecv and isb_ifdrop from an ISB (the CLI's end-of-capture report), or null. */
export function readIsb(b: Uint8Array): { received: number; dropped: number } | null {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.length < 32 || v.readUInt32LE(0) !== BT_ISB) return null;
  const total = v.readUInt32LE(4);
  if (total > v.length) return null;
  let p = 20;
  let received = -1;
  let dropped = -1;
  while (p + 4 <= total - 4) {
    const code = v.readUInt16LE(p);
    const len = v.readUInt16LE(p + 2);
    if (code === OPT_END || p + 4 + len > total - 4) break;
    if (len === 8 && code === ISB_IFRECV) received = Number(v.readBigUInt64LE(p + 4));
    if (len === 8 && code === ISB_IFDROP) dropped = Number(v.readBigUInt64LE(p + 4));
    p += optSize(len);
  }
  return received < 0 || dropped < 0 ? null : { received, dropped };
}
