// A connected Unix-socket client for tests that speak the control protocol by hand.

import { createConnection, type Socket } from 'node:net';

/** Resolves once connected; rejects with the connect error (e.g. EAGAIN when the listen backlog is full). */
export function connectUnix(path: string, track?: Socket[]): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    track?.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Collects the lines a socket receives (newline stripped) and whether it closed. */
export function collectLines(s: Socket): { got: string[]; closed: () => boolean } {
  const got: string[] = [];
  let buf = '';
  let closed = false;
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      got.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  s.on('close', () => {
    closed = true;
  });
  s.on('error', () => {
    closed = true;
  });
  return { got, closed: () => closed };
}
