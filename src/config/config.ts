// Daemon configuration: YAML 1.2 (the `yaml` package, so an unquoted 52:54:00:12:34:56 stays a
// string), checked once at load, every error naming its key path (e.g. `bridges[0].ports[1].kind`).
//
//   control_socket: /run/tapbridge/tapbridge.sock   # at most 107 bytes (sun_path)
//   control_max_clients: 64    # concurrent control connections; more wait in the listen backlog
//   log_level: info               # fatal error warn info debug trace silent (--log-level wins)
//   metrics: { listen: "127.0.0.1:9464" }   # Prometheus /metrics over HTTP; off when absent
//   state_dir: /var/lib/tapbridge      # runtime state and FDB snapshot: <state_dir>/<control socket path, escaped>.state
//   fdb_snapshot_interval: 30          # seconds between FDB snapshots, 0 = only at shutdown
//   data_workers: 1                    # threads that forward, the main thread included; 2..64 adds worker threads
//                                      # (src/dataplane/, native-notes/multicore.md); takes effect at restart
//   bridges:
//     - name: xenbr0
//       ageing_time: 300          # seconds, 0 = never, else 10..1000000
//       fdb_max: 8192             # bridge cap on FDB entries
//       mtu: 1500                 # applied to TAPs the daemon creates
//       uplink: { interface: peth0, trunk: all, native_vlan: 1 }
//       # or an active-backup bond of two members (Linux bonding driver names, times in ms):
//       # uplink: { bond: { name: bond0, members: [peth0, peth1], primary: peth0, primary_reselect: always,
//       #                   miimon: 100, updelay: 0, downdelay: 0, num_grat_arp: 1, peer_notif_delay: 0 } }
//       # or both NICs in use: { bond: { name: bond0, mode: balance-slb, members: [peth0, peth1], rebalance_interval: 10000 } }
//       # or LACP: { bond: { name: bond0, mode: 802.3ad, members: [peth0, peth1], lacp: active, lacp_rate: slow,
//       #                  hash: layer2, system_priority: 65535, port_priority: 255 } }
//       fdb: [ { mac: "00:16:3e:00:01:00", port: vif1.0 } ]
//       ports:
//         - { name: vif1.0 }                       # kind: tap (default)
//         - { name: vif2.0, kind: attach }
//         - { name: vif3.0, persist: true, learning: true, flood: true, isolated: false, fdb_max: 256 }
//         - { name: vif4.0, vlan: 10 }                        # access port in VLAN 10
//         - { name: vif5.0, trunk: [10, "100-199"], native_vlan: 10 }
//         - { name: vif6.0, kind: attach, create: { owner: 1000, group: 1000 } }   # TAP for unprivileged QEMU
//         - { name: vif7.0, lock: { mac: "00:16:3e:00:01:00", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"] } }
//         - { name: vif8.0, lock: disabled, ra_guard: true, dhcp_guard: true, allow_stacked: false }
//         - { name: xenbr0, kind: host, mac: uplink }   # the host's own port (its addresses); mac: "02:..." or uplink
//         - { name: vif9.0, rate_limit: { kbps: 100000, burst_kb: 1000 }, egress_rate_limit: { kbps: 50000 },
//             storm_control: { broadcast_pps: 1000, multicast_pps: 1000, unknown_unicast_pps: 1000, action: shutdown, shutdown_s: 30 } }
//                                       # QoS (src/bridge/qos.ts): tap, attach and vxlan ports; `null` undoes a default
//       port_defaults: { ra_guard: true, dhcp_guard: true }   # also learning, flood, isolated, fdb_max, lock: disabled,
//                                                             # rate_limit, egress_rate_limit, storm_control
//       vxlan:                    # kernel vxlan netdevs the daemon creates and attaches to (src/daemon/vxlan.ts)
//         - { name: vx10010, vni: 10010, vlan: 10, local: 198.18.20.1, remotes: [198.18.20.2, 198.18.20.3] }
//         - { name: vx10020, vni: 10020, vlan: 20, local: 198.18.20.1, group: 239.1.1.20, dev: underlay0 }
//
// Interface names are 1..15 bytes, without "%" (the kernel would expand it), not "lo", and unique
// across the whole file. The file itself is at most MAX_CONFIG_BYTES; YAML aliases are capped.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import { parseMac } from '../frame/mac.js';
import { PortVlan, vlanSpecFrom, type VlanSpec } from '../bridge/vlan.js';
import { mirrorSetProblem, mirrorSpecFrom, type MirrorSpec } from '../bridge/mirror.js';
import { type LockSpec, lockSpecFrom, UNLOCKED } from '../bridge/lock.js';
import { NO_QOS, QOS_KEYS, qosSpecFrom, type QosSpec } from '../bridge/qos.js';
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../log.js';
import { parseListen, type ListenAddress } from '../metrics/listen.js';
import type { McastSettings } from '../bridge/mcast.js';
import { MCAST_BRIDGE_KEYS, MCAST_PORT_KEYS, mcastSettingsFrom } from '../mdb/config.js';

export const DEFAULT_CONFIG_PATH = '/etc/tapbridge/tapbridge.yaml';
export const DEFAULT_CONTROL_SOCKET = '/run/tapbridge/tapbridge.sock';
export const DEFAULT_AGEING_TIME_S = 300;
export const DEFAULT_FDB_MAX = 8192;
export const DEFAULT_MTU = 1500;
export const MAX_PORTS_PER_BRIDGE = 1024;
export const DEFAULT_STATE_DIR = '/var/lib/tapbridge';
export const DEFAULT_FDB_SNAPSHOT_INTERVAL_S = 30;
export const DEFAULT_CONTROL_MAX_CLIENTS = 64;
/** busy_poll_us: the event loop keeps polling this long after a receive batch (0 = off; src/native/busypoll.cc). */
export const DEFAULT_BUSY_POLL_US = 0;
export const MAX_BUSY_POLL_US = 1_000_000;
/** direct_poll: the data path waits for frames itself while libuv is idle (src/native/directpoll.cc). */
export const DEFAULT_DIRECT_POLL = true;
/** data_workers: threads that forward frames, the main thread included (1 = the main thread alone; src/dataplane/). */
export const DEFAULT_DATA_WORKERS = 1;
export const MAX_DATA_WORKERS = 64;
/**
 * packet_mmap: PACKET_MMAP rings on AF_PACKET ports (uplinks, bond members, attach ports; src/native/port-ring.cc).
 * A ring is made of 64 KiB blocks of whole slots, at most 511 blocks (32 MiB) per ring.
 */
