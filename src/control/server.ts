// Control server: JSON-RPC 2.0 over a Unix socket (mode 0600), one request per line, one reply per
// line. Malformed input gets an error reply and never disturbs the daemon; a line longer than
// MAX_LINE_BYTES gets an error and the connection is closed.
//
// The control plane shares the event loop with forwarding, so everything here is bounded:
//   - backpressure: a client whose replies are not drained (write() returned false) is not read
//     until they are; requests it keeps sending wait in the kernel's socket buffer, not in ours;
//   - a cap on each client's pending output (maxPendingBytes): a reply that would push it over
//     drops the client (logged once per client);
//   - a cap on concurrent clients (control_max_clients): at the cap the server stops accepting,
//     so new clients queue in the kernel's listen backlog (never refused: qemu-ifup may run for
//     many VMs at once) and are accepted as others leave. Logged once per saturated period;
//   - at most REQUESTS_PER_TURN requests of one client per event-loop turn (a pipelined burst yields);
//   - a half-sent line (bytes without a newline) idle for lineIdleTimeoutMs closes the connection;
//   - a client whose replies have not drained for lineIdleTimeoutMs (it stopped reading) is dropped, so that
//     control_max_clients clients that never read cannot hold every slot for good;
//   - data streams (ControlClient.openStream, e.g. a packet capture) have their own bounded buffer
//     (chunks beyond it are dropped and counted) and are exempt from the reply cap.
//
// The listening socket's fd is owned by the addon (src/native/unixsock.cc): a Node server handle
// gets a dup() of it, and closing that handle stops accepting without unlinking the path.
//
// Handover (`daemon --takeover`, src/handover/): a connection method (onConnectionMethod) takes
// its connection over; freeze() stops accepting and answers `handing_over` to requests on open
// connections; handoverFd is the listening socket to send; listenInherited() serves one received.
//
// Start-up: a socket that answers belongs to another daemon (refuse to start); a stale socket that
// refuses connections is replaced; anything else at the path (a regular file, a directory, a
// symlink) is a start-up error and is left alone.

import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { unixSocket } from '../io/native.js';
import { ControlError, RPC_INVALID_REQUEST, RPC_PARSE_ERROR, RPC_INTERNAL_ERROR, RPC_REQUEST_FAILED } from './errors.js';

export const MAX_LINE_BYTES = 1024 * 1024;
/** Default of the config key control_max_clients. */
export const DEFAULT_MAX_CLIENTS = 64;
/** Bytes of output queued in user space for one client beyond which it is dropped. */
export const DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024;
/** A half-sent request line that sees no new byte for this long closes the connection. */
export const DEFAULT_LINE_IDLE_TIMEOUT_MS = 10_000;
/** listen(2) backlog (the kernel caps it at net.core.somaxconn, 4096 by default). */
export const LISTEN_BACKLOG = 4096;
/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Requests of one client handled per event-loop turn; the rest of a pipelined burst waits a turn. */
export const REQUESTS_PER_TURN = 32;

export type MethodHandler = (params: Record<string, unknown>, client: ControlClient | null) => unknown;
/** A method that takes the whole connection over (the handover): it answers on `sock` itself. */
export type ConnectionHandler = (sock: Socket, params: Record<string, unknown>, id: unknown) => void;

export class SocketInUseError extends Error {
  readonly code = 'ESOCKETINUSE';
}

/** Something other than a socket is at the control-socket path (or the path is unusable). */
export class SocketPathError extends Error {
  readonly code = 'ESOCKETPATH';
}

export interface ControlServerOptions {
  /** control_max_clients */
  maxClients?: number;
  maxPendingBytes?: number;
  lineIdleTimeoutMs?: number;
  maxLineBytes?: number;
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

/** JSON-RPC 2.0 ids: a string, an integer or null (absent: a notification). */
function validId(id: unknown): boolean {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id));
}

/** Handles one request line; returns the reply (null for a notification without id). */
export function handleLine(line: string, methods: ReadonlyMap<string, MethodHandler>, log: Logger, client: ControlClient | null = null): RpcReply | null {
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
  if (r.id !== undefined && !validId(r.id)) {
    return errorReply(null, RPC_INVALID_REQUEST, 'invalid_request', 'id must be a string, an integer or null');
  }
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
    const result = handler((r.params ?? {}) as Record<string, unknown>, client);
    return r.id === undefined ? null : { jsonrpc: '2.0', id, result: result === undefined ? null : result };
  } catch (err) {
    if (err instanceof ControlError) return errorReply(id, err.rpcCode, err.code, err.message, err.details);
    log.error({ err, method: r.method }, 'control method failed');
    return errorReply(id, RPC_INTERNAL_ERROR, 'internal_error', `internal error: ${(err as Error).message}`);
  }
}

