// What the daemon shows: the reply types of show, showmacs, stats and vlan show, and the builders that read them off
// the bridges (nothing here changes state; stats reads the kernel's socket drop counters). `show` carries each
// AF_PACKET port's PACKET_MMAP rings (packet-ring.ts), `stats` the IGMP/MLD snooping counters (src/bridge/mcast.ts).
// A new `*Show` view of the bridges goes here as one builder of a DaemonCore or BridgeRuntime.

import { formatMac } from '../frame/mac.js';
import { VxlanPort } from './vxlan.js';
import { VhostUserPort, type VhostUserShow } from './vhost-user.js';
import type { BridgeRuntime, DaemonCore } from './runtime.js';
import { ringBytes, ringOf } from './packet-ring.js';
import type { PacketRingInfo } from '../io/native-types.js';
import type { McastPortStats } from '../bridge/mcast.js';
import { type MdbShow, querierShow } from '../mdb/control.js';

export interface ShowPort {
  name: string;
  kind: 'tap' | 'attach' | 'host' | 'vxlan' | 'vhost-user';
  state: 'up' | 'down' | 'absent';
  ifindex: number;
  /** vhost-user ports only: socket, mode, connection and queues (src/daemon/vhost-user.ts) */
  vhost_user?: VhostUserShow;
  /** vxlan ports only: the underlay cannot carry overlay frames of the bridge MTU */
  mtu_short?: boolean;
  /** AF_PACKET ports: their PACKET_MMAP rings (null: none); src/daemon/packet-ring.ts */
  packet_ring?: PacketRingInfo | Record<string, PacketRingInfo | null> | null;
  /** storm control has shut the port down (src/bridge/qos.ts, action shutdown) */
  storm_shutdown?: boolean;
}

export interface ShowBridge {
  name: string;
  uplink: { name: string; kind: 'uplink' | 'bond'; state: 'up' | 'down' | 'absent'; packet_ring?: ShowPort['packet_ring'] } | null;
  ports: ShowPort[];
  /** bytes mapped for the PACKET_MMAP rings of the bridge's ports and uplink */
  packet_ring_bytes?: number;
}

export interface MacEntry {
  port: string;
  mac: string;
  vlan: number;
  static: boolean;
  age: number;
}

export interface PortStats {
  name: string;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  rx_gso_packets: number;
  tx_gso_packets: number;
  drops: Record<string, number>;
  /** frames captures of this port could not keep (a slow capture reader), not forwarding drops */
  capture_dropped: number;
  /** IGMP/MLD counters, MDB entries and router role (null: multicast_snooping off) */
  multicast?: McastPortStats | null;
}

export interface VlanShow {
  port: string;
  mode: 'access' | 'trunk';
  vlans: number[] | 'all';
  native: number | null;
}

export interface BridgeStats {
  bridge: string;
  fdb: { entries: number; learned: number; aged: number; moved: number; evicted: number; flooded: number };
  ports: PortStats[];
  /** IGMP/MLD snooping: groups in the MDB and the querier per query VLAN (null: multicast_snooping off) */
  multicast?: { groups: number; querier: MdbShow['querier'] } | null;
}

/** `show`: every bridge with its uplink (or bond) and ports. */
export function showBridges(d: DaemonCore): ShowBridge[] {
  return [...d.bridges.values()].map((br) => ({
    name: br.cfg.name,
    uplink: br.uplink === null ? null : { name: br.uplink.name, kind: br.uplink.kind === 'bond' ? 'bond' as const : 'uplink' as const, state: br.uplink.port.state, packet_ring: ringOf(br.uplink) },
    ports: [...br.ports.values()].map((mp) => ({
      name: mp.name,
      kind: mp.kind === 'attach' || mp.kind === 'vxlan' || mp.kind === 'host' || mp.kind === 'vhost-user' ? mp.kind : 'tap' as const,
      state: mp.port.state,
      ifindex: mp.port.ifindex,
      ...(mp instanceof VxlanPort ? { mtu_short: mp.mtuCheck.problem !== null } : {}),
      ...(mp instanceof VhostUserPort ? { vhost_user: mp.show() } : {}),
      ...(mp.kind === 'attach' || mp.kind === 'vxlan' ? { packet_ring: ringOf(mp) } : {}),
      ...(mp.port.qos !== null && mp.port.qos.shutUntilUs !== 0 ? { storm_shutdown: true } : {}),
    })),
    packet_ring_bytes: ringBytes(br.all()),
  }));
}

/** `showmacs`: the bridge's FDB entries, sorted by port then MAC. */
export function showMacs(d: DaemonCore, br: BridgeRuntime): MacEntry[] {
  const now = d.now();
  const out: MacEntry[] = [];
  br.bridge.fdb.forEach(now, (e) => {
    out.push({
      port: br.bridge.ports[e.port]?.name ?? `#${e.port}`,
      mac: formatMac(e.mac),
      vlan: e.vid,
      static: e.isStatic,
      age: Math.round(e.ageMs / 10) / 100,
    });
  });
  out.sort((a, b) => (a.port === b.port ? (a.mac < b.mac ? -1 : 1) : a.port < b.port ? -1 : 1));
  return out;
}

/** `vlan show`: the VLAN rules of every port and the uplink. */
export function portVlans(br: BridgeRuntime): VlanShow[] {
  return br.all().map((mp) => ({ port: mp.name, ...mp.port.vlan.describe() }));
}

/** `stats`: FDB and port counters of every bridge as the main thread holds them (the caller folds the workers' first). */
export function bridgeStats(d: DaemonCore): BridgeStats[] {
  return [...d.bridges.values()].map((br) => {
    const c = br.bridge.fdb.counters;
    return {
      bridge: br.cfg.name,
      fdb: { entries: br.bridge.fdb.size, learned: c.learned, aged: c.aged, moved: c.moved, evicted: c.evicted, flooded: br.bridge.counters.flooded },
      multicast: br.bridge.mcast === null ? null : { groups: br.bridge.mcast.mdb.groups, querier: querierShow(br.bridge, d.now()) },
      ports: br.all().map((mp) => {
        mp.readKernelDrops();
        return {
          name: mp.name,
          rx_packets: mp.port.rxPackets,
          rx_bytes: mp.port.rxBytes,
          tx_packets: mp.port.txPackets,
          tx_bytes: mp.port.txBytes,
          rx_gso_packets: mp.port.rxGsoPackets,
          tx_gso_packets: mp.port.txGsoPackets,
          drops: mp.port.drops(),
          capture_dropped: mp.port.captureDropped,
          mtu_mismatch: mp.mtuMismatches > 0,
          multicast: br.bridge.mcast === null ? null : br.bridge.mcast.portStats(mp.port, d.now()),
        };
      }),
    };
  });
}
