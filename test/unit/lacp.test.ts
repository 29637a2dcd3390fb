// LACPDU codec (src/frame/lacp.ts) and the 802.1AX machines (src/bond/lacp.ts): two policies wired back to back
// through the codec, time driven by hand.
import { describe, expect, it } from 'vitest';
import { AGGREGATE_WAIT_MS, LacpPolicy, SHORT_TIMEOUT_MS, TICK_MS } from '../../src/bond/lacp.js';
import {
  decodeLacpdu, emptyInfo, encodeLacpdu, LACP_ACTIVITY, LACP_COLLECTING, LACP_DISTRIBUTING, LACP_SYNC, LACP_TIMEOUT, LACPDU_LEN,
  LACPDU_MIN_LEN, type Lacpdu, stateString,
} from '../../src/frame/lacp.js';

const blank = (): Lacpdu => ({ version: 0, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 });

describe('LACPDU codec', () => {
  it('round-trips every field and writes the slow protocols header', () => {
    const buf = new Uint8Array(200);
    const pdu: Lacpdu = {
      version: 1,
      actor: { systemPriority: 100, system: 0x020000000001, key: 7, portPriority: 255, port: 2, state: 0x3d },
      partner: { systemPriority: 65535, system: 0xaabbccddeeff, key: 0x1234, portPriority: 1, port: 9, state: 0x0f },
      collectorMaxDelay: 5,
    };
    expect(encodeLacpdu(buf, 10, 0x02000000aa01, pdu)).toBe(LACPDU_LEN);
    expect([...buf.subarray(10, 16)]).toEqual([0x01, 0x80, 0xc2, 0, 0, 0x02]);
    expect([...buf.subarray(22, 26)]).toEqual([0x88, 0x09, 1, 1]);
    const out = blank();
    expect(decodeLacpdu(buf, 10, LACPDU_LEN, out)).toBeNull();
    expect(out).toEqual(pdu);
    expect(stateString(0x3d)).toBe('A.GSCD..');
  });

  it('refuses short, foreign and malformed frames with a reason, never reading past len', () => {
    const buf = new Uint8Array(200);
    const pdu = { version: 1, actor: emptyInfo(), partner: emptyInfo(), collectorMaxDelay: 0 };
    encodeLacpdu(buf, 0, 1, pdu);
    const out = blank();
    expect(decodeLacpdu(buf, 0, LACPDU_MIN_LEN, out)).toBeNull(); // reserved tail may be missing
    expect(decodeLacpdu(buf, 0, LACPDU_MIN_LEN - 1, out)).toMatch(/truncated/);
    expect(decodeLacpdu(buf, 0, 10, out)).toMatch(/too short/);
    expect(decodeLacpdu(buf, 150, 124, out)).toMatch(/outside the buffer/);
    const marker = buf.slice();
    marker[14] = 2;
    expect(decodeLacpdu(marker, 0, LACPDU_LEN, out)).toMatch(/subtype 2 is not LACP/);
    const badTlv = buf.slice();
    badTlv[16 + 21] = 19;
    expect(decodeLacpdu(badTlv, 0, LACPDU_LEN, out)).toMatch(/partner TLV has type 2 length 19/);
    const ip = buf.slice();
    ip[12] = 0x08;
    ip[13] = 0x00;
    expect(decodeLacpdu(ip, 0, LACPDU_LEN, out)).toMatch(/not a slow protocols frame/);
    expect(() => encodeLacpdu(buf, 100, 1, pdu)).toThrow(RangeError);
  });

  it('random bytes never throw and never read past the frame: every answer is null or a reason', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
    const buf = new Uint8Array(256);
    const out = blank();
    let accepted = 0;
    for (let n = 0; n < 20_000; n++) {
      for (let i = 0; i < buf.length; i++) buf[i] = rnd();
      if (n % 2 === 0) {
        // mostly well-formed headers, so the TLV checks are reached
        buf.set([0x88, 0x09, 1, 1, 1, 20], 12);
        buf[36] = 2; buf[37] = 20; buf[56] = 3; buf[57] = 16;
      }
      const len = rnd() % 200;
      const off = rnd() % 80;
      const r = decodeLacpdu(buf, off, len, out);
      if (r === null) accepted++;
      else expect(typeof r).toBe('string');
      // what decodes must have had every TLV byte inside [off, off+len)
      if (r === null) expect(len).toBeGreaterThanOrEqual(LACPDU_MIN_LEN);
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

/**
 * Policies joined port by port: links[i] = [policy, port] pairs. LACPDUs go through the codec and are delivered
 * from a queue (never re-entrantly), only over links that are up.
 */
class Wire {
  nowMs = 0;
  readonly queue: { to: LacpPolicy; port: number; bytes: Uint8Array }[] = [];
  readonly peer = new Map<string, [LacpPolicy, number]>();
  readonly cut = new Set<string>();
  private readonly ids = new Map<LacpPolicy, number>();

  make(opts: Partial<ConstructorParameters<typeof LacpPolicy>[0]> & { system: number }, count = 2): LacpPolicy {
    let self: LacpPolicy;
    const p = new LacpPolicy(
      { memberCount: count, active: true, fast: true, systemPriority: 65535, portPriority: 255, key: 1, ...opts },
      (port, pdu) => {
        const k = this.key(self, port);
        if (this.cut.has(k)) return true;
        const to = this.peer.get(k);
        if (to === undefined) return true; // cabled to something that does not speak LACP
        const bytes = new Uint8Array(LACPDU_LEN);
        encodeLacpdu(bytes, 0, opts.system + port, pdu);
        this.queue.push({ to: to[0], port: to[1], bytes });
        return true;
      },
      () => {},
    );
    self = p;
    p.system = opts.system;
    this.ids.set(p, this.ids.size);
    return p;
  }

  private key(p: LacpPolicy, port: number): string {
    return `${this.ids.get(p)}:${port}`;
  }

  connect(a: LacpPolicy, ap: number, b: LacpPolicy, bp: number): void {
    this.peer.set(this.key(a, ap), [b, bp]);
    this.peer.set(this.key(b, bp), [a, ap]);
    a.setEnabled(ap, true, this.nowMs);
    b.setEnabled(bp, true, this.nowMs);
    this.drain();
  }

  setCut(a: LacpPolicy, ap: number, on: boolean): void {
    const [b, bp] = this.peer.get(this.key(a, ap))!;
    for (const k of [this.key(a, ap), this.key(b, bp)]) if (on) this.cut.add(k); else this.cut.delete(k);
  }

  drain(): void {
    for (let n = 0; this.queue.length > 0 && n < 10_000; n++) {
      const m = this.queue.shift()!;
      const pdu = blank();
      expect(decodeLacpdu(m.bytes, 0, m.bytes.length, pdu)).toBeNull();
      m.to.rx(m.port, pdu, this.nowMs);
    }
  }

  run(ms: number, ...policies: LacpPolicy[]): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs += TICK_MS;
      for (const p of policies) p.tick(this.nowMs);
      this.drain();
    }
  }
}

const cd = (p: LacpPolicy): string[] => p.ports.map((x) => x.mux);

describe('LACP machines', () => {
  it('two active systems form one aggregation: both ports collecting and distributing on both sides, after the wait', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00 });
    const b = w.make({ system: 0x020000000b00 });
    w.connect(a, 0, b, 0);
    w.connect(a, 1, b, 1);
    w.run(AGGREGATE_WAIT_MS - 500, a, b);
    expect(a.distCount).toBe(0);
    w.run(1000, a, b);
    expect(cd(a)).toEqual(['collecting_distributing', 'collecting_distributing']);
    expect(cd(b)).toEqual(['collecting_distributing', 'collecting_distributing']);
    const s = a.ports[0].actor.state;
    expect(s & (LACP_SYNC | LACP_COLLECTING | LACP_DISTRIBUTING | LACP_ACTIVITY | LACP_TIMEOUT)).toBe(0x3b);
    expect(a.aggregatorPartner?.system).toBe(0x020000000b00);
    expect(new Set([a.choose(0), a.choose(1)])).toEqual(new Set([0, 1]));
  });

  it('a silent partner takes its member out after 3 x the fast interval; the link coming back rejoins', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00 });
    const b = w.make({ system: 0x020000000b00 });
    w.connect(a, 0, b, 0);
    w.connect(a, 1, b, 1);
    w.run(3000, a, b);
    expect(a.distCount).toBe(2);
    w.setCut(a, 1, true);
    w.run(SHORT_TIMEOUT_MS - 1200, a, b);
    expect(a.collecting(1)).toBe(true); // not yet: the last LACPDU is younger than 3 s
    w.run(1500, a, b);
    expect(a.collecting(1)).toBe(false);
    expect(a.collecting(0)).toBe(true);
    expect(b.collecting(1)).toBe(false);
    expect([a.distCount, a.choose(0), a.choose(1)]).toEqual([1, 0, 0]);
    w.setCut(a, 1, false);
    w.run(AGGREGATE_WAIT_MS + 2500, a, b);
    expect(cd(a)).toEqual(['collecting_distributing', 'collecting_distributing']);
    expect(cd(b)).toEqual(['collecting_distributing', 'collecting_distributing']);
  });

  it('a member cabled to a peer without LACP stays out; a member whose partner is another system is not added', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00 }, 3);
    const b = w.make({ system: 0x020000000b00 });
    const c = w.make({ system: 0x020000000c00 }, 1);
    w.connect(a, 0, b, 0);
    a.setEnabled(1, true, w.nowMs); // no peer: no LACPDU ever comes back
    w.connect(a, 2, c, 0); // a second switch
    w.run(5000, a, b, c);
    expect(a.ports.map((p) => [p.mux, p.selected])).toEqual([['collecting_distributing', true], ['detached', false], ['detached', false]]);
    expect(a.ports[1].rx).toBe('defaulted');
    expect(a.ports[2].partnerMismatch).toBe(true);
    expect(a.distCount).toBe(1);
    expect(c.collecting(0)).toBe(false); // c never sees a's port 2 in sync
  });

  it('passive with passive never speaks; passive with an active partner forms', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00, active: false });
    const b = w.make({ system: 0x020000000b00, active: false });
    w.connect(a, 0, b, 0);
    w.run(5000, a, b);
    expect(a.ports[0].txLacpdus + b.ports[0].txLacpdus).toBe(0);
    expect(a.distCount).toBe(0);
    const w2 = new Wire();
    const p = w2.make({ system: 0x020000000a00, active: false });
    const q = w2.make({ system: 0x020000000b00 });
    w2.connect(p, 0, q, 0);
    w2.connect(p, 1, q, 1);
    w2.run(4000, p, q);
    expect(p.distCount).toBe(2);
    expect(q.distCount).toBe(2);
  });

  it('slow rate asks for LACPDUs every 30 s and waits 90 s: a partner silent for 10 s keeps its member', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00, fast: false });
    const b = w.make({ system: 0x020000000b00, fast: false });
    w.connect(a, 0, b, 0);
    w.run(4000, a, b);
    expect(a.collecting(0)).toBe(true);
    const tx = b.ports[0].txLacpdus;
    w.run(20_000, a, b);
    expect(b.ports[0].txLacpdus).toBe(tx); // nothing new within 30 s once settled
    w.setCut(a, 0, true);
    w.run(10_000, a, b);
    expect(a.collecting(0)).toBe(true);
  });

  it('snapshot/restore (--takeover): the new instance distributes at once and the partner sees no change', () => {
    const w = new Wire();
    const a = w.make({ system: 0x020000000a00 });
    const b = w.make({ system: 0x020000000b00 });
    w.connect(a, 0, b, 0);
    w.connect(a, 1, b, 1);
    w.run(3000, a, b);
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    // the new daemon: same system and ports, wired to the same partner
    const a2 = w.make({ system: 0x020000000a00 });
    for (const port of [0, 1]) {
      w.peer.set(`${2}:${port}`, [b, port]);
      w.peer.set(`1:${port}`, [a2, port]);
    }
    // the old instance stops sending; the new one starts from the snapshot (its carrier comes up with it)
    expect(a2.restore(snap, w.nowMs)).toBeNull();
    expect(a2.distCount).toBe(2);
    w.drain();
    const seen = new Set<string>();
    for (let t = 0; t < 30; t++) {
      w.run(TICK_MS, a2, b);
      for (const p of b.ports) seen.add(p.mux);
    }
    expect([...seen]).toEqual(['collecting_distributing']);
    expect(cd(a2)).toEqual(['collecting_distributing', 'collecting_distributing']);
    // without the snapshot the partner would have seen a defaulted, unsynchronised actor: it leaves collecting
    const a3 = w.make({ system: 0x020000000a00 });
    for (const port of [0, 1]) {
      w.peer.set(`3:${port}`, [b, port]);
      w.peer.set(`1:${port}`, [a3, port]);
    }
    a3.setEnabled(0, true, w.nowMs);
    w.drain();
    expect(b.ports[0].mux).not.toBe('collecting_distributing');
    expect(a2.restore({ ports: [] }, w.nowMs)).toMatch(/member count/);
  });

  it('accepts frames once the partner is in sync, but sends only once the partner says it is collecting', () => {
    const sent: Lacpdu[] = [];
    const a = new LacpPolicy({ memberCount: 1, active: true, fast: true, systemPriority: 65535, portPriority: 255, key: 1 },
      (_i, pdu) => { sent.push(JSON.parse(JSON.stringify(pdu)) as Lacpdu); return true; }, () => {});
    a.system = 0x020000000a00;
    a.setEnabled(0, true, 0);
    const from = (state: number): Lacpdu => ({
      version: 1,
      actor: { systemPriority: 1, system: 0x020000000b00, key: 9, portPriority: 1, port: 1, state },
      partner: { ...sent[sent.length - 1].actor },
      collectorMaxDelay: 0,
    });
    const SYNC_AGG = LACP_ACTIVITY | LACP_TIMEOUT | 0x04 | LACP_SYNC;
    let now = 0;
    a.rx(0, from(SYNC_AGG), now);
    for (; now < AGGREGATE_WAIT_MS + 200; now += TICK_MS) a.tick(now);
    a.rx(0, from(SYNC_AGG), now);
    expect(a.collecting(0)).toBe(true);
    expect(a.distCount).toBe(0);
    expect(a.choose(7)).toBe(-1);
    a.rx(0, from(SYNC_AGG | LACP_COLLECTING), now);
    expect(a.distCount).toBe(1);
    expect(a.choose(7)).toBe(0);
  });
});
