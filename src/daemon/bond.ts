// A bond of uplink members as ONE logical bridge port, in one of three modes (`mode`):
//
//   active-backup  two members; the ActiveBackup policy (src/bond/active-backup.ts) picks the one that carries
//                  everything. BondPort.io is the active member's socket; frames received on the other are
//                  dropped and counted (`backup_member`).
//   balance-slb    two to four members; the SlbPolicy (src/bond/slb.ts) maps (source MAC, VLAN) to members.
//                  BondPort.io is a BondTxIo (src/bond/tx.ts) that splits each tx batch over the members.
//                  Receive (src/bond/receive.ts): broadcast/multicast only on the active member (else `backup_member`), and
//                  a frame whose source MAC the FDB has behind another port of this bridge (one of ours, come
//                  back) is dropped on every member (`looped_back`). MACs whose bucket moves (failover,
//                  rebalance every rebalance_interval ms, `bond rebalance`) are announced on their new member.
//   802.3ad        two to four members; the LacpPolicy (src/bond/lacp.ts) runs 802.1AX per member. LACPDUs are
//                  decoded here, counted and never reach the bridge; data frames are accepted only on a member
//                  that is collecting (else `backup_member`); BondTxIo hashes (hash: layer2 | layer3+4) over the
//                  members that are distributing.
//
//   BondMember  an AF_PACKET port on one member netdev (the attach/uplink lifecycle of ports.ts:
//               waits while missing, re-opens when re-created); its frames go to Bond.receive().
//   Bond        wiring: policy decisions -> BondPort.io/state, failover log lines, RARP announcements
//               (num_grat_arp times, peer_notif_delay apart), a miimon safety poll, the mode's timers.
//
// Frames this file composes (RARPs, LACPDUs) are written into the receive slab: only from timers, control
// events and after a batch's bridge.receive() has flushed, never in the middle of a batch.

import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortState } from '../bridge/port.js';
import { PortCounter } from '../io/native-types.js';
import { IFF_RUNNING, IFF_UP, netdev, RxSlab } from '../io/native.js';
import { ActiveBackup, type FailoverEvent, type PrimaryReselect, realClock } from '../bond/active-backup.js';
import { sendRarps } from '../bond/announce.js';
import { l2Hash, l34Hash, macVidHash, slbKey } from '../bond/hash.js';
import { type LacpSnapshot, LacpPolicy, TICK_MS } from '../bond/lacp.js';
import { BUCKETS, SlbPolicy } from '../bond/slb.js';
import { BondTxIo } from '../bond/tx.js';
import { lacpAdmit, slbAdmit } from '../bond/receive.js';
import { LinkDelay } from '../bond/link-delay.js';
import type { BondConfigFile, BondMode } from '../config/config.js';
import { macHi, macLo } from '../fdb/fdb.js';
import { emptyInfo, encodeLacpdu, type Lacpdu, stateString } from '../frame/lacp.js';
import { formatMac, parseMac } from '../frame/mac.js';
import { TX_OP_NONE, VNET_HDR_LEN } from '../io/native-types.js';
import { EGRESS_UNTAGGED } from '../bridge/vlan.js';
import { type CallbackWrapper, ManagedPort, type PortHandle } from './ports.js';

export type BondConfig = BondConfigFile;

/** The bond as a bridge port: counters of both members' sockets add up here. */
export class BondPort extends BridgePort {
  members: BondMember[] = [];
  /** frames a member may not deliver: the backup (active-backup), floods on a non-active member (balance-slb), a member not collecting (802.3ad) */
  dropBackupMember = 0;
  /** balance-slb: frames whose source MAC is behind another port of this bridge (ours, come back) */
  dropLoopedBack = 0;
  /** balance-slb / 802.3ad: counts frames to send while no member could carry them */
  txIo: BondTxIo | null = null;

  override nativeCounter(i: PortCounter): number {
    let sum = this.savedCounters[i];
    for (const m of this.members) sum += m.port.nativeCounter(i);
    return sum;
  }

  override drops(): ReturnType<BridgePort['drops']> & { backup_member: number; looped_back: number; no_member: number } {
    return { ...super.drops(), backup_member: this.dropBackupMember, looped_back: this.dropLoopedBack, no_member: this.txIo !== null ? this.txIo.noMember : 0 };
  }
}

export class BondMember extends ManagedPort {
  readonly bond: Bond;
  readonly index: number;

