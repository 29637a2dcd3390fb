// Link monitoring: the rtnetlink LinkMonitor's events reach the ports that follow a netdev (attach ports, uplinks,
// bond members, vxlan ports; a TAP or host port is its own netdev and follows none).
//
// A link dump is a mark-and-sweep: every ifindex reported until its 'done' is marked, and at 'done' a followed netdev
// that was not reported is gone (its RTM_DELLINK may have been lost in an overrun). An overrun asks for a new dump; a
// refused dump is asked for again after DUMP_RETRY_MIN_MS, doubling; a dump with no 'done' after DUMP_WATCHDOG_MS is
// asked for again, forced. A persistent TAP moved into another namespace is reported to the TapMoveListener.
// Events wait while a handover pauses I/O (resumeIo re-dumps).

import type { Logger } from '../log.js';
import { LinkMonitor } from '../io/native.js';
import type { DaemonCore } from './runtime.js';

/** A link dump the kernel refused (other than EBUSY, which the addon retries itself) is asked for again after this, doubling. */
const DUMP_RETRY_MIN_MS = 50;
const DUMP_RETRY_MAX_MS = 5_000;
const EBUSY = 16;
/**
 * A dump with no 'done' after this long is asked for again, forced (doubling to DUMP_WATCHDOG_MAX_MS): the kernel drops
 * an error answer (e.g. EBUSY) that does not fit in a full receive buffer, and then nothing else would follow.
 */
const DUMP_WATCHDOG_MS = 2_000;
const DUMP_WATCHDOG_MAX_MS = 30_000;
/**
 * Test knob: SO_RCVBUF of the rtnetlink socket in bytes (tests force overruns with a tiny one); unset or 0 = the
 * addon's 4 MiB.
 */
export const NETLINK_RCVBUF_ENV = 'TAPBRIDGE_NETLINK_RCVBUF';


/** The rtnetlink receive buffer the test knob asks for (0: the addon's); throws on a value that is not one. */
export function netlinkRcvbuf(linkLog: Logger): number {
  const rcvbuf = Number(process.env[NETLINK_RCVBUF_ENV] ?? 0);
  if (!Number.isSafeInteger(rcvbuf) || rcvbuf < 0 || rcvbuf > 0x3fffffff) {
    throw new Error(`${NETLINK_RCVBUF_ENV} must be an integer 0..1073741823 (bytes), got ${JSON.stringify(process.env[NETLINK_RCVBUF_ENV])}`);
  }
  if (rcvbuf > 0) linkLog.warn({ rcvbuf }, `${NETLINK_RCVBUF_ENV}: rtnetlink receive buffer forced (a test knob)`);
  return rcvbuf;
}

type LinkEventType = 'new' | 'del' | 'done' | 'overrun' | 'dump_error';

export class LinkWatch {
  private monitor: LinkMonitor | null = null;
  /** ifindexes seen since the current link dump was asked for (mark-and-sweep after an overrun), or null. */
  private dumpSeen: Set<number> | null = null;
  private dumpRetryTimer: NodeJS.Timeout | null = null;
  private dumpRetryMs = DUMP_RETRY_MIN_MS;
  private dumpWatchdog: NodeJS.Timeout | null = null;
  private dumpWatchdogMs = DUMP_WATCHDOG_MS;
  /** rtnetlink overruns and refused dumps so far, ports swept because a dump no longer listed them */
  readonly counters = { overruns: 0, dumpErrors: 0, swept: 0 };


  constructor(private readonly d: DaemonCore) {}

  /** Opens the rtnetlink socket (start-up); the first dump is requestDump's. */
  open(rcvbuf: number): void {
    const linkLog = this.d.linkLog;
    this.monitor = new LinkMonitor(
      this.d.wrap('link monitor', (type: LinkEventType, ifindex: number, name: string, flags: number, mtu: number,
        newNsid: number, newIfindex: number) => {
        if (type === 'del' && newNsid >= 0 && newIfindex > 0) this.onTapMoved(ifindex, newNsid, newIfindex);
        this.onLinkEvent(type, ifindex, name, flags, mtu, linkLog);
      }),
      rcvbuf,
    );
  }

  /** Ends the retry and watchdog timers. */
  stopTimers(): void {
    if (this.dumpRetryTimer !== null) clearTimeout(this.dumpRetryTimer);
    this.dumpRetryTimer = null;
    if (this.dumpWatchdog !== null) clearTimeout(this.dumpWatchdog);
    this.dumpWatchdog = null;
  }

  /** Closes the rtnetlink socket. */
  close(): void {
    this.monitor?.close();
    this.monitor = null;
  }

