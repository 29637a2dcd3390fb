// The forwarding engine of one bridge: ingress checks, learning, lookup, delivery and flooding.
//
// Model (Linux net/bridge br_input.c + br_forward.c, in one place):
//   receive(ingress, slab, desc, count) runs once per rx batch of one port. For each frame:
//     QoS (qos.ts): rate_limit      -> drop `rate_limit` (a port shut down by storm control: `storm_shutdown`)
//     runt?  -> drop `runt`
//     port security (lock.ts; judges the packet behind every VLAN tag) -> drop `lock_*` / `ra_guard` / `dhcp_guard`
//     source multicast/zero?        -> drop `bad_src`
//     01:80:C2:00:00:0X?            -> drop `link_local` (STP, pause, LACP, 802.1X are never forwarded)
//     VID 4095 in the outer tag     -> drop `vlan_reserved` (every port)
//     VLAN ingress (vlan.ts)        -> drop `tagged_on_access` / `vlan_not_member` / `untagged_no_native`
//                                      / `stacked_tag` (an untagged or tagged frame whose ethertype is a
//                                      VLAN TPID, on access and trunk ports other than the uplink/bond,
//                                      unless `allow_stacked`)
//     learn (vid, src) on ingress   (if the port has `learning`)
//     unicast dst in FDB?           -> queue on that port if shouldDeliver()
//     else storm control (qos.ts)   -> drop `storm_broadcast` / `storm_multicast` / `storm_unknown_unicast`
//     else                          -> flood to every port for which shouldDeliver() holds
//   on each egress port: egress_rate_limit (qos.ts) -> drop `egress_rate_limit` before the write
//   then flush(): one send() per egress port that has queued frames; then, for a port with a rate_limit whose
//   bucket is empty (or shut down by storm control), qosHook.hold(): the owner stops reading it until it refills.
//
//   Named steps, each a method that reads and never counts, so that trace (src/observe/trace.ts) runs the
//   same code: admit() (every ingress check above, the VLAN; returns a DROP_* code), unicastEgress() /
//   floodEgress() (composed as selectEgress() for trace), txOp() (the tag operation), fits() (MTU).
//   receive() counts what they decide. Step "multicast" (this.mcast, src/bridge/mcast.ts: IGMP/MLD
//   snooping and the MDB; null when multicast_snooping is off) decides for IP multicast destinations
//   before the flood: its candidates pass shouldDeliver() like a flood's. Beside them, at one place each: step
//   "capture" (port.tap, the hook of port-tap.ts, one null check per port a frame touches) and step "mirror" (port.mirrorRx/mirrorTx,
//   one null check; src/bridge/mirror.ts). A mirror output port is refused by shouldDeliver() and admit().
//   Egress adds, removes or rewrites the 802.1Q tag per port (a tx op: iovecs in the addon, the slab is
//   never written), keeping PCP and DEI of a tagged frame; a frame that entered untagged leaves with PCP 0.
//
//   shouldDeliver() is the single egress predicate for unicast and flood (br_forward.c's
//   should_deliver): not the ingress port, port forwarding, isolation, and for floods the `flood` flag
//   (unknown unicast and multicast; broadcast is delivered regardless, like the kernel's separate
//   bcast_flood that defaults on).
//
// Notes on performance
//   No allocation per frame: the header is parsed into one reused EthernetHeader, frames are queued as
//   (off, len) words into each egress port's registered Uint32Array, and the slab is never copied.
//   Counters are plain number fields. The per-frame work is two hash probes and a few compares.

import { Fdb, type FdbOptions } from '../fdb/fdb.js';
import {
  ETH_HLEN, ETH_P_8021Q, ETH_P_ARP, EthernetHeader, isLinkLocalHL, isVlanTpid, parseEthernet, VLAN_HLEN, VLAN_VID_MASK,
} from '../frame/ethernet.js';
import { TX_OP_NONE, TX_OP_POP_TAG, TX_OP_PUSH_TAG, TX_OP_SET_TAG, VNET_HDR_LEN } from '../io/native-types.js';
import { checkSecurity, SEC_PASS, SECURITY_DROP_NAMES } from './lock.js';
import { MCAST_DROP, MCAST_FLOOD, type McastSnooping } from './mcast.js';
import {
  PortQos, qosAdmit, qosBatchStart, qosEgress, qosHoldUntil, QOS_DROP_NAMES, QOS_EGRESS_RATE_LIMIT, QOS_PASS, qosStorm,
  type QosHook, type QosSpec, STORM_BROADCAST, STORM_MULTICAST, STORM_UNKNOWN_UNICAST,
} from './qos.js';
import { applyMirrors, type Mirror } from './mirror.js';
import { BridgePort } from './port.js';
import {
  EGRESS_AS_IS, EGRESS_NOT_MEMBER, EGRESS_UNTAGGED, MODE_ACCESS, MODE_DEFAULT, MODE_TRUNK, PortVlan, VID_RESERVED, type VlanSpec,
} from './vlan.js';

