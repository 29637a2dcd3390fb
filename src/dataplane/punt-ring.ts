// A punt ring: the IGMP/MLD control frames a data-plane worker read (queries, reports, leaves, PIM hellos, MRD
// advertisements), for the main thread's MDB and querier (src/bridge/mcast.ts, McastPunt). The worker forwards the
// frame itself; the main thread only learns from it.
//
// Single producer (one worker), single consumer (the main thread), over one SharedArrayBuffer (the index protocol,
// header words [0..3] and drop count are SpscRing's, spsc-ring.ts):
//   header  [4] oversize (of dropped: the frame longer than a slot)
//   slots   SLOT_BYTES each: SLOT_HEADER_WORDS int32 words (port id, port key, vid, length, ethertype, dstHi,
//           dstLo, payload offset), then the frame's bytes (at most SLOT_FRAME_BYTES)
// The consumer releases each slot after its callback returned (the callback reads the frame in place).
// A full ring drops and counts: the frame was forwarded already; a host repeats its report at the next query.
//
// Memory: capacity x SLOT_BYTES per (worker, bridge): PUNT_RING_SLOTS (128) x 2 KiB = 256 KiB.
// Notes on performance: a punt copies the frame byte by byte (control frames are short; nothing allocates).

import type { EthernetHeader } from '../frame/ethernet.js';
import type { McastPunt } from '../bridge/mcast.js';
import { SPSC_HEADER_WORDS, SpscRing } from './spsc-ring.js';

const OVERSIZE = SPSC_HEADER_WORDS;
const HEADER_WORDS = 8;
/** Bytes per slot, and of them the frame's. */
export const SLOT_BYTES = 2048;
const SLOT_HEADER_WORDS = 8;
export const SLOT_FRAME_BYTES = SLOT_BYTES - 4 * SLOT_HEADER_WORDS;

/** What the consumer hands each punted frame to: the frame is slab[off .. off + len), valid during the call. */
export interface PuntSink {
  frame(port: number, portKey: number, vid: number, slab: Uint8Array, off: number, len: number, etherType: number, dstHi: number,
    dstLo: number, payloadOffset: number): void;
}

export class PuntRing extends SpscRing {
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;

  /** A new ring of `capacity` slots (a power of two), or a view of an existing one's buffer. */
  constructor(capacityOrBuffer: number | SharedArrayBuffer) {
    super(capacityOrBuffer, HEADER_WORDS, SLOT_BYTES, 'punt ring');
    this.words = new Int32Array(this.buffer, 4 * HEADER_WORDS);
    this.bytes = new Uint8Array(this.buffer, 4 * HEADER_WORDS);
  }

  /** Producer: appends one frame; false (and counted) when the ring is full or the frame longer than a slot. */
  push(port: number, portKey: number, vid: number, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): boolean {
    if (len > SLOT_FRAME_BYTES || len < 0) {
      Atomics.add(this.header, OVERSIZE, 1);
      this.countDrop();
      return false;
    }
    const index = this.claim();
    if (index < 0) return false;
    const slot = index * SLOT_BYTES;
    const w = slot >> 2;
    const words = this.words;
    words[w] = port;
    words[w + 1] = portKey;
    words[w + 2] = vid;
    words[w + 3] = len;
    words[w + 4] = hdr.etherType;
    words[w + 5] = hdr.dstHi;
    words[w + 6] = hdr.dstLo;
    words[w + 7] = hdr.payloadOffset;
    const b = this.bytes;
    const d = slot + 4 * SLOT_HEADER_WORDS;
    for (let i = 0; i < len; i++) b[d + i] = slab[off + i];
    this.publish();
    return true;
  }

  /** Consumer: hands every published frame to `sink`, releasing each after its call; returns how many. */
  drain(sink: PuntSink): number {
    const head = this.published();
    let tail = this.consumed();
    const words = this.words;
    let n = 0;
    while (tail !== head) {
      const slot = (tail & this.mask) * SLOT_BYTES;
      const w = slot >> 2;
      const len = words[w + 3];
      try {
        if (len >= 0 && len <= SLOT_FRAME_BYTES) {
          sink.frame(words[w], words[w + 1], words[w + 2], this.bytes, slot + 4 * SLOT_HEADER_WORDS, len, words[w + 4], words[w + 5], words[w + 6], words[w + 7]);
        }
      } finally {
        tail = (tail + 1) | 0;
        this.release(tail);
      }
      n++;
    }
    return n;
  }

  get oversize(): number {
    return Atomics.load(this.header, OVERSIZE);
  }
}

/** A worker's McastPunt: pushes to its ring with the main thread's key of the ingress port (PortSnap.portKey). */
export class PuntWriter implements McastPunt {
  readonly ring: PuntRing;
  /** per port id, the main thread's key of the port under that id */
  readonly portKey: Int32Array;

  constructor(ring: PuntRing, maxPorts: number) {
    this.ring = ring;
    this.portKey = new Int32Array(maxPorts);
  }

  punt(port: number, vid: number, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): void {
    this.ring.push(port, this.portKey[port], vid, slab, off, len, hdr);
  }
}