  constructor(bond: Bond, index: number, name: string, bridge: Bridge, mtu: number, log: Logger, wrap?: CallbackWrapper) {
    super(bridge, new BridgePort(-1, name, 'uplink', { learning: false, flood: false, isolated: false }, mtu), { persist: false, wrap }, mtu, log);
    this.bond = bond;
    this.index = index;
  }

  protected override setState(state: PortState): void {
    this.port.state = state;
    this.bond.memberState(this, state);
  }

  protected override mtuChanged(): void {
    this.bond.syncIo();
  }

  protected override deliver(slab: Uint8Array, desc: Int32Array, count: number): void {
    this.bond.receive(this, slab, desc, count);
  }
}

export interface BondMemberShow {
  name: string;
  mii_status: 'up' | 'down';
  link_failures: number;
  state: string;
  permanent_hw_addr: string | null;
  /** bytes and frames the kernel accepted on this member */
  tx_bytes?: number;
  tx_packets?: number;
  /** balance-slb: the member's buckets' load (bytes, halved every rebalance) and the MACs hashed to it */
  load?: number;
  macs?: string[];
  /** 802.3ad: this port's 802.1AX state */
  lacp?: {
    rx_state: string;
    mux_state: string;
    selected: boolean;
    partner_mismatch: boolean;
    actor: { system_priority: number; system: string; key: number; port_priority: number; port: number; state: number; state_bits: string };
    partner: { system_priority: number; system: string; key: number; port_priority: number; port: number; state: number; state_bits: string };
    lacpdus_rx: number;
    lacpdus_tx: number;
    lacpdus_bad: number;
    actor_churn: 'churned' | 'no churn';
    partner_churn: 'churned' | 'no churn';
    actor_churn_count: number;
    partner_churn_count: number;
  };
}

export interface BondShow {
  name: string;
  mode: BondMode;
  /** active-backup: the active member; balance-slb: the member that accepts broadcast/multicast; 802.3ad: null */
  active: string | null;
  primary: string;
  primary_reselect: PrimaryReselect;
  mii_status: 'up' | 'down';
  miimon: number;
  updelay: number;
  downdelay: number;
  num_grat_arp: number;
  peer_notif_delay: number;
  members: BondMemberShow[];
  /** changes of the active member from one member to the other (metrics: tapbridge_bond_failovers_total) */
  failovers: number;
  /** balance-slb */
  rebalance_interval?: number;
  rebalance_moves?: number;
  failover_moves?: number;
  /** 802.3ad */
  lacp?: { activity: 'active' | 'passive'; rate: 'slow' | 'fast'; hash: 'layer2' | 'layer3+4'; system_priority: number; system: string; key: number;
    aggregator_partner: { system_priority: number; system: string; key: number } | null; distributing: string[] };
}

/** What --takeover carries for a bond (besides the members' fds). */
export interface BondRuntimeState {
  mode: BondMode;
  members: string[];
  slb?: number[];
  lacp?: LacpSnapshot;
}

/** The state-document section (src/state/document.ts) a --takeover carries bond state in: {bond name: BondRuntimeState}. */
export const BOND_STATE_SECTION = 'bonds';

/** The section's value as handed over, checked (it crossed a process boundary); entries that do not check out are left out. */
export function parseBondStates(v: unknown): Map<string, BondRuntimeState> {
  const out = new Map<string, BondRuntimeState>();
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return out;
  for (const [name, s] of Object.entries(v as Record<string, unknown>)) {
    if (typeof s !== 'object' || s === null) continue;
    const r = s as Record<string, unknown>;
    if (typeof r.mode !== 'string' || !Array.isArray(r.members) || !r.members.every((m) => typeof m === 'string')) continue;
    const slb = Array.isArray(r.slb) && r.slb.length <= BUCKETS && r.slb.every((x) => Number.isInteger(x)) ? (r.slb as number[]) : undefined;
    const lacpPorts = (r.lacp as { ports?: unknown } | undefined)?.ports;
    const lacp = Array.isArray(lacpPorts) && lacpPorts.length === r.members.length ? (r.lacp as LacpSnapshot) : undefined;
    out.set(name, { mode: r.mode as BondMode, members: r.members as string[], ...(slb ? { slb } : {}), ...(lacp ? { lacp } : {}) });
  }
  return out;
}

function infoShow(i: Lacpdu['actor']): NonNullable<BondMemberShow['lacp']>['actor'] {
  return { system_priority: i.systemPriority, system: formatMac(i.system), key: i.key, port_priority: i.portPriority, port: i.port, state: i.state, state_bits: stateString(i.state) };
}

