// The daemon: bridges built from the config, their ports, link monitoring, the coarse clock and
// the ageing sweep, and the operations the control server exposes (one method per CLI verb).
//
// Control operations run in their own event-loop turns, never inside a forwarding batch, so they
// may change ports and the FDB directly.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortKind } from '../bridge/port.js';
import { AddResult } from '../fdb/fdb.js';
import { formatMac, macIsMulticast, parseMac } from '../frame/mac.js';
import { LinkMonitor } from '../io/native.js';
import {
  type BridgeConfig, BUILTIN_PORT_DEFAULTS, type DaemonConfig, interfaceNameProblem, MAX_PORTS_PER_BRIDGE, type PortDefaults,
} from '../config/config.js';
import { ControlError } from '../control/errors.js';
import { ManagedPort, RefusedNetdevError, refusedNetdevProblem, type PortHandle } from './ports.js';
import { restoreHostStack } from './hoststack.js';
import { netdev } from '../io/native.js';
import { Bond, type BondShow } from './bond.js';
import { vlanSpecFrom, type VlanSpec } from '../bridge/vlan.js';
import { type LockShow, type LockSpec, lockSpecFrom, UNLOCKED } from '../bridge/lock.js';
import { PortLocks } from './locking.js';
import { BridgeMirrors, mirrorSpecFromParams } from './mirrors.js';
import { Mirror, type MirrorShow } from '../bridge/mirror.js';
import { Captures, captureOptionsFrom } from '../observe/capture.js';
import { traceFrame, traceFrameFrom, type TraceResult } from '../observe/trace.js';
import type { ControlClient } from '../control/server.js';

/** Coarse clock period: the FDB's notion of "now" and the ageing sweep run at this pace. */
export const TICK_MS = 100;
/** FDB pool slots visited per tick by the ageing sweep. */
export const SWEEP_BUDGET = 2048;
/** Kernel socket drop counters are read this often. */
const SOCKET_STATS_EVERY_TICKS = 10;

export interface ShowPort {
  name: string;
  kind: 'tap' | 'attach';
  state: 'up' | 'down' | 'absent';
  ifindex: number;
}

export interface ShowBridge {
  name: string;
  uplink: { name: string; kind: 'uplink' | 'bond'; state: 'up' | 'down' | 'absent' } | null;
  ports: ShowPort[];
}

export interface MacEntry {
  port: string;
  mac: string;
  vlan: number;
  static: boolean;
  age: number;
}

export interface PortStats {
  name: string;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  drops: Record<string, number>;
  /** frames captures of this port could not keep (a slow capture reader), not forwarding drops */
  capture_dropped: number;
}

export interface VlanShow {
  port: string;
  mode: 'access' | 'trunk';
  vlans: number[] | 'all';
  native: number | null;
}

export interface BridgeStats {
  bridge: string;
  fdb: { entries: number; learned: number; aged: number; moved: number; evicted: number; flooded: number };
  ports: PortStats[];
}

/** Flags and security of a new port (config port, or `port_defaults` for one added at runtime). */
interface PortSettings {
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  fdbMax: number;
  lock: LockSpec;
  raGuard: boolean;
  dhcpGuard: boolean;
  allowStacked: boolean;
}

function settingsFromDefaults(d: PortDefaults): PortSettings {
  return { learning: d.learning, flood: d.flood, isolated: d.isolated, fdbMax: d.fdbMax, lock: d.lock, raGuard: d.raGuard, dhcpGuard: d.dhcpGuard, allowStacked: false };
}

class BridgeRuntime {
  readonly cfg: BridgeConfig;
  readonly bridge: Bridge;
  readonly locks: PortLocks;
  readonly mirrors: BridgeMirrors;
  readonly ports = new Map<string, ManagedPort>();
  uplink: PortHandle | null = null;
  bond: Bond | null = null;

