// The multicast keys of a bridge, its ports and port_defaults, checked once at load (src/config/config.ts
// calls mcastSettingsFrom() per bridge); each problem names its key relative to the bridge.
//
//   multicast_snooping: true              # IGMP/MLD snooping; false: multicast is flooded as broadcast
//   multicast_querier: false              # the bridge's own querier (src/mdb/querier.ts)
//   multicast_querier_ipv4: 0.0.0.0       # its IPv4 source (0.0.0.0: hosts answer, it never wins an election)
//   multicast_querier_ipv6: fe80::...     # its IPv6 source, link-local (default: derived from the querier's MAC)
//   multicast_query_interval: 125         # seconds, 1..3600
//   multicast_query_response_interval: 10 # seconds, 0.1..600
//   multicast_last_member_count: 2        # 1..255; also the robustness in the membership interval
//   multicast_last_member_interval: 1     # seconds, 0.1..600
//   multicast_flood_unregistered: true    # groups nobody joined: everywhere (true) or router ports only
//   multicast_max_groups: 4096            # groups per bridge, 1..1000000
//   multicast_vlans: [ { vlan: 10, multicast_snooping: false, multicast_flood_unregistered: false, multicast_querier: true } ]
//   ports / port_defaults: multicast_router: auto | always | never, multicast_fast_leave: false, mdb_max: 0
//   mdb: [ { group: 239.1.2.3, port: vif1.0, vlan: 10, source: 198.18.0.9 } ]   # permanent entries (vlan: the
//                                                   # port's untagged VLAN by default; source: an (S, G) entry)

import {
  DEFAULT_LAST_MEMBER_COUNT, DEFAULT_LAST_MEMBER_INTERVAL_MS, DEFAULT_MAX_GROUPS, DEFAULT_QUERY_INTERVAL_S, DEFAULT_QUERY_RESPONSE_INTERVAL_MS,
  type McastPortSettings, type McastSettings, McastSnooping, type McastVlanSettings,
} from '../bridge/mcast.js';
import { isIPv4 } from 'node:net';
import { PortVlan, vlanSpecFrom } from '../bridge/vlan.js';
import { addressWords } from './address.js';
import { ROUTER_MODES, type RouterModeName } from './mdb.js';

export const MCAST_BRIDGE_KEYS = [
  'multicast_snooping', 'multicast_querier', 'multicast_query_interval', 'multicast_query_response_interval', 'multicast_last_member_count',
  'multicast_last_member_interval', 'multicast_flood_unregistered', 'multicast_max_groups', 'multicast_vlans',
  'multicast_querier_ipv4', 'multicast_querier_ipv6', 'mdb',
] as const;
const MDB_ENTRY_KEYS = ['group', 'port', 'vlan', 'source'] as const;
export const MCAST_PORT_KEYS = ['multicast_router', 'multicast_fast_leave', 'mdb_max'] as const;
const VLAN_KEYS = ['vlan', 'multicast_snooping', 'multicast_flood_unregistered', 'multicast_querier'] as const;

export const BUILTIN_MCAST_PORT: McastPortSettings = { router: 'auto', fastLeave: false, mdbMax: 0 };

/** The settings of a bridge without any multicast key. */
export function defaultMcastSettings(): McastSettings {
  return {
    snooping: true,
    querier: false,
    queryIntervalS: DEFAULT_QUERY_INTERVAL_S,
    queryResponseIntervalMs: DEFAULT_QUERY_RESPONSE_INTERVAL_MS,
    lastMemberCount: DEFAULT_LAST_MEMBER_COUNT,
    lastMemberIntervalMs: DEFAULT_LAST_MEMBER_INTERVAL_MS,
    floodUnregistered: true,
    maxGroups: DEFAULT_MAX_GROUPS,
    querierIpv4: 0,
    querierIpv6: null,
    permanent: [],
    vlans: new Map(),
    ports: new Map(),
    portDefaults: BUILTIN_MCAST_PORT,
  };
}

type Problems = [key: string, message: string][];

function describe(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
}

function bool(o: Record<string, unknown>, key: string, dflt: boolean, where: string, problems: Problems): boolean {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') {
    problems.push([`${where}${key}`, `must be true or false, got ${describe(v)}`]);
    return dflt;
  }
  return v;
}

function num(o: Record<string, unknown>, key: string, dflt: number, min: number, max: number, integer: boolean, unit: string, problems: Problems, where = ''): number {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    problems.push([`${where}${key}`, `must be ${integer ? 'an integer' : 'a number'} ${min}..${max}${unit}, got ${describe(v)}`]);
    return dflt;
  }
  return v;
}

