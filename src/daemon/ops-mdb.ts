// Control operations on the multicast database (`mdb show`, `mdb add|del`, src/mdb/control.ts) and the state's `mdb`
// section (the learnt MDB, router ports and querier elections of every bridge, src/mdb/snapshot.ts). The group,
// source and port checks are src/mdb/control.ts's; the VLAN parameter is the FDB verbs' (ops-fdb.ts).

import { mdbAdd, mdbDel, mdbShow as showMdb, type MdbShow } from '../mdb/control.js';
import { mdbSnapshot as snapshotMdb, type MdbSnapshot, restoreMdb as restoreMdbSnapshot } from '../mdb/snapshot.js';
import { vlanParam } from './ops-fdb.js';
import type { DaemonCore } from './runtime.js';

/** The learnt MDB, router ports and querier elections of every bridge (the state's `mdb` section). */
export function mdbSnapshot(d: DaemonCore): MdbSnapshot {
  return snapshotMdb([...d.bridges.values()].map((br) => br.bridge), d.now());
}

export function restoreMdb(d: DaemonCore, snap: unknown): { restored: number; skipped: number } {
  return restoreMdbSnapshot(snap, new Map([...d.bridges].map(([n, br]) => [n, br.bridge])), d.now());
}

/** `mdb show`. */
export function mdbShow(d: DaemonCore, bridgeName: unknown): MdbShow {
  return showMdb(d.bridge(bridgeName).bridge, d.now());
}

/** `mdb add` / `mdb del`: a permanent MDB entry. */
export function mdbChange(d: DaemonCore, op: 'add' | 'del', p: Record<string, unknown>): void {
  const br = d.bridge(p.bridge);
  const mp = d.port(br, p.port);
  (op === 'add' ? mdbAdd : mdbDel)(br.bridge, mp.port, p.group, vlanParam(p.vlan, mp), p.source);
}
