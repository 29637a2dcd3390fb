// Step "multicast" of the engine: IGMP/MLD snooping (RFC 4541) and forwarding by the multicast database.
//
// Model (Linux net/bridge br_multicast.c, per VLAN)
//   For an admitted IPv4 frame to 01:00:5e:.. or IPv6 frame to 33:33:.. in a VLAN with snooping on:
//     malformed IGMP/MLD (frame/igmp.ts, frame/mld.ts)    -> drop, counted by reason
//     query                                                -> learn a router port (general query, `auto`
//                                                             port), flood
//     PIM hello / MRD advertisement                        -> learn a router port, flood
//     report / leave / v3 report                           -> update the MDB, forward to router ports only
//                                                             (report suppression, RFC 4541 2.1.1)
//     data to 224.0.0.0/24 or ffX::1 / ffX::2              -> flood
//     data to a registered group                           -> its members whose filter takes the source,
//                                                             plus the router ports
//     data to an unregistered group                        -> flood if multicast_flood_unregistered, else
//                                                             the router ports
//   Everything else (non-IP multicast, broadcast, a VLAN with snooping off) is flooded as before.
//   With multicast_querier (in any VLAN), this.querier (src/mdb/querier.ts) hears the queries (election, per VLAN) and
//   reports (version fallback, per VLAN) and is told of leaves (group-specific queries); it sends from tick(), between
//   rx batches.
//   select() returns the candidate ports (this.cand[0 .. n-1]) or MCAST_FLOOD / MCAST_DROP; the engine
//   filters candidates with its one egress predicate (shouldDeliver), so VLAN membership, port state,
//   isolation and mirror outputs apply unchanged.
//
//   On a data-plane worker (src/dataplane/worker.ts) this.mdb is a replica of the main thread's, replaced whole under
//   the epoch sync (src/dataplane/mdb-publish.ts), and this.punt is set: a query, report, leave, PIM hello or MRD
//   advertisement is handed to this.punt for the main thread's MDB and querier (which count it), and forwarded as
//   select(learn = false) decides, exactly as the main thread forwards it; data and malformed frames are handled here.
//
//   Timers (RFC 3376 8, the kernel bridge's names): membership interval = last_member_count x
//   query_interval + query_response_interval; a leave lowers the group timer to last_member_count x
//   last_member_interval, or removes the port at once with multicast_fast_leave; a router port learnt
//   from a query or hello stays one for the membership interval, in the VLAN it was heard in only (the MDB
//   keeps router timers per (port, VLAN)); `always` ports are router ports in all their VLANs.
//
// Notes on performance
//   Per frame: one ethertype and MAC-prefix compare for non-IP multicast, a header parse into one reused
//   McastPacket, one MDB probe; candidates are written into a preallocated array and deduplicated with a
//   per-port stamp. Counters are typed-array slots. Nothing allocates.

import { type EthernetHeader, ETH_P_IPV4, ETH_P_IPV6 } from '../frame/ethernet.js';
import {
  classifyIpv4, isIpv4LinkLocalGroup, MALFORMED_REASONS, type MalformedReason, MC_DATA, MC_LEAVE, MC_MALFORMED, MC_OTHER, MC_QUERY, MC_REPORT, MC_REPORT_V3,
  MC_ROUTER, McastPacket, McastRecord, readGroupRecord, readRecordSource, REC_ALLOW, REC_BLOCK, REC_IS_EX, REC_IS_IN, REC_TO_EX,
  REC_TO_IN, V4_MAPPED,
} from '../frame/igmp.js';
import { classifyIpv6, isIpv6AllNodesOrRouters } from '../frame/mld.js';
import { Mdb, ROUTER_ALWAYS, ROUTER_AUTO, ROUTER_MODES, ROUTER_NEVER, type RouterModeName } from '../mdb/mdb.js';
import { Querier } from '../mdb/querier.js';
import { addressWords } from '../mdb/address.js';
import type { BridgePort } from './port.js';

