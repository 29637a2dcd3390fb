// VXLAN ports (RFC 7348 on the kernel's own vxlan driver): a `vxlan` entry of a bridge is a kernel vxlan netdev the
// daemon creates over rtnetlink (src/native/vxlan.cc) and then attaches to with AF_PACKET, exactly like an `attach`
// port. tapbridge implements no tunnel protocol: encapsulation, the UDP socket, remote-VTEP learning
// (`kernel_learning`) and multicast are the kernel's, so any VTEP that speaks RFC 7348 interoperates.
//
//   create   RTM_NEWLINK kind vxlan (vni, local, group + dev, port, ttl, tos, learning, MTU), host stack silenced,
//            then one all-zeros FDB entry per remote (head-end replication), link up, AF_PACKET attach.
//            A netdev of that name is adopted only when it matches the config (vxlan-owner.ts: VNI, UDP port,
//            local, group or own remote, dev); a `local` address the host does not have is warned about.
//   remove   on stop and `vxlan del`: RTM_DELLINK of a netdev the daemon created (recorded in the state,
//            vxlan-owner.ts) unless `persist: true`. A netdev deleted behind the daemon's back is created again at
//            once.
//   MTU      an overlay frame costs 50 bytes of underlay (IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14)
//            or 70 (IPv6), plus 4 when the inner frame carries a tag (default and trunk ports). When the underlay
//            device is known (`dev`, or the interface holding `local`) the vxlan netdev's MTU is set so an overlay
//            frame never needs fragmenting: min(bridge MTU, underlay MTU - overhead). A smaller MTU than the
//            bridge's is warned at start (and by check-config), marked in `show`, and larger frames are dropped
//            and counted (`oversize`) at the vxlan port like on any port.
//   Offloads the vxlan netdev takes GSO super-frames (NETIF_F_GSO_SOFTWARE) and hands up GRO'd ones: the port keeps
//            the vnet-header path of every AF_PACKET port.
//
// The bridge sees a vxlan port as kind 'vxlan': it learns and floods like any port; it is never announced by a bond
// failover (the MACs behind it live on other hosts).

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import type { IfInfo } from '../io/native-types.js';
import { isNativeError, netdev, vxlanLink } from '../io/native.js';
import { DEFAULT_VXLAN_PORT, MAX_VXLAN_REMOTES, type VxlanPortConfig } from '../config/config.js';
import { ControlError } from '../control/errors.js';
import { ManagedPort, type ManagedPortOptions } from './ports.js';
import { silenceHostStack } from './hoststack.js';
import { createdVxlans, localAddressProblem, vniHolders, vxlanDifferences } from './vxlan-owner.js';

/** Underlay bytes per overlay frame: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_V4 = 50;
/** Outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_V6 = 70;
/** An inner 802.1Q tag (default and trunk vxlan ports carry tagged frames). */
export const INNER_TAG_BYTES = 4;
/** The kernel's minimum MTU of a vxlan netdev (ETH_MIN_MTU). */
const MIN_VXLAN_MTU = 68;

/** IPv6 text in one canonical form (URL parsing compresses it), IPv4 unchanged. */
export function canonicalAddr(addr: string): string {
  if (isIP(addr) !== 6) return addr;
  try {
    return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  } catch {
    return addr.toLowerCase();
  }
}

function familyOf(spec: VxlanPortConfig): 4 | 6 {
  const a = spec.local ?? spec.group ?? spec.remotes[0] ?? '';
  return isIP(a) === 6 ? 6 : 4;
}

/** Underlay bytes one overlay frame needs beyond the bridge MTU. */
export function vxlanOverhead(spec: VxlanPortConfig): number {
  return (familyOf(spec) === 6 ? VXLAN_OVERHEAD_V6 : VXLAN_OVERHEAD_V4) + (spec.vlan.mode === 'access' ? 0 : INNER_TAG_BYTES);
}