export const DEFAULT_PACKET_MMAP: PacketMmapConfig = { enabled: true, rxFrames: 4096, txFrames: 0, frameBytes: 2048, qdiscBypass: false };
export const PACKET_RING_BLOCK_BYTES = 65536;
export const MAX_PACKET_RING_BLOCKS = 511;
/** A config file larger than this is refused. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** YAML alias expansions allowed when building the document (an alias bomb exceeds it). */
export const MAX_YAML_ALIASES = 100;
/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_CONTROL_SOCKET_BYTES = 107;

export type PortKindConfig = 'tap' | 'attach' | 'host' | 'vhost-user';

/** A vhost-user port's socket (src/daemon/vhost-user.ts): client = QEMU listens (server=on), we connect and reconnect. */
export interface VhostUserSpec {
  socket: string;
  mode: 'client' | 'server';
}

/** sun_path holds 108 bytes with the NUL. */
export const MAX_VHOST_SOCKET_BYTES = 107;

/** A vhost-user port's `socket` and `mode` (config file, addif), or the problem as "socket ..." / "mode ...". */
export function vhostUserSpecOf(socket: unknown, mode: unknown): VhostUserSpec | string {
  if (typeof socket !== 'string' || socket === '') return 'socket is required for kind vhost-user: the path of the vhost-user Unix socket';
  if (!socket.startsWith('/')) return `socket must be an absolute path, got "${socket}"`;
  if (Buffer.byteLength(socket) > MAX_VHOST_SOCKET_BYTES || socket.includes('\0')) return `socket must be at most ${MAX_VHOST_SOCKET_BYTES} bytes without NUL`;
  const m = mode === undefined || mode === null ? 'client' : mode;
  if (m !== 'client' && m !== 'server') return `mode must be "client" (QEMU listens) or "server" (tapbridge listens), got ${JSON.stringify(m)}`;
  return { socket, mode: m };
}

export interface PortConfig {
  name: string;
  kind: PortKindConfig;
  persist: boolean;
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  /** 0 = no per-port cap */
  fdbMax: number;
  vlan: VlanSpec;
  /** attach only: create a persistent TAP owned by owner/group (for unprivileged QEMU) */
  create: { owner: number; group: number } | null;
  /** VIF locking (`lock`): unlocked without the key */
  lock: LockSpec;
  raGuard: boolean;
  dhcpGuard: boolean;
  /** `allow_stacked`: no stacked-tag check on this port */
  allowStacked: boolean;
  /** vhost-user only: the socket and who listens on it */
  vhostUser?: VhostUserSpec | null;
  /** `rate_limit`, `egress_rate_limit`, `storm_control` (src/bridge/qos.ts) */
  qos: QosSpec;
  /** host only: the TAP's MAC; null = derived from the bridge name and /etc/machine-id; 'uplink' = the uplink's */
  mac?: number | 'uplink' | null;
}

/** A `vxlan` entry of a bridge: a kernel vxlan netdev the daemon creates (rtnetlink) and attaches to. */
export interface VxlanPortConfig {
  name: string;
  /** 1..16777215 */
  vni: number;
  /** local VTEP address (IPv4 or IPv6), or null to let the kernel choose (IPv4 only) */
  local: string | null;
  /** head-end replication: the vxlan device's all-zeros FDB entries */
  remotes: string[];
  /** multicast underlay (with `dev`) */
  group: string | null;
  /** underlay device (IFLA_VXLAN_LINK) */
  dev: string | null;
  /** UDP destination port, default 4789 */
  port: number;
  /** null: the kernel's default */
  ttl: number | null;
  tos: number | null;
  /** the vxlan device's own learning of remote VTEPs (IFLA_VXLAN_LEARNING), default true as iproute2 */
  kernelLearning: boolean;
  vlan: VlanSpec;
  persist: boolean;
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  fdbMax: number;
  /** `rate_limit`, `egress_rate_limit`, `storm_control` (src/bridge/qos.ts) */
  qos: QosSpec;
}

export const DEFAULT_VXLAN_PORT = 4789;
/** Remote VTEPs per vxlan port (head-end replication copies every flooded frame to each). */
export const MAX_VXLAN_REMOTES = 1024;

/** `port_defaults`: flags for every port (config and runtime) that does not set them; never the uplink or bond. */
export interface PortDefaults {
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  fdbMax: number;
  raGuard: boolean;
  dhcpGuard: boolean;
  /** unlocked, or `lock: disabled` */
  lock: LockSpec;
  /** `rate_limit`, `egress_rate_limit`, `storm_control` */
  qos: QosSpec;
}

export const BUILTIN_PORT_DEFAULTS: PortDefaults = {
  learning: true, flood: true, isolated: false, fdbMax: 0, raGuard: false, dhcpGuard: false, lock: UNLOCKED, qos: NO_QOS,
};

/** `uplink.bond.mode` (Linux bonding driver names; XenServer's `lacp` is 802.3ad). */
export type BondMode = 'active-backup' | 'balance-slb' | '802.3ad';
export const BOND_MODES: readonly BondMode[] = ['active-backup', 'balance-slb', '802.3ad'];

/** The host's own port has no QoS: its QoS keys are refused. */
function hostQos(c: Checker, v: Record<string, unknown>, path: string): QosSpec {
  if (QOS_KEYS.some((k) => v[k] !== undefined)) c.fail(path, 'rate_limit, egress_rate_limit and storm_control apply to tap and attach ports, not to the host\'s own port');
  return NO_QOS;
}

/** The QoS keys of a port mapping (over `defaults`), each problem under `path`. */
function qosOf(c: Checker, v: Record<string, unknown>, path: string, defaults: QosSpec): QosSpec {
  const problems: [string, string][] = [];
  const spec = qosSpecFrom(v, defaults, problems);
  for (const [key, msg] of problems) c.fail(`${path}.${key}`, msg);
  return spec;
}

export interface BondConfigFile {
  name: string;
  mode: BondMode;
  /** two members for active-backup, two to four for balance-slb and 802.3ad */
  members: string[];
  primary: string;
  primaryReselect: 'always' | 'better' | 'failure';
  miimonMs: number;
  updelayMs: number;
  downdelayMs: number;
  numGratArp: number;
  peerNotifDelayMs: number;
  /** balance-slb: ms between load rebalancing rounds (0 = never) */
  rebalanceIntervalMs: number;
  /** 802.3ad: LACP activity (passive: answer a partner, never start) */
  lacp: 'active' | 'passive';
  /** 802.3ad: the rate we ask the partner to send at (slow 30 s, fast 1 s) */
  lacpRate: 'slow' | 'fast';
  /** 802.3ad: transmit hash (layer2: MACs and VLAN; layer3+4: also IP addresses and ports) */
  hash: 'layer2' | 'layer3+4';
  /** 802.3ad: actor system priority and port priority (802.1AX; lower wins) */
  systemPriority: number;
  portPriority: number;
}

