// sd_notify(3): the datagrams a Type=notify service sends its service manager, over the addon's unix datagram socket
// (src/native/notify.cc; Node has no AF_UNIX SOCK_DGRAM).
//
//   SdNotify.fromEnv()   null unless $NOTIFY_SOCKET is set ("/path" or abstract "@name")
//   notify(state, fds?)  one datagram: "READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1", "FDSTORE=1" + fds ...
//   watchdogUsec         $WATCHDOG_USEC when $WATCHDOG_PID is unset or ours (as sd_watchdog_enabled), else 0
//
// A failed send is counted and remembered (lastError), never thrown: a service manager that went away must not take
// the daemon with it. The fds of FDSTORE=1 (the restarts issue) travel with SCM_RIGHTS; ours stay open.

import { loadAddon } from '../io/native.js';

/** Sends one datagram; the addon's sdNotify, or a fake in tests. */
export type NotifyTransport = (path: string, state: string, fds?: number[]) => void;

/** Longest value a state line carries (STATUS= summaries are one line; systemd reads at most 4 KiB per datagram). */
export const MAX_STATE_VALUE = 1024;

const realTransport: NotifyTransport = (path, state, fds) => loadAddon().sdNotify(path, state, fds);

/** WATCHDOG_USEC as sd_watchdog_enabled reads it: a positive integer, and WATCHDOG_PID (if set) is this process. */
export function watchdogUsecFromEnv(env: NodeJS.ProcessEnv, pid: number): number {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^[1-9][0-9]{0,15}$/.test(usec)) return 0;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) return 0;
  return Number(usec);
}

/** One `KEY=value` line; newlines in the value become spaces, and it is cut at MAX_STATE_VALUE. */
export function stateLine(key: string, value: string | number): string {
  let v = String(value).replace(/[\r\n]+/g, ' ');
  if (v.length > MAX_STATE_VALUE) v = v.slice(0, MAX_STATE_VALUE);
  return `${key}=${v}`;
}

export class SdNotify {
  readonly socketPath: string;
  readonly watchdogUsec: number;
  private readonly transport: NotifyTransport;
  /** Datagrams sent and failed, for tests and diagnostics. */
  sent = 0;
  failed = 0;
  lastError: Error | null = null;

  constructor(socketPath: string, watchdogUsec = 0, transport: NotifyTransport = realTransport) {
    this.socketPath = socketPath;
    this.watchdogUsec = watchdogUsec;
    this.transport = transport;
  }

  /** The notify channel systemd handed us, or null when not started by a service manager that wants one. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, transport?: NotifyTransport, pid = process.pid): SdNotify | null {
    const path = env.NOTIFY_SOCKET;
    if (path === undefined || path === '') return null;
    return new SdNotify(path, watchdogUsecFromEnv(env, pid), transport);
  }

  /** Sends `state` (lines joined with "\n") and optional fds; false (counted, lastError) when the send failed. */
  notify(state: string | string[], fds?: number[]): boolean {
    const text = Array.isArray(state) ? state.join('\n') : state;
    try {
      this.transport(this.socketPath, text, fds);
      this.sent++;
      return true;
    } catch (err) {
      this.failed++;
      this.lastError = err as Error;
      return false;
    }
  }

  ready(status?: string): boolean {
    return this.notify(status === undefined ? ['READY=1'] : ['READY=1', stateLine('STATUS', status)]);
  }

  status(status: string): boolean {
    return this.notify(stateLine('STATUS', status));
  }

  stopping(status?: string): boolean {
    return this.notify(status === undefined ? ['STOPPING=1'] : ['STOPPING=1', stateLine('STATUS', status)]);
  }

  watchdog(): boolean {
    return this.notify('WATCHDOG=1');
  }
}
