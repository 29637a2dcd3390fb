// A punt ring: the IGMP/MLD control frames a data-plane worker read (queries, reports, leaves, PIM hellos, MRD
// advertisements), for the main thread's MDB and querier (src/bridge/mcast.ts, McastPunt). The worker forwards the
// frame itself; the main thread only learns from it.
//
// Single producer (one worker), single consumer (the main thread), over one SharedArrayBuffer:
//   header  Int32Array: [0] head (entries written, producer), [1] tail (entries read, consumer),
//                       [2] dropped (ring full, or the frame longer than a slot), [3] signal (bumped by the
//                       producer after a batch it pushed to), [4] oversize (of dropped: longer than a slot)
//   slots   SLOT_BYTES each: SLOT_HEADER_WORDS int32 words (port id, port key, vid, length, ethertype, dstHi,
//           dstLo, payload offset), then the frame's bytes (at most SLOT_FRAME_BYTES)
// The producer fills a slot, then publishes it with Atomics.store(head); the consumer reads slots up to
// Atomics.load(head) and releases each with Atomics.store(tail) after its callback returned (the callback reads
// the frame in place). head and tail count entries forever (int32 wrap-around is harmless: only their difference
// is used, and it never exceeds the capacity).
// A full ring drops and counts: the frame was forwarded already; a host repeats its report at the next query.
//
// Memory: capacity x SLOT_BYTES per (worker, bridge): PUNT_RING_SLOTS (128) x 2 KiB = 256 KiB.
// Notes on performance: a punt copies the frame byte by byte (control frames are short; nothing allocates).

import type { EthernetHeader } from '../frame/ethernet.js';
import type { McastPunt } from '../bridge/mcast.js';

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const SIGNAL = 3;
const OVERSIZE = 4;
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

export class PuntRing {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly mask: number;
  /** producer side: entries pushed since the last signal */
  private unsignalled = 0;

  /** A new ring of `capacity` slots (a power of two), or a view of an existing one's buffer. */
  constructor(capacityOrBuffer: number | SharedArrayBuffer) {
    if (typeof capacityOrBuffer === 'number') {
      const c = capacityOrBuffer;
      if (!Number.isInteger(c) || c < 2 || (c & (c - 1)) !== 0) throw new RangeError('capacity must be a power of two >= 2');
      this.buffer = new SharedArrayBuffer(4 * HEADER_WORDS + SLOT_BYTES * c);
    } else {
      this.buffer = capacityOrBuffer;
    }
    this.capacity = (this.buffer.byteLength - 4 * HEADER_WORDS) / SLOT_BYTES;
    if (!Number.isInteger(this.capacity) || this.capacity < 2 || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new RangeError(`not a punt ring buffer (${this.buffer.byteLength} bytes)`);
    }
    this.mask = this.capacity - 1;
    this.header = new Int32Array(this.buffer, 0, HEADER_WORDS);
    this.words = new Int32Array(this.buffer, 4 * HEADER_WORDS);
    this.bytes = new Uint8Array(this.buffer, 4 * HEADER_WORDS);
  }

  /** Producer: appends one frame; false (and counted) when the ring is full or the frame longer than a slot. */
  push(port: number, portKey: number, vid: number, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): boolean {
    const h = this.header;
    if (len > SLOT_FRAME_BYTES || len < 0) {
      Atomics.add(h, OVERSIZE, 1);
      Atomics.add(h, DROPPED, 1);
      return false;
    }
    const head = h[HEAD];
    if (((head - Atomics.load(h, TAIL)) | 0) >= this.capacity) {
      Atomics.add(h, DROPPED, 1);
      return false;
    }
    const slot = (head & this.mask) * SLOT_BYTES;
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
    Atomics.store(h, HEAD, (head + 1) | 0);
    this.unsignalled++;
    return true;
  }

  /** Producer: wakes the consumer when something was pushed since the last call (once per batch). */
  signal(): void {
    if (this.unsignalled === 0) return;
    this.unsignalled = 0;
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
  }

  /** Consumer: hands every published frame to `sink`, releasing each after its call; returns how many. */
  drain(sink: PuntSink): number {
    const h = this.header;
    const head = Atomics.load(h, HEAD);
    let tail = h[TAIL];
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
        Atomics.store(h, TAIL, tail);
      }
      n++;
    }
    return n;
  }

  /** Consumer: the Int32Array and index to wait on. */
  get signalWord(): [Int32Array, number] {
    return [this.header, SIGNAL];
  }

  get dropped(): number {
    return Atomics.load(this.header, DROPPED);
  }

  get oversize(): number {
    return Atomics.load(this.header, OVERSIZE);
  }

  /** Frames pushed since the ring was made. */
  get pushed(): number {
    return Atomics.load(this.header, HEAD) >>> 0;
  }

  /** Frames published and not yet drained. */
  get pending(): number {
    return (Atomics.load(this.header, HEAD) - Atomics.load(this.header, TAIL)) | 0;
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