/** Resolves true when something listens on `path` (accepting, or with a full backlog). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    // EAGAIN: a live daemon at control_max_clients whose listen backlog is full
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EAGAIN'));
    s.setTimeout(1000, () => done(false));
  });
}

/** Why `path` cannot be a Unix socket path, or null. */
export function socketPathProblem(path: string): string | null {
  const bytes = Buffer.byteLength(path);
  if (bytes === 0) return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (bytes > MAX_SOCKET_PATH_BYTES) return `is ${bytes} bytes long; a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES} bytes (sun_path)`;
  return null;
}

/**
 * A data stream to one client (e.g. a packet capture): output exempt from the reply cap, bounded by
 * its own buffer; a chunk that does not fit is dropped and counted, never queued.
 */
export class ControlStream {
  readonly maxBufferedBytes: number;
  droppedChunks = 0;
  droppedBytes = 0;
  private readonly client: ControlClient;
  private closed = false;
  private readonly closeHandlers: (() => void)[] = [];

  constructor(client: ControlClient, maxBufferedBytes: number) {
    this.client = client;
    this.maxBufferedBytes = maxBufferedBytes;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Queues a chunk; false (and counted) when the stream's buffer is full or the stream closed. */
  write(chunk: string | Uint8Array): boolean {
    const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (this.closed || !this.client.writeRaw(chunk, bytes, this.maxBufferedBytes)) {
      this.droppedChunks++;
      this.droppedBytes += bytes;
      return false;
    }
    return true;
  }

  /** Runs `fn` once when the stream ends (closed by the producer or the client went away). */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHandlers.push(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.streamClosed(this);
    for (const fn of this.closeHandlers.splice(0)) fn();
  }
}

/** One connection: line framing, backpressure, the output cap, the idle timeout. */
export class ControlClient {
  readonly id: number;
  private readonly sock: Socket;
  private readonly server: ControlServer;
  private buf = '';
  /** Replies are not drained: not reading until 'drain'. */
  private blocked = false;
  /** REQUESTS_PER_TURN handled in this turn: the rest waits for the next one (setImmediate). */
  private yielded = false;
  private stream: ControlStream | null = null;
  private dropped = false;
  /** A last reply was sent with end(). */
  private ending = false;

