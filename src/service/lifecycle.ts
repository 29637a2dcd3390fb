// The daemon's side of Type=notify: what systemd hears, and when.
//
//   ready()     READY=1 with the first STATUS=, sent once the control socket accepts requests (so `systemctl start`
//               returns when `tapbridge show` works); then STATUS= every STATUS_EVERY_MS, and WATCHDOG=1 every
//               WATCHDOG_USEC / 2 when systemd set WatchdogSec=
//   stopping()  STOPPING=1, timers off
//
// The watchdog ping is a plain interval on the main event loop, on purpose: a loop stuck in a batch, a control
// request or a GC storm stops pinging, and systemd restarts the service. Two timers in total, whatever the size.

import type { Logger } from '../log.js';
import type { ShowBridge, BridgeStats } from '../daemon/daemon.js';
import type { SdNotify } from './sd-notify.js';

/** How often STATUS= is refreshed. */
export const STATUS_EVERY_MS = 5_000;
/** Never ping faster than this, whatever WATCHDOG_USEC says (a tiny value must not busy the loop). */
export const MIN_WATCHDOG_PING_MS = 50;

/** What the status line summarises; the daemon's own show() and stats(). */
export interface StatusSource {
  show(): ShowBridge[];
  stats(): BridgeStats[];
}

/** "1 bridge, 3/4 ports up, 17 FDB entries": bridges, ports (uplinks included) up of all, FDB entries. */
export function statusLine(source: StatusSource): string {
  const bridges = source.show();
  let ports = 0;
  let up = 0;
  for (const b of bridges) {
    const all = b.uplink === null ? b.ports : [b.uplink, ...b.ports];
    ports += all.length;
    for (const p of all) if (p.state === 'up') up++;
  }
  const fdb = source.stats().reduce((n, s) => n + s.fdb.entries, 0);
  return `${bridges.length} bridge${bridges.length === 1 ? '' : 's'}, ${up}/${ports} ports up, ${fdb} FDB entr${fdb === 1 ? 'y' : 'ies'}`;
}

export class ServiceLifecycle {
  private readonly notify: SdNotify;
  private readonly source: StatusSource;
  private readonly log: Logger;
  private statusTimer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private warnedFailure = false;

  constructor(notify: SdNotify, source: StatusSource, log: Logger) {
    this.notify = notify;
    this.source = source;
    this.log = log;
  }

  /** The watchdog ping period in ms (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises), or 0. */
  get watchdogPingMs(): number {
    const usec = this.notify.watchdogUsec;
    return usec > 0 ? Math.max(MIN_WATCHDOG_PING_MS, Math.floor(usec / 2000)) : 0;
  }

  ready(): void {
    this.check(this.notify.ready(this.summary()));
    this.statusTimer = setInterval(() => this.check(this.notify.status(this.summary())), STATUS_EVERY_MS);
    this.statusTimer.unref();
    const ping = this.watchdogPingMs;
    if (ping > 0) {
      this.check(this.notify.watchdog());
      this.watchdogTimer = setInterval(() => this.check(this.notify.watchdog()), ping);
      this.watchdogTimer.unref();
    }
    this.log.info({ notify_socket: this.notify.socketPath, watchdog_ping_ms: ping || undefined }, 'notified the service manager: ready');
  }

  stopping(): void {
    this.clear();
    this.check(this.notify.stopping('stopping'));
  }

  /** Timers off without a message (start-up failed before READY=1). */
  clear(): void {
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    if (this.watchdogTimer !== null) clearInterval(this.watchdogTimer);
    this.statusTimer = null;
    this.watchdogTimer = null;
  }

  private summary(): string {
    try {
      return statusLine(this.source);
    } catch (err) {
      return `status unavailable: ${(err as Error).message}`;
    }
  }

  /** One warning for the first failed send (then counted only): a vanished NOTIFY_SOCKET must not flood the log. */
  private check(ok: boolean): void {
    if (ok || this.warnedFailure) return;
    this.warnedFailure = true;
    this.log.warn({ notify_socket: this.notify.socketPath, err: this.notify.lastError?.message }, 'sd_notify failed (further failures are counted, not logged)');
  }
}