/** A port's (or port_defaults') multicast keys; `where` prefixes problem keys (e.g. "ports[2]."). */
export function mcastPortFrom(o: Record<string, unknown>, dflt: McastPortSettings, where: string, problems: Problems): McastPortSettings {
  let router: RouterModeName = dflt.router;
  const r = o.multicast_router;
  if (r !== undefined && r !== null) {
    if (typeof r === 'string' && (ROUTER_MODES as readonly string[]).includes(r)) router = r as RouterModeName;
    else problems.push([`${where}multicast_router`, `must be one of ${ROUTER_MODES.join(', ')}, got ${describe(r)}`]);
  }
  return {
    router,
    fastLeave: bool(o, 'multicast_fast_leave', dflt.fastLeave, where, problems),
    mdbMax: num(o, 'mdb_max', dflt.mdbMax, 0, 1_000_000, true, ' (members per port, 0 = no cap)', problems, where),
  };
}

/**
 * A bridge's multicast settings from its mapping (`b`): its keys, port_defaults and ports. Problems name
 * the key relative to the bridge.
 */
export function mcastSettingsFrom(b: Record<string, unknown>): { settings: McastSettings; problems: Problems } {
  const problems: Problems = [];
  const d = defaultMcastSettings();
  const s: McastSettings = {
    ...d,
    snooping: bool(b, 'multicast_snooping', d.snooping, '', problems),
    querier: bool(b, 'multicast_querier', d.querier, '', problems),
    queryIntervalS: num(b, 'multicast_query_interval', d.queryIntervalS, 1, 3600, true, ' seconds', problems),
    queryResponseIntervalMs: Math.round(1000 * num(b, 'multicast_query_response_interval', d.queryResponseIntervalMs / 1000, 0.1, 600, false, ' seconds', problems)),
    lastMemberCount: num(b, 'multicast_last_member_count', d.lastMemberCount, 1, 255, true, '', problems),
    lastMemberIntervalMs: Math.round(1000 * num(b, 'multicast_last_member_interval', d.lastMemberIntervalMs / 1000, 0.1, 600, false, ' seconds', problems)),
    floodUnregistered: bool(b, 'multicast_flood_unregistered', d.floodUnregistered, '', problems),
    maxGroups: num(b, 'multicast_max_groups', d.maxGroups, 1, 1_000_000, true, ' groups', problems),
  };
  const q4 = b.multicast_querier_ipv4;
  if (q4 !== undefined && q4 !== null) {
    const w = typeof q4 === 'string' && isIPv4(q4) ? addressWords(q4) : null;
    if (w === null) problems.push(['multicast_querier_ipv4', `must be an IPv4 address (0.0.0.0 allowed), got ${describe(q4)}`]);
    else s.querierIpv4 = w[3];
  }
  const q6 = b.multicast_querier_ipv6;
  if (q6 !== undefined && q6 !== null) {
    const w = typeof q6 === 'string' ? addressWords(q6) : null;
    if (w === null || (w[0] >>> 22) !== (0xfe80 >>> 6)) problems.push(['multicast_querier_ipv6', `must be a link-local IPv6 address (fe80::/10; hosts ignore MLD queries from others), got ${describe(q6)}`]);
    else s.querierIpv6 = w;
  }
  const vl = b.multicast_vlans;
  if (vl !== undefined && vl !== null) {
    if (!Array.isArray(vl)) problems.push(['multicast_vlans', `must be a list of { vlan, multicast_snooping, multicast_flood_unregistered, multicast_querier }, got ${describe(vl)}`]);
    else {
      vl.forEach((v: unknown, i) => {
        const w = `multicast_vlans[${i}].`;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) {
          problems.push([`multicast_vlans[${i}]`, `must be a mapping, got ${describe(v)}`]);
          return;
        }
        const o = v as Record<string, unknown>;
        for (const k of Object.keys(o)) if (!(VLAN_KEYS as readonly string[]).includes(k)) problems.push([`${w}${k}`, `unknown key (allowed: ${VLAN_KEYS.join(', ')})`]);
        const vid = num(o, 'vlan', -1, 0, 4094, true, '', problems, w);
        if (o.vlan === undefined) problems.push([`${w}vlan`, 'is required (0..4094)']);
        if (vid < 0) return;
        if (s.vlans.has(vid)) problems.push([`${w}vlan`, `VLAN ${vid} is already listed`]);
        const vs: McastVlanSettings = {
          snooping: bool(o, 'multicast_snooping', s.snooping, w, problems),
          floodUnregistered: bool(o, 'multicast_flood_unregistered', s.floodUnregistered, w, problems),
          querier: bool(o, 'multicast_querier', s.querier, w, problems),
        };
        s.vlans.set(vid, vs);
      });
    }
  }
  permanentEntriesOf(b, s, problems);
  const pd = b.port_defaults;
  if (typeof pd === 'object' && pd !== null && !Array.isArray(pd)) s.portDefaults = mcastPortFrom(pd as Record<string, unknown>, BUILTIN_MCAST_PORT, 'port_defaults.', problems);
  const ports = b.ports;
  if (Array.isArray(ports)) {
    ports.forEach((p: unknown, i) => {
      if (typeof p !== 'object' || p === null || Array.isArray(p)) return;
      const o = p as Record<string, unknown>;
      if (typeof o.name !== 'string') return;
      const dflt = o.kind === 'host' ? BUILTIN_MCAST_PORT : s.portDefaults;
      const named = MCAST_PORT_KEYS.some((k) => o[k] !== undefined);
      if (named) s.ports.set(o.name, mcastPortFrom(o, dflt, `ports[${i}].`, problems));
    });
  }
  return { settings: s, problems };
}

