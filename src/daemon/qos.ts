// Per-port QoS of one bridge, control-plane side: which rate limits and storm thresholds each port has, and the
// one timer per bridge that reads held ports again (the engine's QosHook, src/bridge/qos.ts).
//
// Holds: after a batch that emptied a port's ingress bucket (or when storm control shut the port down), the engine
// asks hold(port, untilUs): the port's I/O stops polling (PacketPort.holdRx), so what the guest sends waits in the
// kernel's queue (a TAP's txqueuelen, a socket's buffer) and past it is dropped by the kernel (`kernel_drops`),
// costing the daemon nothing. One timer per bridge, set for the earliest hold (at least 1 ms ahead: libuv timers
// count milliseconds), asks the engine whether each due port may be read again (Bridge.qosWake). Bounded: at most
// one hold per port.
// `qos set` / `qos clear` are recorded in the runtime journal (bottom of this file) and replayed at start.

import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import {
  defaultBurstKb, describeNoQos, DEFAULT_SHUTDOWN_S, MAX_BURST_KB, MAX_KBPS, MAX_PPS, MAX_SHUTDOWN_S, NO_QOS, type QosHook, type QosShow,
  type QosSpec, QOS_DROP_NAMES, QOS_STORM_BROADCAST, type RateSpec,
} from '../bridge/qos.js';
import type { Logger } from '../log.js';
import { portTarget, registerRecordedMethod } from '../state/journal.js';

export class BridgeQos implements QosHook {
  private readonly specs = new Map<BridgePort, QosSpec>();
  /** port id -> hold until (us, the engine's QoS clock) */
  private readonly held = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private timerAtUs = Infinity;

  constructor(
    private readonly bridge: Bridge,
    private readonly log: Logger,
  ) {
    bridge.qosHook = this;
  }

  /** Sets the port's QoS (new buckets, full); a held port is read again. */
  apply(port: BridgePort, spec: QosSpec): void {
    this.bridge.setPortQos(port, spec);
    if (port.qos === null) this.specs.delete(port);
    else this.specs.set(port, spec);
    this.release(port);
  }

  /** The port is gone. */
  forget(port: BridgePort): void {
    this.specs.delete(port);
    this.held.delete(port.id);
  }

  spec(port: BridgePort): QosSpec {
    return this.specs.get(port) ?? NO_QOS;
  }

  show(port: BridgePort): QosShow {
    const q = port.qos;
    return q === null ? describeNoQos(port.name, port.qosDrops, port.stormShutdowns) : q.describe(port.name, port.qosDrops, port.stormShutdowns, this.bridge.clockUs());
  }

  /** QosHook: stop reading the port until untilUs. */
  hold(portId: number, untilUs: number): void {
    const port = this.bridge.ports[portId];
    if (port === null || port.io === null) return;
    port.io.holdRx?.(true);
    this.held.set(portId, untilUs);
    this.schedule(untilUs);
  }

  /** QosHook: storm control shut the port down (one line per shutdown; the port counts them). */
  shutdown(portId: number, reason: number, untilUs: number): void {
    const port = this.bridge.ports[portId];
    if (port === null) return;
    const seconds = Math.round((untilUs - this.bridge.clockUs()) / 1e6);
    this.log.warn({ bridge: this.bridge.name, port: port.name, storm: QOS_DROP_NAMES[reason - 1] ?? QOS_DROP_NAMES[QOS_STORM_BROADCAST - 1], seconds, shutdowns: port.stormShutdowns },
      'storm control: port shut down');
  }

  /** Stops the timer (the bridge is going away). */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAtUs = Infinity;
    this.bridge.qosHook = null;
  }

  private release(port: BridgePort): void {
    if (!this.held.delete(port.id)) return;
    if (port.qos !== null) port.qos.heldUntilUs = 0;
    port.io?.holdRx?.(false);
  }

  private schedule(untilUs: number): void {
    if (this.timer !== null && untilUs >= this.timerAtUs) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const delayMs = Math.max(1, Math.ceil((untilUs - this.bridge.clockUs()) / 1000));
    this.timerAtUs = untilUs;
    this.timer = setTimeout(this.onTimer, delayMs);
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    try {
      this.wake();
    } catch (err) {
      // a bug must not leave ports held for ever: read them all again
      this.log.error({ err, bridge: this.bridge.name }, 'QoS timer failed; every held port is read again');
      for (const id of this.held.keys()) this.bridge.ports[id]?.io?.holdRx?.(false);
      this.held.clear();
    }
  };

  private wake(): void {
    this.timer = null;
    this.timerAtUs = Infinity;
    const now = this.bridge.clockUs();
    let next = Infinity;
    for (const [id, until] of this.held) {
      const port = this.bridge.ports[id];
      if (port === null) {
        this.held.delete(id);
        continue;
      }
      if (until > now) {
        next = Math.min(next, until);
        continue;
      }
      const again = this.bridge.qosWake(port);
      if (again === 0) {
        this.held.delete(id);
        port.io?.holdRx?.(false);
      } else {
        this.held.set(id, again);
        next = Math.min(next, again);
      }
    }
    if (next !== Infinity) this.schedule(next);
  }
}