export class Bond implements PortHandle {
  readonly kind = 'bond' as const;
  readonly mtuMismatches = 0;
  readonly cfg: BondConfig;
  readonly mode: BondMode;
  readonly port: BondPort;
  readonly members: BondMember[];
  /** active-backup only */
  readonly policy: ActiveBackup | null = null;
  /** balance-slb only */
  readonly slb: SlbPolicy | null = null;
  /** 802.3ad only */
  readonly lacp: LacpPolicy | null = null;
  /** balance-slb and 802.3ad: the bond port's io, splitting batches over the members */
  private readonly txIo: BondTxIo | null = null;
  private readonly bridge: Bridge;
  private readonly log: Logger;
  private miimon: NodeJS.Timeout | null = null;
  private modeTimer: NodeJS.Timeout | null = null;
  private notifyTimers: NodeJS.Timeout[] = [];
  private readonly permanentMac: (string | null)[];
  /** balance-slb / 802.3ad: member usable (carrier up and a socket) as last told to the policy */
  private readonly memberUp: boolean[];
  private readonly linkFailures: number[];
  /** 802.3ad: the latest LACPDU of the current batch per member (decoded in the batch, handled after it) */
  private readonly pendingPdu: Lacpdu[];
  private readonly pendingPduSet: boolean[];
  /** lacpAdmit's out-parameters, reused */
  private readonly lacpGot = { pdu: false, rxErrors: 0 };
  /** active member changed from one member to the other (also across a time with no member up) */
  private failovers = 0;
  private lastActive: string | null = null;
  /** balance-slb: buckets whose MACs the running series of announcement rounds covers */
  private readonly slbPending = new Set<number>();
  /** Set by close(): members closing on shutdown is not a link failure (no failover, no announcement). */
  private closing = false;
  private readonly wrap: CallbackWrapper;

  /** 802.3ad: per member, the previous daemon's LACP state (--takeover), applied when the member first comes up */
  private readonly lacpRestore: (LacpSnapshot['ports'][number] | undefined)[];
  /** balance-slb: members with assignments from the previous daemon (--takeover): used without waiting out updelay */
  private readonly slbRestored: boolean[];
  /** balance-slb / 802.3ad: updelay and downdelay per member */
  private readonly linkDelay: LinkDelay | null = null;

  /** `restore`: what the previous daemon's runtimeState() was (--takeover); used when mode and members are the same. */
  constructor(cfg: BondConfig, bridge: Bridge, id: number, mtu: number, log: Logger, wrap: CallbackWrapper = (_c, fn) => fn, restore?: BondRuntimeState) {
    this.cfg = cfg;
    this.mode = cfg.mode ?? 'active-backup';
    this.wrap = wrap;
    this.bridge = bridge;
    this.log = log.child({ bridge: bridge.name, bond: cfg.name });
    this.port = new BondPort(id, cfg.name, 'bond', { learning: true, flood: true, isolated: false }, mtu);
    const n = cfg.members.length;
    this.permanentMac = new Array<string | null>(n).fill(null);
    this.memberUp = new Array<boolean>(n).fill(false);
    this.linkFailures = new Array<number>(n).fill(0);
    this.pendingPdu = cfg.members.map(() => ({ version: 1, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 }));
    this.pendingPduSet = new Array<boolean>(n).fill(false);
    const same = restore !== undefined && restore.mode === (cfg.mode ?? 'active-backup') && JSON.stringify(restore.members) === JSON.stringify(cfg.members);
    this.lacpRestore = cfg.members.map((_m, i) => (same && restore.lacp?.ports[i]?.rx === 'current' ? restore.lacp.ports[i] : undefined));
    this.slbRestored = cfg.members.map((_m, i) => same && restore.slb !== undefined && restore.slb.includes(i));
    if (this.mode === 'active-backup') {
      this.policy = new ActiveBackup(
        { members: [cfg.members[0], cfg.members[1]], primary: cfg.primary, primaryReselect: cfg.primaryReselect, updelayMs: cfg.updelayMs, downdelayMs: cfg.downdelayMs },
        // the policy's updelay/downdelay timers call this from libuv: inside the daemon's exception boundary
        this.wrap(`bond ${cfg.name}: failover`, (e: FailoverEvent) => this.onFailover(e)),
        { ...realClock, setTimer: (fn, ms) => realClock.setTimer(this.wrap(`bond ${cfg.name}: updelay/downdelay`, fn), ms) },
      );
    } else if (this.mode === 'balance-slb') {
      const slb = new SlbPolicy(n);
      if (same && restore.slb !== undefined) slb.restore(restore.slb);
      this.slb = slb;
      this.txIo = new BondTxIo(n, (slab, off, len, op, arg) => slb.choose(slbKey(slab, off, len, op, arg), len), RxSlab.get().bytes);
    } else {
      const lacp = new LacpPolicy(
        { memberCount: n, active: cfg.lacp === 'active', fast: cfg.lacpRate === 'fast', systemPriority: cfg.systemPriority, portPriority: cfg.portPriority, key: (id & 0x3ff) + 1 },
        (i, pdu) => this.sendLacpdu(i, pdu),
        () => this.lacpChanged(),
      );
      this.lacp = lacp;
      const hash = cfg.hash === 'layer3+4' ? l34Hash : l2Hash;
      this.txIo = new BondTxIo(n, (slab, off, len, op, arg) => lacp.choose(hash(slab, off, len, op, arg)), RxSlab.get().bytes);
    }
    this.port.txIo = this.txIo;
    this.members = cfg.members.map((name, i) => new BondMember(this, i, name, bridge, mtu, log, wrap));
    if (this.mode !== 'active-backup') {
      this.linkDelay = new LinkDelay(n, cfg.updelayMs, cfg.downdelayMs,
        { ...realClock, setTimer: (fn, ms) => realClock.setTimer(this.wrap(`bond ${cfg.name}: updelay/downdelay`, fn), ms) },
        (i, usable, source) => this.memberUsable(this.members[i], usable, source));
    }
    this.port.members = this.members;
    this.port.state = 'down';
  }

