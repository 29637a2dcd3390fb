// Receive rules of balance-slb and 802.3ad members (src/bond/receive.ts) on hand-built rx batches.
import { describe, expect, it } from 'vitest';
import { lacpAdmit, slbAdmit } from '../../src/bond/receive.js';
import { emptyInfo, encodeLacpdu, type Lacpdu } from '../../src/frame/lacp.js';

const BOND = 7;
const LOCAL = 2;

/** A batch of frames (dst last byte or 0xff broadcast, src last byte, optional VLAN) laid out 200 bytes apart. */
function batch(frames: { dst: number; src: number; vid?: number }[]): { slab: Uint8Array; desc: Int32Array } {
  const slab = new Uint8Array(200 * (frames.length + 1));
  const desc = new Int32Array(3 * frames.length);
  frames.forEach((f, i) => {
    const off = 200 * i + 10;
    if (f.dst === 0xff) slab.fill(0xff, off, off + 6);
    else slab.set([0x02, 0, 0, 0, 0, f.dst], off);
    slab.set([0x02, 0, 0, 0, 0, f.src], off + 6);
    if (f.vid !== undefined) slab.set([0x81, 0x00, f.vid >> 8, f.vid & 0xff, 0x08, 0x00], off + 12);
    else slab.set([0x08, 0x00], off + 12);
    desc[3 * i] = off;
    desc[3 * i + 1] = 60;
    desc[3 * i + 2] = i; // flags stand in as an id: they must travel with their frame
  });
  return { slab, desc };
}

/** FDB: MAC ...:05 is behind a local port in VLAN 0 and 10; ...:06 behind the bond. */
const fdb = {
  lookupHL: (vid: number, hi: number, lo: number): number => (hi !== 0x0200 || (vid !== 0 && vid !== 10) ? -1 : lo === 5 ? LOCAL : lo === 6 ? BOND : -1),
};

const counters = () => ({ dropBackupMember: 0, dropLoopedBack: 0, dropLinkLocal: 0 });

describe('balance-slb receive rules', () => {
  it('a member that does not take floods drops broadcast/multicast; frames from our own MACs are dropped on every member', () => {
    const frames = [
      { dst: 0xff, src: 9 }, // upstream broadcast
      { dst: 1, src: 9 }, // unicast from upstream
      { dst: 1, src: 5 }, // our own MAC, come back
      { dst: 1, src: 5, vid: 10 }, // the same in VLAN 10
      { dst: 1, src: 5, vid: 20 }, // not ours in VLAN 20
      { dst: 1, src: 6 }, // learned behind the bond itself: fine
    ];
    const a = batch(frames);
    const ca = counters();
    expect(slbAdmit(true, fdb, BOND, 0, a.slab, a.desc, frames.length, ca)).toBe(4);
    expect([...a.desc.subarray(0, 12)].filter((_x, i) => i % 3 === 2)).toEqual([0, 1, 4, 5]);
    expect(ca).toEqual({ dropBackupMember: 0, dropLoopedBack: 2, dropLinkLocal: 0 });
    const b = batch(frames);
    const cb = counters();
    expect(slbAdmit(false, fdb, BOND, 0, b.slab, b.desc, frames.length, cb)).toBe(3);
    expect([b.desc[2], b.desc[5], b.desc[8]]).toEqual([1, 4, 5]);
    expect(cb).toEqual({ dropBackupMember: 1, dropLoopedBack: 2, dropLinkLocal: 0 });
  });

  it('untagged frames are looked up in the bond\'s pvid', () => {
    const a = batch([{ dst: 1, src: 5 }]);
    expect(slbAdmit(true, fdb, BOND, 20, a.slab, a.desc, 1, counters())).toBe(1); // pvid 20: not ours there
    const b = batch([{ dst: 1, src: 5 }]);
    expect(slbAdmit(true, fdb, BOND, 10, b.slab, b.desc, 1, counters())).toBe(0);
  });
});

describe('802.3ad receive rules', () => {
  function withSlow(subtype: number, collecting: boolean): { kept: number; got: { pdu: boolean; rxErrors: number }; c: ReturnType<typeof counters>; pdu: Lacpdu; desc: Int32Array } {
    const a = batch([{ dst: 1, src: 9 }, { dst: 1, src: 9 }, { dst: 1, src: 9 }]);
    const off = a.desc[3];
    encodeLacpdu(a.slab, off, 0x020000000009, { version: 1, actor: { ...emptyInfo(), system: 0x02000000000b, key: 3 }, partner: emptyInfo(), collectorMaxDelay: 0 });
    a.desc[4] = 124;
    a.slab[off + 14] = subtype;
    const pdu: Lacpdu = { version: 0, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 };
    const got = { pdu: false, rxErrors: 0 };
    const c = counters();
    const kept = lacpAdmit(collecting, a.slab, a.desc, 3, pdu, got, c);
    return { kept, got, c, pdu, desc: a.desc };
  }

  it('a LACPDU is decoded and kept out of the bridge; data passes on a collecting member only', () => {
    const r = withSlow(1, true);
    expect(r.kept).toBe(2);
    expect([r.desc[2], r.desc[5]]).toEqual([0, 2]);
    expect(r.got).toEqual({ pdu: true, rxErrors: 0 });
    expect(r.pdu.actor).toMatchObject({ system: 0x02000000000b, key: 3 });
    const n = withSlow(1, false);
    expect(n.kept).toBe(0);
    expect(n.c.dropBackupMember).toBe(2);
    expect(n.got.pdu).toBe(true); // LACP runs on a member that is not collecting yet
  });

  it('a marker (subtype 2) is counted as link_local; a LACPDU that does not decode as an rx error', () => {
    const m = withSlow(2, true);
    expect([m.kept, m.c.dropLinkLocal, m.got.pdu]).toEqual([2, 1, false]);
    const a = batch([{ dst: 1, src: 9 }]);
    encodeLacpdu(a.slab, a.desc[0], 1, { version: 1, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 });
    a.desc[1] = 40; // cut inside the partner TLV
    const got = { pdu: false, rxErrors: 0 };
    expect(lacpAdmit(true, a.slab, a.desc, 1, { version: 0, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 }, got, counters())).toBe(0);
    expect(got).toEqual({ pdu: false, rxErrors: 1 });
  });
});
