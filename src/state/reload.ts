// Live reload: the difference between the config in force and a new one, as a plan of changes, each with a
// one-line description (what `reload --dry-run` prints), the runtime-record target it touches (journal.ts),
// and how the daemon applies it without disturbing anything else:
//
//   + bridge br0                                   new bridge: created and opened
//   - bridge br0                                   closed and forgotten
//   ~ bridge br0 fdb_max 8192 -> 4096 (re-created) fdb_max, mtu and keys of later features rebuild the bridge
//   ~ bridge br0 ageing_time 300 -> 60             in place
//   + port br0/vif7.0 (attach, access 10)          opened
//   - port br0/vif3.0                              closed
//   ~ port br0/vif1.0 vlan 10 -> 20                in place (entries in VLANs it left are flushed)
//   ~ port br0/vif1.0 learning true -> false       in place; also flood, isolated, fdb_max
//   ~ port br0/vif1.0 qos rate_limit 100000/10000 -> 50000/5000   in place (src/daemon/qos.ts; buckets start full);
//                                                  also egress_rate_limit, storm_control, and on vxlan ports
//   ~ port br0/vif1.0 kind tap -> attach (re-created)   kind, persist, create and keys of later features
//   ~ bridge br0 multicast_query_interval 125 -> 60  in place (src/mdb/reload.ts): every multicast_* key, multicast_vlans,
//                                                  mdb and port_defaults' multicast keys; the MDB stays where valid
//   ~ port br0/vif1.0 multicast_router auto -> never   in place; also multicast_fast_leave, mdb_max
//   + uplink br0 peth0 (trunk all) / - uplink br0 peth0 / ~ uplink br0 peth0 -> peth1 / ~ uplink br0 bond0 miimon 100 -> 200
//   ~ uplink br0/peth0 vlan trunk all -> trunk 10,20
//   + fdb br0 02:00:00:00:00:01 vlan 0 vif1.0 / - fdb ... / ~ fdb br0 02:00:00:00:00:01 vlan 0 vif1.0 -> vif2.0
//   ~ fdb_snapshot_interval 30 -> 10               in place
//   ~ control_socket /a -> /b (takes effect at restart; the runtime state stays in <state_dir>/<key of /a>.state: ...)
//                                                  also state_dir (the same note), metrics.listen
//   ~ log_level info -> debug                      in place (src/log.ts setLogLevel)
//   + vxlan br0/vx10010 (vni 10010, access 10)     created and opened (src/daemon/vxlan.ts); - vxlan: closed, removed
//   ~ vxlan br0/vx10010 remotes +198.18.20.4 -198.18.20.3   in place (the all-zeros FDB entries); vlan and port
//                                                  flags in place too; vni, local, group, dev, port, ttl, tos,
//                                                  kernel_learning, persist: the port and its netdev are re-created
//
// Order of application: removals, then changes, then additions (interface names are unique daemon-wide, so a
// port moving between bridges leaves the old one first). A port whose settings did not change is never closed:
// it keeps its fd, FDB entries and counters.

import { DEFAULT_PACKET_MMAP, type BridgeConfig, type DaemonConfig, type PacketMmapConfig, type PortConfig, type StaticFdbConfig, type UplinkConfig, type VxlanPortConfig } from '../config/config.js';
import type { Daemon } from '../daemon/daemon.js';
import type { VlanSpec } from '../bridge/vlan.js';
import { QOS_KEYS, qosSpecToConfig, type QosSpec } from '../bridge/qos.js';
import { formatMac } from '../frame/mac.js';
import { jsonEqual } from './document.js';
import { fdbTarget, portTarget } from './journal.js';
import { statePath } from './store.js';
import { defaultLogLevel, setLogLevel, type LogLevel } from '../log.js';
import { busyPoll, directPoll } from '../io/native.js';
import { applyPacketMmap } from '../daemon/packet-ring.js';
import type { McastSettings } from '../bridge/mcast.js';
import { MCAST_BRIDGE_KEYS, MCAST_PORT_KEYS } from '../mdb/config.js';
import { bridgeMulticastChanges, portDefaultsWithoutMulticast, portMulticastChanges } from '../mdb/reload.js';

