// Control operations on vxlan ports (`vxlan show|add|del|remote`, src/daemon/vxlan.ts): the parameters are the config
// file's keys of a `vxlan` entry, checked by the config parser; the port itself is opened by portlife.ts.

import { parseVxlanPort, type VxlanPortConfig } from '../config/config.js';
import { ControlError } from '../control/errors.js';
import { createVxlanPort } from './portlife.js';
import type { BridgeRuntime, DaemonCore } from './runtime.js';
import { VxlanPort, type VxlanShow } from './vxlan.js';
import { delif } from './ops-ports.js';

export function vxlanPort(d: DaemonCore, br: BridgeRuntime, name: unknown): VxlanPort {
  const mp = d.port(br, name);
  if (!(mp instanceof VxlanPort)) throw new ControlError('invalid_params', `${mp.name} is not a vxlan port`);
  return mp;
}

/** The vxlan entries in force (config plus runtime changes), for save-config. */
export function vxlanConfigs(d: DaemonCore, bridgeName: string): VxlanPortConfig[] {
  const br = d.bridges.get(bridgeName);
  return br === undefined ? [] : [...br.ports.values()].filter((mp): mp is VxlanPort => mp instanceof VxlanPort).map((mp) => mp.spec);
}

export function vxlanShow(d: DaemonCore, bridgeName: unknown): VxlanShow[] {
  const br = d.bridge(bridgeName);
  return [...br.ports.values()].filter((mp): mp is VxlanPort => mp instanceof VxlanPort).map((mp) => mp.show());
}

/** `vxlan add`: params are the config file's keys of a `vxlan` entry (name, vni, local, remotes, ...). */
export function vxlanAdd(d: DaemonCore, bridgeName: unknown, params: Record<string, unknown>): VxlanShow {
  const br = d.bridge(bridgeName);
  const entry = Object.fromEntries(Object.entries(params).filter(([k, v]) => k !== 'bridge' && v !== undefined && v !== null));
  const r = parseVxlanPort(entry, (name) => {
    for (const other of d.bridges.values()) {
      if (other.bond !== null && other.bond.name === name) return `the bond of ${other.cfg.name}`;
    }
    const existing = d.byName.get(name);
    return existing === undefined ? null : `a port of ${existing.bridge.name}`;
  });
  if ('issues' in r) throw new ControlError('invalid_params', r.issues.map((i) => `${i.path}: ${i.message}`).join('; '));
  let mp: VxlanPort;
  try {
    mp = createVxlanPort(d, br, r.port);
  } catch (err) {
    if (err instanceof ControlError) throw err;
    throw new ControlError('io_error', `cannot add vxlan ${r.port.name}: ${(err as Error).message}`, { errno: (err as { errno?: number }).errno });
  }
  d.log.info({ bridge: br.cfg.name, port: mp.name, vni: r.port.vni }, 'vxlan port added');
  return mp.show();
}

export function vxlanDel(d: DaemonCore, bridgeName: unknown, name: unknown): void {
  const br = d.bridge(bridgeName);
  vxlanPort(d, br, name);
  delif(d, bridgeName, name);
}

export function vxlanRemote(d: DaemonCore, bridgeName: unknown, name: unknown, op: 'add' | 'del', ip: unknown): VxlanShow {
  const mp = vxlanPort(d, d.bridge(bridgeName), name);
  try {
    if (op === 'add') mp.addRemote(ip);
    else mp.delRemote(ip);
  } catch (err) {
    if (err instanceof ControlError) throw err;
    throw new ControlError('io_error', `cannot ${op} remote ${String(ip)} on ${mp.name}: ${(err as Error).message}`, { errno: (err as { errno?: number }).errno });
  }
  return mp.show();
}
