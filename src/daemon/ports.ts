// Port lifecycle (Linux net/bridge br_if.c): open a port's I/O, follow its netdev, close it.
//
//   tap     the daemon creates (or re-opens) the TAP and holds its fd. The TAP may be moved to
//           another namespace and renamed: the fd keeps working and the RTM_DELLINK our namespace
//           sees for it is ignored. Closing the fd removes a non-persistent TAP. An fd that reports
//           EBADFD (netdev deleted) makes the port `absent`.
//   attach  an AF_PACKET socket on an existing netdev (e.g. a TAP that QEMU holds). Missing netdev:
//   uplink  the port waits (`absent`) and opens when rtnetlink announces the name; deleted: closed,
//           entries flushed, re-opened when the name comes back (new ifindex). Carrier (IFF_UP and
//           IFF_LOWER_UP) decides `up`/`down`.
//
// Opening acquires in order (host stack silenced, socket, counters, poll) and unwinds on failure;
// closing stops polling, flushes FDB entries (setPortState) and closes the fd.

import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortKind, type PortState } from '../bridge/port.js';
import { IFF_LOOPBACK, IFF_LOWER_UP, IFF_RUNNING, IFF_UP, netdev, PacketPort } from '../io/native.js';
import { silenceHostStack } from './hoststack.js';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** TAP kernel-to-fd ring: the default 1000 overflows silently under bursts. */
export const TAP_TXQUEUELEN = 10000;
/** AF_PACKET socket buffers (SO_RCVBUFFORCE / SO_SNDBUFFORCE). */
export const PACKET_RCVBUF = 8 * 1024 * 1024;
export const PACKET_SNDBUF = 4 * 1024 * 1024;

const EBADFD = 77;

export interface ManagedPortOptions {
  persist: boolean;
  /** attach only: create a persistent TAP owned by this user/group, close the daemon's fd, attach to it. */
  create?: { owner: number; group: number } | null;
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
  close(state: PortState): void;
}

/** A bridge port together with its I/O and lifecycle state. */
export class ManagedPort implements PortHandle {
  readonly port: BridgePort;
  readonly bridge: Bridge;
  readonly persist: boolean;
  readonly create: { owner: number; group: number } | null;
  private readonly ownerOfIfindex: ((ifindex: number) => string | null) | undefined;
  io: PacketPort | null = null;
  /** MTU mismatch between the netdev and the bridge, counted once per open. */
  mtuMismatches = 0;
  protected readonly log: Logger;
  private readonly bridgeMtu: number;

  constructor(bridge: Bridge, port: BridgePort, opts: ManagedPortOptions, bridgeMtu: number, log: Logger) {
    this.bridge = bridge;
    this.port = port;
    this.persist = opts.persist;
    this.create = opts.create ?? null;
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
    if (this.kind === 'tap') {
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
    const io = PacketPort.openPacket(this.name, { rcvbuf: PACKET_RCVBUF, sndbuf: PACKET_SNDBUF });
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
    const io = PacketPort.openTap(this.name, { persist: this.persist, owner: -1, group: -1 });
    try {
      // before link up: the daemon's own stack must not send MLD/RS from the TAP's first MAC
      silenceHostStack(io.name, this.log);
      netdev.setMtu(io.name, this.bridgeMtu);
      netdev.setTxQueueLen(io.name, TAP_TXQUEUELEN);
      netdev.setLinkUp(io.name, true);
    } catch (err) {
      io.close();
      throw err;
    }
    this.port.mtu = this.bridgeMtu;
    this.attachIo(io, 'up');
    this.log.info({ ifindex: io.ifindex, persist: this.persist, mtu: this.bridgeMtu, txqueuelen: TAP_TXQUEUELEN }, 'TAP open');
  }

  /** Link state of this port changed (a bond member reports to its bond instead). */
  protected setState(state: PortState): void {
    this.bridge.setPortState(this.port, state);
  }

  /** One rx batch of this port's fd (a bond member hands it to the bond). */
  protected deliver(slab: Uint8Array, desc: Int32Array, count: number): void {
    this.bridge.receive(this.port, slab, desc, count);
  }

  private attachIo(io: PacketPort, state: PortState): void {
    this.io = io;
    this.port.io = io;
    this.port.ifindex = io.ifindex;
    this.setState(state);
    io.start(
      (slab, desc, count) => {
        try {
          this.deliver(slab, desc, count);
        } catch (err) {
          // a bug must cost one batch, never the daemon (an exception here would reach uncaughtException)
          this.bridge.discardBatch();
          this.onBatchError(err);
        }
      },
      (errno, syscall, stopped) => this.onIoError(errno, syscall, stopped),
    );
  }

  private lastBatchErrorMs = -Infinity;

  private onBatchError(err: unknown): void {
    this.port.batchErrors++;
    const now = performance.now();
    if (now - this.lastBatchErrorMs < 10_000) return;
    this.lastBatchErrorMs = now;
    this.log.error({ err, batch_errors: this.port.batchErrors }, 'forwarding a batch failed; batch dropped (logged at most every 10 s)');
  }

  private onIoError(errno: number, syscall: string, stopped: boolean): void {
    if (!stopped) {
      // ENETDOWN once when the carrier drops: state follows rtnetlink, nothing to do here
      this.log.debug({ errno, syscall }, 'transient I/O error');
      return;
    }
    this.log.warn({ errno, syscall, reason: errno === EBADFD ? 'netdev deleted' : 'fd unusable' }, 'port I/O stopped; closing');
    this.close('absent');
  }

  /** Closes the I/O (a non-persistent TAP disappears) and flushes the port's dynamic entries. */
  close(state: PortState): void {
    const io = this.io;
    this.io = null;
    this.port.detachIo();
    this.setState(state);
    if (io !== null) io.close();
  }

  /** rtnetlink RTM_NEWLINK for this port's name (attach and uplink only). */
  onLinkNew(ifindex: number, flags: number): void {
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

  /** Folds kernel socket drops (PACKET_STATISTICS) into the port's counters. */
  readSocketDrops(): void {
    if (this.io !== null && this.io.kind === 'packet') this.io.readSocketDrops();
  }
}
