// The systemd fd store (issue 11, section 2): `systemctl restart tapbridge` keeps every TAP the
// daemon made, wherever it lives, because systemd holds a copy of each TAP fd between the stop and
// the next start.
//
//   FdStore.opened   a TAP port (kind tap or host) opened: FDSTORE=1, FDNAME=<bridge>/<port>/<queue>
//                    with the fd (sd_notify with SCM_RIGHTS); systemd ignores an fd it already holds
//   FdStore.removed  the port went away (delif): FDSTOREREMOVE=1, FDNAME=..., systemd closes its copy
//   takeListenFds    on start: LISTEN_PID must be this process; fds 3 .. 3+LISTEN_FDS-1 named by
//                    LISTEN_FDNAMES (':'-separated); each of ours that is a TAP goes into the
//                    inherited pool, so ManagedPort.open() adopts it instead of creating the TAP. The
//                    LISTEN_* variables are removed from the environment (as sd_listen_fds(1) does).
//
// While the store holds a TAP, SIGTERM no longer deletes it: the daemon closes its fd, systemd's
// copy keeps the TAP (and a VM's namespace keeps using it). Queue is 0: one queue per TAP today.
// Needs FileDescriptorStoreMax= in the unit (contrib/tapbridge.service).

import type { Logger } from '../log.js';
import type { SdNotify } from '../service/sd-notify.js';
import { fds } from '../io/native.js';
import { inheritedFds } from './inherited.js';

/** First inherited fd (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** More than this in LISTEN_FDS is not believed. */
export const MAX_LISTEN_FDS = 4096;
export const FD_QUEUE = 0;

export function fdName(bridge: string, port: string, queue = FD_QUEUE): string {
  return `${bridge}/${port}/${queue}`;
}

/** <bridge>/<port>/<queue> -> parts, or null for names that are not ours. */
export function parseFdName(name: string): { bridge: string; port: string; queue: number } | null {
  const m = /^([A-Za-z0-9_.-]{1,15})\/([^\0/:\s]{1,15})\/(\d{1,4})$/.exec(name);
  if (m === null) return null;
  return { bridge: m[1], port: m[2], queue: Number(m[3]) };
}

export interface ListenFdsResult {
  /** TAP fds put into the inherited pool */
  taps: number;
  /** fds left alone (not ours, or not a TAP), with the reason */
  ignored: { fd: number; name: string; why: string }[];
  /** why LISTEN_* was not used at all, or null */
  skipped: string | null;
}

/** Reads LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES; see the header. */
export function takeListenFds(env: NodeJS.ProcessEnv, pid: number, log: Logger): ListenFdsResult {
  const out: ListenFdsResult = { taps: 0, ignored: [], skipped: null };
  const countText = env.LISTEN_FDS;
  const pidText = env.LISTEN_PID;
  const namesText = env.LISTEN_FDNAMES ?? '';
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (countText === undefined) {
    out.skipped = 'no LISTEN_FDS';
    return out;
  }
  if (pidText !== String(pid)) {
    out.skipped = `LISTEN_PID ${JSON.stringify(pidText ?? null)} is not this process (${pid})`;
    log.warn({ listen_pid: pidText ?? null, pid }, 'LISTEN_FDS meant for another process; ignored');
    return out;
  }
  if (!/^\d{1,5}$/.test(countText) || Number(countText) > MAX_LISTEN_FDS) {
    out.skipped = `LISTEN_FDS ${JSON.stringify(countText)} is not a count 0..${MAX_LISTEN_FDS}`;
    log.warn({ listen_fds: countText }, 'bad LISTEN_FDS; ignored');
    return out;
  }
  const n = Number(countText);
  const names = namesText === '' ? [] : namesText.split(':');
  inheritedFds.setLogger(log);
  for (let i = 0; i < n; i++) {
    const fd = LISTEN_FDS_START + i;
    const name = names[i] ?? '';
    const parsed = parseFdName(name);
    if (parsed === null) {
      out.ignored.push({ fd, name, why: 'name is not <bridge>/<port>/<queue>' });
      continue;
    }
    const info = fds.info(fd);
    if (info.type !== 'tap' || !info.vnetHdr) {
      // ours by name but not a TAP with vnet headers: systemd should not keep it
      out.ignored.push({ fd, name, why: `is ${info.type === 'tap' ? 'a TAP without vnet headers' : `a ${info.type} fd`}, not a TAP` });
      fds.close(fd);
      continue;
    }
    inheritedFds.add({ fd, kind: 'tap', name: parsed.port, ifindex: info.ifindex, source: 'fdstore', fdname: name });
    out.taps++;
  }
  log.info({ listen_fds: n, taps: out.taps, ignored: out.ignored.length > 0 ? out.ignored : undefined }, 'fds from the systemd fd store');
  return out;
}

/** What the daemon tells the fd store (see the header). */
export class FdStore {
  private readonly notify: SdNotify;
  private readonly log: Logger;
  stored = 0;
  removedCount = 0;

  constructor(notify: SdNotify, log: Logger) {
    this.notify = notify;
    this.log = log;
  }

  opened(bridge: string, port: string, fd: number): void {
    const name = fdName(bridge, port);
    if (this.notify.notify(['FDSTORE=1', `FDNAME=${name}`], [fd])) this.stored++;
    else this.log.warn({ fdname: name, err: this.notify.lastError?.message }, 'FDSTORE=1 failed: this TAP will not survive a restart');
  }

  removed(bridge: string, port: string): void {
    const name = fdName(bridge, port);
    if (this.notify.notify(['FDSTOREREMOVE=1', `FDNAME=${name}`])) this.removedCount++;
    else this.log.warn({ fdname: name, err: this.notify.lastError?.message }, 'FDSTOREREMOVE=1 failed');
  }

  /** Inherited store fds nobody took (their port left the config): systemd drops its copies too. */
  forget(names: string[]): void {
    for (const n of names) {
      if (this.notify.notify(['FDSTOREREMOVE=1', `FDNAME=${n}`])) this.removedCount++;
    }
  }
}