/** select(): not a snooped frame, flood it as before */
export const MCAST_FLOOD = -1;
/** select(): malformed IGMP/MLD, drop it (counted here) */
export const MCAST_DROP = -2;

export const DEFAULT_QUERY_INTERVAL_S = 125;
export const DEFAULT_QUERY_RESPONSE_INTERVAL_MS = 10_000;
export const DEFAULT_LAST_MEMBER_COUNT = 2;
export const DEFAULT_LAST_MEMBER_INTERVAL_MS = 1000;
export const DEFAULT_MAX_GROUPS = 4096;

/**
 * Where a data-plane worker hands the IGMP/MLD control frames it reads (src/dataplane/punt-ring.ts): the main
 * thread runs them through its own select() to update its MDB and querier. Bounded; drops are counted there.
 */
export interface McastPunt {
  punt(port: number, vid: number, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader): void;
}

/** A VLAN's snooping settings (the bridge's, or a `multicast_vlans` override). */
export interface McastVlanSettings {
  snooping: boolean;
  floodUnregistered: boolean;
  /** the bridge's querier queries in this VLAN (with snooping on there) */
  querier: boolean;
}

/** A port's multicast settings. */
export interface McastPortSettings {
  router: RouterModeName;
  fastLeave: boolean;
  /** mdb_max: members on this port, 0 = no per-port cap */
  mdbMax: number;
}

export interface McastSettings extends McastVlanSettings {
  /** the querier's IPv4 source (int32, 0 = 0.0.0.0) and IPv6 link-local source (null: derived from its MAC) */
  querierIpv4: number;
  querierIpv6: Int32Array | null;
  /** `mdb`: permanent entries of the config, installed when their port is added */
  permanent: { group: string; port: string; vlan: number; source: string | null }[];
  queryIntervalS: number;
  queryResponseIntervalMs: number;
  lastMemberCount: number;
  lastMemberIntervalMs: number;
  maxGroups: number;
  /** per-VLAN overrides */
  vlans: Map<number, McastVlanSettings>;
  /** per-port settings by port name; ports not named get `portDefaults` (guests) or auto/false/0 (uplink, bond, host) */
  ports: Map<string, McastPortSettings>;
  portDefaults: McastPortSettings;
}

/** Sources one record can hand to the querier's group-and-source-specific queries (more are lowered, not asked). */
const LEAVING_SOURCES_MAX = 256;

/** Per-port counters, Float64Array slots (port id * PORT_COUNTERS + k). */
const PC_QUERIES = 0;
const PC_REPORTS = 1;
const PC_LEAVES = 2;
const PC_MALFORMED = 3;
const PORT_COUNTERS = 4;

export interface McastPortStats {
  queries_rx: number;
  reports_rx: number;
  leaves_rx: number;
  malformed_rx: number;
  mdb_entries: number;
  router: RouterModeName;
  is_router: boolean;
  fast_leave: boolean;
}

export class McastSnooping {
  readonly mdb: Mdb;
  settings: McastSettings;
  /** per VLAN: snooping on, flood unregistered groups */
  private readonly snoopVid = new Uint8Array(4096);
  private readonly floodUnregVid = new Uint8Array(4096);
  private readonly fastLeave: Uint8Array;
  /** candidate egress ports of the last select(): cand[0 .. n-1] */
  readonly cand: BridgePort[];
  private readonly stamp: Uint32Array;
  private stampSeq = 0;
  private readonly pkt = new McastPacket();
  private readonly rec = new McastRecord();
  private readonly srcWords = new Int32Array(4);
  /** sources a record stopped requesting (four words each), for the querier's group-and-source-specific queries */
  private readonly leavingSources = new Int32Array(4 * LEAVING_SOURCES_MAX);
  private readonly portCounters: Float64Array;
  /** malformed IGMP/MLD by reason (MALFORMED_REASONS order) */
  readonly malformed = new Float64Array(MALFORMED_REASONS.length);
  /** frames forwarded by the MDB (registered groups), to router ports only (reports), unregistered groups not flooded */
  readonly counters = { mdbForwarded: 0, routerOnly: 0, unregisteredToRouters: 0 };
  private gmiMs = 0;
  private lmqtMs = 0;
  /** the bridge's own querier (multicast_querier), null when off */
  querier: Querier | null = null;
  /** the free receive slab the querier composes its frames in (set by the owner; null: the querier sends nothing) */
  slab: (() => Uint8Array) | null = null;
  /** the querier's source MAC when it has no other (set by the owner) */
  querierMac = 0x020000000001;
  /** on a data-plane worker: where control frames go instead of being learned here (null: learn here) */
  punt: McastPunt | null = null;

