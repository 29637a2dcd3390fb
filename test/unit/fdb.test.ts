import { describe, expect, it, vi } from 'vitest';
import { AddResult, Fdb, FLAP_WARN_INTERVAL_MS } from '../../src/fdb/fdb.js';
import { parseMac } from '../../src/frame/mac.js';

const mac = (s: string): number => parseMac(s)!;
const A = mac('00:16:3e:00:00:01');
const B = mac('00:16:3e:00:00:02');
const C = mac('00:16:3e:00:00:03');

function fdb(over: Partial<ConstructorParameters<typeof Fdb>[0]> = {}): Fdb {
  return new Fdb({ maxEntries: 64, maxPorts: 8, ageingTimeMs: 300_000, ...over });
}

describe('Fdb learning and lookup', () => {
  it('learns (vid, mac) -> port and looks it up', () => {
    const f = fdb();
    expect(f.lookup(0, A)).toBe(-1);
    f.learn(0, A, 3, 0);
    expect(f.lookup(0, A)).toBe(3);
    expect(f.size).toBe(1);
    expect(f.counters.learned).toBe(1);
  });

  it('keys on the VLAN too: the same MAC in two VLANs is two entries', () => {
    const f = fdb();
    f.learn(10, A, 1, 0);
    f.learn(20, A, 2, 0);
    expect(f.lookup(10, A)).toBe(1);
    expect(f.lookup(20, A)).toBe(2);
    expect(f.lookup(0, A)).toBe(-1);
    expect(f.size).toBe(2);
  });

  it('keeps the full 48 bits: MACs that differ only in the top 16 bits are distinct', () => {
    const f = fdb();
    f.learn(0, mac('02:00:00:00:00:01'), 1, 0);
    f.learn(0, mac('04:00:00:00:00:01'), 2, 0);
    expect(f.lookup(0, mac('02:00:00:00:00:01'))).toBe(1);
    expect(f.lookup(0, mac('04:00:00:00:00:01'))).toBe(2);
  });

  it('updates a MAC that moves port at once and counts the move', () => {
    const f = fdb();
    f.learn(0, A, 1, 0);
    f.learn(0, A, 2, 10);
    expect(f.lookup(0, A)).toBe(2);
    expect(f.counters.moved).toBe(1);
    expect(f.portDynamic[1]).toBe(0);
    expect(f.portDynamic[2]).toBe(1);
  });

  it('survives many inserts and deletes with backward-shift deletion (lookups stay right)', () => {
    const f = new Fdb({ maxEntries: 512, maxPorts: 4, ageingTimeMs: 0 });
    const live = new Map<number, number>();
    let seed = 12345;
    const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 20000; i++) {
      const m = 0x0200_0000_0000 + (rnd() % 700);
      if (rnd() % 3 === 0) {
        expect(f.delete(0, m)).toBe(live.has(m));
        live.delete(m);
      } else if (live.size < 512 || live.has(m)) {
        const p = rnd() % 4;
        f.learn(0, m, p, i);
        live.set(m, p);
      }
    }
    expect(f.size).toBe(live.size);
    for (const [m, p] of live) expect(f.lookup(0, m)).toBe(p);
  });
});

describe('Fdb ageing (injected clock, budgeted sweep)', () => {
  it('ages dynamic entries after ageing time and never static ones', () => {
    const f = fdb({ ageingTimeMs: 10_000 });
    f.learn(0, A, 1, 0);
    f.addStatic(0, B, 2, 0);
    f.sweep(9_999, 1000);
    expect(f.lookup(0, A)).toBe(1);
    f.sweep(10_000, 1000);
    expect(f.lookup(0, A)).toBe(-1);
    expect(f.lookup(0, B)).toBe(2);
    expect(f.counters.aged).toBe(1);
  });

  it('refreshing an entry postpones its ageing', () => {
    const f = fdb({ ageingTimeMs: 10_000 });
    f.learn(0, A, 1, 0);
    f.learn(0, A, 1, 8_000);
    f.sweep(12_000, 1000);
    expect(f.lookup(0, A)).toBe(1);
    f.sweep(18_000, 1000);
    expect(f.lookup(0, A)).toBe(-1);
  });

  it('ageing time 0 never ages', () => {
    const f = fdb({ ageingTimeMs: 0 });
    f.learn(0, A, 1, 0);
    f.sweep(1e12, 1000);
    expect(f.lookup(0, A)).toBe(1);
  });

  it('visits at most `budget` slots per sweep and resumes where it stopped', () => {
    const f = new Fdb({ maxEntries: 100, maxPorts: 2, ageingTimeMs: 1000 });
    for (let i = 0; i < 100; i++) f.learn(0, 0x0200_0000_0000 + i, 0, 0);
    let total = 0;
    for (let k = 0; k < 10; k++) total += f.sweep(5000, 10);
    expect(total).toBe(100);
    expect(f.size).toBe(0);
  });
});

