// The daemon: composes the roles of src/daemon/ into one object with one method per control verb (src/control/
// methods.ts), per reload primitive (src/state/reload.ts) and per handover step (src/handover/). It owns the coarse
// clock (the tick: FDB "now", the ageing sweep, socket drop counters) and start/stop; everything else is a role:
//
//   runtime.ts       the shared state: BridgeRuntime per bridge, DaemonCore (bridges, port index, logs, clock)
//   portlife.ts      port lifecycle: open/close the uplink, bond, ports and vxlan ports (start-up, reload, addif)
//   linkmon.ts       link monitoring: rtnetlink events, dumps, retries, watchdog, mark-and-sweep, moved TAPs
//   workers.ts       the data-plane worker threads: start, sync, tick, show, stop
//   reconfig.ts      what a reload applies in place
//   fdb-snapshot.ts  the FDB snapshot and its restore
//   view.ts          show, showmacs, vlan show, stats
//   ops-*.ts         control operations per area: ports, vlan, vxlan, fdb, mdb, qos, lock, bond, observe
//   packet-ring.ts   the PACKET_MMAP rings of AF_PACKET ports (config to the addon at start, `show`)
//   vhost-user.ts    vhost-user ports (a ManagedPort opened by portlife.ts) and their takeover export
//
// Most public methods are one-line delegates. Control operations run in their own event-loop turns, never inside a
// forwarding batch, so they may change ports and the FDB directly.

