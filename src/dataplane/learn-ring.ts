// A learning ring: what a data-plane worker learned, for the FDB's one writer (the main thread).
//
// Single producer (one worker), single consumer (the main thread), over one SharedArrayBuffer (the index protocol,
// header words and drop count are SpscRing's, spsc-ring.ts):
//   entries Int32Array: ENTRY_WORDS words each: kind, hi (vid << 16 | mac[0..1]), lo (mac[2..5]), arg
//                       (LEARN: the port id; ARP: the IPv4 address as int32), key (LEARN: the port's key,
//                       PortSnap.portKey: the consumer learns only while that id still names that port)
// The consumer releases a drain's entries together, after the last one.
// A full ring drops and counts: the frame was forwarded already; the MAC is pushed again by its next frame.

import { SPSC_HEADER_WORDS, SpscRing } from './spsc-ring.js';

export const LEARN = 1;
export const LEARN_ARP = 2;

const ENTRY_WORDS = 5;

export interface LearnSink {
  learn(hi: number, lo: number, port: number, portKey: number): void;
  arp(hi: number, lo: number, ip: number): void;
}

export class LearnRing extends SpscRing {
  private readonly entries: Int32Array;

  /** A new ring of `capacity` entries (a power of two), or a view of an existing one's buffer. */
  constructor(capacityOrBuffer: number | SharedArrayBuffer) {
    super(capacityOrBuffer, SPSC_HEADER_WORDS, 4 * ENTRY_WORDS, 'learning ring');
    this.entries = new Int32Array(this.buffer, 4 * SPSC_HEADER_WORDS);
  }

  /** Producer: appends one entry; false (and counted) when the ring is full. */
  push(kind: number, hi: number, lo: number, arg: number, key = 0): boolean {
    const slot = this.claim();
    if (slot < 0) return false;
    const w = slot * ENTRY_WORDS;
    const e = this.entries;
    e[w] = kind;
    e[w + 1] = hi;
    e[w + 2] = lo;
    e[w + 3] = arg;
    e[w + 4] = key;
    this.publish();
    return true;
  }

  /** Consumer: hands every published entry to `sink`, returns how many. */
  drain(sink: LearnSink): number {
    const head = this.published();
    let tail = this.consumed();
    const e = this.entries;
    let n = 0;
    while (tail !== head) {
      const w = (tail & this.mask) * ENTRY_WORDS;
      const kind = e[w];
      if (kind === LEARN) sink.learn(e[w + 1], e[w + 2], e[w + 3], e[w + 4]);
      else if (kind === LEARN_ARP) sink.arp(e[w + 1], e[w + 2], e[w + 3]);
      tail = (tail + 1) | 0;
      n++;
    }
    this.release(tail);
    return n;
  }
}
