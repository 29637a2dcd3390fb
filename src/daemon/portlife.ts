// Port lifecycle (like net/bridge br_if.c): a bridge's uplink (or bond), ports and vxlan ports are created, opened,
// closed and forgotten here, for start-up, reload and the control operations alike.
//
// Adding a port acquires in order: a port slot, the engine's port, its VLAN rules, lock and QoS, then the netdev
// (open); a failed open unwinds the earlier steps. Removing one closes it, then takes it off the engine, the locks,
// QoS and the port index. A new port kind's open goes in createPort (the PortHandle it builds), its config entry in
// startBridge.

import type { BridgeConfig, PortConfig } from '../config/config.js';
import { BUILTIN_PORT_DEFAULTS } from '../config/config.js';
import { BridgePort, type PortKind } from '../bridge/port.js';
import type { VlanSpec } from '../bridge/vlan.js';
import { Mirror } from '../bridge/mirror.js';
import { UNLOCKED } from '../bridge/lock.js';
import { ControlError } from '../control/errors.js';
import { netdev } from '../io/native.js';
import { hostPortMac } from '../hostport/mac.js';
import { fenceHostStack } from '../hostport/fence.js';
import { ManagedPort } from './ports.js';
import { Bond } from './bond.js';
import { VxlanPort } from './vxlan.js';
import { VhostUserPort } from './vhost-user.js';
import type { VhostUserSpec, VxlanPortConfig } from '../config/config.js';
import { restoreHostStack } from './hoststack.js';
import { type BridgeRuntime, type DaemonCore, type PortSettings, settingsFromDefaults } from './runtime.js';

/** Opens a bridge's uplink and ports and adds its static entries (start-up and reload). */
export function startBridge(d: DaemonCore, br: BridgeRuntime): void {
  const now = d.now();
  br.bridge.nowMs = now;
  openUplink(d, br, br.cfg.uplink);
  for (const pc of br.cfg.ports) createConfigPort(d, br, pc);
  for (const vc of br.cfg.vxlan) createVxlanPort(d, br, vc);
  for (const f of br.cfg.fdb) {
    const mp = br.find(f.port);
    if (mp !== undefined) br.bridge.fdb.addStatic(f.vlan, f.mac, mp.port.id, now);
  }
  // after every port exists: the outputs are known, nothing is flooded to them from the first frame
  if (br.cfg.mirrors.length > 0) br.bridge.setMirrors(br.cfg.mirrors.map((m) => new Mirror(m)));
}

export function openUplink(d: DaemonCore, br: BridgeRuntime, up: BridgeConfig['uplink']): void {
  if (up !== null && up.bond !== null) br.uplink = createBond(d, br, up.bond, up.vlan);
  else if (up !== null && up.interface !== null) br.uplink = createPort(d, br, up.interface, 'uplink', false, undefined, up.vlan);
}

/** The host port's MAC; with `mac: uplink` the uplink's host stack is fenced off first. */
function hostMac(d: DaemonCore, br: BridgeRuntime, mac: number | 'uplink' | null | undefined): string {
  const up = br.cfg.uplink;
  const names = up === null ? [] : up.bond !== null ? [...up.bond.members] : up.interface !== null ? [up.interface] : [];
  const r = hostPortMac(br.cfg.name, mac, names);
  if (mac === 'uplink') {
    for (const n of names) {
      if (netdev.info(n) === null) continue;
      fenceHostStack(n, d.log);
      d.fenced.push(n);
    }
  }
  d.log.info({ bridge: br.cfg.name, mac: r.mac, from: r.from }, 'host port MAC');
  return r.mac;
}

export function createConfigPort(d: DaemonCore, br: BridgeRuntime, pc: PortConfig): ManagedPort {
  const mac = pc.kind === 'host' ? hostMac(d, br, pc.mac) : null;
  return createPort(d, br, pc.name, pc.kind, pc.persist, pc, pc.vlan, pc.create, mac, null, pc.vhostUser ?? null);
}

/** A port added at runtime (`addif`): the bridge's port_defaults apply. vhostUser: the socket of a vhost-user port. */
export function createRuntimePort(
  d: DaemonCore, br: BridgeRuntime, name: string, kind: 'tap' | 'attach' | 'vhost-user', vlan: VlanSpec, vhostUser: VhostUserSpec | null = null,
): ManagedPort {
  return createPort(d, br, name, kind, false, settingsFromDefaults(br.cfg.portDefaults), vlan, null, null, null, vhostUser);
}

