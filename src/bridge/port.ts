// A bridge port as the forwarding engine sees it: identity, flags, state, a tx queue and counters.
//
// The engine never touches the native addon. A port's I/O is anything that implements PortIo
// (the real one is io/native.ts's PacketPort; tests use a fake). The tx queue is the Uint32Array
// the I/O registered with the addon: 4 words per frame (off, len, op, arg) into the receive slab.
//
// Counters are plain numbers on the port (rx side, JS-owned) plus the addon's Float64Array
// (tx errors, socket drops), read only when somebody asks for stats.

import { PortCounter } from '../io/native-types.js';
import {
  type PortSecurity, SEC_DHCP_GUARD, SEC_LOCK_ARP, SEC_LOCK_DISABLED, SEC_LOCK_IPV4, SEC_LOCK_IPV6, SEC_LOCK_MAC, SEC_LOCK_ND,
  SEC_LOCK_OTHER, SEC_RA_GUARD, SEC_REASON_COUNT, SECURITY_DROP_NAMES,
} from './lock.js';
import { DEFAULT_VLAN, type PortVlan } from './vlan.js';
import {
  type PortQos, QOS_DROP_NAMES, QOS_EGRESS_RATE_LIMIT, QOS_RATE_LIMIT, QOS_REASON_COUNT, QOS_STORM_BROADCAST, QOS_STORM_MULTICAST,
  QOS_STORM_SHUTDOWN, QOS_STORM_UNKNOWN_UNICAST,
} from './qos.js';
import type { Mirror } from './mirror.js';
import type { PortTap } from './port-tap.js';

export type PortKind = 'tap' | 'attach' | 'uplink' | 'bond' | 'host' | 'vxlan' | 'vhost-user';
export type PortState = 'up' | 'down' | 'absent';

/** What the engine needs from a port's I/O. */
export interface PortIo {
  /** 4 words per queued frame: off, len, op, arg. */
  readonly tx: Uint32Array;
  /** Addon counters, indexed by PortCounter. */
  readonly counters: Float64Array;
  /** Sends tx entries 0..count-1, returns how many the kernel accepted. */
  send(count: number): number;
  /** QoS (qos.ts): stop reading (true) until released (false); composes with any other stop of the I/O. */
  holdRx?(held: boolean): void;
}

export type { PortTap } from './port-tap.js';

