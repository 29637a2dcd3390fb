// The forwarding engine of one bridge: ingress checks, learning, lookup, delivery and flooding.
//
// Model (Linux net/bridge br_input.c + br_forward.c, in one place):
//   receive(ingress, slab, desc, count) runs once per rx batch of one port. For each frame:
//     runt?  -> drop `runt`
//     port security (lock.ts)       -> drop `lock_*` / `ra_guard` / `dhcp_guard`
//     source multicast/zero?        -> drop `bad_src`
//     01:80:C2:00:00:0X?            -> drop `link_local` (STP, pause, LACP, 802.1X are never forwarded)
//     VID 4095 in the outer tag     -> drop `vlan_reserved` (every port)
//     VLAN ingress (vlan.ts)        -> drop `tagged_on_access` / `vlan_not_member` / `untagged_no_native`
//                                      / `stacked_tag` (an untagged or tagged frame whose ethertype is a
//                                      VLAN TPID, on access and trunk ports other than the uplink/bond,
//                                      unless `allow_stacked`)
//     learn (vid, src) on ingress   (if the port has `learning`)
//     unicast dst in FDB?           -> queue on that port if shouldDeliver()
//     else                          -> flood to every port for which shouldDeliver() holds
//   then flush(): one send() per egress port that has queued frames.
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
import { checkSecurity, SEC_PASS } from './lock.js';
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

/** Flood classes for shouldDeliver(). */
const FLOOD_NONE = 0;
/** unknown unicast and multicast: only to ports with `flood` */
const FLOOD_FILTERED = 1;
/** broadcast: to every port */
const FLOOD_BROADCAST = 2;

/** Offset of gso_type inside struct virtio_net_hdr (flags u8, gso_type u8, ...). */
const VNET_GSO_TYPE = 1;

export interface BridgeOptions {
  name: string;
  maxPorts: number;
  fdbMax: number;
  ageingTimeMs: number;
  onFlap?: FdbOptions['onFlap'];
}

export interface BridgeCounters {
  /** unicast frames whose destination was not in the FDB (flooded) */
  flooded: number;
  /** broadcast and multicast frames flooded */
  floodedGroup: number;
  /** frames forwarded to a known port */
  forwarded: number;
}

export class Bridge {
  readonly name: string;
  readonly fdb: Fdb;
  /** Ports by id; null where the id is free. */
  readonly ports: (BridgePort | null)[];
  /** Dense list of attached ports, the flood list. */
  private flood: BridgePort[] = [];
  /** Ports with frames queued in the current batch: dirty[0 .. dirtyCount-1] (never truncated: no reallocation). */
  private readonly dirty: BridgePort[];
  private dirtyCount = 0;
  private readonly hdr = new EthernetHeader();
  /** Coarse clock: set by the owner (once per tick); the engine never reads the system clock. */
  nowMs = 0;
  readonly counters: BridgeCounters = { flooded: 0, floodedGroup: 0, forwarded: 0 };

  constructor(opts: BridgeOptions) {
    this.name = opts.name;
    this.ports = new Array<BridgePort | null>(opts.maxPorts).fill(null);
    this.dirty = new Array<BridgePort>(opts.maxPorts);
    this.fdb = new Fdb({ maxEntries: opts.fdbMax, maxPorts: opts.maxPorts, ageingTimeMs: opts.ageingTimeMs, onFlap: opts.onFlap });
  }

  /** Lowest free port id, or -1. */
  freePortId(): number {
    return this.ports.indexOf(null);
  }

  addPort(port: BridgePort): void {
    if (this.ports[port.id] !== null) throw new Error(`port id ${port.id} in use`);
    this.ports[port.id] = port;
    this.fdb.portMax[port.id] = port.fdbMax;
    this.flood = this.ports.filter((p): p is BridgePort => p !== null);
  }

  /** Unlinks a port: it receives nothing from now on and every FDB entry pointing at it goes. */
  removePort(port: BridgePort): void {
    if (this.ports[port.id] !== port) return;
    port.state = 'absent';
    this.fdb.removePort(port.id);
    this.ports[port.id] = null;
    this.flood = this.ports.filter((p): p is BridgePort => p !== null);
  }

  portByName(name: string): BridgePort | null {
    for (const p of this.flood) if (p.name === name) return p;
    return null;
  }

  get portList(): readonly BridgePort[] {
    return this.flood;
  }