export type ChangeAction =
  | { do: 'addBridge'; cfg: BridgeConfig }
  | { do: 'removeBridge'; name: string }
  | { do: 'recreateBridge'; cfg: BridgeConfig }
  | { do: 'ageing'; bridge: string; seconds: number }
  | { do: 'addPort'; bridge: string; port: PortConfig }
  | { do: 'removePort'; bridge: string; name: string }
  | { do: 'recreatePort'; bridge: string; port: PortConfig }
  | { do: 'portFlags'; bridge: string; port: PortFlagsConfig }
  | { do: 'addVxlan'; bridge: string; spec: VxlanPortConfig }
  | { do: 'recreateVxlan'; bridge: string; spec: VxlanPortConfig }
  | { do: 'vxlanRemotes'; bridge: string; name: string; add: string[]; del: string[] }
  | { do: 'portVlan'; bridge: string; name: string; vlan: VlanSpec }
  | { do: 'portQos'; bridge: string; name: string; qos: QosSpec }
  | { do: 'multicast'; bridge: string; settings: McastSettings }
  | { do: 'replaceUplink'; bridge: string; uplink: UplinkConfig | null }
  | { do: 'fdbAdd'; bridge: string; entry: StaticFdbConfig }
  | { do: 'fdbDel'; bridge: string; entry: StaticFdbConfig }
  | { do: 'snapshotInterval'; seconds: number }
  | { do: 'logLevel'; level: LogLevel }
  | { do: 'busyPoll'; us: number }
  | { do: 'directPoll'; on: boolean }
  | { do: 'packetMmap'; cfg: PacketMmapConfig }
  | { do: 'atRestart' };

export interface Change {
  /** One line of `reload --dry-run`. */
  line: string;
  /** Runtime records with this target (or under this bridge, for bridge:<br>) are dropped: the file wins. */
  targets: string[];
  action: ChangeAction;
  /** 0 removals, 1 changes, 2 additions */
  phase: 0 | 1 | 2;
}

export function describeVlan(v: VlanSpec): string {
  if (v.mode === 'default') return 'default';
  if (v.mode === 'access') return `access ${v.vlan}`;
  const list = v.vlans === 'all' ? 'all' : compactVids(v.vlans);
  return `trunk ${list}${v.native !== null ? ` native ${v.native}` : ''}`;
}

function compactVids(vids: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < vids.length; i++) {
    let j = i;
    while (j + 1 < vids.length && vids[j + 1] === vids[j] + 1) j++;
    out.push(j > i ? `${vids[i]}-${vids[j]}` : `${vids[i]}`);
    i = j;
  }
  return out.join(',');
}

function vlanChange(a: VlanSpec, b: VlanSpec): string {
  if (a.mode === 'access' && b.mode === 'access') return `${a.vlan} -> ${b.vlan}`;
  return `${describeVlan(a)} -> ${describeVlan(b)}`;
}

/** BondConfigFile fields -> their config keys (the names dry-run prints). */
const BOND_KEY_OF: Record<string, string> = {
  members: 'members', primary: 'primary', primaryReselect: 'primary_reselect', miimonMs: 'miimon', updelayMs: 'updelay',
  downdelayMs: 'downdelay', numGratArp: 'num_grat_arp', peerNotifDelayMs: 'peer_notif_delay',
  mode: 'mode', rebalanceIntervalMs: 'rebalance_interval', lacp: 'lacp', lacpRate: 'lacp_rate', hash: 'hash',
  systemPriority: 'system_priority', portPriority: 'port_priority',
};

