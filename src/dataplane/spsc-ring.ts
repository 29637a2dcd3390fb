// The index half of a single-producer single-consumer ring over one SharedArrayBuffer (learn-ring.ts, punt-ring.ts):
// the header words, the capacity check, and the publish / release / signal protocol. Each ring keeps its own slot
// layout after the header.
//
//   header  Int32Array: [0] head (entries written, producer), [1] tail (entries read, consumer),
//                       [2] dropped (ring full, or whatever the ring counts as a drop), [3] signal (bumped by the
//                       producer after a batch it pushed to), [4 .. headerWords) the ring's own words
//   slots   capacity x slotBytes, from byte 4 x headerWords
// The producer claims the slot at head (claim(): -1 and a drop counted when full), fills it, then publishes it with
// Atomics.store(head); the consumer reads slots up to Atomics.load(head) (published()) and releases them with
// Atomics.store(tail) (release()). head and tail count entries forever (int32 wrap-around is harmless: only their
// difference is used, and it never exceeds the capacity).

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const SIGNAL = 3;
/** Header words every ring has; a ring's own header words start here. */
export const SPSC_HEADER_WORDS = 4;

export class SpscRing {
  readonly buffer: SharedArrayBuffer;
  /** slots, a power of two >= 2 */
  readonly capacity: number;
  protected readonly header: Int32Array;
  /** capacity - 1: slot index = entry count & mask */
  protected readonly mask: number;
  /** producer side: entries pushed since the last signal */
  private unsignalled = 0;

  /**
   * A new ring of `capacity` slots (a power of two), or a view of an existing one's buffer. `what` names the ring in
   * the error thrown for a buffer of another geometry.
   */
  constructor(capacityOrBuffer: number | SharedArrayBuffer, headerWords: number, slotBytes: number, what: string) {
    if (typeof capacityOrBuffer === 'number') {
      const c = capacityOrBuffer;
      if (!Number.isInteger(c) || c < 2 || (c & (c - 1)) !== 0) throw new RangeError('capacity must be a power of two >= 2');
      this.buffer = new SharedArrayBuffer(4 * headerWords + slotBytes * c);
    } else {
      this.buffer = capacityOrBuffer;
    }
    this.capacity = (this.buffer.byteLength - 4 * headerWords) / slotBytes;
    if (!Number.isInteger(this.capacity) || this.capacity < 2 || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new RangeError(`not a ${what} buffer (${this.buffer.byteLength} bytes)`);
    }
    this.mask = this.capacity - 1;
    this.header = new Int32Array(this.buffer, 0, headerWords);
  }

  /** Producer: the index (0 .. capacity - 1) of the slot to fill next, or -1 (and a drop counted) when the ring is full. */
  protected claim(): number {
    const h = this.header;
    const head = h[HEAD];
    if (((head - Atomics.load(h, TAIL)) | 0) >= this.capacity) {
      Atomics.add(h, DROPPED, 1);
      return -1;
    }
    return head & this.mask;
  }

  /** Producer: publishes the slot claim() returned, once it is filled. */
  protected publish(): void {
    const h = this.header;
    Atomics.store(h, HEAD, (h[HEAD] + 1) | 0);
    this.unsignalled++;
  }

  /** Producer: counts a drop the ring decided on itself. */
  protected countDrop(): void {
    Atomics.add(this.header, DROPPED, 1);
  }

  /** Consumer: the published entry count to read up to. */
  protected published(): number {
    return Atomics.load(this.header, HEAD);
  }

  /** Consumer: the entry count to read from. */
  protected consumed(): number {
    return this.header[TAIL];
  }

  /** Consumer: releases every entry before `tail` to the producer. */
  protected release(tail: number): void {
    Atomics.store(this.header, TAIL, tail);
  }

  /** Producer: wakes the consumer when something was pushed since the last call (once per batch). */
  signal(): void {
    if (this.unsignalled === 0) return;
    this.unsignalled = 0;
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
  }

  /** Consumer: the signal word's value, to wait for a change from (Atomics.waitAsync). */
  get signalValue(): number {
    return Atomics.load(this.header, SIGNAL);
  }

  /** Consumer: the Int32Array and index to wait on. */
  get signalWord(): [Int32Array, number] {
    return [this.header, SIGNAL];
  }

  get dropped(): number {
    return Atomics.load(this.header, DROPPED);
  }

  /** Entries pushed since the ring was made (the count of pushes is the write index). */
  get pushed(): number {
    return Atomics.load(this.header, HEAD) >>> 0;
  }

  /** Entries published and not yet drained. */
  get pending(): number {
    return (Atomics.load(this.header, HEAD) - Atomics.load(this.header, TAIL)) | 0;
  }
}