/** Drop reasons reported in `stats` (`drops` maps reason -> count). */
export const DROP_REASONS = [
  'runt', 'bad_src', 'link_local', 'oversize', 'tx_full', 'tx_link_down', 'socket',
  'tagged_on_access', 'vlan_not_member', 'untagged_no_native',
  'vlan_reserved', 'stacked_tag', ...SECURITY_DROP_NAMES,
  'mirror_output', ...QOS_DROP_NAMES,
  'truncated', 'rx_error', 'kernel_drops',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface PortFlags {
  learning: boolean;
  flood: boolean;
  isolated: boolean;
}

export class BridgePort {
  readonly id: number;
  readonly name: string;
  readonly kind: PortKind;
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  /** Record IPv4 addresses seen in ARPs (local ports; never the uplink). */
  readonly snoopArp: boolean;
  /**
   * Drop frames with a stacked tag (`stacked_tag`) on access and trunk VLANs: every port but the uplink
   * and bond, unless the port sets `allow_stacked`.
   */
  checkStacked: boolean;
  /** Port security (lock.ts) tables, null when the port has no lock and no guard (replaced as a whole). */
  security: PortSecurity | null = null;
  /** Port-security drops by reason (lock.ts SEC_*); kept across `lock set` / `lock clear`. */
  readonly securityDrops = new Float64Array(SEC_REASON_COUNT);
  /** Rate limits and storm control (qos.ts), null when the port has none (replaced as a whole by `qos set`). */
  qos: PortQos | null = null;
  /** QoS drops by reason (qos.ts QOS_*); kept across `qos set` / `qos clear`. */
  readonly qosDrops = new Float64Array(QOS_REASON_COUNT);
  /** times storm control shut the port down */
  stormShutdowns = 0;
  /** What the link says (Bridge.setPortState); `state` is `down` instead while storm control has the port shut down. */
  linkState: PortState = 'absent';
  /** VLAN membership and egress rules (replaced as a whole by `vlan set`). */
  vlan: PortVlan = DEFAULT_VLAN;
  /** Per-port FDB cap (0 = none). */
  fdbMax: number;
  /** MTU used for the oversize check: payload bytes after the Ethernet header and tags. */
  mtu: number;
  state: PortState = 'absent';
  /** ifindex of the netdev in the daemon's namespace when known, else 0. */
  ifindex = 0;
  io: PortIo | null = null;
  /** Mirrors selecting frames this port receives / sends (mirror.ts applyMirrors), null when none. */
  mirrorRx: Mirror[] | null = null;
  mirrorTx: Mirror[] | null = null;
  /** The output port of a mirror: receives only copies, what it sends is dropped (`mirror_output`). */
  mirrorOutput = false;
  /** The observer of this port's frames (port-tap.ts), null when none: the one check per frame. */
  tap: PortTap | null = null;
  /** frames captures of this port could not keep (slow reader): `capture_dropped` in stats, not a drop */
  captureDropped = 0;

  /** Number of frames queued in io.tx for the current batch. */
  txCount = 0;

  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  dropRunt = 0;
  dropBadSrc = 0;
  dropLinkLocal = 0;
  dropOversize = 0;
  dropTaggedOnAccess = 0;
  dropVlanNotMember = 0;
  dropUntaggedNoNative = 0;
  dropVlanReserved = 0;
  dropStackedTag = 0;
  dropMirrorOutput = 0;
  /** rx batches abandoned because forwarding threw (a bug; logged rate-limited) */
  batchErrors = 0;
  /** frames the kernel dropped before the daemon read them (TAP tx_dropped), refreshed by the daemon at `stats` */
  kernelDrops = 0;

  constructor(id: number, name: string, kind: PortKind, flags: PortFlags, mtu: number, fdbMax = 0, allowStacked = false) {
    this.id = id;
    this.name = name;
    this.kind = kind;
    this.checkStacked = kind !== 'uplink' && kind !== 'bond' && !allowStacked;
    this.snoopArp = kind === 'tap' || kind === 'attach';
    this.learning = flags.learning;
    this.flood = flags.flood;
    this.isolated = flags.isolated;
    this.mtu = mtu;
    this.fdbMax = fdbMax;
  }

  /** True when frames may be sent to and received from this port. */
  get forwarding(): boolean {
    return this.state === 'up' && this.io !== null;
  }

  /** Addon counters of I/O objects this port had before (a re-opened attach port keeps its history). */
  readonly savedCounters = new Float64Array(PortCounter.Count);

  /** An addon counter: the current I/O's plus those of earlier I/O objects. */
  nativeCounter(i: PortCounter): number {
    return this.savedCounters[i] + (this.io !== null ? this.io.counters[i] : 0);
  }

  /** Bytes the kernel accepted for transmission (counted by the addon, tags included). */
  get txBytes(): number {
    return this.nativeCounter(PortCounter.TxBytes);
  }

  /** GSO super-frames received (gso_type in the vnet header), counted by the addon. */
  get rxGsoPackets(): number {
    return this.nativeCounter(PortCounter.RxGsoPackets);
  }

  /** GSO super-frames the kernel accepted for transmission. */
  get txGsoPackets(): number {
    return this.nativeCounter(PortCounter.TxGsoPackets);
  }

  /** Drop counters by reason (control plane). */
  drops(): Record<DropReason, number> {
    const sec = this.securityDrops;
    return {
      runt: this.dropRunt + this.nativeCounter(PortCounter.RxRunt),
      bad_src: this.dropBadSrc,
      link_local: this.dropLinkLocal,
      oversize: this.dropOversize + this.nativeCounter(PortCounter.TxOversize),
      tx_full: this.nativeCounter(PortCounter.TxFull),
      tx_link_down: this.nativeCounter(PortCounter.TxLinkDown),
      // AF_PACKET ring overflows (tp_drops) and tx errors of no other class; rx errors have their own key
      socket: this.nativeCounter(PortCounter.RxSocketDrops) + this.nativeCounter(PortCounter.TxOther),
      tagged_on_access: this.dropTaggedOnAccess,
      vlan_not_member: this.dropVlanNotMember,
      untagged_no_native: this.dropUntaggedNoNative,
      vlan_reserved: this.dropVlanReserved,
      stacked_tag: this.dropStackedTag,
      lock_mac: sec[SEC_LOCK_MAC],
      lock_arp: sec[SEC_LOCK_ARP],
      lock_ipv4: sec[SEC_LOCK_IPV4],
      lock_ipv6: sec[SEC_LOCK_IPV6],
      lock_nd: sec[SEC_LOCK_ND],
      lock_other: sec[SEC_LOCK_OTHER],
      lock_disabled: sec[SEC_LOCK_DISABLED],
      ra_guard: sec[SEC_RA_GUARD],
      dhcp_guard: sec[SEC_DHCP_GUARD],
      mirror_output: this.dropMirrorOutput,
      rate_limit: this.qosDrops[QOS_RATE_LIMIT],
      egress_rate_limit: this.qosDrops[QOS_EGRESS_RATE_LIMIT],
      storm_broadcast: this.qosDrops[QOS_STORM_BROADCAST],
      storm_multicast: this.qosDrops[QOS_STORM_MULTICAST],
      storm_unknown_unicast: this.qosDrops[QOS_STORM_UNKNOWN_UNICAST],
      storm_shutdown: this.qosDrops[QOS_STORM_SHUTDOWN],
      truncated: this.nativeCounter(PortCounter.RxTruncated),
      rx_error: this.nativeCounter(PortCounter.RxErrors),
      kernel_drops: this.kernelDrops,
    };
  }

  /** Detaches the I/O, folding its counters into savedCounters. */
  detachIo(): PortIo | null {
    const io = this.io;
    if (io !== null) {
      for (let i = 0; i < PortCounter.Count; i++) {
        if (i !== PortCounter.TxLastErrno) this.savedCounters[i] += io.counters[i];
      }
    }
    this.io = null;
    this.txCount = 0;
    return io;
  }
}