/** TPID 0x8100 in the upper half of a tx `arg` (tpid << 16 | tci). */
const C_TAG = 0x8100_0000;
const PCP_DEI_MASK = 0xf000;

/**
 * A stacked tag: an untagged frame whose ethertype is a VLAN TPID (0x88a8, 0x9100: `tci` < 0 with a
 * parsed outer tag), or an 802.1Q-tagged one (priority tag or VLAN tag) with a TPID behind the tag.
 */
function isStacked(hdr: EthernetHeader, tci: number): boolean {
  return tci < 0 ? hdr.tpid !== 0 : isVlanTpid(hdr.etherType);
}

/** Drop codes: admit()'s verdicts and egress drops; names in DROP_CODE_NAMES (stats `drops` keys). */
export const DROP_NONE = 0;
export const DROP_RUNT = 1;
export const DROP_BAD_SRC = 2;
export const DROP_LINK_LOCAL = 3;
export const DROP_VLAN_RESERVED = 4;
export const DROP_TAGGED_ON_ACCESS = 5;
export const DROP_VLAN_NOT_MEMBER = 6;
export const DROP_UNTAGGED_NO_NATIVE = 7;
export const DROP_STACKED_TAG = 8;
export const DROP_MIRROR_OUTPUT = 9;
export const DROP_OVERSIZE = 10;
/** malformed IGMP/MLD (step "multicast"; counted by reason in McastSnooping.malformed) */
export const DROP_MCAST_MALFORMED = 11;
/** DROP_SECURITY + SEC_* (lock.ts) for a port-security drop. */
export const DROP_SECURITY = 16;
/** DROP_QOS + QOS_* (qos.ts) for a rate-limit or storm-control drop. */
export const DROP_QOS = 32;

/** The `drops` key of a drop code. */
export function dropCodeName(code: number): string {
  if (code >= DROP_QOS + 1 && code < DROP_QOS + 1 + QOS_DROP_NAMES.length) return QOS_DROP_NAMES[code - DROP_QOS - 1];
  if (code >= DROP_SECURITY + 1 && code < DROP_SECURITY + 1 + SECURITY_DROP_NAMES.length) return SECURITY_DROP_NAMES[code - DROP_SECURITY - 1];
  return DROP_CODE_NAMES[code] ?? `drop_${code}`;
}
const DROP_CODE_NAMES = [
  'none', 'runt', 'bad_src', 'link_local', 'vlan_reserved', 'tagged_on_access', 'vlan_not_member',
  'untagged_no_native', 'stacked_tag', 'mirror_output', 'oversize', 'mcast_malformed',
];

/** selectEgress() kinds: a known unicast destination, an unknown one (flooded), broadcast/multicast. */
export const FWD_UNICAST = 0;
export const FWD_UNKNOWN = 1;
export const FWD_GROUP = 2;
/** IP multicast decided by IGMP/MLD snooping (step "multicast") */
export const FWD_MDB = 3;

/** Flood classes for shouldDeliver(). */
const FLOOD_NONE = 0;
/** unknown unicast and multicast: only to ports with `flood` */
const FLOOD_FILTERED = 1;
/** broadcast: to every port */
const FLOOD_BROADCAST = 2;

/** Offset of gso_type inside struct virtio_net_hdr (flags u8, gso_type u8, ...). */
const VNET_GSO_TYPE = 1;

/** The QoS clock: integer microseconds of performance.now(). */
function monotonicUs(): number {
  return Math.floor(performance.now() * 1000);
}

/**
 * What the engine needs of its FDB: the Fdb itself, or a data-plane worker's view of a shared one
 * (src/dataplane/fdb-view.ts), whose learning goes to the table's one writer.
 */
export interface EngineFdb {
  readonly portMax: Int32Array;
  lookupHL(vid: number, macHi16: number, macLo32: number): number;
  learnHL(vid: number, macHi16: number, macLo32: number, port: number, nowMs: number): void;
  setIpv4(vid: number, macHi16: number, macLo32: number, ip: number): void;
  removePort(port: number): number;
  flushDynamic(port?: number): number;
  removePortVlans(port: number, keep: (vid: number) => boolean): number;
  sweep(nowMs: number, budget: number): number;
}

export interface BridgeOptions<F extends EngineFdb = Fdb> {
  name: string;
  maxPorts: number;
  fdbMax: number;
  ageingTimeMs: number;
  onFlap?: FdbOptions['onFlap'];
  onFlapSuppressed?: FdbOptions['onFlapSuppressed'];
  /** Keep the FDB's lookup arrays in SharedArrayBuffers (data-plane workers read them; src/dataplane/). */
  sharedFdb?: boolean;
  /** A data-plane worker's engine: this FDB instead of a new one (fdbMax, ageing and the callbacks are then unused). */
  fdb?: F;
}