  /** A netdev of ours moved into another namespace: a persistent TAP port's move is recorded. */
  private onTapMoved(ifindex: number, nsid: number, newIfindex: number): void {
    for (const br of this.d.bridges.values()) {
      for (const mp of br.ports.values()) {
        if ((mp.kind === 'tap' || mp.kind === 'host') && mp.persist && mp.io !== null && mp.port.ifindex === ifindex) {
          this.d.tapMoves?.moved(br.cfg.name, mp.name, nsid, newIfindex);
        }
      }
    }
  }

  /**
   * Asks for a link dump and starts a mark-and-sweep: every ifindex reported until its 'done' is marked; at 'done',
   * ports whose netdev was not reported are gone (their RTM_DELLINK may have been lost in an overrun).
   */
  requestDump(force = false): void {
    if (this.monitor === null) return;
    this.dumpSeen = new Set<number>();
    this.monitor.dump(force);
    if (this.dumpWatchdog !== null) clearTimeout(this.dumpWatchdog);
    this.dumpWatchdog = setTimeout(this.d.wrap('link dump watchdog', () => {
      this.dumpWatchdog = null;
      this.d.linkLog.warn({ waited_ms: this.dumpWatchdogMs }, 'rtnetlink link dump did not complete; asking again');
      this.dumpWatchdogMs = Math.min(DUMP_WATCHDOG_MAX_MS, this.dumpWatchdogMs * 2);
      this.requestDump(true);
    }), this.dumpWatchdogMs);
    this.dumpWatchdog.unref();
  }

  private scheduleDumpRetry(): void {
    if (this.dumpRetryTimer !== null) return;
    const delay = this.dumpRetryMs;
    this.dumpRetryMs = Math.min(DUMP_RETRY_MAX_MS, this.dumpRetryMs * 2);
    this.dumpRetryTimer = setTimeout(this.d.wrap('link dump retry', () => {
      this.dumpRetryTimer = null;
      this.requestDump();
    }), delay);
    this.dumpRetryTimer.unref();
  }

  /** At the end of a complete dump: ports following a netdev that the dump did not list are gone. */
  private sweepPorts(seen: Set<number>, log: Logger): void {
    for (const mp of this.d.byName.values()) {
      if (mp.kind === 'tap' || mp.kind === 'host' || mp.io === null || mp.port.ifindex === 0 || seen.has(mp.port.ifindex)) continue;
      this.counters.swept++;
      log.info({ port: mp.name, ifindex: mp.port.ifindex }, 'netdev missing from the link dump (its RTM_DELLINK was lost); closing');
      mp.onLinkGone();
    }
  }

  private onLinkEvent(type: LinkEventType, ifindex: number, name: string, flags: number, mtu: number, log: Logger): void {
    if (type === 'overrun') {
      this.counters.overruns++;
      log.warn({ overruns: this.counters.overruns }, 'rtnetlink receive buffer overrun; re-dumping links');
      this.requestDump();
      return;
    }
    if (type === 'dump_error') {
      this.counters.dumpErrors++;
      const retry = ifindex === EBUSY ? 'the addon re-sends it when the running dump ends' : 'dumping again';
      log.warn({ errno: ifindex, dump_errors: this.counters.dumpErrors }, `rtnetlink link dump refused; ${retry}`);
      if (ifindex !== EBUSY) this.scheduleDumpRetry();
      return;
    }
    if (type === 'done') {
      const seen = this.dumpSeen;
      this.dumpSeen = null;
      this.dumpRetryMs = DUMP_RETRY_MIN_MS;
      this.dumpWatchdogMs = DUMP_WATCHDOG_MS;
      if (this.dumpWatchdog !== null) clearTimeout(this.dumpWatchdog);
      this.dumpWatchdog = null;
      if (seen !== null) this.sweepPorts(seen, log);
      return;
    }
    if (type === 'new') this.dumpSeen?.add(ifindex);
    // a handover in progress: ports wait (resumeIo re-dumps)
    if (this.d.ioPaused) return;
    // a netdev we follow that was renamed away or deleted
    for (const mp of this.d.byName.values()) {
      if (mp.kind === 'tap' || mp.kind === 'host' || mp.port.ifindex !== ifindex || mp.io === null) continue;
      if (type === 'del' || mp.name !== name) mp.onLinkGone();
    }
    if (type === 'new') {
      const mp = this.d.byName.get(name);
      if (mp !== undefined && mp.kind !== 'tap' && mp.kind !== 'host') mp.onLinkNew(ifindex, flags, mtu);
    }
  }
}
