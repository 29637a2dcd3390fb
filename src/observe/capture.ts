// `tapbridge capture`: live pcapng of one port, streamed over the control connection that asked for it.
//
// Model:
//   A capture implements the engine's hook, PortTap (src/bridge/port-tap.ts), and sets it as port.tap;
//   the engine calls it for frames the port receives and the bridge accepts (direction in), frames
//   queued on it (out, with the tag the port sends: the tx op applied) and, with --dropped, frames
//   dropped at the port (the drop reason becomes the packet's opt_comment). No port tap, no cost: the engine checks `port.tap !== null` and nothing else.
//   Several captures of one port share its PortCaptures (the tap), each with its own filters and buffer.
//
//   Inside the batch a tapped frame is copied, as on the wire and without the vnet header, into the
//   capture's bounded buffer (BUFFER_BYTES, preallocated: no allocation per frame) with a 16-byte record
//   header. After the batch (setImmediate) the buffer is encoded into pcapng EPBs and written to the
//   client's ControlStream, which has its own bound (STREAM_BYTES). A frame that finds either full is
//   dropped and counted: the capture's `dropped`, the port's `capture_dropped` (stats, beside `drops`).
//   Forwarding never waits for a reader.
//
//   The stream: the JSON-RPC reply to `capture` (one line), then a pcapng section: SHB + IDB, EPBs,
//   and, when the capture ends (-c reached, `capture.stop` from the client, the port removed), an ISB
//   whose isb_ifdrop is the capture's dropped count; then the daemon closes the connection. A client
//   that goes away ends its capture at once.
//
// Bounds: MAX_CAPTURES per daemon, BUFFER_BYTES + STREAM_BYTES per capture.

import type { BridgePort } from '../bridge/port.js';
import type { PortTap } from '../bridge/port-tap.js';
import { dropCodeName } from '../bridge/bridge.js';
import { ETH_P_8021Q, VLAN_VID_MASK } from '../frame/ethernet.js';
import { TX_OP_NONE, TX_OP_POP_TAG, TX_OP_PUSH_TAG, TX_OP_SET_TAG } from '../io/native-types.js';
import type { ControlClient, ControlStream } from '../control/server.js';
import { ControlError } from '../control/errors.js';
import { EPB_FLAG_INBOUND, EPB_FLAG_OUTBOUND, epbSize, pcapngHeader, pcapngStats, SNAPLEN, writeEpb } from './pcapng.js';

/** Captures running at once, daemon-wide. */
export const MAX_CAPTURES = 16;
/** Per capture: frames copied in a batch wait here until the next turn (the bound inside the batch). */
export const BUFFER_BYTES = 4 * 1024 * 1024;
/** Per capture: pcapng bytes queued to a slow client before frames are dropped. */
export const STREAM_BYTES = 8 * 1024 * 1024;
/** Record header in the buffer: u32 wire length, u16 flags, u16 drop code, f64 ms since the start. */
const REC_HDR = 16;
/** How often a capture checks that its port still exists. */
const PORT_CHECK_MS = 500;

const DIR_IN = 1;
const DIR_OUT = 2;

export interface CaptureOptions {
  direction: 'in' | 'out' | 'both';
  dropped: boolean;
  vlan: number | null;
  /** frames after which the capture ends; 0 = until stopped */
  count: number;
}

export interface CaptureSummary {
  port: string;
  captured: number;
  /** frames the capture could not keep (capture_dropped) */
  dropped: number;
}

/** Parses the `capture` request's options; a bad one is an invalid_params error naming it. */
export function captureOptionsFrom(p: Record<string, unknown>): CaptureOptions {
  const bad = (key: string, msg: string): never => {
    throw new ControlError('invalid_params', `${key}: ${msg}`, { param: key });
  };
  const direction = p.direction ?? 'both';
  if (direction !== 'in' && direction !== 'out' && direction !== 'both') bad('direction', `must be in, out or both, got ${JSON.stringify(p.direction)}`);
  if (p.dropped !== undefined && typeof p.dropped !== 'boolean') bad('dropped', 'must be true or false');
  let vlan: number | null = null;
  if (p.vlan !== undefined && p.vlan !== null) {
    if (typeof p.vlan !== 'number' || !Number.isInteger(p.vlan) || p.vlan < 0 || p.vlan > 4094) bad('vlan', `must be a VID 0..4094, got ${JSON.stringify(p.vlan)}`);
    vlan = p.vlan as number;
  }
  let count = 0;
  if (p.count !== undefined && p.count !== null) {
    if (typeof p.count !== 'number' || !Number.isSafeInteger(p.count) || p.count < 0) bad('count', `must be a non-negative integer, got ${JSON.stringify(p.count)}`);
    count = p.count as number;
  }
  return { direction: direction as CaptureOptions['direction'], dropped: p.dropped === true, vlan, count };
}

/**
 * A Buffer view of the rx slab, made once per slab (the addon's slab is registered once): Buffer#copy
 * copies without the view object that slab.subarray() would allocate per frame.
 */