export interface BridgeCounters {
  /** unicast frames whose destination was not in the FDB (flooded) */
  flooded: number;
  /** broadcast and multicast frames flooded */
  floodedGroup: number;
  /** frames forwarded to a known port */
  forwarded: number;
}

export class Bridge<F extends EngineFdb = Fdb> {
  readonly name: string;
  readonly fdb: F;
  /** Ports by id; null where the id is free. */
  readonly ports: (BridgePort | null)[];
  /** Dense list of attached ports, the flood list. */
  private flood: BridgePort[] = [];
  /** Ports with frames queued in the current batch: dirty[0 .. dirtyCount-1] (never truncated: no reallocation). */
  private readonly dirty: BridgePort[];
  private dirtyCount = 0;
  /** The parsed header of the current frame (read by trace after admit()). */
  readonly hdr = new EthernetHeader();
  /** admit()'s results: the frame's VLAN (-1 before classification) and C-tag TCI (-1: none). */
  vid = -1;
  tci = -1;
  /** selectEgress()'s results: egress ports out[0 .. n-1], FWD_* kind, the FDB hit's port or -1. */
  readonly out: BridgePort[];
  fwdKind = FWD_UNICAST;
  fwdPort = -1;
  /**
   * txOp()'s tag: the TCI pushed or written (TPID 0x8100). Kept as a 16-bit TCI, never as the 32-bit tx
   * `arg`: a uint32 >= 2^31 in a field or an argument would be boxed into a HeapNumber per frame.
   */
  txTci = 0;
  /** The slab of the batch being processed (egress taps copy from it). */
  private slab: Uint8Array = new Uint8Array(0);
  /** Frame number: a mirror copies a frame once even when selected at ingress and egress. */
  private frameSeq = 0;
  /** IGMP/MLD snooping and the MDB (mcast.ts); null: multicast is flooded. Set with setMulticast(). */
  mcast: McastSnooping | null = null;
  /** Mirrors of this bridge (mirror.ts); set with setMirrors(). */
  private mirrorList: Mirror[] = [];
  /** Coarse clock: set by the owner (once per tick); the engine never reads the system clock. */
  nowMs = 0;
  /**
   * The QoS clock (integer us), read once per rx batch, and only while a port of this bridge has QoS (qosPorts > 0);
   * replaceable (tests).
   */
  clockUs: () => number = monotonicUs;
  /** The QoS clock at the start of the current batch. */
  private nowUs = 0;
  /** Ports with QoS (port.qos !== null). */
  private qosPorts = 0;
  /** Who stops and restarts reading a port for QoS (qos.ts QosHook); null: nobody (the port is read on, and drops). */
  qosHook: QosHook | null = null;
  readonly counters: BridgeCounters = { flooded: 0, floodedGroup: 0, forwarded: 0 };

  constructor(opts: BridgeOptions<F>) {
    this.name = opts.name;
    this.ports = new Array<BridgePort | null>(opts.maxPorts).fill(null);
    this.dirty = new Array<BridgePort>(opts.maxPorts);
    this.out = new Array<BridgePort>(opts.maxPorts);
    this.fdb = opts.fdb ?? (new Fdb({
      maxEntries: opts.fdbMax, maxPorts: opts.maxPorts, ageingTimeMs: opts.ageingTimeMs, onFlap: opts.onFlap, onFlapSuppressed: opts.onFlapSuppressed,
      shared: opts.sharedFdb === true,
    }) as unknown as F);
  }

  /** Lowest free port id, or -1. */
  freePortId(): number {
    return this.ports.indexOf(null);
  }

  addPort(port: BridgePort): void {
    if (this.ports[port.id] !== null) throw new Error(`port id ${port.id} in use`);
    this.ports[port.id] = port;
    if (port.qos !== null) this.qosPorts++;
    this.fdb.portMax[port.id] = port.fdbMax;
    this.flood = this.ports.filter((p): p is BridgePort => p !== null);
    applyMirrors(this.mirrorList, this.flood);
    if (this.mcast !== null) this.mcast.applyPort(port);
  }

  /** Turns snooping on (a McastSnooping) or off (null), between batches. */
  setMulticast(mcast: McastSnooping | null): void {
    this.mcast = mcast;
    if (mcast !== null) for (const p of this.flood) mcast.applyPort(p);
  }

  get mirrors(): readonly Mirror[] {
    return this.mirrorList;
  }

  /** Replaces the bridge's mirrors (between batches); nothing is learned from or flooded to outputs. */
  setMirrors(mirrors: Mirror[]): void {
    this.mirrorList = mirrors;
    applyMirrors(mirrors, this.flood);
    // an output port's dynamic entries go: nothing may be unicast to it any more
    for (const p of this.flood) if (p.mirrorOutput) this.fdb.flushDynamic(p.id);
  }