function text(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

const BRIDGE_TYPED_KEYS = ['name', 'ageing_time', 'fdb_max', 'mtu', 'uplink', 'fdb', 'ports', 'vxlan', ...MCAST_BRIDGE_KEYS];
const PORT_TYPED_KEYS = ['name', 'kind', 'persist', 'learning', 'flood', 'isolated', 'fdb_max', 'create', 'vlan', 'trunk', 'native_vlan', ...QOS_KEYS, ...MCAST_PORT_KEYS];

/** A bridge's untyped keys, its port_defaults without the multicast keys (those change in place). */
function untypedBridge(raw: unknown): Record<string, unknown> {
  const out = untyped(raw, BRIDGE_TYPED_KEYS);
  if (out.port_defaults !== undefined) {
    const pd = portDefaultsWithoutMulticast(out.port_defaults);
    if (Object.keys(pd).length === 0) delete out.port_defaults;
    else out.port_defaults = pd;
  }
  return out;
}
const UPLINK_TYPED_KEYS = ['interface', 'bond', 'vlan', 'trunk', 'native_vlan'];

/** The keys of a raw mapping that this file's typed diff does not compare (later features' keys). */
function untyped(raw: unknown, typed: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    for (const [k, v] of Object.entries(raw)) if (!typed.includes(k)) out[k] = v;
  }
  return out;
}

function rawList(raw: unknown, key: string): unknown[] {
  const v = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[key] : undefined;
  return Array.isArray(v) ? v : [];
}

function rawBridge(cfg: DaemonConfig, name: string): unknown {
  const i = cfg.bridges.findIndex((b) => b.name === name);
  return rawList(cfg.raw, 'bridges')[i];
}

function rawPort(bridgeRaw: unknown, bc: BridgeConfig, name: string): unknown {
  const i = bc.ports.findIndex((p) => p.name === name);
  return rawList(bridgeRaw, 'ports')[i];
}

function uplinkName(u: UplinkConfig | null): string | null {
  if (u === null) return null;
  return u.bond !== null ? u.bond.name : u.interface;
}

function portSummary(p: PortConfig): string {
  return `(${p.kind}, ${describeVlan(p.vlan)})`;
}

function fdbKey(f: StaticFdbConfig): string {
  return `${f.vlan}/${f.mac}`;
}

type PortFlagsConfig = Pick<PortConfig, 'name' | 'learning' | 'flood' | 'isolated' | 'fdbMax'>;

/** One in-place change per port flag that differs (ports and vxlan ports alike). */
function flagChanges(out: Change[], br: string, what: 'port' | 'vxlan', q: PortFlagsConfig, p: PortFlagsConfig, targets: string[]): void {
  for (const k of ['learning', 'flood', 'isolated', 'fdbMax'] as const) {
    if (q[k] !== p[k]) {
      const key = k === 'fdbMax' ? 'fdb_max' : k;
      out.push({ line: `~ ${what} ${br}/${p.name} ${key} ${q[k]} -> ${p[k]}`, targets, action: { do: 'portFlags', bridge: br, port: p }, phase: 1 });
    }
  }
}

/** One in-place change per QoS key that differs (the port keeps its fd; its QoS is replaced as a whole). */
function qosChanges(out: Change[], br: string, what: 'port' | 'vxlan', name: string, q: QosSpec, p: QosSpec, targets: string[]): void {
  const a = qosSpecToConfig(q);
  const b = qosSpecToConfig(p);
  const changed = QOS_KEYS.filter((k) => !jsonEqual(a[k] ?? null, b[k] ?? null));
  if (changed.length === 0) return;
  const txt = (v: unknown): string => (v === undefined ? 'none' : JSON.stringify(v));
  out.push({
    line: `~ ${what} ${br}/${name} qos ${changed.map((k) => `${k} ${txt(a[k])} -> ${txt(b[k])}`).join(', ')}`,
    targets, action: { do: 'portQos', bridge: br, name, qos: p }, phase: 1,
  });
}

