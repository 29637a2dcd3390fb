// The SPSC index both data-plane rings share (src/dataplane/spsc-ring.ts), through its two rings: head and tail
// count entries forever as int32, so they wrap around; only their difference may matter.

import { describe, expect, it } from 'vitest';
import { LEARN, LearnRing } from '../../src/dataplane/learn-ring.js';
import { PuntRing } from '../../src/dataplane/punt-ring.js';
import type { EthernetHeader } from '../../src/frame/ethernet.js';

/** head and tail of a fresh ring's buffer both set to `count` (as if that many entries had passed). */
function startAt(buffer: SharedArrayBuffer, count: number): void {
  const h = new Int32Array(buffer, 0, 2);
  h[0] = count | 0;
  h[1] = count | 0;
}

describe('SPSC rings across the int32 wrap-around of head and tail', () => {
  it('a learning ring keeps pushing, draining and dropping when full as the counts pass 2^31', () => {
    const ring = new LearnRing(4);
    startAt(ring.buffer, 0x7fff_fffe);
    const got: number[] = [];
    const sink = { learn: (_hi: number, lo: number) => got.push(lo), arp: () => {} };
    let lo = 0;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 4; i++) expect(ring.push(LEARN, 1, ++lo, 0, 0)).toBe(true);
      expect(ring.push(LEARN, 1, 999, 0, 0)).toBe(false);
      expect(ring.pending).toBe(4);
      expect(ring.drain(sink)).toBe(4);
    }
    expect(got).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(ring.dropped).toBe(4);
    expect(ring.pending).toBe(0);
  });

  it('a punt ring too, frames intact', () => {
    const ring = new PuntRing(2);
    startAt(ring.buffer, -2);
    const hdr = { etherType: 0x0800, dstHi: 0x0100, dstLo: 0x5e000001, payloadOffset: 14 } as EthernetHeader;
    const slab = new Uint8Array(64);
    const got: number[] = [];
    const sink = { frame: (_p: number, _k: number, _v: number, b: Uint8Array, off: number) => got.push(b[off]) };
    for (let n = 0; n < 6; n++) {
      slab[0] = n;
      expect(ring.push(1, 7, 1, slab, 0, 60, hdr)).toBe(true);
      if (n % 2 === 1) {
        expect(ring.push(1, 7, 1, slab, 0, 60, hdr)).toBe(false);
        expect(ring.drain(sink)).toBe(2);
      }
    }
    expect(got).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ring.dropped).toBe(3);
  });
});
