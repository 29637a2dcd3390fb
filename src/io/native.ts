// The one module that loads the native addon; everything else uses the typed facade below.
//
//   RxSlab      the process-wide receive slab + descriptor array, registered with the addon once
//   PacketPort  a TAP fd or an AF_PACKET socket: start(onBatch), send(count), close(); ringInfo()
//   VhostUserIo a vhost-user port (the guest's rings over a Unix socket) with the same surface
//   packetRing  PACKET_MMAP ring geometry for AF_PACKET sockets opened from then on
//   LinkMonitor rtnetlink RTMGRP_LINK events
//   netdev      ioctl helpers: ifInfo, setLinkUp, setMtu, setTxQueueLen, disableLro, enableLro, deleteTap, setMac
//   unixSocket  the control socket's listening fd: listen, dup, close
//   fds         fd handover: handoverSend/Receive/Write, fdInfo, closeFd (PacketPort.adopt wraps one)
//   vxlanLink   rtnetlink: create kernel vxlan netdevs, their all-zeros FDB entries, link kind, delete
//
// The addon's contract (memory model, errno classes) is in native-types.ts and native-notes/addon.md.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PortCounter,
  type ErrorCallback,
  type FdInfo,
  type HandoverReceived,
  type IfInfo,
  type LinkEventCallback,
  type PacketOptions,
  type PacketRingInfo,
  type PacketRingOptions,
  type RawAddon,
  type RawLinkMonitor,
  type RawPort,
  type RawVhostUser,
  type RawVhostUserPeer,
  type RxCallback,
  type TapOptions,
  type VhostHandover,
  type VhostUserInfo,
  type VhostUserStateCallback,
  type LinkKind,
  type VxlanCreateOptions,
} from './native-types.js';
import type { PortIo } from '../bridge/port.js';

/** Frames per poll wakeup (and tx queue capacity per port). */
export const RX_BUDGET = 64;
/** Enough for RX_BUDGET frames of 1.5 KB and at least 60 GSO super-frames of 64 KiB. */
export const RX_SLAB_BYTES = 4 * 1024 * 1024;

const here = dirname(fileURLToPath(import.meta.url));
let addon: RawAddon | null = null;

/** The event loop's busy-poll window after each receive batch (src/native/busypoll.cc). */
export const busyPoll = {
  /** 0 = off, else 1..MAX_BUSY_POLL_US microseconds. */
  set(us: number): void {
    loadAddon().setBusyPoll(us);
  },
  /** Idle callbacks run (spins) and windows started since the addon loaded. */
  stats(): { spins: number; windows: number } {
    const [spins, windows] = loadAddon().busyPollStats();
    return { spins, windows };
  },
};

/**
 * Direct polling (src/native/directpoll.cc): while libuv has nothing else to do, the pump below runs the data path
 * as a loop over directPollWait(), which waits on libuv's epoll fd itself and returns one port's batch at a
 * time; it returns to libuv as soon as libuv has work. Batches reach the same onBatch callbacks as through the
 * ports' uv_poll handles, which stay as the fallback path.
 */
const rxByFd: Array<RxCallback | undefined> = [];
const pumpOut = new Int32Array(2);

function pump(): void {
  const wait = addon!.directPollWait;
  for (;;) {
    const n = wait();
    if (n < 0) return;
    const onRx = rxByFd[pumpOut[0]];
    if (onRx !== undefined) onRx(n);
  }
}

export const directPoll = {
  set(on: boolean): void {
    if (on) loadAddon().setDirectPoll(true, pump, pumpOut);
    else loadAddon().setDirectPoll(false);
  },
  /** waits: epoll_wait calls of the pump; served: batches handed to the pump; yields: pump returns; pumps: pump calls. */
  stats(): { enabled: boolean; waits: number; served: number; yields: number; pumps: number } {
    const [enabled, waits, served, yields, pumps] = loadAddon().directPollStats();
    return { enabled: enabled === 1, waits, served, yields, pumps };
  },
};

/** Loads the addon once; the error lists every path tried. */
export function loadAddon(): RawAddon {
  if (addon !== null) return addon;
  const require = createRequire(import.meta.url);
  const candidates = [
    process.env.TAPBRIDGE_NATIVE,
    join(here, '..', '..', 'build', 'Release', 'tapbridge_native.node'),
    join(here, '..', '..', 'build', 'Debug', 'tapbridge_native.node'),
  ].filter((p): p is string => p !== undefined && p !== '');
  const errors: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      errors.push(`${path}: not found`);
      continue;
    }
    try {
      addon = require(path) as RawAddon;
      return addon;
    } catch (err) {
      errors.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot load the tapbridge native addon (run \`npm ci\`, or \`npm run install\` to rebuild it); tried:\n  ${errors.join('\n  ')}`);
}