  constructor(id: number, sock: Socket, server: ControlServer) {
    this.id = id;
    this.sock = sock;
    this.server = server;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      this.process();
    });
    sock.on('drain', () => {
      if (!this.blocked) return;
      this.blocked = false;
      this.process();
      this.resumeIfIdle();
    });
    sock.setTimeout(server.lineIdleTimeoutMs, () => this.onIdle());
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.stream?.close();
      server.clientClosed(this);
    });
  }

  /** Bytes queued in user space for this client. */
  get pendingBytes(): number {
    return this.sock.writableLength;
  }

  /** Opens the client's data stream (one at a time); its chunks are exempt from the reply cap. */
  openStream(opts: { maxBufferedBytes: number }): ControlStream {
    if (this.stream !== null) throw new ControlError('invalid_request', 'this connection already carries a stream');
    if (!Number.isSafeInteger(opts.maxBufferedBytes) || opts.maxBufferedBytes <= 0) {
      throw new RangeError('maxBufferedBytes must be a positive integer');
    }
    this.stream = new ControlStream(this, opts.maxBufferedBytes);
    return this.stream;
  }

  /** @internal */
  streamClosed(s: ControlStream): void {
    if (this.stream === s) this.stream = null;
  }

  /** @internal Writes unless that would take the pending output beyond `cap`; never blocks reading. */
  writeRaw(chunk: string | Uint8Array, bytes: number, cap: number): boolean {
    if (this.sock.destroyed || this.dropped) return false;
    if (this.sock.writableLength + bytes > cap) return false;
    this.sock.write(chunk);
    return true;
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** @internal The socket leaves this client (a connection method owns it now). */
  detach(): void {
    this.buf = '';
    this.ending = true;
    for (const ev of ['data', 'drain', 'timeout', 'close', 'error']) this.sock.removeAllListeners(ev);
    this.sock.setTimeout(0);
    this.server.clientClosed(this);
  }

  /** Ends the connection once its queued output is flushed (a finished data stream, e.g. a capture). */
  end(): void {
    this.ending = true;
    this.sock.pause();
    this.sock.end();
  }

  private process(): void {
    const maxLine = this.server.maxLineBytes;
    let pos = 0;
    let handled = 0;
    let nl: number;
    while (!this.blocked && !this.ending && !this.sock.destroyed && (nl = this.buf.indexOf('\n', pos)) >= 0) {
      if (handled === REQUESTS_PER_TURN) {
        // a pipelined burst: let forwarding run between slices of it
        this.yielded = true;
        this.sock.pause();
        setImmediate(() => {
          this.yielded = false;
          this.process();
          this.resumeIfIdle();
        });
        break;
      }
      const line = this.buf.slice(pos, nl).trim();
      pos = nl + 1;
      if (line === '') continue;
      handled++;
      if (this.server.takeConnection(line, this, this.sock, this.buf.slice(pos))) return;
      if (this.server.frozenMessage !== null) {
        this.closeWith(errorReply(null, RPC_REQUEST_FAILED, 'handing_over', this.server.frozenMessage));
        return;
      }
      const reply = handleLine(line, this.server.methods, this.server.log, this);
      if (reply !== null) this.reply(reply);
    }
    if (pos > 0) this.buf = this.buf.slice(pos);
    if (this.blocked || this.yielded || this.ending || this.sock.destroyed) return;
    if (this.buf.length > maxLine) {
      this.closeWith(errorReply(null, RPC_INVALID_REQUEST, 'request_too_large', `request line exceeds ${maxLine} bytes`));
    }
  }

  /** Reads again unless waiting for a drain, a yielded turn, or closing. */
  private resumeIfIdle(): void {
    if (!this.blocked && !this.yielded && !this.ending && !this.sock.destroyed) this.sock.resume();
  }

  /** Sends a last error reply and closes; a peer that does not read it is destroyed at the next idle timeout. */
  private closeWith(reply: RpcReply): void {
    this.buf = '';
    this.ending = true;
    this.sock.pause();
    this.sock.end(`${JSON.stringify(reply)}\n`);
  }

  private reply(reply: RpcReply): void {
    const text = `${JSON.stringify(reply)}\n`;
    const bytes = Buffer.byteLength(text);
    const cap = this.server.maxPendingBytes + (this.stream?.maxBufferedBytes ?? 0);
    if (this.sock.writableLength + bytes > cap) {
      this.drop(`pending output would exceed ${cap} bytes`, bytes);
      return;
    }
    if (!this.sock.write(text)) {
      // backpressure: read no more requests until the replies are drained
      this.blocked = true;
      this.sock.pause();
    }
  }

  private drop(reason: string, replyBytes: number): void {
    if (this.dropped) return;
    this.dropped = true;
    this.server.log.warn({ client: this.id, reason, pending_bytes: this.sock.writableLength, reply_bytes: replyBytes }, 'control client dropped');
    this.server.clientsDropped++;
    this.sock.destroy();
  }

  private onIdle(): void {
    if (this.ending) {
      this.sock.destroy();
      return;
    }
    // replies waiting in user space and no drain for a whole idle period: the client stopped reading
    if (this.blocked) {
      this.drop(`replies not drained for ${this.server.lineIdleTimeoutMs} ms`, 0);
      return;
    }
    // idle with a half-sent line: the client will not finish it
    if (this.buf.length === 0 || this.yielded) return;
    this.closeWith(errorReply(null, RPC_INVALID_REQUEST, 'request_timeout',
      `incomplete request line: no newline within ${this.server.lineIdleTimeoutMs} ms`));
  }
}

export class ControlServer {
  readonly path: string;
  /** @internal */ readonly methods: ReadonlyMap<string, MethodHandler>;
  /** @internal */ readonly log: Logger;
  readonly maxClients: number;
  readonly maxPendingBytes: number;
  readonly lineIdleTimeoutMs: number;
  readonly maxLineBytes: number;
  /** Clients dropped for exceeding the output cap. */
  clientsDropped = 0;
  /** Times the server stopped accepting because it was at maxClients. */
  acceptPauses = 0;
  private readonly clients = new Set<ControlClient>();
  private nextClientId = 1;
  /** The listening socket (owned by us, never given to libuv). */
  private listenFd = -1;
  /** The Node handle accepting on a dup() of listenFd, or null while paused at the cap. */
  private server: Server | null = null;
  /** At the cap since the last "stopped accepting" log line. */
  private saturated = false;
  private closing = false;
  private readonly connectionHandlers = new Map<string, ConnectionHandler>();
  /** While set (a handover runs), requests get a `handing_over` error with this message. */
  private frozen: string | null = null;

