// The control plane's view of a bridge's multicast database: `mdb show`, `mdb add`, `mdb del`
// (thin daemon methods call these). Addresses are strings only here; the MDB holds four int32 words
// (IPv4 as ::ffff:a.b.c.d).

import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import { ControlError } from '../control/errors.js';
import { V4_MAPPED } from '../frame/igmp.js';
import { addressWords, formatAddressWords } from './address.js';
import { ROUTER_MODES } from './mdb.js';

export { addressWords, formatAddressWords };
import type { QuerierVlanState } from './querier.js';
import { portTarget, registerRecordedMethod, type RecordContext } from '../state/journal.js';

export interface MdbShowEntry {
  vlan: number;
  group: string;
  /** null: any source (a (*, G) entry) */
  source: string | null;
  port: string;
  /** seconds left (0 for permanent entries and for a blocked source) */
  timer_s: number;
  kind: 'temp' | 'permanent';
  /** the member's filter mode; for a source row, 'exclude' means the source is blocked */
  mode: 'include' | 'exclude';
}

export interface MdbShowRouter {
  /** the VLAN an `auto` port is a router port in; null for an `always` port (a router port in all its VLANs) */
  vlan: number | null;
  port: string;
  /** auto: learnt from a query, PIM hello or MRD advertisement in that VLAN (timer_s left); always: static */
  kind: 'auto' | 'always';
  timer_s: number;
}

export interface MdbShow {
  bridge: string;
  snooping: boolean;
  entries: MdbShowEntry[];
  router_ports: MdbShowRouter[];
  /** groups in the MDB and the bridge cap (multicast_max_groups) */
  groups: number;
  max_groups: number;
  /** refusals (caps) and malformed IGMP/MLD by reason */
  counters: Record<string, number>;
  /** the bridge's own querier (multicast_querier): per query VLAN, who queries per family, and the query versions */
  querier: { enabled: boolean; queries_sent: number; group_queries_sent?: number; source_queries_sent?: number; source_queries_dropped?: number; vlans: QuerierVlanState[] };
}

function isMulticastWords(w: Int32Array): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === V4_MAPPED ? (w[3] >>> 28) === 0xe : (w[0] >>> 24) === 0xff;
}

/** `mdb show`: entries, router ports, counters. */
export function mdbShow(bridge: Bridge, nowMs: number): MdbShow {
  const mc = bridge.mcast;
  const name = (id: number): string => bridge.ports[id]?.name ?? `#${id}`;
  if (mc === null) {
    return { bridge: bridge.name, snooping: false, entries: [], router_ports: [], groups: 0, max_groups: 0, counters: {}, querier: { enabled: false, queries_sent: 0, vlans: [] } };
  }
  const mdb = mc.mdb;
  const entries = mdb.entries(nowMs).map((e): MdbShowEntry => ({
    vlan: e.vid,
    group: formatAddressWords(e.group),
    source: e.source === null ? null : formatAddressWords(e.source),
    port: name(e.port),
    timer_s: Math.round(e.timerMs / 100) / 10,
    kind: e.permanent ? 'permanent' : 'temp',
    mode: e.mode,
  }));
  const routers: MdbShowRouter[] = [];
  for (const p of bridge.portList) if (ROUTER_MODES[mdb.routerMode[p.id]] === 'always') routers.push({ vlan: null, port: p.name, kind: 'always', timer_s: 0 });
  for (const r of mdb.routerTimers(nowMs)) routers.push({ vlan: r.vid, port: name(r.port), kind: 'auto', timer_s: Math.round(r.timerMs / 100) / 10 });
  const counters: Record<string, number> = { ...mdb.counters, ...mc.counters };
  const malformed = mc.malformedByReason();
  for (const [k, v] of Object.entries(malformed)) counters[`malformed_${k}`] = v;
  const querier = querierShow(bridge, nowMs);
  return {
    bridge: bridge.name, snooping: true, entries, router_ports: routers, groups: mdb.groups, max_groups: mdb.maxGroups, counters, querier,
  };
}