  get name(): string {
    return this.cfg.name;
  }

  /** Index of a member by name, -1 when it is none. */
  memberIndex(name: string): number {
    return this.cfg.members.indexOf(name);
  }

  /** Opens every member (each waits while its netdev is missing) and starts the miimon poll and the mode's timer. */
  open(): void {
    for (const m of this.members) {
      m.open();
      const info = netdev.info(m.name);
      if (info !== null) this.permanentMac[m.index] = info.mac;
    }
    this.setLacpSystem();
    if (this.cfg.miimonMs > 0) {
      this.miimon = setInterval(this.wrap(`bond ${this.cfg.name}: miimon`, () => this.pollCarrier()), this.cfg.miimonMs);
      this.miimon.unref();
    }
    if (this.lacp !== null) {
      this.modeTimer = setInterval(this.wrap(`bond ${this.cfg.name}: lacp`, () => this.lacp!.tick(performance.now())), TICK_MS);
    } else if (this.slb !== null && this.cfg.rebalanceIntervalMs > 0) {
      this.modeTimer = setInterval(this.wrap(`bond ${this.cfg.name}: rebalance`, () => this.rebalance()), this.cfg.rebalanceIntervalMs);
    }
    this.modeTimer?.unref();
  }

  /** 802.3ad system ID: the first member's permanent MAC that is known. */
  private setLacpSystem(): void {
    if (this.lacp === null || this.lacp.system !== 0) return;
    for (const mac of this.permanentMac) {
      if (mac === null) continue;
      this.lacp.system = parseMac(mac) ?? 0;
      return;
    }
  }

  /**
   * miimon: the periodic safety check behind rtnetlink events. Carrier is read as the bonding driver and the
   * rtnetlink path (IFF_LOWER_UP) see it, netif_carrier_ok, from sysfs: IFF_RUNNING follows operstate, which
   * linkwatch updates later (ms, up to 1 s under rtnl contention), so it disagreed with rtnetlink right after a
   * member came up or went down and made miimon fail over (or back) spuriously.
   */
  private pollCarrier(): void {
    for (const m of this.members) {
      if (m.io === null) continue;
      const info = netdev.info(m.name);
      let up = info !== null && (info.flags & IFF_UP) !== 0;
      if (up) {
        let carrier: string | null = null;
        try {
          // only when this sysfs is our namespace's view of the member (`nsenter --net` keeps another one)
          const dir = `/sys/class/net/${m.name}`;
          if (Number(readFileSync(`${dir}/ifindex`, 'utf8')) === info!.ifindex) carrier = readFileSync(`${dir}/carrier`, 'utf8').trim();
        } catch {
          /* no sysfs view of this netdev: fall back to IFF_RUNNING */
        }
        up = carrier !== null ? carrier === '1' : (info!.flags & IFF_RUNNING) !== 0;
      }
      this.carrier(m, up, 'miimon');
    }
  }

