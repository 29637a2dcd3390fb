// Silences the host stack on a netdev the bridge attaches to (attach ports, uplinks):
// frames the host itself would send (MLD reports, router/neighbour solicitations) must not appear
// on a bridge port. IPv6 off and accept_ra 0 through /proc/sys, LRO off through ethtool (the
// kernel bridge turns LRO off on its ports for the same reason: merged frames cannot be forwarded).

import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { netdev } from '../io/native.js';

function setSysctl(path: string, value: string, changes: string[], failures: string[]): void {
  try {
    const old = readFileSync(path, 'utf8').trim();
    if (old === value) return;
    writeFileSync(path, value);
    changes.push(`${path.replace('/proc/sys/', '').replaceAll('/', '.')} ${old}->${value}`);
  } catch (err) {
    // no IPv6 in this kernel/namespace, or the interface vanished meanwhile
    failures.push(`${path}: ${(err as Error).message}`);
  }
}

export function silenceHostStack(ifname: string, log: Logger): void {
  const changes: string[] = [];
  const failures: string[] = [];
  const conf = `/proc/sys/net/ipv6/conf/${ifname}`;
  setSysctl(`${conf}/accept_ra`, '0', changes, failures);
  setSysctl(`${conf}/disable_ipv6`, '1', changes, failures);
  let lro: string;
  try {
    lro = netdev.disableLro(ifname);
  } catch (err) {
    lro = `error: ${(err as Error).message}`;
  }
  if (lro === 'changed') changes.push('lro on->off');
  if (changes.length > 0 || failures.length > 0) {
    log.info({ ifname, changed: changes, failed: failures.length > 0 ? failures : undefined, lro }, 'silenced host stack on port netdev');
  }
}