export interface Underlay {
  dev: string;
  mtu: number;
}

export type IfInfoLookup = (name: string) => IfInfo | null;

/** The underlay device: `dev`, else the interface that holds `local` in this namespace; null when unknown. */
export function findUnderlay(spec: VxlanPortConfig, lookup: IfInfoLookup = (n) => netdev.info(n)): Underlay | null {
  let dev = spec.dev;
  if (dev === null && spec.local !== null) {
    const want = canonicalAddr(spec.local);
    for (const [name, addrs] of Object.entries(networkInterfaces())) {
      if (addrs?.some((a) => canonicalAddr(a.address.split('%')[0]) === want)) {
        dev = name;
        break;
      }
    }
  }
  if (dev === null) return null;
  const info = lookup(dev);
  return info === null ? null : { dev, mtu: info.mtu };
}

export interface MtuCheck {
  /** the vxlan netdev's MTU: the bridge MTU, or less when the underlay cannot carry it */
  mtu: number;
  /** what the underlay would need for full-size overlay frames */
  neededUnderlayMtu: number;
  /** null when it fits (or the underlay is unknown) */
  problem: string | null;
}

export function checkMtu(spec: VxlanPortConfig, bridgeMtu: number, underlay: Underlay | null): MtuCheck {
  const overhead = vxlanOverhead(spec);
  const needed = bridgeMtu + overhead;
  if (underlay === null || underlay.mtu >= needed) return { mtu: bridgeMtu, neededUnderlayMtu: needed, problem: null };
  const mtu = Math.max(MIN_VXLAN_MTU, underlay.mtu - overhead);
  return {
    mtu,
    neededUnderlayMtu: needed,
    problem: `underlay ${underlay.dev} has MTU ${underlay.mtu}, overlay frames of bridge MTU ${bridgeMtu} need ${needed} ` +
      `(${overhead} bytes of VXLAN over IPv${familyOf(spec)}${spec.vlan.mode === 'access' ? '' : ' with an inner tag'}); ` +
      `frames above ${mtu} bytes are dropped at ${spec.name}`,
  };
}

/** check-config: one warning per vxlan port whose underlay is known here and too small. */
export function vxlanMtuWarnings(bridges: { name: string; mtu: number; vxlan: VxlanPortConfig[] }[], lookup?: IfInfoLookup): string[] {
  const out: string[] = [];
  bridges.forEach((b, bi) => b.vxlan.forEach((spec, vi) => {
    const problem = checkMtu(spec, b.mtu, findUnderlay(spec, lookup)).problem;
    if (problem !== null) out.push(`bridges[${bi}].vxlan[${vi}]: ${problem}`);
  }));
  return out;
}

/** A vxlan entry as config-file keys (save-config); the VLAN keys are left to the caller (the port's mode now). */
export function vxlanEntryRaw(spec: VxlanPortConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { name: spec.name, vni: spec.vni };
  if (spec.local !== null) out.local = spec.local;
  if (spec.remotes.length > 0) out.remotes = [...spec.remotes];
  if (spec.group !== null) out.group = spec.group;
  if (spec.dev !== null) out.dev = spec.dev;
  if (spec.port !== DEFAULT_VXLAN_PORT) out.port = spec.port;
  if (spec.ttl !== null) out.ttl = spec.ttl;
  if (spec.tos !== null) out.tos = spec.tos;
  if (!spec.kernelLearning) out.kernel_learning = false;
  if (spec.persist) out.persist = true;
  if (!spec.learning) out.learning = false;
  if (!spec.flood) out.flood = false;
  if (spec.isolated) out.isolated = true;
  if (spec.fdbMax > 0) out.fdb_max = spec.fdbMax;
  return out;
}