  /** A member's link state as its ManagedPort lifecycle sees it. */
  memberState(m: BondMember, state: PortState): void {
    if (this.closing) return;
    if (state !== 'absent' && m.io !== null) {
      const info = netdev.info(m.name);
      if (info !== null) this.permanentMac[m.index] = info.mac;
      this.setLacpSystem();
    }
    if (this.policy !== null) {
      if (state === 'absent') this.policy.vanished(m.index);
      else this.policy.carrierChanged(m.index, state === 'up', 'rtnetlink');
    } else {
      this.carrier(m, state === 'up', state === 'absent' ? 'netdev deleted' : 'rtnetlink');
    }
    // the active member's socket may have been replaced (re-created netdev)
    this.syncIo();
  }

  /** Carrier of member m (balance-slb, 802.3ad: no updelay/downdelay; active-backup: its policy). */
  private carrier(m: BondMember, up: boolean, source: string): void {
    if (this.policy !== null) {
      this.policy.carrierChanged(m.index, up, source);
      return;
    }
    const delay = this.linkDelay!;
    if (source === 'netdev deleted') delay.vanished(m.index, source);
    else delay.carrier(m.index, up && m.io !== null, source, this.lacpRestore[m.index] !== undefined || this.slbRestored[m.index]);
  }

  /** balance-slb / 802.3ad: member m becomes usable or not (after updelay / downdelay). */
  private memberUsable(m: BondMember, usable: boolean, source: string): void {
    if (this.closing) return;
    this.slbRestored[m.index] = false;
    if (this.memberUp[m.index] === usable) return;
    this.memberUp[m.index] = usable;
    if (!usable) this.linkFailures[m.index]++;
    this.log.info({ member: m.name, up: usable, source }, usable ? 'bond member up' : 'bond member down');
    if (this.slb !== null) {
      const before = this.slb.active;
      const moved = this.slb.setEnabled(m.index, usable);
      if (before >= 0 && this.slb.active >= 0 && before !== this.slb.active) this.failovers++;
      this.syncIo();
      this.refreshPortState();
      if (moved.length > 0) this.announceMoved(moved);
    } else if (this.lacp !== null) {
      const restored = usable ? this.lacpRestore[m.index] : undefined;
      this.syncIo();
      if (restored !== undefined) {
        this.lacpRestore[m.index] = undefined;
        this.lacp.enableRestored(m.index, restored, performance.now());
      } else {
        this.lacp.setEnabled(m.index, usable, performance.now());
      }
    }
  }

  /** The bond port transmits on the active member's socket (active-backup) or through BondTxIo, with the smallest member MTU. */
  syncIo(): void {
    if (this.policy !== null) {
      const a = this.policy.active;
      const io = a >= 0 ? this.members[a].io : null;
      this.port.io = io;
      if (a >= 0) this.port.mtu = this.members[a].port.mtu;
      return;
    }
    const txIo = this.txIo!;
    let mtu = Infinity;
    for (const m of this.members) {
      txIo.members[m.index] = m.io;
      if (m.io !== null && this.memberUp[m.index]) mtu = Math.min(mtu, m.port.mtu);
    }
    if (mtu !== Infinity) this.port.mtu = mtu;
    this.port.io = txIo;
  }

  /** balance-slb / 802.3ad: the bond is up while some member can carry frames. */
  private refreshPortState(): void {
    if (this.closing) return;
    const up = this.slb !== null ? this.slb.active >= 0 : this.lacp!.distCount > 0;
    const want = up ? 'up' : 'down';
    if (this.port.state !== want) this.bridge.setPortState(this.port, want);
  }

  /** One rx batch of member m: the mode's receive rules, then the bridge. */
  receive(m: BondMember, slab: Uint8Array, desc: Int32Array, count: number): void {
    const bondPort = this.port;
    if (this.policy !== null) {
      if (this.policy.active !== m.index) {
        bondPort.dropBackupMember += count;
        return;
      }
      this.bridge.receive(bondPort, slab, desc, count);
      return;
    }
    const kept = this.slb !== null ? this.filterSlb(m.index, slab, desc, count) : this.filterLacp(m.index, slab, desc, count);
    if (kept > 0) this.bridge.receive(bondPort, slab, desc, kept);
    if (this.lacp !== null && this.pendingPduSet[m.index]) {
      // after the batch: answering composes a LACPDU in the slab
      this.pendingPduSet[m.index] = false;
      this.lacp.rx(m.index, this.pendingPdu[m.index], performance.now());
    }
  }

  /** balance-slb receive rules (src/bond/receive.ts); compacts desc in place and returns the frames kept. */
  private filterSlb(mi: number, slab: Uint8Array, desc: Int32Array, count: number): number {
    return slbAdmit(this.slb!.acceptsFlood(mi), this.bridge.fdb, this.port.id, this.port.vlan.pvid, slab, desc, count, this.port);
  }

