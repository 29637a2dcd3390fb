// Announcements after a change of active member: one RARP per (MAC, VLAN) behind a local port, so the
// upstream switch learns at once where the VMs' MACs now live (Open vSwitch does the same; the Linux
// bond under a bridge does not, and guests stay unreachable until they transmit).
//
// RARP (RFC 903, as OVS's compose_rarp): broadcast, ethertype 0x8035, op 3 (reverse request),
// sender and target hardware address = the MAC, protocol addresses 0. Padded to 60 bytes. Tagged as the
// uplink's VLAN rules say for the entry's VLAN (untagged for the native VLAN / a default port's VLAN 0).
//
// Beyond that, a gratuitous ARP (request, sender = target = the address) for every IPv4 address a local
// MAC was seen using in its own ARPs (ARP snooping in the engine), so peers' ARP caches follow too.
//
// Frames are composed in the receive slab, which is free between rx batches (this runs from a timer or
// a control event, never inside a batch), each behind a zeroed virtio_net_hdr, and sent with the
// member's send(): one native call per 64 frames.

import { writeMac } from '../frame/mac.js';
import { ETH_P_8021Q, ETH_P_ARP, ETH_P_RARP } from '../frame/ethernet.js';
import { TX_OP_NONE, VNET_HDR_LEN } from '../io/native-types.js';
import type { PortIo } from '../bridge/port.js';
import { EGRESS_AS_IS, EGRESS_UNTAGGED, type PortVlan } from '../bridge/vlan.js';

export const RARP_FRAME_LEN = 60;
const SLOT = 96; // vnet header + tagged frame, 16-aligned

/** Writes the RARP for `mac` (tagged with `vid` when vid > 0) at slab[off]; returns its length. */
export function composeRarp(slab: Uint8Array, off: number, mac: number, vid: number): number {
  slab.fill(0, off, off + RARP_FRAME_LEN + 4);
  slab.fill(0xff, off, off + 6);
  writeMac(slab, off + 6, mac);
  let p = off + 12;
  if (vid > 0) {
    slab[p] = ETH_P_8021Q >> 8;
    slab[p + 1] = ETH_P_8021Q & 0xff;
    slab[p + 2] = (vid >> 8) & 0x0f;
    slab[p + 3] = vid & 0xff;
    p += 4;
  }
  slab[p] = ETH_P_RARP >> 8;
  slab[p + 1] = ETH_P_RARP & 0xff;
  p += 2;
  // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, op 3
  slab[p + 1] = 1;
  slab[p + 2] = 0x08;
  slab[p + 4] = 6;
  slab[p + 5] = 4;
  slab[p + 7] = 3;
  writeMac(slab, p + 8, mac); // sha; spa 0
  writeMac(slab, p + 18, mac); // tha; tpa 0
  return vid > 0 ? RARP_FRAME_LEN + 4 : RARP_FRAME_LEN;
}

/** Writes a gratuitous ARP request (sender = target = ip) for mac at slab[off]; returns its length. */
export function composeGratuitousArp(slab: Uint8Array, off: number, mac: number, vid: number, ip: number): number {
  const len = composeRarp(slab, off, mac, vid);
  const p = off + (vid > 0 ? 16 : 12);
  slab[p] = ETH_P_ARP >> 8;
  slab[p + 1] = ETH_P_ARP & 0xff;
  const a = p + 2;
  slab[a + 7] = 1; // op 1: request
  for (const q of [a + 14, a + 24]) {
    slab[q] = ip >>> 24;
    slab[q + 1] = (ip >>> 16) & 0xff;
    slab[q + 2] = (ip >>> 8) & 0xff;
    slab[q + 3] = ip & 0xff;
  }
  slab.fill(0, a + 18, a + 24); // tha 0
  return len;
}

/**
 * Sends one frame per (mac, vid[, ip]) on `io`, tagged per `vlan` (the uplink's rules): a gratuitous ARP
 * where ips[i] is non-zero, else a RARP. Pairs whose VLAN the uplink does not carry are skipped.
 * Returns the number of frames the kernel accepted.
 */
export function sendRarps(io: PortIo, slab: Uint8Array, vlan: PortVlan, macs: readonly number[], vids: readonly number[], ips?: readonly number[]): number {
  const capacity = io.tx.length / 4;
  let queued = 0;
  let accepted = 0;
  for (let i = 0; i < macs.length; i++) {
    // a VID outside 0..4094 (4095 is reserved) is never announced: isMember() range-checks before indexing
    if (!vlan.isMember(vids[i])) continue;
    const rule = vlan.egress[vids[i]];
    const tagVid = rule === EGRESS_UNTAGGED || rule === EGRESS_AS_IS ? 0 : vids[i];
    const base = queued * SLOT;
    slab.fill(0, base, base + VNET_HDR_LEN);
    const off = base + VNET_HDR_LEN;
    const ip = ips?.[i] ?? 0;
    const len = ip !== 0 ? composeGratuitousArp(slab, off, macs[i], tagVid, ip) : composeRarp(slab, off, macs[i], tagVid);
    const w = 4 * queued;
    io.tx[w] = off;
    io.tx[w + 1] = len;
    io.tx[w + 2] = TX_OP_NONE;
    io.tx[w + 3] = 0;
    queued++;
    if (queued === capacity) {
      accepted += io.send(queued);
      queued = 0;
    }
  }
  if (queued > 0) accepted += io.send(queued);
  return accepted;
}
