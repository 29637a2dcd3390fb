// 802.3ad / LACP policy (IEEE 802.1AX-2014 §6.4; the semantics of Linux drivers/net/bonding/bond_3ad.c and Open
// vSwitch's lib/lacp.c), without I/O. One aggregator per bond.
//
// Per member port, driven by received LACPDUs (rx()) and a coarse shared tick (tick(nowMs), every TICK_MS):
//
//   receive    DISABLED (no carrier) -> EXPIRED/DEFAULTED -> CURRENT on a LACPDU. In CURRENT, current_while
//              (3 s with a short actor timeout, 90 s with a long one: 3 x the interval the partner was asked to
//              send at) runs out -> EXPIRED (partner out of sync, we ask for fast rate) -> after 3 s more,
//              DEFAULTED: no partner, the port is unselected.
//   periodic   with an active actor or an active partner: every 1 s when the partner asks for short timeouts
//              (or has not been heard), else every 30 s; a change of what we would send (NTT) sends at once, at
//              most 3 LACPDUs per second per port.
//   selection  candidates: ports with carrier, a CURRENT partner that aggregates. The aggregator keeps the
//              partner (system priority, system, key) of ports already attached; otherwise it takes the partner
//              of the candidate with the best (port priority, port). Candidates with another partner are not
//              selected (`partner_mismatch`): no mixing of two switches.
//   mux        DETACHED -> WAITING (wait_while, Aggregate_Wait_Time 2 s) -> ATTACHED (actor in sync) ->
//              COLLECTING_DISTRIBUTING when the partner is in sync; back when either stops. Frames are accepted
//              from then on, but sent only once the partner says it is collecting too (independent control's
//              rule for distributing), so nothing is sent to a partner that would drop it.
//   churn      actor (partner) churn: the actor's (partner's) sync bit stayed false for 60 s while the port had
//              carrier; counted once per episode.
//
// A member accepts data only in COLLECTING_DISTRIBUTING and carries it only when, beyond that, its partner is
// collecting (dist: the list the transmit hash chooses from). Time is injected through nowMs arguments: tests drive it without waiting.

import {
  emptyInfo, LACP_ACTIVITY, LACP_AGGREGATION, LACP_COLLECTING, LACP_DEFAULTED, LACP_DISTRIBUTING, LACP_EXPIRED, LACP_SYNC,
  LACP_TIMEOUT, type LacpInfo, type Lacpdu,
} from '../frame/lacp.js';

export const TICK_MS = 100;
export const FAST_PERIODIC_MS = 1000;
export const SLOW_PERIODIC_MS = 30_000;
export const SHORT_TIMEOUT_MS = 3 * FAST_PERIODIC_MS;
export const LONG_TIMEOUT_MS = 3 * SLOW_PERIODIC_MS;
export const AGGREGATE_WAIT_MS = 2000;
export const CHURN_DETECTION_MS = 60_000;
const TX_PER_SECOND = 3;

export type RxState = 'disabled' | 'expired' | 'defaulted' | 'current';
export type MuxState = 'detached' | 'waiting' | 'attached' | 'collecting_distributing';

export interface LacpOptions {
  memberCount: number;
  active: boolean;
  fast: boolean;
  systemPriority: number;
  portPriority: number;
  /** actor key of every member (one aggregator) */
  key: number;
}

export class LacpPort {
  readonly index: number;
  enabled = false;
  rx: RxState = 'disabled';
  mux: MuxState = 'detached';
  selected = false;
  /** selection refused this port because its partner is not the aggregator's */
  partnerMismatch = false;
  readonly actor: LacpInfo;
  partner: LacpInfo = emptyInfo();
  currentWhileEndMs = 0;
  waitWhileEndMs = 0;
  nextPeriodicMs = 0;
  ntt = false;
  txWindowStartMs = -Infinity;
  txInWindow = 0;
  rxLacpdus = 0;
  txLacpdus = 0;
  rxErrors = 0;
  actorOutOfSyncSinceMs = 0;
  partnerOutOfSyncSinceMs = 0;
  actorChurned = false;
  partnerChurned = false;
  actorChurnCount = 0;
  partnerChurnCount = 0;

  constructor(index: number, actor: LacpInfo) {
    this.index = index;
    this.actor = actor;
  }
}

export interface LacpSnapshot {
  ports: { partner: LacpInfo; rx: RxState; mux: MuxState; actorState: number }[];
}

function samePartnerSystem(a: LacpInfo, b: LacpInfo): boolean {
  return a.system === b.system && a.systemPriority === b.systemPriority && a.key === b.key;
}