  /** Unlinks a port: it receives nothing from now on and every FDB entry pointing at it goes. */
  removePort(port: BridgePort): void {
    if (this.ports[port.id] !== port) return;
    port.state = 'absent';
    port.linkState = 'absent';
    if (port.qos !== null) this.qosPorts--;
    this.fdb.removePort(port.id);
    if (this.mcast !== null) this.mcast.removePort(port);
    this.ports[port.id] = null;
    this.flood = this.ports.filter((p): p is BridgePort => p !== null);
    port.mirrorRx = null;
    port.mirrorTx = null;
    applyMirrors(this.mirrorList, this.flood);
  }

  portByName(name: string): BridgePort | null {
    for (const p of this.flood) if (p.name === name) return p;
    return null;
  }

  get portList(): readonly BridgePort[] {
    return this.flood;
  }

  /**
   * Sets the port's link state; leaving `up` flushes its dynamic FDB entries. A port that storm control shut down
   * (qos.ts) stays `down` until its time is over (qosWake()).
   */
  setPortState(port: BridgePort, state: BridgePort['state']): void {
    port.linkState = state;
    const effective = state === 'up' && port.qos !== null && port.qos.shutUntilUs !== 0 ? 'down' : state;
    if (port.state === effective) return;
    const wasUp = port.state === 'up';
    port.state = effective;
    if (wasUp) {
      this.fdb.flushDynamic(port.id);
      if (this.mcast !== null) this.mcast.portDown(port);
    }
  }

  /**
   * Replaces the port's QoS (between batches): new buckets, full. A shut-down port is up again; the caller
   * resumes reading a port it held.
   */
  setPortQos(port: BridgePort, spec: QosSpec): void {
    const had = port.qos !== null;
    const q = PortQos.build(spec, this.clockUs());
    port.qos = q;
    if (had !== (q !== null) && this.ports[port.id] === port) this.qosPorts += q !== null ? 1 : -1;
    this.setPortState(port, port.linkState);
  }

  /**
   * A hold of the port (qosHook.hold) reached its time: returns the time (us) until which it should stay held,
   * or 0 to read it again. A port shut down by storm control whose time is over is up again.
   */
  qosWake(port: BridgePort): number {
    const q = port.qos;
    if (q === null) return 0;
    const shut = q.shutUntilUs !== 0;
    const until = qosHoldUntil(q, this.clockUs());
    if (shut && q.shutUntilUs === 0) this.setPortState(port, port.linkState);
    q.heldUntilUs = until;
    return until;
  }

  /**
   * Replaces the port's VLAN rules (between batches) and removes its FDB entries in VLANs it left.
   */
  setPortVlan(port: BridgePort, spec: VlanSpec): number {
    const vlan = new PortVlan(spec);
    port.vlan = vlan;
    return this.fdb.removePortVlans(port.id, (vid) => vlan.isMember(vid));
  }

  /** The one egress predicate for unicast and flood. */
  static shouldDeliver(ingress: BridgePort, egress: BridgePort, vid: number, floodClass: number): boolean {
    return egress !== ingress &&
      egress.state === 'up' && egress.io !== null &&
      egress.vlan.egress[vid] !== EGRESS_NOT_MEMBER &&
      !(ingress.isolated && egress.isolated) &&
      !egress.mirrorOutput &&
      (floodClass !== FLOOD_FILTERED || egress.flood);
  }

