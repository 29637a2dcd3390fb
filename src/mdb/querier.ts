// The bridge's own IGMP/MLD querier (multicast_querier: true), RFC 3376 6.6 / RFC 3810 7.6 as a switch does it.
//
// Model
//   Every query interval it sends a general query per family in each query VLAN, to every port of that VLAN that is up,
//   tagged or untagged as the port's VLAN rules say (a trunk gets one tagged copy per VLAN it carries). The query VLANs
//   are the VLANs in use with snooping and the querier on (`enabled`, set per VLAN from multicast_querier and its
//   multicast_vlans overrides): a port's access VLAN, native VLAN (0 on a default port), and the VLANs a trunk lists
//   (a trunk of `all` or a default port adds only its untagged VLAN: its tagged VLANs are named by other ports).
//   At start it sends `last_member_count` startup queries a quarter interval apart. Source addresses:
//   multicast_querier_ipv4 (0.0.0.0 by default: hosts answer it, and it never wins an election) and
//   multicast_querier_ipv6 (a link-local address; by default one derived from the querier's MAC, as hosts ignore MLD
//   queries from other sources).
//   Versions, per VLAN: IGMPv3 and MLDv2, or the lowest version heard in a report in that VLAN within the membership
//   interval (IGMPv2/v1, MLDv1; RFC 3376 7.3.1 / RFC 3810 8.3.1 compatibility mode).
//   Election, per VLAN and family: a query heard from a lower address (any non-zero address when ours is 0.0.0.0)
//   silences this querier in that VLAN for the other querier present interval (robustness x query interval + half the
//   query response interval); it resumes when that runs out. Other VLANs are not affected.
//
//   Group-and-source-specific queries (RFC 3376 6.6.3.2 / RFC 3810 7.6.3.2): when a port's IGMPv3/MLDv2 record stops
//   requesting sources (BLOCK_OLD_SOURCES, or TO_IN without them), the engine lowers their source timers to the last
//   member query time and tells sourcesLeaving(); the querier then sends `last_member_count` queries for (G, those
//   sources), `last_member_interval` apart, to that port, unless another querier is in charge of the VLAN and family
//   (it asks) or the VLAN's queries are in an older version (no source lists there). Each retransmission asks only the
//   sources still requested: those a report refreshed past the last member query time go in a query with the S flag
//   set (hosts answer, routers keep their timers), the others in one with it clear.
//
//   Frames are composed in the receive slab between rx batches (a timer turn, never inside a batch) and queued on each
//   port's tx queue with its tag operation, like the bond's announcements (src/bond/announce.ts); a port's queue is
//   sent whenever it is full, so no query VLAN is left out.

import type { BridgePort } from '../bridge/port.js';
import type { Mdb } from './mdb.js';
import { EGRESS_NOT_MEMBER, EGRESS_TAGGED } from '../bridge/vlan.js';
import { TX_OP_NONE, TX_OP_PUSH_TAG, VNET_HDR_LEN } from '../io/native-types.js';

const VID_COUNT = 4096;
/** group-specific queries owed at once (see Querier.leaveHeard) */
export const PENDING_MAX = 64;
/** group-and-source-specific queries owed at once, and the sources one of them carries (see Querier.sourcesLeaving) */
export const SOURCE_PENDING_MAX = 64;
export const SOURCES_PER_QUERY = 16;
/**
 * Where the queries are composed in the slab: general queries IGMPv1..v3 in slots 0..2 and MLDv1..v2 in slots 3..4,
 * group(-and-source)-specific queries from GROUP_QUERY_OFF.
 */
const SLOT = 128;
const IGMP_SLOT = [0, 0, 1, 2];
const MLD_SLOT = [0, 3, 4];
const GROUP_QUERY_OFF = 8 * SLOT;
const C_TAG = 0x8100_0000;

export interface QuerierSettings {
  queryIntervalS: number;
  queryResponseIntervalMs: number;
  lastMemberCount: number;
  lastMemberIntervalMs: number;
  /** IPv4 source as an int32 (0: 0.0.0.0) */
  ipv4: number;
  /** IPv6 link-local source, four words */
  ipv6: Int32Array;
  /** source MAC of the queries */
  mac: number;
}

