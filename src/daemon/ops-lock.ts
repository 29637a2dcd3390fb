// Control operations on port security (`lock show|set|clear`, src/daemon/locking.ts, src/bridge/lock.ts): a port's
// locked MAC, addresses and EtherTypes (not the uplink's); the guards stay as they are.

import { type LockShow, lockSpecFrom, UNLOCKED } from '../bridge/lock.js';
import { formatMac } from '../frame/mac.js';
import { ControlError } from '../control/errors.js';
import type { PortHandle } from './ports.js';
import type { BridgeRuntime, DaemonCore } from './runtime.js';

/** `lock show`: lock and guards of every port (not the uplink: it cannot be locked). */
export function lockShow(d: DaemonCore, bridgeName: unknown): LockShow[] {
  const br = d.bridge(bridgeName);
  return [...br.ports.values()].map((mp) => br.locks.show(mp.port));
}

function lockablePort(d: DaemonCore, br: BridgeRuntime, portName: unknown): PortHandle {
  const mp = d.port(br, portName);
  if (mp === br.uplink) throw new ControlError('invalid_params', `${mp.name} is the uplink of ${br.cfg.name}; only tap and attach ports can be locked`);
  return mp;
}

/** `lock set`: {mac, ipv4, ipv6, allow_ethertypes} or {disabled: true}; the guards stay as they are. */
export function lockSet(d: DaemonCore, bridgeName: unknown, portName: unknown, p: Record<string, unknown>): LockShow {
  const br = d.bridge(bridgeName);
  const mp = lockablePort(d, br, portName);
  let value: unknown;
  if (p.disabled === true) {
    if (p.mac !== undefined || p.ipv4 !== undefined || p.ipv6 !== undefined || p.allow_ethertypes !== undefined) {
      throw new ControlError('invalid_params', 'disabled excludes mac, ipv4, ipv6 and allow_ethertypes');
    }
    value = 'disabled';
  } else {
    if (p.mac === undefined) throw new ControlError('invalid_params', 'give mac (with optional ipv4, ipv6, allow_ethertypes) or disabled');
    value = { mac: p.mac, ipv4: p.ipv4 ?? undefined, ipv6: p.ipv6 ?? undefined, allow_ethertypes: p.allow_ethertypes ?? undefined };
  }
  const r = lockSpecFrom(value);
  if ('problems' in r) throw new ControlError('invalid_params', r.problems.map(([k, m]) => `${k}: ${m}`).join('; '));
  if (r.spec.mode === 'locked') {
    const mac = r.spec.mac;
    // a locked MAC belongs to one port: its static entry cannot point at two
    const other = br.locks.portLockedTo(mac);
    if (other !== null && other !== mp.port) throw new ControlError('invalid_params', `mac ${formatMac(mac)} is already the locked MAC of ${other.name}`);
  }
  if (!br.locks.apply(mp.port, r.spec, br.locks.guards(mp.port), d.now())) {
    throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries; the lock is set but its MAC is not a static entry`);
  }
  d.log.info({ bridge: br.cfg.name, port: mp.name, lock: r.spec.mode }, 'port lock set');
  return br.locks.show(mp.port);
}

/** `lock clear`: the port is unlocked (its guards stay). */
export function lockClear(d: DaemonCore, bridgeName: unknown, portName: unknown): LockShow {
  const br = d.bridge(bridgeName);
  const mp = lockablePort(d, br, portName);
  br.locks.apply(mp.port, UNLOCKED, br.locks.guards(mp.port), d.now());
  d.log.info({ bridge: br.cfg.name, port: mp.name }, 'port lock cleared');
  return br.locks.show(mp.port);
}