/** An error thrown by the addon: errno, syscall and interface name. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  ifname: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).errno === 'number' &&
    typeof (err as Partial<NativeError>).syscall === 'string';
}

/** The shared receive slab: every port's batch lands here, one batch at a time. */
export class RxSlab {
  private static instance: RxSlab | null = null;
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly desc: Int32Array;

  private constructor() {
    this.buffer = new ArrayBuffer(RX_SLAB_BYTES);
    this.bytes = new Uint8Array(this.buffer);
    this.desc = new Int32Array(3 * RX_BUDGET);
    loadAddon().setup(this.buffer, this.desc, RX_BUDGET);
  }

  static get(): RxSlab {
    if (RxSlab.instance === null) RxSlab.instance = new RxSlab();
    return RxSlab.instance;
  }
}

/** A TAP or AF_PACKET fd with its registered tx queue and counters. */
export class PacketPort implements PortIo {
  readonly tx = new Uint32Array(4 * RX_BUDGET);
  readonly counters = new Float64Array(PortCounter.Count);
  private readonly raw: RawPort;
  private closed = false;
  private onRx: ((count: number) => void) | null = null;
  private onError: ErrorCallback | null = null;
  /** start()/resume() asked for reading, stop() did not since */
  private reading = false;
  /** QoS holds the reads (holdRx): the fd is polled only while reading && !held */
  private held = false;

  private constructor(raw: RawPort) {
    this.raw = raw;
    raw.setTx(this.tx);
    raw.setCounters(this.counters);
  }

  /** Creates or opens a TAP with vnet headers and offloads. */
  static openTap(name: string, options: TapOptions): PacketPort {
    RxSlab.get();
    return new PacketPort(loadAddon().openTap(name, options));
  }

  /** Opens an AF_PACKET socket on an existing netdev. */
  static openPacket(name: string, options: PacketOptions): PacketPort {
    RxSlab.get();
    return new PacketPort(loadAddon().openPacket(name, options));
  }

  /**
   * Wraps an fd inherited from another daemon (handover or the systemd fd store) after the addon
   * checked that it is a TAP with vnet headers / an AF_PACKET socket bound to `name`.
   */
  static adopt(fd: number, kind: 'tap' | 'packet', name: string, ifindex: number): PacketPort {
    RxSlab.get();
    return new PacketPort(loadAddon().adoptFd(fd, kind, name, ifindex));
  }

  get name(): string {
    return this.raw.name;
  }

  /** The fd (for handing it over); -1 once closed. */
  get fd(): number {
    return this.closed ? -1 : this.raw.fd;
  }

  get ifindex(): number {
    return this.raw.ifindex;
  }

  get kind(): 'tap' | 'packet' {
    return this.raw.kind;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** onBatch(slab, desc, count) once per rx batch. */
  start(onBatch: (slab: Uint8Array, desc: Int32Array, count: number) => void, onError: ErrorCallback): void {
    const slab = RxSlab.get();
    this.onRx = (count) => onBatch(slab.bytes, slab.desc, count);
    this.onError = onError;
    this.reading = true;
    this.poll();
  }

  /** Polls again after stop(), with the callbacks of start() (unless QoS holds the reads: then at holdRx(false)). */
  resume(): void {
    this.reading = true;
    this.poll();
  }

  stop(): void {
    this.reading = false;
    if (!this.closed) {
      this.raw.stop();
      this.unlist();
    }
  }

  /**
   * QoS (src/bridge/qos.ts): held, the fd is not polled, whatever start()/resume() said; released, it is polled
   * again if they had asked for it. Frames wait in the kernel's queue meanwhile (and past its length are dropped there).
   */
  holdRx(held: boolean): void {
    if (held === this.held) return;
    this.held = held;
    if (held) {
      if (!this.closed) {
        this.raw.stop();
        this.unlist();
      }
    } else if (this.reading) {
      this.poll();
    }
  }

  private poll(): void {
    if (!this.closed && !this.held && this.onRx !== null && this.onError !== null) {
      this.raw.start(this.onRx, this.onError);
      rxByFd[this.raw.fd] = this.onRx;
    }
  }

  private unlist(): void {
    const fd = this.raw.fd;
    if (fd >= 0 && rxByFd[fd] === this.onRx) rxByFd[fd] = undefined;
  }

  send(count: number): number {
    return this.raw.send(count);
  }

  readSocketDrops(): number {
    return this.closed ? 0 : this.raw.readSocketDrops();
  }

  /** The PACKET_MMAP rings of an AF_PACKET socket; null without rings, for a TAP, or once closed. */
  ringInfo(): PacketRingInfo | null {
    return this.closed ? null : this.raw.ringInfo();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unlist();
    this.raw.close();
  }
}

/**
 * What a vhost-user port and a data worker's peer of it share (the addon objects RawVhostUser, RawVhostUserPeer): the
 * registered tx queue and counters, reading into this thread's RX slab, sending, closing once.
 */
abstract class VhostUserSurface<Raw extends RawVhostUser | RawVhostUserPeer> implements PortIo {
  readonly tx = new Uint32Array(4 * RX_BUDGET);
  readonly counters = new Float64Array(PortCounter.Count);
  protected readonly raw: Raw;
  protected closed = false;
  private onRx: ((count: number) => void) | null = null;
  private onError: ErrorCallback | null = null;