  constructor(cfg: BridgeConfig, log: Logger) {
    this.cfg = cfg;
    const names = (id: number): string => this.bridge.ports[id]?.name ?? `#${id}`;
    this.bridge = new Bridge({
      name: cfg.name,
      maxPorts: MAX_PORTS_PER_BRIDGE,
      fdbMax: cfg.fdbMax,
      ageingTimeMs: cfg.ageingTimeS * 1000,
      onFlap: (vid, mac, from, to, moves) => {
        log.warn({ bridge: cfg.name, mac: formatMac(mac), vlan: vid, ports: [names(from), names(to)], moves_per_s: moves },
          'MAC address keeps moving between two ports: a forwarding loop?');
      },
    });
    this.locks = new PortLocks(this.bridge);
    this.mirrors = new BridgeMirrors(this.bridge, () => this.uplink?.name ?? null);
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

export class Daemon {
  readonly config: DaemonConfig;
  private readonly log: Logger;
  private readonly portLog: Logger;
  private readonly bridges = new Map<string, BridgeRuntime>();
  /** Every port of every bridge by interface name (names are unique daemon-wide). */
  private readonly byName = new Map<string, ManagedPort>();
  private monitor: LinkMonitor | null = null;
  /** Running `capture` streams (src/observe/capture.ts). */
  readonly captures = new Captures();
  private ticker: NodeJS.Timeout | null = null;
  private ticks = 0;

  constructor(config: DaemonConfig, log: Logger) {
    this.config = config;
    this.log = log.child({ subsystem: 'daemon' });
    this.portLog = log.child({ subsystem: 'port' });
    for (const bc of config.bridges) this.bridges.set(bc.name, new BridgeRuntime(bc, log.child({ subsystem: 'fdb' })));
  }

  private now(): number {
    return performance.now();
  }

  /** Opens every configured port; throws (start-up failure) when a TAP cannot be created. */
  start(): void {
    const linkLog = this.log.child({ subsystem: 'link' });
    this.monitor = new LinkMonitor((type, ifindex, name, flags) => this.onLinkEvent(type, ifindex, name, flags, linkLog));
    const now = this.now();
    for (const br of this.bridges.values()) {
      br.bridge.nowMs = now;
      const up = br.cfg.uplink;
      if (up !== null && up.bond !== null) br.uplink = this.createBond(br, up.bond, up.vlan);
      else if (up !== null && up.interface !== null) br.uplink = this.createPort(br, up.interface, 'uplink', false, undefined, up.vlan);
      for (const pc of br.cfg.ports) {
        this.createPort(br, pc.name, pc.kind, pc.persist, pc, pc.vlan, pc.create);
      }
      for (const f of br.cfg.fdb) {
        const mp = br.find(f.port)!;
        br.bridge.fdb.addStatic(f.vlan, f.mac, mp.port.id, now);
      }
      // after every port exists: the outputs are known, nothing is flooded to them from the first frame
      if (br.cfg.mirrors.length > 0) br.bridge.setMirrors(br.cfg.mirrors.map((m) => new Mirror(m)));
    }
    this.monitor.dump();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  private createPort(
    br: BridgeRuntime,
    name: string,
    kind: PortKind,
    persist: boolean,
    settings: PortSettings | undefined,
    vlan: VlanSpec,
    create: { owner: number; group: number } | null = null,
  ): ManagedPort {
    const id = br.bridge.freePortId();
    if (id < 0) throw new ControlError('invalid_params', `bridge ${br.cfg.name} has no free port slot`);
    // the uplink gets the built-in flags: port_defaults never apply to it
    const s = settings ?? settingsFromDefaults(BUILTIN_PORT_DEFAULTS);
    const port = new BridgePort(id, name, kind, s, br.cfg.mtu, s.fdbMax, s.allowStacked);
    const mp = new ManagedPort(br.bridge, port, { persist, create, ownerOfIfindex: (ifindex) => this.portOfIfindex(ifindex) }, br.cfg.mtu, this.portLog);
    br.bridge.addPort(port);
    // VLAN rules and port security are in place before the port forwards its first frame
    br.bridge.setPortVlan(port, vlan);
    if (kind !== 'uplink' && !br.locks.apply(port, s.lock, s, this.now())) {
      this.log.warn({ bridge: br.cfg.name, port: name }, 'FDB full of static entries: locked MAC not installed as a static entry');
    }
    try {
      mp.open();
    } catch (err) {
      br.bridge.removePort(port);
      br.locks.forget(port);
      throw err;
    }
    if (kind !== 'uplink') br.ports.set(name, mp);
    this.byName.set(name, mp);
    return mp;
  }

  /** The name of the port (or bond member) whose open netdev has this ifindex, or null. */
  private portOfIfindex(ifindex: number): string | null {
    if (ifindex <= 0) return null;
    for (const mp of this.byName.values()) {
      if (mp.io !== null && mp.port.ifindex === ifindex) return mp.name;
    }
    return null;
  }

  private createBond(br: BridgeRuntime, cfg: Bond['cfg'], vlan: VlanSpec): Bond {
    const id = br.bridge.freePortId();
    const bond = new Bond(cfg, br.bridge, id, br.cfg.mtu, this.portLog);
    br.bridge.addPort(bond.port);
    br.bridge.setPortVlan(bond.port, vlan);
    bond.open();
    for (const m of bond.members) this.byName.set(m.name, m);
    br.bond = bond;
    return bond;
  }

  private onLinkEvent(type: 'new' | 'del' | 'done' | 'overrun', ifindex: number, name: string, flags: number, log: Logger): void {
    if (type === 'overrun') {
      log.warn('rtnetlink receive buffer overrun; re-dumping links');
      this.monitor?.dump();
      return;
    }
    if (type === 'done') return;
    // a netdev we follow that was renamed away or deleted
    for (const mp of this.byName.values()) {
      if (mp.kind === 'tap' || mp.port.ifindex !== ifindex || mp.io === null) continue;
      if (type === 'del' || mp.name !== name) mp.onLinkGone();
    }
    if (type === 'new') {
      const mp = this.byName.get(name);
      if (mp !== undefined && mp.kind !== 'tap') mp.onLinkNew(ifindex, flags);
    }
  }

  private tick(): void {
    const now = this.now();
    this.ticks++;
    const readDrops = this.ticks % SOCKET_STATS_EVERY_TICKS === 0;
    for (const br of this.bridges.values()) {
      br.bridge.tick(now, SWEEP_BUDGET);
      if (readDrops) for (const mp of br.all()) mp.readSocketDrops();
    }
  }

  /** Closes every port (TAPs the daemon created vanish unless persist) and the link monitor. */
  stop(): void {
    this.captures.endAll();
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    for (const br of this.bridges.values()) {
      for (const mp of br.all()) mp.close('absent');
    }
    this.monitor?.close();
    this.monitor = null;
  }

  // ---- control operations -------------------------------------------------------------------

  private bridge(name: unknown): BridgeRuntime {
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'bridge must be a string');
    const br = this.bridges.get(name);
    if (br === undefined) throw new ControlError('no_such_bridge', `no such bridge: ${name}`, { bridge: name });
    return br;
  }

  private port(br: BridgeRuntime, name: unknown): PortHandle {
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'port must be a string');
    const mp = br.find(name);
    if (mp === undefined) throw new ControlError('no_such_port', `no such port on ${br.cfg.name}: ${name}`, { bridge: br.cfg.name, port: name });
    return mp;
  }

  show(): ShowBridge[] {
    return [...this.bridges.values()].map((br) => ({
      name: br.cfg.name,
      uplink: br.uplink === null ? null : { name: br.uplink.name, kind: br.uplink.kind === 'bond' ? 'bond' as const : 'uplink' as const, state: br.uplink.port.state },
      ports: [...br.ports.values()].map((mp) => ({
        name: mp.name,
        kind: mp.kind === 'attach' ? 'attach' as const : 'tap' as const,
        state: mp.port.state,
        ifindex: mp.port.ifindex,
      })),
    }));
  }

  showmacs(bridgeName: unknown): MacEntry[] {
    const br = this.bridge(bridgeName);
    const now = this.now();
    const out: MacEntry[] = [];
    br.bridge.fdb.forEach(now, (e) => {
      out.push({
        port: br.bridge.ports[e.port]?.name ?? `#${e.port}`,
        mac: formatMac(e.mac),
        vlan: e.vid,
        static: e.isStatic,
        age: Math.round(e.ageMs / 10) / 100,
      });
    });
    out.sort((a, b) => (a.port === b.port ? (a.mac < b.mac ? -1 : 1) : a.port < b.port ? -1 : 1));
    return out;
  }

  /** VLAN options of addif / vlan.set: {access} | {trunk, native} | {default: true} | none. */
  private vlanParams(p: Record<string, unknown>): VlanSpec | null {
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

  addif(bridgeName: unknown, ifname: unknown, kind: unknown, vlanOpts: Record<string, unknown> = {}): ShowPort {
    const br = this.bridge(bridgeName);
    if (typeof ifname !== 'string') throw new ControlError('invalid_params', 'ifname must be a string');
    const problem = interfaceNameProblem(ifname);
    if (problem !== null) throw new ControlError('invalid_params', `ifname "${ifname}" ${problem}`);
    const k = kind === undefined || kind === null ? 'tap' : kind;
    if (k !== 'tap' && k !== 'attach') throw new ControlError('invalid_params', `kind must be "tap" or "attach", got ${JSON.stringify(k)}`);
    for (const other of this.bridges.values()) {
      if (other.bond !== null && other.bond.name === ifname) {
        throw new ControlError('port_exists', `${ifname} is the bond of ${other.cfg.name}`, { bridge: other.cfg.name, port: ifname });
      }
    }
    const existing = this.byName.get(ifname);
    if (existing !== undefined) {
      throw new ControlError('port_exists', `${ifname} is already a port of ${existing.bridge.name}`, { bridge: existing.bridge.name, port: ifname });
    }
    const vlan = this.vlanParams(vlanOpts) ?? { mode: 'default' };
    const info = netdev.info(ifname);
    if (info !== null) {
      const refused = refusedNetdevProblem(ifname, info.flags, info.ifindex, (ifindex) => this.portOfIfindex(ifindex));
      if (refused !== null) throw new ControlError('invalid_params', refused, { bridge: br.cfg.name, port: ifname });
    }
    let mp: ManagedPort;
    try {
      mp = this.createPort(br, ifname, k, false, settingsFromDefaults(br.cfg.portDefaults), vlan);
    } catch (err) {
      if (err instanceof ControlError) throw err;
      if (err instanceof RefusedNetdevError) throw new ControlError('invalid_params', err.message, { bridge: br.cfg.name, port: ifname });
      throw new ControlError('io_error', `cannot add ${ifname}: ${(err as Error).message}`, { errno: (err as { errno?: number }).errno });
    }
    this.log.info({ bridge: br.cfg.name, port: ifname, kind: k }, 'port added');
    return { name: mp.name, kind: k, state: mp.port.state, ifindex: mp.port.ifindex };
  }

  delif(bridgeName: unknown, ifname: unknown): void {
    const br = this.bridge(bridgeName);
    const mp = this.port(br, ifname);
    if (mp === br.uplink) throw new ControlError('invalid_params', `${mp.name} is the uplink of ${br.cfg.name}, not a port`);
    mp.close('absent');
    br.bridge.removePort(mp.port);
    br.locks.forget(mp.port);
    br.ports.delete(mp.name);
    this.byName.delete(mp.name);
    // after close: the netdev is off the bridge before IPv6 comes back on it
    restoreHostStack(mp.name, this.portLog);
    this.log.info({ bridge: br.cfg.name, port: mp.name }, 'port removed');
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
    const br = this.bridge(bridgeName);
    const m = this.macParam(mac);
    const mp = this.port(br, portName);
    const vid = this.vlanParam(vlan, mp);
    if (br.bridge.fdb.addStatic(vid, m, mp.port.id, this.now()) === AddResult.Full) {
      throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries (fdb_max ${br.cfg.fdbMax})`);
    }
  }

  fdbDel(bridgeName: unknown, mac: unknown, portName: unknown, vlan: unknown): void {
    const br = this.bridge(bridgeName);
    const m = this.macParam(mac);
    let vid = 0;
    if (portName !== undefined && portName !== null) {
      const mp = this.port(br, portName);
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
    const br = this.bridge(bridgeName);
    if (portName === undefined || portName === null) return br.bridge.fdb.flushDynamic();
    return br.bridge.fdb.flushDynamic(this.port(br, portName).port.id);
  }

  setAgeing(bridgeName: unknown, seconds: unknown): void {
    const br = this.bridge(bridgeName);
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0 || seconds > 1_000_000 || (seconds > 0 && seconds < 10)) {
      throw new ControlError('invalid_params', `seconds must be 0 (never age) or an integer 10..1000000, got ${JSON.stringify(seconds)}`);
    }
    br.bridge.fdb.ageingTimeMs = seconds * 1000;
    br.cfg.ageingTimeS = seconds;
  }

  vlanShow(bridgeName: unknown): VlanShow[] {
    const br = this.bridge(bridgeName);
    return br.all().map((mp) => ({ port: mp.name, ...mp.port.vlan.describe() }));
  }

  /** Replaces a port's VLAN rules; entries in VLANs it leaves are flushed. */
  vlanSet(bridgeName: unknown, portName: unknown, opts: Record<string, unknown>): VlanShow {
    const br = this.bridge(bridgeName);
    const mp = this.port(br, portName);
    const spec = this.vlanParams(opts);
    if (spec === null) throw new ControlError('invalid_params', 'give access, trunk (with optional native) or default');
    const flushed = br.bridge.setPortVlan(mp.port, spec);
    br.locks.reinstall(mp.port, this.now());
    this.log.info({ bridge: br.cfg.name, port: mp.name, vlan: spec, flushed }, 'port VLAN changed');
    return { port: mp.name, ...mp.port.vlan.describe() };
  }

  /** `lock show`: lock and guards of every port (not the uplink: it cannot be locked). */
  lockShow(bridgeName: unknown): LockShow[] {
    const br = this.bridge(bridgeName);
    return [...br.ports.values()].map((mp) => br.locks.show(mp.port));
  }

  private lockablePort(br: BridgeRuntime, portName: unknown): PortHandle {
    const mp = this.port(br, portName);
    if (mp === br.uplink) throw new ControlError('invalid_params', `${mp.name} is the uplink of ${br.cfg.name}; only tap and attach ports can be locked`);
    return mp;
  }

  /** `lock set`: {mac, ipv4, ipv6, allow_ethertypes} or {disabled: true}; the guards stay as they are. */
  lockSet(bridgeName: unknown, portName: unknown, p: Record<string, unknown>): LockShow {
    const br = this.bridge(bridgeName);
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
    if (!br.locks.apply(mp.port, r.spec, br.locks.guards(mp.port), this.now())) {
      throw new ControlError('fdb_full', `FDB of ${br.cfg.name} is full of static entries; the lock is set but its MAC is not a static entry`);
    }
    this.log.info({ bridge: br.cfg.name, port: mp.name, lock: r.spec.mode }, 'port lock set');
    return br.locks.show(mp.port);
  }

  /** `lock clear`: the port is unlocked (its guards stay). */
  lockClear(bridgeName: unknown, portName: unknown): LockShow {
    const br = this.bridge(bridgeName);
    const mp = this.lockablePort(br, portName);
    br.locks.apply(mp.port, UNLOCKED, br.locks.guards(mp.port), this.now());
    this.log.info({ bridge: br.cfg.name, port: mp.name }, 'port lock cleared');
    return br.locks.show(mp.port);
  }

  private bonds(): Bond[] {
    return [...this.bridges.values()].flatMap((br) => (br.bond !== null ? [br.bond] : []));
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

  stats(): BridgeStats[] {
    return [...this.bridges.values()].map((br) => {
      const c = br.bridge.fdb.counters;
      return {
        bridge: br.cfg.name,
        fdb: { entries: br.bridge.fdb.size, learned: c.learned, aged: c.aged, moved: c.moved, evicted: c.evicted, flooded: br.bridge.counters.flooded },
        ports: br.all().map((mp) => ({
          name: mp.name,
          rx_packets: mp.port.rxPackets,
          rx_bytes: mp.port.rxBytes,
          tx_packets: mp.port.txPackets,
          tx_bytes: mp.port.txBytes,
          drops: mp.port.drops(),
          capture_dropped: mp.port.captureDropped,
          mtu_mismatch: mp.mtuMismatches > 0,
        })),
      };
    });
  }

  // ---- observe: trace, capture, mirrors ------------------------------------------------------

  /** `trace`: what the bridge would do with one frame on `port` (nothing sent, learned or counted). */
  trace(p: Record<string, unknown>): TraceResult {
    const br = this.bridge(p.bridge);
    const mp = this.port(br, p.port);
    let frame: Uint8Array;
    try {
      frame = traceFrameFrom(p);
    } catch (err) {
      const msg = (err as Error).message;
      throw new ControlError('invalid_params', msg, { param: msg.split(':')[0] });
    }
    return traceFrame(br.bridge, mp.port, frame, this.now());
  }

  /** `capture`: starts a pcapng stream of `port` on the client's connection. */
  capture(p: Record<string, unknown>, client: ControlClient | null): unknown {
    const br = this.bridge(p.bridge);
    const mp = this.port(br, p.port);
    const opts = captureOptionsFrom(p);
    const r = this.captures.start(mp.port, opts, client);
    this.log.info({ bridge: br.cfg.name, port: mp.name, ...opts }, 'capture started');
    return r;
  }

  captureStop(client: ControlClient | null): void {
    this.captures.stop(client);
  }

  mirrorShow(bridgeName: unknown): MirrorShow[] {
    return this.bridge(bridgeName).mirrors.show();
  }

  // TODO(issue 11): record mirror add/del in src/state/ through its recorder extension point once it is on main
  mirrorAdd(p: Record<string, unknown>): MirrorShow {
    const br = this.bridge(p.bridge);
    const r = br.mirrors.add(mirrorSpecFromParams(p));
    this.log.info({ bridge: br.cfg.name, mirror: r.name, select: r.select, output: r.output, output_vlan: r.output_vlan }, 'mirror added');
    return r;
  }

  mirrorDel(p: Record<string, unknown>): void {
    const br = this.bridge(p.bridge);
    br.mirrors.del(p.name);
    this.log.info({ bridge: br.cfg.name, mirror: p.name }, 'mirror deleted');
  }
}