  /**
   * Step "ingress checks": every check a received frame passes before learning, in order. Reads only:
   * returns DROP_NONE with the frame's VLAN in this.vid and its C-tag TCI (-1: none) in this.tci, or
   * the drop code (the security check's reason is DROP_SECURITY + SEC_*). Shared with trace.
   */
  admit(ingress: BridgePort, slab: Uint8Array, off: number, len: number): number {
    const hdr = this.hdr;
    this.vid = -1;
    this.tci = -1;
    if (ingress.mirrorOutput) return DROP_MIRROR_OUTPUT;
    if (!parseEthernet(slab, off, len, hdr)) return DROP_RUNT;
    // port security (lock.ts): VIF locking, RA guard, DHCP guard; what the guest sends, before anything
    if (ingress.security !== null) {
      const reason = checkSecurity(ingress.security, slab, off, len, hdr);
      if (reason !== SEC_PASS) return DROP_SECURITY + reason;
    }
    if (hdr.srcGroup || (hdr.srcHi === 0 && hdr.srcLo === 0)) return DROP_BAD_SRC;
    if (hdr.dstGroup && isLinkLocalHL(hdr.dstHi, hdr.dstLo)) return DROP_LINK_LOCAL;
    // VLAN ingress: only TPID 0x8100 is a tag here (0x88a8 is an ordinary ethertype: no QinQ).
    // VID 4095 (reserved) in the outer tag of any TPID is dropped on every port.
    if (hdr.tpid !== 0 && (hdr.tci & VLAN_VID_MASK) === VID_RESERVED) return DROP_VLAN_RESERVED;
    const tci = hdr.tpid === ETH_P_8021Q ? hdr.tci : -1;
    this.tci = tci;
    const tagVid = tci > 0 ? tci & VLAN_VID_MASK : 0;
    const vlan = ingress.vlan;
    let vid: number;
    if (vlan.mode === MODE_ACCESS) {
      if (tagVid !== 0) return DROP_TAGGED_ON_ACCESS;
      vid = vlan.pvid;
    } else if (vlan.mode === MODE_TRUNK) {
      if (tagVid !== 0) {
        if (vlan.egress[tagVid] === EGRESS_NOT_MEMBER) return DROP_VLAN_NOT_MEMBER;
        vid = tagVid;
      } else {
        if (vlan.pvid === 0) return DROP_UNTAGGED_NO_NATIVE;
        vid = vlan.pvid;
      }
    } else {
      vid = tagVid;
    }
    // the double-tagging hop: a tag hidden behind the one that placed the frame in its VLAN would be
    // the outer tag wherever this VLAN leaves untagged (the uplink's native VLAN, an access port)
    if (vlan.mode !== MODE_DEFAULT && ingress.checkStacked && isStacked(hdr, tci)) return DROP_STACKED_TAG;
    this.vid = vid;
    return DROP_NONE;
  }

  /** Counts an ingress drop on the port (the counter of `code`). */
  private static countDrop(port: BridgePort, code: number): void {
    switch (code) {
      case DROP_RUNT: port.dropRunt++; break;
      case DROP_BAD_SRC: port.dropBadSrc++; break;
      case DROP_LINK_LOCAL: port.dropLinkLocal++; break;
      case DROP_VLAN_RESERVED: port.dropVlanReserved++; break;
      case DROP_TAGGED_ON_ACCESS: port.dropTaggedOnAccess++; break;
      case DROP_VLAN_NOT_MEMBER: port.dropVlanNotMember++; break;
      case DROP_UNTAGGED_NO_NATIVE: port.dropUntaggedNoNative++; break;
      case DROP_STACKED_TAG: port.dropStackedTag++; break;
      case DROP_MIRROR_OUTPUT: port.dropMirrorOutput++; break;
      default:
        if (code >= DROP_QOS) port.qosDrops[code - DROP_QOS]++;
        else port.securityDrops[code - DROP_SECURITY]++;
    }
  }

  /**
   * Step "lookup", known unicast: the FDB port of the admitted frame's destination (this.hdr parsed, `vid`
   * from admit()) in this.fwdPort (-1 on a miss, or a group destination), and that port if it takes the
   * frame (shouldDeliver), else null. Reads only; shared with trace through selectEgress().
   */
  unicastEgress(ingress: BridgePort, vid: number): BridgePort | null {
    const hdr = this.hdr;
    this.fwdPort = -1;
    if (hdr.dstGroup) return null;
    const o = this.fdb.lookupHL(vid, hdr.dstHi, hdr.dstLo);
    this.fwdPort = o;
    if (o < 0) return null;
    const egress = this.ports[o];
    return egress !== null && Bridge.shouldDeliver(ingress, egress, vid, FLOOD_NONE) ? egress : null;
  }

  /**
   * Step "flood": an unknown unicast (FWD_UNKNOWN) or group (FWD_GROUP) destination goes to every port that
   * takes it: this.out[0 .. n-1], returns n, this.fwdKind set. Reads only; shared with trace.
   */
  floodEgress(ingress: BridgePort, vid: number): number {
    const hdr = this.hdr;
    const out = this.out;
    const flood = this.flood;
    let cls: number;
    if (!hdr.dstGroup) {
      this.fwdKind = FWD_UNKNOWN;
      cls = FLOOD_FILTERED;
    } else {
      this.fwdKind = FWD_GROUP;
      cls = hdr.dstIsBroadcast ? FLOOD_BROADCAST : FLOOD_FILTERED;
    }
    let n = 0;
    for (let p = 0; p < flood.length; p++) {
      const egress = flood[p];
      if (Bridge.shouldDeliver(ingress, egress, vid, cls)) out[n++] = egress;
    }
    return n;
  }

