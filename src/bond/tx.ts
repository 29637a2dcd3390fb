// The transmit side of a bond that uses several members (balance-slb, 802.3ad): a PortIo the engine queues
// on like any port's, whose send() splits the batch over the members.
//
//   engine --queue()--> BondTxIo.tx (off, len, op, arg per frame)
//          --send(n)--> for each entry: choose(slab, off, len, op, arg) -> member index or -1
//                       -> copied into that member's registered tx queue (its PacketPort.tx)
//                       -> one send() per member that got frames (and whenever a member's queue fills)
//
// Entries keep their op and arg, so tag operations happen on the member exactly as they would on a single
// uplink. A frame with no member to carry it (choose() -1, or the member's socket is gone) is dropped and
// counted in `noMember`. Nothing is allocated per frame or per batch.

import type { PortIo } from '../bridge/port.js';
import { PortCounter } from '../io/native-types.js';

export type ChooseMember = (slab: Uint8Array, off: number, len: number, op: number, arg: number) => number;

/** Default tx queue length: the engine flushes earlier when it fills. */
const TX_ENTRIES = 256;

export class BondTxIo implements PortIo {
  readonly tx = new Uint32Array(4 * TX_ENTRIES);
  /** The engine's view of addon counters: zero here, the members' own counters are summed by BondPort. */
  readonly counters = new Float64Array(PortCounter.Count);
  /** member sockets by member index (null while a member has none) */
  readonly members: (PortIo | null)[];
  /** frames the kernel accepted per member */
  readonly txPackets: Float64Array;
  /** frames dropped for want of a member */
  noMember = 0;
  private readonly queued: Int32Array;
  private readonly choose: ChooseMember;
  private slab: Uint8Array | null;

  constructor(memberCount: number, choose: ChooseMember, slab: Uint8Array | null = null) {
    this.members = new Array<PortIo | null>(memberCount).fill(null);
    this.txPackets = new Float64Array(memberCount);
    this.queued = new Int32Array(memberCount);
    this.choose = choose;
    this.slab = slab;
  }

  /** The receive slab the tx entries point into (set once the addon is loaded). */
  setSlab(slab: Uint8Array): void {
    this.slab = slab;
  }

  private flushMember(m: number): number {
    const n = this.queued[m];
    if (n === 0) return 0;
    this.queued[m] = 0;
    const io = this.members[m];
    if (io === null) return 0;
    const ok = io.send(n);
    this.txPackets[m] += ok;
    return ok;
  }

  send(count: number): number {
    const slab = this.slab;
    if (slab === null) {
      this.noMember += count;
      return 0;
    }
    const tx = this.tx;
    let accepted = 0;
    for (let i = 0; i < count; i++) {
      const w = 4 * i;
      const m = this.choose(slab, tx[w], tx[w + 1], tx[w + 2], tx[w + 3]);
      const io = m >= 0 ? this.members[m] : null;
      if (io === null) {
        this.noMember++;
        continue;
      }
      let n = this.queued[m];
      if (4 * n >= io.tx.length) {
        accepted += this.flushMember(m);
        n = 0;
      }
      const d = 4 * n;
      io.tx[d] = tx[w];
      io.tx[d + 1] = tx[w + 1];
      io.tx[d + 2] = tx[w + 2];
      io.tx[d + 3] = tx[w + 3];
      this.queued[m] = n + 1;
    }
    for (let m = 0; m < this.queued.length; m++) accepted += this.flushMember(m);
    return accepted;
  }
}