  constructor(settings: McastSettings, maxPorts: number) {
    this.settings = settings;
    this.mdb = new Mdb({ maxGroups: settings.maxGroups, maxPorts });
    this.fastLeave = new Uint8Array(maxPorts);
    this.cand = new Array<BridgePort>(maxPorts);
    this.stamp = new Uint32Array(maxPorts);
    this.portCounters = new Float64Array(maxPorts * PORT_COUNTERS);
    this.apply(settings);
  }

  /** Takes new bridge-level settings (between batches); port settings apply at the next applyPort(). */
  apply(s: McastSettings): void {
    this.settings = s;
    this.gmiMs = s.lastMemberCount * s.queryIntervalS * 1000 + s.queryResponseIntervalMs;
    this.lmqtMs = s.lastMemberCount * s.lastMemberIntervalMs;
    for (let vid = 0; vid < 4096; vid++) {
      const v = s.vlans.get(vid) ?? s;
      this.snoopVid[vid] = v.snooping ? 1 : 0;
      this.floodUnregVid[vid] = v.floodUnregistered ? 1 : 0;
    }
    this.applyQuerier();
  }

  /** Whether VLAN `vid` snoops now. */
  snoops(vid: number): boolean {
    return this.snoopVid[vid] === 1;
  }

  /**
   * Installs the querier from the settings and querierMac: created when some VLAN has it on, dropped when none has;
   * an existing one takes the new settings and keeps its elections, version fallbacks and owed queries.
   */
  applyQuerier(): void {
    const s = this.settings;
    const on = (vid: number): boolean => this.snoopVid[vid] === 1 && (s.vlans.get(vid) ?? s).querier;
    let any = false;
    for (let vid = 0; vid < 4095 && !any; vid++) any = on(vid);
    if (!any) {
      this.querier = null;
      return;
    }
    const mac = this.querierMac;
    const m = [0, 1, 2, 3, 4, 5].map((i) => Math.floor(mac / 2 ** (8 * (5 - i))) & 0xff);
    // EUI-64 link-local of the MAC
    const ipv6 = s.querierIpv6 ?? Int32Array.from([0xfe800000 | 0, 0, ((m[0] ^ 2) << 24) | (m[1] << 16) | (m[2] << 8) | 0xff, (0xfe << 24) | (m[3] << 16) | (m[4] << 8) | m[5]]);
    const qs = {
      queryIntervalS: s.queryIntervalS, queryResponseIntervalMs: s.queryResponseIntervalMs, lastMemberCount: s.lastMemberCount,
      lastMemberIntervalMs: s.lastMemberIntervalMs,
      ipv4: s.querierIpv4, ipv6, mac,
    };
    if (this.querier === null) this.querier = new Querier(qs);
    else this.querier.reconfigure(qs);
    const en = this.querier.enabled;
    for (let vid = 0; vid < 4095; vid++) en[vid] = on(vid) ? 1 : 0;
  }

  /** Membership interval in ms (also a learnt router port's timeout). */
  get membershipIntervalMs(): number {
    return this.gmiMs;
  }

  /** Last member query time in ms. */
  get lastMemberQueryTimeMs(): number {
    return this.lmqtMs;
  }

  /** The port's settings: named, else port_defaults for guests' ports, else auto (uplink, bond, host, vxlan). */
  portSettings(port: BridgePort): McastPortSettings {
    const named = this.settings.ports.get(port.name);
    if (named !== undefined) return named;
    if (port.kind === 'tap' || port.kind === 'attach') return this.settings.portDefaults;
    return { router: 'auto', fastLeave: false, mdbMax: 0 };
  }

