// What a reload applies (src/state/reload.ts computes the difference; these apply it, one primitive per kind of
// change): bridges added, ports added or replaced from their config entries, flags, VLAN rules and vxlan remotes
// changed in place, the uplink replaced, static entries added. Opening and closing are portlife.ts's; a port of the
// same name is removed first wherever it is. A new config key changed in place gets its primitive here.

import type { BridgeConfig, PortConfig, StaticFdbConfig, UplinkConfig } from '../config/config.js';
import type { VxlanPortConfig } from '../config/config.js';
import type { VlanSpec } from '../bridge/vlan.js';
import { AddResult } from '../fdb/fdb.js';
import { ControlError } from '../control/errors.js';
import { restoreHostStack } from './hoststack.js';
import { createConfigPort, createVxlanPort, forgetUplink, openUplink, removePort, startBridge } from './portlife.js';
import type { DaemonCore } from './runtime.js';
import { vxlanPort } from './ops-vxlan.js';
import type { McastSettings } from '../bridge/mcast.js';
import { MAX_PORTS_PER_BRIDGE } from '../config/config.js';
import { RxSlab } from '../io/native.js';
import { applyMulticastSettings } from '../mdb/reload.js';

/** Creates and opens a bridge from its config (reload). */
export function addBridge(d: DaemonCore, cfg: BridgeConfig): void {
  const br = d.newBridge(cfg);
  d.bridges.set(cfg.name, br);
  startBridge(d, br);
}

/**
 * Adds and removes remotes of a vxlan port in place (reload): one already there (or already gone) is no error;
 * every other failure is reported together after the rest was applied.
 */
export function setVxlanRemotes(d: DaemonCore, bridgeName: string, name: string, add: readonly string[], del: readonly string[]): void {
  const mp = vxlanPort(d, d.bridge(bridgeName), name);
  const errors: string[] = [];
  const apply = (op: 'add' | 'del', ip: string): void => {
    try {
      if (op === 'add') mp.addRemote(ip);
      else mp.delRemote(ip);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (!(err instanceof ControlError && (code === 'port_exists' || code === 'not_found'))) errors.push(`${op} ${ip}: ${(err as Error).message}`);
    }
  };
  for (const ip of del) apply('del', ip);
  for (const ip of add) apply('add', ip);
  if (errors.length > 0) throw new Error(`vxlan ${name} remotes: ${errors.join('; ')}`);
}

/** Adds a vxlan port from its config entry (reload); a port of that name is removed first. */
export function addVxlanConfigPort(d: DaemonCore, bridgeName: string, vc: VxlanPortConfig): void {
  const br = d.bridges.get(bridgeName);
  if (br === undefined) throw new Error(`no bridge ${bridgeName}`);
  for (const other of d.bridges.values()) if (other.ports.has(vc.name)) removePort(d, other.cfg.name, vc.name, true);
  createVxlanPort(d, br, vc);
}

/** Adds a port from its config (reload); a port of that name is removed first. */
export function addConfigPort(d: DaemonCore, bridgeName: string, pc: PortConfig): void {
  const br = d.bridges.get(bridgeName);
  if (br === undefined) throw new Error(`no bridge ${bridgeName}`);
  for (const other of d.bridges.values()) if (other.ports.has(pc.name)) removePort(d, other.cfg.name, pc.name, true);
  createConfigPort(d, br, pc);
}

/** Changes learning, flood, isolated and the per-port FDB cap in place (fds, entries and counters stay). */
export function setPortFlags(d: DaemonCore, bridgeName: string, pc: Pick<PortConfig, 'name' | 'learning' | 'flood' | 'isolated' | 'fdbMax'>): void {
  const br = d.bridges.get(bridgeName);
  const mp = br?.ports.get(pc.name);
  if (br === undefined || mp === undefined) return;
  mp.port.learning = pc.learning;
  mp.port.flood = pc.flood;
  mp.port.isolated = pc.isolated;
  mp.port.fdbMax = pc.fdbMax;
  br.bridge.fdb.portMax[mp.port.id] = pc.fdbMax;
}

/** Replaces a port's (or the uplink's) VLAN rules in place. */
export function setPortVlanByName(d: DaemonCore, bridgeName: string, name: string, spec: VlanSpec): void {
  const br = d.bridges.get(bridgeName);
  const mp = br?.find(name);
  if (br === undefined || mp === undefined) return;
  br.bridge.setPortVlan(mp.port, spec);
  br.locks.reinstall(mp.port, d.now());
}

/** Closes the uplink (or bond) and opens the one of `up` (reload); netdevs it no longer uses get their host stack back. */
export function replaceUplink(d: DaemonCore, bridgeName: string, up: UplinkConfig | null): void {
  const br = d.bridges.get(bridgeName);
  if (br === undefined) return;
  const old = br.bond !== null ? br.bond.members.map((m) => m.name) : br.uplink !== null ? [br.uplink.name] : [];
  const next = new Set(up === null ? [] : up.bond !== null ? up.bond.members : up.interface !== null ? [up.interface] : []);
  br.uplink?.close('absent');
  forgetUplink(d, br);
  for (const n of old) if (!next.has(n)) restoreHostStack(n, d.portLog);
  openUplink(d, br, up);
}

/** Adds a static entry from the config; false when its port is missing or the FDB is full. */
export function addStaticFdb(d: DaemonCore, bridgeName: string, f: StaticFdbConfig): boolean {
  const br = d.bridges.get(bridgeName);
  const mp = br?.find(f.port);
  if (br === undefined || mp === undefined) return false;
  return br.bridge.fdb.addStatic(f.vlan, f.mac, mp.port.id, d.now()) !== AddResult.Full;
}

/** A bridge's multicast settings changed by a reload: applied in place (src/mdb/reload.ts); ports, FDB and counters stay. */
export function setMulticastSettings(d: DaemonCore, bridgeName: string, s: McastSettings): void {
  const br = d.bridges.get(bridgeName);
  if (br === undefined) return;
  applyMulticastSettings(br.bridge, s, MAX_PORTS_PER_BRIDGE, () => RxSlab.get().bytes, d.now());
}
