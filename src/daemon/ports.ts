// Port lifecycle (Linux net/bridge br_if.c): open a port's I/O, follow its netdev, close it.
//
//   tap     the daemon creates (or re-opens) the TAP and holds its fd. The TAP may be moved to
//           another namespace and renamed: the fd keeps working and the RTM_DELLINK our namespace
//           sees for it is ignored. Closing the fd removes a non-persistent TAP. An fd that reports
//           EBADFD (netdev deleted) makes the port `absent`.
//   host    a TAP like `tap` that stays in the daemon's namespace for the host's own addresses:
//           its host stack is NOT silenced, and its MAC (hostMac) is set before it goes up.
//   attach  an AF_PACKET socket on an existing netdev (e.g. a TAP that QEMU holds). Missing netdev:
//   uplink  the port waits (`absent`) and opens when rtnetlink announces the name; deleted: closed,
//           entries flushed, re-opened when the name comes back (new ifindex). Carrier (IFF_UP and
//           IFF_LOWER_UP) decides `up`/`down`.
//
// Opening acquires in order (host stack silenced, socket, counters, poll) and unwinds on failure;
// closing stops polling, flushes FDB entries (setPortState) and closes the fd.
//
// A port whose I/O the addon stopped (fatal errno, or too many failed reads in a row) is closed and
// re-opened with backoff (REOPEN_MIN_MS doubling to REOPEN_MAX_MS) while its netdev exists in our
// namespace; one that stayed open for REOPEN_RESET_MS starts again from the shortest delay. MTU
// changes seen in link events update the port's MTU (an uplink raised to 9000 forwards jumbo frames).
// `kernel_drops`: for a TAP (the daemon's or an attached QEMU TAP) the netdev's tx_dropped, read from
// sysfs when somebody asks for stats (only while the netdev is visible in the daemon's namespace).

import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortKind, type PortState } from '../bridge/port.js';
import { IFF_LOOPBACK, IFF_LOWER_UP, IFF_RUNNING, IFF_UP, netdev, PacketPort } from '../io/native.js';
import { silenceHostStack } from './hoststack.js';
import { inheritedFds } from '../handover/inherited.js';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** TAP kernel-to-fd ring: the default 1000 overflows silently under bursts. */
export const TAP_TXQUEUELEN = 10000;
/** AF_PACKET socket buffers (SO_RCVBUFFORCE / SO_SNDBUFFORCE). */
export const PACKET_RCVBUF = 8 * 1024 * 1024;
export const PACKET_SNDBUF = 4 * 1024 * 1024;

const EBADFD = 77;

/** Re-open backoff after the addon stopped a port's I/O. */
export const REOPEN_MIN_MS = 100;
export const REOPEN_MAX_MS = 30_000;
/** A port that stayed open this long re-opens after REOPEN_MIN_MS again. */
export const REOPEN_RESET_MS = 60_000;

/** Wraps a callback the port registers (timers, the addon's error callback) in the daemon's exception boundary. */
export type CallbackWrapper = <A extends unknown[]>(context: string, fn: (...args: A) => void) => (...args: A) => void;
const unguarded: CallbackWrapper = (_context, fn) => fn;

/** tx_dropped of `name` from sysfs when that sysfs entry is the netdev `ifindex`, else null. */
function readTxDropped(name: string, ifindex: number): number | null {
  try {
    const dir = `/sys/class/net/${name}`;
    if (ifindex <= 0 || Number(readFileSync(`${dir}/ifindex`, 'utf8')) !== ifindex) return null;
    const v = Number(readFileSync(`${dir}/statistics/tx_dropped`, 'utf8'));
    return Number.isSafeInteger(v) && v >= 0 ? v : null;
  } catch {
    return null;
  }
}

export interface ManagedPortOptions {
  persist: boolean;
  /** attach only: create a persistent TAP owned by this user/group, close the daemon's fd, attach to it. */
  create?: { owner: number; group: number } | null;
  /** host only: the MAC set on the TAP before link up. */
  hostMac?: string | null;
  /** the daemon's exception boundary for timers and I/O callbacks */
  wrap?: CallbackWrapper;
  /**
   * The name of another port of this daemon whose netdev has this ifindex (e.g. the daemon's own
   * TAP, renamed), or null. Attaching to such a netdev would loop frames into the daemon's own fd.
   */
  ownerOfIfindex?: (ifindex: number) => string | null;
}

/** A netdev that must never be a bridge port (loopback, or one the daemon already bridges). */
export class RefusedNetdevError extends Error {
  readonly code = 'EREFUSED';
}

