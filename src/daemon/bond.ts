// An active-backup bond of two uplink members as ONE logical bridge port.
//
//   BondPort    the BridgePort the engine and the FDB see (name = the bond's name). Its `io` is the
//               active member's socket, so the engine transmits on the active member only.
//   BondMember  an AF_PACKET port on one member netdev (the attach/uplink lifecycle of ports.ts:
//               waits while missing, re-opens when re-created). Its frames go to the bridge as the
//               bond's when it is the active member, and are dropped and counted (`backup_member`)
//               otherwise. Its carrier goes to the ActiveBackup policy.
//   Bond        wiring: policy decisions -> BondPort.io/state, failover log line, RARP announcements
//               (num_grat_arp times, peer_notif_delay apart), a miimon safety poll.

import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { Bridge } from '../bridge/bridge.js';
import { BridgePort, type PortState } from '../bridge/port.js';
import { PortCounter } from '../io/native-types.js';
import { IFF_RUNNING, IFF_UP, netdev, RxSlab } from '../io/native.js';
import { ActiveBackup, type FailoverEvent, type PrimaryReselect, realClock } from '../bond/active-backup.js';
import { sendRarps } from '../bond/announce.js';
import { type CallbackWrapper, ManagedPort, type PortHandle } from './ports.js';

export interface BondConfig {
  name: string;
  members: [string, string];
  primary: string;
  primaryReselect: PrimaryReselect;
  miimonMs: number;
  updelayMs: number;
  downdelayMs: number;
  numGratArp: number;
  peerNotifDelayMs: number;
}

/** The bond as a bridge port: counters of both members' sockets add up here. */
export class BondPort extends BridgePort {
  members: BondMember[] = [];
  dropBackupMember = 0;

  override nativeCounter(i: PortCounter): number {
    let sum = this.savedCounters[i];
    for (const m of this.members) sum += m.port.nativeCounter(i);
    return sum;
  }

  override drops(): ReturnType<BridgePort['drops']> & { backup_member: number } {
    return { ...super.drops(), backup_member: this.dropBackupMember };
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
    const bondPort = this.bond.port;
    if (this.bond.policy.active !== this.index) {
      bondPort.dropBackupMember += count;
      return;
    }
    this.bridge.receive(bondPort, slab, desc, count);
  }
}

export interface BondShow {
  name: string;
  mode: 'active-backup';
  active: string | null;
  primary: string;
  primary_reselect: PrimaryReselect;
  mii_status: 'up' | 'down';
  miimon: number;
  updelay: number;
  downdelay: number;
  num_grat_arp: number;
  peer_notif_delay: number;
  members: { name: string; mii_status: 'up' | 'down'; link_failures: number; state: string; permanent_hw_addr: string | null }[];
}

export class Bond implements PortHandle {
  readonly kind = 'bond' as const;
  readonly mtuMismatches = 0;
  readonly cfg: BondConfig;
  readonly port: BondPort;
  readonly members: [BondMember, BondMember];
  readonly policy: ActiveBackup;
  private readonly bridge: Bridge;
  private readonly log: Logger;
  private miimon: NodeJS.Timeout | null = null;
  private notifyTimers: NodeJS.Timeout[] = [];
  private readonly permanentMac: (string | null)[] = [null, null];
  /** Set by close(): members closing on shutdown is not a link failure (no failover, no announcement). */
  private closing = false;
  private readonly wrap: CallbackWrapper;

  constructor(cfg: BondConfig, bridge: Bridge, id: number, mtu: number, log: Logger, wrap: CallbackWrapper = (_c, fn) => fn) {
    this.cfg = cfg;
    this.wrap = wrap;
    this.bridge = bridge;
    this.log = log.child({ bridge: bridge.name, bond: cfg.name });
    this.port = new BondPort(id, cfg.name, 'bond', { learning: true, flood: true, isolated: false }, mtu);
    this.policy = new ActiveBackup(
      { members: cfg.members, primary: cfg.primary, primaryReselect: cfg.primaryReselect, updelayMs: cfg.updelayMs, downdelayMs: cfg.downdelayMs },
      // the policy's updelay/downdelay timers call this from libuv: inside the daemon's exception boundary
      this.wrap(`bond ${cfg.name}: failover`, (e: FailoverEvent) => this.onFailover(e)),
      { ...realClock, setTimer: (fn, ms) => realClock.setTimer(this.wrap(`bond ${cfg.name}: updelay/downdelay`, fn), ms) },
    );
    this.members = [
      new BondMember(this, 0, cfg.members[0], bridge, mtu, log, wrap),
      new BondMember(this, 1, cfg.members[1], bridge, mtu, log, wrap),
    ];
    this.port.members = this.members;
    this.port.state = 'down';
  }

  get name(): string {
    return this.cfg.name;
  }

