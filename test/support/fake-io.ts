// A fake PortIo and a batch builder: run the forwarding engine without the addon.

import { PortCounter, TX_OP_NONE, TX_OP_POP_TAG, TX_OP_PUSH_TAG, TX_OP_SET_TAG, VNET_HDR_LEN } from '../../src/io/native-types.js';
import type { PortIo } from '../../src/bridge/port.js';
import { BridgePort, type PortKind } from '../../src/bridge/port.js';
import type { Bridge } from '../../src/bridge/bridge.js';

export class FakeIo implements PortIo {
  readonly tx = new Uint32Array(4 * 64);
  readonly counters = new Float64Array(PortCounter.Count);
  /** Frames "sent" as they would appear on the wire (tx ops applied), as hex strings. */
  readonly sent: string[] = [];
  sendCalls = 0;
  /** When set, send() accepts only this many frames per call. */
  acceptLimit = Infinity;
  constructor(private readonly slab: () => Uint8Array) {}

  send(count: number): number {
    this.sendCalls++;
    const slab = this.slab();
    const n = Math.min(count, this.acceptLimit);
    for (let i = 0; i < n; i++) {
      const wire = wireBytes(slab, this.tx[4 * i], this.tx[4 * i + 1], this.tx[4 * i + 2], this.tx[4 * i + 3]);
      this.counters[PortCounter.TxBytes] += wire.length;
      this.sent.push(wire.toString('hex'));
    }
    this.counters[PortCounter.TxFull] += count - n;
    return n;
  }
}

/** What the addon puts on the wire for one tx entry (the same rules as src/native). */
export function wireBytes(slab: Uint8Array, off: number, len: number, op: number, arg: number): Buffer {
  const frame = Buffer.from(slab.subarray(off, off + len));
  const tag = Buffer.alloc(4);
  tag.writeUInt32BE(arg >>> 0);
  switch (op) {
    case TX_OP_NONE:
      return frame;
    case TX_OP_PUSH_TAG:
      return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
    case TX_OP_POP_TAG:
      return Buffer.concat([frame.subarray(0, 12), frame.subarray(16)]);
    case TX_OP_SET_TAG:
      return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(16)]);
    default:
      throw new Error(`unknown tx op ${op}`);
  }
}

/** Builds rx batches the way the addon lays them out: vnet header at off-10, frame at off. */
export class BatchBuilder {
  readonly slab = new Uint8Array(1 << 20);
  readonly desc = new Int32Array(3 * 64);
  count = 0;
  private pos = 0;

  add(frame: Uint8Array | string, gso = false): this {
    const bytes = typeof frame === 'string' ? Buffer.from(frame.replace(/\s+/g, ''), 'hex') : frame;
    const vnet = this.pos + 4;
    this.slab.fill(0, vnet, vnet + VNET_HDR_LEN);
    if (gso) this.slab[vnet + 1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    const off = vnet + VNET_HDR_LEN;
    this.slab.set(bytes, off);
    this.desc[3 * this.count] = off;
    this.desc[3 * this.count + 1] = bytes.length;
    this.desc[3 * this.count + 2] = 0;
    this.count++;
    this.pos = (off + bytes.length + 15) & ~15;
    return this;
  }

  reset(): this {
    this.count = 0;
    this.pos = 0;
    return this;
  }
}

export function addFakePort(
  bridge: Bridge,
  batch: BatchBuilder,
  name: string,
  opts: { kind?: PortKind; learning?: boolean; flood?: boolean; isolated?: boolean; mtu?: number; fdbMax?: number } = {},
): { port: BridgePort; io: FakeIo } {
  const id = bridge.freePortId();
  const port = new BridgePort(id, name, opts.kind ?? 'tap', {
    learning: opts.learning ?? true,
    flood: opts.flood ?? true,
    isolated: opts.isolated ?? false,
  }, opts.mtu ?? 1500, opts.fdbMax ?? 0);
  const io = new FakeIo(() => batch.slab);
  port.io = io;
  bridge.addPort(port);
  bridge.setPortState(port, 'up');
  return { port, io };
}

/** An Ethernet frame as hex: dst, src, ethertype, payload padded to 60 bytes. */
export function eth(dst: string, src: string, type = '0800', payload = ''): string {
  const hex = dst.replaceAll(':', '') + src.replaceAll(':', '') + type + payload;
  return hex.padEnd(120, '0');
}
