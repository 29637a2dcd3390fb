// `metrics.listen`: "HOST:PORT" with an IP literal host ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464").

import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address, or a problem to report under the config key. */
export function parseListen(text: string): ListenAddress | { problem: string } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  if (m === null) return { problem: `must be "HOST:PORT" with an IP address (e.g. "127.0.0.1:9464" or "[::1]:9464"), got ${JSON.stringify(text)}` };
  const host = m[1] ?? m[2] ?? '';
  const family = isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6) || (m[2] !== undefined && family !== 4)) {
    return { problem: `"${host}" is not an IPv4 address or a bracketed IPv6 address` };
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { problem: `port must be 1..65535, got ${m[3]}` };
  return { host, port };
}
