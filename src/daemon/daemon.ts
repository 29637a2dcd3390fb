// The daemon: bridges built from the config, their ports, link monitoring, the coarse clock and
// the ageing sweep, and the operations the control server exposes (one method per CLI verb).
//
// Control operations run in their own event-loop turns, never inside a forwarding batch, so they
// may change ports and the FDB directly.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortKind } from '../bridge/port.js';
import { AddResult, macHi, macLo } from '../fdb/fdb.js';
import { formatMac, macIsMulticast, parseMac } from '../frame/mac.js';
import { busyPoll, directPoll, LinkMonitor, netdev } from '../io/native.js';
import {
  type BridgeConfig, BUILTIN_PORT_DEFAULTS, type DaemonConfig, interfaceNameProblem, MAX_PORTS_PER_BRIDGE, type PortConfig,
  type PortDefaults, type StaticFdbConfig, type UplinkConfig,
} from '../config/config.js';
import type { FdbSnapshotEntry } from '../state/document.js';
import { ControlError } from '../control/errors.js';
import { ManagedPort, RefusedNetdevError, refusedNetdevProblem, type PortHandle } from './ports.js';
import { restoreHostStack } from './hoststack.js';
import { Bond, type BondShow } from './bond.js';
import { vlanSpecFrom, type VlanSpec } from '../bridge/vlan.js';
import { VxlanPort, type VxlanShow } from './vxlan.js';
import { parseVxlanPort, type VxlanPortConfig } from '../config/config.js';
import { type LockShow, type LockSpec, lockSpecFrom, UNLOCKED } from '../bridge/lock.js';
import { PortLocks } from './locking.js';
import { BridgeQos, qosSetSpec, QOS_SET_PARAMS } from './qos.js';
import { NO_QOS, type QosShow, type QosSpec } from '../bridge/qos.js';
import type { PacketPort } from '../io/native.js';
import { hostPortMac } from '../hostport/mac.js';
import { fenceHostStack, unfenceHostStack } from '../hostport/fence.js';
import { BridgeMirrors, mirrorSpecFromParams } from './mirrors.js';
import { Mirror, type MirrorShow } from '../bridge/mirror.js';
import { Captures, captureOptionsFrom } from '../observe/capture.js';
import { traceFrame, traceFrameFrom, type TraceResult } from '../observe/trace.js';
import type { ControlClient } from '../control/server.js';
import { CallbackGuard } from './guard.js';
import { addif, delif } from './ops-ports.js';
import { vlanSet } from './ops-vlan.js';
import { vxlanAdd, vxlanConfigs, vxlanDel, vxlanPort, vxlanRemote, vxlanShow } from './ops-vxlan.js';
import { fdbSnapshot, fdbSnapshotSlice, restoreFdb } from './fdb-snapshot.js';
import { bridgeStats, type BridgeStats, type MacEntry, showBridges, type ShowBridge, showMacs, type ShowPort, portVlans, type VlanShow } from './view.js';
import { Workers } from './workers.js';
import { LinkWatch, netlinkRcvbuf } from './linkmon.js';
import { closeBridge, createConfigPort, createRuntimePort, createVxlanPort, forgetUplink, openUplink, removePort, startBridge } from './portlife.js';
import { type BridgeRuntime, DaemonCore, type PortSettings, settingsFromDefaults, type TapFdListener, type TapMoveListener } from './runtime.js';
import { DataPlane, DataPlaneSyncError, DataPlaneTimeout, type DataPlaneShow } from '../dataplane/dataplane.js';

/** Coarse clock period: the FDB's notion of "now" and the ageing sweep run at this pace. */
export const TICK_MS = 100;
/** FDB pool slots visited per tick by the ageing sweep. */
export const SWEEP_BUDGET = 2048;
/** Kernel socket drop counters are read this often. */
const SOCKET_STATS_EVERY_TICKS = 10;
export { NETLINK_RCVBUF_ENV } from './linkmon.js';

export type { BridgeStats, MacEntry, PortStats, ShowBridge, ShowPort, VlanShow } from './view.js';
export type { TapFdListener, TapMoveListener } from './runtime.js';

export class Daemon {
  /** The state every role shares (runtime.ts). */
  private readonly core: DaemonCore;
  /** The config in force (replaced by a reload, src/state/reload.ts). */
  get config(): DaemonConfig {
    return this.core.config;
  }

