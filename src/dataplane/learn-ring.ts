// A learning ring: what a data-plane worker learned, for the FDB's one writer (the main thread).
//
// Single producer (one worker), single consumer (the main thread), over one SharedArrayBuffer:
//   header  Int32Array: [0] head (entries written, producer), [1] tail (entries read, consumer),
//                       [2] dropped (ring full), [3] signal (bumped by the producer after a batch it pushed to)
//   entries Int32Array: ENTRY_WORDS words each: kind, hi (vid << 16 | mac[0..1]), lo (mac[2..5]), arg
//                       (LEARN: the port id; ARP: the IPv4 address as int32), key (LEARN: the port's key,
//                       PortSnap.portKey: the consumer learns only while that id still names that port)
// The producer writes an entry, then publishes it with Atomics.store(head); the consumer reads entries up to
// Atomics.load(head), then releases them with Atomics.store(tail). head and tail count entries forever (int32
// wrap-around is harmless: only their difference is used, and it never exceeds the capacity).
// A full ring drops and counts: the frame was forwarded already; the MAC is pushed again by its next frame.

export const LEARN = 1;
export const LEARN_ARP = 2;

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const SIGNAL = 3;
const HEADER_WORDS = 4;
const ENTRY_WORDS = 5;

export interface LearnSink {
  learn(hi: number, lo: number, port: number, portKey: number): void;
  arp(hi: number, lo: number, ip: number): void;
}

export class LearnRing {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly entries: Int32Array;
  private readonly mask: number;
  /** producer side: entries pushed since the last signal */
  private unsignalled = 0;

  /** A new ring of `capacity` entries (a power of two), or a view of an existing one's buffer. */
  constructor(capacityOrBuffer: number | SharedArrayBuffer) {
    if (typeof capacityOrBuffer === 'number') {
      const c = capacityOrBuffer;
      if (!Number.isInteger(c) || c < 2 || (c & (c - 1)) !== 0) throw new RangeError('capacity must be a power of two >= 2');
      this.buffer = new SharedArrayBuffer(4 * (HEADER_WORDS + ENTRY_WORDS * c));
    } else {
      this.buffer = capacityOrBuffer;
    }
    const words = this.buffer.byteLength / 4 - HEADER_WORDS;
    this.capacity = words / ENTRY_WORDS;
    if (!Number.isInteger(this.capacity) || this.capacity < 2 || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new RangeError(`not a learning ring buffer (${this.buffer.byteLength} bytes)`);
    }
    this.mask = this.capacity - 1;
    this.header = new Int32Array(this.buffer, 0, HEADER_WORDS);
    this.entries = new Int32Array(this.buffer, 4 * HEADER_WORDS);
  }

  /** Producer: appends one entry; false (and counted) when the ring is full. */
  push(kind: number, hi: number, lo: number, arg: number, key = 0): boolean {
    const h = this.header;
    const head = h[HEAD];
    if (((head - Atomics.load(h, TAIL)) | 0) >= this.capacity) {
      Atomics.add(h, DROPPED, 1);
      return false;
    }
    const w = (head & this.mask) * ENTRY_WORDS;
    const e = this.entries;
    e[w] = kind;
    e[w + 1] = hi;
    e[w + 2] = lo;
    e[w + 3] = arg;
    e[w + 4] = key;
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

  /** Consumer: hands every published entry to `sink`, returns how many. */
  drain(sink: LearnSink): number {
    const h = this.header;
    const head = Atomics.load(h, HEAD);
    let tail = h[TAIL];
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
    Atomics.store(h, TAIL, tail);
    return n;
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
