// Control operations on QoS (`qos show|set|clear`, src/daemon/qos.ts, src/bridge/qos.ts): rate limits and storm
// control of tap, attach and vxlan ports (not the uplink or a host port), and the per-port reads and writes of the
// runtime journal and reload.

import { NO_QOS, type QosShow, type QosSpec } from '../bridge/qos.js';
import { ControlError } from '../control/errors.js';
import type { PortHandle } from './ports.js';
import { qosSetSpec, QOS_SET_PARAMS } from './qos.js';
import type { BridgeRuntime, DaemonCore } from './runtime.js';

/** `qos show`: rate limits, storm control and their counters of every port (not the uplink or bond). */
export function qosShow(d: DaemonCore, bridgeName: unknown): QosShow[] {
  const br = d.bridge(bridgeName);
  return [...br.ports.values()].map((mp) => br.qos.show(mp.port));
}

/** `qos set`: changes what the parameters name (src/daemon/qos.ts qosSetSpec); buckets start full. */
export function qosSet(d: DaemonCore, bridgeName: unknown, portName: unknown, p: Record<string, unknown>): QosShow {
  const br = d.bridge(bridgeName);
  const mp = qosPort(d, br, portName);
  if (!QOS_SET_PARAMS.some((k) => p[k] !== undefined && p[k] !== null)) throw new ControlError('invalid_params', `give at least one of ${QOS_SET_PARAMS.join(', ')}`);
  const r = qosSetSpec(br.qos.spec(mp.port), p);
  if ('problems' in r) throw new ControlError('invalid_params', r.problems.map(([k, m]) => `${k}: ${m}`).join('; '));
  br.qos.apply(mp.port, r.spec);
  d.log.info({ bridge: br.cfg.name, port: mp.name, qos: br.qos.show(mp.port) }, 'port QoS set');
  return br.qos.show(mp.port);
}

/** `qos clear`: no rate limit and no storm control on the port (its counters stay). */
export function qosClear(d: DaemonCore, bridgeName: unknown, portName: unknown): QosShow {
  const br = d.bridge(bridgeName);
  const mp = qosPort(d, br, portName);
  br.qos.apply(mp.port, NO_QOS);
  d.log.info({ bridge: br.cfg.name, port: mp.name }, 'port QoS cleared');
  return br.qos.show(mp.port);
}

/** The port's QoS in force (the runtime journal's recorder reads it before `qos set` is applied), null: no port. */
export function portQos(d: DaemonCore, bridgeName: string, portName: string): QosSpec | null {
  const br = d.bridges.get(bridgeName);
  const mp = br?.ports.get(portName);
  return br === undefined || mp === undefined ? null : br.qos.spec(mp.port);
}

/** Reload: the port's QoS from the new config (src/state/reload.ts). */
export function setPortQosByName(d: DaemonCore, bridgeName: string, portName: string, spec: QosSpec): void {
  const br = d.bridge(bridgeName);
  br.qos.apply(d.port(br, portName).port, spec);
}

function qosPort(d: DaemonCore, br: BridgeRuntime, portName: unknown): PortHandle {
  const mp = d.port(br, portName);
  if (mp === br.uplink || mp.kind === 'host') throw new ControlError('invalid_params', `${mp.name} is the ${mp === br.uplink ? 'uplink' : 'host port'} of ${br.cfg.name}; QoS applies to tap, attach and vxlan ports`);
  return mp;
}
