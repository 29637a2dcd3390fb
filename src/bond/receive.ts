// Receive rules of the bond modes that use every member, applied to one member's rx batch before the bridge sees it.
// Each compacts the batch's descriptors (off, len, flags per frame, as the addon wrote them) in place and returns
// how many frames it kept; the caller hands those to the bridge as the bond's. No allocation per frame.
//
//   slbAdmit   balance-slb: broadcast/multicast only on the policy's active member (else `backup_member`), and a
//              frame whose source MAC the FDB has behind another port of this bridge (one of ours, come back
//              through the switch) is dropped on every member (`looped_back`). The FDB is looked up with the
//              frame's VID: its 802.1Q/802.1ad tag, else the bond's pvid.
//   lacpAdmit  802.3ad: Slow Protocols frames (01:80:c2:00:00:02, 0x8809) never reach the bridge: a LACPDU is
//              decoded into `pdu` (range-checked; `rxErrors` counts what does not decode), other subtypes are
//              counted as `link_local`; data frames are kept only when the member is collecting.

import { decodeLacpdu, LACP_SUBTYPE, type Lacpdu } from '../frame/lacp.js';

export interface BondRxCounters {
  dropBackupMember: number;
  dropLoopedBack: number;
  dropLinkLocal: number;
}

/** The FDB lookup slbAdmit needs (Fdb.lookupHL). */
export interface PortLookup {
  lookupHL(vid: number, macHi16: number, macLo32: number): number;
}

function keep(desc: Int32Array, k: number, i: number): void {
  if (k === i) return;
  desc[3 * k] = desc[3 * i];
  desc[3 * k + 1] = desc[3 * i + 1];
  desc[3 * k + 2] = desc[3 * i + 2];
}

/** balance-slb receive rules for a batch of the member that `acceptsFlood` says takes floods or not. */
export function slbAdmit(
  acceptsFlood: boolean, fdb: PortLookup, bondPortId: number, pvid: number,
  slab: Uint8Array, desc: Int32Array, count: number, c: BondRxCounters,
): number {
  let k = 0;
  for (let i = 0; i < count; i++) {
    const off = desc[3 * i];
    const len = desc[3 * i + 1];
    if (len >= 14) {
      if ((slab[off] & 1) !== 0 && !acceptsFlood) {
        c.dropBackupMember++;
        continue;
      }
      const t = (slab[off + 12] << 8) | slab[off + 13];
      const vid = len >= 18 && (t === 0x8100 || t === 0x88a8) ? ((slab[off + 14] << 8) | slab[off + 15]) & 0xfff : pvid;
      const hi = (slab[off + 6] << 8) | slab[off + 7];
      const lo = (slab[off + 8] << 24) | (slab[off + 9] << 16) | (slab[off + 10] << 8) | slab[off + 11];
      const at = fdb.lookupHL(vid, hi, lo);
      if (at >= 0 && at !== bondPortId) {
        c.dropLoopedBack++;
        continue;
      }
    }
    keep(desc, k++, i);
  }
  return k;
}

/**
 * 802.3ad receive rules. Returns the frames kept; when the batch held a LACPDU that decoded, the last one is in `pdu`
 * and `got.pdu` is true (the caller hands it to the LACP machines after the batch: answering writes the slab).
 */
export function lacpAdmit(
  collecting: boolean, slab: Uint8Array, desc: Int32Array, count: number, pdu: Lacpdu, got: { pdu: boolean; rxErrors: number },
  c: BondRxCounters,
): number {
  let k = 0;
  for (let i = 0; i < count; i++) {
    const off = desc[3 * i];
    const len = desc[3 * i + 1];
    if (len >= 15 && slab[off] === 0x01 && slab[off + 1] === 0x80 && slab[off + 2] === 0xc2 && slab[off + 3] === 0
      && slab[off + 4] === 0 && slab[off + 5] === 0x02 && slab[off + 12] === 0x88 && slab[off + 13] === 0x09) {
      if (slab[off + 14] === LACP_SUBTYPE) {
        if (decodeLacpdu(slab, off, len, pdu) === null) got.pdu = true;
        else got.rxErrors++;
      } else {
        c.dropLinkLocal++;
      }
      continue;
    }
    if (!collecting) {
      c.dropBackupMember++;
      continue;
    }
    keep(desc, k++, i);
  }
  return k;
}