  set config(config: DaemonConfig) {
    this.core.config = config;
  }

  /** Running `capture` streams (src/observe/capture.ts). */
  readonly captures = new Captures();
  private ticker: NodeJS.Timeout | null = null;
  private ticks = 0;
  /** data_workers > 1: the worker threads (workers.ts, src/dataplane/) */
  private readonly workers: Workers;
  /** Exception boundary of every callback the daemon registers (see guard.ts). */
  readonly guard: CallbackGuard;
  /** Link monitoring: rtnetlink events, dumps and the mark-and-sweep of ports (linkmon.ts). */
  private readonly links: LinkWatch;
  /** rtnetlink overruns and refused dumps so far, ports swept because a dump no longer listed them */
  readonly linkCounters: LinkWatch['counters'];

  /**
   * onFatal: an invariant breach after an exception (the caller removes the control socket and exits); by default the
   * ports are closed and the process exits 70.
   */
  constructor(config: DaemonConfig, log: Logger, onFatal?: (err: unknown) => void) {
    const core = new DaemonCore(config, log);
    this.core = core;
    for (const bc of config.bridges) core.bridges.set(bc.name, core.newBridge(bc));
    this.guard = new CallbackGuard(core.log, () => this.checkInvariants(), (err) => {
      if (onFatal !== undefined) {
        onFatal(err);
        return;
      }
      this.stop();
      process.exit(70);
    });
    core.wrap = this.guard.wrap.bind(this.guard);
    this.links = new LinkWatch(core);
    this.workers = new Workers(core);
    this.linkCounters = this.links.counters;
  }

  /** null when every bridge's FDB bookkeeping is consistent, else the first problem (after a caught exception). */
  checkInvariants(): string | null {
    for (const br of this.core.bridges.values()) {
      const p = br.bridge.fdb.checkInvariants();
      if (p !== null) return `bridge ${br.cfg.name}: FDB: ${p}`;
    }
    return null;
  }

  /** Set before start(): TAP fds opened from then on are reported to it. */
  setTapFdListener(listener: TapFdListener | null): void {
    this.core.tapFds = listener;
  }

  setTapMoveListener(listener: TapMoveListener | null): void {
    this.core.tapMoves = listener;
  }

  /** Opens every configured port; throws (start-up failure) when a TAP cannot be created. */
  start(): void {
    const rcvbuf = netlinkRcvbuf(this.core.linkLog);
    busyPoll.set(this.config.busyPollUs);
    directPoll.set(this.config.directPoll);
    this.links.open(rcvbuf);
    for (const br of this.core.bridges.values()) startBridge(this.core, br);
    this.links.requestDump();
    this.ticker = setInterval(this.core.wrap('tick', () => this.tick()), TICK_MS);
    this.ticker.unref();
    if (this.config.dataWorkers > 1) this.workers.start();
  }

  /**
   * After a control request or an event that may have changed ports: the data-plane workers get the new port
   * tables before the reply goes out, or the request fails with data_plane_timeout (no-op with one thread).
   */
  syncDataPlane(): void {
    this.workers.sync(false);
  }

  /** data_workers.show; syncWorkers false (metrics): the counters as last folded, no round trip */
  dataWorkersShow(syncWorkers = true): DataPlaneShow {
    return this.workers.show(syncWorkers);
  }

  private tick(): void {
    const now = this.core.now();
    this.ticks++;
    const readDrops = this.ticks % SOCKET_STATS_EVERY_TICKS === 0;
    for (const br of this.core.bridges.values()) {
      br.bridge.tick(now, SWEEP_BUDGET);
      if (readDrops) for (const mp of br.all()) mp.readSocketDrops();
    }
    // the clock, learning, and link events, reloads, re-opened ports and ended captures reach the workers here at the latest
    this.workers.tick(now);
  }

  /**
   * Closes every port (TAPs the daemon created vanish unless persist) and the link monitor. keepShared (a takeover
   * that failed while the old daemon holds the same netdevs): vxlan netdevs stay and fenced uplinks stay fenced.
   */
  stop(opts: { keepShared?: boolean } = {}): void {
    // the workers close their fds first (synchronously), then every port is the main thread's again
    this.workers.stop();
    this.stopTimers();
    for (const br of this.core.bridges.values()) {
      for (const mp of br.all()) {
        mp.close('absent');
        if (mp instanceof VxlanPort && opts.keepShared !== true) mp.removeNetdev();
      }
    }
    if (opts.keepShared === true) this.core.fenced.length = 0;
    for (const n of this.core.fenced.splice(0)) unfenceHostStack(n, this.core.log);
    this.links.close();
  }

