// A reload that changes multicast keys, applied in place (src/state/reload.ts finds the changes, src/daemon/reconfig.ts
// calls applyMulticastSettings()): no port is re-created, the FDB and the port counters stay, and the MDB stays where it
// is still valid.
//
//   keys compared: the bridge's MCAST_BRIDGE_KEYS (multicast_*, multicast_vlans, mdb), the multicast keys of
//   port_defaults and of each port (MCAST_PORT_KEYS: multicast_router, multicast_fast_leave, mdb_max)
//
//   What applying the new settings does to a bridge:
//     snooping off in every VLAN              -> the engine step and its MDB go (multicast is flooded)
//     snooping on where it was off everywhere -> a new engine step and MDB
//     multicast_max_groups changed            -> a new MDB of the new size; the learnt state is carried over through the
//                                                takeover snapshot (src/mdb/snapshot.ts); counters start at 0
//     otherwise, in place                     -> timers, flood and querier settings per VLAN; a VLAN whose snooping goes
//                                                off loses its learnt entries and router timers; permanent entries of
//                                                the old `mdb` list that the new one lacks are removed, new ones added;
//                                                each port's router mode, fast leave and mdb_max re-installed; the
//                                                querier keeps its elections, version fallbacks and owed queries

import type { Bridge } from '../bridge/bridge.js';
import type { McastSettings } from '../bridge/mcast.js';
import { jsonEqual } from '../state/document.js';
import { addressWords } from './address.js';
import { MCAST_BRIDGE_KEYS, MCAST_PORT_KEYS, multicastFor, snoopingAnywhere } from './config.js';
import { mdbSnapshot, restoreMdb } from './snapshot.js';

function rawOf(raw: unknown): Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
}

function shown(v: unknown): string {
  return v === undefined || v === null ? 'default' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** `key old -> new` for each of `keys` whose value differs between two raw mappings (`prefix` before the key). */
function keyChanges(o: Record<string, unknown>, n: Record<string, unknown>, keys: readonly string[], prefix = ''): string[] {
  const out: string[] = [];
  for (const k of keys) if (!jsonEqual(o[k] ?? null, n[k] ?? null)) out.push(`${prefix}${k} ${shown(o[k])} -> ${shown(n[k])}`);
  return out;
}

/** The multicast keys of a bridge's raw mapping that differ, port_defaults' included (`reload --dry-run` text). */
export function bridgeMulticastChanges(oRaw: unknown, nRaw: unknown): string[] {
  const o = rawOf(oRaw);
  const n = rawOf(nRaw);
  return [...keyChanges(o, n, MCAST_BRIDGE_KEYS), ...keyChanges(rawOf(o.port_defaults), rawOf(n.port_defaults), MCAST_PORT_KEYS, 'port_defaults.')];
}

/** The multicast keys of a port's raw mapping that differ. */
export function portMulticastChanges(oRaw: unknown, nRaw: unknown): string[] {
  return keyChanges(rawOf(oRaw), rawOf(nRaw), MCAST_PORT_KEYS);
}

/** A bridge's port_defaults without its multicast keys (what decides a re-creation of the bridge). */
export function portDefaultsWithoutMulticast(raw: unknown): Record<string, unknown> {
  const out = { ...rawOf(raw) };
  for (const k of MCAST_PORT_KEYS) delete out[k];
  return out;
}

function permanentKey(e: McastSettings['permanent'][number]): string {
  return `${e.vlan}/${e.port}/${e.group}/${e.source ?? '*'}`;
}

/**
 * Applies a bridge's new multicast settings in place (see the model); `slab` is the receive slab the querier composes in.
 * Between rx batches only (a control turn).
 */
export function applyMulticastSettings(bridge: Bridge, s: McastSettings, maxPorts: number, slab: () => Uint8Array, nowMs: number): void {
  const mc = bridge.mcast;
  if (!snoopingAnywhere(s)) {
    if (mc !== null) bridge.setMulticast(null);
    return;
  }
  if (mc === null) {
    bridge.setMulticast(multicastFor(bridge.name, s, maxPorts, slab));
    return;
  }
  if (mc.mdb.maxGroups !== s.maxGroups) {
    const snap = mdbSnapshot([bridge], nowMs);
    bridge.setMulticast(multicastFor(bridge.name, s, maxPorts, slab));
    restoreMdb(snap, new Map([[bridge.name, bridge]]), nowMs);
    return;
  }
  const old = mc.settings;
  const wasSnooping = new Uint8Array(4095);
  for (let vid = 0; vid < 4095; vid++) wasSnooping[vid] = mc.snoops(vid) ? 1 : 0;
  mc.apply(s);
  for (let vid = 0; vid < 4095; vid++) if (wasSnooping[vid] === 1 && !mc.snoops(vid)) mc.mdb.flushVlan(vid);
  const keep = new Set(s.permanent.map(permanentKey));
  for (const e of old.permanent) {
    if (keep.has(permanentKey(e))) continue;
    const port = bridge.portByName(e.port);
    const g = addressWords(e.group);
    if (port !== null && g !== null) mc.mdb.delStatic(e.vlan, g, port.id, e.source === null ? null : addressWords(e.source));
  }
  for (const p of bridge.portList) mc.applyPort(p);
}
