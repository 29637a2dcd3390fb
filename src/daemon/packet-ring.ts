// PACKET_MMAP rings of AF_PACKET ports (uplinks, bond members, attach ports): the daemon's side.
//
//   applyPacketMmap(cfg)  hands the `packet_mmap` config to the addon: sockets opened from then on get rings
//                         of that geometry (or none); a socket keeps the rings it was made with, and one
//                         handed over by another daemon is mapped with its own (src/native/port-ring.cc)
//   ringOf(handle)        what `show` reports for a port: its rings, or null (TAP, rings off, not open)
//
// Memory: each socket maps (rx + tx slots) * frame_bytes, rounded up to whole 64 KiB blocks; `show -j`
// gives each port's `packet_ring.mapped_bytes` and the bridge's sum in `packet_ring_bytes`.

import { DEFAULT_PACKET_MMAP, type PacketMmapConfig } from '../config/config.js';
import { packetRing } from '../io/native.js';
import type { PacketRingInfo } from '../io/native-types.js';
import { Bond } from './bond.js';
import { ManagedPort, type PortHandle } from './ports.js';

export function applyPacketMmap(cfg: PacketMmapConfig | undefined): void {
  const c = cfg ?? DEFAULT_PACKET_MMAP;
  packetRing.set({ enabled: c.enabled, rx_frames: c.rxFrames, tx_frames: c.txFrames, frame_bytes: c.frameBytes, qdisc_bypass: c.qdiscBypass });
}

/** One port's rings: a netdev port's, or a bond's members' by member name. */
export function ringOf(handle: PortHandle): PacketRingInfo | Record<string, PacketRingInfo | null> | null {
  if (handle instanceof Bond) {
    const out: Record<string, PacketRingInfo | null> = {};
    for (const m of handle.members) out[m.name] = m.io?.ringInfo() ?? null;
    return out;
  }
  if (handle instanceof ManagedPort) return handle.io?.ringInfo() ?? null;
  return null;
}

/** Bytes mapped for rings by these ports. */
export function ringBytes(handles: Iterable<PortHandle>): number {
  let sum = 0;
  for (const h of handles) {
    const r = ringOf(h);
    if (r === null) continue;
    if ('mapped_bytes' in r && typeof r.mapped_bytes === 'number') sum += r.mapped_bytes;
    else for (const v of Object.values(r as Record<string, PacketRingInfo | null>)) sum += v?.mapped_bytes ?? 0;
  }
  return sum;
}
