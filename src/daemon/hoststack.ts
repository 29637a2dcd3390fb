// Silences the host stack on a netdev the bridge attaches to (attach ports, uplinks):
// frames the host itself would send (MLD reports, router/neighbour solicitations) must not appear
// on a bridge port. IPv6 off and accept_ra 0 through /proc/sys, LRO off through ethtool (the
// kernel bridge turns LRO off on its ports for the same reason: merged frames cannot be forwarded).
//
// Originals: the first value the daemon found for each setting it changed is kept per interface
// name, and written back when the port is removed (delif, or a reload that drops it); never at
// shutdown, since the next daemon expects the netdev silenced (turning IPv6 back on during a
// restart would leak router solicitations and DAD onto the bridge). A restarted daemon sees its own
// values (disable_ipv6 1, ...) and records nothing, so the originals must survive the restart:
// exportHostStackOriginals() gives a JSON-safe record for a state file and
// importHostStackOriginals() takes it back (validated; a recorded original is never overwritten).

import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { netdev } from '../io/native.js';
import { interfaceNameProblem } from '../config/config.js';

/** The settings the daemon changed on one netdev, with the values they had before. */
export interface HostStackOriginal {
  /** net.ipv6.conf.<if>.accept_ra before the daemon set it to 0 ("0", "1" or "2") */
  accept_ra?: string;
  /** net.ipv6.conf.<if>.disable_ipv6 before the daemon set it to 1 ("0") */
  disable_ipv6?: string;
  /** LRO was on before the daemon turned it off */
  lro?: 'on';
}

type SysctlKey = 'accept_ra' | 'disable_ipv6';

const originals = new Map<string, HostStackOriginal>();

function sysctlPath(ifname: string, key: SysctlKey): string {
  return `/proc/sys/net/ipv6/conf/${ifname}/${key}`;
}

function record(ifname: string, patch: HostStackOriginal): void {
  const cur = originals.get(ifname) ?? {};
  // the first original wins: a later value may be one the daemon set itself
  originals.set(ifname, { ...patch, ...cur });
}

function setSysctl(ifname: string, key: SysctlKey, value: string, changes: string[], failures: string[]): void {
  const path = sysctlPath(ifname, key);
  try {
    const old = readFileSync(path, 'utf8').trim();
    if (old === value) return;
    writeFileSync(path, value);
    record(ifname, { [key]: old });
    changes.push(`ipv6.conf.${ifname}.${key} ${old}->${value}`);
  } catch (err) {
    // no IPv6 in this kernel/namespace, or the interface vanished meanwhile
    failures.push(`${path}: ${(err as Error).message}`);
  }
}

export function silenceHostStack(ifname: string, log: Logger): void {
  const changes: string[] = [];
  const failures: string[] = [];
  setSysctl(ifname, 'accept_ra', '0', changes, failures);
  setSysctl(ifname, 'disable_ipv6', '1', changes, failures);
  let lro: string;
  try {
    lro = netdev.disableLro(ifname);
  } catch (err) {
    lro = `error: ${(err as Error).message}`;
  }
  if (lro === 'changed') {
    record(ifname, { lro: 'on' });
    changes.push('lro on->off');
  }
  if (changes.length > 0 || failures.length > 0) {
    log.info({ ifname, changed: changes, failed: failures.length > 0 ? failures : undefined, lro }, 'silenced host stack on port netdev');
  }
}

/**
 * Writes back the originals recorded for `ifname` (a port removed from the bridge) and forgets
 * them. IPv6 comes back last, after accept_ra, so the netdev never runs IPv6 with the daemon's
 * accept_ra. A netdev that is gone (a TAP the daemon deleted) just forgets.
 */
export function restoreHostStack(ifname: string, log: Logger): void {
  const orig = originals.get(ifname);
  if (orig === undefined) return;
  originals.delete(ifname);
  if (netdev.info(ifname) === null) return;
  const restored: string[] = [];
  const failures: string[] = [];
  if (orig.lro === 'on') {
    try {
      if (netdev.enableLro(ifname) === 'changed') restored.push('lro off->on');
    } catch (err) {
      failures.push(`lro: ${(err as Error).message}`);
    }
  }
  for (const key of ['accept_ra', 'disable_ipv6'] as const) {
    const value = orig[key];
    if (value === undefined) continue;
    try {
      writeFileSync(sysctlPath(ifname, key), value);
      restored.push(`ipv6.conf.${ifname}.${key} ->${value}`);
    } catch (err) {
      failures.push(`${sysctlPath(ifname, key)}: ${(err as Error).message}`);
    }
  }
  log.info({ ifname, restored, failed: failures.length > 0 ? failures : undefined }, 'restored host stack settings of removed port netdev');
}

/** Drops what is recorded for `ifname` without writing anything. */
export function forgetHostStack(ifname: string): void {
  originals.delete(ifname);
}

/** The recorded originals by interface name, JSON-safe (for the state file). */
export function exportHostStackOriginals(): Record<string, HostStackOriginal> {
  const out: Record<string, HostStackOriginal> = {};
  for (const [ifname, o] of originals) out[ifname] = { ...o };
  return out;
}

const SYSCTL_VALUE = /^-?\d{1,10}$/;

/**
 * Takes back a record from exportHostStackOriginals() (e.g. read from a state file: hostile until
 * checked). Originals already recorded win. Returns the problems found; entries with a problem are
 * skipped, the rest imported.
 */
export function importHostStackOriginals(data: unknown): string[] {
  const problems: string[] = [];
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return ['host-stack originals must be a mapping of interface names'];
  for (const [ifname, v] of Object.entries(data as Record<string, unknown>)) {
    const bad = interfaceNameProblem(ifname);
    if (bad !== null) {
      problems.push(`${JSON.stringify(ifname)}: ${bad}`);
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push(`${ifname}: must be a mapping`);
      continue;
    }
    const o = v as Record<string, unknown>;
    const entry: HostStackOriginal = {};
    let ok = true;
    for (const [k, val] of Object.entries(o)) {
      if ((k === 'accept_ra' || k === 'disable_ipv6') && typeof val === 'string' && SYSCTL_VALUE.test(val)) entry[k] = val;
      else if (k === 'lro' && val === 'on') entry.lro = 'on';
      else {
        problems.push(`${ifname}.${k}: unknown key or bad value ${JSON.stringify(val)}`);
        ok = false;
      }
    }
    if (ok) record(ifname, entry);
  }
  return problems;
}