// Runtime state (src/state/journal.ts): `qos set` and `qos clear` are kept across restarts, one record per port (the
// later replaces the earlier); delif drops them with the port's other records (same target).
const qosKey = (bridge: string, port: string): string => `qos:${bridge}/${port}`;

registerRecordedMethod('qos.set', (p, _r, j, ctx) => {
  const bridge = String(p.bridge);
  const port = String(p.port);
  // written ahead: the port's whole QoS as it will be once the request is applied, so a replay sets exactly that (a
  // request that fails is taken out of the state again)
  const cur = ctx.portQos(bridge, port);
  const r = cur === null ? null : qosSetSpec(cur, p);
  if (r === null || 'problems' in r) return;
  j.put({ method: 'qos.set', params: { bridge, port, ...qosSpecParams(r.spec) }, key: qosKey(bridge, port), target: portTarget(bridge, port) });
});

registerRecordedMethod('qos.clear', (p, _r, j) => {
  const bridge = String(p.bridge);
  const port = String(p.port);
  j.put({ method: 'qos.clear', params: { bridge, port }, key: qosKey(bridge, port), target: portTarget(bridge, port) });
});

/** `qos set` parameters that give a port exactly this QoS (every key, 0 = none). */
export function qosSpecParams(q: QosSpec): Record<string, unknown> {
  const st = q.storm;
  return {
    kbps: q.rateLimit?.kbps ?? 0,
    burst_kb: q.rateLimit?.burstKb ?? 0,
    egress_kbps: q.egressRateLimit?.kbps ?? 0,
    egress_burst_kb: q.egressRateLimit?.burstKb ?? 0,
    broadcast_pps: st?.broadcastPps ?? 0,
    multicast_pps: st?.multicastPps ?? 0,
    unknown_unicast_pps: st?.unknownUnicastPps ?? 0,
    ...(st !== null ? { storm_action: st.action, shutdown_s: st.shutdownS } : {}),
  };
}

/** The `qos set` parameters (control protocol), each optional; 0 removes that limit or threshold. */
export const QOS_SET_PARAMS = [
  'kbps', 'burst_kb', 'egress_kbps', 'egress_burst_kb', 'broadcast_pps', 'multicast_pps', 'unknown_unicast_pps', 'storm_action', 'shutdown_s',
] as const;

/**
 * The port's QoS after `qos set`: `cur` with what the parameters change. kbps 0 removes the rate limit (burst_kb alone
 * changes the burst of the limit in force); a pps of 0 removes that class's threshold, and storm control goes when no
 * class has one. Returns the spec, or the problems (parameter, message).
 */
export function qosSetSpec(cur: QosSpec, p: Record<string, unknown>): { spec: QosSpec } | { problems: [string, string][] } {
  const problems: [string, string][] = [];
  const num = (k: string, max: number): number | undefined => {
    const v = p[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      problems.push([k, `must be an integer 0..${max}, got ${JSON.stringify(v)}`]);
      return undefined;
    }
    return v;
  };
  const rate = (r: RateSpec | null, kKey: string, bKey: string): RateSpec | null => {
    const kbps = num(kKey, MAX_KBPS);
    const burst = num(bKey, MAX_BURST_KB);
    if (kbps === 0) return null;
    if (kbps === undefined && r === null) {
      if (burst !== undefined) problems.push([bKey, `needs ${kKey} (the port has no such limit)`]);
      return null;
    }
    const k = kbps ?? r!.kbps;
    const b = burst === undefined || burst === 0 ? (kbps === undefined ? r!.burstKb : defaultBurstKb(k)) : burst;
    return { kbps: k, burstKb: b };
  };
  const rateLimit = rate(cur.rateLimit, 'kbps', 'burst_kb');
  const egressRateLimit = rate(cur.egressRateLimit, 'egress_kbps', 'egress_burst_kb');
  const st = cur.storm;
  const bc = num('broadcast_pps', MAX_PPS) ?? st?.broadcastPps ?? 0;
  const mc = num('multicast_pps', MAX_PPS) ?? st?.multicastPps ?? 0;
  const uu = num('unknown_unicast_pps', MAX_PPS) ?? st?.unknownUnicastPps ?? 0;
  let action = st?.action ?? 'drop';
  if (p.storm_action !== undefined && p.storm_action !== null) {
    if (p.storm_action !== 'drop' && p.storm_action !== 'shutdown') problems.push(['storm_action', `must be "drop" or "shutdown", got ${JSON.stringify(p.storm_action)}`]);
    else action = p.storm_action;
  }
  const shutdownS = num('shutdown_s', MAX_SHUTDOWN_S) || (st?.shutdownS ?? DEFAULT_SHUTDOWN_S);
  const storm = bc === 0 && mc === 0 && uu === 0 ? null : { broadcastPps: bc, multicastPps: mc, unknownUnicastPps: uu, action, shutdownS };
  if (problems.length > 0) return { problems };
  return { spec: { rateLimit, egressRateLimit, storm } };
}