  /** Installs a port's router mode, fast leave and cap (a port added, or settings changed). */
  applyPort(port: BridgePort): void {
    const s = this.portSettings(port);
    const id = port.id;
    const mdb = this.mdb;
    mdb.routerMode[id] = s.router === 'always' ? ROUTER_ALWAYS : s.router === 'never' ? ROUTER_NEVER : ROUTER_AUTO;
    if (s.router !== 'auto') mdb.forgetRouter(id);
    mdb.portMax[id] = s.mdbMax;
    mdb.version++;
    this.fastLeave[id] = s.fastLeave ? 1 : 0;
    for (const e of this.settings.permanent) {
      if (e.port !== port.name) continue;
      const g = addressWords(e.group);
      if (g !== null) mdb.addStatic(e.vlan, g, id, e.source === null ? null : addressWords(e.source));
    }
  }

  /** A port is gone: its entries (permanent ones too), router timer and counters. */
  removePort(port: BridgePort): void {
    this.mdb.removePort(port.id, true);
    this.mdb.forgetRouter(port.id);
    this.portCounters.fill(0, port.id * PORT_COUNTERS, (port.id + 1) * PORT_COUNTERS);
  }

  /** A port left `up`: its learnt entries and router timer go (permanent entries stay). */
  portDown(port: BridgePort): void {
    this.mdb.removePort(port.id, false);
    this.mdb.forgetRouter(port.id);
  }

  /**
   * Step "multicast" for an admitted group-addressed frame of VLAN `vid` (hdr parsed): learns from IGMP/MLD and counts
   * (only when `learn`: trace passes false and changes nothing) and returns the number of candidate egress ports in
   * this.cand, or MCAST_FLOOD / MCAST_DROP.
   */
  select(byId: readonly (BridgePort | null)[], ports: readonly BridgePort[], ingress: BridgePort, vid: number, slab: Uint8Array, off: number, len: number, hdr: EthernetHeader, nowMs: number, learn: boolean): number {
    if (this.snoopVid[vid] === 0) return MCAST_FLOOD;
    const pkt = this.pkt;
    const p = off + hdr.payloadOffset;
    const plen = len - hdr.payloadOffset;
    let kind: number;
    if (hdr.etherType === ETH_P_IPV4 && hdr.dstHi === 0x0100 && (hdr.dstLo >>> 24) === 0x5e) kind = classifyIpv4(slab, p, plen, pkt);
    else if (hdr.etherType === ETH_P_IPV6 && hdr.dstHi === 0x3333) kind = classifyIpv6(slab, p, plen, pkt);
    else return MCAST_FLOOD;
    const id = ingress.id;
    const mdb = this.mdb;
    if (kind !== MC_DATA && kind !== MC_MALFORMED && kind !== MC_OTHER && learn && this.punt !== null) {
      // a worker: the main thread learns (and counts) it; here it is forwarded as the main thread would
      this.punt.punt(id, vid, slab, off, len, hdr);
      learn = false;
    }
    switch (kind) {
      case MC_DATA: {
        if (this.isLinkLocal(pkt.dst)) return MCAST_FLOOD;
        const gid = mdb.findGroup(vid, pkt.dst);
        if (gid < 0) {
          if (this.floodUnregVid[vid] === 1) return MCAST_FLOOD;
          if (learn) this.counters.unregisteredToRouters++;
          return this.routers(byId, ports, vid, nowMs, this.nextStamp());
        }
        const seq = this.nextStamp();
        let n = 0;
        for (let m = mdb.gHead[gid]; m !== -1; m = mdb.mNext[m]) {
          if (!mdb.takes(m, pkt.src, nowMs)) continue;
          const port = byId[mdb.mPort[m]];
          if (port === null || port === undefined || this.stamp[port.id] === seq) continue;
          this.stamp[port.id] = seq;
          this.cand[n++] = port;
        }
        if (learn) this.counters.mdbForwarded++;
        return this.routers(byId, ports, vid, nowMs, seq, n);
      }
      case MC_QUERY: {
        if (!learn) return MCAST_FLOOD;
        this.portCounters[id * PORT_COUNTERS + PC_QUERIES]++;
        // a general query: group 0.0.0.0 (::ffff:0.0.0.0 here) or ::
        const g = pkt.group;
        if (g[0] === 0 && g[1] === 0 && g[3] === 0 && (g[2] === 0 || g[2] === V4_MAPPED)) mdb.heardRouter(id, vid, nowMs + this.gmiMs);
        if (this.querier !== null) this.querier.heardQuery(vid, pkt.family, pkt.src, nowMs);
        return MCAST_FLOOD;
      }
      case MC_ROUTER:
        if (!learn) return MCAST_FLOOD;
        mdb.heardRouter(id, vid, nowMs + this.gmiMs);
        return MCAST_FLOOD;
      case MC_REPORT:
        if (!learn) return this.toRouters(byId, ports, vid, nowMs, false);
        this.portCounters[id * PORT_COUNTERS + PC_REPORTS]++;
        if (!this.isLinkLocal(pkt.group)) {
          const m = mdb.member(vid, pkt.group, id);
          if (m >= 0) mdb.setExclude(m, nowMs + this.gmiMs);
        }
        if (this.querier !== null) this.querier.heardReport(vid, pkt.family, pkt.version, nowMs, this.gmiMs);
        return this.toRouters(byId, ports, vid, nowMs, true);
      case MC_LEAVE:
        if (!learn) return this.toRouters(byId, ports, vid, nowMs, false);
        this.portCounters[id * PORT_COUNTERS + PC_LEAVES]++;
        this.leave(vid, pkt.group, id, nowMs);
        return this.toRouters(byId, ports, vid, nowMs, true);
      case MC_REPORT_V3:
        if (!learn) return this.toRouters(byId, ports, vid, nowMs, false);
        this.portCounters[id * PORT_COUNTERS + PC_REPORTS]++;
        this.records(slab, vid, id, nowMs);
        return this.toRouters(byId, ports, vid, nowMs, true);
      case MC_MALFORMED:
        if (!learn) return MCAST_DROP;
        this.portCounters[id * PORT_COUNTERS + PC_MALFORMED]++;
        this.malformed[pkt.reason]++;
        return MCAST_DROP;
      default:
        return MCAST_FLOOD;
    }
  }