  /** Sets the port's state; leaving `up` flushes its dynamic FDB entries. */
  setPortState(port: BridgePort, state: BridgePort['state']): void {
    if (port.state === state) return;
    const wasUp = port.state === 'up';
    port.state = state;
    if (wasUp) this.fdb.flushDynamic(port.id);
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
  private static shouldDeliver(ingress: BridgePort, egress: BridgePort, vid: number, floodClass: number): boolean {
    return egress !== ingress &&
      egress.state === 'up' && egress.io !== null &&
      egress.vlan.egress[vid] !== EGRESS_NOT_MEMBER &&
      !(ingress.isolated && egress.isolated) &&
      (floodClass !== FLOOD_FILTERED || egress.flood);
  }

  /**
   * Processes one rx batch of `ingress`: count frames described by desc (off, len, flags) in slab.
   * Queues the output on egress ports and flushes them before returning.
   */
  receive(ingress: BridgePort, slab: Uint8Array, desc: Int32Array, count: number): void {
    const hdr = this.hdr;
    const fdb = this.fdb;
    const now = this.nowMs;
    const flood = this.flood;
    const ingressId = ingress.id;
    if (ingress.state !== 'up') return;
    for (let i = 0; i < count; i++) {
      const off = desc[3 * i];
      const len = desc[3 * i + 1];
      ingress.rxPackets++;
      ingress.rxBytes += len;
      if (!parseEthernet(slab, off, len, hdr)) {
        ingress.dropRunt++;
        continue;
      }
      // port security (lock.ts): VIF locking, RA guard, DHCP guard; what the guest sends, before anything
      if (ingress.security !== null) {
        const reason = checkSecurity(ingress.security, slab, off, len, hdr);
        if (reason !== SEC_PASS) {
          ingress.securityDrops[reason]++;
          continue;
        }
      }
      if (hdr.srcGroup || (hdr.srcHi === 0 && hdr.srcLo === 0)) {
        ingress.dropBadSrc++;
        continue;
      }
      if (hdr.dstGroup && isLinkLocalHL(hdr.dstHi, hdr.dstLo)) {
        ingress.dropLinkLocal++;
        continue;
      }
      // VLAN ingress: only TPID 0x8100 is a tag here (0x88a8 is an ordinary ethertype: no QinQ).
      // VID 4095 (reserved) in the outer tag of any TPID is dropped on every port.
      if (hdr.tpid !== 0 && (hdr.tci & VLAN_VID_MASK) === VID_RESERVED) {
        ingress.dropVlanReserved++;
        continue;
      }
      const tci = hdr.tpid === ETH_P_8021Q ? hdr.tci : -1;
      const tagVid = tci > 0 ? tci & VLAN_VID_MASK : 0;
      const vlan = ingress.vlan;
      let vid: number;
      if (vlan.mode === MODE_ACCESS) {
        if (tagVid !== 0) {
          ingress.dropTaggedOnAccess++;
          continue;
        }
        vid = vlan.pvid;
      } else if (vlan.mode === MODE_TRUNK) {
        if (tagVid !== 0) {
          if (vlan.egress[tagVid] === EGRESS_NOT_MEMBER) {
            ingress.dropVlanNotMember++;
            continue;
          }
          vid = tagVid;
        } else {
          if (vlan.pvid === 0) {
            ingress.dropUntaggedNoNative++;
            continue;
          }
          vid = vlan.pvid;
        }
      } else {
        vid = tagVid;
      }
      // the double-tagging hop: a tag hidden behind the one that placed the frame in its VLAN would be
      // the outer tag wherever this VLAN leaves untagged (the uplink's native VLAN, an access port)
      if (vlan.mode !== MODE_DEFAULT && ingress.checkStacked && isStacked(hdr, tci)) {
        ingress.dropStackedTag++;
        continue;
      }
      if (ingress.learning) {
        fdb.learnHL(vid, hdr.srcHi, hdr.srcLo, ingressId, now);
        // ARP snooping on local ports: the bond announces these addresses after a failover
        if (hdr.etherType === ETH_P_ARP && ingress.snoopArp) this.snoopArp(slab, off + hdr.payloadOffset, len - hdr.payloadOffset, vid);
      }
      // payload length for the MTU check; GSO super-frames are exempt (segmented downstream)
      const payload = slab[off - VNET_HDR_LEN + VNET_GSO_TYPE] !== 0 ? 0 : len - ETH_HLEN - (hdr.tpid !== 0 ? VLAN_HLEN : 0);
      if (!hdr.dstGroup) {
        const out = fdb.lookupHL(vid, hdr.dstHi, hdr.dstLo);
        if (out >= 0) {
          const egress = this.ports[out];
          if (egress !== null && Bridge.shouldDeliver(ingress, egress, vid, FLOOD_NONE)) {
            this.counters.forwarded++;
            this.enqueue(egress, off, len, payload, vid, tci);
          }
          continue;
        }
        this.counters.flooded++;
        for (let p = 0; p < flood.length; p++) {
          const egress = flood[p];
          if (Bridge.shouldDeliver(ingress, egress, vid, FLOOD_FILTERED)) this.enqueue(egress, off, len, payload, vid, tci);
        }
        continue;
      }
      this.counters.floodedGroup++;
      const cls = hdr.dstIsBroadcast ? FLOOD_BROADCAST : FLOOD_FILTERED;
      for (let p = 0; p < flood.length; p++) {
        const egress = flood[p];
        if (Bridge.shouldDeliver(ingress, egress, vid, cls)) this.enqueue(egress, off, len, payload, vid, tci);
      }
    }
    this.flush();
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
   * Queues a frame of internal `vid` on `egress`; `tci` is the frame's 802.1Q TCI (-1 when it has no
   * C-tag) and decides, with the port's egress rule, the tag operation.
   */
  private enqueue(egress: BridgePort, off: number, len: number, payload: number, vid: number, tci: number): void {
    if (payload > egress.mtu) {
      egress.dropOversize++;
      return;
    }
    const rule = egress.vlan.egress[vid];
    let op = TX_OP_NONE;
    let arg = 0;
    if (rule === EGRESS_UNTAGGED) {
      if (tci >= 0) op = TX_OP_POP_TAG;
    } else if (rule !== EGRESS_AS_IS) {
      // EGRESS_TAGGED
      if (tci < 0) {
        op = TX_OP_PUSH_TAG;
        arg = (C_TAG | vid) >>> 0;
      } else if ((tci & VLAN_VID_MASK) !== vid) {
        op = TX_OP_SET_TAG;
        arg = (C_TAG | (tci & PCP_DEI_MASK) | vid) >>> 0;
      }
    }
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
    tx[w + 3] = arg;
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
    return this.fdb.sweep(nowMs, sweepBudget);
  }
}