import type { Logger } from '../log.js';
import { busyPoll, directPoll, type PacketPort } from '../io/native.js';
import type { BridgeConfig, DaemonConfig, PortConfig, StaticFdbConfig, UplinkConfig, VxlanPortConfig } from '../config/config.js';
import type { FdbSnapshotEntry } from '../state/document.js';
import type { BondRuntimeState, BondShow } from './bond.js';
import type { VlanSpec } from '../bridge/vlan.js';
import type { McastSettings } from '../bridge/mcast.js';
import { VxlanPort, type VxlanShow } from './vxlan.js';
import type { LockShow } from '../bridge/lock.js';
import type { QosShow, QosSpec } from '../bridge/qos.js';
import { unfenceHostStack } from '../hostport/fence.js';
import type { MirrorShow } from '../bridge/mirror.js';
import { Captures } from '../observe/capture.js';
import type { TraceResult } from '../observe/trace.js';
import type { ControlClient } from '../control/server.js';
import type { DataPlaneShow } from '../dataplane/dataplane.js';
import { CallbackGuard } from './guard.js';
import { DaemonCore, type TapFdListener, type TapMoveListener } from './runtime.js';
import { closeBridge, removePort, startBridge } from './portlife.js';
import { LinkWatch, netlinkRcvbuf } from './linkmon.js';
import { Workers } from './workers.js';
import {
  addBridge, addConfigPort, addStaticFdb, addVxlanConfigPort, replaceUplink, setMulticastSettings, setPortFlags, setPortVlanByName, setVxlanRemotes,
} from './reconfig.js';
import { fdbSnapshot, fdbSnapshotSlice, restoreFdb } from './fdb-snapshot.js';
import { bridgeStats, type BridgeStats, type MacEntry, portVlans, showBridges, type ShowBridge, showMacs, type ShowPort, type VlanShow } from './view.js';
import { addif, delif } from './ops-ports.js';
import { vhostHandovers, type VhostHandoverOut } from './vhost-user.js';
import { vlanSet } from './ops-vlan.js';
import { vxlanAdd, vxlanConfigs, vxlanDel, vxlanRemote, vxlanShow } from './ops-vxlan.js';
import { fdbAdd, fdbDel, fdbFlush, setAgeing } from './ops-fdb.js';
import { portQos, qosClear, qosSet, qosShow, setPortQosByName } from './ops-qos.js';
import { lockClear, lockSet, lockShow } from './ops-lock.js';
import { bondRebalance, bondSetActive, bondSetMode, bondShow, bondStates, setBondRestore } from './ops-bond.js';
import { mdbChange, mdbShow, mdbSnapshot, restoreMdb } from './ops-mdb.js';
import type { MdbShow } from '../mdb/control.js';
import type { MdbSnapshot } from '../mdb/snapshot.js';
import { applyPacketMmap } from './packet-ring.js';
import { capture, mirrorAdd, mirrorDel, mirrorShow, trace } from './ops-observe.js';

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
    applyPacketMmap(this.config.packetMmap);
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

  /** Takeover: each connected vhost-user port's fds and state (src/daemon/vhost-user.ts); call after pauseIo(). */
  vhostHandovers(): VhostHandoverOut[] {
    return vhostHandovers(this.core);
  }

  /** Stops reading every port: frames queue in the TAPs and sockets for whoever reads them next. */
  pauseIo(): void {
    this.core.ioPaused = true;
    // the workers stop reading first (every port goes back to the main thread, which does not read either; a late
    // worker keeps reading its ports until it acknowledges: workersStillReading())
    this.workers.syncBestEffort();
    for (const mp of this.core.byName.values()) mp.pauseIo();
  }

  /** After pauseIo(): waits (at most timeoutMs) until no data worker may read a port; returns the ids of those that may. */
  workersStillReading(timeoutMs: number): number[] {
    return this.workers.awaitReadsStopped(timeoutMs);
  }

  /** Reads again after a handover that did not happen; link events missed meanwhile are re-dumped. */
  resumeIo(): void {
    this.core.ioPaused = false;
    // not the ports a late data worker may still read (they come back at a sync after it acknowledged)
    for (const mp of this.core.byName.values()) if (mp.io === null || this.workers.mainMayRead(mp.io)) mp.resumeIo();
    this.workers.syncBestEffort();
    this.links.requestDump();
  }

  // ---- control operations: views (view.ts) ---------------------------------------------------

  show(): ShowBridge[] {
    return showBridges(this.core);
  }

  showmacs(bridgeName: unknown): MacEntry[] {
    return showMacs(this.core, this.core.bridge(bridgeName));
  }

  // ---- ports (ops-ports.ts) ------------------------------------------------------------------

  addif(bridgeName: unknown, ifname: unknown, kind: unknown, vlanOpts: Record<string, unknown> = {}): ShowPort {
    return addif(this.core, bridgeName, ifname, kind, vlanOpts);
  }

  delif(bridgeName: unknown, ifname: unknown): void {
    delif(this.core, bridgeName, ifname);
  }

  // ---- vxlan (ops-vxlan.ts, src/daemon/vxlan.ts) ---------------------------------------------

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

  // ---- fdb, mdb and vlan (ops-fdb.ts, ops-mdb.ts, ops-vlan.ts) ------------------------------

  fdbAdd(bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
    fdbAdd(this.core, bridgeName, mac, portName, vlan);
  }

  fdbDel(bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
    fdbDel(this.core, bridgeName, mac, portName, vlan);
  }

  fdbFlush(bridgeName: unknown, portName: unknown): number {
    return fdbFlush(this.core, bridgeName, portName);
  }

  setAgeing(bridgeName: unknown, seconds: unknown): void {
    setAgeing(this.core, bridgeName, seconds);
  }

  /** `mdb show` (src/mdb/control.ts). */
  mdbShow(bridgeName: unknown): MdbShow {
    return mdbShow(this.core, bridgeName);
  }

  /** `mdb add` / `mdb del`: a permanent MDB entry (src/mdb/control.ts). */
  mdbChange(op: 'add' | 'del', p: Record<string, unknown>): void {
    mdbChange(this.core, op, p);
  }

  vlanShow(bridgeName: unknown): VlanShow[] {
    return portVlans(this.core.bridge(bridgeName));
  }

  /** Replaces a port's VLAN rules; entries in VLANs it leaves are flushed. */
  vlanSet(bridgeName: unknown, portName: unknown, opts: Record<string, unknown>): VlanShow {
    return vlanSet(this.core, bridgeName, portName, opts);
  }

  // ---- qos (ops-qos.ts) ----------------------------------------------------------------------

  /** `qos show`: rate limits, storm control and their counters of every port (not the uplink or bond). */
  qosShow(bridgeName: unknown): QosShow[] {
    return qosShow(this.core, bridgeName);
  }

  /** `qos set`: changes what the parameters name (src/daemon/qos.ts qosSetSpec); buckets start full. */
  qosSet(bridgeName: unknown, portName: unknown, p: Record<string, unknown>): QosShow {
    return qosSet(this.core, bridgeName, portName, p);
  }

  /** `qos clear`: no rate limit and no storm control on the port (its counters stay). */
  qosClear(bridgeName: unknown, portName: unknown): QosShow {
    return qosClear(this.core, bridgeName, portName);
  }

  /** The port's QoS in force (the runtime journal's recorder reads it before `qos set` is applied), null: no port. */
  portQos(bridgeName: string, portName: string): QosSpec | null {
    return portQos(this.core, bridgeName, portName);
  }

  /** Reload: the port's QoS from the new config (src/state/reload.ts). */
  setPortQosByName(bridgeName: string, portName: string, spec: QosSpec): void {
    setPortQosByName(this.core, bridgeName, portName, spec);
  }

  // ---- port security (ops-lock.ts) -----------------------------------------------------------

  /** `lock show`: lock and guards of every port (not the uplink: it cannot be locked). */
  lockShow(bridgeName: unknown): LockShow[] {
    return lockShow(this.core, bridgeName);
  }

  /** `lock set`: {mac, ipv4, ipv6, allow_ethertypes} or {disabled: true}; the guards stay as they are. */
  lockSet(bridgeName: unknown, portName: unknown, p: Record<string, unknown>): LockShow {
    return lockSet(this.core, bridgeName, portName, p);
  }

  /** `lock clear`: the port is unlocked (its guards stay). */
  lockClear(bridgeName: unknown, portName: unknown): LockShow {
    return lockClear(this.core, bridgeName, portName);
  }

  // ---- bond (ops-bond.ts), polling, stats ----------------------------------------------------

  bondShow(name: unknown): BondShow | BondShow[] {
    return bondShow(this.core, name);
  }

  bondSetActive(name: unknown, member: unknown): BondShow {
    return bondSetActive(this.core, name, member);
  }

  /** bond.rebalance: one balance-slb rebalancing round now (src/daemon/bond.ts). */
  bondRebalance(name: unknown): BondShow & { moved: number } {
    return bondRebalance(this.core, name);
  }

  /** bond.set_mode: refused while running; the mode is config (a reload re-creates the bond). */
  bondSetMode(name: unknown, mode: unknown): never {
    return bondSetMode(this.core, name, mode);
  }

  /** --takeover: the previous daemon's bond states (state section BOND_STATE_SECTION), before start(). */
  setBondRestore(section: unknown): void {
    setBondRestore(this.core, section);
  }

  /** What a --takeover hands over per bond (SLB assignments, LACP state). */
  bondStates(): Record<string, BondRuntimeState> {
    return bondStates(this.core);
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

  // ---- observe: trace, capture, mirrors (ops-observe.ts) -------------------------------------

  /** `trace`: what the bridge would do with one frame on `port` (nothing sent, learned or counted). */
  trace(p: Record<string, unknown>): TraceResult {
    return trace(this.core, p);
  }

  /** `capture`: starts a pcapng stream of `port` on the client's connection. */
  capture(p: Record<string, unknown>, client: ControlClient | null): unknown {
    return capture(this.core, this.captures, p, client);
  }

  captureStop(client: ControlClient | null): void {
    this.captures.stop(client);
  }

  mirrorShow(bridgeName: unknown): MirrorShow[] {
    return mirrorShow(this.core, bridgeName);
  }

  // recorded in the runtime journal by the recorders in ./mirrors.ts
  mirrorAdd(p: Record<string, unknown>): MirrorShow {
    return mirrorAdd(this.core, p);
  }

  mirrorDel(p: Record<string, unknown>): void {
    mirrorDel(this.core, p);
  }

  // ---- reconfiguration: primitives of reload and state restore (reconfig.ts, src/state/) ------

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
    addBridge(this.core, cfg);
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
    setVxlanRemotes(this.core, bridgeName, name, add, del);
  }

  /** Adds a vxlan port from its config entry (reload); a port of that name is removed first. */
  addVxlanConfigPort(bridgeName: string, vc: VxlanPortConfig): void {
    addVxlanConfigPort(this.core, bridgeName, vc);
  }

  /** Adds a port from its config (reload); a port of that name is removed first. */
  addConfigPort(bridgeName: string, pc: PortConfig): void {
    addConfigPort(this.core, bridgeName, pc);
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
    setPortFlags(this.core, bridgeName, pc);
  }

  /** A bridge's multicast settings changed by a reload, applied in place (src/daemon/reconfig.ts, src/mdb/reload.ts). */
  setMulticastSettings(bridgeName: string, s: McastSettings): void {
    setMulticastSettings(this.core, bridgeName, s);
  }

  /** Replaces a port's (or the uplink's) VLAN rules in place. */
  setPortVlanByName(bridgeName: string, name: string, spec: VlanSpec): void {
    setPortVlanByName(this.core, bridgeName, name, spec);
  }

  /** Closes the uplink (or bond) and opens the one of `up` (reload); netdevs it no longer uses get their host stack back. */
  replaceUplink(bridgeName: string, up: UplinkConfig | null): void {
    replaceUplink(this.core, bridgeName, up);
  }

  /** Adds a static entry from the config; false when its port is missing or the FDB is full. */
  addStaticFdb(bridgeName: string, f: StaticFdbConfig): boolean {
    return addStaticFdb(this.core, bridgeName, f);
  }

  deleteFdb(bridgeName: string, vid: number, mac: number): boolean {
    return this.core.bridges.get(bridgeName)?.bridge.fdb.delete(vid, mac) ?? false;
  }

  // ---- FDB snapshot (fdb-snapshot.ts) --------------------------------------------------------

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

  // ---- MDB snapshot (ops-mdb.ts, src/mdb/snapshot.ts) -----------------------------------------

  /** The learnt MDB, router ports and querier elections of every bridge (the state's `mdb` section; src/mdb/snapshot.ts). */
  mdbSnapshot(): MdbSnapshot {
    return mdbSnapshot(this.core);
  }

  restoreMdb(snap: unknown): { restored: number; skipped: number } {
    return restoreMdb(this.core, snap);
  }
}
