// The one module that loads the native addon; everything else uses the typed facade below.
//
//   RxSlab      the process-wide receive slab + descriptor array, registered with the addon once
//   PacketPort  a TAP fd or an AF_PACKET socket: start(onBatch), send(count), close()
//   LinkMonitor rtnetlink RTMGRP_LINK events
//   netdev      ioctl helpers: ifInfo, setLinkUp, setMtu, setTxQueueLen, disableLro, enableLro, deleteTap
//   unixSocket  the control socket's listening fd: listen, dup, close
//
// The addon's contract (memory model, errno classes) is in native-types.ts and native-notes/addon.md.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PortCounter,
  type ErrorCallback,
  type IfInfo,
  type LinkEventCallback,
  type PacketOptions,
  type RawAddon,
  type RawLinkMonitor,
  type RawPort,
  type TapOptions,
} from './native-types.js';
import type { PortIo } from '../bridge/port.js';

/** Frames per poll wakeup (and tx queue capacity per port). */
export const RX_BUDGET = 64;
/** Enough for RX_BUDGET frames of 1.5 KB and at least 60 GSO super-frames of 64 KiB. */
export const RX_SLAB_BYTES = 4 * 1024 * 1024;

const here = dirname(fileURLToPath(import.meta.url));
let addon: RawAddon | null = null;

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

  get name(): string {
    return this.raw.name;
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
    this.raw.start((count) => onBatch(slab.bytes, slab.desc, count), onError);
  }

  stop(): void {
    if (!this.closed) this.raw.stop();
  }

  send(count: number): number {
    return this.raw.send(count);
  }

  readSocketDrops(): number {
    return this.closed ? 0 : this.raw.readSocketDrops();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.close();
  }
}

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
  version(): string {
    return loadAddon().version();
  },
  /** flock(fd, LOCK_EX | LOCK_NB) on an fd from fs.openSync: false when another process holds it. */
  flockExclusive(fd: number): boolean {
    return loadAddon().flockExclusive(fd);
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