export interface UplinkConfig {
  /** the uplink's netdev, or null when the uplink is a bond */
  interface: string | null;
  bond: BondConfigFile | null;
  vlan: VlanSpec;
}

export interface StaticFdbConfig {
  mac: number;
  port: string;
  vlan: number;
}

export interface BridgeConfig {
  name: string;
  ageingTimeS: number;
  fdbMax: number;
  mtu: number;
  uplink: UplinkConfig | null;
  fdb: StaticFdbConfig[];
  ports: PortConfig[];
  vxlan: VxlanPortConfig[];
  portDefaults: PortDefaults;
  /** `mirrors:` (src/bridge/mirror.ts) */
  mirrors: MirrorSpec[];
  /** the multicast_* keys, port_defaults' and ports' included (src/mdb/config.ts) */
  multicast: McastSettings;
}

export interface MetricsConfig {
  listen: ListenAddress;
}

export interface PacketMmapConfig {
  /** false: recvmsg/sendmmsg per frame (the path before rings) */
  enabled: boolean;
  /** rx_frames: rx ring slots (rounded up to whole 64 KiB blocks) */
  rxFrames: number;
  /** tx_frames: tx ring slots (rounded up likewise); 0: no tx ring, sendmmsg as without rings */
  txFrames: number;
  /** frame_bytes: bytes per slot, a multiple of 16; larger frames (GSO) take the per-frame syscall path */
  frameBytes: number;
  /** qdisc_bypass: PACKET_QDISC_BYPASS on the sockets (frames skip the netdev's qdisc) */
  qdiscBypass: boolean;
}

export interface DaemonConfig {
  controlSocket: string;
  /** control_max_clients */
  controlMaxClients: number;
  /** busy_poll_us: microseconds the loop keeps polling after a receive batch (0 = off) */
  busyPollUs: number;
  /** direct_poll: frames are waited for by the data path itself while libuv is idle (false: libuv's uv_poll only) */
  directPoll: boolean;
  /** data_workers: threads that forward frames, the main thread included (takes effect at restart) */
  dataWorkers: number;
  /** packet_mmap: rings on AF_PACKET sockets (a change applies to sockets opened after it) */
  packetMmap?: PacketMmapConfig;
  bridges: BridgeConfig[];
  /** null: not set in the file (--log-level, $TAPBRIDGE_LOG_LEVEL or info) */
  logLevel?: LogLevel | null;
  /** null: no metrics endpoint */
  metrics?: MetricsConfig | null;
  /** state_dir: where the runtime state file and FDB snapshot live */
  stateDir: string;
  /** fdb_snapshot_interval: seconds between FDB snapshots (0 = only at shutdown) */
  fdbSnapshotIntervalS: number;
  /** The checked document as parsed (keys of every feature, also those this file's types do not name). */
  raw: Record<string, unknown>;
}

export interface ConfigIssue {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'ECONFIG';
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[], source?: string) {
    // one problem: one line (e.g. a YAML alias bomb); several: one indented line each
    super(`${source !== undefined ? `${source}: ` : ''}invalid configuration:` + (issues.length === 1
      ? ` ${issues[0]!.path}: ${issues[0]!.message}`
      : `\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`));
    this.issues = issues;
  }
}

/** The VLAN keys of a port or uplink mapping. */
function vlanOf(c: Checker, obj: Record<string, unknown>, path: string): VlanSpec {
  const r = vlanSpecFrom(obj.vlan, obj.trunk, obj.native_vlan);
  if ('spec' in r) return r.spec;
  for (const [key, msg] of r.problems) c.fail(join(path, key), msg);
  return { mode: 'default' };
}

/** Keys that only some modes read: the modes they apply to. */
const BOND_MODE_KEYS: Record<string, readonly BondMode[]> = {
  primary: ['active-backup'],
  primary_reselect: ['active-backup'],
  num_grat_arp: ['active-backup', 'balance-slb'],
  peer_notif_delay: ['active-backup', 'balance-slb'],
  rebalance_interval: ['balance-slb'],
  lacp: ['802.3ad'],
  lacp_rate: ['802.3ad'],
  hash: ['802.3ad'],
  system_priority: ['802.3ad'],
  port_priority: ['802.3ad'],
};

/** One of `allowed` (strings), else a failure naming the key. */
function oneOf<T extends string>(c: Checker, v: Record<string, unknown>, key: string, path: string, allowed: readonly T[], def: T, hint = ''): T {
  const x = v[key];
  if (x === undefined) return def;
  if (typeof x === 'string' && (allowed as readonly string[]).includes(x)) return x as T;
  c.fail(`${path}.${key}`, `must be ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}, got ${describe(x)}${hint}`);
  return def;
}

/**
 * A bond: `mode` active-backup (default; exactly two members, as XenServer's bridge mode), balance-slb or 802.3ad
 * (two to four members, XenServer's limit). Names and defaults of the Linux bonding driver; a key that the mode does
 * not read is an error naming it.
 */
