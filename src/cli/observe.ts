// CLI side of `capture`, `trace` and `mirror`: the capture stream client, the pcap reader for
// `trace --pcap` (pcap-parser: the daemon never opens the caller's paths), and the text formats.

import { createWriteStream, type WriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection } from 'node:net';
import type { MirrorShow } from '../bridge/mirror.js';
import type { TraceResult } from '../observe/trace.js';
import { BT_ISB, readIsb } from '../observe/pcapng.js';

interface PcapParser {
  on(event: 'globalHeader', cb: (h: { linkLayerType: number }) => void): PcapParser;
  on(event: 'packet', cb: (p: { data: Buffer }) => void): PcapParser;
  on(event: 'end', cb: () => void): PcapParser;
  on(event: 'error', cb: (err: Error) => void): PcapParser;
}

/** The first frame of a classic pcap file (Ethernet), as the CLI sends it to `trace`. */
export function firstPcapFrame(path: string): Promise<Buffer> {
  const require = createRequire(import.meta.url);
  const pcapp = require('pcap-parser') as { parse(input: string): PcapParser };
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void): void => {
      if (!done) {
        done = true;
        fn();
      }
    };
    pcapp.parse(path)
      .on('globalHeader', (h) => {
        if (h.linkLayerType !== 1) finish(() => reject(new Error(`${path}: link type ${h.linkLayerType}; trace needs an Ethernet capture (1)`)));
      })
      .on('packet', (p) => finish(() => resolve(Buffer.from(p.data))))
      .on('end', () => finish(() => reject(new Error(`${path}: no packet in the file`))))
      .on('error', (err) => finish(() => reject(new Error(`${path}: not a pcap file (${err.message})`))));
  });
}

export function formatTrace(t: TraceResult): string {
  return t.steps.join('\n');
}

export function formatMirrors(list: MirrorShow[]): string {
  if (list.length === 0) return 'no mirrors';
  const pad = (s: string, n: number): string => s.padEnd(n);
  const lines = [`${pad('mirror', 16)}${pad('ports', 24)}${pad('direction', 11)}${pad('vlans', 14)}${pad('output', 16)}${pad('active', 8)}mirrored`];
  for (const m of list) {
    const ports = m.select.ports === 'all' ? 'all' : m.select.ports.join(',');
    const vlans = m.select.vlans === 'all' ? 'all' : m.select.vlans.join(',');
    const out = m.output ?? `vlan ${m.output_vlan} (rspan)`;
    lines.push(`${pad(m.name, 16)}${pad(ports, 24)}${pad(m.select.direction, 11)}${pad(vlans, 14)}${pad(out, 16)}${pad(m.active ? 'yes' : 'no', 8)}${m.mirrored}`);
  }
  return lines.join('\n');
}

export class CaptureError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * Runs a capture: sends the `capture` request, then copies the pcapng stream to `out` ('-' = stdout)
 * with backpressure (a slow consumer slows the socket; the daemon drops and counts, never waits).
 * Ctrl-C sends `capture.stop` so the daemon flushes and ends the section with its statistics.
 * Resolves with what the daemon reported at the end (null when it never sent its statistics).
 */
export function runCapture(socketPath: string, params: Record<string, unknown>, out: string): Promise<{ received: number; dropped: number } | null> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const file: WriteStream | null = out === '-' ? null : createWriteStream(out);
    const sink: NodeJS.WritableStream = file ?? process.stdout;
    let head: Buffer | null = Buffer.alloc(0);
    /** the last bytes of the stream: the ISB ends it */
    let tail = Buffer.alloc(0);
    let settled = false;
    let stopTimer: NodeJS.Timeout | null = null;
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      process.removeListener('SIGINT', onSigint);
      process.removeListener('SIGTERM', onSigint);
      if (stopTimer !== null) clearTimeout(stopTimer);
      sock.destroy();
      const stats = parseTail(tail);
      const done = (): void => (err !== null ? reject(err) : resolve(stats));
      if (file === null) done();
      else file.end(done);
    };
    const onSigint = (): void => {
      // ask for a clean end; the daemon answers with the rest of the frames and the ISB, then closes
      if (!sock.destroyed) sock.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'capture.stop' })}\n`);
      stopTimer ??= setTimeout(() => finish(null), 3000);
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    sink.on('error', (err: NodeJS.ErrnoException) => {
      // the reader went away (tshark -c, head): end the capture by disconnecting
      if (err.code === 'EPIPE') finish(null);
      else finish(err);
    });
    sock.once('connect', () => sock.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'capture', params })}\n`));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      finish(new CaptureError(`cannot reach the daemon at ${socketPath}: ${err.code ?? err.message}`, 3));
    });
    const pass = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      tail = tail.length + chunk.length > 512 ? Buffer.concat([tail, chunk]).subarray(-512) : Buffer.concat([tail, chunk]);
      if (!sink.write(chunk)) {
        sock.pause();
        sink.once('drain', () => sock.resume());
      }
    };
    sock.on('data', (chunk: Buffer) => {
      if (head === null) {
        pass(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl < 0) {
        if (head.length > 65536) finish(new CaptureError('malformed reply from the daemon', 1));
        return;
      }
      let reply: { result?: unknown; error?: { message: string } };
      try {
        reply = JSON.parse(head.subarray(0, nl).toString('utf8')) as typeof reply;
      } catch {
        finish(new CaptureError(`malformed reply from the daemon: ${head.subarray(0, 200).toString('utf8')}`, 1));
        return;
      }
      if (reply.error !== undefined) {
        finish(new CaptureError(reply.error.message, 1));
        return;
      }
      const rest = head.subarray(nl + 1);
      head = null;
      pass(rest);
    });
    sock.on('close', () => finish(null));
  });
}

/** The ISB at the end of the stream, if the stream ended with one. */
function parseTail(tail: Buffer): { received: number; dropped: number } | null {
  if (tail.length < 12) return null;
  const total = tail.readUInt32LE(tail.length - 4);
  if (total < 12 || total > tail.length) return null;
  const blk = tail.subarray(tail.length - total);
  if (blk.readUInt32LE(0) !== BT_ISB) return null;
  return readIsb(blk);
}
