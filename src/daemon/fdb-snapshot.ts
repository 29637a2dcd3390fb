// The FDB snapshot (src/state/): the dynamic entries of every bridge with their ages and snooped IPv4 addresses,
// taken at once or a slice of FDB pool slots per event-loop turn, and restored after a restart or takeover on the
// ports and VLANs that still take them. Static entries come from the config, not from here.

import { macHi, macLo } from '../fdb/fdb.js';
import { formatMac, parseMac } from '../frame/mac.js';
import type { FdbSnapshotEntry } from '../state/document.js';
import type { DaemonCore } from './runtime.js';

/** Dynamic entries of every bridge with their ages and snooped IPv4 addresses (the FDB snapshot), at once. */
export function fdbSnapshot(d: DaemonCore): Record<string, FdbSnapshotEntry[]> {
  const out: Record<string, FdbSnapshotEntry[]> = {};
  for (const name of d.bridges.keys()) {
    out[name] = [];
    fdbSnapshotSlice(d, name, 0, Infinity, out[name]);
  }
  return out;
}

/**
 * Appends the dynamic entries in FDB pool slots from..to-1 of a bridge to `out` (a snapshot a slice per event-loop
 * turn); returns the pool's slot count, 0 when the bridge is gone.
 */
export function fdbSnapshotSlice(d: DaemonCore, bridgeName: string, from: number, to: number, out: FdbSnapshotEntry[]): number {
  const br = d.bridges.get(bridgeName);
  if (br === undefined) return 0;
  br.bridge.fdb.forEach(d.now(), (e) => {
    if (e.isStatic) return;
    const port = br.bridge.ports[e.port];
    if (port === null || port === undefined) return;
    const ip = e.ipv4;
    out.push({
      port: port.name,
      mac: formatMac(e.mac),
      vlan: e.vid,
      age_ms: Math.round(e.ageMs),
      ipv4: ip === 0 ? null : `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`,
    });
  }, from, to);
  return br.bridge.fdb.maxEntries;
}

/**
 * Restores snapshot entries `elapsedMs` after they were saved: only on ports that exist and forward, in VLANs
 * they are members of, and that would not have aged out meanwhile. Never replaces an entry already there.
 */
export function restoreFdb(d: DaemonCore, bridges: Record<string, FdbSnapshotEntry[]>, elapsedMs: number): { restored: number; skipped: number } {
  const now = d.now();
  let restored = 0;
  let skipped = 0;
  for (const [name, list] of Object.entries(bridges)) {
    const br = d.bridges.get(name);
    if (br === undefined) {
      skipped += list.length;
      continue;
    }
    const ageingMs = br.bridge.fdb.ageingTimeMs;
    for (const e of list) {
      const mp = br.find(e.port);
      const mac = parseMac(e.mac);
      const ageMs = e.age_ms + Math.max(0, elapsedMs);
      if (mp === undefined || !mp.port.forwarding || mac === null || !mp.port.vlan.isMember(e.vlan) ||
        (ageingMs > 0 && ageMs >= ageingMs) || br.bridge.fdb.lookup(e.vlan, mac) >= 0) {
        skipped++;
        continue;
      }
      br.bridge.fdb.learn(e.vlan, mac, mp.port.id, now - ageMs);
      if (br.bridge.fdb.lookup(e.vlan, mac) !== mp.port.id) {
        skipped++;
        continue;
      }
      if (e.ipv4 !== null) {
        const ip = e.ipv4.split('.').reduce((a, b) => a * 256 + Number(b), 0);
        br.bridge.fdb.setIpv4(e.vlan, macHi(mac), macLo(mac), ip);
      }
      restored++;
    }
  }
  return { restored, skipped };
}