/** Why the netdev `name` (described by `flags`, `ifindex`) cannot be attached, or null. */
export function refusedNetdevProblem(name: string, flags: number, ifindex: number, ownerOfIfindex?: (ifindex: number) => string | null): string | null {
  if ((flags & IFF_LOOPBACK) !== 0) return `${name} is a loopback device (IFF_LOOPBACK); loopback cannot be a bridge port`;
  const owner = ownerOfIfindex?.(ifindex) ?? null;
  if (owner !== null && owner !== name) return `${name} is the netdev of port ${owner} (ifindex ${ifindex}); bridging it twice would loop frames`;
  return null;
}

/** True when `name` is a TUN/TAP netdev (sysfs has tun_flags for those). */
function isTunTap(name: string): boolean {
  return existsSync(`/sys/class/net/${name}/tun_flags`);
}

/** What the daemon needs of any port it manages: a single netdev (ManagedPort) or a bond. */
export interface PortHandle {
  readonly name: string;
  readonly kind: PortKind;
  readonly port: BridgePort;
  readonly mtuMismatches: number;
  readSocketDrops(): void;
  /** Refreshes port.kernelDrops (TAP netdevs: tx_dropped); control plane, at `stats` time. */
  readKernelDrops(): void;
  close(state: PortState): void;
}

/** A bridge port together with its I/O and lifecycle state. */
export class ManagedPort implements PortHandle {
  readonly port: BridgePort;
  readonly bridge: Bridge;
  readonly persist: boolean;
  readonly create: { owner: number; group: number } | null;
  readonly hostMac: string | null;
  private readonly ownerOfIfindex: ((ifindex: number) => string | null) | undefined;
  io: PacketPort | null = null;
  /** MTU mismatch between the netdev and the bridge, counted once per open. */
  mtuMismatches = 0;
  protected readonly log: Logger;
  private readonly bridgeMtu: number;
  protected readonly wrap: CallbackWrapper;
  private reopenTimer: NodeJS.Timeout | null = null;
  private reopenDelayMs = REOPEN_MIN_MS;
  private openedAtMs = 0;
  /** Re-opens after I/O errors so far. */
  reopens = 0;
  /** kernel_drops of earlier opens; tx_dropped of the current netdev when it was opened, and as last read. */
  private kernelDropsBase = 0;
  private txDroppedAtOpen = 0;
  private txDroppedLast = 0;

  constructor(bridge: Bridge, port: BridgePort, opts: ManagedPortOptions, bridgeMtu: number, log: Logger) {
    this.bridge = bridge;
    this.port = port;
    this.persist = opts.persist;
    this.create = opts.create ?? null;
    this.hostMac = opts.hostMac ?? null;
    this.wrap = opts.wrap ?? unguarded;
    this.ownerOfIfindex = opts.ownerOfIfindex;
    this.bridgeMtu = bridgeMtu;
    this.log = log.child({ bridge: bridge.name, port: port.name, kind: port.kind });
  }

  get name(): string {
    return this.port.name;
  }

  get kind(): PortKind {
    return this.port.kind;
  }

  /**
   * Opens the port's I/O. A TAP that cannot be created throws (the caller decides whether that is
   * fatal). An attach port or uplink whose netdev is missing stays `absent` and returns false.
   */
  open(): boolean {
    if (this.io !== null) return true;
    if (this.kind === 'tap' || this.kind === 'host') {
      this.openTap();
      return true;
    }
    let info = netdev.info(this.name);
    if (info === null && this.create !== null) {
      this.createPersistentTap(this.create);
      info = netdev.info(this.name);
    }
    if (info === null) {
      this.log.info('netdev not present; waiting for it to appear');
      this.setState('absent');
      return false;
    }
    const refused = refusedNetdevProblem(this.name, info.flags, info.ifindex, this.ownerOfIfindex);
    if (refused !== null) {
      this.setState('absent');
      throw new RefusedNetdevError(refused);
    }
    silenceHostStack(this.name, this.log);
    if (this.kind === 'attach' && isTunTap(this.name)) {
      // a TAP that QEMU (or the daemon, for `create`) opened: bring it up with the bridge's MTU
      if (info.mtu !== this.bridgeMtu) netdev.setMtu(this.name, this.bridgeMtu);
      if (info.txqueuelen < TAP_TXQUEUELEN) netdev.setTxQueueLen(this.name, TAP_TXQUEUELEN);
      if ((info.flags & IFF_UP) === 0) netdev.setLinkUp(this.name, true);
      info = netdev.info(this.name) ?? info;
    }
    // a socket handed over by the previous daemon (takeover, fd store) keeps the frames queued in it
    const io = inheritedFds.take('packet', this.name) ?? PacketPort.openPacket(this.name, { rcvbuf: PACKET_RCVBUF, sndbuf: PACKET_SNDBUF });
    if (info.mtu !== this.bridgeMtu) {
      this.mtuMismatches++;
      this.log.warn({ mtu: info.mtu, bridge_mtu: this.bridgeMtu }, 'netdev MTU differs from the bridge MTU; larger frames will be dropped as oversize');
    }
    this.port.mtu = info.mtu;
    this.attachIo(io, (info.flags & IFF_UP) !== 0 && (info.flags & IFF_RUNNING) !== 0 ? 'up' : 'down');
    this.log.info({ ifindex: io.ifindex, state: this.port.state }, 'attached AF_PACKET socket');
    return true;
  }