function sameInfo(a: LacpInfo, b: LacpInfo): boolean {
  return samePartnerSystem(a, b) && a.port === b.port && a.portPriority === b.portPriority && (a.state & LACP_AGGREGATION) === (b.state & LACP_AGGREGATION);
}

export class LacpPolicy {
  readonly opts: LacpOptions;
  readonly ports: LacpPort[];
  /** actor system ID (a member's MAC), set before the first LACPDU goes out */
  system = 0;
  /** partner of the aggregator, null while no port is attached */
  aggregatorPartner: LacpInfo | null = null;
  /** indices of ports in COLLECTING_DISTRIBUTING, first distCount entries valid */
  readonly dist: Int8Array;
  distCount = 0;
  /** the scratch PDU handed to send() */
  private readonly pdu: Lacpdu = { version: 1, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 };
  private readonly send: (port: number, pdu: Lacpdu) => boolean;
  private readonly onDistributingChange: () => void;

  constructor(opts: LacpOptions, send: (port: number, pdu: Lacpdu) => boolean, onDistributingChange: () => void) {
    this.opts = opts;
    this.send = send;
    this.onDistributingChange = onDistributingChange;
    this.dist = new Int8Array(opts.memberCount);
    this.ports = [];
    for (let i = 0; i < opts.memberCount; i++) {
      this.ports.push(new LacpPort(i, {
        systemPriority: opts.systemPriority, system: 0, key: opts.key, portPriority: opts.portPriority, port: i + 1,
        state: (opts.active ? LACP_ACTIVITY : 0) | (opts.fast ? LACP_TIMEOUT : 0) | LACP_AGGREGATION | LACP_DEFAULTED,
      }));
    }
  }

  /** The port may carry LACPDUs and data (carrier up and a socket), or not. */
  setEnabled(i: number, on: boolean, nowMs: number): void {
    const p = this.ports[i];
    if (p.enabled === on) return;
    p.enabled = on;
    if (on) {
      this.toDefaulted(p);
      p.actorOutOfSyncSinceMs = nowMs;
      p.partnerOutOfSyncSinceMs = nowMs;
      p.ntt = this.opts.active;
      p.nextPeriodicMs = nowMs;
    } else {
      p.rx = 'disabled';
      p.partner = emptyInfo();
      p.selected = false;
    }
    this.run(nowMs);
  }

  private toDefaulted(p: LacpPort): void {
    p.rx = 'defaulted';
    p.partner = emptyInfo();
    p.actor.state = (p.actor.state | LACP_DEFAULTED) & ~LACP_EXPIRED;
    p.selected = false;
  }

  /** A LACPDU decoded from port i. */
  rx(i: number, pdu: Lacpdu, nowMs: number): void {
    const p = this.ports[i];
    p.rxLacpdus++;
    if (!p.enabled) return;
    const a = p.actor;
    a.system = this.system;
    // the sender's view of us: does it match what we are? (802.1AX recordPDU / choose_matched)
    const them = pdu.partner;
    const matched = (them.port === a.port && them.portPriority === a.portPriority && them.system === a.system
      && them.systemPriority === a.systemPriority && them.key === a.key
      && (them.state & LACP_AGGREGATION) === (a.state & LACP_AGGREGATION)) || (pdu.actor.state & LACP_AGGREGATION) === 0;
    // update_Selected: a different partner than recorded makes the port unselected
    if (p.rx === 'current' && !sameInfo(p.partner, pdu.actor)) p.selected = false;
    p.partner = { ...pdu.actor, state: (pdu.actor.state & ~LACP_SYNC) | (matched && (pdu.actor.state & LACP_SYNC) ? LACP_SYNC : 0) };
    // update_NTT: the partner's view of our state is stale
    const mask = LACP_ACTIVITY | LACP_TIMEOUT | LACP_SYNC | LACP_AGGREGATION;
    if (!matched || (them.state & mask) !== (a.state & mask)) p.ntt = true;
    p.rx = 'current';
    a.state &= ~(LACP_DEFAULTED | LACP_EXPIRED);
    p.currentWhileEndMs = nowMs + (a.state & LACP_TIMEOUT ? SHORT_TIMEOUT_MS : LONG_TIMEOUT_MS);
    this.run(nowMs);
  }

  /** Timers: current_while, wait_while, periodic transmission, churn. */
  tick(nowMs: number): void {
    for (const p of this.ports) {
      if (!p.enabled) continue;
      if (p.rx === 'current' && nowMs >= p.currentWhileEndMs) {
        p.rx = 'expired';
        p.partner = { ...p.partner, state: (p.partner.state & ~LACP_SYNC) | LACP_TIMEOUT };
        p.actor.state |= LACP_EXPIRED;
        p.currentWhileEndMs = nowMs + SHORT_TIMEOUT_MS;
        p.ntt = true;
      } else if (p.rx === 'expired' && nowMs >= p.currentWhileEndMs) {
        this.toDefaulted(p);
      }
      if (this.periodic(p) && nowMs >= p.nextPeriodicMs) p.ntt = true;
    }
    this.run(nowMs);
  }

