// The daemon's shared state: one BridgeRuntime per bridge (its engine, port table, uplink or bond, locks, QoS and
// mirrors) and the DaemonCore every role of the daemon works on (the bridges, the daemon-wide port index by
// interface name, the loggers, the clock, the callback guard and the listeners of src/handover/).
//
// The roles (port lifecycle in portlife.ts, link monitoring in linkmon.ts, reload primitives in reconfig.ts, the
// control operations in ops-*.ts, views in view.ts, the FDB snapshot in fdb-snapshot.ts, the data-plane workers in
// workers.ts) are functions or objects of a DaemonCore; daemon.ts composes them.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { Bridge } from '../bridge/bridge.js';
import { formatMac } from '../frame/mac.js';
import { type BridgeConfig, type DaemonConfig, MAX_PORTS_PER_BRIDGE, type PortDefaults } from '../config/config.js';
import { ControlError } from '../control/errors.js';
import type { ManagedPort, PortHandle } from './ports.js';
import type { Bond, BondRuntimeState } from './bond.js';
import type { LockSpec } from '../bridge/lock.js';
import { PortLocks } from './locking.js';
import { BridgeQos } from './qos.js';
import type { QosSpec } from '../bridge/qos.js';
import { BridgeMirrors } from './mirrors.js';
import type { CallbackGuard } from './guard.js';
import { multicastFor } from '../mdb/config.js';
import { RxSlab } from '../io/native.js';

/** Flags and security of a new port (config port, or `port_defaults` for one added at runtime). */
export interface PortSettings {
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  fdbMax: number;
  lock: LockSpec;
  raGuard: boolean;
  dhcpGuard: boolean;
  allowStacked: boolean;
  qos: QosSpec;
}

export function settingsFromDefaults(d: PortDefaults): PortSettings {
  return { learning: d.learning, flood: d.flood, isolated: d.isolated, fdbMax: d.fdbMax, lock: d.lock, raGuard: d.raGuard, dhcpGuard: d.dhcpGuard, allowStacked: false, qos: d.qos };
}

export class BridgeRuntime {
  /** The bridge's config (replaced by a reload). */
  cfg: BridgeConfig;
  readonly bridge: Bridge;
  readonly locks: PortLocks;
  readonly qos: BridgeQos;
  readonly mirrors: BridgeMirrors;
  readonly ports = new Map<string, ManagedPort>();
  uplink: PortHandle | null = null;
  bond: Bond | null = null;

  constructor(cfg: BridgeConfig, log: Logger, sharedFdb: boolean) {
    this.cfg = cfg;
    const names = (id: number): string => this.bridge.ports[id]?.name ?? `#${id}`;
    const onFlapSuppressed = (count: number): void => {
      log.warn({ bridge: cfg.name, suppressed: count }, `${count} more flapping MACs suppressed`);
    };
    this.bridge = new Bridge({
      name: cfg.name,
      maxPorts: MAX_PORTS_PER_BRIDGE,
      fdbMax: cfg.fdbMax,
      ageingTimeMs: cfg.ageingTimeS * 1000,
      onFlap: (vid, mac, from, to, moves) => {
        log.warn({ bridge: cfg.name, mac: formatMac(mac), vlan: vid, ports: [names(from), names(to)], moves_per_s: moves },
          'MAC address keeps moving between two ports: a forwarding loop?');
      },
      onFlapSuppressed,
      sharedFdb,
    });
    this.locks = new PortLocks(this.bridge);
    this.qos = new BridgeQos(this.bridge, log);
    this.mirrors = new BridgeMirrors(this.bridge, () => this.uplink?.name ?? null);
    this.bridge.setMulticast(multicastFor(cfg.name, cfg.multicast, MAX_PORTS_PER_BRIDGE, () => RxSlab.get().bytes));
  }

  all(): PortHandle[] {
    const list: PortHandle[] = [...this.ports.values()];
    if (this.uplink !== null) list.unshift(this.uplink);
    return list;
  }

  find(name: string): PortHandle | undefined {
    if (this.uplink !== null && this.uplink.name === name) return this.uplink;
    return this.ports.get(name);
  }
}

/** Who keeps TAP fds across restarts (src/handover/fdstore.ts). */
export interface TapFdListener {
  opened(bridge: string, port: string, fd: number): void;
  removed(bridge: string, port: string): void;
}

/** Who records where persistent TAPs moved (src/handover/moved.ts). */
export interface TapMoveListener {
  moved(bridge: string, port: string, nsid: number, ifindex: number): void;
  removed(bridge: string, port: string): void;
}

/** The state the daemon's roles share; daemon.ts owns one. */
export class DaemonCore {
  /** The config in force (replaced by a reload, src/state/reload.ts). */
  config: DaemonConfig;
  readonly log: Logger;
  readonly portLog: Logger;
  readonly linkLog: Logger;
  /** The logger each bridge's FDB warnings go to. */
  readonly fdbLog: Logger;
  readonly bridges = new Map<string, BridgeRuntime>();
  /** Every port of every bridge by interface name (names are unique daemon-wide). */
  readonly byName = new Map<string, ManagedPort>();
  /** Handover in progress: ports do not read and link events wait (resumeIo re-dumps). */
  ioPaused = false;
  /** Uplink netdevs whose host stack is fenced off for a `mac: uplink` host port. */
  readonly fenced: string[] = [];
  /** Told about every TAP fd the daemon opens and every TAP port removed (the systemd fd store). */
  tapFds: TapFdListener | null = null;
  /** Told where persistent TAPs move (src/handover/moved.ts). */
  tapMoves: TapMoveListener | null = null;
  /** Bond state handed over by the previous daemon (--takeover), used once by createBond() (portlife.ts). */
  bondRestore = new Map<string, BondRuntimeState>();
  /** Exception boundary of every callback the daemon registers (see guard.ts); set by the Daemon's constructor. */
  wrap!: CallbackGuard['wrap'];

  constructor(config: DaemonConfig, log: Logger) {
    this.config = config;
    this.log = log.child({ subsystem: 'daemon' });
    this.portLog = log.child({ subsystem: 'port' });
    this.linkLog = this.log.child({ subsystem: 'link' });
    this.fdbLog = log.child({ subsystem: 'fdb' });
  }

  now(): number {
    return performance.now();
  }

  /** A new bridge runtime of this daemon (its FDB shared with the data-plane workers when data_workers > 1). */
  newBridge(cfg: BridgeConfig): BridgeRuntime {
    return new BridgeRuntime(cfg, this.fdbLog, this.config.dataWorkers > 1);
  }

  /** The bridge a control request names; no_such_bridge otherwise. */
  bridge(name: unknown): BridgeRuntime {
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'bridge must be a string');
    const br = this.bridges.get(name);
    if (br === undefined) throw new ControlError('no_such_bridge', `no such bridge: ${name}`, { bridge: name });
    return br;
  }

  /** The port (or uplink) of `br` a control request names; no_such_port otherwise. */
  port(br: BridgeRuntime, name: unknown): PortHandle {
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'port must be a string');
    const mp = br.find(name);
    if (mp === undefined) throw new ControlError('no_such_port', `no such port on ${br.cfg.name}: ${name}`, { bridge: br.cfg.name, port: name });
    return mp;
  }

  /** The name of the port (or bond member) whose open netdev has this ifindex, or null. */
  portOfIfindex(ifindex: number): string | null {
    if (ifindex <= 0) return null;
    for (const mp of this.byName.values()) {
      if (mp.io !== null && mp.port.ifindex === ifindex) return mp.name;
    }
    return null;
  }
}
