// Reads a classic pcap file (as tcpdump -w writes it) into frames, with pcap-parser.

import { createRequire } from 'node:module';

interface PcapPacket {
  header: { capturedLength: number; originalLength: number };
  data: Buffer;
}
interface PcapParser {
  on(event: 'globalHeader', cb: (h: { linkLayerType: number }) => void): PcapParser;
  on(event: 'packet', cb: (p: PcapPacket) => void): PcapParser;
  on(event: 'end', cb: () => void): PcapParser;
  on(event: 'error', cb: (err: Error) => void): PcapParser;
}

const require = createRequire(import.meta.url);
const pcapp = require('pcap-parser') as { parse(input: string): PcapParser };

/** Frames of an Ethernet (DLT_EN10MB) capture, in order. */
export function readPcap(path: string): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const frames: Buffer[] = [];
    pcapp.parse(path)
      .on('globalHeader', (h) => {
        if (h.linkLayerType !== 1) reject(new Error(`${path}: link type ${h.linkLayerType}, expected Ethernet (1)`));
      })
      .on('packet', (p) => frames.push(Buffer.from(p.data)))
      .on('end', () => resolve(frames))
      .on('error', reject);
  });
}
