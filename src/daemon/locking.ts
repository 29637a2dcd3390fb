// Port security of one bridge, control-plane side: which lock and guards each port has, and the static
// FDB entry for a locked MAC (so no other port can take the MAC over by sending with it).
//
// The locked MAC lives in the port's access VLAN, its native VLAN on a trunk, or the untagged network
// (VLAN 0) on a default port; on a trunk without native VLAN in each VLAN of its list (none for `all`).
// Changing the lock or the port's VLANs replaces those entries. Runs between batches (control turns).
// `lock set` / `lock clear` are recorded in the runtime journal (bottom of this file) and replayed at start.

import type { Bridge } from '../bridge/bridge.js';
import { type LockShow, type LockSpec, PortSecurity, UNLOCKED } from '../bridge/lock.js';
import type { BridgePort } from '../bridge/port.js';
import type { PortVlan } from '../bridge/vlan.js';
import { AddResult } from '../fdb/fdb.js';
import { portTarget, registerRecordedMethod, registerReplayRelease } from '../state/journal.js';

export interface PortGuards {
  raGuard: boolean;
  dhcpGuard: boolean;
}

interface PortLockState {
  lock: LockSpec;
  guards: PortGuards;
  /** VLANs of the static entry installed for the locked MAC */
  vids: number[];
}

/** The VLANs a locked MAC is installed in for a port with these rules. */
export function lockVids(vlan: PortVlan): number[] {
  if (vlan.isMember(vlan.untaggedVid)) return [vlan.untaggedVid];
  const spec = vlan.spec;
  return spec.mode === 'trunk' && spec.vlans !== 'all' ? [...spec.vlans] : [];
}

export class PortLocks {
  private readonly state = new Map<BridgePort, PortLockState>();

  constructor(private readonly bridge: Bridge) {}

  /**
   * Sets the port's lock and guards: the engine's tables are replaced as a whole and the static entry
   * for the locked MAC follows. Returns false when the FDB had no room for that entry.
   */
  apply(port: BridgePort, lock: LockSpec, guards: PortGuards, nowMs: number): boolean {
    this.removeEntries(port);
    const st: PortLockState = { lock, guards: { ...guards }, vids: [] };
    this.state.set(port, st);
    port.security = PortSecurity.build(lock, guards);
    return this.installEntries(port, st, nowMs);
  }

  /** After the port's VLAN rules changed: the locked MAC's entry moves to the new VLAN. */
  reinstall(port: BridgePort, nowMs: number): boolean {
    const st = this.state.get(port);
    if (st === undefined) return true;
    this.removeEntries(port);
    return this.installEntries(port, st, nowMs);
  }

  /** The port is gone (its FDB entries went with it). */
  forget(port: BridgePort): void {
    this.state.delete(port);
  }

  lock(port: BridgePort): LockSpec {
    return this.state.get(port)?.lock ?? UNLOCKED;
  }

  /** The port that has `mac` as its locked MAC, if any. */
  portLockedTo(mac: number): BridgePort | null {
    for (const [port, st] of this.state) if (st.lock.mode === 'locked' && st.lock.mac === mac) return port;
    return null;
  }

  guards(port: BridgePort): PortGuards {
    const g = this.state.get(port)?.guards;
    return g !== undefined ? { ...g } : { raGuard: false, dhcpGuard: false };
  }

  show(port: BridgePort): LockShow {
    return new PortSecurity(this.lock(port), this.guards(port)).describe(port.name);
  }

  private installEntries(port: BridgePort, st: PortLockState, nowMs: number): boolean {
    const lock = st.lock;
    if (lock.mode !== 'locked') return true;
    let ok = true;
    for (const vid of lockVids(port.vlan)) {
      if (this.bridge.fdb.addStatic(vid, lock.mac, port.id, nowMs) === AddResult.Full) ok = false;
      else st.vids.push(vid);
    }
    return ok;
  }

  private removeEntries(port: BridgePort): void {
    const st = this.state.get(port);
    if (st === undefined || st.lock.mode !== 'locked') return;
    const fdb = this.bridge.fdb;
    for (const vid of st.vids) if (fdb.lookup(vid, st.lock.mac) === port.id) fdb.delete(vid, st.lock.mac);
    st.vids = [];
  }
}

// Runtime state (src/state/journal.ts): `lock set` and `lock clear` are kept across restarts, one record per port
// (the later replaces the earlier); delif drops them with the port's other records (same target). Replay first
// clears the lock of every port with a record, then replays the records: a MAC that moved between ports at runtime
// (clear P, set Q M, set P M2 while the config locks P to M) is free for Q whatever the config gave P.
const lockKey = (bridge: string, port: string): string => `lock:${bridge}/${port}`;

registerRecordedMethod('lock.set', (p, _r, j) => {
  const bridge = String(p.bridge);
  const port = String(p.port);
  const params: Record<string, unknown> = p.disabled === true ? { bridge, port, disabled: true } : { bridge, port, mac: p.mac };
  if (p.disabled !== true) for (const k of ['ipv4', 'ipv6', 'allow_ethertypes']) if (p[k] !== undefined && p[k] !== null) params[k] = p[k];
  j.put({ method: 'lock.set', params, key: lockKey(bridge, port), target: portTarget(bridge, port) });
});

registerRecordedMethod('lock.clear', (p, _r, j) => {
  const bridge = String(p.bridge);
  const port = String(p.port);
  j.put({ method: 'lock.clear', params: { bridge, port }, key: lockKey(bridge, port), target: portTarget(bridge, port) });
});

for (const method of ['lock.set', 'lock.clear']) {
  registerReplayRelease(method, (p) => ({ method: 'lock.clear', params: { bridge: String(p.bridge), port: String(p.port) } }));
}