let lastSlab: Uint8Array | null = null;
let lastSlabBuf: Buffer = Buffer.alloc(0);
function slabBuffer(slab: Uint8Array): Buffer {
  if (slab !== lastSlab) {
    lastSlab = slab;
    lastSlabBuf = Buffer.from(slab.buffer, slab.byteOffset, slab.byteLength);
  }
  return lastSlabBuf;
}

/** One running capture: filters, its buffer, its stream. */
export class Capture {
  readonly port: BridgePort;
  readonly opts: CaptureOptions;
  private readonly dirMask: number;
  private readonly buf = Buffer.alloc(BUFFER_BYTES);
  private readonly view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  private used = 0;
  private usedFrames = 0;
  /** frames accepted into the buffer (towards -c) and frames that reached the stream */
  private accepted = 0;
  captured = 0;
  dropped = 0;
  private readonly startPerf = performance.now();
  private readonly startNs = BigInt(Date.now()) * 1_000_000n;
  private drainScheduled = false;
  private ended = false;
  private readonly stream: ControlStream;
  private readonly client: ControlClient;
  private readonly onEnd: (c: Capture) => void;
  private readonly portCheck: NodeJS.Timeout;

  constructor(port: BridgePort, opts: CaptureOptions, client: ControlClient, stream: ControlStream, onEnd: (c: Capture) => void) {
    this.port = port;
    this.opts = opts;
    this.dirMask = opts.direction === 'in' ? DIR_IN : opts.direction === 'out' ? DIR_OUT : DIR_IN | DIR_OUT;
    this.client = client;
    this.stream = stream;
    this.onEnd = onEnd;
    stream.onClose(() => this.end(false));
    this.portCheck = setInterval(() => {
      if (this.port.state === 'absent') this.end(true);
    }, PORT_CHECK_MS);
    this.portCheck.unref();
    // after the reply line: the section header opens the stream
    setImmediate(() => {
      if (!this.ended) this.stream.write(pcapngHeader(port.name, `tapbridge capture ${port.name} direction=${opts.direction}${opts.dropped ? ' dropped' : ''}${opts.vlan !== null ? ` vlan=${opts.vlan}` : ''}`));
    });
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The VLAN filter: the frame's bridge VLAN, or before classification its tag (else the port's pvid). */
  private vlanMatches(slab: Uint8Array, off: number, len: number, vid: number): boolean {
    const want = this.opts.vlan;
    if (want === null) return true;
    if (vid >= 0) return vid === want;
    if (len >= 16 && ((slab[off + 12] << 8) | slab[off + 13]) === ETH_P_8021Q) return (((slab[off + 14] << 8) | slab[off + 15]) & VLAN_VID_MASK) === want;
    return this.port.vlan.pvid === want;
  }

  /** Copies one frame (wire bytes: tx op applied) into the buffer; counts it dropped when full. */
  record(slab: Uint8Array, off: number, len: number, op: number, tagTci: number, vid: number, dir: number, reason: number): void {
    if ((this.dirMask & dir) === 0 || this.ended || !this.vlanMatches(slab, off, len, vid)) return;
    if (this.opts.count > 0 && this.accepted >= this.opts.count) return;
    const wire = op === TX_OP_PUSH_TAG ? len + 4 : op === TX_OP_POP_TAG ? len - 4 : len;
    const cap = wire > SNAPLEN ? SNAPLEN : wire;
    const need = REC_HDR + ((cap + 3) & ~3);
    if (this.used + need > BUFFER_BYTES || wire < 0) {
      this.dropped++;
      this.port.captureDropped++;
      return;
    }
    const p = this.used;
    const v = this.view;
    v.setUint32(p, cap, true);
    v.setUint16(p + 4, dir, true);
    v.setUint16(p + 6, reason, true);
    v.setFloat64(p + 8, performance.now() - this.startPerf, true);
    const b = this.buf;
    const src = slabBuffer(slab);
    const d = p + REC_HDR;
    if (op === TX_OP_NONE) {
      src.copy(b, d, off, off + cap);
    } else {
      src.copy(b, d, off, off + 12);
      let rest = off + 12;
      let q = d + 12;
      if (op === TX_OP_PUSH_TAG || op === TX_OP_SET_TAG) {
        b[q] = 0x81; // TPID 0x8100
        b[q + 1] = 0x00;
        b[q + 2] = (tagTci >>> 8) & 0xff;
        b[q + 3] = tagTci & 0xff;
        q += 4;
      }
      if (op !== TX_OP_PUSH_TAG) rest += 4;
      src.copy(b, q, rest, rest + (d + cap - q));
    }
    this.used = p + need;
    this.usedFrames++;
    this.accepted++;
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drainFn);
    }
  }

  private readonly drainFn = (): void => {
    this.drainScheduled = false;
    this.drain();
    if (this.opts.count > 0 && this.accepted >= this.opts.count) this.end(true);
  };

  /** Encodes the buffer as EPBs into one chunk for the stream (control plane: allocates). */
  private drain(): void {
    if (this.used === 0) return;
    const v = this.view;
    let size = 0;
    for (let p = 0; p < this.used;) {
      const cap = v.getUint32(p, true);
      const reason = v.getUint16(p + 6, true);
      size += epbSize(cap, reason !== 0 ? Buffer.byteLength(dropCodeName(reason)) : 0);
      p += REC_HDR + ((cap + 3) & ~3);
    }
    const out = Buffer.allocUnsafe(size);
    let q = 0;
    for (let p = 0; p < this.used;) {
      const cap = v.getUint32(p, true);
      const dir = v.getUint16(p + 4, true);
      const reason = v.getUint16(p + 6, true);
      const ms = v.getFloat64(p + 8, true);
      const ts = this.startNs + BigInt(Math.round(ms * 1e6));
      const comment = reason !== 0 ? Buffer.from(dropCodeName(reason)) : null;
      q = writeEpb(out, q, ts, this.buf.subarray(p + REC_HDR, p + REC_HDR + cap), dir === DIR_IN ? EPB_FLAG_INBOUND : EPB_FLAG_OUTBOUND, comment);
      p += REC_HDR + ((cap + 3) & ~3);
    }
    const frames = this.usedFrames;
    this.used = 0;
    this.usedFrames = 0;
    if (this.stream.write(out)) {
      this.captured += frames;
    } else {
      this.dropped += frames;
      this.port.captureDropped += frames;
    }
  }

  /** Ends the capture; `graceful`: flush, write the ISB and close the client's connection. */
  end(graceful: boolean): void {
    if (this.ended) return;
    if (graceful) this.drain();
    this.ended = true;
    clearInterval(this.portCheck);
    this.onEnd(this);
    if (graceful && this.stream.isOpen) {
      const endNs = this.startNs + BigInt(Math.round((performance.now() - this.startPerf) * 1e6));
      this.stream.write(pcapngStats(this.startNs, endNs, this.captured + this.dropped, this.dropped));
      this.stream.close();
      this.client.end();
    }
  }

  summary(): CaptureSummary {
    return { port: this.port.name, captured: this.captured, dropped: this.dropped };
  }
}