  private stopTimers(): void {
    this.captures.endAll();
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.links.stopTimers();
  }

  /**
   * After a handover (src/handover/serve.ts, committed): the workers stop (their fds are dups; nothing the new daemon
   * holds is closed), timers and the link monitor end. Ports stay open and paused, no netdev is deleted or unfenced:
   * the process exits next and every fd goes with it.
   */
  async releaseAfterHandover(): Promise<void> {
    this.core.ioPaused = true;
    const dp = this.workers.detach();
    this.stopTimers();
    this.links.close();
    if (dp !== null) await dp.stop();
  }

  // ---- handover (src/handover/) ---------------------------------------------------------------

  /** Every open port fd (ports, uplinks, bond members) with the netdev name it belongs to. */
  portIos(): { name: string; io: PacketPort; ifindex: number }[] {
    const out: { name: string; io: PacketPort; ifindex: number }[] = [];
    for (const mp of this.core.byName.values()) {
      if (mp.io !== null && !mp.io.isClosed) out.push({ name: mp.name, io: mp.io, ifindex: mp.port.ifindex });
    }
    return out;
  }

  /** Stops reading every port: frames queue in the TAPs and sockets for whoever reads them next. */
  pauseIo(): void {
    this.core.ioPaused = true;
    // the workers stop reading first (every port goes back to the main thread, which does not read either; a late
    // worker keeps reading its ports until it acknowledges: dataPlane.lateWorkers())
    this.workers.syncBestEffort();
    for (const mp of this.core.byName.values()) mp.pauseIo();
  }

  /** Reads again after a handover that did not happen; link events missed meanwhile are re-dumped. */
  resumeIo(): void {
    this.core.ioPaused = false;
    // not the ports a late data worker may still read (they come back at a sync after it acknowledged)
    for (const mp of this.core.byName.values()) if (mp.io === null || this.workers.mainMayRead(mp.io)) mp.resumeIo();
    this.workers.syncBestEffort();
    this.links.requestDump();
  }

  // ---- control operations -------------------------------------------------------------------

  show(): ShowBridge[] {
    return showBridges(this.core);
  }

  showmacs(bridgeName: unknown): MacEntry[] {
    return showMacs(this.core, this.core.bridge(bridgeName));
  }

  addif(bridgeName: unknown, ifname: unknown, kind: unknown, vlanOpts: Record<string, unknown> = {}): ShowPort {
    return addif(this.core, bridgeName, ifname, kind, vlanOpts);
  }

  delif(bridgeName: unknown, ifname: unknown): void {
    delif(this.core, bridgeName, ifname);
  }

  // ---- vxlan (src/daemon/vxlan.ts) -----------------------------------------------------------

  /** The vxlan entries in force (config plus runtime changes), for save-config. */
  vxlanConfigs(bridgeName: string): VxlanPortConfig[] {
    return vxlanConfigs(this.core, bridgeName);
  }

  vxlanShow(bridgeName: unknown): VxlanShow[] {
    return vxlanShow(this.core, bridgeName);
  }

  /** `vxlan add`: params are the config file's keys of a `vxlan` entry (name, vni, local, remotes, ...). */
  vxlanAdd(bridgeName: unknown, params: Record<string, unknown>): VxlanShow {
    return vxlanAdd(this.core, bridgeName, params);
  }

  vxlanDel(bridgeName: unknown, name: unknown): void {
    vxlanDel(this.core, bridgeName, name);
  }

  vxlanRemote(bridgeName: unknown, name: unknown, op: 'add' | 'del', ip: unknown): VxlanShow {
    return vxlanRemote(this.core, bridgeName, name, op, ip);
  }

  private macParam(mac: unknown): number {
    const m = typeof mac === 'string' ? parseMac(mac) : null;
    if (m === null) throw new ControlError('invalid_params', `mac must be a MAC address like 00:16:3e:00:00:01, got ${JSON.stringify(mac)}`);
    if (m === 0 || macIsMulticast(m)) throw new ControlError('invalid_params', `mac ${String(mac)} is multicast or zero; FDB entries are unicast`);
    return m;
  }