function bondOf(c: Checker, v: unknown, path: string, claimName: (name: string, path: string) => void): BondConfigFile | null {
  if (!c.isObject(v, path)) return null;
  c.keys(v, path, BOND_KEYS);
  const name = c.str(v, 'name', path);
  if (name !== '') claimName(name, `${path}.name`);
  const mode = oneOf(c, v, 'mode', path, BOND_MODES, 'active-backup', v.mode === 'lacp' ? " (XenServer's lacp is 802.3ad)" : '');
  for (const [key, modes] of Object.entries(BOND_MODE_KEYS)) {
    if (v[key] !== undefined && !modes.includes(mode)) c.fail(`${path}.${key}`, `does not apply to mode ${mode} (only ${modes.join(', ')})`);
  }
  const members: string[] = [];
  const list = v.members;
  const [minMembers, maxMembers] = mode === 'active-backup' ? [2, 2] : [2, 4];
  if (!Array.isArray(list)) {
    c.fail(`${path}.members`, list === undefined ? 'is required (two interface names)' : `must be a list of two interface names, got ${describe(list)}`);
  } else if (mode === 'active-backup' && list.length !== 2) {
    c.fail(`${path}.members`, `an active-backup bond has exactly two members (as XenServer's bridge mode), got ${list.length}`);
  } else if (list.length < minMembers || list.length > maxMembers) {
    c.fail(`${path}.members`, `a ${mode} bond has two to four members (four is XenServer's limit), got ${list.length}`);
  } else {
    list.forEach((m, i) => {
      if (typeof m !== 'string' || m === '') {
        c.fail(`${path}.members[${i}]`, `must be an interface name, got ${describe(m)}`);
        return;
      }
      claimName(m, `${path}.members[${i}]`);
      members.push(m);
    });
  }
  const primary = c.str(v, 'primary', path, members[0] ?? '');
  if (members.length >= 2 && !members.includes(primary)) c.fail(`${path}.primary`, `"${primary}" is not one of the members (${members.join(', ')})`);
  const reselect = v.primary_reselect ?? 'always';
  if (reselect !== 'always' && reselect !== 'better' && reselect !== 'failure') {
    c.fail(`${path}.primary_reselect`, `must be always, better or failure, got ${describe(reselect)}`);
  }
  return {
    name,
    mode,
    members: members.length >= 2 ? members : [members[0] ?? '', members[1] ?? ''],
    primary,
    primaryReselect: reselect === 'better' || reselect === 'failure' ? reselect : 'always',
    miimonMs: c.int(v, 'miimon', path, 100, 0, 3_600_000),
    updelayMs: c.int(v, 'updelay', path, 0, 0, 3_600_000),
    downdelayMs: c.int(v, 'downdelay', path, 0, 0, 3_600_000),
    numGratArp: c.int(v, 'num_grat_arp', path, 1, 0, 255),
    peerNotifDelayMs: c.int(v, 'peer_notif_delay', path, 0, 0, 300_000),
    rebalanceIntervalMs: c.int(v, 'rebalance_interval', path, 10_000, 0, 3_600_000, '(ms, 0 = never) '),
    lacp: oneOf(c, v, 'lacp', path, ['active', 'passive'] as const, 'active'),
    lacpRate: oneOf(c, v, 'lacp_rate', path, ['slow', 'fast'] as const, 'slow'),
    hash: oneOf(c, v, 'hash', path, ['layer2', 'layer3+4'] as const, 'layer2'),
    systemPriority: c.int(v, 'system_priority', path, 65535, 1, 65535),
    portPriority: c.int(v, 'port_priority', path, 255, 1, 65535),
  };
}