  /** Opens both members (each waits while its netdev is missing) and starts the miimon poll. */
  open(): void {
    for (const m of this.members) {
      m.open();
      const info = netdev.info(m.name);
      if (info !== null) this.permanentMac[m.index] = info.mac;
    }
    if (this.cfg.miimonMs > 0) {
      this.miimon = setInterval(this.wrap(`bond ${this.cfg.name}: miimon`, () => this.pollCarrier()), this.cfg.miimonMs);
      this.miimon.unref();
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
      this.policy.carrierChanged(m.index, up, 'miimon');
    }
  }

  /** A member's link state as its ManagedPort lifecycle sees it. */
  memberState(m: BondMember, state: PortState): void {
    if (this.closing) return;
    if (state === 'absent') {
      this.policy.vanished(m.index);
    } else {
      if (m.io !== null) {
        const info = netdev.info(m.name);
        if (info !== null) this.permanentMac[m.index] = info.mac;
      }
      this.policy.carrierChanged(m.index, state === 'up', 'rtnetlink');
    }
    // the active member's socket may have been replaced (re-created netdev)
    this.syncIo();
  }

  /** The bond port transmits on the active member's socket, with its MTU. */
  syncIo(): void {
    const a = this.policy.active;
    const io = a >= 0 ? this.members[a].io : null;
    this.port.io = io;
    if (a >= 0) this.port.mtu = this.members[a].port.mtu;
  }

  private onFailover(e: FailoverEvent): void {
    if (this.closing) return;
    const from = e.from >= 0 ? this.cfg.members[e.from] : null;
    const to = e.to >= 0 ? this.cfg.members[e.to] : null;
    this.syncIo();
    this.bridge.setPortState(this.port, to === null ? 'down' : 'up');
    if (to === null) {
      this.log.warn({ reason: e.reason, old_active: from, new_active: null, detection_ms: Math.round(e.detectionMs) }, 'bond down: no member up');
      return;
    }
    this.log.info({ reason: e.reason, old_active: from, new_active: to, detection_ms: Math.round(e.detectionMs) },
      from === null ? 'bond up: active member selected' : 'bond failover');
    this.scheduleAnnouncements(e.newActiveUpForMs);
  }

  /**
   * num_grat_arp rounds of RARPs on the active member, peer_notif_delay ms apart (0: the miimon interval, as in the
   * bonding driver, where send_peer_notif counts miimon ticks); the first at once: until the switch hears from the new
   * link, frames to silent VMs still go to the old one, where the bond drops them as backup traffic. When the new
   * member's carrier has only just come back, the far end may not forward yet and may lose that first round, so one
   * extra round follows one interval after the last.
   */
  private scheduleAnnouncements(newActiveUpForMs: number): void {
    for (const t of this.notifyTimers) clearTimeout(t);
    this.notifyTimers = [];
    const gapMs = this.cfg.peerNotifDelayMs > 0 ? this.cfg.peerNotifDelayMs : this.cfg.miimonMs > 0 ? this.cfg.miimonMs : 100;
    const rounds = this.cfg.numGratArp + (this.cfg.numGratArp > 0 && newActiveUpForMs < gapMs ? 1 : 0);
    for (let round = 0; round < rounds; round++) {
      if (round === 0) {
        this.announce(round);
      } else {
        const t = setTimeout(this.wrap(`bond ${this.cfg.name}: announce`, () => this.announce(round)), round * gapMs);
        t.unref();
        this.notifyTimers.push(t);
      }
    }
  }

  /** One RARP per (MAC, VLAN) of every FDB entry behind a non-uplink port. */
  announce(round: number): number {
    const io = this.port.io;
    if (io === null) return 0;
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

  /** bond set-active: force a member. */
  setActive(member: string): string | null {
    const i = this.policy.index(member);
    if (i < 0) return `${member} is not a member of ${this.cfg.name}`;
    return this.policy.setActive(i);
  }

  show(): BondShow {
    const a = this.policy.active;
    return {
      name: this.cfg.name,
      mode: 'active-backup',
      active: a >= 0 ? this.cfg.members[a] : null,
      primary: this.cfg.primary,
      primary_reselect: this.cfg.primaryReselect,
      mii_status: a >= 0 ? 'up' : 'down',
      miimon: this.cfg.miimonMs,
      updelay: this.cfg.updelayMs,
      downdelay: this.cfg.downdelayMs,
      num_grat_arp: this.cfg.numGratArp,
      peer_notif_delay: this.cfg.peerNotifDelayMs,
      members: this.members.map((m) => ({
        name: m.name,
        mii_status: this.policy.link[m.index] === 'up' || this.policy.link[m.index] === 'fail' ? 'up' as const : 'down' as const,
        link_failures: this.policy.linkFailures[m.index],
        state: this.policy.link[m.index],
        permanent_hw_addr: this.permanentMac[m.index],
      })),
    };
  }

  close(): void {
    this.closing = true;
    this.bridge.setPortState(this.port, 'absent');
    if (this.miimon !== null) clearInterval(this.miimon);
    this.miimon = null;
    for (const t of this.notifyTimers) clearTimeout(t);
    this.notifyTimers = [];
    this.policy.stop();
    for (const m of this.members) m.close('absent');
  }
}