  /** `--vlan`, defaulting to the port's access or native VLAN (0 on a default port). */
  private vlanParam(vlan: unknown, mp: PortHandle): number {
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

  fdbAdd(bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
    const br = this.core.bridge(bridgeName);
    const m = this.macParam(mac);
    const mp = this.core.port(br, portName);
    const vid = this.vlanParam(vlan, mp);
    if (br.bridge.fdb.addStatic(vid, m, mp.port.id, this.core.now()) === AddResult.Full) {
      throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries (fdb_max ${br.cfg.fdbMax})`);
    }
  }

  fdbDel(bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
    const br = this.core.bridge(bridgeName);
    const m = this.macParam(mac);
    let vid = 0;
    if (portName !== undefined && portName !== null) {
      const mp = this.core.port(br, portName);
      vid = this.vlanParam(vlan, mp);
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

  fdbFlush(bridgeName: unknown, portName: unknown): number {
    const br = this.core.bridge(bridgeName);
    if (portName === undefined || portName === null) return br.bridge.fdb.flushDynamic();
    return br.bridge.fdb.flushDynamic(this.core.port(br, portName).port.id);
  }

  setAgeing(bridgeName: unknown, seconds: unknown): void {
    const br = this.core.bridge(bridgeName);
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0 || seconds > 1_000_000 || (seconds > 0 && seconds < 10)) {
      throw new ControlError('invalid_params', `seconds must be 0 (never age) or an integer 10..1000000, got ${JSON.stringify(seconds)}`);
    }
    br.bridge.fdb.ageingTimeMs = seconds * 1000;
    br.cfg.ageingTimeS = seconds;
  }

  vlanShow(bridgeName: unknown): VlanShow[] {
    return portVlans(this.core.bridge(bridgeName));
  }

  /** Replaces a port's VLAN rules; entries in VLANs it leaves are flushed. */
  vlanSet(bridgeName: unknown, portName: unknown, opts: Record<string, unknown>): VlanShow {
    return vlanSet(this.core, bridgeName, portName, opts);
  }

  /** `qos show`: rate limits, storm control and their counters of every port (not the uplink or bond). */
  qosShow(bridgeName: unknown): QosShow[] {
    const br = this.core.bridge(bridgeName);
    return [...br.ports.values()].map((mp) => br.qos.show(mp.port));
  }

  /** `qos set`: changes what the parameters name (src/daemon/qos.ts qosSetSpec); buckets start full. */
  qosSet(bridgeName: unknown, portName: unknown, p: Record<string, unknown>): QosShow {
    const br = this.core.bridge(bridgeName);
    const mp = this.qosPort(br, portName);
    if (!QOS_SET_PARAMS.some((k) => p[k] !== undefined && p[k] !== null)) throw new ControlError('invalid_params', `give at least one of ${QOS_SET_PARAMS.join(', ')}`);
    const r = qosSetSpec(br.qos.spec(mp.port), p);
    if ('problems' in r) throw new ControlError('invalid_params', r.problems.map(([k, m]) => `${k}: ${m}`).join('; '));
    br.qos.apply(mp.port, r.spec);
    this.core.log.info({ bridge: br.cfg.name, port: mp.name, qos: br.qos.show(mp.port) }, 'port QoS set');
    return br.qos.show(mp.port);
  }

  /** `qos clear`: no rate limit and no storm control on the port (its counters stay). */
  qosClear(bridgeName: unknown, portName: unknown): QosShow {
    const br = this.core.bridge(bridgeName);
    const mp = this.qosPort(br, portName);
    br.qos.apply(mp.port, NO_QOS);
    this.core.log.info({ bridge: br.cfg.name, port: mp.name }, 'port QoS cleared');
    return br.qos.show(mp.port);
  }

  /** The port's QoS in force (the runtime journal's recorder reads it before `qos set` is applied), null: no port. */
  portQos(bridgeName: string, portName: string): QosSpec | null {
    const br = this.core.bridges.get(bridgeName);
    const mp = br?.ports.get(portName);
    return br === undefined || mp === undefined ? null : br.qos.spec(mp.port);
  }

  /** Reload: the port's QoS from the new config (src/state/reload.ts). */
  setPortQosByName(bridgeName: string, portName: string, spec: QosSpec): void {
    const br = this.core.bridge(bridgeName);
    br.qos.apply(this.core.port(br, portName).port, spec);
  }

  private qosPort(br: BridgeRuntime, portName: unknown): PortHandle {
    const mp = this.core.port(br, portName);
    if (mp === br.uplink || mp.kind === 'host') throw new ControlError('invalid_params', `${mp.name} is the ${mp === br.uplink ? 'uplink' : 'host port'} of ${br.cfg.name}; QoS applies to tap, attach and vxlan ports`);
    return mp;
  }

  /** `lock show`: lock and guards of every port (not the uplink: it cannot be locked). */
  lockShow(bridgeName: unknown): LockShow[] {
    const br = this.core.bridge(bridgeName);
    return [...br.ports.values()].map((mp) => br.locks.show(mp.port));
  }

  private lockablePort(br: BridgeRuntime, portName: unknown): PortHandle {
    const mp = this.core.port(br, portName);
    if (mp === br.uplink) throw new ControlError('invalid_params', `${mp.name} is the uplink of ${br.cfg.name}; only tap and attach ports can be locked`);
    return mp;
  }

  /** `lock set`: {mac, ipv4, ipv6, allow_ethertypes} or {disabled: true}; the guards stay as they are. */
  lockSet(bridgeName: unknown, portName: unknown, p: Record<string, unknown>): LockShow {
    const br = this.core.bridge(bridgeName);
    const mp = this.lockablePort(br, portName);
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
    if (!br.locks.apply(mp.port, r.spec, br.locks.guards(mp.port), this.core.now())) {
      throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries; the lock is set but its MAC is not a static entry`);
    }
    this.core.log.info({ bridge: br.cfg.name, port: mp.name, lock: r.spec.mode }, 'port lock set');
    return br.locks.show(mp.port);
  }