  /** `create`: a persistent TAP owned by owner/group that QEMU opens by name; the daemon keeps no fd. */
  private createPersistentTap(create: { owner: number; group: number }): void {
    const tap = PacketPort.openTap(this.name, { persist: true, owner: create.owner, group: create.group });
    tap.close();
    this.log.info({ owner: create.owner, group: create.group }, 'created persistent TAP for an unprivileged user');
  }

  private openTap(): void {
    const inherited = inheritedFds.take('tap', this.name);
    if (inherited !== null) {
      // the previous daemon's TAP, possibly moved into a VM's namespace: configured already, and
      // its name here may now belong to something else, so nothing is changed by name
      this.port.mtu = this.bridgeMtu;
      this.attachIo(inherited, 'up');
      this.log.info({ persist: this.persist }, 'TAP taken over');
      return;
    }
    const io = PacketPort.openTap(this.name, { persist: this.persist, owner: -1, group: -1 });
    try {
      if (this.kind === 'host') {
        // the host's own port: its stack stays on, with the stable MAC from the start
        if (this.hostMac !== null) netdev.setMac(io.name, this.hostMac);
      } else {
        // before link up: the daemon's own stack must not send MLD/RS from the TAP's first MAC
        silenceHostStack(io.name, this.log);
      }
      netdev.setMtu(io.name, this.bridgeMtu);
      netdev.setTxQueueLen(io.name, TAP_TXQUEUELEN);
      netdev.setLinkUp(io.name, true);
    } catch (err) {
      io.close();
      throw err;
    }
    this.port.mtu = this.bridgeMtu;
    this.attachIo(io, 'up');
    this.log.info({ ifindex: io.ifindex, persist: this.persist, mtu: this.bridgeMtu, txqueuelen: TAP_TXQUEUELEN, mac: this.hostMac ?? undefined }, 'TAP open');
  }

  /** Link state of this port changed (a bond member reports to its bond instead). */
  protected setState(state: PortState): void {
    this.bridge.setPortState(this.port, state);
  }

  /** One rx batch of this port's fd (a bond member hands it to the bond). */
  /**
   * The receive callback every I/O of this port is started with (one closure per port, made once): a bug must cost
   * one batch, never the daemon (an exception here would reach uncaughtException).
   */
  protected readonly onBatch = (slab: Uint8Array, desc: Int32Array, count: number): void => {
    try {
      this.deliver(slab, desc, count);
    } catch (err) {
      this.bridge.discardBatch();
      this.onBatchError(err);
    }
  };

  protected deliver(slab: Uint8Array, desc: Int32Array, count: number): void {
    this.bridge.receive(this.port, slab, desc, count);
  }

  private attachIo(io: PacketPort, state: PortState): void {
    this.io = io;
    this.port.io = io;
    this.port.ifindex = io.ifindex;
    this.openedAtMs = performance.now();
    const txDropped = this.isTap() ? readTxDropped(this.name, io.ifindex) : null;
    this.txDroppedAtOpen = txDropped ?? 0;
    this.txDroppedLast = this.txDroppedAtOpen;
    this.setState(state);
    io.start(
      this.onBatch,
      this.wrap(`port ${this.name}: I/O error`, (errno: number, syscall: string, stopped: boolean) => this.onIoError(errno, syscall, stopped)),
    );
  }

  private lastBatchErrorMs = -Infinity;

  protected onBatchError(err: unknown): void {
    this.port.batchErrors++;
    const now = performance.now();
    if (now - this.lastBatchErrorMs < 10_000) return;
    this.lastBatchErrorMs = now;
    this.log.error({ err, batch_errors: this.port.batchErrors }, 'forwarding a batch failed; batch dropped (logged at most every 10 s)');
  }

  /** A data-plane worker's read of this port's fd failed (src/dataplane/): handled as the main thread's own. */
  ioError(errno: number, syscall: string, stopped: boolean): void {
    this.onIoError(errno, syscall, stopped);
  }

  private onIoError(errno: number, syscall: string, stopped: boolean): void {
    if (!stopped) {
      // ENETDOWN once when the carrier drops: state follows rtnetlink, nothing to do here
      this.log.debug({ errno, syscall }, 'transient I/O error');
      return;
    }
    const ifindex = this.port.ifindex;
    this.log.warn({ errno, syscall, reason: errno === EBADFD ? 'netdev deleted' : 'fd unusable' }, 'port I/O stopped; closing');
    this.close('absent');
    this.scheduleReopen(ifindex);
  }

