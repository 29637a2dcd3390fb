// balance-slb policy (src/bond/slb.ts), transmit hashes (src/bond/hash.ts) and the bond's batch splitter
// (src/bond/tx.ts), without I/O.
import { describe, expect, it } from 'vitest';
import { l2Hash, l34Hash, macVidHash, slbKey, txVid } from '../../src/bond/hash.js';
import { BUCKETS, SlbPolicy } from '../../src/bond/slb.js';
import { BondTxIo } from '../../src/bond/tx.js';
import { LinkDelay } from '../../src/bond/link-delay.js';
import type { PortIo } from '../../src/bridge/port.js';
import { TX_OP_NONE, TX_OP_PUSH_TAG } from '../../src/io/native-types.js';

/** A frame from `src` (last byte) to a fixed dst, optionally IPv4/TCP with the given source port. */
function frame(buf: Uint8Array, off: number, srcLast: number, tcpSrc = -1, len = 60): number {
  buf.fill(0, off, off + len);
  buf.set([0x02, 0, 0, 0, 0, 0x99], off);
  buf.set([0x02, 0, 0, 0, 1, srcLast], off + 6);
  if (tcpSrc >= 0) {
    buf.set([0x08, 0x00], off + 12);
    buf[off + 14] = 0x45;
    buf[off + 23] = 6;
    buf.set([198, 18, 0, srcLast, 198, 18, 1, 1], off + 26);
    buf[off + 34] = tcpSrc >> 8;
    buf[off + 35] = tcpSrc & 0xff;
    buf[off + 37] = 80;
  }
  return len;
}

describe('balance-slb policy', () => {
  it('spreads several source MACs over both members and keeps each MAC on one member', () => {
    const slb = new SlbPolicy(2);
    slb.setEnabled(0, true);
    slb.setEnabled(1, true);
    const used = new Set<number>();
    for (let mac = 0; mac < 16; mac++) {
      const h = macVidHash(0x0200, 0x0001_0000 + mac, 0);
      const m = slb.choose(h, 1000);
      used.add(m);
      expect(slb.choose(h, 1000)).toBe(m);
    }
    expect([...used].sort()).toEqual([0, 1]);
  });

  it('failover moves every bucket of the failed member at once and returns them; broadcast moves to the survivor', () => {
    const slb = new SlbPolicy(3);
    for (let m = 0; m < 3; m++) slb.setEnabled(m, true);
    for (let b = 0; b < BUCKETS; b++) slb.choose(b, 100);
    expect(slb.active).toBe(0);
    const on0 = [...slb.bucketMember].filter((m) => m === 0).length;
    expect(on0).toBeGreaterThan(0);
    const moved = slb.setEnabled(0, false);
    expect(moved.length).toBe(on0);
    expect([...slb.bucketMember].includes(0)).toBe(false);
    expect(slb.active).toBe(1);
    expect(slb.acceptsFlood(1)).toBe(true);
    expect(slb.acceptsFlood(2)).toBe(false);
    expect(slb.failoverMoves).toBe(on0);
  });

  it('rebalance moves load from the busier member and returns the moved bucket; a balanced bond moves nothing', () => {
    const slb = new SlbPolicy(2);
    slb.setEnabled(0, true);
    // every bucket lands on member 0 while it is the only member
    slb.choose(1, 5000);
    slb.choose(2, 3000);
    slb.choose(3, 100);
    slb.setEnabled(1, true);
    expect(slb.loads()).toEqual([8100, 0]);
    const moved = slb.rebalance();
    // the heaviest bucket lighter than the difference: 8100/0 -> 3100/5000, then nothing on member 1 is lighter than 1900
    expect(moved).toEqual([1]);
    expect(slb.bucketMember[1]).toBe(1);
    expect(slb.loads()).toEqual([1550, 2500]); // halved after the round
    expect(slb.rebalanceMoves).toBe(1);
    // 1000 vs 1050: within 10%, nothing moves
    const slb2 = new SlbPolicy(2);
    slb2.setEnabled(0, true);
    slb2.setEnabled(1, true);
    slb2.bucketMember[1] = 0;
    slb2.bucketMember[2] = 1;
    slb2.choose(1, 1000);
    slb2.choose(2, 1050);
    expect(slb2.rebalance()).toEqual([]);
  });

  it('snapshot and restore keep assignments (takeover: no MAC moves)', () => {
    const a = new SlbPolicy(2);
    a.setEnabled(0, true);
    a.setEnabled(1, true);
    for (let b = 0; b < 40; b++) a.choose(b * 7, 10 * b);
    a.rebalance();
    const b = new SlbPolicy(2);
    b.restore(a.snapshot());
    b.setEnabled(0, true);
    b.setEnabled(1, true);
    for (let k = 0; k < 40; k++) expect(b.memberOf(k * 7)).toBe(a.memberOf(k * 7));
  });
});