  private isLinkLocal(a: Int32Array): boolean {
    return a[0] === 0 && a[1] === 0 && a[2] === V4_MAPPED ? isIpv4LinkLocalGroup(a[3]) : isIpv6AllNodesOrRouters(a);
  }

  private nextStamp(): number {
    this.stampSeq = (this.stampSeq + 1) >>> 0;
    if (this.stampSeq === 0) {
      this.stamp.fill(0);
      this.stampSeq = 1;
    }
    return this.stampSeq;
  }

  /**
   * Appends the router ports of `vid` not yet stamped to cand[n ..] (`always` ports, then the `auto` ports with a
   * running (port, vid) timer); returns the new count.
   */
  private routers(byId: readonly (BridgePort | null)[], ports: readonly BridgePort[], vid: number, nowMs: number, seq: number, n = 0): number {
    const mdb = this.mdb;
    const mode = mdb.routerMode;
    for (let k = 0; k < ports.length; k++) {
      const port = ports[k];
      if (mode[port.id] !== ROUTER_ALWAYS || this.stamp[port.id] === seq) continue;
      this.stamp[port.id] = seq;
      this.cand[n++] = port;
    }
    for (let r = mdb.rHead[vid]; r !== -1; r = mdb.rNext[r]) {
      if (mdb.rExpiryMs[r] <= nowMs) continue;
      const id = mdb.rPort[r];
      const port = byId[id];
      if (port === null || port === undefined || mode[id] !== ROUTER_AUTO || this.stamp[id] === seq) continue;
      this.stamp[id] = seq;
      this.cand[n++] = port;
    }
    return n;
  }