  /** Whether port p transmits periodically (one side active), and at which interval. */
  private periodic(p: LacpPort): boolean {
    return this.opts.active || (p.rx === 'current' && (p.partner.state & LACP_ACTIVITY) !== 0);
  }

  private periodicMs(p: LacpPort): number {
    return p.rx !== 'current' || (p.partner.state & LACP_TIMEOUT) !== 0 ? FAST_PERIODIC_MS : SLOW_PERIODIC_MS;
  }

  /** Selection, mux, churn and transmission after any event. */
  private run(nowMs: number): void {
    this.select();
    for (const p of this.ports) this.muxStep(p, nowMs);
    this.rebuildDist();
    for (const p of this.ports) {
      this.churn(p, nowMs);
      this.transmit(p, nowMs);
    }
  }

  private candidate(p: LacpPort): boolean {
    return p.enabled && p.rx === 'current' && (p.partner.state & LACP_AGGREGATION) !== 0 && p.partner.system !== 0;
  }

  private select(): void {
    // the aggregator keeps its partner while a port with that partner is attached (waiting or beyond)
    let agg: LacpInfo | null = null;
    for (const p of this.ports) {
      if (p.mux !== 'detached' && this.candidate(p) && this.aggregatorPartner !== null && samePartnerSystem(p.partner, this.aggregatorPartner)) {
        agg = this.aggregatorPartner;
        break;
      }
    }
    if (agg === null) {
      let best: LacpPort | null = null;
      for (const p of this.ports) {
        if (!this.candidate(p)) continue;
        if (best === null || p.actor.portPriority < best.actor.portPriority || (p.actor.portPriority === best.actor.portPriority && p.actor.port < best.actor.port)) best = p;
      }
      agg = best === null ? null : { ...best.partner };
    }
    this.aggregatorPartner = agg;
    for (const p of this.ports) {
      const c = this.candidate(p);
      p.partnerMismatch = c && agg !== null && !samePartnerSystem(p.partner, agg);
      p.selected = c && agg !== null && !p.partnerMismatch;
    }
  }

  /** One mux step (repeated until stable); true when the port entered or left COLLECTING_DISTRIBUTING. */
  private muxStep(p: LacpPort, nowMs: number): boolean {
    const before = p.mux;
    for (let guard = 0; guard < 4; guard++) {
      const partnerSync = (p.partner.state & LACP_SYNC) !== 0;
      const prev = p.mux;
      switch (p.mux) {
        case 'detached':
          if (p.selected) {
            p.mux = 'waiting';
            p.waitWhileEndMs = nowMs + AGGREGATE_WAIT_MS;
          }
          break;
        case 'waiting':
          if (!p.selected) p.mux = 'detached';
          else if (nowMs >= p.waitWhileEndMs) this.attach(p);
          break;
        case 'attached':
          if (!p.selected) this.detach(p);
          else if (partnerSync) this.collectDistribute(p, true);
          break;
        case 'collecting_distributing':
          if (!p.selected || !partnerSync) {
            this.collectDistribute(p, false);
            if (!p.selected) this.detach(p);
          }
          break;
      }
      if (p.mux === prev) break;
    }
    return (before === 'collecting_distributing') !== (p.mux === 'collecting_distributing');
  }

  private attach(p: LacpPort): void {
    p.mux = 'attached';
    p.actor.state |= LACP_SYNC;
    p.ntt = true;
  }

  private detach(p: LacpPort): void {
    p.mux = 'detached';
    p.actor.state &= ~LACP_SYNC;
    p.ntt = true;
  }

  private collectDistribute(p: LacpPort, on: boolean): void {
    if (on) {
      p.mux = 'collecting_distributing';
      p.actor.state |= LACP_COLLECTING | LACP_DISTRIBUTING;
    } else {
      p.mux = 'attached';
      p.actor.state &= ~(LACP_COLLECTING | LACP_DISTRIBUTING);
    }
    p.ntt = true;
  }

  /** Recomputes the distributing list; tells the owner when it changed. */
  private rebuildDist(): void {
    let n = 0;
    let changed = false;
    for (const p of this.ports) {
      if (p.mux !== 'collecting_distributing' || (p.partner.state & LACP_COLLECTING) === 0) continue;
      if (n >= this.distCount || this.dist[n] !== p.index) changed = true;
      this.dist[n++] = p.index;
    }
    if (n !== this.distCount) changed = true;
    this.distCount = n;
    if (changed) this.onDistributingChange();
  }

