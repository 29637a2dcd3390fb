// Where the daemon's persistent TAPs went (issue 11, section 2): after a SIGKILL no fd of them is
// left, and a `persist: true` TAP that was moved into a VM's namespace would be orphaned there while
// the next daemon made a new one in its own namespace.
//
//   record   the RTM_DELLINK our namespace sees when a TAP port's netdev moves away carries
//            IFLA_NEW_NETNSID (the target namespace's nsid as seen from here) and IFLA_NEW_IFINDEX
//            (its ifindex there). The namespace is found at once (as for reopen) and the TAP's name and
//            MAC there are read (setns in a short-lived thread): nsid, ifindex, name and MAC are kept
//            per port in the state document's section `moved_taps`, and written at once (a SIGKILL may
//            come any time after). A move whose namespace or TAP cannot be read is not recorded.
//   reopen   on start, before the ports open: for each record, the namespace with that nsid is
//            found (RTM_GETNSID against /run/netns/* and /proc/*/ns/net), the TAP with that ifindex
//            is opened there by its current name (TUNSETIFF, in a short-lived thread after setns).
//            An nsid and an ifindex are reused once a namespace dies or the host reboots, so the TAP
//            must also have the recorded MAC: then the fd goes into the inherited pool, and the port
//            adopts it instead of creating a new TAP. A name other than the recorded one is allowed
//            (a VM's namespace renames its NIC, e.g. to eth0) and logged. A record that does not lead
//            to a TAP with its MAC any more is dropped (logged), and the port opens anew; so are
//            records without a MAC (written before the MAC was recorded).
//   /proc    under the systemd unit's ProtectProc=invisible, /proc/<pid>/ns/net of processes of other
//            users is hidden from the daemon: a namespace held only by such a process (no /run/netns
//            name) is not found, neither when the TAP moves nor at reopen; the port then opens anew.
//
// Only persistent TAPs are recorded: a plain `kind: tap` TAP does not outlive the daemon's fd
// anyway. A TAP moved on again from the VM's namespace is not seen; its record then fails to reopen
// and the port is created anew, as before.

import type { Logger } from '../log.js';
import { fds, isNativeError, netns } from '../io/native.js';
import { inheritedFds } from './inherited.js';

export const MOVED_TAPS_SECTION = 'moved_taps';
/** Records kept at most (one per TAP port). */
export const MAX_MOVED_TAPS = 4096;

export interface MovedTap {
  bridge: string;
  port: string;
  nsid: number;
  ifindex: number;
  /** the TAP's name in its new namespace when the move was seen */
  name: string;
  /** its MAC then (lower-case colon text) */
  mac: string;
}

const MAC_TEXT = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

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
        Number.isInteger(r.ifindex) && (r.ifindex as number) > 0 && (r.ifindex as number) <= 0x7fffffff &&
        typeof r.name === 'string' && /^[^\0/\s]{1,15}$/.test(r.name) && typeof r.mac === 'string' && MAC_TEXT.test(r.mac);
      if (!ok) {
        this.log.warn({ record: e }, 'moved-TAP record does not check out (a TAP\'s name and MAC are needed to know it again); ignored');
        continue;
      }
      this.records.set(`${r.bridge as string}/${r.port as string}`, {
        bridge: r.bridge as string, port: r.port as string, nsid: r.nsid as number, ifindex: r.ifindex as number, name: r.name as string, mac: r.mac as string,
      });
    }
  }

  /**
   * A persistent TAP port's netdev moved into the namespace `nsid`, where it has `ifindex`: recorded with its name
   * and MAC there (see the header; one namespace scan and one short-lived thread per move).
   */
  moved(bridge: string, port: string, nsid: number, ifindex: number): void {
    const key = `${bridge}/${port}`;
    if (this.records.size >= MAX_MOVED_TAPS && !this.records.has(key)) return;
    let id: { ifname: string; mac: string } | null = null;
    let why = 'its namespace was not found (a namespace of another user hidden by ProtectProc=invisible, or gone)';
    try {
      const path = netns.ofNsid(nsid);
      if (path !== null) id = netns.linkIn(path, ifindex);
    } catch (err) {
      why = isNativeError(err) ? err.message : String(err);
    }
    if (id === null || !MAC_TEXT.test(id.mac)) {
      this.log.warn({ bridge, port, nsid, ifindex, reason: why }, 'persistent TAP moved into another namespace, but cannot be read there; not recorded');
      if (this.records.delete(key)) this.onChange?.();
      return;
    }
    this.records.set(key, { bridge, port, nsid, ifindex, name: id.ifname, mac: id.mac });
    this.log.info({ bridge, port, nsid, ifindex, name: id.ifname, mac: id.mac }, 'persistent TAP moved into another namespace; recorded');
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
        // compared before the open: TUNSETIFF and the offload ioctls would change another TAP's settings
        const seen = netns.linkIn(path, r.ifindex);
        const t = seen.mac === r.mac ? netns.openTap(path, r.ifindex, r.port) : { fd: -1, ...seen };
        if (t.mac !== r.mac) {
          // the nsid and the ifindex were reused: another netdev, which is not the daemon's to adopt
          if (t.fd >= 0) fds.close(t.fd);
          this.log.warn({ ...r, netns: path, found_name: t.ifname, found_mac: t.mac },
            'the moved persistent TAP\'s namespace and ifindex now hold another TAP (another MAC); not adopted, the port opens anew');
          this.records.delete(key);
          dropped = true;
          continue;
        }
        inheritedFds.add({ fd: t.fd, kind: 'tap', name: r.port, ifindex: 0, source: 'moved' });
        this.log.info({ ...r, netns: path, ifname: t.ifname, ...(t.ifname !== r.name ? { renamed_from: r.name } : {}) }, 'found a moved persistent TAP again');
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