  /** `raw` was made after RxSlab.get() (the slab exists before the addon object). */
  protected constructor(raw: Raw) {
    this.raw = raw;
    raw.setTx(this.tx);
    raw.setCounters(this.counters);
  }

  get name(): string {
    return this.raw.name;
  }

  get kind(): 'vhost-user' {
    return 'vhost-user';
  }

  get isClosed(): boolean {
    return this.closed;
  }

  start(onBatch: (slab: Uint8Array, desc: Int32Array, count: number) => void, onError: ErrorCallback): void {
    const slab = RxSlab.get();
    this.onRx = (count) => onBatch(slab.bytes, slab.desc, count);
    this.onError = onError;
    this.raw.start(this.onRx, onError);
  }

  resume(): void {
    if (!this.closed && this.onRx !== null && this.onError !== null) this.raw.start(this.onRx, this.onError);
  }

  stop(): void {
    if (!this.closed) this.raw.stop();
  }

  send(count: number): number {
    return this.raw.send(count);
  }

  readSocketDrops(): number {
    return 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.close();
  }
}

/**
 * A vhost-user port (src/native/vhost-user.cc) with the PacketPort surface the daemon and the engine use: its batches
 * land in the same RX slab, its tx queue is the same (off, len, op, arg) array. The protocol runs on the main thread;
 * with data workers a worker may read the guest's TX ring (`rxHandle` stops and resumes the main thread's reading of
 * it) and every worker sends through a VhostUserPeer.
 */
export class VhostUserIo extends VhostUserSurface<RawVhostUser> {
  readonly socket: string;
  readonly mode: 'client' | 'server';
  /**
   * What the data plane stops and resumes (src/dataplane/dataplane.ts RxIo): only the main thread's reading of the
   * guest's TX ring (rxAway), never the connection; one object per port (the data plane keys its state by it).
   */
  readonly rxHandle: { readonly fd: number; readonly kind: 'vhost-user'; readonly device: number; readonly isClosed: boolean; stop(): void; resume(): void };

  constructor(name: string, socket: string, mode: 'client' | 'server', onState: VhostUserStateCallback) {
    super(VhostUserIo.open(name, socket, mode, onState));
    this.socket = socket;
    this.mode = mode;
    const io = this;
    const raw = this.raw;
    this.rxHandle = {
      get fd() { return io.fd; },
      kind: 'vhost-user',
      device: raw.device,
      get isClosed() { return io.closed; },
      stop() { if (!io.closed) raw.rxAway(true); },
      resume() { if (!io.closed) raw.rxAway(false); },
    };
  }

  private static open(name: string, socket: string, mode: 'client' | 'server', onState: VhostUserStateCallback): RawVhostUser {
    RxSlab.get();
    return loadAddon().openVhostUser(name, socket, mode, onState);
  }

  /** The connection's socket fd, -1 while not connected or once closed. */
  get fd(): number {
    return this.closed ? -1 : this.raw.fd;
  }

  get ifindex(): number {
    return 0;
  }

  /** client mode: 0 when connected, else the errno of the attempt. */
  connect(): number {
    return this.closed ? 9 : this.raw.connect();
  }

  listen(): void {
    this.raw.listen();
  }

  info(): VhostUserInfo {
    return this.raw.info();
  }

  exportHandover(): VhostHandover | null {
    return this.closed ? null : this.raw.exportHandover();
  }

  adoptHandover(h: VhostHandover): void {
    this.raw.adoptHandover(h.fds, h.state);
  }

  /**
   * QoS (src/bridge/qos.ts): held, the guest's TX ring is not read (its frames wait in the guest, whose driver stops
   * its queue when the ring is full); released, it is read again unless stop() holds it. Frames to the guest and the
   * connection's messages are not affected.
   */
  holdRx(held: boolean): void {
    if (!this.closed) this.raw.holdRx(held);
  }
}

/**
 * A data worker's copy of a vhost-user port (src/native/vhost-user.cc, VhostUserPeer): the PacketPort surface over
 * the main thread's port's rings, with this thread's slab, tx queue and counters.
 */
export class VhostUserPeer extends VhostUserSurface<RawVhostUserPeer> {
  /** The peer of the open port whose RawVhostUser.device is `device`; throws when that port is gone. */
  static adopt(device: number, name: string): VhostUserPeer {
    RxSlab.get();
    return new VhostUserPeer(loadAddon().adoptVhostUser(device, name));
  }
}

/** PACKET_MMAP ring geometry of AF_PACKET sockets opened from now on (src/native/port-ring.cc). */
export const packetRing = {
  set(options: PacketRingOptions): void {
    loadAddon().setPacketRing(options);
  },
};

export class LinkMonitor {
  private readonly raw: RawLinkMonitor;
  /** rcvbuf: SO_RCVBUFFORCE bytes (0: the addon's 4 MiB). */
  constructor(cb: LinkEventCallback, rcvbuf = 0) {
    this.raw = loadAddon().linkMonitor(cb, rcvbuf);
  }