/** The querier part of `mdb show` (also in `stats`): per query VLAN, who queries. */
export function querierShow(bridge: Bridge, nowMs: number): MdbShow['querier'] {
  const q = bridge.mcast?.querier ?? null;
  if (q === null) return { enabled: false, queries_sent: 0, vlans: [] };
  const mask = new Uint8Array(4096);
  q.queryVids(bridge.portList, mask);
  const vids: number[] = [];
  for (let vid = 0; vid < 4095; vid++) if (mask[vid] === 1) vids.push(vid);
  return {
    enabled: true, queries_sent: q.queriesSent, group_queries_sent: q.groupQueriesSent, source_queries_sent: q.sourceQueriesSent, source_queries_dropped: q.sourcePendingDropped, vlans: q.state(nowMs, vids, formatAddressWords),
  };
}

function groupParam(group: unknown): Int32Array {
  const w = typeof group === 'string' ? addressWords(group) : null;
  if (w === null || !isMulticastWords(w)) throw new ControlError('invalid_params', `group must be an IPv4 or IPv6 multicast address, got ${JSON.stringify(group)}`, { param: 'group' });
  return w;
}

function sourceParam(source: unknown, group: Int32Array): Int32Array | null {
  if (source === undefined || source === null) return null;
  const w = typeof source === 'string' ? addressWords(source) : null;
  if (w === null || isMulticastWords(w)) throw new ControlError('invalid_params', `source must be a unicast IPv4 or IPv6 address, got ${JSON.stringify(source)}`, { param: 'source' });
  const v4 = (a: Int32Array): boolean => a[0] === 0 && a[1] === 0 && a[2] === V4_MAPPED;
  if (v4(w) !== v4(group)) throw new ControlError('invalid_params', 'source and group must both be IPv4 or both IPv6', { param: 'source' });
  return w;
}

function snooping(bridge: Bridge): NonNullable<Bridge['mcast']> {
  if (bridge.mcast === null) throw new ControlError('invalid_params', `multicast_snooping is off on ${bridge.name}: it has no MDB`);
  return bridge.mcast;
}

/** `mdb add`: a permanent entry of `port` for (vid, group[, source]). */
export function mdbAdd(bridge: Bridge, port: BridgePort, group: unknown, vid: number, source: unknown): void {
  const mc = snooping(bridge);
  const g = groupParam(group);
  const s = sourceParam(source, g);
  if (!mc.mdb.addStatic(vid, g, port.id, s)) {
    throw new ControlError('mdb_full', `MDB of ${bridge.name} refused the entry (multicast_max_groups ${mc.mdb.maxGroups}, or mdb_max of ${port.name})`);
  }
}

/** `mdb del`: removes a permanent entry. */
export function mdbDel(bridge: Bridge, port: BridgePort, group: unknown, vid: number, source: unknown): void {
  const mc = snooping(bridge);
  const g = groupParam(group);
  const s = sourceParam(source, g);
  if (!mc.mdb.delStatic(vid, g, port.id, s)) {
    throw new ControlError('not_found', `no permanent MDB entry for ${String(group)}${s !== null ? ` source ${String(source)}` : ''} vlan ${vid} on ${port.name}`);
  }
}

// Runtime state (src/state/journal.ts): a permanent entry added at runtime is one record per (VLAN, port, group,
// source), replayed on start and across --takeover; `mdb del` of such an entry removes its record. The target is the
// port's, so removing the port (or a config edit of it) drops its records.
function mdbRecordKey(p: Record<string, unknown>, ctx: RecordContext): { key: string; bridge: string; port: string; vid: number } {
  const bridge = String(p.bridge);
  const port = String(p.port);
  const vid = typeof p.vlan === 'number' ? p.vlan : ctx.untaggedVid(bridge, port) ?? 0;
  return { key: `mdb:${bridge}/${vid}/${port}/${String(p.group)}/${p.source === undefined || p.source === null ? '*' : String(p.source)}`, bridge, port, vid };
}

registerRecordedMethod('mdb.add', (p, _r, j, ctx) => {
  const k = mdbRecordKey(p, ctx);
  const params: Record<string, unknown> = { bridge: k.bridge, port: k.port, group: p.group, vlan: k.vid };
  if (p.source !== undefined && p.source !== null) params.source = p.source;
  j.put({ method: 'mdb.add', params, key: k.key, target: portTarget(k.bridge, k.port) });
});

registerRecordedMethod('mdb.del', (p, _r, j, ctx) => {
  j.remove(mdbRecordKey(p, ctx).key);
});
