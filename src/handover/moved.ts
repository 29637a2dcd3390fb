// Where the daemon's persistent TAPs went (issue 11, section 2): after a SIGKILL no fd of them is
// left, and a `persist: true` TAP that was moved into a VM's namespace would be orphaned there while
// the next daemon made a new one in its own namespace.
//
//   record   the RTM_DELLINK our namespace sees when a TAP port's netdev moves away carries
//            IFLA_NEW_NETNSID (the target namespace's nsid as seen from here) and IFLA_NEW_IFINDEX
//            (its ifindex there): kept per port in the state document's section `moved_taps`, and
//            written at once (a SIGKILL may come any time after)
//   reopen   on start, before the ports open: for each record, the namespace with that nsid is
//            found (RTM_GETNSID against /run/netns/* and /proc/*/ns/net), the TAP with that ifindex
//            is opened there by its current name (TUNSETIFF, in a short-lived thread after setns),
//            and the fd goes into the inherited pool, so the port adopts it instead of creating a
//            new TAP. A record that does not lead to a TAP any more is dropped (logged).
//
// Only persistent TAPs are recorded: a plain `kind: tap` TAP does not outlive the daemon's fd
// anyway. A TAP moved on again from the VM's namespace is not seen; its record then fails to reopen
// and the port is created anew, as before.

import type { Logger } from '../log.js';
import { isNativeError, netns } from '../io/native.js';
import { inheritedFds } from './inherited.js';

export const MOVED_TAPS_SECTION = 'moved_taps';
/** Records kept at most (one per TAP port). */
export const MAX_MOVED_TAPS = 4096;

export interface MovedTap {
  bridge: string;
  port: string;
  nsid: number;
  ifindex: number;
}

export class MovedTaps {
  private readonly records = new Map<string, MovedTap>();
  private readonly log: Logger;
  /** Called after every change (run.ts writes the state file). */
  onChange: (() => void) | null = null;

  constructor(log: Logger) {
    this.log = log;
  }

  get size(): number {
    return this.records.size;
  }

  list(): MovedTap[] {
    return [...this.records.values()];
  }

  /** The section's value: hostile until checked (it was read from a file or received). Bad entries are skipped. */
  load(section: unknown): void {
    if (!Array.isArray(section)) return;
    for (const e of section.slice(0, MAX_MOVED_TAPS)) {
      if (typeof e !== 'object' || e === null) continue;
      const r = e as Record<string, unknown>;
      const ok = typeof r.bridge === 'string' && /^[A-Za-z0-9_.-]{1,15}$/.test(r.bridge) &&
        typeof r.port === 'string' && /^[^\0/\s]{1,15}$/.test(r.port) &&
        Number.isInteger(r.nsid) && (r.nsid as number) >= 0 && (r.nsid as number) <= 0x7fffffff &&
        Number.isInteger(r.ifindex) && (r.ifindex as number) > 0 && (r.ifindex as number) <= 0x7fffffff;
      if (!ok) {
        this.log.warn({ record: e }, 'moved-TAP record does not check out; ignored');
        continue;
      }
      this.records.set(`${r.bridge as string}/${r.port as string}`, { bridge: r.bridge as string, port: r.port as string, nsid: r.nsid as number, ifindex: r.ifindex as number });
    }
  }

  /** A persistent TAP port's netdev moved into the namespace `nsid`, where it has `ifindex`. */
  moved(bridge: string, port: string, nsid: number, ifindex: number): void {
    if (this.records.size >= MAX_MOVED_TAPS && !this.records.has(`${bridge}/${port}`)) return;
    this.records.set(`${bridge}/${port}`, { bridge, port, nsid, ifindex });
    this.log.info({ bridge, port, nsid, ifindex }, 'persistent TAP moved into another namespace; recorded');
    this.onChange?.();
  }

  /** The port went away (delif): nothing to find again. */
  removed(bridge: string, port: string): void {
    if (this.records.delete(`${bridge}/${port}`)) this.onChange?.();
  }

  /**
   * Opens each recorded TAP in its namespace and puts the fd into the inherited pool (see the
   * header). Returns how many were found; records that lead nowhere are dropped.
   */
  reopen(): number {
    let found = 0;
    let dropped = false;
    for (const [key, r] of this.records) {
      let path: string | null = null;
      try {
        path = netns.ofNsid(r.nsid);
      } catch (err) {
        this.log.warn({ ...r, err: (err as Error).message }, 'cannot look the namespace of a moved TAP up');
      }
      if (path === null) {
        this.log.warn({ ...r }, 'the namespace a persistent TAP moved into is gone (or has another nsid); the port opens anew');
        this.records.delete(key);
        dropped = true;
        continue;
      }
      try {
        const t = netns.openTap(path, r.ifindex, r.port);
        inheritedFds.add({ fd: t.fd, kind: 'tap', name: r.port, ifindex: 0, source: 'moved' });
        this.log.info({ ...r, netns: path, ifname: t.ifname }, 'found a moved persistent TAP again');
        found++;
      } catch (err) {
        this.log.warn({ ...r, netns: path, err: isNativeError(err) ? err.message : String(err) },
          'a moved persistent TAP cannot be opened where it went; the port opens anew');
        this.records.delete(key);
        dropped = true;
      }
    }
    if (dropped) this.onChange?.();
    return found;
  }
}