function diffBridge(out: Change[], o: BridgeConfig, n: BridgeConfig, oRaw: unknown, nRaw: unknown): void {
  const br = n.name;
  const rebuild: string[] = [];
  if (o.fdbMax !== n.fdbMax) rebuild.push(`fdb_max ${o.fdbMax} -> ${n.fdbMax}`);
  if (o.mtu !== n.mtu) rebuild.push(`mtu ${o.mtu} -> ${n.mtu}`);
  if (!jsonEqual(untypedBridge(oRaw), untypedBridge(nRaw))) rebuild.push('options of later features');
  if (rebuild.length > 0) {
    out.push({ line: `~ bridge ${br} ${rebuild.join(', ')} (re-created)`, targets: [`bridge:${br}`], action: { do: 'recreateBridge', cfg: n }, phase: 1 });
    return;
  }
  if (o.ageingTimeS !== n.ageingTimeS) {
    out.push({ line: `~ bridge ${br} ageing_time ${o.ageingTimeS} -> ${n.ageingTimeS}`, targets: [`bridge:${br}/ageing_time`], action: { do: 'ageing', bridge: br, seconds: n.ageingTimeS }, phase: 1 });
  }
  // multicast keys: in place (src/mdb/reload.ts); every line applies the bridge's whole new multicast settings
  const mcast: ChangeAction = { do: 'multicast', bridge: br, settings: n.multicast };
  for (const c of bridgeMulticastChanges(oRaw, nRaw)) out.push({ line: `~ bridge ${br} ${c}`, targets: [], action: mcast, phase: 1 });
  // uplink
  const on = uplinkName(o.uplink);
  const nn = uplinkName(n.uplink);
  const upTargets = [on, nn].filter((x): x is string => x !== null).map((x) => portTarget(br, x));
  const oUpRaw = (oRaw as Record<string, unknown> | undefined)?.uplink;
  const nUpRaw = (nRaw as Record<string, unknown> | undefined)?.uplink;
  if (o.uplink === null && n.uplink !== null) {
    out.push({ line: `+ uplink ${br} ${nn} (${describeVlan(n.uplink.vlan)})`, targets: upTargets, action: { do: 'replaceUplink', bridge: br, uplink: n.uplink }, phase: 2 });
  } else if (o.uplink !== null && n.uplink === null) {
    out.push({ line: `- uplink ${br} ${on}`, targets: upTargets, action: { do: 'replaceUplink', bridge: br, uplink: null }, phase: 0 });
  } else if (o.uplink !== null && n.uplink !== null) {
    const what: string[] = [];
    if (on !== nn) what.push(`${on} -> ${nn}`);
    if ((o.uplink.bond === null) !== (n.uplink.bond === null)) what.push(n.uplink.bond !== null ? 'interface -> bond' : 'bond -> interface');
    else if (o.uplink.bond !== null && n.uplink.bond !== null) {
      const ob = o.uplink.bond as unknown as Record<string, unknown>;
      const nb = n.uplink.bond as unknown as Record<string, unknown>;
      for (const [k, key] of Object.entries(BOND_KEY_OF)) if (!jsonEqual(ob[k], nb[k])) what.push(`${key} ${text(ob[k])} -> ${text(nb[k])}`);
    }
    if (!jsonEqual(untyped(oUpRaw, UPLINK_TYPED_KEYS), untyped(nUpRaw, UPLINK_TYPED_KEYS))) what.push('options of later features');
    if (what.length > 0) {
      out.push({ line: `~ uplink ${br} ${what.join(', ')}`, targets: upTargets, action: { do: 'replaceUplink', bridge: br, uplink: n.uplink }, phase: 1 });
    } else if (!jsonEqual(o.uplink.vlan, n.uplink.vlan)) {
      out.push({ line: `~ uplink ${br}/${nn} vlan ${vlanChange(o.uplink.vlan, n.uplink.vlan)}`, targets: upTargets, action: { do: 'portVlan', bridge: br, name: nn!, vlan: n.uplink.vlan }, phase: 1 });
    }
  }
  // ports
  const oPorts = new Map(o.ports.map((p) => [p.name, p]));
  const nPorts = new Map(n.ports.map((p) => [p.name, p]));
  for (const p of o.ports) {
    if (!nPorts.has(p.name)) out.push({ line: `- port ${br}/${p.name}`, targets: [portTarget(br, p.name)], action: { do: 'removePort', bridge: br, name: p.name }, phase: 0 });
  }
  for (const p of n.ports) {
    const q = oPorts.get(p.name);
    const t = [portTarget(br, p.name)];
    if (q === undefined) {
      out.push({ line: `+ port ${br}/${p.name} ${portSummary(p)}`, targets: t, action: { do: 'addPort', bridge: br, port: p }, phase: 2 });
      continue;
    }
    const rebuild: string[] = [];
    if (q.kind !== p.kind) rebuild.push(`kind ${q.kind} -> ${p.kind}`);
    if (q.persist !== p.persist) rebuild.push(`persist ${q.persist} -> ${p.persist}`);
    if (!jsonEqual(q.create, p.create)) rebuild.push(`create ${JSON.stringify(q.create)} -> ${JSON.stringify(p.create)}`);
    if (!jsonEqual(untyped(rawPort(oRaw, o, p.name), PORT_TYPED_KEYS), untyped(rawPort(nRaw, n, p.name), PORT_TYPED_KEYS))) rebuild.push('options of later features');
    if (rebuild.length > 0) {
      out.push({ line: `~ port ${br}/${p.name} ${rebuild.join(', ')} (re-created)`, targets: t, action: { do: 'recreatePort', bridge: br, port: p }, phase: 1 });
      continue;
    }
    if (!jsonEqual(q.vlan, p.vlan)) {
      out.push({ line: `~ port ${br}/${p.name} vlan ${vlanChange(q.vlan, p.vlan)}`, targets: t, action: { do: 'portVlan', bridge: br, name: p.name, vlan: p.vlan }, phase: 1 });
    }
    flagChanges(out, br, 'port', q, p, t);
    qosChanges(out, br, 'port', p.name, q.qos, p.qos, t);
    for (const c of portMulticastChanges(rawPort(oRaw, o, p.name), rawPort(nRaw, n, p.name))) out.push({ line: `~ port ${br}/${p.name} ${c}`, targets: t, action: mcast, phase: 1 });
  }
  diffVxlan(out, br, o.vxlan, n.vxlan);
  // static FDB entries
  const oFdb = new Map(o.fdb.map((f) => [fdbKey(f), f]));
  const nFdb = new Map(n.fdb.map((f) => [fdbKey(f), f]));
  for (const f of o.fdb) {
    if (!nFdb.has(fdbKey(f))) {
      out.push({ line: `- fdb ${br} ${formatMac(f.mac)} vlan ${f.vlan} ${f.port}`, targets: [fdbTarget(br, f.vlan, f.mac)], action: { do: 'fdbDel', bridge: br, entry: f }, phase: 0 });
    }
  }
  for (const f of n.fdb) {
    const g = oFdb.get(fdbKey(f));
    const t = [fdbTarget(br, f.vlan, f.mac)];
    if (g === undefined) out.push({ line: `+ fdb ${br} ${formatMac(f.mac)} vlan ${f.vlan} ${f.port}`, targets: t, action: { do: 'fdbAdd', bridge: br, entry: f }, phase: 2 });
    else if (g.port !== f.port) out.push({ line: `~ fdb ${br} ${formatMac(f.mac)} vlan ${f.vlan} ${g.port} -> ${f.port}`, targets: t, action: { do: 'fdbAdd', bridge: br, entry: f }, phase: 2 });
  }
}

