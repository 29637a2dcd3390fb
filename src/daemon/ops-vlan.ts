// Control operations on VLANs (`vlan set`; `vlan show` is view.ts portVlans) and the VLAN options addif shares.
// Each takes the request's untyped parameters, refuses a wrong one with invalid_params naming it, and changes the
// port's VLAN rules between forwarding batches.

import { vlanSpecFrom, type VlanSpec } from '../bridge/vlan.js';
import { ControlError } from '../control/errors.js';
import type { DaemonCore } from './runtime.js';
import type { VlanShow } from './view.js';

/** VLAN options of addif / vlan.set: {access} | {trunk, native} | {default: true} | none. */
export function vlanParams(p: Record<string, unknown>): VlanSpec | null {
  const access = p.access ?? undefined;
  const trunk = p.trunk ?? undefined;
  const native = p.native ?? undefined;
  if (p.default === true) {
    if (access !== undefined || trunk !== undefined || native !== undefined) {
      throw new ControlError('invalid_params', 'default excludes access, trunk and native');
    }
    return { mode: 'default' };
  }
  if (access === undefined && trunk === undefined && native === undefined) return null;
  const r = vlanSpecFrom(access, trunk, native);
  if ('spec' in r) return r.spec;
  const names: Record<string, string> = { vlan: 'access', trunk: 'trunk', native_vlan: 'native' };
  throw new ControlError('invalid_params', r.problems.map(([k, m]) => `${names[k] ?? k}: ${m}`).join('; '));
}

/** Replaces a port's VLAN rules; entries in VLANs it leaves are flushed. */
export function vlanSet(d: DaemonCore, bridgeName: unknown, portName: unknown, opts: Record<string, unknown>): VlanShow {
  const br = d.bridge(bridgeName);
  const mp = d.port(br, portName);
  const spec = vlanParams(opts);
  if (spec === null) throw new ControlError('invalid_params', 'give access, trunk (with optional native) or default');
  const flushed = br.bridge.setPortVlan(mp.port, spec);
  br.locks.reinstall(mp.port, d.now());
  d.log.info({ bridge: br.cfg.name, port: mp.name, vlan: spec, flushed }, 'port VLAN changed');
  return { port: mp.name, ...mp.port.vlan.describe() };
}
