// Control operations on ports (`addif`, `delif`, like net/bridge br_ioctl.c's add_del_if): the request is checked
// (the name, the kind, no port or bond of that name anywhere, a netdev the daemon may take), then the port lifecycle
// of portlife.ts opens or removes the port. A new port kind accepted by addif is checked here and opened in
// portlife.ts.

import { interfaceNameProblem, vhostUserSpecOf } from '../config/config.js';
import { ControlError } from '../control/errors.js';
import { netdev } from '../io/native.js';
import { type ManagedPort, RefusedNetdevError, refusedNetdevProblem } from './ports.js';
import { createRuntimePort, removePort } from './portlife.js';
import { VhostUserPort } from './vhost-user.js';
import type { DaemonCore } from './runtime.js';
import type { ShowPort } from './view.js';
import { vlanParams } from './ops-vlan.js';

export function addif(d: DaemonCore, bridgeName: unknown, ifname: unknown, kind: unknown, vlanOpts: Record<string, unknown> = {}): ShowPort {
  const br = d.bridge(bridgeName);
  if (typeof ifname !== 'string') throw new ControlError('invalid_params', 'ifname must be a string');
  const problem = interfaceNameProblem(ifname);
  if (problem !== null) throw new ControlError('invalid_params', `ifname "${ifname}" ${problem}`);
  const k = kind === undefined || kind === null ? 'tap' : kind;
  if (k !== 'tap' && k !== 'attach' && k !== 'vhost-user') throw new ControlError('invalid_params', `kind must be "tap", "attach" or "vhost-user", got ${JSON.stringify(k)}`);
  const vhost = k === 'vhost-user' ? vhostUserSpecOf(vlanOpts.socket, vlanOpts.mode) : null;
  if (typeof vhost === 'string') throw new ControlError('invalid_params', vhost);
  for (const other of d.bridges.values()) {
    if (other.bond !== null && other.bond.name === ifname) {
      throw new ControlError('port_exists', `${ifname} is the bond of ${other.cfg.name}`, { bridge: other.cfg.name, port: ifname });
    }
  }
  const existing = d.byName.get(ifname);
  if (existing !== undefined) {
    throw new ControlError('port_exists', `${ifname} is already a port of ${existing.bridge.name}`, { bridge: existing.bridge.name, port: ifname });
  }
  const vlan = vlanParams(vlanOpts) ?? { mode: 'default' };
  // a vhost-user port has no netdev
  const info = k === 'vhost-user' ? null : netdev.info(ifname);
  if (info !== null) {
    const refused = refusedNetdevProblem(ifname, info.flags, info.ifindex, (ifindex) => d.portOfIfindex(ifindex));
    if (refused !== null) throw new ControlError('invalid_params', refused, { bridge: br.cfg.name, port: ifname });
  }
  let mp: ManagedPort;
  try {
    mp = createRuntimePort(d, br, ifname, k, vlan, vhost);
  } catch (err) {
    if (err instanceof ControlError) throw err;
    if (err instanceof RefusedNetdevError) throw new ControlError('invalid_params', err.message, { bridge: br.cfg.name, port: ifname });
    throw new ControlError('io_error', `cannot add ${ifname}: ${(err as Error).message}`, { errno: (err as { errno?: number }).errno });
  }
  d.log.info({ bridge: br.cfg.name, port: ifname, kind: k }, 'port added');
  return { name: mp.name, kind: k, state: mp.port.state, ifindex: mp.port.ifindex, ...(mp instanceof VhostUserPort ? { vhost_user: mp.show() } : {}) };
}

export function delif(d: DaemonCore, bridgeName: unknown, ifname: unknown): void {
  const br = d.bridge(bridgeName);
  const mp = d.port(br, ifname);
  if (mp === br.uplink) throw new ControlError('invalid_params', `${mp.name} is the uplink of ${br.cfg.name}, not a port`);
  removePort(d, br.cfg.name, mp.name, false);
  d.log.info({ bridge: br.cfg.name, port: mp.name }, 'port removed');
}