  /**
   * After the addon stopped this port's I/O: re-open with backoff while its netdev (same ifindex; a new one is
   * announced by rtnetlink) exists in our namespace. A netdev that is gone ends the retries.
   */
  private scheduleReopen(ifindex: number): void {
    if (performance.now() - this.openedAtMs >= REOPEN_RESET_MS) this.reopenDelayMs = REOPEN_MIN_MS;
    const delay = this.reopenDelayMs;
    this.reopenDelayMs = Math.min(REOPEN_MAX_MS, this.reopenDelayMs * 2);
    this.cancelReopen();
    this.reopenTimer = setTimeout(this.wrap(`port ${this.name}: re-open`, () => {
      this.reopenTimer = null;
      if (this.io !== null) return;
      const info = netdev.info(this.name);
      if (info === null || (this.kind !== 'tap' && info.ifindex !== ifindex)) {
        this.log.info({ ifindex }, 'netdev gone; not re-opening (rtnetlink announces a new one)');
        return;
      }
      try {
        if (!this.open()) return;
        this.reopens++;
        this.log.info({ ifindex: this.port.ifindex, reopens: this.reopens, delay_ms: delay }, 'port re-opened after I/O errors');
      } catch (err) {
        if (err instanceof RefusedNetdevError) {
          this.log.warn({ err }, 'not re-opening: the netdev cannot be a bridge port');
          return;
        }
        this.log.warn({ err, delay_ms: this.reopenDelayMs }, 'cannot re-open port; retrying');
        this.scheduleReopen(ifindex);
      }
    }), delay);
    this.reopenTimer.unref();
  }

  private cancelReopen(): void {
    if (this.reopenTimer !== null) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
  }

  /** Closes the I/O (a non-persistent TAP disappears) and flushes the port's dynamic entries. */
  close(state: PortState): void {
    this.cancelReopen();
    this.readKernelDrops();
    this.kernelDropsBase = this.port.kernelDrops;
    this.txDroppedAtOpen = this.txDroppedLast = 0;
    const io = this.io;
    this.io = null;
    this.port.detachIo();
    this.setState(state);
    if (io !== null) io.close();
  }

  /** rtnetlink RTM_NEWLINK for this port's name (attach and uplink only); mtu 0 when the message had none. */
  onLinkNew(ifindex: number, flags: number, mtu = 0): void {
    if (this.io !== null && this.port.ifindex !== ifindex) {
      this.log.info({ old_ifindex: this.port.ifindex, ifindex }, 'netdev re-created; re-opening');
      this.close('absent');
    }
    if (this.io === null) {
      try {
        if (!this.open()) return;
      } catch (err) {
        this.log.error({ err }, 'cannot open port netdev');
        return;
      }
    }
    if (mtu >= 68 && mtu <= 65535 && mtu !== this.port.mtu) {
      this.log.info({ mtu, old_mtu: this.port.mtu, ifindex }, 'netdev MTU changed');
      this.port.mtu = mtu;
      this.mtuChanged();
    }
    const up = (flags & IFF_UP) !== 0 && (flags & IFF_LOWER_UP) !== 0;
    const state: PortState = up ? 'up' : 'down';
    if (state !== this.port.state) {
      this.log.info({ state, ifindex }, 'carrier change');
      this.setState(state);
    }
  }

  /** rtnetlink RTM_DELLINK for this port's ifindex (attach and uplink only), or a rename away. */
  onLinkGone(): void {
    if (this.io === null && this.port.state === 'absent') return;
    this.log.info({ ifindex: this.port.ifindex }, 'netdev gone; waiting for it to reappear');
    this.close('absent');
  }

  /** Handover: stops reading (frames queue in the TAP or socket for the next daemon). */
  pauseIo(): void {
    this.io?.stop();
  }

  /** Handover refused or failed: reads again. */
  resumeIo(): void {
    this.io?.resume();
  }
  /** The port's MTU changed (a bond member tells its bond). */
  protected mtuChanged(): void {}

  /** Folds kernel socket drops (PACKET_STATISTICS) into the port's counters. */
  readSocketDrops(): void {
    if (this.io !== null && this.io.kind === 'packet') this.io.readSocketDrops();
  }

  private isTap(): boolean {
    return this.kind === 'tap' || (this.kind === 'attach' && isTunTap(this.name));
  }

  /** kernel_drops = tx_dropped the TAP netdev gained while this port had it open (all opens together). */
  readKernelDrops(): void {
    if (this.io !== null && this.isTap()) {
      const v = readTxDropped(this.name, this.port.ifindex);
      if (v !== null && v >= this.txDroppedAtOpen) this.txDroppedLast = v;
    }
    this.port.kernelDrops = this.kernelDropsBase + (this.txDroppedLast - this.txDroppedAtOpen);
  }
}