describe('Fdb caps and eviction', () => {
  it('bridge cap: evicts the oldest dynamic entry of the port holding most', () => {
    const f = new Fdb({ maxEntries: 4, maxPorts: 4, ageingTimeMs: 0 });
    f.learn(0, mac('02:00:00:00:00:01'), 1, 1); // port 1, oldest
    f.learn(0, mac('02:00:00:00:00:02'), 1, 2);
    f.learn(0, mac('02:00:00:00:00:03'), 1, 3);
    f.learn(0, mac('02:00:00:00:00:04'), 2, 0); // port 2 holds fewer, though it is older
    f.learn(0, mac('02:00:00:00:00:05'), 3, 5);
    expect(f.size).toBe(4);
    expect(f.counters.evicted).toBe(1);
    expect(f.lookup(0, mac('02:00:00:00:00:01'))).toBe(-1);
    expect(f.lookup(0, mac('02:00:00:00:00:04'))).toBe(2);
    expect(f.lookup(0, mac('02:00:00:00:00:05'))).toBe(3);
  });

  it('"oldest" means least recently seen: a refreshed entry is not the victim', () => {
    const f = new Fdb({ maxEntries: 3, maxPorts: 2, ageingTimeMs: 0 });
    f.learn(0, A, 1, 0);
    f.learn(0, B, 1, 1);
    f.learn(0, C, 1, 2);
    f.learn(0, A, 1, 5000); // refresh A
    f.learn(0, mac('02:00:00:00:00:09'), 0, 5001);
    expect(f.lookup(0, A)).toBe(1);
    expect(f.lookup(0, B)).toBe(-1);
  });

  it('per-port cap evicts that port\'s own oldest entry', () => {
    const f = fdb();
    f.portMax[1] = 2;
    f.learn(0, A, 1, 0);
    f.learn(0, B, 1, 1);
    f.learn(0, C, 2, 2);
    f.learn(0, mac('02:00:00:00:00:09'), 1, 3);
    expect(f.portDynamic[1]).toBe(2);
    expect(f.lookup(0, A)).toBe(-1);
    expect(f.lookup(0, C)).toBe(2);
    expect(f.counters.evicted).toBe(1);
  });

  it('stops learning (counted) when only static entries could be evicted', () => {
    const f = new Fdb({ maxEntries: 2, maxPorts: 2, ageingTimeMs: 0 });
    expect(f.addStatic(0, A, 0, 0)).toBe(AddResult.Added);
    expect(f.addStatic(0, B, 1, 0)).toBe(AddResult.Added);
    f.learn(0, C, 1, 0);
    expect(f.lookup(0, C)).toBe(-1);
    expect(f.counters.learnFailed).toBe(1);
    expect(f.addStatic(0, C, 1, 0)).toBe(AddResult.Full);
  });
});

describe('Fdb static entries and flushing', () => {
  it('learning never moves a static entry', () => {
    const f = fdb();
    f.addStatic(0, A, 1, 0);
    f.learn(0, A, 2, 10);
    expect(f.lookup(0, A)).toBe(1);
    expect(f.counters.moved).toBe(0);
  });

  it('flushDynamic(port) removes only that port\'s dynamic entries', () => {
    const f = fdb();
    f.learn(0, A, 1, 0);
    f.learn(0, B, 2, 0);
    f.addStatic(0, C, 1, 0);
    expect(f.flushDynamic(1)).toBe(1);
    expect(f.lookup(0, A)).toBe(-1);
    expect(f.lookup(0, B)).toBe(2);
    expect(f.lookup(0, C)).toBe(1);
  });

  it('removePort removes static entries too', () => {
    const f = fdb();
    f.addStatic(0, C, 1, 0);
    f.learn(0, A, 1, 0);
    expect(f.removePort(1)).toBe(2);
    expect(f.size).toBe(0);
  });

  it('forEach reports static entries with age 0 and dynamic ones with their age', () => {
    const f = fdb();
    f.learn(5, A, 1, 1000);
    f.addStatic(0, B, 2, 1000);
    const seen: unknown[] = [];
    f.forEach(4000, (e) => seen.push(e));
    expect(seen).toContainEqual({ vid: 5, mac: A, port: 1, isStatic: false, ageMs: 3000, ipv4: 0 });
    expect(seen).toContainEqual({ vid: 0, mac: B, port: 2, isStatic: true, ageMs: 0, ipv4: 0 });
  });
});

describe('Fdb flap detection', () => {
  it('warns (rate-limited) when a MAC keeps moving between two ports', () => {
    const onFlap = vi.fn();
    const f = fdb({ onFlap });
    let t = 0;
    for (let i = 0; i < 10; i++) f.learn(0, A, i % 2 === 0 ? 1 : 2, (t += 50));
    expect(onFlap).toHaveBeenCalledTimes(1);
    const [vid, m, from, to] = onFlap.mock.calls[0] as number[];
    expect(vid).toBe(0);
    expect(m).toBe(A);
    expect(new Set([from, to])).toEqual(new Set([1, 2]));
    // still flapping: no second warning inside the interval, one after it
    for (let i = 0; i < 10; i++) f.learn(0, A, i % 2 === 0 ? 1 : 2, (t += 50));
    expect(onFlap).toHaveBeenCalledTimes(1);
    t += FLAP_WARN_INTERVAL_MS;
    for (let i = 0; i < 10; i++) f.learn(0, A, i % 2 === 0 ? 1 : 2, (t += 50));
    expect(onFlap).toHaveBeenCalledTimes(2);
  });

  it('an occasional move (a VM migrating) is not a flap', () => {
    const onFlap = vi.fn();
    const f = fdb({ onFlap });
    f.learn(0, A, 1, 0);
    f.learn(0, A, 2, 5000);
    f.learn(0, A, 1, 60000);
    expect(onFlap).not.toHaveBeenCalled();
  });
});
