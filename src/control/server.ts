// Control server: JSON-RPC 2.0 over a Unix socket (mode 0600), one request per line, one reply per
// line. Malformed input gets an error reply and never disturbs the daemon; a line longer than
// MAX_LINE_BYTES gets an error and the connection is closed.
//
// Start-up: a socket file that answers belongs to another daemon (refuse to start); a stale file that
// refuses connections is replaced.

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { ControlError, RPC_INVALID_REQUEST, RPC_PARSE_ERROR, RPC_INTERNAL_ERROR, RPC_REQUEST_FAILED } from './errors.js';

export const MAX_LINE_BYTES = 1024 * 1024;

export type MethodHandler = (params: Record<string, unknown>) => unknown;
/** A method that takes the whole connection over (the handover): it answers on `sock` itself. */
export type ConnectionHandler = (sock: Socket, params: Record<string, unknown>, id: unknown) => void;

export class SocketInUseError extends Error {
  readonly code = 'ESOCKETINUSE';
}

interface RpcReply {
  jsonrpc: '2.0';
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data: { code: string; [k: string]: unknown } };
}

export function errorReply(id: unknown, code: number, dataCode: string, message: string, extra?: Record<string, unknown>): RpcReply {
  return { jsonrpc: '2.0', id, error: { code, message, data: { code: dataCode, ...extra } } };
}

/** Handles one request line; returns the reply (null for a notification without id). */
export function handleLine(line: string, methods: ReadonlyMap<string, MethodHandler>, log: Logger): RpcReply | null {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch (err) {
    return errorReply(null, RPC_PARSE_ERROR, 'parse_error', `parse error: ${(err as Error).message}`);
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    return errorReply(null, RPC_INVALID_REQUEST, 'invalid_request', 'request must be a JSON object (batches are not supported)');
  }
  const r = req as Record<string, unknown>;
  const id = r.id === undefined ? null : r.id;
  if (r.jsonrpc !== '2.0') return errorReply(id, RPC_INVALID_REQUEST, 'invalid_request', 'jsonrpc must be "2.0"');
  if (typeof r.method !== 'string') return errorReply(id, RPC_INVALID_REQUEST, 'invalid_request', 'method must be a string');
  if (r.params !== undefined && (typeof r.params !== 'object' || r.params === null || Array.isArray(r.params))) {
    return errorReply(id, -32602, 'invalid_params', 'params must be an object of named parameters');
  }
  const handler = methods.get(r.method);
  if (handler === undefined) {
    return errorReply(id, -32601, 'method_not_found', `unknown method: ${r.method} (known: ${[...methods.keys()].join(', ')})`);
  }
  try {
    const result = handler((r.params ?? {}) as Record<string, unknown>);
    return r.id === undefined ? null : { jsonrpc: '2.0', id, result: result === undefined ? null : result };
  } catch (err) {
    if (err instanceof ControlError) return errorReply(id, err.rpcCode, err.code, err.message, err.details);
    log.error({ err, method: r.method }, 'control method failed');
    return errorReply(id, RPC_INTERNAL_ERROR, 'internal_error', `internal error: ${(err as Error).message}`);
  }
}

/** Resolves true when something accepts connections on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export class ControlServer {
  private server: Server | null = null;
  private readonly clients = new Set<Socket>();
  readonly path: string;
  private readonly methods: ReadonlyMap<string, MethodHandler>;
  private readonly log: Logger;
  private readonly connectionHandlers = new Map<string, ConnectionHandler>();
  /** While set (a handover runs), new requests get a `handing_over` error with this message. */
  private frozen: string | null = null;

  constructor(path: string, methods: ReadonlyMap<string, MethodHandler>, log: Logger) {
    this.path = path;
    this.methods = methods;
    this.log = log;
  }

  /**
   * Checks the socket path before the daemon opens anything: refuses when another daemon answers,
   * removes a stale socket file.
   */
  async prepare(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    if (existsSync(this.path)) {
      if (await answers(this.path)) throw new SocketInUseError(`another daemon answers on ${this.path}`);
      this.log.info({ path: this.path }, 'replacing stale control socket');
      unlinkSync(this.path);
    }
  }

  /** Registers a method that owns its connection from the request on (see ConnectionHandler). */
  onConnectionMethod(method: string, handler: ConnectionHandler): void {
    this.connectionHandlers.set(method, handler);
  }

  /** Answers every request with a `handing_over` error until thaw(). */
  freeze(message: string): void {
    this.frozen = message;
  }

  thaw(): void {
    this.frozen = null;
  }

  /** The listening socket's fd (to hand it over); -1 when not listening. */
  get listenFd(): number {
    const h = (this.server as unknown as { _handle?: { fd?: number } } | null)?._handle;
    return typeof h?.fd === 'number' ? h.fd : -1;
  }

  /**
   * Serves on a listening socket handed over by the previous daemon (`--takeover`): the path and
   * its file stay as they are, nobody else is asked or replaced.
   */
  async listenInherited(fd: number): Promise<void> {
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'control server error'));
  }

  /** Refuses (SocketInUseError) when another daemon answers on `path`; changes nothing. */
  static async check(path: string): Promise<void> {
    if (existsSync(path) && await answers(path)) throw new SocketInUseError(`another daemon answers on ${path}`);
  }

  async listen(): Promise<void> {
    await this.prepare();
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    const oldUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldUmask);
    }
    chmodSync(this.path, 0o600);
    server.on('error', (err) => this.log.error({ err }, 'control server error'));
  }

  private onConnection(sock: Socket): void {
    this.clients.add(sock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        if (this.connectionHandlers.size > 0 && this.takeConnection(line, sock, buf)) return;
        if (this.frozen !== null) {
          sock.end(`${JSON.stringify(errorReply(null, RPC_REQUEST_FAILED, 'handing_over', this.frozen))}\n`);
          return;
        }
        const reply = handleLine(line, this.methods, this.log);
        if (reply !== null && !sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
      }
      if (buf.length > MAX_LINE_BYTES) {
        sock.end(`${JSON.stringify(errorReply(null, RPC_INVALID_REQUEST, 'request_too_large', `request line exceeds ${MAX_LINE_BYTES} bytes`))}\n`);
        buf = '';
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.clients.delete(sock));
  }

  /** A request for a connection method: the handler owns the socket from here on. */
  private takeConnection(line: string, sock: Socket, rest: string): boolean {
    let req: { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return false;
    }
    if (typeof req !== 'object' || req === null || typeof req.method !== 'string') return false;
    const handler = this.connectionHandlers.get(req.method);
    if (handler === undefined) return false;
    const params = typeof req.params === 'object' && req.params !== null && !Array.isArray(req.params) ? req.params as Record<string, unknown> : {};
    sock.removeAllListeners('data');
    if (rest !== '') sock.unshift(Buffer.from(rest, 'utf8'));
    try {
      handler(sock, params, req.id ?? null);
    } catch (err) {
      this.log.error({ err, method: req.method }, 'control connection method failed');
      sock.destroy();
    }
    return true;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