  dump(force = false): void {
    this.raw.dump(force);
  }

  close(): void {
    this.raw.close();
  }
}

export const netdev = {
  info(name: string): IfInfo | null {
    return loadAddon().ifInfo(name);
  },
  setLinkUp(name: string, up: boolean): void {
    loadAddon().setLinkUp(name, up);
  },
  setMtu(name: string, mtu: number): void {
    loadAddon().setMtu(name, mtu);
  },
  setTxQueueLen(name: string, len: number): void {
    loadAddon().setTxQueueLen(name, len);
  },
  disableLro(name: string): 'changed' | 'off' | 'unsupported' {
    return loadAddon().disableLro(name);
  },
  enableLro(name: string): 'changed' | 'on' | 'unsupported' {
    return loadAddon().enableLro(name);
  },
  deleteTap(name: string): void {
    loadAddon().deleteTap(name);
  },
  setMac(name: string, mac: string): void {
    loadAddon().setMac(name, mac);
  },
  version(): string {
    return loadAddon().version();
  },
  /** flock(fd, LOCK_EX | LOCK_NB) on an fd from fs.openSync: false when another process holds it. */
  flockExclusive(fd: number): boolean {
    return loadAddon().flockExclusive(fd);
  },
};

/** fd handover between daemons (see native-types.ts for each call's contract). */
export const fds = {
  send(sock: number, list: number[], payload: Uint8Array, version: number, timeoutMs: number): void {
    loadAddon().handoverSend(sock, list, payload, version, timeoutMs);
  },
  receive(path: string, request: string, timeoutMs: number): HandoverReceived {
    return loadAddon().handoverReceive(path, request, timeoutMs);
  },
  write(sock: number, text: string, timeoutMs: number): void {
    loadAddon().handoverWrite(sock, text, timeoutMs);
  },
  close(fd: number): void {
    loadAddon().closeFd(fd);
  },
  info(fd: number): FdInfo {
    return loadAddon().fdInfo(fd);
  },
};

/** Moved TAPs: find a namespace by its nsid, open a TAP inside it (native-types.ts). */
export const netns = {
  ofNsid(nsid: number): string | null {
    return loadAddon().netnsOfNsid(nsid);
  },
  openTap(path: string, ifindex: number, name: string): { fd: number; ifname: string; mac: string } {
    return loadAddon().openTapInNetns(path, ifindex, name);
  },
  /** Name and MAC of a netdev in another namespace (what a moved TAP is, recorded when it moves). */
  linkIn(path: string, ifindex: number): { ifname: string; mac: string } {
    return loadAddon().linkInNetns(path, ifindex);
  },
};

/** Kernel VXLAN netdevs over rtnetlink (src/native/vxlan.cc). */
export const vxlanLink = {
  create(options: VxlanCreateOptions): void {
    loadAddon().vxlanCreate(options);
  },
  /** Adds the all-zeros FDB entry towards one remote VTEP; false when it was already there. */
  addRemote(name: string, dst: string): boolean {
    return loadAddon().vxlanFdb(name, 'append', dst);
  },
  /** Removes it; false when it was not there. */
  delRemote(name: string, dst: string): boolean {
    return loadAddon().vxlanFdb(name, 'del', dst);
  },
  /** The destinations of the netdev's all-zeros FDB entries, as the kernel has them. */
  remotes(name: string): string[] {
    return loadAddon().vxlanRemotes(name);
  },
  kind(name: string): LinkKind | null {
    return loadAddon().linkKind(name);
  },
  /** Every vxlan netdev of the namespace (who holds a VNI). */
  list(): (LinkKind & { name: string })[] {
    return loadAddon().vxlanList();
  },
  delete(name: string): boolean {
    return loadAddon().linkDelete(name);
  },
};

/** The control socket's listening fd (see src/native/unixsock.cc for why the addon owns it). */
export const unixSocket = {
  listen(path: string, backlog: number): number {
    return loadAddon().listenUnix(path, backlog);
  },
  dup(fd: number): number {
    return loadAddon().dupFd(fd);
  },
  close(fd: number): void {
    loadAddon().closeFd(fd);
  },
};

export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;