function isMulticastAddr(addr: string): boolean {
  if (isIP(addr) === 4) {
    const first = Number(addr.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return addr.toLowerCase().startsWith('ff');
}

/** A unicast IPv4/IPv6 address in text, or a message saying why not. */
function unicastAddrProblem(v: unknown): string | null {
  if (typeof v !== 'string' || isIP(v) === 0 || v.includes('%')) return `must be an IPv4 or IPv6 address (no zone), got ${describe(v)}`;
  if (isMulticastAddr(v)) return `"${v}" is a multicast address`;
  if (v === '0.0.0.0' || v === '::') return `"${v}" is the unspecified address`;
  return null;
}

/** One `vxlan` entry (config file and `vxlan add`). */
function vxlanPortOf(c: Checker, v: unknown, path: string, claimName: (name: string, path: string) => void): VxlanPortConfig | null {
  if (!c.isObject(v, path)) return null;
  c.keys(v, path, VXLAN_KEYS);
  const name = c.str(v, 'name', path);
  if (name !== '') claimName(name, `${path}.name`);
  if (v.vni === undefined) c.fail(`${path}.vni`, 'is required (1..16777215)');
  const vni = c.int(v, 'vni', path, 0, 1, 0xffffff);
  const addr = (key: string): string | null => {
    if (v[key] === undefined || v[key] === null) return null;
    const problem = unicastAddrProblem(v[key]);
    if (problem !== null) {
      c.fail(`${path}.${key}`, problem);
      return null;
    }
    return v[key] as string;
  };
  const local = addr('local');
  const remotes: string[] = [];
  const seen = new Set<string>();
  const list = c.list(v, 'remotes', path);
  if (list.length > MAX_VXLAN_REMOTES) c.fail(`${path}.remotes`, `at most ${MAX_VXLAN_REMOTES} remotes, got ${list.length}`);
  list.slice(0, MAX_VXLAN_REMOTES).forEach((r, i) => {
    const problem = unicastAddrProblem(r);
    if (problem !== null) c.fail(`${path}.remotes[${i}]`, problem);
    else if (seen.has(r as string)) c.fail(`${path}.remotes[${i}]`, `"${r as string}" is listed twice`);
    else if (r === local) c.fail(`${path}.remotes[${i}]`, `"${r as string}" is the local address`);
    else {
      seen.add(r as string);
      remotes.push(r as string);
    }
  });
  let group: string | null = null;
  if (v.group !== undefined && v.group !== null) {
    if (typeof v.group !== 'string' || isIP(v.group) === 0 || !isMulticastAddr(v.group)) {
      c.fail(`${path}.group`, `must be a multicast IPv4 or IPv6 address, got ${describe(v.group)}`);
    } else group = v.group;
  }
  let dev: string | null = null;
  if (v.dev !== undefined && v.dev !== null) {
    dev = c.str(v, 'dev', path);
    const problem = interfaceNameProblem(dev);
    if (problem !== null) c.fail(`${path}.dev`, `"${dev}" ${problem}`);
  }
  if (group !== null && remotes.length > 0) c.fail(`${path}.group`, 'a vxlan port has either `remotes` (head-end replication) or `group` (multicast), not both');
  if (group !== null && dev === null) c.fail(`${path}.dev`, 'is required with `group` (the underlay device that joins the multicast group)');
  const families = new Set([local, group, ...remotes].filter((a): a is string => a !== null).map((a) => isIP(a)));
  if (families.size > 1) c.fail(path, '`local`, `remotes` and `group` must all be IPv4 or all IPv6');
  else if (families.has(6) && local === null) c.fail(`${path}.local`, 'is required for an IPv6 underlay');
  const optInt = (key: string, min: number, max: number): number | null => (v[key] === undefined || v[key] === null ? null : c.int(v, key, path, 0, min, max));
  const vlan = vlanOf(c, v, path);
  return {
    name,
    vni,
    local,
    remotes,
    group,
    dev,
    port: c.int(v, 'port', path, DEFAULT_VXLAN_PORT, 1, 65535),
    ttl: optInt('ttl', 1, 255),
    tos: optInt('tos', 0, 255),
    kernelLearning: c.bool(v, 'kernel_learning', path, true),
    vlan,
    persist: c.bool(v, 'persist', path, false),
    learning: c.bool(v, 'learning', path, true),
    flood: c.bool(v, 'flood', path, true),
    isolated: c.bool(v, 'isolated', path, false),
    fdbMax: c.int(v, 'fdb_max', path, 0, 1, 1_000_000),
    qos: qosOf(c, v, path, NO_QOS),
  };
}

/**
 * Checks one `vxlan` entry given at runtime (`vxlan add`), with the config file's keys and messages;
 * `taken(name)` says where an interface name is already in use.
 */
export function parseVxlanPort(v: unknown, taken: (name: string) => string | null): { port: VxlanPortConfig } | { issues: ConfigIssue[] } {
  const c = new Checker();
  const port = vxlanPortOf(c, v, 'vxlan', (name, path) => {
    const problem = interfaceNameProblem(name);
    if (problem !== null) c.fail(path, `"${name}" ${problem}`);
    const where = taken(name);
    if (where !== null) c.fail(path, `interface "${name}" is already used by ${where}`);
  });
  if (port === null || c.issues.length > 0) return { issues: c.issues };
  return { port };
}

/** Collects issues while walking the document. */
class Checker {
  readonly issues: ConfigIssue[] = [];

  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  isObject(v: unknown, path: string): v is Record<string, unknown> {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return true;
    this.fail(path, `must be a mapping, got ${describe(v)}`);
    return false;
  }

  keys(obj: Record<string, unknown>, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) this.fail(join(path, k), `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }

  str(obj: Record<string, unknown>, key: string, path: string, def?: string): string {
    const v = obj[key];
    if (v === undefined) {
      if (def === undefined) this.fail(join(path, key), 'is required');
      return def ?? '';
    }
    if (typeof v !== 'string' || v.length === 0) {
      this.fail(join(path, key), `must be a non-empty string, got ${describe(v)}`);
      return def ?? '';
    }
    return v;
  }

  bool(obj: Record<string, unknown>, key: string, path: string, def: boolean): boolean {
    const v = obj[key];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') {
      this.fail(join(path, key), `must be true or false, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  int(obj: Record<string, unknown>, key: string, path: string, def: number, min: number, max: number, extra = ''): number {
    const v = obj[key];
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(join(path, key), `must be an integer ${extra}${min}..${max}, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  list(obj: Record<string, unknown>, key: string, path: string): unknown[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(join(path, key), `must be a list, got ${describe(v)}`);
      return [];
    }
    return v;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return `${typeof v} ${String(v)}`;
}

/** Why `name` cannot be a Linux interface name, or null when it can. */
export function interfaceNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0) return 'is empty';
  if (bytes > 15) return `is ${bytes} bytes long; interface names are at most 15 bytes`;
  if (name === '.' || name === '..') return 'is not a valid interface name';
  if (/[\s/:]/.test(name)) return 'contains a space, "/" or ":" (not allowed in interface names)';
  if (name.includes('%')) return 'contains "%" (the kernel would expand it to a number and create another name)';
  if (name === 'lo') return 'is the loopback device; loopback cannot be a bridge port';
  return null;
}

const TOP_KEYS = ['control_socket', 'control_max_clients', 'busy_poll_us', 'direct_poll', 'data_workers', 'packet_mmap', 'bridges', 'log_level', 'metrics', 'state_dir', 'fdb_snapshot_interval'] as const;
const METRICS_KEYS = ['listen'] as const;
const PACKET_MMAP_KEYS = ['enabled', 'rx_frames', 'tx_frames', 'frame_bytes', 'qdisc_bypass'] as const;
const BRIDGE_KEYS = ['name', 'ageing_time', 'fdb_max', 'mtu', 'uplink', 'fdb', 'ports', 'port_defaults', 'vxlan', 'mirrors', ...MCAST_BRIDGE_KEYS] as const;
const PORT_DEFAULTS_KEYS = ['learning', 'flood', 'isolated', 'fdb_max', 'ra_guard', 'dhcp_guard', 'lock', ...QOS_KEYS, ...MCAST_PORT_KEYS] as const;
const VLAN_KEYS = ['vlan', 'trunk', 'native_vlan'] as const;
const UPLINK_KEYS = ['interface', 'bond', ...VLAN_KEYS] as const;
const BOND_KEYS = [
  'name', 'mode', 'members', 'primary', 'primary_reselect', 'miimon', 'updelay', 'downdelay', 'num_grat_arp', 'peer_notif_delay',
  'rebalance_interval', 'lacp', 'lacp_rate', 'hash', 'system_priority', 'port_priority',
] as const;
const PORT_KEYS = [
  'name', 'kind', 'persist', 'learning', 'flood', 'isolated', 'fdb_max', 'create', 'mac', ...VLAN_KEYS,
  'lock', 'ra_guard', 'dhcp_guard', 'allow_stacked', 'socket', 'mode', ...QOS_KEYS, ...MCAST_PORT_KEYS,
] as const;
const CREATE_KEYS = ['owner', 'group'] as const;
const FDB_KEYS = ['mac', 'port', 'vlan'] as const;
const VXLAN_KEYS = ['name', 'vni', 'local', 'remotes', 'group', 'dev', 'port', 'ttl', 'tos', 'kernel_learning', 'persist',
  'learning', 'flood', 'isolated', 'fdb_max', ...VLAN_KEYS, ...QOS_KEYS] as const;

/** The `lock` key of a port (or of port_defaults, where only "disabled" is allowed). */
function lockOf(c: Checker, v: unknown, path: string, onlyDisabled: boolean): LockSpec {
  if (onlyDisabled && v !== undefined && v !== null && v !== 'disabled') {
    c.fail(path, `port_defaults can only set lock: disabled (a locked MAC belongs to one port), got ${describe(v)}`);
    return UNLOCKED;
  }
  const r = lockSpecFrom(v);
  if ('spec' in r) return r.spec;
  for (const [key, msg] of r.problems) c.fail(key === '' ? path : `${path}.${key}`, msg);
  return UNLOCKED;
}

/** `packet_mmap`: a boolean (rings on or off, default sizes) or a mapping of PACKET_MMAP_KEYS. */
function packetMmapOf(c: Checker, v: unknown): PacketMmapConfig {
  const d = DEFAULT_PACKET_MMAP;
  if (v === undefined || v === null) return d;
  if (typeof v === 'boolean') return { ...d, enabled: v };
  if (!c.isObject(v, 'packet_mmap')) return d;
  c.keys(v, 'packet_mmap', PACKET_MMAP_KEYS);
  const out: PacketMmapConfig = {
    enabled: c.bool(v, 'enabled', 'packet_mmap', d.enabled),
    rxFrames: c.int(v, 'rx_frames', 'packet_mmap', d.rxFrames, 1, 1 << 20, '(ring slots) '),
    txFrames: c.int(v, 'tx_frames', 'packet_mmap', d.txFrames, 0, 1 << 20, '(ring slots, 0 = no tx ring) '),
    frameBytes: c.int(v, 'frame_bytes', 'packet_mmap', d.frameBytes, 256, 65520, '(bytes per slot) '),
    qdiscBypass: c.bool(v, 'qdisc_bypass', 'packet_mmap', d.qdiscBypass),
  };
  if (out.frameBytes % 16 !== 0) c.fail('packet_mmap.frame_bytes', `must be a multiple of 16, got ${out.frameBytes}`);
  const perBlock = Math.floor(PACKET_RING_BLOCK_BYTES / out.frameBytes);
  for (const [key, frames] of [['rx_frames', out.rxFrames], ['tx_frames', out.txFrames]] as const) {
    const blocks = Math.ceil(frames / perBlock);
    if (blocks > MAX_PACKET_RING_BLOCKS) {
      c.fail(`packet_mmap.${key}`, `${frames} slots of ${out.frameBytes} bytes need ${blocks} blocks of 64 KiB; at most ${MAX_PACKET_RING_BLOCKS} (${MAX_PACKET_RING_BLOCKS * perBlock} slots of this size)`);
    }
  }
  return out;
}

/** `port_defaults` of a bridge. */
function portDefaultsOf(c: Checker, v: unknown, path: string): PortDefaults {
  const d = BUILTIN_PORT_DEFAULTS;
  if (v === undefined || v === null || !c.isObject(v, path)) return d;
  c.keys(v, path, PORT_DEFAULTS_KEYS);
  return {
    learning: c.bool(v, 'learning', path, d.learning),
    flood: c.bool(v, 'flood', path, d.flood),
    isolated: c.bool(v, 'isolated', path, d.isolated),
    fdbMax: c.int(v, 'fdb_max', path, d.fdbMax, 1, 1_000_000),
    raGuard: c.bool(v, 'ra_guard', path, d.raGuard),
    dhcpGuard: c.bool(v, 'dhcp_guard', path, d.dhcpGuard),
    lock: lockOf(c, v.lock, `${path}.lock`, true),
    qos: qosOf(c, v, path, d.qos),
  };
}

/** Checks a parsed document; throws ConfigError listing every problem. */
export function validateConfig(doc: unknown, source?: string): DaemonConfig {
  const c = new Checker();
  const out: DaemonConfig = {
    controlSocket: DEFAULT_CONTROL_SOCKET, controlMaxClients: DEFAULT_CONTROL_MAX_CLIENTS, busyPollUs: DEFAULT_BUSY_POLL_US, directPoll: DEFAULT_DIRECT_POLL, dataWorkers: DEFAULT_DATA_WORKERS, bridges: [],
    stateDir: DEFAULT_STATE_DIR, fdbSnapshotIntervalS: DEFAULT_FDB_SNAPSHOT_INTERVAL_S, raw: {},
  };
  if (!c.isObject(doc, '(top level)')) throw new ConfigError(c.issues, source);
  out.raw = doc;
  c.keys(doc, '', TOP_KEYS);
  out.controlSocket = c.str(doc, 'control_socket', '', DEFAULT_CONTROL_SOCKET);
  const socketBytes = Buffer.byteLength(out.controlSocket);
  if (socketBytes > MAX_CONTROL_SOCKET_BYTES) {
    c.fail('control_socket', `is ${socketBytes} bytes long; a Unix socket path holds at most ${MAX_CONTROL_SOCKET_BYTES} bytes (sun_path)`);
  } else if (out.controlSocket.includes('\0')) {
    c.fail('control_socket', 'contains a NUL byte');
  }
  out.controlMaxClients = c.int(doc, 'control_max_clients', '', DEFAULT_CONTROL_MAX_CLIENTS, 1, 65535);
  out.busyPollUs = c.int(doc, 'busy_poll_us', '', DEFAULT_BUSY_POLL_US, 0, MAX_BUSY_POLL_US, '(microseconds, 0 = off) ');
  out.directPoll = c.bool(doc, 'direct_poll', '', DEFAULT_DIRECT_POLL);
  out.dataWorkers = c.int(doc, 'data_workers', '', DEFAULT_DATA_WORKERS, 1, MAX_DATA_WORKERS, '(threads that forward, the main thread included) ');
  out.packetMmap = packetMmapOf(c, doc.packet_mmap);
  out.logLevel = null;
  if (doc.log_level !== undefined) {
    if (isLogLevel(doc.log_level)) out.logLevel = doc.log_level;
    else c.fail('log_level', `must be one of ${LOG_LEVELS.join(', ')}, got ${describe(doc.log_level)}`);
  }
  out.metrics = null;
  if (doc.metrics !== undefined && doc.metrics !== null && c.isObject(doc.metrics, 'metrics')) {
    c.keys(doc.metrics, 'metrics', METRICS_KEYS);
    const listen = c.str(doc.metrics, 'listen', 'metrics');
    if (listen !== '') {
      const r = parseListen(listen);
      if ('problem' in r) c.fail('metrics.listen', r.problem);
      else out.metrics = { listen: r };
    }
  }
  out.stateDir = c.str(doc, 'state_dir', '', DEFAULT_STATE_DIR);
  if (!out.stateDir.startsWith('/')) c.fail('state_dir', `must be an absolute path, got ${describe(out.stateDir)}`);
  out.fdbSnapshotIntervalS = c.int(doc, 'fdb_snapshot_interval', '', DEFAULT_FDB_SNAPSHOT_INTERVAL_S, 0, 86_400, '(seconds, 0 = only at shutdown) ');
  if (doc.bridges === undefined) c.fail('bridges', 'is required (a list of bridges)');
  const ifnames = new Map<string, string>();
  const claimName = (name: string, path: string): void => {
    const problem = interfaceNameProblem(name);
    if (problem !== null) {
      c.fail(path, `"${name}" ${problem}`);
      return;
    }
    const prev = ifnames.get(name);
    if (prev !== undefined) c.fail(path, `interface "${name}" is already used at ${prev}`);
    else ifnames.set(name, path);
  };
  const bridgeNames = new Map<string, string>();
  const vxlanKeys = new Map<string, string>();
  c.list(doc, 'bridges', '').forEach((b, bi) => {
    const bp = `bridges[${bi}]`;
    if (!c.isObject(b, bp)) return;
    c.keys(b, bp, BRIDGE_KEYS);
    const name = c.str(b, 'name', bp);
    if (name !== '') {
      if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) c.fail(`${bp}.name`, `"${name}" must be 1..15 characters of A-Z a-z 0-9 _ . -`);
      const prev = bridgeNames.get(name);
      if (prev !== undefined) c.fail(`${bp}.name`, `bridge "${name}" is already defined at ${prev}`);
      bridgeNames.set(name, `${bp}.name`);
    }
    let ageingTimeS = DEFAULT_AGEING_TIME_S;
    const ageing = b.ageing_time;
    if (ageing !== undefined) {
      if (typeof ageing !== 'number' || !Number.isInteger(ageing) || ageing < 0 || ageing > 1_000_000 || (ageing > 0 && ageing < 10)) {
        c.fail(`${bp}.ageing_time`, `must be 0 (never age) or an integer 10..1000000 seconds, got ${describe(ageing)}`);
      } else {
        ageingTimeS = ageing;
      }
    }
    const bridge: BridgeConfig = {
      name,
      ageingTimeS,
      fdbMax: c.int(b, 'fdb_max', bp, DEFAULT_FDB_MAX, 1, 1_000_000),
      mtu: c.int(b, 'mtu', bp, DEFAULT_MTU, 68, 65535),
      uplink: null,
      fdb: [],
      ports: [],
      vxlan: [],
      portDefaults: portDefaultsOf(c, b.port_defaults, `${bp}.port_defaults`),
      mirrors: [],
      multicast: multicastOf(c, b, bp),
    };
    if (b.uplink !== undefined && b.uplink !== null) {
      const up = b.uplink;
      const upp = `${bp}.uplink`;
      if (c.isObject(up, upp)) {
        c.keys(up, upp, UPLINK_KEYS);
        let ifname: string | null = null;
        let bond: BondConfigFile | null = null;
        if (up.bond !== undefined) {
          if (up.interface !== undefined) c.fail(`${upp}.interface`, 'an uplink is either `interface` or `bond`, not both');
          bond = bondOf(c, up.bond, `${upp}.bond`, claimName);
        } else {
          ifname = c.str(up, 'interface', upp);
          if (ifname !== '') claimName(ifname, `${upp}.interface`);
        }
        bridge.uplink = { interface: ifname, bond, vlan: vlanOf(c, up, upp) };
      }
    }
    const ports = c.list(b, 'ports', bp);
    if (ports.length > MAX_PORTS_PER_BRIDGE - 1) c.fail(`${bp}.ports`, `at most ${MAX_PORTS_PER_BRIDGE - 1} ports per bridge`);
    ports.forEach((p, pi) => {
      const pp = `${bp}.ports[${pi}]`;
      if (!c.isObject(p, pp)) return;
      c.keys(p, pp, PORT_KEYS);
      const pname = c.str(p, 'name', pp);
      if (pname !== '') claimName(pname, `${pp}.name`);
      const kind = p.kind === undefined ? 'tap' : p.kind;
      // port_defaults are for guests' ports: never the host's own port (nor the uplink, above)
      const defaults = kind === 'host' ? BUILTIN_PORT_DEFAULTS : bridge.portDefaults;
      if (kind !== 'tap' && kind !== 'attach' && kind !== 'host' && kind !== 'vhost-user') c.fail(`${pp}.kind`, `must be "tap", "attach", "host" or "vhost-user", got ${describe(kind)}`);
      let vhostUser: VhostUserSpec | null = null;
      if (kind === 'vhost-user') {
        const r = vhostUserSpecOf(p.socket, p.mode);
        if (typeof r === 'string') c.fail(`${pp}.${r.startsWith('mode') ? 'mode' : 'socket'}`, r.replace(/^(mode|socket) /, ''));
        else vhostUser = r;
      } else {
        if (p.socket !== undefined) c.fail(`${pp}.socket`, 'applies only to kind vhost-user');
        if (p.mode !== undefined) c.fail(`${pp}.mode`, 'applies only to kind vhost-user');
      }
      let mac: PortConfig['mac'] = null;
      if (p.mac !== undefined && p.mac !== null) {
        if (kind !== 'host') c.fail(`${pp}.mac`, 'applies only to kind host (the host\'s own port)');
        else if (p.mac === 'uplink') {
          if (b.uplink === undefined || b.uplink === null) c.fail(`${pp}.mac`, '"uplink" needs an uplink on this bridge');
          mac = 'uplink';
        } else {
          const m = typeof p.mac === 'string' ? parseMac(p.mac) : null;
          if (m === null) c.fail(`${pp}.mac`, `must be "uplink" or a MAC address like "02:00:00:00:00:01" (quoted), got ${describe(p.mac)}`);
          else if (m === 0 || Math.floor(m / 0x100_0000_0000) % 2 === 1) c.fail(`${pp}.mac`, `"${String(p.mac)}" is a multicast or zero address`);
          else mac = m;
        }
      }
      const persist = c.bool(p, 'persist', pp, false);
      let create: PortConfig['create'] = null;
      if (p.create !== undefined && p.create !== null) {
        const cp = `${pp}.create`;
        if (kind !== 'attach') c.fail(cp, 'applies only to kind attach (the daemon creates the TAP, closes its fd and attaches)');
        if (c.isObject(p.create, cp)) {
          c.keys(p.create, cp, CREATE_KEYS);
          create = { owner: c.int(p.create, 'owner', cp, -1, 0, 0xfffffffe), group: c.int(p.create, 'group', cp, -1, 0, 0xfffffffe) };
        }
      }
      if (persist && kind === 'attach') c.fail(`${pp}.persist`, 'applies only to kind tap (an attached netdev is not the daemon\'s)');
      if (persist && kind === 'vhost-user') c.fail(`${pp}.persist`, 'applies only to kind tap (a vhost-user port has no netdev)');
      bridge.ports.push({
        name: pname,
        kind: kind === 'attach' ? 'attach' : kind === 'host' ? 'host' : kind === 'vhost-user' ? 'vhost-user' : 'tap',
        ...(kind === 'host' ? { mac } : {}),
        ...(kind === 'vhost-user' ? { vhostUser } : {}),
        persist,
        learning: c.bool(p, 'learning', pp, defaults.learning),
        flood: c.bool(p, 'flood', pp, defaults.flood),
        isolated: c.bool(p, 'isolated', pp, defaults.isolated),
        fdbMax: c.int(p, 'fdb_max', pp, defaults.fdbMax, 1, 1_000_000),
        vlan: vlanOf(c, p, pp),
        create,
        lock: p.lock === undefined ? defaults.lock : lockOf(c, p.lock, `${pp}.lock`, false),
        raGuard: c.bool(p, 'ra_guard', pp, defaults.raGuard),
        dhcpGuard: c.bool(p, 'dhcp_guard', pp, defaults.dhcpGuard),
        allowStacked: c.bool(p, 'allow_stacked', pp, false),
        qos: kind === 'host' ? hostQos(c, p, pp) : qosOf(c, p, pp, defaults.qos),
      });
    });
    // a locked MAC belongs to one port: its static entry cannot point at two
    const lockedBy = new Map<number, number>();
    bridge.ports.forEach((p, pi) => {
      if (p.lock.mode !== 'locked') return;
      const prev = lockedBy.get(p.lock.mac);
      if (prev !== undefined) c.fail(`${bp}.ports[${pi}].lock.mac`, `is already the locked MAC of bridges[${bi}].ports[${prev}] ("${bridge.ports[prev].name}")`);
      else lockedBy.set(p.lock.mac, pi);
    });
    const vxlans = c.list(b, 'vxlan', bp);
    if (ports.length + vxlans.length > MAX_PORTS_PER_BRIDGE - 1) c.fail(`${bp}.vxlan`, `at most ${MAX_PORTS_PER_BRIDGE - 1} ports per bridge, vxlan ports included`);
    vxlans.forEach((v, vi) => {
      const vx = vxlanPortOf(c, v, `${bp}.vxlan[${vi}]`, claimName);
      if (vx === null) return;
      // the kernel refuses a second vxlan netdev on the same (local, port, vni)
      const key = `${vx.local ?? '*'}|${vx.port}|${vx.vni}`;
      const prev = vxlanKeys.get(key);
      if (prev !== undefined) c.fail(`${bp}.vxlan[${vi}].vni`, `VNI ${vx.vni} on port ${vx.port} is already used at ${prev}`);
      else vxlanKeys.set(key, `${bp}.vxlan[${vi}]`);
      bridge.vxlan.push(vx);
    });
    const portVlans = new Map<string, VlanSpec>([...bridge.ports, ...bridge.vxlan].map((p) => [p.name, p.vlan]));
    if (bridge.uplink !== null) {
      const upName = bridge.uplink.bond !== null ? bridge.uplink.bond.name : bridge.uplink.interface;
      if (upName !== null) portVlans.set(upName, bridge.uplink.vlan);
    }
    c.list(b, 'fdb', bp).forEach((f, fi) => {
      const fp = `${bp}.fdb[${fi}]`;
      if (!c.isObject(f, fp)) return;
      c.keys(f, fp, FDB_KEYS);
      const macText = c.str(f, 'mac', fp);
      const mac = macText === '' ? null : parseMac(macText);
      if (macText !== '' && mac === null) c.fail(`${fp}.mac`, `"${macText}" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
      else if (mac !== null && (mac === 0 || Math.floor(mac / 0x100_0000_0000) % 2 === 1)) {
        c.fail(`${fp}.mac`, `"${macText}" is a multicast or zero address; static entries must be unicast`);
      }
      const port = c.str(f, 'port', fp);
      const spec = portVlans.get(port);
      if (port !== '' && spec === undefined) c.fail(`${fp}.port`, `"${port}" is not a port or the uplink of bridge "${name}"`);
      // default: the port's access or native VLAN (0, the untagged network, on a default port)
      const portVlan = new PortVlan(spec ?? { mode: 'default' });
      const vlan = c.int(f, 'vlan', fp, portVlan.untaggedVid, 0, 4094);
      if (spec !== undefined && !portVlan.isMember(vlan)) c.fail(`${fp}.vlan`, `port "${port}" is not a member of VLAN ${vlan}`);
      bridge.fdb.push({ mac: mac ?? 0, port, vlan });
    });
    mirrorsOf(c, b, bp, bridge, portVlans);
    out.bridges.push(bridge);
  });
  if (c.issues.length > 0) throw new ConfigError(c.issues, source);
  return out;
}

/** The multicast keys of one bridge, its port_defaults and ports (src/mdb/config.ts). */
function multicastOf(c: Checker, b: Record<string, unknown>, bp: string): McastSettings {
  const r = mcastSettingsFrom(b);
  for (const [k, msg] of r.problems) c.fail(`${bp}.${k}`, msg);
  return r.settings;
}

/** `mirrors:` of one bridge: each mirror's keys, then the set (names, outputs), ports named must exist. */
function mirrorsOf(c: Checker, b: Record<string, unknown>, bp: string, bridge: BridgeConfig, portVlans: Map<string, VlanSpec>): void {
  const list = c.list(b, 'mirrors', bp);
  list.forEach((m, mi) => {
    const mp = `${bp}.mirrors[${mi}]`;
    const r = mirrorSpecFrom(m);
    if ('problems' in r) {
      for (const [k, msg] of r.problems) c.fail(k === '' ? mp : `${mp}.${k}`, msg);
      return;
    }
    const spec = r.spec;
    const named = spec.ports === 'all' ? [] : spec.ports;
    for (const pn of named) if (!portVlans.has(pn)) c.fail(`${mp}.select.ports`, `"${pn}" is not a port or the uplink of bridge "${bridge.name}"`);
    if (spec.output !== null && !portVlans.has(spec.output)) c.fail(`${mp}.output`, `"${spec.output}" is not a port of bridge "${bridge.name}"`);
    const upName = bridge.uplink === null ? null : bridge.uplink.bond !== null ? bridge.uplink.bond.name : bridge.uplink.interface;
    if (spec.output !== null && spec.output === upName) {
      c.fail(`${mp}.output`, `"${spec.output}" is the uplink; use output_vlan for RSPAN on the uplink`);
    }
    if (spec.outputVlan !== null && bridge.uplink === null) c.fail(`${mp}.output_vlan`, 'needs an uplink to carry the RSPAN VLAN');
    bridge.mirrors.push(spec);
  });
  const problem = mirrorSetProblem(bridge.mirrors);
  if (problem !== null) c.fail(`${bp}.mirrors`, problem);
}

/** Parses YAML text; YAML syntax errors become ConfigError with line and column. */
export function parseConfig(text: string, source?: string): DaemonConfig {
  const doc = parseDocument(text, { version: '1.2', uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({
      path: e.linePos !== undefined ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(yaml)',
      message: e.message.split('\n')[0],
    })), source);
  }
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    // an alias bomb ("Excessive alias count indicates a resource exhaustion attack"), or a cycle
    throw new ConfigError([{ path: '(yaml)', message: `${(err as Error).message.split('\n')[0]} (at most ${MAX_YAML_ALIASES} alias expansions)` }], source);
  }
  return validateConfig(js ?? {}, source);
}

/** Reads at most MAX_CONFIG_BYTES (+1 to tell a larger file); a larger file is a ConfigError. */
function readConfigText(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_CONFIG_BYTES) throw new RangeError(`is ${st.size} bytes; a config file is at most ${MAX_CONFIG_BYTES} bytes (4 MiB)`);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    if (n > MAX_CONFIG_BYTES) throw new RangeError(`is more than ${MAX_CONFIG_BYTES} bytes; a config file is at most ${MAX_CONFIG_BYTES} bytes (4 MiB)`);
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

export function loadConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readConfigText(path);
  } catch (err) {
    const msg = err instanceof RangeError ? `${path} ${err.message}` : `cannot read ${path}: ${(err as Error).message}`;
    throw new ConfigError([{ path: '(file)', message: msg }], path);
  }
  return parseConfig(text, path);
}