/** The tap of one port: fans frames out to that port's captures (frames: rx, tx, drop). */
class PortCaptures implements PortTap {
  readonly list: Capture[] = [];
  rx(slab: Uint8Array, off: number, len: number, vid: number): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i].record(slab, off, len, TX_OP_NONE, 0, vid, DIR_IN, 0);
  }
  tx(slab: Uint8Array, off: number, len: number, op: number, tagTci: number, vid: number): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i].record(slab, off, len, op, tagTci, vid, DIR_OUT, 0);
  }
  drop(slab: Uint8Array, off: number, len: number, op: number, tagTci: number, vid: number, reason: number, out: boolean): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) if (l[i].opts.dropped) l[i].record(slab, off, len, op, tagTci, vid, out ? DIR_OUT : DIR_IN, reason);
  }
}

/** The daemon's captures: start one on a client's connection, stop it, end all at shutdown. */
export class Captures {
  private readonly running = new Set<Capture>();
  private readonly byClient = new Map<ControlClient, Capture>();
  /** The tap of each port with captures (what port.tap is set to). */
  private readonly taps = new Map<BridgePort, PortCaptures>();

  get count(): number {
    return this.running.size;
  }

  start(port: BridgePort, opts: CaptureOptions, client: ControlClient | null): { port: string; snaplen: number; linktype: string } {
    if (client === null) throw new ControlError('invalid_request', 'capture needs a control connection to stream on');
    if (this.running.size >= MAX_CAPTURES) throw new ControlError('invalid_request', `at most ${MAX_CAPTURES} captures run at once`);
    if (port.state === 'absent') throw new ControlError('invalid_params', `port ${port.name} is gone`);
    const stream = client.openStream({ maxBufferedBytes: STREAM_BYTES });
    const cap = new Capture(port, opts, client, stream, (c) => this.detach(c));
    this.running.add(cap);
    this.byClient.set(client, cap);
    let tap = this.taps.get(port);
    if (tap === undefined) {
      tap = new PortCaptures();
      this.taps.set(port, tap);
    }
    tap.list.push(cap);
    port.tap = tap;
    return { port: port.name, snaplen: SNAPLEN, linktype: 'ethernet' };
  }

  /** `capture.stop` from the capture's own client (a notification: the reply would land in the pcapng). */
  stop(client: ControlClient | null): void {
    const cap = client !== null ? this.byClient.get(client) : undefined;
    if (cap === undefined) throw new ControlError('invalid_request', 'this connection carries no capture');
    cap.end(true);
  }

  private detach(c: Capture): void {
    this.running.delete(c);
    for (const [k, v] of this.byClient) if (v === c) this.byClient.delete(k);
    const tap = this.taps.get(c.port);
    if (tap === undefined) return;
    const i = tap.list.indexOf(c);
    if (i >= 0) tap.list.splice(i, 1);
    if (tap.list.length === 0) {
      this.taps.delete(c.port);
      if (c.port.tap === tap) c.port.tap = null;
    }
  }

  /** Ends every capture (daemon shutdown): each client gets its ISB. */
  endAll(): void {
    for (const c of [...this.running]) c.end(true);
  }
}