function createPort(
  d: DaemonCore,
  br: BridgeRuntime,
  name: string,
  kind: PortKind,
  persist: boolean,
  settings: PortSettings | undefined,
  vlan: VlanSpec,
  create: { owner: number; group: number } | null = null,
  hostMacAddr: string | null = null,
  vxlan: VxlanPortConfig | null = null,
  vhostUser: VhostUserSpec | null = null,
): ManagedPort {
  const id = br.bridge.freePortId();
  if (id < 0) throw new ControlError('invalid_params', `bridge ${br.cfg.name} has no free port slot`);
  // the uplink gets the built-in flags: port_defaults never apply to it
  const s = settings ?? settingsFromDefaults(BUILTIN_PORT_DEFAULTS);
  const port = new BridgePort(id, name, kind, s, br.cfg.mtu, s.fdbMax, s.allowStacked);
  const opts = { persist, create, hostMac: hostMacAddr, ownerOfIfindex: (ifindex: number) => d.portOfIfindex(ifindex), wrap: d.wrap };
  const mp = vxlan !== null
    ? new VxlanPort(br.bridge, port, vxlan, opts, br.cfg.mtu, d.portLog)
    : vhostUser !== null
      ? new VhostUserPort(br.bridge, port, vhostUser, opts, br.cfg.mtu, d.portLog)
      : new ManagedPort(br.bridge, port, opts, br.cfg.mtu, d.portLog);
  br.bridge.addPort(port);
  // VLAN rules and port security are in place before the port forwards its first frame
  br.bridge.setPortVlan(port, vlan);
  if (kind !== 'uplink' && !br.locks.apply(port, s.lock, s, d.now())) {
    d.log.warn({ bridge: br.cfg.name, port: name }, 'FDB full of static entries: locked MAC not installed as a static entry');
  }
  if (kind !== 'uplink') br.qos.apply(port, s.qos);
  try {
    mp.open();
  } catch (err) {
    br.bridge.removePort(port);
    br.locks.forget(port);
    br.qos.forget(port);
    throw err;
  }
  if (kind !== 'uplink') br.ports.set(name, mp);
  d.byName.set(name, mp);
  if ((kind === 'tap' || kind === 'host') && mp.io !== null) d.tapFds?.opened(br.cfg.name, name, mp.io.fd);
  return mp;
}

/** A kernel vxlan netdev created over rtnetlink, attached like an `attach` port (src/daemon/vxlan.ts). */
export function createVxlanPort(d: DaemonCore, br: BridgeRuntime, vc: VxlanPortConfig): VxlanPort {
  // its own flags only: port_defaults (and port security, meant for guests) never apply to a vxlan port
  const s: PortSettings = { learning: vc.learning, flood: vc.flood, isolated: vc.isolated, fdbMax: vc.fdbMax, lock: UNLOCKED, raGuard: false, dhcpGuard: false, allowStacked: false, qos: vc.qos };
  return createPort(d, br, vc.name, 'vxlan', vc.persist, s, vc.vlan, null, null, vc) as VxlanPort;
}

function createBond(d: DaemonCore, br: BridgeRuntime, cfg: Bond['cfg'], vlan: VlanSpec): Bond {
  const id = br.bridge.freePortId();
  const bond = new Bond(cfg, br.bridge, id, br.cfg.mtu, d.portLog, d.wrap, d.bondRestore.get(cfg.name));
  d.bondRestore.delete(cfg.name);
  br.bridge.addPort(bond.port);
  br.bridge.setPortVlan(bond.port, vlan);
  bond.open();
  for (const m of bond.members) d.byName.set(m.name, m);
  br.bond = bond;
  return bond;
}

/**
 * Closes and removes a port (not the uplink); false when it does not exist. Its host-stack originals are written
 * back (as delif does) unless `reopen` (the port is opened again at once).
 */
export function removePort(d: DaemonCore, bridgeName: string, name: string, reopen: boolean): boolean {
  const br = d.bridges.get(bridgeName);
  const mp = br?.ports.get(name);
  if (br === undefined || mp === undefined) return false;
  // the systemd fd store and the moved-TAP records forget it (a re-created port stores its new fd)
  if (mp.kind === 'tap' || mp.kind === 'host') {
    d.tapFds?.removed(br.cfg.name, mp.name);
    d.tapMoves?.removed(br.cfg.name, mp.name);
  }
  mp.close('absent');
  if (mp instanceof VxlanPort) mp.removeNetdev();
  br.bridge.removePort(mp.port);
  br.locks.forget(mp.port);
  br.qos.forget(mp.port);
  br.ports.delete(name);
  d.byName.delete(name);
  // after close: the netdev is off the bridge before IPv6 comes back on it
  if (!reopen) restoreHostStack(name, d.portLog);
  return true;
}

/** Takes the (closed) uplink or bond off the bridge and the port index. */
export function forgetUplink(d: DaemonCore, br: BridgeRuntime): void {
  if (br.uplink === null) return;
  if (br.bond !== null) for (const m of br.bond.members) d.byName.delete(m.name);
  else d.byName.delete(br.uplink.name);
  br.bridge.removePort(br.uplink.port);
  br.uplink = null;
  br.bond = null;
}

/**
 * Closes every port of a bridge and forgets it (reload). Host-stack originals are written back, except on the
 * netdevs in `keep` (a re-created bridge takes them again at once).
 */
export function closeBridge(d: DaemonCore, name: string, keep: ReadonlySet<string>): void {
  const br = d.bridges.get(name);
  if (br === undefined) return;
  const netdevs = [...br.ports.keys(), ...(br.bond !== null ? br.bond.members.map((m) => m.name) : br.uplink !== null ? [br.uplink.name] : [])];
  for (const mp of br.all()) {
    mp.close('absent');
    if (mp instanceof VxlanPort) mp.removeNetdev();
  }
  forgetUplink(d, br);
  br.qos.close();
  for (const mp of br.ports.values()) d.byName.delete(mp.name);
  d.bridges.delete(name);
  for (const n of netdevs) if (!keep.has(n)) restoreHostStack(n, d.portLog);
}
