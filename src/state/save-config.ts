// `tapbridge save-config`: the effective configuration (the config file plus runtime changes) as YAML that
// check-config accepts and a daemon can start from.
//
// Built from the config document in force (so keys of every feature are kept as written) and the daemon's live
// views: the ports that exist now (ports removed at runtime are left out, ports added at runtime are appended
// with their kind), each port's and uplink's VLAN mode as it is now, the ageing time in force, and the static FDB
// entries as they are now, each port's lock as it is now, the mirrors as they are now, each port's QoS
// (rate_limit, egress_rate_limit, storm_control) as it is now (`null` where the port has none but port_defaults has),
// the permanent MDB entries as they are now.

import { stringify } from 'yaml';
import type { Daemon, VlanShow } from '../daemon/daemon.js';
import type { DaemonConfig } from '../config/config.js';
import { vxlanEntryRaw } from '../daemon/vxlan.js';
import type { LockShow } from '../bridge/lock.js';
import { QOS_KEYS, type QosShow } from '../bridge/qos.js';

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Replaces the VLAN keys of a port or uplink mapping with the mode a `vlan show` entry describes. */
function setVlanKeys(m: Raw, v: VlanShow | undefined): void {
  if (v === undefined) return;
  delete m.vlan;
  delete m.trunk;
  delete m.native_vlan;
  if (v.mode === 'access') m.vlan = v.native;
  else if (v.vlans === 'all' && v.native === 0) return; // default mode
  else {
    m.trunk = v.vlans === 'all' ? 'all' : [...v.vlans];
    if (v.native !== null) m.native_vlan = v.native;
  }
}

/** Sets a port's `lock` key to its lock as it is now (`lock set` / `lock clear` at runtime; issue 10). */
function setLockKey(m: Raw, l: LockShow | undefined): void {
  if (l === undefined) return;
  if (l.mode === 'locked') {
    m.lock = { mac: l.mac, ipv4: [...l.ipv4], ipv6: [...l.ipv6], ...(l.allow_ethertypes.length > 0 ? { allow_ethertypes: [...l.allow_ethertypes] } : {}) };
  } else if (l.mode === 'disabled') {
    m.lock = 'disabled';
  } else {
    delete m.lock;
  }
}

/** Sets a port's QoS keys to its QoS as it is now (`qos set` / `qos clear` at runtime); `defaults`: port_defaults. */
function setQosKeys(m: Raw, q: QosShow | undefined, defaults: Raw): void {
  if (q === undefined) return;
  const s = q.storm_control;
  const now: Record<(typeof QOS_KEYS)[number], unknown> = {
    rate_limit: q.rate_limit === null ? null : { ...q.rate_limit },
    egress_rate_limit: q.egress_rate_limit === null ? null : { ...q.egress_rate_limit },
    storm_control: s === null ? null : {
      ...(s.broadcast_pps !== null ? { broadcast_pps: s.broadcast_pps } : {}),
      ...(s.multicast_pps !== null ? { multicast_pps: s.multicast_pps } : {}),
      ...(s.unknown_unicast_pps !== null ? { unknown_unicast_pps: s.unknown_unicast_pps } : {}),
      action: s.action, shutdown_s: s.shutdown_s,
    },
  };
  for (const k of QOS_KEYS) {
    if (now[k] !== null) m[k] = now[k];
    else if (defaults[k] !== undefined && defaults[k] !== null) m[k] = null;
    else delete m[k];
  }
}