/** A vxlan entry's settings that only a new netdev can change (the rest is changed in place). */
const VXLAN_REBUILD_KEYS = [['vni', 'vni'], ['local', 'local'], ['group', 'group'], ['dev', 'dev'], ['port', 'port'], ['ttl', 'ttl'], ['tos', 'tos'],
  ['kernelLearning', 'kernel_learning'], ['persist', 'persist']] as const;

function diffVxlan(out: Change[], br: string, o: readonly VxlanPortConfig[], n: readonly VxlanPortConfig[]): void {
  const oV = new Map(o.map((v) => [v.name, v]));
  const nV = new Map(n.map((v) => [v.name, v]));
  for (const v of o) {
    if (!nV.has(v.name)) out.push({ line: `- vxlan ${br}/${v.name}`, targets: [portTarget(br, v.name)], action: { do: 'removePort', bridge: br, name: v.name }, phase: 0 });
  }
  for (const v of n) {
    const q = oV.get(v.name);
    const t = [portTarget(br, v.name)];
    if (q === undefined) {
      out.push({ line: `+ vxlan ${br}/${v.name} (vni ${v.vni}, ${describeVlan(v.vlan)})`, targets: t, action: { do: 'addVxlan', bridge: br, spec: v }, phase: 2 });
      continue;
    }
    const rebuild = VXLAN_REBUILD_KEYS.filter(([k]) => !jsonEqual(q[k], v[k])).map(([k, key]) => `${key} ${text(q[k])} -> ${text(v[k])}`);
    if (rebuild.length > 0) {
      out.push({ line: `~ vxlan ${br}/${v.name} ${rebuild.join(', ')} (re-created)`, targets: t, action: { do: 'recreateVxlan', bridge: br, spec: v }, phase: 1 });
      continue;
    }
    const add = v.remotes.filter((r) => !q.remotes.includes(r));
    const del = q.remotes.filter((r) => !v.remotes.includes(r));
    if (add.length > 0 || del.length > 0) {
      out.push({ line: `~ vxlan ${br}/${v.name} remotes ${[...add.map((r) => `+${r}`), ...del.map((r) => `-${r}`)].join(' ')}`, targets: t,
        action: { do: 'vxlanRemotes', bridge: br, name: v.name, add, del }, phase: 1 });
    }
    if (!jsonEqual(q.vlan, v.vlan)) {
      out.push({ line: `~ vxlan ${br}/${v.name} vlan ${vlanChange(q.vlan, v.vlan)}`, targets: t, action: { do: 'portVlan', bridge: br, name: v.name, vlan: v.vlan }, phase: 1 });
    }
    flagChanges(out, br, 'vxlan', q, v, t);
    qosChanges(out, br, 'vxlan', v.name, q.qos, v.qos, t);
  }
}

