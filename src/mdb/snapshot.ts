// The learnt multicast state of a bridge as JSON (the state document's `mdb` section, src/state/daemon-state.ts):
// what a takeover hands to the new daemon and the state file keeps, so memberships, router ports and the querier's
// election survive an upgrade without waiting for the next reports.
//
//   { saved_at: ms, bridges: { xenbr0: { entries: [ { vlan, group, source, port, mode, timer_ms } ],
//                                        routers: [ { port, vlan, timer_ms } ],
//                                        queriers: [ { vlan, family, address, timer_ms } ] } } }
//
// Permanent entries are not in it (the config and the runtime journal carry them). Timers are stored as ms left at
// saved_at and restored less the time since; an entry whose port is gone, or that a cap refuses, is skipped and
// counted. At most MAX_SNAPSHOT_ROWS rows per bridge are read back.
//
// Router rows carry the VLAN of their (port, VLAN) timer. A row without `vlan` (written by a daemon that kept one router
// timer per port) is restored in the port's untagged VLAN and in each VLAN of the bridge's restored entries that the
// port is a member of: the VLANs where a router port matters to forwarding now; the next query relearns the rest.

import type { Bridge } from '../bridge/bridge.js';
import { addressWords, formatAddressWords } from './address.js';

export const MDB_SECTION = 'mdb';
export const MAX_SNAPSHOT_ROWS = 200_000;

interface EntryRow { vlan: number; group: string; source: string | null; port: string; mode: 'include' | 'exclude'; timer_ms: number }
interface RouterRow { port: string; vlan?: number; timer_ms: number }
interface QuerierRow { vlan: number; family: 4 | 6; address: string; timer_ms: number }
export interface MdbSnapshot {
  saved_at: number;
  bridges: Record<string, { entries: EntryRow[]; routers: RouterRow[]; queriers: QuerierRow[] }>;
}

/** The learnt state of every snooping bridge. */
export function mdbSnapshot(bridges: Iterable<Bridge>, nowMs: number): MdbSnapshot {
  const out: MdbSnapshot = { saved_at: Date.now(), bridges: {} };
  for (const br of bridges) {
    const mc = br.mcast;
    if (mc === null) continue;
    const name = (id: number): string => br.ports[id]?.name ?? '';
    const entries = mc.mdb.entries(nowMs).filter((e) => !e.permanent).map((e): EntryRow => ({
      vlan: e.vid, group: formatAddressWords(e.group), source: e.source === null ? null : formatAddressWords(e.source),
      port: name(e.port), mode: e.mode, timer_ms: Math.max(0, Math.round(e.timerMs)),
    }));
    const routers: RouterRow[] = mc.mdb.routerTimers(nowMs).map((r) => ({ port: name(r.port), vlan: r.vid, timer_ms: Math.round(r.timerMs) }));
    const queriers = mc.querier === null ? [] : mc.querier.others(nowMs).map((q) => ({ ...q, address: formatAddressWords(q.address) }));
    out.bridges[br.name] = { entries, routers, queriers };
  }
  return out;
}

function isSnapshot(v: unknown): v is MdbSnapshot {
  return typeof v === 'object' && v !== null && typeof (v as MdbSnapshot).saved_at === 'number' && typeof (v as MdbSnapshot).bridges === 'object';
}

/** Restores a snapshot into the bridges of the same names; returns rows restored and skipped. */
export function restoreMdb(snap: unknown, bridges: ReadonlyMap<string, Bridge>, nowMs: number): { restored: number; skipped: number } {
  let restored = 0;
  let skipped = 0;
  if (!isSnapshot(snap)) return { restored, skipped };
  const elapsed = Math.max(0, Date.now() - snap.saved_at);
  for (const [bname, b] of Object.entries(snap.bridges)) {
    const br = bridges.get(bname);
    const mc = br?.mcast ?? null;
    if (br === undefined || mc === null || typeof b !== 'object' || b === null) continue;
    const mdb = mc.mdb;
    const rows = Array.isArray(b.entries) ? b.entries.slice(0, MAX_SNAPSHOT_ROWS) : [];
    for (const r of rows) {
      const port = typeof r?.port === 'string' ? br.portByName(r.port) : null;
      const g = typeof r?.group === 'string' ? addressWords(r.group) : null;
      const left = typeof r?.timer_ms === 'number' ? r.timer_ms - elapsed : -1;
      const vid = r?.vlan;
      if (port === null || g === null || typeof vid !== 'number' || !Number.isInteger(vid) || vid < 0 || vid > 4094) {
        skipped++;
        continue;
      }
      const s = r.source === null ? null : typeof r.source === 'string' ? addressWords(r.source) : null;
      if (r.source !== null && s === null) {
        skipped++;
        continue;
      }
      // an excluded source has no timer (0); anything else whose timer ran out meanwhile is gone
      if (!(s !== null && r.mode === 'exclude') && left <= 0) {
        skipped++;
        continue;
      }
      const m = mdb.member(vid, g, port.id);
      if (m < 0) {
        skipped++;
        continue;
      }
      if (s === null) mdb.setExclude(m, nowMs + left);
      else if (r.mode === 'include') mdb.allowSource(m, s, nowMs + left);
      else mdb.excludeSource(m, s, nowMs);
      restored++;
    }
    const entryVids = new Set<number>();
    for (const r of rows) if (typeof r?.vlan === 'number' && Number.isInteger(r.vlan) && r.vlan >= 0 && r.vlan <= 4094) entryVids.add(r.vlan);
    for (const r of Array.isArray(b.routers) ? b.routers : []) {
      const port = typeof r?.port === 'string' ? br.portByName(r.port) : null;
      const left = typeof r?.timer_ms === 'number' ? r.timer_ms - elapsed : -1;
      const v = r?.vlan;
      const vids = port === null ? [] : v === undefined ? [...new Set([port.vlan.untaggedVid, ...entryVids])].filter((x) => port.vlan.isMember(x))
        : typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 4094 ? [v] : [];
      let ok = port !== null && left > 0 && vids.length > 0;
      for (const vid of ok ? vids : []) if (!mdb.heardRouter(port!.id, vid, nowMs + left)) ok = false;
      if (ok) restored++;
      else skipped++;
    }
    for (const q of Array.isArray(b.queriers) ? b.queriers : []) {
      const a = typeof q?.address === 'string' ? addressWords(q.address) : null;
      const left = typeof q?.timer_ms === 'number' ? q.timer_ms - elapsed : -1;
      if (mc.querier === null || a === null || left <= 0 || typeof q.vlan !== 'number' || q.vlan < 0 || q.vlan > 4094) skipped++;
      else {
        mc.querier.heardQuery(q.vlan, q.family === 6 ? 6 : 4, a, nowMs + left - mc.querier.otherQuerierPresentMs);
        restored++;
      }
    }
  }
  return { restored, skipped };
}