  /**
   * Step "multicast" (this.mcast set, this.hdr a group destination): IGMP/MLD snooping (learning only when `learn`;
   * trace passes false) and the MDB's egress ports that take the frame in this.out[0 .. n-1] (fwdKind FWD_MDB);
   * returns n, or MCAST_FLOOD (flood as before) / MCAST_DROP (malformed IGMP/MLD).
   */
  multicastEgress(ingress: BridgePort, vid: number, slab: Uint8Array, off: number, len: number, learn: boolean): number {
    const mc = this.mcast!;
    const m = mc.select(this.ports, this.flood, ingress, vid, slab, off, len, this.hdr, this.nowMs, learn);
    if (m < 0) return m;
    const cand = mc.cand;
    const out = this.out;
    let n = 0;
    for (let k = 0; k < m; k++) {
      const egress = cand[k];
      if (Bridge.shouldDeliver(ingress, egress, vid, FLOOD_NONE)) out[n++] = egress;
    }
    this.fwdKind = FWD_MDB;
    return n;
  }

  /**
   * The egress decision receive() makes, for trace: unicastEgress() on an FDB hit (FWD_UNICAST), else step
   * "multicast" when the frame (slab, off, len) is IP multicast and snooping is on (read only), else floodEgress().
   * Ports in this.out[0 .. n-1]; returns n.
   */
  selectEgress(ingress: BridgePort, vid: number, slab?: Uint8Array, off = 0, len = 0): number {
    if (slab !== undefined && this.hdr.dstGroup && this.mcast !== null && !this.hdr.dstIsBroadcast) {
      this.fwdPort = -1;
      const m = this.multicastEgress(ingress, vid, slab, off, len, false);
      if (m === MCAST_DROP) {
        this.fwdKind = FWD_MDB;
        return 0;
      }
      if (m !== MCAST_FLOOD) return m;
    }
    const egress = this.unicastEgress(ingress, vid);
    if (this.fwdPort >= 0) {
      this.fwdKind = FWD_UNICAST;
      if (egress === null) return 0;
      this.out[0] = egress;
      return 1;
    }
    return this.floodEgress(ingress, vid);
  }

  /**
   * Processes one rx batch of `ingress`: count frames described by desc (off, len, flags) in slab.
   * Queues the output on egress ports and flushes them before returning.
   */
  receive(ingress: BridgePort, slab: Uint8Array, desc: Int32Array, count: number): void {
    const hdr = this.hdr;
    const fdb = this.fdb;
    const now = this.nowMs;
    const out = this.out;
    const ingressId = ingress.id;
    if (ingress.state !== 'up') return;
    this.slab = slab;
    // step "qos" (qos.ts): the clock once per batch, only where a port has QoS
    const q = ingress.qos;
    if (this.qosPorts !== 0) this.nowUs = this.clockUs();
    if (q !== null) qosBatchStart(q, this.nowUs);
    let qr = QOS_PASS;
    for (let i = 0; i < count; i++) {
      const off = desc[3 * i];
      const len = desc[3 * i + 1];
      ingress.rxPackets++;
      ingress.rxBytes += len;
      this.frameSeq++;
      const verdict = q !== null && (qr = qosAdmit(q, slab, off, len)) !== QOS_PASS ? DROP_QOS + qr : this.admit(ingress, slab, off, len);
      if (verdict !== DROP_NONE) {
        Bridge.countDrop(ingress, verdict);
        if (ingress.tap !== null) ingress.tap.drop(slab, off, len, TX_OP_NONE, 0, this.vid, verdict, false);
        continue;
      }
      const vid = this.vid;
      const tci = this.tci;
      // step "capture" and "mirror" (ingress): as on the ingress port's wire
      if (ingress.tap !== null) ingress.tap.rx(slab, off, len, vid);
      if (ingress.mirrorRx !== null) this.mirrorCopies(ingress.mirrorRx, off, len, TX_OP_NONE, 0, vid, tci);
      if (ingress.learning) {
        fdb.learnHL(vid, hdr.srcHi, hdr.srcLo, ingressId, now);
        // ARP snooping on local ports: the bond announces these addresses after a failover
        if (hdr.etherType === ETH_P_ARP && ingress.snoopArp) this.snoopArp(slab, off + hdr.payloadOffset, len - hdr.payloadOffset, vid);
      }
      const payload = this.payloadOf(slab, off, len);
      // step "multicast": IGMP/MLD snooping and the MDB decide for IP multicast (mcast.ts)
      if (hdr.dstGroup && this.mcast !== null && !hdr.dstIsBroadcast) {
        const m = this.multicastEgress(ingress, vid, slab, off, len, true);
        if (m === MCAST_DROP) {
          if (ingress.tap !== null) ingress.tap.drop(slab, off, len, TX_OP_NONE, 0, vid, DROP_MCAST_MALFORMED, false);
          continue;
        }
        if (m !== MCAST_FLOOD) {
          for (let k = 0; k < m; k++) this.enqueue(out[k], off, len, payload, vid, tci);
          continue;
        }
      }
      // the egress decision (selectEgress() is the same two steps, for trace): a known unicast
      // destination on its port, else a flood
      const egress = this.unicastEgress(ingress, vid);
      if (this.fwdPort >= 0) {
        if (egress !== null) {
          this.counters.forwarded++;
          this.enqueue(egress, off, len, payload, vid, tci);
        }
        continue;
      }
      // step "storm" (qos.ts): what the port floods, per class
      if (q !== null && (qr = qosStorm(q, !hdr.dstGroup ? STORM_UNKNOWN_UNICAST : hdr.dstIsBroadcast ? STORM_BROADCAST : STORM_MULTICAST, this.nowUs)) !== QOS_PASS) {
        this.stormDrop(ingress, q, qr, off, len, vid);
        continue;
      }
      const n = this.floodEgress(ingress, vid);
      if (this.fwdKind === FWD_UNKNOWN) this.counters.flooded++;
      else this.counters.floodedGroup++;
      for (let k = 0; k < n; k++) this.enqueue(out[k], off, len, payload, vid, tci);
    }
    this.flush();
    if (q !== null) {
      // a batch shorter than the read budget (desc's capacity) found the kernel's queue empty
      if (q.draining && 3 * count < desc.length) q.draining = false;
      this.qosAfterBatch(ingress, q);
    }
  }