/** The plan that turns config `o` into config `n`, in application order. */
export function diffConfig(o: DaemonConfig, n: DaemonConfig): Change[] {
  const out: Change[] = [];
  // the state files are named by state_dir and the socket's path (store.ts): either change leaves the runtime state behind
  const stateMoves = statePath(o.stateDir, o.controlSocket) !== statePath(n.stateDir, n.controlSocket);
  const stateNote = stateMoves
    ? `; the runtime state stays in ${statePath(o.stateDir, o.controlSocket)}: a restart reads ${statePath(n.stateDir, n.controlSocket)} and starts without the runtime changes unless the .state and .fdb files are moved there`
    : '';
  if (o.controlSocket !== n.controlSocket) {
    out.push({ line: `~ control_socket ${o.controlSocket} -> ${n.controlSocket} (takes effect at restart${stateNote})`, targets: [], action: { do: 'atRestart' }, phase: 1 });
  }
  if (o.stateDir !== n.stateDir) {
    out.push({ line: `~ state_dir ${o.stateDir} -> ${n.stateDir} (takes effect at restart${o.controlSocket !== n.controlSocket ? '' : stateNote})`, targets: [], action: { do: 'atRestart' }, phase: 1 });
  }
  const oLevel = o.logLevel ?? defaultLogLevel();
  const nLevel = n.logLevel ?? defaultLogLevel();
  if (oLevel !== nLevel) {
    out.push({ line: `~ log_level ${oLevel} -> ${nLevel}`, targets: [], action: { do: 'logLevel', level: nLevel }, phase: 1 });
  }
  const listen = (c: DaemonConfig): string => (c.metrics === undefined || c.metrics === null ? 'off'
    : c.metrics.listen.host.includes(':') ? `[${c.metrics.listen.host}]:${c.metrics.listen.port}` : `${c.metrics.listen.host}:${c.metrics.listen.port}`);
  if (listen(o) !== listen(n)) {
    out.push({ line: `~ metrics.listen ${listen(o)} -> ${listen(n)} (takes effect at restart)`, targets: [], action: { do: 'atRestart' }, phase: 1 });
  }
  if (o.busyPollUs !== n.busyPollUs) {
    out.push({ line: `~ busy_poll_us ${o.busyPollUs} -> ${n.busyPollUs}`, targets: [], action: { do: 'busyPoll', us: n.busyPollUs }, phase: 1 });
  }
  if (o.dataWorkers !== n.dataWorkers) {
    out.push({ line: `~ data_workers ${o.dataWorkers} -> ${n.dataWorkers} (takes effect at restart)`, targets: [], action: { do: 'atRestart' }, phase: 1 });
  }
  if (o.directPoll !== n.directPoll) {
    out.push({ line: `~ direct_poll ${o.directPoll} -> ${n.directPoll}`, targets: [], action: { do: 'directPoll', on: n.directPoll }, phase: 1 });
  }
  const mm = (c: DaemonConfig): string => JSON.stringify(c.packetMmap ?? DEFAULT_PACKET_MMAP);
  if (mm(o) !== mm(n)) {
    out.push({ line: `~ packet_mmap ${mm(o)} -> ${mm(n)} (AF_PACKET sockets opened from now on)`, targets: [], action: { do: 'packetMmap', cfg: n.packetMmap ?? DEFAULT_PACKET_MMAP }, phase: 1 });
  }
  if (o.fdbSnapshotIntervalS !== n.fdbSnapshotIntervalS) {
    out.push({ line: `~ fdb_snapshot_interval ${o.fdbSnapshotIntervalS} -> ${n.fdbSnapshotIntervalS}`, targets: [], action: { do: 'snapshotInterval', seconds: n.fdbSnapshotIntervalS }, phase: 1 });
  }
  const oB = new Map(o.bridges.map((b) => [b.name, b]));
  const nB = new Map(n.bridges.map((b) => [b.name, b]));
  for (const b of o.bridges) {
    if (!nB.has(b.name)) out.push({ line: `- bridge ${b.name}`, targets: [`bridge:${b.name}`], action: { do: 'removeBridge', name: b.name }, phase: 0 });
  }
  for (const b of n.bridges) {
    const ob = oB.get(b.name);
    if (ob === undefined) out.push({ line: `+ bridge ${b.name}`, targets: [`bridge:${b.name}`], action: { do: 'addBridge', cfg: b }, phase: 2 });
    else diffBridge(out, ob, b, rawBridge(o, b.name), rawBridge(n, b.name));
  }
  // stable sort by phase keeps each phase in file order
  return out.map((c, i) => ({ c, i })).sort((a, b) => a.c.phase - b.c.phase || a.i - b.i).map((x) => x.c);
}