export interface QuerierVlanState {
  vlan: number;
  /** the versions its queries in this VLAN have now (compatibility mode after an older report) */
  igmp_version: number;
  mld_version: number;
  /** who queries in this VLAN, per family: this bridge, another querier (its address), or nobody yet */
  ipv4: { querier: 'self' | 'other'; other_address: string | null; other_timer_s: number };
  ipv6: { querier: 'self' | 'other'; other_address: string | null; other_timer_s: number };
}

function csum(b: Uint8Array, o: number, n: number, initial: number): number {
  let s = initial;
  for (let i = 0; i + 1 < n; i += 2) s += (b[o + i] << 8) | b[o + i + 1];
  if ((n & 1) !== 0) s += b[o + n - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function putMac(b: Uint8Array, o: number, mac: number): void {
  const hi = Math.floor(mac / 0x1_0000_0000);
  put16(b, o, hi);
  put32(b, o + 2, mac % 0x1_0000_0000);
}

/** RFC 3376 4.1.7 / 4.1.1 code of a value: exact below 128, else 1 exp(3) mant(4). */
export function floatCode8(v: number): number {
  if (v < 128) return v;
  for (let exp = 0; exp < 8; exp++) {
    const mant = (v >> (exp + 3)) - 16;
    if (mant < 16) return 0x80 | (exp << 4) | Math.max(0, mant);
  }
  return 0xff;
}

/**
 * Composes an IGMP query (version 1, 2 or 3) at slab[off]: general (group 0, to 224.0.0.1), or group-specific (to the
 * group, answered within the last member interval), or for IGMPv3 group-and-source-specific (`nSources` addresses from
 * `sources`, four words each, IPv4-mapped; `suppress`: the S flag); returns its length.
 */
export function composeIgmpQuery(b: Uint8Array, off: number, s: QuerierSettings, version: number, group = 0, sources: Int32Array | null = null,
  nSources = 0, suppress = false): number {
  const n = version === 3 && sources !== null ? nSources : 0;
  const igmpLen = version === 3 ? 12 + 4 * n : 8;
  const ipLen = 24 + igmpLen;
  b.fill(0, off, off + 14 + ipLen);
  const dst = group === 0 ? 0xe0000001 | 0 : group;
  b.set([0x01, 0x00, 0x5e, (dst >>> 16) & 0x7f, (dst >>> 8) & 0xff, dst & 0xff], off);
  putMac(b, off + 6, s.mac);
  put16(b, off + 12, 0x0800);
  const ip = off + 14;
  b[ip] = 0x46; // IHL 6: Router Alert option
  put16(b, ip + 2, ipLen);
  b[ip + 8] = 1; // TTL
  b[ip + 9] = 2; // IGMP
  put32(b, ip + 12, s.ipv4);
  put32(b, ip + 16, dst);
  b.set([0x94, 0x04, 0x00, 0x00], ip + 20);
  put16(b, ip + 10, csum(b, ip, 24, 0));
  const q = ip + 24;
  b[q] = 0x11;
  const respMs = group === 0 ? s.queryResponseIntervalMs : s.lastMemberIntervalMs;
  b[q + 1] = version === 1 ? 0 : version === 2 ? Math.min(255, Math.round(respMs / 100)) : floatCode8(Math.round(respMs / 100));
  put32(b, q + 4, group);
  if (version === 3) {
    b[q + 8] = (suppress ? 0x08 : 0) | Math.min(7, s.lastMemberCount);
    b[q + 9] = floatCode8(s.queryIntervalS);
    put16(b, q + 10, n);
    for (let i = 0; i < n; i++) put32(b, q + 12 + 4 * i, sources![4 * i + 3]);
  }
  put16(b, q + 2, csum(b, q, igmpLen, 0));
  return 14 + ipLen;
}

/**
 * Composes an MLD query (version 1 or 2) at slab[off]: general (group null, to ff02::1) or group-specific, or for MLDv2
 * group-and-source-specific (`nSources` addresses from `sources`; `suppress`: the S flag); returns its length.
 */
export function composeMldQuery(b: Uint8Array, off: number, s: QuerierSettings, version: number, group: Int32Array | null = null,
  sources: Int32Array | null = null, nSources = 0, suppress = false): number {
  const n = version === 2 && sources !== null ? nSources : 0;
  const mldLen = version === 2 ? 28 + 16 * n : 24;
  const payload = 8 + mldLen;
  b.fill(0, off, off + 14 + 40 + payload);
  const last = group === null ? 1 : group[3];
  b.set([0x33, 0x33, (last >>> 24) & 0xff, (last >>> 16) & 0xff, (last >>> 8) & 0xff, last & 0xff], off);
  putMac(b, off + 6, s.mac);
  put16(b, off + 12, 0x86dd);
  const ip = off + 14;
  b[ip] = 0x60;
  put16(b, ip + 4, payload);
  b[ip + 6] = 0; // hop-by-hop
  b[ip + 7] = 1;
  for (let i = 0; i < 4; i++) put32(b, ip + 8 + 4 * i, s.ipv6[i]);
  if (group === null) {
    put32(b, ip + 24, 0xff020000);
    put32(b, ip + 36, 1); // ff02::1
  } else {
    for (let i = 0; i < 4; i++) put32(b, ip + 24 + 4 * i, group[i]);
  }
  const h = ip + 40;
  b.set([58, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00], h); // Router Alert (MLD), PadN
  const m = h + 8;
  b[m] = 130;
  const mrc = Math.min(group === null ? s.queryResponseIntervalMs : s.lastMemberIntervalMs, 0x7fff);
  put16(b, m + 4, mrc);
  if (group !== null) for (let i = 0; i < 4; i++) put32(b, m + 8 + 4 * i, group[i]);
  if (version === 2) {
    b[m + 24] = (suppress ? 0x08 : 0) | Math.min(7, s.lastMemberCount);
    b[m + 25] = floatCode8(s.queryIntervalS);
    put16(b, m + 26, n);
    for (let i = 0; i < 4 * n; i++) put32(b, m + 28 + 4 * i, sources![i]);
  }
  // ICMPv6 checksum with the pseudo-header
  let pseudo = 0;
  for (let i = 0; i < 32; i += 2) pseudo += (b[ip + 8 + i] << 8) | b[ip + 8 + i + 1];
  pseudo += mldLen + 58;
  put16(b, m + 2, csum(b, m, mldLen, pseudo));
  return 14 + 40 + payload;
}

export class Querier {
  settings: QuerierSettings;
  /** per VLAN: whether it queries there (snooping and the querier on in that VLAN; set by the owner) */
  readonly enabled = new Uint8Array(VID_COUNT);
  /** per VLAN: the other querier's timer (ms) and address (IPv4 int32 / IPv6 four words) */
  private readonly otherV4UntilMs = new Float64Array(VID_COUNT);
  private readonly otherV6UntilMs = new Float64Array(VID_COUNT);
  private readonly otherV4Addr = new Int32Array(VID_COUNT);
  private readonly otherV6Addr = new Int32Array(4 * VID_COUNT);
  private nextQueryMs = 0;
  private startupLeft: number;
  /** per VLAN: the lowest report versions heard, until when (the membership interval after the report) */
  private readonly igmpFallback = new Uint8Array(VID_COUNT).fill(3);
  private readonly igmpFallbackUntilMs = new Float64Array(VID_COUNT);
  private readonly mldFallback = new Uint8Array(VID_COUNT).fill(2);
  private readonly mldFallbackUntilMs = new Float64Array(VID_COUNT);
  /** general queries sent (frames, all ports) */
  queriesSent = 0;
  private readonly vids = new Uint8Array(VID_COUNT);
  /**
   * Group-specific queries owed after a leave, last_member_count each, last_member_interval apart, to the port the
   * leave came from: a fixed table of PENDING_MAX (filled inside rx batches, sent by tick()); a leave when it is full
   * is counted in `pendingDropped`.
   */
  private readonly pendVid = new Int32Array(PENDING_MAX);
  private readonly pendPort = new Int32Array(PENDING_MAX);
  private readonly pendGroup = new Int32Array(4 * PENDING_MAX);
  private readonly pendLeft = new Int32Array(PENDING_MAX);
  private readonly pendNextMs = new Float64Array(PENDING_MAX);
  /** leaves whose group-specific queries did not fit the table; group-specific queries sent */
  pendingDropped = 0;
  groupQueriesSent = 0;
  /**
   * Group-and-source-specific queries owed: a fixed table of SOURCE_PENDING_MAX, each (vid, port, group) with up to
   * SOURCES_PER_QUERY sources (more sources take more entries); sources that find no free entry are counted in
   * `sourcePendingDropped`.
   */
  private readonly spVid = new Int32Array(SOURCE_PENDING_MAX);
  private readonly spPort = new Int32Array(SOURCE_PENDING_MAX);
  private readonly spGroup = new Int32Array(4 * SOURCE_PENDING_MAX);
  private readonly spSrc = new Int32Array(4 * SOURCES_PER_QUERY * SOURCE_PENDING_MAX);
  private readonly spCount = new Int32Array(SOURCE_PENDING_MAX);
  private readonly spLeft = new Int32Array(SOURCE_PENDING_MAX);
  private readonly spNextMs = new Float64Array(SOURCE_PENDING_MAX);
  /** the sources of one query as it is composed: asked with the S flag clear, and set */
  private readonly askNow = new Int32Array(4 * SOURCES_PER_QUERY);
  private readonly askSuppressed = new Int32Array(4 * SOURCES_PER_QUERY);
  sourcePendingDropped = 0;
  sourceQueriesSent = 0;

  constructor(settings: QuerierSettings) {
    this.settings = settings;
    this.startupLeft = settings.lastMemberCount;
  }

  /** Takes changed settings (a reload), keeping the elections, fallbacks and owed queries. */
  reconfigure(settings: QuerierSettings): void {
    const intervalChanged = settings.queryIntervalS !== this.settings.queryIntervalS;
    this.settings = settings;
    if (intervalChanged) this.nextQueryMs = 0;
  }

  /** The IGMP and MLD versions of this querier's queries in `vid` now. */
  igmpVersion(vid: number, nowMs: number): number {
    return nowMs < this.igmpFallbackUntilMs[vid] ? this.igmpFallback[vid] : 3;
  }

  mldVersion(vid: number, nowMs: number): number {
    return nowMs < this.mldFallbackUntilMs[vid] ? this.mldFallback[vid] : 2;
  }

  /** Whether another querier is in charge of `vid` for the family now. */
  otherPresent(vid: number, v4: boolean, nowMs: number): boolean {
    return nowMs < (v4 ? this.otherV4UntilMs[vid] : this.otherV6UntilMs[vid]);
  }

  /**
   * A leave of `group` (four words) arrived on `port` in `vid`: group-specific queries are owed there, unless another
   * querier is in charge of that VLAN and family (it asks) or this querier is off in that VLAN.
   */
  leaveHeard(vid: number, port: number, group: Int32Array, nowMs: number): void {
    const v4 = group[0] === 0 && group[1] === 0 && group[2] === 0xffff;
    if (this.enabled[vid] === 0 || this.otherPresent(vid, v4, nowMs)) return;
    for (let i = 0; i < PENDING_MAX; i++) {
      if (this.pendLeft[i] !== 0) continue;
      this.pendVid[i] = vid;
      this.pendPort[i] = port;
      this.pendGroup.set(group, 4 * i);
      this.pendLeft[i] = this.settings.lastMemberCount;
      this.pendNextMs[i] = nowMs;
      return;
    }
    this.pendingDropped++;
  }

  /**
   * Member `port` of (vid, group) stopped requesting `n` sources (four words each in `sources`), whose timers the
   * engine lowered: group-and-source-specific queries are owed for them (see the model).
   */
  sourcesLeaving(vid: number, port: number, group: Int32Array, sources: Int32Array, n: number, nowMs: number): void {
    const v4 = group[0] === 0 && group[1] === 0 && group[2] === 0xffff;
    if (n === 0 || this.enabled[vid] === 0 || this.otherPresent(vid, v4, nowMs)) return;
    if (v4 ? this.igmpVersion(vid, nowMs) !== 3 : this.mldVersion(vid, nowMs) !== 2) return;
    let done = 0;
    for (let i = 0; i < SOURCE_PENDING_MAX && done < n; i++) {
      if (this.spLeft[i] !== 0) continue;
      const k = Math.min(SOURCES_PER_QUERY, n - done);
      this.spVid[i] = vid;
      this.spPort[i] = port;
      this.spGroup.set(group, 4 * i);
      this.spSrc.set(sources.subarray(4 * done, 4 * (done + k)), 4 * SOURCES_PER_QUERY * i);
      this.spCount[i] = k;
      this.spLeft[i] = this.settings.lastMemberCount;
      this.spNextMs[i] = nowMs;
      done += k;
    }
    this.sourcePendingDropped += n - done;
  }

  /** Sends the group-and-source-specific queries that are due (between rx batches); `mdb` has the source timers. */
  private sendSourceQueries(nowMs: number, ports: readonly BridgePort[], slab: Uint8Array, mdb: Mdb): void {
    const lmqtMs = this.settings.lastMemberCount * this.settings.lastMemberIntervalMs;
    for (let i = 0; i < SOURCE_PENDING_MAX; i++) {
      if (this.spLeft[i] === 0 || this.spNextMs[i] > nowMs) continue;
      this.spLeft[i]--;
      this.spNextMs[i] = nowMs + this.settings.lastMemberIntervalMs;
      const vid = this.spVid[i];
      const g = this.spGroup.subarray(4 * i, 4 * i + 4);
      const v4 = g[0] === 0 && g[1] === 0 && g[2] === 0xffff;
      const port = ports.find((p) => p.id === this.spPort[i]);
      const gid = mdb.findGroup(vid, g);
      const m = mdb.findMember(gid, this.spPort[i]);
      if (port === undefined || port.io === null || port.state !== 'up' || m < 0 || this.otherPresent(vid, v4, nowMs)) {
        this.spLeft[i] = 0;
        continue;
      }
      const rule = port.vlan.egress[vid];
      if (rule === EGRESS_NOT_MEMBER) continue;
      // retransmission state: the sources still requested, split by their timers
      let now = 0;
      let later = 0;
      const base = 4 * SOURCES_PER_QUERY * i;
      for (let k = 0; k < this.spCount[i]; k++) {
        const src = this.spSrc.subarray(base + 4 * k, base + 4 * k + 4);
        const exp = mdb.sourceExpiryMs(m, src);
        if (exp <= nowMs) continue;
        if (exp > nowMs + lmqtMs) this.askSuppressed.set(src, 4 * later++);
        else this.askNow.set(src, 4 * now++);
      }
      if (now === 0 && later === 0) {
        this.spLeft[i] = 0;
        continue;
      }
      const off = GROUP_QUERY_OFF + VNET_HDR_LEN;
      const off2 = GROUP_QUERY_OFF + 4 * SLOT + VNET_HDR_LEN;
      slab.fill(0, GROUP_QUERY_OFF, off);
      slab.fill(0, GROUP_QUERY_OFF + 4 * SLOT, off2);
      let n = 0;
      const tagged = rule === EGRESS_TAGGED;
      if (later > 0) {
        const len = v4 ? composeIgmpQuery(slab, off2, this.settings, 3, g[3], this.askSuppressed, later, true) : composeMldQuery(slab, off2, this.settings, 2, g, this.askSuppressed, later, true);
        n = queue(port.io.tx, n, off2, len, tagged, vid);
      }
      if (now > 0) {
        const len = v4 ? composeIgmpQuery(slab, off, this.settings, 3, g[3], this.askNow, now, false) : composeMldQuery(slab, off, this.settings, 2, g, this.askNow, now, false);
        n = queue(port.io.tx, n, off, len, tagged, vid);
      }
      this.sourceQueriesSent += port.io.send(n);
    }
  }

  /** Sends the group-specific queries that are due (between rx batches). */
  private sendGroupQueries(nowMs: number, ports: readonly BridgePort[], slab: Uint8Array): void {
    const off = GROUP_QUERY_OFF + VNET_HDR_LEN;
    for (let i = 0; i < PENDING_MAX; i++) {
      if (this.pendLeft[i] === 0 || this.pendNextMs[i] > nowMs) continue;
      this.pendLeft[i]--;
      this.pendNextMs[i] = nowMs + this.settings.lastMemberIntervalMs;
      const port = ports.find((p) => p.id === this.pendPort[i]);
      if (port === undefined || port.io === null || port.state !== 'up') continue;
      const vid = this.pendVid[i];
      const rule = port.vlan.egress[vid];
      if (rule === EGRESS_NOT_MEMBER) continue;
      const g = this.pendGroup.subarray(4 * i, 4 * i + 4);
      slab.fill(0, GROUP_QUERY_OFF, off);
      const v4 = g[0] === 0 && g[1] === 0 && g[2] === 0xffff;
      const igmpVersion = this.igmpVersion(vid, nowMs);
      const len = v4 ? composeIgmpQuery(slab, off, this.settings, igmpVersion === 1 ? 2 : igmpVersion, g[3]) : composeMldQuery(slab, off, this.settings, this.mldVersion(vid, nowMs), g);
      queue(port.io.tx, 0, off, len, rule === EGRESS_TAGGED, vid);
      this.groupQueriesSent += port.io.send(1);
    }
  }

  private get intervalMs(): number {
    return this.settings.queryIntervalS * 1000;
  }

  /** Other querier present interval (ms). */
  get otherQuerierPresentMs(): number {
    return this.otherPresentMs;
  }

  /** The other queriers in charge now: per VLAN and family, their address and ms left (snapshots). */
  others(nowMs: number): { vlan: number; family: 4 | 6; address: Int32Array; timer_ms: number }[] {
    const out: { vlan: number; family: 4 | 6; address: Int32Array; timer_ms: number }[] = [];
    for (let vid = 0; vid < 4095; vid++) {
      if (this.otherV4UntilMs[vid] > nowMs) out.push({ vlan: vid, family: 4, address: Int32Array.from([0, 0, 0xffff, this.otherV4Addr[vid]]), timer_ms: Math.round(this.otherV4UntilMs[vid] - nowMs) });
      if (this.otherV6UntilMs[vid] > nowMs) out.push({ vlan: vid, family: 6, address: this.otherV6Addr.slice(4 * vid, 4 * vid + 4), timer_ms: Math.round(this.otherV6UntilMs[vid] - nowMs) });
    }
    return out;
  }

  private get otherPresentMs(): number {
    return this.settings.lastMemberCount * this.intervalMs + this.settings.queryResponseIntervalMs / 2;
  }

  /** A query from `src` (four words) arrived in `vid`: the election (RFC 3376 6.6.2), in that VLAN only. */
  heardQuery(vid: number, family: number, src: Int32Array, nowMs: number): void {
    if (family === 4) {
      const theirs = src[3] >>> 0;
      const ours = this.settings.ipv4 >>> 0;
      if (theirs === 0 || (ours !== 0 && theirs >= ours)) return;
      this.otherV4UntilMs[vid] = nowMs + this.otherPresentMs;
      this.otherV4Addr[vid] = src[3];
      return;
    }
    const ours = this.settings.ipv6;
    let lower = false;
    for (let i = 0; i < 4; i++) {
      const a = src[i] >>> 0;
      const b = ours[i] >>> 0;
      if (a !== b) {
        lower = a < b;
        break;
      }
    }
    if (!lower) return;
    this.otherV6UntilMs[vid] = nowMs + this.otherPresentMs;
    this.otherV6Addr.set(src, 4 * vid);
  }

  /** A report of `version` arrived in `vid`: queries in that VLAN fall back to it for the membership interval. */
  heardReport(vid: number, family: number, version: number, nowMs: number, membershipIntervalMs: number): void {
    if (family === 4 && version < 3) {
      if (version <= this.igmpFallback[vid] || nowMs >= this.igmpFallbackUntilMs[vid]) this.igmpFallback[vid] = version;
      this.igmpFallbackUntilMs[vid] = nowMs + membershipIntervalMs;
    } else if (family === 6 && version < 2) {
      this.mldFallback[vid] = 1;
      this.mldFallbackUntilMs[vid] = nowMs + membershipIntervalMs;
    }
  }

  /** Marks in `out` the query VLANs: VLANs in use by `ports` (see the model) where the querier is enabled. */
  queryVids(ports: readonly BridgePort[], out: Uint8Array): void {
    out.fill(0);
    const en = this.enabled;
    for (const p of ports) {
      const u = p.vlan.untaggedVid;
      if (u >= 0 && u < 4095 && p.vlan.isMember(u) && en[u] === 1) out[u] = 1;
      const spec = p.vlan.spec;
      if (spec.mode === 'trunk' && spec.vlans !== 'all') for (const v of spec.vlans) if (en[v] === 1) out[v] = 1;
    }
  }

  /**
   * Sends the queries that are due; returns general query frames sent. `slab` is free (no rx batch in progress); `mdb`
   * has the source timers the group-and-source-specific queries ask about.
   */
  tick(nowMs: number, ports: readonly BridgePort[], slab: Uint8Array, mdb: Mdb | null = null): number {
    this.sendGroupQueries(nowMs, ports, slab);
    if (mdb !== null) this.sendSourceQueries(nowMs, ports, slab, mdb);
    if (nowMs < this.nextQueryMs) return 0;
    const interval = this.startupLeft > 0 ? this.intervalMs / 4 : this.intervalMs;
    if (this.startupLeft > 0) this.startupLeft--;
    this.nextQueryMs = nowMs + interval;
    const s = this.settings;
    // every version once: a VLAN in compatibility mode gets the older one
    const igmpLen = [0, 0, 0, 0];
    const mldLen = [0, 0, 0];
    for (let v = 1; v <= 3; v++) {
      const o = IGMP_SLOT[v] * SLOT;
      slab.fill(0, o, o + VNET_HDR_LEN);
      igmpLen[v] = composeIgmpQuery(slab, o + VNET_HDR_LEN, s, v);
    }
    for (let v = 1; v <= 2; v++) {
      const o = MLD_SLOT[v] * SLOT;
      slab.fill(0, o, o + VNET_HDR_LEN);
      mldLen[v] = composeMldQuery(slab, o + VNET_HDR_LEN, s, v);
    }
    const vids = this.vids;
    this.queryVids(ports, vids);
    let sent = 0;
    for (const p of ports) {
      const io = p.io;
      if (io === null || p.state !== 'up' || p.mirrorOutput) continue;
      const capacity = io.tx.length / 4;
      if (capacity < 1) continue;
      let n = 0;
      for (let vid = 0; vid < 4095; vid++) {
        if (vids[vid] === 0) continue;
        const rule = p.vlan.egress[vid];
        if (rule === EGRESS_NOT_MEMBER) continue;
        const tagged = rule === EGRESS_TAGGED;
        if (nowMs >= this.otherV4UntilMs[vid]) {
          if (n === capacity) {
            sent += io.send(n);
            n = 0;
          }
          const v = this.igmpVersion(vid, nowMs);
          n = queue(io.tx, n, IGMP_SLOT[v] * SLOT + VNET_HDR_LEN, igmpLen[v], tagged, vid);
        }
        if (nowMs >= this.otherV6UntilMs[vid]) {
          if (n === capacity) {
            sent += io.send(n);
            n = 0;
          }
          const v = this.mldVersion(vid, nowMs);
          n = queue(io.tx, n, MLD_SLOT[v] * SLOT + VNET_HDR_LEN, mldLen[v], tagged, vid);
        }
      }
      if (n > 0) sent += io.send(n);
    }
    this.queriesSent += sent;
    return sent;
  }

  /** Per query VLAN: this bridge or another querier, per family, and the versions (control plane). */
  state(nowMs: number, vidsInUse: Iterable<number>, format: (w: Int32Array) => string): QuerierVlanState[] {
    const out: QuerierVlanState[] = [];
    for (const vid of vidsInUse) {
      const v4 = this.otherV4UntilMs[vid] > nowMs;
      const v6 = this.otherV6UntilMs[vid] > nowMs;
      out.push({
        vlan: vid,
        igmp_version: this.igmpVersion(vid, nowMs),
        mld_version: this.mldVersion(vid, nowMs),
        ipv4: {
          querier: v4 ? 'other' : 'self',
          other_address: v4 ? format(Int32Array.from([0, 0, 0xffff, this.otherV4Addr[vid]])) : null,
          other_timer_s: v4 ? Math.round((this.otherV4UntilMs[vid] - nowMs) / 100) / 10 : 0,
        },
        ipv6: {
          querier: v6 ? 'other' : 'self',
          other_address: v6 ? format(this.otherV6Addr.slice(4 * vid, 4 * vid + 4)) : null,
          other_timer_s: v6 ? Math.round((this.otherV6UntilMs[vid] - nowMs) / 100) / 10 : 0,
        },
      });
    }
    return out;
  }
}

function queue(tx: Uint32Array, n: number, off: number, len: number, tagged: boolean, vid: number): number {
  const w = 4 * n;
  tx[w] = off;
  tx[w + 1] = len;
  tx[w + 2] = tagged ? TX_OP_PUSH_TAG : TX_OP_NONE;
  tx[w + 3] = tagged ? (C_TAG | vid) >>> 0 : 0;
  return n + 1;
}
