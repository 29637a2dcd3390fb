// MAC addresses: a number inside the data plane, a string only at the edges.
//
// A 48-bit MAC fits exactly in a double, so the data plane keeps it as a plain number
// (hi16 * 2^32 + lo32) read straight out of the frame: no string, no allocation.
// Strings appear only in config, CLI, logs and JSON (lowercase aa:bb:cc:dd:ee:ff).

const TWO32 = 0x1_0000_0000;

/** Reads the MAC at buf[off .. off+5] as a number. */
export function readMac(buf: Uint8Array, off: number): number {
  const hi = (buf[off] << 8) | buf[off + 1];
  const lo = ((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0;
  return hi * TWO32 + lo;
}

/** The I/G bit: group (multicast or broadcast) address. */
export function isMulticastMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) !== 0;
}

const MAC_RE = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i;

/** Parses "aa:bb:cc:dd:ee:ff" (or with dashes); returns null when it is not a MAC. */
export function parseMac(text: string): number | null {
  const m = MAC_RE.exec(text.trim());
  if (m === null) return null;
  let v = 0;
  for (let i = 1; i <= 6; i++) v = v * 256 + parseInt(m[i], 16);
  return v;
}

/** "00".."ff": formatMac builds a MAC from six table strings (an FDB snapshot formats every entry's MAC). */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Formats a numeric MAC as lowercase aa:bb:cc:dd:ee:ff. */
export function formatMac(mac: number): string {
  const hi = Math.floor(mac / 0x1_0000_0000);
  const lo = mac >>> 0;
  return `${HEX2[(hi >>> 8) & 255]}:${HEX2[hi & 255]}:${HEX2[lo >>> 24]}:${HEX2[(lo >>> 16) & 255]}:${HEX2[(lo >>> 8) & 255]}:${HEX2[lo & 255]}`;
}

/** Writes a numeric MAC into buf[off .. off+5]. */
export function writeMac(buf: Uint8Array, off: number, mac: number): void {
  let v = mac;
  for (let i = 5; i >= 0; i--) {
    const b = v % 256;
    buf[off + i] = b;
    v = (v - b) / 256;
  }
}

/** True for a group address given as a number (first octet's low bit). */
export function macIsMulticast(mac: number): boolean {
  return Math.floor(mac / 0x100_0000_0000) % 2 === 1;
}