/** `vxlan show` (JSON keys fixed by the issue: vni, local, remotes or group, vlan, state). */
export interface VxlanShow {
  name: string;
  vni: number;
  local: string | null;
  remotes: string[];
  group: string | null;
  dev: string | null;
  port: number;
  /** the access VLAN the VNI maps to, or null (a default or trunk port: tags travel inside) */
  vlan: number | null;
  vlan_mode: 'default' | 'access' | 'trunk';
  state: 'up' | 'down' | 'absent';
  ifindex: number;
  mtu: number;
  underlay: string | null;
  underlay_mtu: number | null;
  /** the underlay cannot carry overlay frames of the bridge MTU */
  mtu_short: boolean;
  kernel_learning: boolean;
  persist: boolean;
}

/** A vxlan port: the kernel netdev's lifecycle around an ordinary AF_PACKET attach port. */
export class VxlanPort extends ManagedPort {
  readonly spec: VxlanPortConfig;
  /** remote VTEPs (canonical text), in the order they were added */
  readonly remotes: Set<string>;
  underlay: Underlay | null = null;
  mtuCheck: MtuCheck;
  private readonly bridgeMtuBytes: number;

  constructor(bridge: Bridge, port: BridgePort, spec: VxlanPortConfig, opts: ManagedPortOptions, bridgeMtu: number, log: Logger) {
    super(bridge, port, { ...opts, persist: spec.persist, create: null }, bridgeMtu, log);
    // the port's own copy: runtime remote changes never touch the config in force (reload diffs against it)
    this.spec = structuredClone(spec);
    this.bridgeMtuBytes = bridgeMtu;
    this.remotes = new Set(spec.remotes.map(canonicalAddr));
    this.mtuCheck = checkMtu(spec, bridgeMtu, null);
  }

  override open(): boolean {
    if (this.io !== null) return true;
    const created = this.ensureNetdev();
    try {
      return super.open();
    } catch (err) {
      // unwind in reverse: a netdev this call created does not outlive a port that failed to open
      if (created) this.deleteQuietly();
      throw err;
    }
  }