describe('transmit hashes', () => {
  it('slbKey reads the source MAC and the VLAN the frame leaves with', () => {
    const buf = new Uint8Array(256);
    frame(buf, 0, 5);
    frame(buf, 100, 5);
    buf[100 + 5] = 0x77; // another destination: same key
    expect(slbKey(buf, 0, 60, TX_OP_NONE, 0)).toBe(slbKey(buf, 100, 60, TX_OP_NONE, 0));
    expect(txVid(buf, 0, 60, TX_OP_PUSH_TAG, 0x8100_000a)).toBe(10);
    expect(slbKey(buf, 0, 60, TX_OP_PUSH_TAG, 0x8100_000a)).not.toBe(slbKey(buf, 0, 60, TX_OP_NONE, 0));
    expect(slbKey(buf, 0, 60, TX_OP_NONE, 0)).toBe(macVidHash(0x0200, 0x0000_0105, 0));
  });

  it('layer3+4 separates TCP flows of one MAC pair, keeps a flow (a GSO super-frame too) on one hash, and stays in bounds', () => {
    const buf = new Uint8Array(70_000);
    frame(buf, 0, 5, 1000);
    frame(buf, 100, 5, 1001);
    frame(buf, 200, 5, 1000, 65_000); // same flow, GSO-sized
    expect(l2Hash(buf, 0, 60, TX_OP_NONE, 0)).toBe(l2Hash(buf, 100, 60, TX_OP_NONE, 0));
    expect(l34Hash(buf, 0, 60, TX_OP_NONE, 0)).not.toBe(l34Hash(buf, 100, 60, TX_OP_NONE, 0));
    expect(l34Hash(buf, 200, 65_000, TX_OP_NONE, 0)).toBe(l34Hash(buf, 0, 60, TX_OP_NONE, 0));
    // cut before the ports: L3 part only, no read past len
    const short = l34Hash(buf, 0, 36, TX_OP_NONE, 0);
    expect(short).toBe(l34Hash(buf, 100, 36, TX_OP_NONE, 0));
    expect(() => l34Hash(buf, 0, 14, TX_OP_NONE, 0)).not.toThrow();
  });
});

class FakeIo implements PortIo {
  readonly tx = new Uint32Array(4 * 4);
  readonly counters = new Float64Array(32);
  readonly sent: number[] = [];
  send(count: number): number {
    for (let i = 0; i < count; i++) this.sent.push(this.tx[4 * i]);
    return count;
  }
}

describe('BondTxIo', () => {
  it('splits a batch by the chosen member, flushes a full member queue, counts frames with no member', () => {
    const slab = new Uint8Array(4096);
    const a = new FakeIo();
    const b = new FakeIo();
    const io = new BondTxIo(3, (_s, off) => (off / 100) % 3, slab);
    io.members[0] = a;
    io.members[1] = b;
    for (let i = 0; i < 12; i++) {
      io.tx[4 * i] = i * 100;
      io.tx[4 * i + 1] = 60;
    }
    expect(io.send(12)).toBe(8);
    expect(a.sent).toEqual([0, 300, 600, 900]);
    expect(b.sent).toEqual([100, 400, 700, 1000]);
    expect(io.noMember).toBe(4); // member 2 has no socket
    expect([...io.txPackets]).toEqual([4, 4, 0]);
    // more frames for one member than its queue holds: sent in two calls, none lost
    for (let i = 0; i < 10; i++) io.tx[4 * i] = i * 300;
    expect(io.send(10)).toBe(10);
    expect(a.sent.length).toBe(4 + 10);
  });
});

describe('LinkDelay (updelay / downdelay of balance-slb and 802.3ad members)', () => {
  /** A clock whose timers fire when the test advances it. */
  function fakeClock() {
    let now = 0;
    let timers: { at: number; fn: () => void; id: number }[] = [];
    let next = 1;
    return {
      clock: {
        now: () => now,
        setTimer: (fn: () => void, ms: number) => { const id = next++; timers.push({ at: now + ms, fn, id }); return id; },
        clearTimer: (h: unknown) => { timers = timers.filter((t) => t.id !== h); },
      },
      advance(ms: number): void {
        now += ms;
        for (const t of timers.filter((x) => x.at <= now)) { timers = timers.filter((x) => x !== t); t.fn(); }
      },
    };
  }

  it('uses a member after updelay, keeps it through a flap shorter than downdelay, drops a vanished one at once', () => {
    const c = fakeClock();
    const events: string[] = [];
    const d = new LinkDelay(2, 300, 200, c.clock, (i, up, source) => events.push(`${i} ${up ? 'up' : 'down'} ${source}`));
    d.carrier(0, true, 'rtnetlink');
    expect(d.pending(0)).toBe('going up');
    c.advance(299);
    expect(events).toEqual([]);
    c.advance(1);
    expect(events).toEqual(['0 up rtnetlink (after updelay)']);
    d.carrier(0, false, 'rtnetlink');
    c.advance(150);
    d.carrier(0, true, 'rtnetlink'); // back within downdelay: never down
    c.advance(500);
    expect(events.length).toBe(1);
    d.carrier(0, false, 'miimon');
    c.advance(200);
    expect(events[1]).toBe('0 down miimon (after downdelay)');
    d.carrier(1, true, 'rtnetlink', true); // --takeover: at once
    expect(events[2]).toBe('1 up rtnetlink');
    d.vanished(1, 'netdev deleted');
    expect(events[3]).toBe('1 down netdev deleted');
  });
});