  /** `lock clear`: the port is unlocked (its guards stay). */
  lockClear(bridgeName: unknown, portName: unknown): LockShow {
    const br = this.core.bridge(bridgeName);
    const mp = this.lockablePort(br, portName);
    br.locks.apply(mp.port, UNLOCKED, br.locks.guards(mp.port), this.core.now());
    this.core.log.info({ bridge: br.cfg.name, port: mp.name }, 'port lock cleared');
    return br.locks.show(mp.port);
  }

  private bonds(): Bond[] {
    return [...this.core.bridges.values()].flatMap((br) => (br.bond !== null ? [br.bond] : []));
  }

  private bondByName(name: unknown): Bond {
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'bond must be a string');
    const bond = this.bonds().find((b) => b.name === name);
    if (bond === undefined) throw new ControlError('not_found', `no such bond: ${name}`, { bond: name });
    return bond;
  }

  bondShow(name: unknown): BondShow | BondShow[] {
    if (name === undefined || name === null) return this.bonds().map((b) => b.show());
    return this.bondByName(name).show();
  }

  bondSetActive(name: unknown, member: unknown): BondShow {
    const bond = this.bondByName(name);
    if (typeof member !== 'string') throw new ControlError('invalid_params', 'member must be a string');
    const problem = bond.setActive(member);
    if (problem !== null) throw new ControlError(bond.policy.index(member) < 0 ? 'no_such_port' : 'invalid_params', problem);
    return bond.show();
  }

  /** busy_poll.show: the window in force and the addon's counters (idle callbacks run, windows started). */
  busyPollShow(): { busy_poll_us: number; spins: number; windows: number } {
    return { busy_poll_us: this.config.busyPollUs, ...busyPoll.stats() };
  }

  /** direct_poll.show: whether the data path waits for frames itself while libuv is idle, and its counters (src/native/directpoll.cc). */
  directPollShow(): { direct_poll: boolean; enabled: boolean; waits: number; served: number; yields: number; pumps: number } {
    return { direct_poll: this.config.directPoll, ...directPoll.stats() };
  }

  /**
   * syncWorkers false (metrics): the counters as last folded (the tick asks the workers for theirs at least every
   * FOLD_INTERVAL_MS; dataPlane.lastFolded() says when), without the blocking round trip to the workers
   */
  stats(syncWorkers = true): BridgeStats[] {
    // a round trip to the data-plane workers first: their counters are folded in
    if (syncWorkers) this.workers.sync(true);
    return bridgeStats(this.core);
  }

  // ---- observe: trace, capture, mirrors ------------------------------------------------------

  /** `trace`: what the bridge would do with one frame on `port` (nothing sent, learned or counted). */
  trace(p: Record<string, unknown>): TraceResult {
    const br = this.core.bridge(p.bridge);
    const mp = this.core.port(br, p.port);
    let frame: Uint8Array;
    try {
      frame = traceFrameFrom(p);
    } catch (err) {
      const msg = (err as Error).message;
      throw new ControlError('invalid_params', msg, { param: msg.split(':')[0] });
    }
    return traceFrame(br.bridge, mp.port, frame, this.core.now());
  }

  /** `capture`: starts a pcapng stream of `port` on the client's connection. */
  capture(p: Record<string, unknown>, client: ControlClient | null): unknown {
    const br = this.core.bridge(p.bridge);
    const mp = this.core.port(br, p.port);
    const opts = captureOptionsFrom(p);
    const r = this.captures.start(mp.port, opts, client);
    this.core.log.info({ bridge: br.cfg.name, port: mp.name, ...opts }, 'capture started');
    return r;
  }

  captureStop(client: ControlClient | null): void {
    this.captures.stop(client);
  }

  mirrorShow(bridgeName: unknown): MirrorShow[] {
    return this.core.bridge(bridgeName).mirrors.show();
  }

  // recorded in the runtime journal by the recorders in ./mirrors.ts
  mirrorAdd(p: Record<string, unknown>): MirrorShow {
    const br = this.core.bridge(p.bridge);
    const r = br.mirrors.add(mirrorSpecFromParams(p));
    this.core.log.info({ bridge: br.cfg.name, mirror: r.name, select: r.select, output: r.output, output_vlan: r.output_vlan }, 'mirror added');
    return r;
  }

  mirrorDel(p: Record<string, unknown>): void {
    const br = this.core.bridge(p.bridge);
    br.mirrors.del(p.name);
    this.core.log.info({ bridge: br.cfg.name, mirror: p.name }, 'mirror deleted');
  }

  // ---- reconfiguration: primitives of reload and state restore (src/state/) ------------------

  hasBridge(name: string): boolean {
    return this.core.bridges.has(name);
  }

  hasPort(bridgeName: string, port: string): boolean {
    return this.core.bridges.get(bridgeName)?.find(port) !== undefined;
  }

  /** The VLAN of untagged frames on a port (what `fdb add` without --vlan uses), null when unknown. */
  untaggedVid(bridgeName: string, port: string): number | null {
    const mp = this.core.bridges.get(bridgeName)?.find(port);
    return mp === undefined ? null : mp.port.vlan.untaggedVid;
  }

  /** The bridge's ageing time in force (config or setageing), seconds. */
  ageingTimeS(bridgeName: string): number {
    return Math.round((this.core.bridges.get(bridgeName)?.bridge.fdb.ageingTimeMs ?? 0) / 1000);
  }

  /** Creates and opens a bridge from its config (reload). */
  addBridge(cfg: BridgeConfig): void {
    const br = this.core.newBridge(cfg);
    this.core.bridges.set(cfg.name, br);
    startBridge(this.core, br);
  }

  /**
   * Closes every port of a bridge and forgets it (reload). Host-stack originals are written back, except on the
   * netdevs in `keep` (a re-created bridge takes them again at once).
   */
  removeBridge(name: string, keep: ReadonlySet<string> = new Set()): void {
    closeBridge(this.core, name, keep);
  }

  /** Replaces the bridge's config object (reload, after the changes were applied). */
  setBridgeConfig(cfg: BridgeConfig): void {
    const br = this.core.bridges.get(cfg.name);
    if (br !== undefined) br.cfg = cfg;
  }

  /**
   * Adds and removes remotes of a vxlan port in place (reload): one already there (or already gone) is no error;
   * every other failure is reported together after the rest was applied.
   */
  setVxlanRemotes(bridgeName: string, name: string, add: readonly string[], del: readonly string[]): void {
    const mp = vxlanPort(this.core, this.core.bridge(bridgeName), name);
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
  addVxlanConfigPort(bridgeName: string, vc: VxlanPortConfig): void {
    const br = this.core.bridges.get(bridgeName);
    if (br === undefined) throw new Error(`no bridge ${bridgeName}`);
    for (const other of this.core.bridges.values()) if (other.ports.has(vc.name)) this.removePortByName(other.cfg.name, vc.name, true);
    createVxlanPort(this.core, br, vc);
  }

  /** Adds a port from its config (reload); a port of that name is removed first. */
  addConfigPort(bridgeName: string, pc: PortConfig): void {
    const br = this.core.bridges.get(bridgeName);
    if (br === undefined) throw new Error(`no bridge ${bridgeName}`);
    for (const other of this.core.bridges.values()) if (other.ports.has(pc.name)) this.removePortByName(other.cfg.name, pc.name, true);
    createConfigPort(this.core, br, pc);
  }

  /**
   * Closes and removes a port (not the uplink); false when it does not exist. Its host-stack originals are written
   * back (as delif does) unless `reopen` (the port is opened again at once).
   */
  removePortByName(bridgeName: string, name: string, reopen = false): boolean {
    return removePort(this.core, bridgeName, name, reopen);
  }

  /** Changes learning, flood, isolated and the per-port FDB cap in place (fds, entries and counters stay). */
  setPortFlags(bridgeName: string, pc: Pick<PortConfig, 'name' | 'learning' | 'flood' | 'isolated' | 'fdbMax'>): void {
    const br = this.core.bridges.get(bridgeName);
    const mp = br?.ports.get(pc.name);
    if (br === undefined || mp === undefined) return;
    mp.port.learning = pc.learning;
    mp.port.flood = pc.flood;
    mp.port.isolated = pc.isolated;
    mp.port.fdbMax = pc.fdbMax;
    br.bridge.fdb.portMax[mp.port.id] = pc.fdbMax;
  }

  /** Replaces a port's (or the uplink's) VLAN rules in place. */
  setPortVlanByName(bridgeName: string, name: string, spec: VlanSpec): void {
    const br = this.core.bridges.get(bridgeName);
    const mp = br?.find(name);
    if (br === undefined || mp === undefined) return;
    br.bridge.setPortVlan(mp.port, spec);
    br.locks.reinstall(mp.port, this.core.now());
  }

  /** Closes the uplink (or bond) and opens the one of `up` (reload); netdevs it no longer uses get their host stack back. */
  replaceUplink(bridgeName: string, up: UplinkConfig | null): void {
    const br = this.core.bridges.get(bridgeName);
    if (br === undefined) return;
    const old = br.bond !== null ? br.bond.members.map((m) => m.name) : br.uplink !== null ? [br.uplink.name] : [];
    const next = new Set(up === null ? [] : up.bond !== null ? up.bond.members : up.interface !== null ? [up.interface] : []);
    br.uplink?.close('absent');
    forgetUplink(this.core, br);
    for (const n of old) if (!next.has(n)) restoreHostStack(n, this.core.portLog);
    openUplink(this.core, br, up);
  }

  /** Adds a static entry from the config; false when its port is missing or the FDB is full. */
  addStaticFdb(bridgeName: string, f: StaticFdbConfig): boolean {
    const br = this.core.bridges.get(bridgeName);
    const mp = br?.find(f.port);
    if (br === undefined || mp === undefined) return false;
    return br.bridge.fdb.addStatic(f.vlan, f.mac, mp.port.id, this.core.now()) !== AddResult.Full;
  }

  deleteFdb(bridgeName: string, vid: number, mac: number): boolean {
    return this.core.bridges.get(bridgeName)?.bridge.fdb.delete(vid, mac) ?? false;
  }

  /** Dynamic entries of every bridge with their ages and snooped IPv4 addresses (the FDB snapshot), at once. */
  fdbSnapshot(): Record<string, FdbSnapshotEntry[]> {
    return fdbSnapshot(this.core);
  }

  /**
   * Appends the dynamic entries in FDB pool slots from..to-1 of a bridge to `out` (a snapshot a slice per event-loop
   * turn); returns the pool's slot count, 0 when the bridge is gone.
   */
  fdbSnapshotSlice(bridgeName: string, from: number, to: number, out: FdbSnapshotEntry[]): number {
    return fdbSnapshotSlice(this.core, bridgeName, from, to, out);
  }

  bridgeNames(): string[] {
    return [...this.core.bridges.keys()];
  }

  /**
   * Restores snapshot entries `elapsedMs` after they were saved: only on ports that exist and forward, in VLANs
   * they are members of, and that would not have aged out meanwhile. Never replaces an entry already there.
   */
  restoreFdb(bridges: Record<string, FdbSnapshotEntry[]>, elapsedMs: number): { restored: number; skipped: number } {
    return restoreFdb(this.core, bridges, elapsedMs);
  }
}
