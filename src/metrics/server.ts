// The metrics endpoint: HTTP on `metrics.listen`, GET /metrics in the Prometheus text format, nothing else.
//
// It shares the main event loop with forwarding, so everything is bounded, by this file rather than by node's http
// server (whose header timeout is checked only every 30 s, and whose connection cap refuses the NEW connection, so
// that 16 idle sockets of any local user locked every scrape out):
//   connections   at most MAX_CONNECTIONS; a new one beyond that closes the oldest connection that has no request
//                 in progress (an idle keep-alive socket, or one still sending its request head); when every one
//                 has a request in progress the new one is closed (counted: connectionsRefused)
//   head timeout  a connection must complete a request head within HEAD_TIMEOUT_MS of opening, and the next one
//                 within HEAD_TIMEOUT_MS of the previous response; a sweep every SWEEP_INTERVAL_MS closes the
//                 ones that did not (counted: connectionsTimedOut). Request bodies are not read.
//   scrapes       one at a time: requests that arrive while a scrape is built wait for it and get its text; a
//                 scrape's text is served again to requests within CACHE_MS of when it was built
//                 (counted: scrapes served, scrapesBuilt)
// One scrape is a few KiB per port, built from the counters the daemon already holds (DaemonMetrics: no round
// trip to the data-plane workers).

import type { Socket } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { ListenAddress } from './listen.js';
import type { DaemonMetrics } from './metrics.js';

export const MAX_CONNECTIONS = 16;
/** Time a connection has to send a complete request head (after it opened, or after the previous response). */
export const HEAD_TIMEOUT_MS = 10_000;
/** node's own limit on a request (head and body), kept as a second bound. */
export const REQUEST_TIMEOUT_MS = 10_000;
export const KEEP_ALIVE_MS = 5_000;
/** How often the head timeouts are checked (one timer for all connections, only while there are some). */
export const SWEEP_INTERVAL_MS = 500;
/** A scrape's text is served again for this long. */
export const CACHE_MS = 1_000;
/** Largest request head accepted (a scrape sends a few hundred bytes). */
export const MAX_HEADER_BYTES = 8 * 1024;

export interface MetricsServerOptions {
  maxConnections?: number;
  headTimeoutMs?: number;
  sweepIntervalMs?: number;
  cacheMs?: number;
}

interface Connection {
  /** the request head must be complete by then; Infinity while a request is in progress */
  headDeadlineMs: number;
}

export class MetricsServer {
  private readonly server: Server;
  private readonly metrics: DaemonMetrics;
  private readonly log: Logger;
  private readonly maxConnections: number;
  private readonly headTimeoutMs: number;
  private readonly sweepIntervalMs: number;
  private readonly cacheMs: number;
  /** open connections, oldest first (Map keeps insertion order) */
  private readonly connections = new Map<Socket, Connection>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private inflight: Promise<string> | null = null;
  private cached: { text: string; builtAtMs: number } | null = null;
  readonly listenAddress: ListenAddress;
  /** Scrapes served, scrapes built (the others came from the one in flight or the cache), requests refused (wrong path or method). */
  scrapes = 0;
  scrapesBuilt = 0;
  refused = 0;
  /** Connections closed: the oldest idle one for a new one, a new one beyond the cap, a head not complete in time. */
  connectionsEvicted = 0;
  connectionsRefused = 0;
  connectionsTimedOut = 0;

  constructor(listen: ListenAddress, metrics: DaemonMetrics, log: Logger, opts: MetricsServerOptions = {}) {
    this.listenAddress = listen;
    this.metrics = metrics;
    this.log = log;
    this.maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
    this.headTimeoutMs = opts.headTimeoutMs ?? HEAD_TIMEOUT_MS;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS;
    this.cacheMs = opts.cacheMs ?? CACHE_MS;
    this.server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS },
      (req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
    this.server.on('connection', (socket: Socket) => this.admit(socket));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Binds; rejects (EADDRINUSE, EADDRNOTAVAIL, ...) with the address in the message. */
  listen(): Promise<void> {
    const { host, port } = this.listenAddress;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new Error(`metrics: cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn({ err }, 'metrics server error'));
        this.log.info({ listen: `${host.includes(':') ? `[${host}]` : host}:${this.port}` }, 'serving metrics on /metrics');
        resolve();
      });
    });
  }

  /** The bound port (the configured one, or the kernel's choice for port 0 in tests). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : this.listenAddress.port;
  }

  /** Open connections (at most maxConnections). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** A new connection: room is made by closing the oldest one without a request in progress. */
  private admit(socket: Socket): void {
    const now = performance.now();
    if (this.connections.size >= this.maxConnections) {
      let victim: Socket | null = null;
      for (const [s, c] of this.connections) {
        if (c.headDeadlineMs !== Infinity) {
          victim = s;
          break;
        }
      }
      if (victim === null) {
        this.connectionsRefused++;
        socket.destroy();
        return;
      }
      this.connectionsEvicted++;
      this.forget(victim);
      victim.destroy();
    }
    this.connections.set(socket, { headDeadlineMs: now + this.headTimeoutMs });
    socket.once('close', () => this.forget(socket));
    if (this.sweepTimer === null) {
      this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  private forget(socket: Socket): void {
    this.connections.delete(socket);
    if (this.connections.size === 0 && this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  /** Closes the connections whose request head is overdue. */
  private sweep(): void {
    const now = performance.now();
    for (const [s, c] of this.connections) {
      if (c.headDeadlineMs <= now) {
        this.connectionsTimedOut++;
        this.forget(s);
        s.destroy();
      }
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.connections.get(req.socket);
    if (conn !== undefined) conn.headDeadlineMs = Infinity;
    res.once('close', () => {
      if (conn !== undefined) conn.headDeadlineMs = performance.now() + this.headTimeoutMs;
    });
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      this.refused++;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('tapbridge: metrics are on /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.refused++;
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    this.scrape().then((text) => {
      this.scrapes++;
      res.writeHead(200, { 'content-type': this.metrics.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
    }, (err: unknown) => {
      this.log.error({ err }, 'metrics scrape failed');
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('scrape failed\n');
    });
  }

  /** The cached text when it is recent, else the scrape in flight, else a new one. */
  private scrape(): Promise<string> {
    const c = this.cached;
    if (c !== null && performance.now() - c.builtAtMs < this.cacheMs) return Promise.resolve(c.text);
    if (this.inflight !== null) return this.inflight;
    this.scrapesBuilt++;
    const p = this.metrics.scrape().then((text) => {
      this.cached = { text, builtAtMs: performance.now() };
      return text;
    }).finally(() => {
      this.inflight = null;
    });
    this.inflight = p;
    return p;
  }

  close(): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.connections.keys()) s.destroy();
      this.connections.clear();
    });
  }
}