  private toRouters(byId: readonly (BridgePort | null)[], ports: readonly BridgePort[], vid: number, nowMs: number, count: boolean): number {
    if (count) this.counters.routerOnly++;
    return this.routers(byId, ports, vid, nowMs, this.nextStamp());
  }

  /** An IGMPv2 leave / MLDv1 done, or TO_IN {}: fast leave removes the port, else the group timer drops to LMQT. */
  private leave(vid: number, group: Int32Array, port: number, nowMs: number): void {
    const mdb = this.mdb;
    const gid = mdb.findGroup(vid, group);
    const m = gid < 0 ? -1 : mdb.findMember(gid, port);
    if (m < 0 || mdb.isStatic(m)) return;
    if (this.fastLeave[port] === 1) {
      mdb.removeMember(m);
      mdb.counters.membersLeft++;
    } else {
      mdb.lowerGroupTimer(m, nowMs + this.lmqtMs);
      // the querier asks the port whether anyone else still wants the group
      if (this.querier !== null) this.querier.leaveHeard(vid, port, group, nowMs);
    }
  }

  /** The querier (if any) owes group-and-source-specific queries for the first `n` of this.leavingSources. */
  private askSources(vid: number, port: number, group: Int32Array, n: number, nowMs: number): void {
    if (this.querier !== null && n > 0) this.querier.sourcesLeaving(vid, port, group, this.leavingSources, Math.min(n, LEAVING_SOURCES_MAX), nowMs);
  }

  /** The group records of an IGMPv3 / MLDv2 report (all checked by the codec). */
  private records(slab: Uint8Array, vid: number, port: number, nowMs: number): void {
    const pkt = this.pkt;
    const rec = this.rec;
    const src = this.srcWords;
    const mdb = this.mdb;
    const addrLen = pkt.family === 4 ? 4 : 16;
    const gmiExpiry = nowMs + this.gmiMs;
    const fast = this.fastLeave[port] === 1;
    let o = pkt.recOff;
    for (let r = 0; r < pkt.recCount; r++) {
      o = readGroupRecord(slab, o, rec, addrLen);
      if (this.isLinkLocal(rec.group)) continue;
      const nsrc = rec.nSources;
      const type = rec.type;
      if (type === REC_IS_EX || type === REC_TO_EX) {
        const m = mdb.member(vid, rec.group, port);
        if (m < 0) continue;
        mdb.setExclude(m, gmiExpiry);
        for (let i = 0; i < nsrc; i++) {
          readRecordSource(slab, rec, i, src);
          mdb.excludeSource(m, src, nowMs);
        }
      } else if (type === REC_IS_IN || type === REC_ALLOW || type === REC_TO_IN) {
        if (type === REC_TO_IN) {
          // leaving EXCLUDE mode (TO_IN {} is a leave): the group timer drops to LMQT, or the port goes
          const gid = mdb.findGroup(vid, rec.group);
          const m = gid < 0 ? -1 : mdb.findMember(gid, port);
          if (m >= 0 && mdb.isExclude(m, nowMs)) this.leave(vid, rec.group, port, nowMs);
        }
        if (nsrc > 0) {
          const m = mdb.member(vid, rec.group, port);
          if (m < 0) continue;
          for (let i = 0; i < nsrc; i++) {
            readRecordSource(slab, rec, i, src);
            mdb.allowSource(m, src, gmiExpiry);
          }
        }
        if (type === REC_TO_IN) {
          // the requested sources the record left out (just refreshed ones run out at gmiExpiry): lowered and asked
          const gid = mdb.findGroup(vid, rec.group);
          const m = gid < 0 ? -1 : mdb.findMember(gid, port);
          if (m < 0) continue;
          const n = mdb.lowerSourcesBefore(m, gmiExpiry, fast ? nowMs : nowMs + this.lmqtMs, nowMs, this.leavingSources);
          if (fast) mdb.pruneIfEmpty(m);
          else this.askSources(vid, port, rec.group, n, nowMs);
        }
      } else if (type === REC_BLOCK) {
        const gid = mdb.findGroup(vid, rec.group);
        const m = gid < 0 ? -1 : mdb.findMember(gid, port);
        if (m < 0) continue;
        let n = 0;
        for (let i = 0; i < nsrc; i++) {
          readRecordSource(slab, rec, i, src);
          if (mdb.lowerSource(m, src, fast ? nowMs : nowMs + this.lmqtMs, nowMs) && n < LEAVING_SOURCES_MAX) this.leavingSources.set(src, 4 * n++);
        }
        if (fast) mdb.pruneIfEmpty(m);
        else this.askSources(vid, port, rec.group, n, nowMs);
      }
    }
  }