  /** 802.3ad receive rules (src/bond/receive.ts); the batch's last LACPDU waits in pendingPdu[mi]. */
  private filterLacp(mi: number, slab: Uint8Array, desc: Int32Array, count: number): number {
    const got = this.lacpGot;
    got.pdu = false;
    got.rxErrors = 0;
    const kept = lacpAdmit(this.lacp!.collecting(mi), slab, desc, count, this.pendingPdu[mi], got, this.port);
    if (got.pdu) this.pendingPduSet[mi] = true;
    for (let e = 0; e < got.rxErrors; e++) this.lacp!.rxError(mi);
    return kept;
  }

  /** LacpPolicy's transmit: one LACPDU from member i's MAC, composed at the slab's start. */
  private sendLacpdu(i: number, pdu: Lacpdu): boolean {
    const io = this.members[i].io;
    const mac = this.permanentMac[i];
    if (io === null || mac === null) return false;
    const slab = RxSlab.get().bytes;
    slab.fill(0, 0, VNET_HDR_LEN);
    const len = encodeLacpdu(slab, VNET_HDR_LEN, parseMac(mac) ?? 0, pdu);
    io.tx[0] = VNET_HDR_LEN;
    io.tx[1] = len;
    io.tx[2] = TX_OP_NONE;
    io.tx[3] = 0;
    return io.send(1) === 1;
  }

  /** The set of distributing members changed. */
  private lacpChanged(): void {
    if (this.closing) return;
    const names = Array.from(this.lacp!.dist.subarray(0, this.lacp!.distCount), (i) => this.cfg.members[i]);
    this.log.info({ distributing: names }, 'LACP: distributing members changed');
    this.refreshPortState();
  }

  /** balance-slb: one rebalancing round; announces moved MACs. Returns the number of buckets moved. */
  rebalance(): number {
    if (this.slb === null) return 0;
    const moved = this.slb.rebalance();
    if (moved.length > 0) {
      this.log.info({ buckets: moved.length }, 'balance-slb: rebalanced');
      this.announceMoved(moved);
    }
    return moved.length;
  }

  private onFailover(e: FailoverEvent): void {
    if (this.closing) return;
    const from = e.from >= 0 ? this.cfg.members[e.from] : null;
    const to = e.to >= 0 ? this.cfg.members[e.to] : null;
    if (to !== null && this.lastActive !== null && to !== this.lastActive) this.failovers++;
    if (to !== null) this.lastActive = to;
    this.syncIo();
    this.bridge.setPortState(this.port, to === null ? 'down' : 'up');
    if (to === null) {
      this.log.warn({ reason: e.reason, old_active: from, new_active: null, detection_ms: Math.round(e.detectionMs) }, 'bond down: no member up');
      return;
    }
    this.log.info({ reason: e.reason, old_active: from, new_active: to, detection_ms: Math.round(e.detectionMs) },
      from === null ? 'bond up: active member selected' : 'bond failover');
    this.scheduleAnnouncements((round) => this.announce(round), e.newActiveUpForMs);
  }

  /**
   * num_grat_arp rounds of announcements, peer_notif_delay ms apart (0: the miimon interval, as in the
   * bonding driver, where send_peer_notif counts miimon ticks); the first at once: until the switch hears from the new
   * link, frames to silent VMs still go to the old one. When the new member's carrier has only just come back, the
   * far end may not forward yet and may lose that first round, so one extra round follows one interval after the last.
   */
  private scheduleAnnouncements(announceRound: (round: number) => void, newActiveUpForMs = Infinity): void {
    for (const t of this.notifyTimers) clearTimeout(t);
    this.notifyTimers = [];
    const gapMs = this.cfg.peerNotifDelayMs > 0 ? this.cfg.peerNotifDelayMs : this.cfg.miimonMs > 0 ? this.cfg.miimonMs : 100;
    const rounds = this.cfg.numGratArp + (this.cfg.numGratArp > 0 && newActiveUpForMs < gapMs ? 1 : 0);
    for (let r = 0; r < rounds; r++) {
      if (r === 0) {
        announceRound(0);
      } else {
        const t = setTimeout(this.wrap(`bond ${this.cfg.name}: announce`, () => announceRound(r)), r * gapMs);
        t.unref();
        this.notifyTimers.push(t);
      }
    }
  }