  private churn(p: LacpPort, nowMs: number): void {
    if (!p.enabled) return;
    if (p.actor.state & LACP_SYNC) {
      p.actorOutOfSyncSinceMs = nowMs;
      p.actorChurned = false;
    } else if (!p.actorChurned && nowMs - p.actorOutOfSyncSinceMs >= CHURN_DETECTION_MS) {
      p.actorChurned = true;
      p.actorChurnCount++;
    }
    if (p.partner.state & LACP_SYNC) {
      p.partnerOutOfSyncSinceMs = nowMs;
      p.partnerChurned = false;
    } else if (!p.partnerChurned && nowMs - p.partnerOutOfSyncSinceMs >= CHURN_DETECTION_MS) {
      p.partnerChurned = true;
      p.partnerChurnCount++;
    }
  }

  private transmit(p: LacpPort, nowMs: number): void {
    if (!p.enabled || !p.ntt || !this.periodic(p)) {
      if (!this.periodic(p)) p.ntt = false;
      return;
    }
    if (nowMs - p.txWindowStartMs >= FAST_PERIODIC_MS) {
      p.txWindowStartMs = nowMs;
      p.txInWindow = 0;
    }
    if (p.txInWindow >= TX_PER_SECOND) return; // NTT stays set: sent at the next tick of a new window
    p.actor.system = this.system;
    const pdu = this.pdu;
    pdu.actor = p.actor;
    pdu.partner = p.partner;
    if (this.send(p.index, pdu)) {
      p.txLacpdus++;
      p.txInWindow++;
    }
    p.ntt = false;
    p.nextPeriodicMs = nowMs + this.periodicMs(p);
  }

  /** Counts a LACPDU from port i that did not decode. */
  rxError(i: number): void {
    this.ports[i].rxErrors++;
  }

  /** True when port i accepts data frames. */
  collecting(i: number): boolean {
    return this.ports[i].mux === 'collecting_distributing';
  }

  /** Member for a frame whose transmit hash is h, -1 when none distributes. */
  choose(h: number): number {
    return this.distCount === 0 ? -1 : this.dist[h % this.distCount];
  }

  /** State for --takeover: the partner sees no change after a restart that restores it. */
  snapshot(): LacpSnapshot {
    return { ports: this.ports.map((p) => ({ partner: { ...p.partner }, rx: p.rx, mux: p.mux, actorState: p.actor.state })) };
  }

  /**
   * Enables port i with the state a previous daemon had (--takeover, LacpSnapshot.ports[i]): a recorded CURRENT partner
   * is current again (current_while restarts), a port that was collecting and distributing is again, without the wait,
   * and one LACPDU with the same content refreshes the partner's timer, so the partner sees no change. A record that is
   * not CURRENT enables the port as setEnabled() does.
   */
  enableRestored(i: number, sp: LacpSnapshot['ports'][number] | undefined, nowMs: number): void {
    const p = this.ports[i];
    if (sp === undefined || sp.rx !== 'current' || typeof sp.partner?.system !== 'number' || p.enabled) {
      this.setEnabled(i, true, nowMs);
      return;
    }
    p.enabled = true;
    p.partner = { ...emptyInfo(), ...sp.partner };
    p.rx = 'current';
    p.currentWhileEndMs = nowMs + (p.actor.state & LACP_TIMEOUT ? SHORT_TIMEOUT_MS : LONG_TIMEOUT_MS);
    p.actor.state &= ~(LACP_DEFAULTED | LACP_EXPIRED);
    p.actor.state |= sp.actorState & (LACP_SYNC | LACP_COLLECTING | LACP_DISTRIBUTING);
    p.mux = sp.mux === 'collecting_distributing' || sp.mux === 'attached' ? sp.mux : 'detached';
    p.actorOutOfSyncSinceMs = nowMs;
    p.partnerOutOfSyncSinceMs = nowMs;
    p.ntt = true;
    this.select();
    if (p.mux !== 'detached' && !p.selected) this.detach(p);
    this.rebuildDist();
    this.run(nowMs);
  }

  /** Restores a whole snapshot() at nowMs onto ports that have no carrier yet (enableRestored for each). */
  restore(s: LacpSnapshot, nowMs: number): string | null {
    if (!Array.isArray(s?.ports) || s.ports.length !== this.ports.length) return 'LACP state has another member count';
    s.ports.forEach((sp, i) => this.enableRestored(i, sp, nowMs));
    return null;
  }
}