/** The `mdb` list: permanent entries, the VLAN resolved from the named port's VLAN keys when not given. */
function permanentEntriesOf(b: Record<string, unknown>, s: McastSettings, problems: Problems): void {
  const list = b.mdb;
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) {
    problems.push(['mdb', `must be a list of { group, port, vlan, source }, got ${describe(list)}`]);
    return;
  }
  const ports = new Map<string, Record<string, unknown>>();
  for (const p of Array.isArray(b.ports) ? b.ports : []) {
    if (typeof p === 'object' && p !== null && typeof (p as Record<string, unknown>).name === 'string') ports.set((p as Record<string, string>).name, p as Record<string, unknown>);
  }
  const up = b.uplink;
  if (typeof up === 'object' && up !== null) {
    const u = up as Record<string, unknown>;
    const name = typeof u.interface === 'string' ? u.interface : typeof u.bond === 'object' && u.bond !== null ? (u.bond as Record<string, unknown>).name : undefined;
    if (typeof name === 'string') ports.set(name, u);
  }
  list.forEach((e: unknown, i) => {
    const w = `mdb[${i}].`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) {
      problems.push([`mdb[${i}]`, `must be a mapping { group, port, vlan, source }, got ${describe(e)}`]);
      return;
    }
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!(MDB_ENTRY_KEYS as readonly string[]).includes(k)) problems.push([`${w}${k}`, `unknown key (allowed: ${MDB_ENTRY_KEYS.join(', ')})`]);
    const g = typeof o.group === 'string' ? addressWords(o.group) : null;
    const groupOk = g !== null && (g[2] === 0xffff && g[0] === 0 && g[1] === 0 ? (g[3] >>> 28) === 0xe : (g[0] >>> 24) === 0xff);
    if (!groupOk) problems.push([`${w}group`, `must be an IPv4 or IPv6 multicast address, got ${describe(o.group)}`]);
    let source: string | null = null;
    if (o.source !== undefined && o.source !== null) {
      const sw = typeof o.source === 'string' ? addressWords(o.source) : null;
      const v4 = (a: Int32Array): boolean => a[0] === 0 && a[1] === 0 && a[2] === 0xffff;
      const multicast = sw !== null && (v4(sw) ? (sw[3] >>> 28) === 0xe : (sw[0] >>> 24) === 0xff);
      if (sw === null || multicast || (g !== null && v4(sw) !== v4(g))) problems.push([`${w}source`, `must be a unicast address of the group's family, got ${describe(o.source)}`]);
      else source = String(o.source);
    }
    const port = typeof o.port === 'string' ? o.port : '';
    const rp = ports.get(port);
    if (rp === undefined) {
      problems.push([`${w}port`, `${describe(o.port)} is not a port or the uplink of this bridge`]);
      return;
    }
    const r = vlanSpecFrom(rp.vlan, rp.trunk, rp.native_vlan);
    const pv = new PortVlan('spec' in r ? r.spec : { mode: 'default' });
    const vlan = num(o, 'vlan', pv.untaggedVid, 0, 4094, true, '', problems, w);
    if (!pv.isMember(vlan)) problems.push([`${w}vlan`, `port "${port}" is not a member of VLAN ${vlan}`]);
    if (groupOk) s.permanent.push({ group: String(o.group), port, vlan, source });
  });
}

/** Whether any VLAN of the bridge snoops (the engine's step is installed only then). */
export function snoopingAnywhere(s: McastSettings): boolean {
  return s.snooping || [...s.vlans.values()].some((v) => v.snooping);
}

/**
 * The engine's step "multicast" for bridge `name` with these settings, or null when no VLAN snoops. `slab`: the free
 * receive slab the querier composes its queries in; its MAC is 02:00 and 32 bits of a hash of the bridge name.
 */
export function multicastFor(name: string, s: McastSettings, maxPorts: number, slab: () => Uint8Array): McastSnooping | null {
  if (!snoopingAnywhere(s)) return null;
  const mc = new McastSnooping(s, maxPorts);
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  mc.querierMac = 0x0200_0000_0000 + (h >>> 0);
  mc.applyQuerier();
  mc.slab = slab;
  return mc;
}