  /** A storm-control drop; the one that shuts the port down (action shutdown) takes it down and tells the hook. */
  private stormDrop(port: BridgePort, q: PortQos, reason: number, off: number, len: number, vid: number): void {
    port.qosDrops[reason]++;
    if (port.tap !== null) port.tap.drop(this.slab, off, len, TX_OP_NONE, 0, vid, DROP_QOS + reason, false);
    if (q.shutUntilUs === 0 || port.state !== 'up') return;
    port.stormShutdowns++;
    this.setPortState(port, port.linkState);
    if (this.qosHook !== null) this.qosHook.shutdown(port.id, reason, q.shutUntilUs);
  }

  /** After a batch: a port whose ingress bucket is empty (or that is shut down) is not read until it refills. */
  private qosAfterBatch(port: BridgePort, q: PortQos): void {
    const until = qosHoldUntil(q, this.nowUs);
    if (until === 0 || this.qosHook === null) return;
    q.heldUntilUs = until;
    this.qosHook.hold(port.id, until);
  }

  /** Payload length for the MTU check (this.hdr parsed); GSO super-frames are exempt (0: segmented downstream). */
  payloadOf(slab: Uint8Array, off: number, len: number): number {
    return slab[off - VNET_HDR_LEN + VNET_GSO_TYPE] !== 0 ? 0 : len - ETH_HLEN - (this.hdr.tpid !== 0 ? VLAN_HLEN : 0);
  }

  /** Step "mirror": one copy per frame per mirror, as on the selected port's wire (op, tagTci). */
  private mirrorCopies(mirrors: Mirror[], off: number, len: number, op: number, tagTci: number, vid: number, tci: number): void {
    const seq = this.frameSeq;
    for (let k = 0; k < mirrors.length; k++) {
      const m = mirrors[k];
      if (m.lastSeq === seq || (m.vids !== null && m.vids[vid] === 0)) continue;
      const dst = m.out;
      if (dst === null || dst.state !== 'up' || dst.io === null) continue;
      m.lastSeq = seq;
      m.mirrored++;
      if (m.outputVid !== 0) {
        // RSPAN: the wire frame tagged into the output VLAN (relative to the slab: set or push a tag)
        if (tci >= 0) {
          const pcp = op === TX_OP_NONE || op === TX_OP_POP_TAG ? tci & PCP_DEI_MASK : (tagTci & PCP_DEI_MASK);
          this.queue(dst, off, len, TX_OP_SET_TAG, pcp | m.outputVid, vid);
        } else {
          const pcp = op === TX_OP_PUSH_TAG ? tagTci & PCP_DEI_MASK : 0;
          this.queue(dst, off, len, TX_OP_PUSH_TAG, pcp | m.outputVid, vid);
        }
      } else {
        this.queue(dst, off, len, op, tagTci, vid);
      }
    }
  }

  /** Records the sender IPv4 of an Ethernet/IPv4 ARP whose sender MAC is the frame's source. */
  private snoopArp(slab: Uint8Array, p: number, len: number, vid: number): void {
    const hdr = this.hdr;
    // htype 1, ptype 0x0800, hlen 6, plen 4
    if (len < 28 || slab[p + 1] !== 1 || slab[p + 2] !== 0x08 || slab[p + 3] !== 0 || slab[p + 4] !== 6 || slab[p + 5] !== 4) return;
    const shaHi = (slab[p + 8] << 8) | slab[p + 9];
    const shaLo = (slab[p + 10] << 24) | (slab[p + 11] << 16) | (slab[p + 12] << 8) | slab[p + 13];
    if (shaHi !== hdr.srcHi || shaLo !== hdr.srcLo) return;
    const ip = (slab[p + 14] << 24) | (slab[p + 15] << 16) | (slab[p + 16] << 8) | slab[p + 17];
    if (ip !== 0) this.fdb.setIpv4(vid, shaHi, shaLo, ip);
  }

