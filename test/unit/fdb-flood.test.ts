// The FDB under floods (issue 9 section 4): O(1) eviction victims, a bridge-wide flap-warning limit, the invariant
// check the daemon runs after a caught exception.
import { describe, expect, it, vi } from 'vitest';
import { Fdb, FLAP_WARN_BRIDGE_MAX, FLAP_WARN_INTERVAL_MS } from '../../src/fdb/fdb.js';
import { FlapWarnLimiter } from '../../src/fdb/flap-limit.js';

const MAX_PORTS = 1024;

describe('Fdb eviction under a MAC flood', () => {
  it('chooses each victim by looking at one bucket slot, not at every port slot', () => {
    const maxEntries = 4096;
    const f = new Fdb({ maxEntries, maxPorts: MAX_PORTS, ageingTimeMs: 0 });
    // a few quiet ports with some entries, then one port floods random sources
    for (let p = 0; p < 8; p++) for (let i = 0; i < 10; i++) f.learn(0, 0x020000000000 + p * 0x10000 + i, p + 100, 0);
    const flooder = 700;
    let x = 12345;
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      f.learn(0, 0x060000000000 + x * 4 + (i & 3), flooder, i);
    }
    expect(f.size).toBe(maxEntries);
    expect(f.counters.evicted).toBeGreaterThan(n - maxEntries - 100);
    // before: a scan of all 1024 port slots per eviction; now one bucket slot each
    expect(f.counters.evictionSlotsVisited).toBe(f.counters.evicted);
    expect(f.counters.evictionSlotsVisited / f.counters.evicted).toBeLessThan(MAX_PORTS / 100);
    // the flooder lost its own oldest entries: the quiet ports keep theirs
    expect(f.portDynamic[flooder]).toBe(maxEntries - 80);
    for (let p = 0; p < 8; p++) expect(f.portDynamic[p + 100]).toBe(10);
    expect(f.checkInvariants()).toBeNull();
  });

  it('tracks the largest port through moves, removals and flushes', () => {
    const f = new Fdb({ maxEntries: 6, maxPorts: 8, ageingTimeMs: 0 });
    for (let i = 0; i < 3; i++) f.learn(0, 0x020000000000 + i, 1, i); // port 1: 3
    for (let i = 0; i < 2; i++) f.learn(0, 0x040000000000 + i, 2, i); // port 2: 2
    f.learn(0, 0x020000000000, 2, 10); // a move: port 1: 2, port 2: 3
    expect(f.checkInvariants()).toBeNull();
    f.learn(0, 0x080000000000, 3, 11); // full now (6)
    f.learn(0, 0x080000000001, 3, 12); // evicts the oldest of port 2 (holds most)
    expect(f.lookup(0, 0x040000000000)).toBe(-1);
    expect(f.checkInvariants()).toBeNull();
    f.flushDynamic(2);
    expect(f.checkInvariants()).toBeNull();
    f.learn(0, 0x0a0000000000, 4, 13);
    f.learn(0, 0x0a0000000001, 4, 14);
    const evicted = f.counters.evicted;
    f.learn(0, 0x0a0000000002, 4, 15); // 7th entry: ports 1, 3 and 4 hold 2 each, one of them gives its oldest
    expect(f.size).toBe(6);
    expect(f.counters.evicted).toBe(evicted + 1);
    expect(Math.max(f.portDynamic[1], f.portDynamic[3], f.portDynamic[4])).toBe(2);
    expect(f.checkInvariants()).toBeNull();
    f.flushDynamic();
    expect(f.size).toBe(0);
    expect(f.checkInvariants()).toBeNull();
  });

  it('checkInvariants reports a corrupted count', () => {
    const f = new Fdb({ maxEntries: 8, maxPorts: 4, ageingTimeMs: 0 });
    f.learn(0, 0x020000000001, 1, 0);
    expect(f.checkInvariants()).toBeNull();
    f.portDynamic[1] = 5;
    expect(f.checkInvariants()).toMatch(/port 1: 5 dynamic entries counted, 1 present/);
  });
});

describe('bridge-wide flap-warning limit', () => {
  it('N MACs alternating between two ports: FLAP_WARN_BRIDGE_MAX warnings, then one summary per window', () => {
    const onFlap = vi.fn();
    const onFlapSuppressed = vi.fn();
    const f = new Fdb({ maxEntries: 4096, maxPorts: 8, ageingTimeMs: 0, onFlap, onFlapSuppressed });
    const macs = 1000;
    let t = 1;
    const round = (): void => {
      for (let k = 0; k < 6; k++) {
        for (let i = 0; i < macs; i++) f.learn(0, 0x020000000000 + i, k % 2 === 0 ? 1 : 2, t);
        t += 10;
      }
    };
    round();
    // before: one warning per MAC (1000 every 10 s); now the bridge's limit
    expect(onFlap).toHaveBeenCalledTimes(FLAP_WARN_BRIDGE_MAX);
    expect(onFlapSuppressed).not.toHaveBeenCalled();
    // the window ends: the periodic sweep hands out the summary
    t += FLAP_WARN_INTERVAL_MS;
    f.sweep(t, 16);
    expect(onFlapSuppressed).toHaveBeenCalledTimes(1);
    expect(onFlapSuppressed).toHaveBeenCalledWith(macs - FLAP_WARN_BRIDGE_MAX);
    f.sweep(t + 1, 16);
    expect(onFlapSuppressed).toHaveBeenCalledTimes(1);
    round();
    expect(onFlap).toHaveBeenCalledTimes(2 * FLAP_WARN_BRIDGE_MAX);
  });

  it('FlapWarnLimiter: max per window, the suppressed count once when the window ends', () => {
    const out: number[] = [];
    const l = new FlapWarnLimiter(2, 1000, (n) => out.push(n));
    expect([l.allow(0), l.allow(1), l.allow(2), l.allow(3)]).toEqual([true, true, false, false]);
    expect(l.pending).toBe(2);
    expect(l.allow(1000)).toBe(true);
    expect(out).toEqual([2]);
    l.flush(5000);
    expect(out).toEqual([2]);
  });
});
