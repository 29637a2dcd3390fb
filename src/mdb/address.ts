// IPv4 and IPv6 addresses as the MDB keeps them: four int32 words, IPv4 as ::ffff:a.b.c.d. Strings only at the
// edges (config, control, CLI).

import { isIPv4, isIPv6 } from 'node:net';
import { V4_MAPPED } from '../frame/igmp.js';

/** Parses an IPv4 or IPv6 address into four words (IPv4-mapped for IPv4), or null. */
export function addressWords(text: string): Int32Array | null {
  const w = new Int32Array(4);
  if (isIPv4(text)) {
    const b = text.split('.').map(Number);
    w[2] = V4_MAPPED;
    w[3] = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    return w;
  }
  if (!isIPv6(text) || text.includes('.')) return null;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const parts = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].map((x) => parseInt(x, 16));
  for (let i = 0; i < 4; i++) w[i] = (parts[2 * i] << 16) | parts[2 * i + 1];
  return w;
}

/** Four words as an address string (dotted quad for IPv4-mapped, compressed IPv6 otherwise). */
export function formatAddressWords(w: Int32Array): string {
  if (w[0] === 0 && w[1] === 0 && w[2] === V4_MAPPED) {
    const a = w[3] >>> 0;
    return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  }
  const parts: number[] = [];
  for (let i = 0; i < 4; i++) parts.push((w[i] >>> 16) & 0xffff, w[i] & 0xffff);
  // the longest run of zero words (at least two) becomes "::"
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = parts.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