  /**
   * Step "egress": the tag operation for a frame of internal `vid` leaving `egress`; `tci` is the
   * frame's 802.1Q TCI (-1 when it has no C-tag). Returns the TX_OP_*; the TCI it pushes or writes is in this.txTci.
   * Shared with trace.
   */
  txOp(egress: BridgePort, vid: number, tci: number): number {
    const rule = egress.vlan.egress[vid];
    this.txTci = 0;
    if (rule === EGRESS_UNTAGGED) {
      if (tci >= 0) return TX_OP_POP_TAG;
    } else if (rule !== EGRESS_AS_IS) {
      // EGRESS_TAGGED
      if (tci < 0) {
        this.txTci = vid;
        return TX_OP_PUSH_TAG;
      } else if ((tci & VLAN_VID_MASK) !== vid) {
        this.txTci = (tci & PCP_DEI_MASK) | vid;
        return TX_OP_SET_TAG;
      }
    }
    return TX_OP_NONE;
  }

  /** The egress MTU check (drop `oversize` when false). */
  static fits(egress: BridgePort, payload: number): boolean {
    return payload <= egress.mtu;
  }

  /** Queues a frame of internal `vid` on `egress` with the egress port's tag operation. */
  private enqueue(egress: BridgePort, off: number, len: number, payload: number, vid: number, tci: number): void {
    const op = this.txOp(egress, vid, tci);
    const tagTci = this.txTci;
    if (!Bridge.fits(egress, payload)) {
      egress.dropOversize++;
      if (egress.tap !== null) egress.tap.drop(this.slab, off, len, op, tagTci, vid, DROP_OVERSIZE, true);
      return;
    }
    // step "qos" on egress (qos.ts): egress_rate_limit, before the write
    if (egress.qos !== null && qosEgress(egress.qos, this.slab, off, len, this.nowUs) !== QOS_PASS) {
      egress.qosDrops[QOS_EGRESS_RATE_LIMIT]++;
      if (egress.tap !== null) egress.tap.drop(this.slab, off, len, op, tagTci, vid, DROP_QOS + QOS_EGRESS_RATE_LIMIT, true);
      return;
    }
    this.queue(egress, off, len, op, tagTci, vid);
    if (egress.mirrorTx !== null) this.mirrorCopies(egress.mirrorTx, off, len, op, tagTci, vid, tci);
  }

  /** Appends one tx entry to the port's queue (step "capture" on egress). */
  private queue(egress: BridgePort, off: number, len: number, op: number, tagTci: number, vid: number): void {
    if (egress.tap !== null) egress.tap.tx(this.slab, off, len, op, tagTci, vid);
    const io = egress.io!;
    const tx = io.tx;
    let n = egress.txCount;
    if (4 * n >= tx.length) {
      this.sendPort(egress); // only when tx is smaller than the batch budget
      n = 0;
    }
    if (n === 0) this.dirty[this.dirtyCount++] = egress;
    const w = 4 * n;
    tx[w] = off;
    tx[w + 1] = len;
    tx[w + 2] = op;
    // arg = tpid << 16 | tci, composed only here: stored straight into the Uint32Array, never boxed
    tx[w + 3] = op === TX_OP_PUSH_TAG || op === TX_OP_SET_TAG ? (C_TAG | tagTci) >>> 0 : 0;
    egress.txCount = n + 1;
  }

  /** One native call for the port's queued frames. */
  private sendPort(egress: BridgePort): void {
    const n = egress.txCount;
    if (n === 0 || egress.io === null) return;
    egress.txPackets += egress.io.send(n);
    egress.txCount = 0;
  }

  /** Forgets frames queued by a batch that failed half-way (they reference a slab about to be reused). */
  discardBatch(): void {
    for (let i = 0; i < this.dirtyCount; i++) this.dirty[i].txCount = 0;
    this.dirtyCount = 0;
  }

  /** Sends every queued frame: one native call per egress port. */
  flush(): void {
    const dirty = this.dirty;
    for (let i = 0; i < this.dirtyCount; i++) this.sendPort(dirty[i]);
    this.dirtyCount = 0;
  }

  /** Periodic work: advance the clock and run a budgeted ageing sweep. */
  tick(nowMs: number, sweepBudget: number): number {
    this.nowMs = nowMs;
    if (this.mcast !== null) this.mcast.tick(nowMs, sweepBudget, this.flood);
    return this.fdb.sweep(nowMs, sweepBudget);
  }
}