  /** Periodic work (between rx batches): a budgeted ageing sweep of the MDB, and the querier's queries when due. */
  tick(nowMs: number, budget: number, ports: readonly BridgePort[]): number {
    if (this.querier !== null && this.slab !== null) this.querier.tick(nowMs, ports, this.slab(), this.mdb);
    return this.mdb.sweep(nowMs, budget);
  }

  /** The words of the counters a data-plane worker's copy counts itself (writeWorkerCounters()). */
  static workerCounterWords(maxPorts: number): number {
    return 2 + MALFORMED_REASONS.length + maxPorts;
  }

  /**
   * A worker's copy: what it counted itself (data forwarded by the MDB, unregistered data sent to router ports,
   * malformed IGMP/MLD by reason and per port), absolute, into dst[base ..] (src/dataplane/protocol.ts).
   */
  writeWorkerCounters(dst: Float64Array, base: number, maxPorts: number): void {
    dst[base] = this.counters.mdbForwarded;
    dst[base + 1] = this.counters.unregisteredToRouters;
    const r = MALFORMED_REASONS.length;
    for (let k = 0; k < r; k++) dst[base + 2 + k] = this.malformed[k];
    const n = Math.min(maxPorts, this.stamp.length);
    for (let p = 0; p < n; p++) dst[base + 2 + r + p] = this.portCounters[p * PORT_COUNTERS + PC_MALFORMED];
  }

  /**
   * The main thread: adds what a worker's copy counted since the last fold (src[base ..] against folded[base ..],
   * which is brought up to src). A copy replaced on the worker starts from zero: a smaller value adds nothing.
   */
  foldWorkerCounters(src: Float64Array, folded: Float64Array, base: number, maxPorts: number): void {
    const add = (i: number): number => {
      const d = src[base + i] - folded[base + i];
      folded[base + i] = src[base + i];
      return d > 0 ? d : 0;
    };
    this.counters.mdbForwarded += add(0);
    this.counters.unregisteredToRouters += add(1);
    const r = MALFORMED_REASONS.length;
    for (let k = 0; k < r; k++) this.malformed[k] += add(2 + k);
    const n = Math.min(maxPorts, this.stamp.length);
    for (let p = 0; p < n; p++) this.portCounters[p * PORT_COUNTERS + PC_MALFORMED] += add(2 + r + p);
  }

  /** Malformed IGMP/MLD dropped, by reason (control plane). */
  malformedByReason(): Record<MalformedReason, number> {
    const out = {} as Record<MalformedReason, number>;
    MALFORMED_REASONS.forEach((r, i) => (out[r] = this.malformed[i]));
    return out;
  }

  /** A port's counters and router state (control plane). */
  portStats(port: BridgePort, nowMs: number): McastPortStats {
    const b = port.id * PORT_COUNTERS;
    const c = this.portCounters;
    return {
      queries_rx: c[b + PC_QUERIES],
      reports_rx: c[b + PC_REPORTS],
      leaves_rx: c[b + PC_LEAVES],
      malformed_rx: c[b + PC_MALFORMED],
      mdb_entries: this.mdb.portCount[port.id],
      router: ROUTER_MODES[this.mdb.routerMode[port.id]],
      is_router: this.mdb.isRouterAnywhere(port.id, nowMs),
      fast_leave: this.fastLeave[port.id] === 1,
    };
  }
}