  constructor(path: string, methods: ReadonlyMap<string, MethodHandler>, log: Logger, opts: ControlServerOptions = {}) {
    this.path = path;
    this.methods = methods;
    this.log = log;
    this.maxClients = opts.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.maxPendingBytes = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.lineIdleTimeoutMs = opts.lineIdleTimeoutMs ?? DEFAULT_LINE_IDLE_TIMEOUT_MS;
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get accepting(): boolean {
    return this.server !== null;
  }

  /**
   * Checks the socket path before the daemon opens anything: refuses when another daemon answers,
   * removes a stale socket, refuses (and leaves alone) anything that is not a socket.
   */
  async prepare(): Promise<void> {
    const problem = socketPathProblem(this.path);
    if (problem !== null) throw new SocketPathError(`control socket path ${JSON.stringify(this.path)} ${problem}`);
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    let st;
    try {
      st = lstatSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new SocketPathError(`cannot check the control socket path ${this.path}: ${(err as Error).message}`);
    }
    if (!st.isSocket()) {
      const what = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'not a socket';
      throw new SocketPathError(`${this.path} exists and is ${what}; refusing to replace it with the control socket (remove it or choose another control_socket)`);
    }
    if (await answers(this.path)) throw new SocketInUseError(`another daemon answers on ${this.path}`);
    this.log.info({ path: this.path }, 'replacing stale control socket');
    unlinkSync(this.path);
  }

  /** Registers a method that owns its connection from the request on (see ConnectionHandler). */
  onConnectionMethod(method: string, handler: ConnectionHandler): void {
    this.connectionHandlers.set(method, handler);
  }

  /** Stops accepting (new clients wait in the backlog) and answers `handing_over` until thaw(). */
  freeze(message: string): void {
    this.frozen = message;
    this.stopAccepting();
  }

  /** The handover did not happen: accepting and answering again. */
  thaw(): void {
    this.frozen = null;
    if (!this.closing && this.server === null && this.listenFd >= 0 && this.clients.size < this.maxClients) {
      this.startAccepting().catch((err: unknown) => this.log.error({ err }, 'control server cannot accept again'));
    }
  }

  get frozenMessage(): string | null {
    return this.frozen;
  }

  /** The listening socket's fd (to hand it over); -1 when not listening. */
  get handoverFd(): number {
    return this.listenFd;
  }

  /**
   * Serves on a listening socket handed over by the previous daemon (`--takeover`): the path and
   * its file stay as they are, nobody else is asked or replaced.
   */
  async listenInherited(fd: number): Promise<void> {
    this.listenFd = fd;
    await this.startAccepting();
  }

  /** @internal A request for a connection method: the handler owns the socket from here on. */
  takeConnection(line: string, client: ControlClient, sock: Socket, rest: string): boolean {
    if (this.connectionHandlers.size === 0) return false;
    let req: { method?: unknown; params?: unknown; id?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return false;
    }
    if (typeof req !== 'object' || req === null || typeof req.method !== 'string') return false;
    const handler = this.connectionHandlers.get(req.method);
    if (handler === undefined) return false;
    const params = typeof req.params === 'object' && req.params !== null && !Array.isArray(req.params) ? req.params as Record<string, unknown> : {};
    client.detach();
    if (rest !== '') sock.unshift(Buffer.from(rest, 'utf8'));
    try {
      handler(sock, params, req.id ?? null);
    } catch (err) {
      this.log.error({ err, method: req.method }, 'control connection method failed');
      sock.destroy();
    }
    return true;
  }

  async listen(): Promise<void> {
    await this.prepare();
    this.listenFd = unixSocket.listen(this.path, LISTEN_BACKLOG);
    await this.startAccepting();
  }

  private startAccepting(): Promise<void> {
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    const fd = unixSocket.dup(this.listenFd);
    return new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        unixSocket.close(fd);
        if (this.server === server) this.server = null;
        reject(err);
      });
      // the backlog as an argument: Node 20 ignores options.backlog next to options.fd (and would listen(511))
      server.listen({ fd }, LISTEN_BACKLOG, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.log.error({ err }, 'control server error'));
        resolve();
      });
    });
  }

  /** Closes the accepting handle (its dup'ed fd); the listening socket stays, its backlog queues. */
  private stopAccepting(): void {
    const server = this.server;
    this.server = null;
    server?.close();
  }

  private onConnection(sock: Socket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    this.clients.add(new ControlClient(this.nextClientId++, sock, this));
    if (this.clients.size >= this.maxClients && this.server !== null) {
      this.stopAccepting();
      this.acceptPauses++;
      if (!this.saturated) {
        this.saturated = true;
        this.log.warn({ clients: this.clients.size, max_clients: this.maxClients },
          'control clients at control_max_clients: not accepting; new clients wait in the listen backlog');
      }
    }
  }

  /** @internal */
  clientClosed(c: ControlClient): void {
    this.clients.delete(c);
    if (this.closing || this.frozen !== null || this.server !== null || this.clients.size >= this.maxClients) return;
    if (this.saturated && this.clients.size <= this.maxClients / 2) {
      this.saturated = false;
      this.log.info({ clients: this.clients.size, pauses: this.acceptPauses }, 'control clients below half of control_max_clients again');
    }
    this.startAccepting().catch((err: unknown) => this.log.error({ err }, 'control server cannot accept again'));
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const c of this.clients) c.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.listenFd >= 0) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
      unixSocket.close(this.listenFd);
      this.listenFd = -1;
    }
  }
}
