// Fds this process inherited from a previous daemon: over a `--takeover` handover, or from the
// systemd fd store (LISTEN_FDS). A process-wide pool, because inherited fds are a property of the
// process, not of one bridge: ManagedPort.open() asks it for its netdev's fd before opening a new one.
//
//   key    the netdev name of the port (interface names are unique daemon-wide; bond members too)
//   kind   'tap' (the daemon's own TAP) or 'packet' (an AF_PACKET socket of an attach port, an
//          uplink or a bond member)
//
// An fd is taken at most once. What nobody took by the end of start-up is closed (a TAP whose port
// left the config then disappears, as it would have at a plain restart).

import type { Logger } from '../log.js';
import { fds, isNativeError, PacketPort } from '../io/native.js';

export interface InheritedFd {
  fd: number;
  kind: 'tap' | 'packet';
  /** the port's netdev name in the daemon's namespace */
  name: string;
  /** ifindex as the previous daemon knew it (0 when unknown) */
  ifindex: number;
  /** where it came from, for logs */
  source: 'takeover' | 'fdstore' | 'moved';
  /** systemd fd store name (<bridge>/<port>/<queue>) when it came from there */
  fdname?: string;
}

class InheritedPool {
  private readonly byKey = new Map<string, InheritedFd>();
  /** vhost-user ports (takeover only): their fds by role and their state */
  private readonly vhost = new Map<string, { fds: Array<[number, number]>; state: Record<string, unknown> | null }>();

  /** One fd of a vhost-user port's handover (role: see native-types.ts exportHandover). */
  addVhostFd(name: string, role: number, fd: number): void {
    const e = this.vhost.get(name) ?? { fds: [], state: null };
    e.fds.push([role, fd]);
    this.vhost.set(name, e);
  }

  setVhostState(name: string, state: Record<string, unknown>): void {
    const e = this.vhost.get(name);
    if (e !== undefined) e.state = state;
  }

  /** The handover of vhost-user port `name` ({fds, state}), or null; the caller owns the fds from then on. */
  takeVhost(name: string): { fds: Array<[number, number]>; state: Record<string, unknown> } | null {
    const e = this.vhost.get(name);
    if (e === undefined) return null;
    this.vhost.delete(name);
    if (e.state === null) {
      for (const [, fd] of e.fds) fds.close(fd);
      this.log?.warn({ port: name }, 'inherited vhost-user fds without their state; closed (the port connects anew)');
      return null;
    }
    return { fds: e.fds, state: e.state };
  }
  private log: Logger | null = null;

  setLogger(log: Logger): void {
    this.log = log;
  }

  add(entry: InheritedFd): void {
    const key = `${entry.kind}:${entry.name}`;
    const prev = this.byKey.get(key);
    if (prev !== undefined) {
      // two fds for one port: keep the first, the second would read the same frames twice
      this.log?.warn({ port: entry.name, kind: entry.kind, source: entry.source }, 'two inherited fds for one port; closing the second');
      fds.close(entry.fd);
      return;
    }
    this.byKey.set(key, entry);
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * The inherited fd of `name` as a PacketPort, or null when there is none or it is not what it
   * should be (then it is closed and logged, and the caller opens the port anew).
   */
  take(kind: 'tap' | 'packet', name: string): PacketPort | null {
    const key = `${kind}:${name}`;
    const e = this.byKey.get(key);
    if (e === undefined) return null;
    this.byKey.delete(key);
    try {
      const io = PacketPort.adopt(e.fd, kind, name, e.ifindex);
      this.log?.info({ port: name, kind, source: e.source, fd: e.fd, ifindex: io.ifindex }, 'adopted inherited fd');
      return io;
    } catch (err) {
      this.log?.warn({ port: name, kind, source: e.source, err: isNativeError(err) ? err.message : String(err) },
        'inherited fd unusable; closing it and opening the port anew');
      fds.close(e.fd);
      return null;
    }
  }

  /** Closes every fd nobody took; returns them (closed). */
  closeUnused(): InheritedFd[] {
    const left = [...this.byKey.values()];
    for (const e of left) fds.close(e.fd);
    this.byKey.clear();
    for (const [name, e] of this.vhost) {
      for (const [, fd] of e.fds) fds.close(fd);
      this.log?.info({ port: name }, 'closed the inherited vhost-user connection of a port that is no longer configured');
    }
    this.vhost.clear();
    if (left.length > 0) this.log?.info({ ports: left.map((e) => e.name) }, 'closed inherited fds of ports that are no longer configured');
    return left;
  }
}

export const inheritedFds = new InheritedPool();