  /**
   * Creates (or adopts, src/daemon/vxlan-owner.ts) the kernel vxlan netdev, sets its remotes, brings it up with the
   * host stack silenced. True when this call created it.
   */
  private ensureNetdev(): boolean {
    const s = this.spec;
    this.underlay = findUnderlay(s);
    this.mtuCheck = checkMtu(s, this.bridgeMtuBytes, this.underlay);
    if (this.mtuCheck.problem !== null) {
      this.log.warn({ underlay: this.underlay?.dev, underlay_mtu: this.underlay?.mtu, needed: this.mtuCheck.neededUnderlayMtu, mtu: this.mtuCheck.mtu },
        `vxlan MTU: ${this.mtuCheck.problem}`);
    }
    const localProblem = localAddressProblem(s);
    if (localProblem !== null) this.log.warn({ local: s.local }, `vxlan ${s.name}: ${localProblem}`);
    let existing = vxlanLink.kind(this.name);
    let ours = false;
    if (existing !== null) {
      const ifindex = netdev.info(this.name)?.ifindex ?? 0;
      ours = createdVxlans.owns(this.name, ifindex);
      if (!ours) createdVxlans.forget(this.name);
      const devIfindex = s.dev === null ? null : netdev.info(s.dev)?.ifindex ?? null;
      const diffs = vxlanDifferences(s, existing, devIfindex);
      if (diffs.length > 0 && ours) {
        // the daemon's own netdev from an earlier run under another config: made anew
        this.log.info({ differences: diffs }, 'vxlan netdev created by the daemon earlier differs from the config; creating it anew');
        vxlanLink.delete(this.name);
        createdVxlans.forget(this.name);
        existing = null;
      } else if (diffs.length > 0) {
        throw new Error(`netdev ${this.name} exists and was not created by tapbridge; not adopted because it differs from the config: ` +
          `${diffs.join(', ')} (delete it, or change the config to match)`);
      }
    }
    if (existing !== null) {
      const kernelRemotes = vxlanLink.remotes(this.name).map(canonicalAddr).filter((r) => s.group === null || r !== canonicalAddr(s.group));
      const stale = kernelRemotes.filter((r) => !this.remotes.has(r));
      if (!ours && stale.length > 0) {
        throw new Error(`netdev ${this.name} exists and was not created by tapbridge; not adopted because it has remotes the config does not list: ` +
          `${stale.join(', ')} (delete it, or add them to the config)`);
      }
      // our own netdev, left by `persist: true` (or a daemon that was killed): its remotes become the configured ones
      for (const r of stale) vxlanLink.delRemote(this.name, r);
      this.log.info({ vni: s.vni, created_by_tapbridge: ours, removed_remotes: stale }, 'adopting existing vxlan netdev');
      const info = netdev.info(this.name);
      if (info !== null && info.mtu !== this.mtuCheck.mtu) netdev.setMtu(this.name, this.mtuCheck.mtu);
    } else {
      try {
        vxlanLink.create({
          name: this.name,
          vni: s.vni,
          port: s.port,
          local: s.local ?? undefined,
          group: s.group ?? undefined,
          dev: s.dev ?? undefined,
          ttl: s.ttl ?? undefined,
          tos: s.tos ?? undefined,
          learning: s.kernelLearning,
          mtu: this.mtuCheck.mtu,
        });
      } catch (err) {
        throw this.explainCreateError(err);
      }
      createdVxlans.created(this.name, netdev.info(this.name)?.ifindex ?? 0, s.vni);
      this.log.info({ vni: s.vni, local: s.local, group: s.group, dev: s.dev, port: s.port, mtu: this.mtuCheck.mtu, remotes: [...this.remotes] }, 'created vxlan netdev');
    }
    try {
      for (const r of this.remotes) vxlanLink.addRemote(this.name, r);
      // before link up: the daemon's own stack must not send MLD/RS into the overlay
      silenceHostStack(this.name, this.log);
      netdev.setLinkUp(this.name, true);
    } catch (err) {
      if (existing === null) this.deleteQuietly();
      throw err;
    }
    return existing === null;
  }

  /** EEXIST from RTM_NEWLINK is about the VNI (the name was free a moment ago): the netdev that holds it is named. */
  private explainCreateError(err: unknown): unknown {
    if (!isNativeError(err) || err.code !== 'EEXIST') return err;
    let holders: string[] = [];
    try {
      holders = vniHolders(this.spec.vni, this.spec.port, vxlanLink.list(), this.name);
    } catch (listErr) {
      this.log.warn({ err: listErr }, 'cannot list vxlan netdevs to find who holds the VNI');
    }
    if (holders.length === 0) return err;
    return new Error(`cannot create vxlan netdev ${this.name}: VNI ${this.spec.vni} on UDP port ${this.spec.port} is already used by netdev ` +
      `${holders.join(', ')} in this namespace (${err.message})`);
  }

  /** RTM_DELLINK while unwinding: a failure is logged, the error that caused the unwind is the one reported. */
  private deleteQuietly(): void {
    try {
      vxlanLink.delete(this.name);
      createdVxlans.forget(this.name);
    } catch (err) {
      this.log.warn({ err }, 'cannot remove vxlan netdev while unwinding');
    }
  }

  /**
   * The netdev was deleted (or renamed away) behind the daemon's back: it is the daemon's, so it is created again at
   * once (a name that cannot be re-created leaves the port `absent`, logged).
   */
  override onLinkGone(): void {
    const wasOpen = this.io !== null;
    super.onLinkGone();
    if (!wasOpen) return;
    try {
      this.open();
      this.log.info({ ifindex: this.port.ifindex }, 'vxlan netdev re-created');
    } catch (err) {
      this.log.error({ err }, 'cannot re-create vxlan netdev; the port stays absent');
    }
  }

