// The MDB on a data plane on threads (native-notes/multicore.md, "The MDB"): the main thread is its one writer; each
// worker forwards with a replica of it, replaced whole under the epoch sync; the control frames a worker reads reach
// the writer through the worker's punt ring (punt-ring.ts).
//
// Model
//   publish   per (worker, bridge): when the bridge's Mdb.version moved, its McastSnooping was replaced or turned off,
//             or the bridge's port table goes to the worker in the same sync, the sync message carries the settings
//             and Mdb.exportState(); the worker applies it after the tables (worker.ts) with Mdb.importState(), between
//             two of its batches, and acknowledges. So a reader never sees a half-made change: it forwards with the
//             MDB of one epoch or of the next, each a whole copy of the writer's at one instant.
//   timers    travel with the copy and are read against the shared clock, so an expiry is in force on every thread
//             at the same tick, before the writer's sweep removes the entry (whose removal is then published).
//   punts     a worker hands queries, reports, leaves, PIM hellos and MRD advertisements to its punt ring and forwards
//             them itself; the main thread drains the ring (on the worker's signal, at every sync and tick) and runs
//             each frame through its own McastSnooping.select() for learning only, while the port under that id is
//             still the one the frame was read on (PortSnap.portKey), up, and a member of the frame's VLAN. A
//             drain that changed the MDB publishes it at once, at most once per MDB_PUBLISH_INTERVAL_MS; changes
//             learned from the main thread's own ports go out with the next tick's sync.
//
// Cost: a publication is a copy of the MDB's pools (about 240 bytes per group of multicast_max_groups, ~1 MB at
// the default 4096) per worker, cloned by postMessage and copied into the replica by importState(); nothing per frame.

import { EthernetHeader } from '../frame/ethernet.js';
import type { Bridge } from '../bridge/bridge.js';
import type { BridgePort } from '../bridge/port.js';
import type { McastSnooping } from '../bridge/mcast.js';
import type { McastPublish } from './protocol.js';
import type { PuntRing, PuntSink } from './punt-ring.js';

/** A drain that changed the MDB publishes it to the workers at most this often (the tick publishes the rest). */
export const MDB_PUBLISH_INTERVAL_MS = 10;

/** What was last published to one (worker, bridge). */
export class MdbPublished {
  /** undefined: nothing yet (or to be sent again whole) */
  private mc: McastSnooping | null | undefined = undefined;
  private version = -1;
  private settings: McastSnooping['settings'] | null = null;

  /**
   * Whether the worker's copy is behind `mc` (the bridge's now; null: snooping off): another instance, other settings
   * (a reload applied in place), a change of the MDB, or a port table sent now (the worker's engine changes its copy
   * when ports change: the writer's state must follow in the same message).
   */
  behind(mc: McastSnooping | null, tableSent: boolean): boolean {
    if (mc !== this.mc) return true;
    return mc !== null && (tableSent || mc.mdb.version !== this.version || mc.settings !== this.settings);
  }

  /** The message part for `mc` (null: snooping off), recorded as sent. */
  publish(mc: McastSnooping | null, key: number): McastPublish | null {
    this.mc = mc;
    if (mc === null) return null;
    this.version = mc.mdb.version;
    this.settings = mc.settings;
    return { key, settings: mc.settings, maxPorts: mc.mdb.maxPorts, mdb: mc.mdb.exportState() };
  }

  /** The worker gets the whole MDB again at the next sync. */
  reset(): void {
    this.mc = undefined;
  }
}

/** The main thread's side of the punt rings: runs the frames through the MDB's writer. */
export class PuntConsumer implements PuntSink {
  private readonly hdr = new EthernetHeader();
  private bridge: Bridge | null = null;
  private mc: McastSnooping | null = null;
  private nowMs = 0;
  private keyOf: (p: BridgePort) => number | undefined = () => undefined;
  /** frames learned from, and refused (their port is gone, replaced, down or not in the VLAN) */
  learned = 0;
  refused = 0;

  /**
   * Drains `ring` into `bridge`'s MDB (nothing when it has no snooping). `keyOf` gives a port's key
   * (PortSnap.portKey). Returns whether the MDB changed.
   */
  drain(ring: PuntRing, bridge: Bridge, keyOf: (p: BridgePort) => number | undefined, nowMs: number): boolean {
    if (ring.pending === 0) return false;
    const mc = bridge.mcast;
    const before = mc === null ? 0 : mc.mdb.version;
    this.bridge = bridge;
    this.mc = mc;
    this.keyOf = keyOf;
    this.nowMs = nowMs;
    try {
      ring.drain(this);
    } finally {
      this.bridge = null;
      this.mc = null;
    }
    return mc !== null && mc.mdb.version !== before;
  }

  frame(portId: number, portKey: number, vid: number, slab: Uint8Array, off: number, len: number, etherType: number, dstHi: number,
    dstLo: number, payloadOffset: number): void {
    const br = this.bridge!;
    const mc = this.mc;
    if (mc === null) return;
    const p = portId >= 0 && portId < br.ports.length ? br.ports[portId] : null;
    if (p === null || p === undefined || this.keyOf(p) !== portKey || p.state !== 'up' || vid < 0 || vid > 4094 || !p.vlan.isMember(vid)) {
      this.refused++;
      return;
    }
    const hdr = this.hdr;
    hdr.etherType = etherType;
    hdr.dstHi = dstHi;
    hdr.dstLo = dstLo;
    hdr.dstGroup = true;
    hdr.payloadOffset = payloadOffset;
    // learning only: the worker forwarded the frame already
    mc.select(br.ports, br.portList, p, vid, slab, off, len, hdr, this.nowMs, true);
    this.learned++;
  }
}
