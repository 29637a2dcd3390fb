// The metrics endpoint: HTTP on `metrics.listen`, GET /metrics in the Prometheus text format, nothing else.
//
// It shares the main event loop with forwarding, so everything is bounded: MAX_CONNECTIONS sockets (further ones are
// refused by node's http server), request bodies are not read, headers and requests time out after REQUEST_TIMEOUT_MS,
// idle keep-alive connections close after KEEP_ALIVE_MS. One scrape is a few KiB per port.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { ListenAddress } from './listen.js';
import type { DaemonMetrics } from './metrics.js';

export const MAX_CONNECTIONS = 16;
export const REQUEST_TIMEOUT_MS = 10_000;
export const KEEP_ALIVE_MS = 5_000;
/** Largest request head accepted (a scrape sends a few hundred bytes). */
export const MAX_HEADER_BYTES = 8 * 1024;

export class MetricsServer {
  private readonly server: Server;
  private readonly metrics: DaemonMetrics;
  private readonly log: Logger;
  readonly listenAddress: ListenAddress;
  /** Scrapes served and requests refused (wrong path or method). */
  scrapes = 0;
  refused = 0;

  constructor(listen: ListenAddress, metrics: DaemonMetrics, log: Logger) {
    this.listenAddress = listen;
    this.metrics = metrics;
    this.log = log;
    this.server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS },
      (req, res) => this.handle(req, res));
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
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

  private handle(req: IncomingMessage, res: ServerResponse): void {
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
    this.metrics.scrape().then((text) => {
      this.scrapes++;
      res.writeHead(200, { 'content-type': this.metrics.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
    }, (err: unknown) => {
      this.log.error({ err }, 'metrics scrape failed');
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('scrape failed\n');
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
