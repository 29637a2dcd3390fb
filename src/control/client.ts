// Control client: one JSON-RPC request over the Unix socket, used by the CLI.

import { createConnection } from 'node:net';

export class DaemonUnreachableError extends Error {
  readonly code = 'EUNREACHABLE';
}

export class RpcError extends Error {
  readonly rpcCode: number;
  readonly dataCode: string;
  readonly data: Record<string, unknown>;
  constructor(rpcCode: number, message: string, data: Record<string, unknown>) {
    super(message);
    this.rpcCode = rpcCode;
    this.data = data;
    this.dataCode = typeof data.code === 'string' ? data.code : 'unknown';
  }
}

export function call(socketPath: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      fn();
    };
    sock.setEncoding('utf8');
    sock.setTimeout(timeoutMs, () => finish(() => reject(new DaemonUnreachableError(`no reply from ${socketPath} within ${timeoutMs} ms`))));
    sock.once('connect', () => sock.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })}\n`));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      finish(() => reject(new DaemonUnreachableError(`cannot reach the daemon at ${socketPath}: ${err.code ?? err.message}`)));
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      finish(() => {
        let reply: { result?: unknown; error?: { code: number; message: string; data?: Record<string, unknown> } };
        try {
          reply = JSON.parse(line) as typeof reply;
        } catch {
          reject(new Error(`malformed reply from daemon: ${line.slice(0, 200)}`));
          return;
        }
        if (reply.error !== undefined) reject(new RpcError(reply.error.code, reply.error.message, reply.error.data ?? {}));
        else resolve(reply.result);
      });
    });
    sock.on('close', () => finish(() => reject(new DaemonUnreachableError(`daemon at ${socketPath} closed the connection`))));
  });
}