/** Every netdev a bridge config names: ports, the uplink, bond members. */
function netdevsOf(b: BridgeConfig): Set<string> {
  const up = b.uplink;
  return new Set([...b.ports.map((p) => p.name), ...b.vxlan.map((v) => v.name), ...(up === null ? [] : up.bond !== null ? up.bond.members : up.interface !== null ? [up.interface] : [])]);
}

/** Ports and uplinks the plan closes and opens again (their static entries and runtime fdb records go with them). */
export function recreatedPorts(plan: readonly Change[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (br: string, name: string | null): void => {
    if (name === null) return;
    if (!out.has(br)) out.set(br, new Set());
    out.get(br)!.add(name);
  };
  for (const c of plan) {
    const a = c.action;
    if (a.do === 'recreatePort') add(a.bridge, a.port.name);
    else if (a.do === 'recreateVxlan') add(a.bridge, a.spec.name);
    else if (a.do === 'replaceUplink' && a.uplink !== null) add(a.bridge, uplinkName(a.uplink));
  }
  return out;
}

/**
 * Applies a plan to the daemon. Each change is applied on its own: one that fails is reported and the rest still
 * apply (the new config was valid, so a failure is an I/O error such as a TAP that cannot be created).
 */
export function applyPlan(d: Daemon, plan: readonly Change[], n: DaemonConfig, onError: (c: Change, err: Error) => void): void {
  const nB = new Map(n.bridges.map((b) => [b.name, b]));
  for (const c of plan) {
    const a = c.action;
    try {
      switch (a.do) {
        case 'addBridge':
          d.addBridge(a.cfg);
          break;
        case 'removeBridge':
          d.removeBridge(a.name);
          break;
        case 'recreateBridge':
          d.removeBridge(a.cfg.name, netdevsOf(a.cfg));
          d.addBridge(a.cfg);
          break;
        case 'ageing':
          d.setAgeing(a.bridge, a.seconds);
          break;
        case 'addPort':
          d.addConfigPort(a.bridge, a.port);
          break;
        case 'removePort':
          d.removePortByName(a.bridge, a.name);
          break;
        case 'recreatePort':
          d.removePortByName(a.bridge, a.port.name, true);
          d.addConfigPort(a.bridge, a.port);
          break;
        case 'portFlags':
          d.setPortFlags(a.bridge, a.port);
          break;
        case 'addVxlan':
          d.addVxlanConfigPort(a.bridge, a.spec);
          break;
        case 'recreateVxlan':
          d.removePortByName(a.bridge, a.spec.name, true);
          d.addVxlanConfigPort(a.bridge, a.spec);
          break;
        case 'vxlanRemotes':
          d.setVxlanRemotes(a.bridge, a.name, a.add, a.del);
          break;
        case 'portVlan':
          d.setPortVlanByName(a.bridge, a.name, a.vlan);
          break;
        case 'portQos':
          d.setPortQosByName(a.bridge, a.name, a.qos);
          break;
        case 'multicast':
          d.setMulticastSettings(a.bridge, a.settings);
          break;
        case 'replaceUplink':
          d.replaceUplink(a.bridge, a.uplink);
          break;
        case 'fdbAdd':
          if (!d.addStaticFdb(a.bridge, a.entry)) throw new Error(`cannot add ${formatMac(a.entry.mac)}: port ${a.entry.port} missing or FDB full`);
          break;
        case 'fdbDel':
          d.deleteFdb(a.bridge, a.entry.vlan, a.entry.mac);
          break;
        case 'logLevel':
          setLogLevel(a.level);
          break;
        case 'busyPoll':
          busyPoll.set(a.us);
          break;
        case 'directPoll':
          directPoll.set(a.on);
          break;
        case 'packetMmap':
          applyPacketMmap(a.cfg);
          break;
        case 'snapshotInterval':
        case 'atRestart':
          break;
      }
    } catch (err) {
      onError(c, err as Error);
    }
  }
  // static entries of re-created ports and uplinks went with them
  for (const [br, names] of recreatedPorts(plan)) {
    for (const f of nB.get(br)?.fdb ?? []) if (names.has(f.port)) d.addStaticFdb(br, f);
  }
  for (const b of n.bridges) {
    d.setBridgeConfig(b);
    // ports added by this plan take their multicast keys from the new settings (a no-op where they are in force)
    d.setMulticastSettings(b.name, b.multicast);
  }
  d.config = n;
  // data_workers > 1: the workers forward with the reloaded ports from here on (tests' stand-in daemons have no data plane)
  d.syncDataPlane?.();
}