  /**
   * balance-slb: announce the MACs of moved buckets. A series of rounds already running for earlier moves is
   * restarted with the union, so no moved bucket misses its rounds; the set empties after the series' last round.
   */
  private announceMoved(moved: readonly number[]): void {
    for (const b of moved) this.slbPending.add(b);
    const rounds = this.cfg.numGratArp;
    this.scheduleAnnouncements((round) => {
      this.announceBuckets([...this.slbPending]);
      if (round >= rounds - 1) this.slbPending.clear();
    });
  }

  /**
   * The VID a frame of internal `vid` leaves the bond with (what slbKey hashes): 0 where the uplink sends that VLAN
   * untagged; else the VID (a tagged frame passing a VLAN-unaware bridge as it is keeps its tag, whose VID is the
   * FDB's).
   */
  private wireVid(vid: number): number {
    return this.port.vlan.egress[vid] === EGRESS_UNTAGGED ? 0 : vid;
  }

  /** balance-slb: local (MAC, VLAN)s by the member their bucket maps to now; only buckets in `only` when given. */
  private localMacsByMember(only?: readonly number[]): { macs: number[]; vids: number[]; ips: number[] }[] {
    const slb = this.slb!;
    const want = only === undefined ? null : new Uint8Array(BUCKETS);
    if (want !== null) for (const b of only!) want[b] = 1;
    const out = this.members.map(() => ({ macs: [] as number[], vids: [] as number[], ips: [] as number[] }));
    const bondId = this.port.id;
    this.bridge.fdb.forEach(0, (e) => {
      if (e.port === bondId) return;
      const h = macVidHash(macHi(e.mac), macLo(e.mac), this.wireVid(e.vid));
      if (want !== null && want[h & (BUCKETS - 1)] === 0) return;
      const m = slb.memberOf(h);
      if (m < 0) return;
      out[m].macs.push(e.mac);
      out[m].vids.push(e.vid);
      out[m].ips.push(0);
      if (e.ipv4 !== 0) {
        out[m].macs.push(e.mac);
        out[m].vids.push(e.vid);
        out[m].ips.push(e.ipv4);
      }
    });
    return out;
  }

  /** balance-slb: one RARP (and gratuitous ARP) per local MAC of the buckets, on the member each bucket maps to now. */
  private announceBuckets(buckets: readonly number[]): number {
    let sent = 0;
    const byMember = this.localMacsByMember(buckets);
    byMember.forEach((g, i) => {
      const io = this.members[i].io;
      if (io === null || g.macs.length === 0) return;
      sent += sendRarps(io, RxSlab.get().bytes, this.port.vlan, g.macs, g.vids, g.ips);
    });
    this.log.info({ buckets: buckets.length, sent }, 'announced moved MACs (RARP)');
    return sent;
  }

  /** active-backup: one RARP per (MAC, VLAN) of every FDB entry behind a non-uplink port, on the active member. */
  announce(round: number): number {
    const io = this.port.io;
    if (io === null || this.policy === null) return 0;
    const macs: number[] = [];
    const vids: number[] = [];
    const ips: number[] = [];
    const bondId = this.port.id;
    let garps = 0;
    this.bridge.fdb.forEach(0, (e) => {
      if (e.port === bondId) return;
      // one RARP per (MAC, VLAN) ...
      macs.push(e.mac);
      vids.push(e.vid);
      ips.push(0);
      // ... and a gratuitous ARP for the IPv4 address it was seen using
      if (e.ipv4 !== 0) {
        macs.push(e.mac);
        vids.push(e.vid);
        ips.push(e.ipv4);
        garps++;
      }
    });
    const sent = sendRarps(io, RxSlab.get().bytes, this.port.vlan, macs, vids, ips);
    this.log.info({ round, macs: macs.length - garps, gratuitous_arps: garps, sent, member: this.policy.active >= 0 ? this.cfg.members[this.policy.active] : null }, 'announced VM MACs (RARP)');
    return sent;
  }

  readSocketDrops(): void {
    for (const m of this.members) m.readSocketDrops();
  }

  /** Members are uplinks (no TAP tx_dropped): kernel_drops stays 0 on the bond. */
  readKernelDrops(): void {
    for (const m of this.members) m.readKernelDrops();
  }

  /** bond set-active: force a member (active-backup only). */
  setActive(member: string): string | null {
    if (this.policy === null) return `bond ${this.cfg.name} is ${this.mode}: set-active applies to active-backup bonds`;
    const i = this.policy.index(member);
    if (i < 0) return `${member} is not a member of ${this.cfg.name}`;
    return this.policy.setActive(i);
  }

