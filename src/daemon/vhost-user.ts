// vhost-user ports (docs/vhost-user.md): a QEMU guest whose virtio-net rings tapbridge reads and writes directly
// (src/native/vhost-user.cc) instead of through a TAP. The bridge sees kind 'vhost-user' like any port: its batches
// land in the same RX slab, it sends from the same tx queue, and counters, captures, mirrors and QoS are the same.
//
//   mode client (default)  QEMU listens (-chardev socket,...,server=on); the port connects, and after a disconnect
//                          connects again with backoff (RECONNECT_MIN_MS doubling to RECONNECT_MAX_MS; back to the
//                          shortest after a connection that brought the link up). Either side may restart.
//   mode server            the port listens on the socket path (QEMU connects with reconnect=N) and takes one
//                          frontend at a time.
//
// State: `down` until the frontend has started and enabled both queues, then `up`; a disconnect (frontend gone,
// or a protocol error: the reason is logged) makes it `down` and flushes its FDB entries like a carrier loss.
// A vhost-user port has no netdev (ifindex 0). A `--takeover` hands over the connection, the guest memory fds, the
// eventfds and each ring's indexes (exportHandover/adoptHandover): the new daemon continues without renegotiating.
// After a plain restart the port connects anew and the frontend replays its setup.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort, PortState } from '../bridge/port.js';
import { fds, VhostUserIo } from '../io/native.js';
import type { VhostHandover, VhostUserInfo } from '../io/native-types.js';
import { inheritedFds } from '../handover/inherited.js';
import type { VhostUserSpec } from '../config/config.js';
import { ManagedPort, type ManagedPortOptions } from './ports.js';
import type { DaemonCore } from './runtime.js';

export const RECONNECT_MIN_MS = 100;
export const RECONNECT_MAX_MS = 5_000;
/**
 * "connection closed" lines per port: a bucket of DISCONNECT_LOG_BURST lines, refilled by one every
 * DISCONNECT_LOG_REFILL_MS; lines over it are counted (`not_logged` on the next line), so a frontend that fails in a loop
 * (server mode has no backoff) cannot flood the log, while each of a few failures still gets its own line.
 */
export const DISCONNECT_LOG_BURST = 30;
export const DISCONNECT_LOG_REFILL_MS = 2_000;

/** `show` of a vhost-user port. */
export interface VhostUserShow extends VhostUserInfo {
  socket: string;
  mode: 'client' | 'server';
}

export class VhostUserPort extends ManagedPort {
  readonly spec: VhostUserSpec;
  vio: VhostUserIo | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private lastConnectErrno = 0;
  /** connections that ended (frontend gone or protocol error) */
  disconnects = 0;
  private logTokens = DISCONNECT_LOG_BURST;
  private logRefilledAtMs = performance.now();
  private disconnectsNotLogged = 0;

  constructor(bridge: Bridge, port: BridgePort, spec: VhostUserSpec, opts: ManagedPortOptions, bridgeMtu: number, log: Logger) {
    super(bridge, port, opts, bridgeMtu, log);
    this.spec = spec;
    this.port.mtu = bridgeMtu;
  }

  /** Creates the port's I/O: listens (server) or makes the first connect attempt (client); retries both with backoff. */
  override open(): boolean {
    if (this.vio !== null) return true;
    const io = new VhostUserIo(this.name, this.spec.socket, this.spec.mode,
      this.wrap(`port ${this.name}: vhost-user state`, (type: 'connected' | 'link' | 'disconnected', detail: string, up: boolean) => this.onState(type, detail, up)));
    this.vio = io;
    this.port.io = io;
    this.setState('down');
    io.start(
      this.onBatch,
      () => {},
    );
    this.log.info({ socket: this.spec.socket, mode: this.spec.mode }, this.spec.mode === 'server' ? 'vhost-user socket listening' : 'vhost-user port open; connecting');
    // a takeover: the previous daemon's connection, memory and rings continue here, nothing is renegotiated
    if (!this.adoptInherited(io) && this.spec.mode === 'client') this.tryConnect();
    if (this.spec.mode === 'server') this.tryListen();
    return true;
  }

  private adoptInherited(io: VhostUserIo): boolean {
    const h = inheritedFds.takeVhost(this.name);
    if (h === null) return false;
    try {
      io.adoptHandover(h);
    } catch (err) {
      for (const [, fd] of h.fds) fds.close(fd);
      this.log.warn({ err: (err as Error).message }, 'inherited vhost-user connection unusable; connecting anew');
      return false;
    }
    const info = io.info();
    this.log.info({ connected: info.connected, link: info.link, features: info.features }, 'vhost-user connection taken over');
    return info.connected;
  }

  /** Takeover, old daemon: this port's fds and state; the port then leaves the rings alone unless resumeIo(). */
  exportHandover(): VhostHandover | null {
    return this.vio?.exportHandover() ?? null;
  }

