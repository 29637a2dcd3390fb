// The host port's MAC (issue 11, section 4): stable across restarts, so the host's neighbours and
// DHCP leases do not change when the daemon does.
//
//   default       locally administered unicast, derived from /etc/machine-id and the bridge name
//                 (SHA-256, first 6 bytes, then bit 1 of the first byte set and bit 0 cleared)
//   "02:..."      as given (config `mac`)
//   uplink        the uplink's MAC, or the first present bond member's, as XenServer's xenbr0 does;
//                 the uplink's own host stack is then fenced off (fence.ts)

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { formatMac } from '../frame/mac.js';
import { netdev } from '../io/native.js';

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** The machine's id (machine-id(5)); the hostname when there is none (logged by the caller). */
export function machineId(): { id: string; source: string } {
  for (const f of MACHINE_ID_FILES) {
    try {
      const id = readFileSync(f, 'utf8').trim();
      if (/^[0-9a-f]{32}$/i.test(id)) return { id: id.toLowerCase(), source: f };
    } catch {
      /* next */
    }
  }
  return { id: hostname(), source: 'hostname' };
}

/** Locally administered unicast MAC from the machine id and the bridge name. */
export function derivedHostMac(bridge: string, id = machineId().id): string {
  const h = createHash('sha256').update(`tapbridge host port\0${id}\0${bridge}`).digest();
  const b = [...h.subarray(0, 6)];
  b[0] = (b[0] & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * The MAC a host port gets. `uplinkNames` are the uplink's netdev, or the bond's members in order.
 * Throws when `uplink` is asked for and none of them is present.
 */
export function hostPortMac(bridge: string, mac: number | 'uplink' | null | undefined, uplinkNames: string[]): { mac: string; from: string } {
  if (typeof mac === 'number') return { mac: formatMac(mac), from: 'config' };
  if (mac === 'uplink') {
    for (const name of uplinkNames) {
      const info = netdev.info(name);
      if (info !== null) return { mac: info.mac, from: name };
    }
    throw new Error(`mac: uplink: none of ${uplinkNames.join(', ') || '(no uplink)'} is present to copy a MAC from`);
  }
  const m = machineId();
  return { mac: derivedHostMac(bridge, m.id), from: m.source };
}
