// Control operations on the FDB (`fdb add|del|flush`, `setageing`; `showmacs` is view.ts): the MAC and VLAN
// parameters are checked here (a unicast MAC; a VLAN the port is a member of, by default its untagged one), then the
// bridge's FDB is changed between forwarding batches.

import { AddResult } from '../fdb/fdb.js';
import { formatMac, macIsMulticast, parseMac } from '../frame/mac.js';
import { ControlError } from '../control/errors.js';
import type { PortHandle } from './ports.js';
import type { DaemonCore } from './runtime.js';

function macParam(mac: unknown): number {
  const m = typeof mac === 'string' ? parseMac(mac) : null;
  if (m === null) throw new ControlError('invalid_params', `mac must be a MAC address like 00:16:3e:00:00:01, got ${JSON.stringify(mac)}`);
  if (m === 0 || macIsMulticast(m)) throw new ControlError('invalid_params', `mac ${String(mac)} is multicast or zero; FDB entries are unicast`);
  return m;
}

/** `--vlan`, defaulting to the port's access or native VLAN (0 on a default port); `mdb add|del` too (ops-mdb.ts). */
export function vlanParam(vlan: unknown, mp: PortHandle): number {
  if (vlan === undefined || vlan === null) {
    const vid = mp.port.vlan.untaggedVid;
    if (!mp.port.vlan.isMember(vid)) throw new ControlError('invalid_params', `${mp.name} has no native VLAN: give --vlan`);
    return vid;
  }
  if (typeof vlan !== 'number' || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
    throw new ControlError('invalid_params', `vlan must be an integer 0..4094, got ${JSON.stringify(vlan)}`);
  }
  if (!mp.port.vlan.isMember(vlan)) throw new ControlError('invalid_params', `${mp.name} is not a member of VLAN ${vlan}`);
  return vlan;
}

export function fdbAdd(d: DaemonCore, bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
  const br = d.bridge(bridgeName);
  const m = macParam(mac);
  const mp = d.port(br, portName);
  const vid = vlanParam(vlan, mp);
  if (br.bridge.fdb.addStatic(vid, m, mp.port.id, d.now()) === AddResult.Full) {
    throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries (fdb_max ${br.cfg.fdbMax})`);
  }
}

export function fdbDel(d: DaemonCore, bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
  const br = d.bridge(bridgeName);
  const m = macParam(mac);
  let vid = 0;
  if (portName !== undefined && portName !== null) {
    const mp = d.port(br, portName);
    vid = vlanParam(vlan, mp);
    if (br.bridge.fdb.lookup(vid, m) !== mp.port.id) {
      throw new ControlError('not_found', `no FDB entry for ${formatMac(m)} vlan ${vid} on ${mp.name}`);
    }
  } else if (vlan !== undefined && vlan !== null) {
    if (typeof vlan !== 'number' || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
      throw new ControlError('invalid_params', `vlan must be an integer 0..4094, got ${JSON.stringify(vlan)}`);
    }
    vid = vlan;
  }
  if (!br.bridge.fdb.delete(vid, m)) throw new ControlError('not_found', `no FDB entry for ${formatMac(m)} vlan ${vid}`);
}

export function fdbFlush(d: DaemonCore, bridgeName: unknown, portName: unknown): number {
  const br = d.bridge(bridgeName);
  if (portName === undefined || portName === null) return br.bridge.fdb.flushDynamic();
  return br.bridge.fdb.flushDynamic(d.port(br, portName).port.id);
}

export function setAgeing(d: DaemonCore, bridgeName: unknown, seconds: unknown): void {
  const br = d.bridge(bridgeName);
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0 || seconds > 1_000_000 || (seconds > 0 && seconds < 10)) {
    throw new ControlError('invalid_params', `seconds must be 0 (never age) or an integer 10..1000000, got ${JSON.stringify(seconds)}`);
  }
  br.bridge.fdb.ageingTimeMs = seconds * 1000;
  br.cfg.ageingTimeS = seconds;
}