  /**
   * server mode: listen on the socket path. While another process listens there (the old daemon during a takeover)
   * this retries with the reconnect backoff; any other failure is logged and retried the same way.
   */
  private tryListen(): void {
    const io = this.vio;
    if (io === null || io.isClosed) return;
    try {
      io.listen();
      this.reconnectDelayMs = RECONNECT_MIN_MS;
    } catch (err) {
      const errno = (err as { errno?: number }).errno ?? 0;
      if (errno !== this.lastConnectErrno) {
        this.log.warn({ err, socket: this.spec.socket }, 'cannot listen on the vhost-user socket yet; retrying');
        this.lastConnectErrno = errno;
      }
      this.scheduleRetry(() => this.tryListen());
    }
  }

  private tryConnect(): void {
    const io = this.vio;
    if (io === null || io.isClosed) return;
    const errno = io.connect();
    if (errno === 0) return;  // 'connected' follows from the addon
    if (errno !== this.lastConnectErrno) {
      this.log.info({ socket: this.spec.socket, errno }, 'vhost-user socket not reachable yet; retrying');
      this.lastConnectErrno = errno;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.spec.mode === 'client') this.scheduleRetry(() => this.tryConnect());
  }

  private scheduleRetry(fn: () => void): void {
    if (this.vio === null) return;
    this.cancelReconnect();
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(RECONNECT_MAX_MS, this.reconnectDelayMs * 2);
    this.reconnectTimer = setTimeout(this.wrap(`port ${this.name}: vhost-user reconnect`, () => {
      this.reconnectTimer = null;
      fn();
    }), delay);
    this.reconnectTimer.unref();
  }

  private cancelReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private onState(type: 'connected' | 'link' | 'disconnected', detail: string, up: boolean): void {
    if (type === 'connected') {
      this.lastConnectErrno = 0;
      this.log.info({ socket: this.spec.socket }, 'vhost-user frontend connected');
    } else if (type === 'link') {
      if (up) this.reconnectDelayMs = RECONNECT_MIN_MS;
      const info = this.vio?.info();
      this.log.info({ state: up ? 'up' : 'down', features: info?.features, ring_size: info?.rings[0]?.size }, 'vhost-user queues ' + (up ? 'running' : 'stopped'));
      this.setState(up ? 'up' : 'down');
    } else {
      this.disconnects++;
      const now = performance.now();
      const refill = Math.floor((now - this.logRefilledAtMs) / DISCONNECT_LOG_REFILL_MS);
      if (refill > 0) {
        this.logTokens = Math.min(DISCONNECT_LOG_BURST, this.logTokens + refill);
        this.logRefilledAtMs += refill * DISCONNECT_LOG_REFILL_MS;
      }
      if (this.logTokens > 0) {
        this.logTokens--;
        this.log.warn({ socket: this.spec.socket, reason: detail, not_logged: this.disconnectsNotLogged || undefined }, 'vhost-user connection closed');
        this.disconnectsNotLogged = 0;
      } else {
        this.disconnectsNotLogged++;
      }
      this.setState('down');
      this.scheduleReconnect();
    }
  }

  show(): VhostUserShow {
    const info: VhostUserInfo = this.vio?.info() ?? {
      connected: false, link: false, features: '0x0', protocolFeatures: '0x0', regions: 0, rings: [], connects: 0,
      protocolErrors: 0, rejected: 0, kicks: 0, rxBatches: 0, notifies: 0, descBudget: 0, descBudgetHits: 0, longChains: 0, maxDescPerWakeup: 0,
      lastError: '',
    };
    return { socket: this.spec.socket, mode: this.spec.mode, ...info };
  }

  override close(state: PortState): void {
    this.cancelReconnect();
    const io = this.vio;
    this.vio = null;
    this.port.detachIo();
    this.setState(state);
    if (io !== null) io.close();
  }

  override pauseIo(): void {
    this.vio?.stop();
  }

  override resumeIo(): void {
    this.vio?.resume();
  }

  override onLinkNew(): void {}

  override onLinkGone(): void {}
}

/** What one connected vhost-user port hands over at a takeover (src/handover/serve.ts). */
export interface VhostHandoverOut {
  name: string;
  fds: Array<[number, number]>;
  state: Record<string, unknown>;
}

/** Takeover, old daemon: each connected vhost-user port's fds and state; call after pauseIo(). */
export function vhostHandovers(d: DaemonCore): VhostHandoverOut[] {
  const out: VhostHandoverOut[] = [];
  for (const mp of d.byName.values()) {
    const h = mp instanceof VhostUserPort ? mp.exportHandover() : null;
    if (h !== null) out.push({ name: mp.name, ...h });
  }
  return out;
}