  /** Removes the kernel netdev (after close) when the daemon created it, unless `persist`. */
  removeNetdev(): void {
    if (this.persist) return;
    const ifindex = netdev.info(this.name)?.ifindex ?? 0;
    if (!createdVxlans.owns(this.name, ifindex)) {
      if (ifindex > 0) this.log.info('vxlan netdev left in place: tapbridge did not create it');
      // gone, or someone else's under that name now: nothing of the daemon's is left to delete
      createdVxlans.forget(this.name);
      return;
    }
    try {
      if (vxlanLink.delete(this.name)) this.log.info('removed vxlan netdev');
      createdVxlans.forget(this.name);
    } catch (err) {
      this.log.warn({ err }, 'cannot remove vxlan netdev');
    }
  }

  private remoteParam(ip: unknown): string {
    if (typeof ip !== 'string' || isIP(ip) === 0 || ip.includes('%')) throw new ControlError('invalid_params', `ip must be an IPv4 or IPv6 address (no zone), got ${JSON.stringify(ip)}`);
    const fam = familyOf(this.spec);
    if (isIP(ip) !== fam && (this.spec.local !== null || this.spec.group !== null || this.remotes.size > 0)) {
      throw new ControlError('invalid_params', `${this.name} has an IPv${fam} underlay; ${ip} is not IPv${fam}`);
    }
    const first = Number(ip.split('.')[0]);
    if ((isIP(ip) === 4 && first >= 224 && first <= 239) || (isIP(ip) === 6 && ip.toLowerCase().startsWith('ff'))) {
      throw new ControlError('invalid_params', `${ip} is a multicast address; a remote is one VTEP`);
    }
    return canonicalAddr(ip);
  }

  /** `vxlan remote add`: one more all-zeros FDB entry. */
  addRemote(ip: unknown): void {
    const addr = this.remoteParam(ip);
    if (this.spec.group !== null) throw new ControlError('invalid_params', `${this.name} uses the multicast group ${this.spec.group}, not remotes`);
    if (this.remotes.has(addr)) throw new ControlError('port_exists', `${addr} is already a remote of ${this.name}`);
    if (this.spec.local !== null && canonicalAddr(this.spec.local) === addr) throw new ControlError('invalid_params', `${addr} is the local address of ${this.name}`);
    if (this.remotes.size >= MAX_VXLAN_REMOTES) throw new ControlError('invalid_params', `${this.name} already has ${MAX_VXLAN_REMOTES} remotes`);
    if (this.io !== null) vxlanLink.addRemote(this.name, addr);
    this.remotes.add(addr);
    this.spec.remotes = [...this.remotes];
    this.log.info({ remote: addr }, 'vxlan remote added');
  }

  /** `vxlan remote del`. */
  delRemote(ip: unknown): void {
    const addr = this.remoteParam(ip);
    if (!this.remotes.has(addr)) throw new ControlError('not_found', `${addr} is not a remote of ${this.name}`);
    if (this.io !== null) vxlanLink.delRemote(this.name, addr);
    this.remotes.delete(addr);
    this.spec.remotes = [...this.remotes];
    this.log.info({ remote: addr }, 'vxlan remote removed');
  }

  show(): VxlanShow {
    const s = this.spec;
    const v = this.port.vlan.spec;
    return {
      name: this.name,
      vni: s.vni,
      local: s.local,
      remotes: [...this.remotes],
      group: s.group,
      dev: s.dev,
      port: s.port,
      vlan: v.mode === 'access' ? v.vlan : null,
      vlan_mode: v.mode,
      state: this.port.state,
      ifindex: this.port.ifindex,
      mtu: this.port.mtu,
      underlay: this.underlay?.dev ?? null,
      underlay_mtu: this.underlay?.mtu ?? null,
      mtu_short: this.mtuCheck.problem !== null,
      kernel_learning: s.kernelLearning,
      persist: s.persist,
    };
  }
}