export function effectiveConfig(d: Daemon, file: DaemonConfig): Raw {
  const raw = structuredClone(file.raw);
  const shows = new Map(d.show().map((b) => [b.name, b]));
  const rawBridges = Array.isArray(raw.bridges) ? raw.bridges : [];
  for (const rb of rawBridges) {
    if (!isObject(rb) || typeof rb.name !== 'string') continue;
    const name = rb.name;
    const show = shows.get(name);
    if (show === undefined) continue;
    const vlans = new Map(d.vlanShow(name).map((v) => [v.port, v]));
    const locks = new Map(d.lockShow(name).map((l) => [l.port, l]));
    const qos = new Map(d.qosShow(name).map((q) => [q.port, q]));
    const defaults = isObject(rb.port_defaults) ? rb.port_defaults : {};
    const live = new Map(show.ports.map((p) => [p.name, p]));
    const ports: Raw[] = [];
    const seen = new Set<string>();
    for (const rp of Array.isArray(rb.ports) ? rb.ports : []) {
      if (!isObject(rp) || typeof rp.name !== 'string' || !live.has(rp.name)) continue;
      const m = { ...rp };
      setVlanKeys(m, vlans.get(rp.name));
      setLockKey(m, locks.get(rp.name));
      if (live.get(rp.name)!.kind !== 'host') setQosKeys(m, qos.get(rp.name), defaults);
      ports.push(m);
      seen.add(rp.name);
    }
    for (const p of show.ports) {
      if (seen.has(p.name) || p.kind === 'vxlan') continue;
      const m: Raw = { name: p.name, kind: p.kind };
      if (p.vhost_user !== undefined) Object.assign(m, { socket: p.vhost_user.socket, mode: p.vhost_user.mode });
      setVlanKeys(m, vlans.get(p.name));
      setLockKey(m, locks.get(p.name));
      if (p.kind !== 'host') setQosKeys(m, qos.get(p.name), defaults);
      ports.push(m);
    }
    rb.ports = ports;
    // vxlan ports (src/daemon/vxlan.ts): as they are now, remotes added or removed at runtime included
    const vxlan = d.vxlanConfigs(name).map((spec) => {
      const m = vxlanEntryRaw(spec);
      setVlanKeys(m, vlans.get(spec.name));
      setQosKeys(m, qos.get(spec.name), {});
      return m;
    });
    if (vxlan.length > 0) rb.vxlan = vxlan;
    else delete rb.vxlan;
    if (isObject(rb.uplink) && show.uplink !== null) setVlanKeys(rb.uplink, vlans.get(show.uplink.name));
    rb.ageing_time = d.ageingTimeS(name);
    // a locked MAC's static entry comes with its lock, it is no `fdb` entry of its own
    const lockedMac = (port: string, mac: string): boolean => locks.get(port)?.mode === 'locked' && locks.get(port)?.mac === mac;
    const fdb = d.showmacs(name).filter((e) => e.static && !lockedMac(e.port, e.mac)).map((e) => ({ mac: e.mac, port: e.port, vlan: e.vlan }));
    if (fdb.length > 0) rb.fdb = fdb;
    else delete rb.fdb;
    // mirrors as they are now (config mirrors deleted at runtime left out, runtime ones appended)
    const mirrors = d.mirrorShow(name).map((m) => {
      const o: Raw = { name: m.name, select: { ports: m.select.ports, direction: m.select.direction, ...(m.select.vlans === 'all' ? {} : { vlans: m.select.vlans }) } };
      if (m.output !== null) o.output = m.output;
      else o.output_vlan = m.output_vlan;
      return o;
    });
    if (mirrors.length > 0) rb.mirrors = mirrors;
    else delete rb.mirrors;
    // permanent MDB entries as they are now (src/mdb/; config ones and `mdb add` at runtime)
    const mdb = d.mdbShow(name).entries.filter((e) => e.kind === 'permanent')
      .map((e) => ({ group: e.group, port: e.port, vlan: e.vlan, ...(e.source !== null ? { source: e.source } : {}) }));
    if (mdb.length > 0) rb.mdb = mdb;
    else delete rb.mdb;
  }
  return raw;
}

export function effectiveConfigYaml(d: Daemon, file: DaemonConfig): string {
  return `# tapbridge effective configuration (save-config, ${new Date().toISOString()})\n${stringify(effectiveConfig(d, file), { version: '1.2' })}`;
}