  /** What --takeover carries: SLB assignments or LACP state. */
  runtimeState(): BondRuntimeState {
    return {
      mode: this.mode, members: [...this.cfg.members],
      ...(this.slb !== null ? { slb: this.slb.snapshot() } : {}),
      ...(this.lacp !== null ? { lacp: this.lacp.snapshot() } : {}),
    };
  }

  show(): BondShow {
    const ab = this.policy;
    const a = ab !== null ? ab.active : this.slb !== null ? this.slb.active : -1;
    const up = ab !== null ? a >= 0 : this.port.state === 'up';
    const slbMacs = this.slb !== null ? this.localMacsByMember() : null;
    const slbLoads = this.slb !== null ? this.slb.loads() : null;
    const lacp = this.lacp;
    const out: BondShow = {
      name: this.cfg.name,
      mode: this.mode,
      active: a >= 0 ? this.cfg.members[a] : null,
      primary: this.cfg.primary,
      primary_reselect: this.cfg.primaryReselect,
      mii_status: up ? 'up' : 'down',
      miimon: this.cfg.miimonMs,
      updelay: this.cfg.updelayMs,
      downdelay: this.cfg.downdelayMs,
      num_grat_arp: this.cfg.numGratArp,
      peer_notif_delay: this.cfg.peerNotifDelayMs,
      members: this.members.map((m) => {
        const pending = this.linkDelay?.pending(m.index) ?? null;
        const link = ab !== null ? ab.link[m.index] : pending === 'going down' ? 'fail' : pending === 'going up' ? 'back' : this.memberUp[m.index] ? 'up' : 'down';
        const row: BondMemberShow = {
          name: m.name,
          mii_status: link === 'up' || link === 'fail' ? 'up' as const : 'down' as const,
          link_failures: ab !== null ? ab.linkFailures[m.index] : this.linkFailures[m.index],
          state: link,
          permanent_hw_addr: this.permanentMac[m.index],
          tx_bytes: m.port.nativeCounter(PortCounter.TxBytes),
        };
        if (this.txIo !== null) row.tx_packets = this.txIo.txPackets[m.index];
        if (slbMacs !== null) {
          row.load = Math.round(slbLoads![m.index]);
          row.macs = slbMacs[m.index].macs.filter((_x, j) => slbMacs[m.index].ips[j] === 0).map((x, j) => {
            const vid = slbMacs[m.index].vids.filter((_v, q) => slbMacs[m.index].ips[q] === 0)[j];
            return vid > 0 ? `${formatMac(x)} vlan ${vid}` : formatMac(x);
          });
        }
        if (lacp !== null) {
          const p = lacp.ports[m.index];
          row.lacp = {
            rx_state: p.rx, mux_state: p.mux, selected: p.selected, partner_mismatch: p.partnerMismatch,
            actor: infoShow({ ...p.actor, system: lacp.system }), partner: infoShow(p.partner),
            lacpdus_rx: p.rxLacpdus, lacpdus_tx: p.txLacpdus, lacpdus_bad: p.rxErrors,
            actor_churn: p.actorChurned ? 'churned' : 'no churn', partner_churn: p.partnerChurned ? 'churned' : 'no churn',
            actor_churn_count: p.actorChurnCount, partner_churn_count: p.partnerChurnCount,
          };
        }
        return row;
      }),
      failovers: this.failovers,
    };
    if (this.slb !== null) {
      out.rebalance_interval = this.cfg.rebalanceIntervalMs;
      out.rebalance_moves = this.slb.rebalanceMoves;
      out.failover_moves = this.slb.failoverMoves;
    }
    if (lacp !== null) {
      const ap = lacp.aggregatorPartner;
      out.lacp = {
        activity: this.cfg.lacp, rate: this.cfg.lacpRate, hash: this.cfg.hash, system_priority: this.cfg.systemPriority,
        system: formatMac(lacp.system), key: lacp.opts.key,
        aggregator_partner: ap === null ? null : { system_priority: ap.systemPriority, system: formatMac(ap.system), key: ap.key },
        distributing: Array.from(lacp.dist.subarray(0, lacp.distCount), (i) => this.cfg.members[i]),
      };
    }
    return out;
  }

  close(): void {
    this.closing = true;
    this.bridge.setPortState(this.port, 'absent');
    if (this.miimon !== null) clearInterval(this.miimon);
    this.miimon = null;
    if (this.modeTimer !== null) clearInterval(this.modeTimer);
    this.modeTimer = null;
    for (const t of this.notifyTimers) clearTimeout(t);
    this.notifyTimers = [];
    this.policy?.stop();
    this.linkDelay?.stop();
    for (const m of this.members) m.close('absent');
  }
}
