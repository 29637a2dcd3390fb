import { describe, expect, it } from 'vitest';
import { Mdb, ROUTER_ALWAYS, ROUTER_NEVER } from '../../src/mdb/mdb.js';

const G = (n: number): Int32Array => Int32Array.from([0, 0, 0xffff, (0xef000000 | n) | 0]);
const S = (n: number): Int32Array => Int32Array.from([0, 0, 0xffff, (0xc6120000 | n) | 0]);

describe('Mdb', () => {
  it('an EXCLUDE {} member takes every source until its group timer runs out, then ages away', () => {
    const mdb = new Mdb({ maxGroups: 16, maxPorts: 8 });
    const m = mdb.member(1, G(1), 3);
    mdb.setExclude(m, 1000);
    expect(mdb.takes(m, S(1), 0)).toBe(true);
    expect(mdb.takes(m, S(2), 999)).toBe(true);
    expect(mdb.takes(m, S(2), 1000)).toBe(false);
    expect(mdb.sweep(1000, 100)).toBe(1);
    expect(mdb.findGroup(1, G(1))).toBe(-1);
    expect(mdb.counters.membersAged).toBe(1);
    expect(mdb.check()).toBeNull();
  });

  it('finds no member in a group that does not exist', () => {
    const mdb = new Mdb({ maxGroups: 4, maxPorts: 4 });
    expect(mdb.findMember(mdb.findGroup(0, G(1)), 0)).toBe(-1);
  });

  it('keeps groups apart by VLAN and address', () => {
    const mdb = new Mdb({ maxGroups: 16, maxPorts: 8 });
    const a = mdb.member(1, G(1), 1);
    const b = mdb.member(2, G(1), 1);
    const c = mdb.member(1, G(2), 1);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(mdb.groups).toBe(3);
    expect(mdb.member(1, G(1), 1)).toBe(a);
  });

  it('INCLUDE {S1} takes S1 and not S2; EXCLUDE {S2} takes S1 and not S2', () => {
    const mdb = new Mdb({ maxGroups: 16, maxPorts: 8 });
    const inc = mdb.member(0, G(1), 1);
    mdb.allowSource(inc, S(1), 5000);
    expect(mdb.takes(inc, S(1), 0)).toBe(true);
    expect(mdb.takes(inc, S(2), 0)).toBe(false);
    const exc = mdb.member(0, G(1), 2);
    mdb.setExclude(exc, 5000);
    mdb.excludeSource(exc, S(2), 0);
    expect(mdb.takes(exc, S(1), 0)).toBe(true);
    expect(mdb.takes(exc, S(2), 0)).toBe(false);
    // the group timer runs out: EXCLUDE falls back to INCLUDE with no requested source: the member goes;
    // the INCLUDE member's only source timer ran out too
    mdb.sweep(4999, 100);
    expect(mdb.findMember(mdb.findGroup(0, G(1)), 2)).toBe(exc);
    mdb.sweep(5000, 100);
    expect(mdb.findMember(mdb.findGroup(0, G(1)), 2)).toBe(-1);
    expect(mdb.groups).toBe(0);
    expect(mdb.check()).toBeNull();
  });

  it('a BLOCKed source stops at once when its timer is lowered to now', () => {
    const mdb = new Mdb({ maxGroups: 16, maxPorts: 8 });
    const m = mdb.member(0, G(1), 1);
    mdb.allowSource(m, S(1), 5000);
    mdb.allowSource(m, S(2), 5000);
    mdb.lowerSource(m, S(1), 10, 10);
    expect(mdb.takes(m, S(1), 10)).toBe(false);
    expect(mdb.takes(m, S(2), 10)).toBe(true);
    mdb.lowerSource(m, S(2), 10, 10);
    mdb.pruneIfEmpty(m);
    expect(mdb.groups).toBe(0);
  });

  it('refuses past the bridge cap and the port cap, counting each, and frees on removal', () => {
    const mdb = new Mdb({ maxGroups: 4, maxPorts: 8 });
    mdb.portMax[2] = 2;
    expect(mdb.member(0, G(1), 2)).toBeGreaterThanOrEqual(0);
    expect(mdb.member(0, G(2), 2)).toBeGreaterThanOrEqual(0);
    expect(mdb.member(0, G(3), 2)).toBe(-1);
    expect(mdb.counters.portFull).toBe(1);
    for (let g = 3; g <= 4; g++) expect(mdb.member(0, G(g), 1)).toBeGreaterThanOrEqual(0);
    expect(mdb.member(0, G(5), 1)).toBe(-1);
    expect(mdb.counters.groupsFull).toBe(1);
    expect(mdb.removePort(2, false)).toBe(2);
    expect(mdb.member(0, G(5), 1)).toBeGreaterThanOrEqual(0);
    expect(mdb.check()).toBeNull();
  });

  it('a report flood fills the pools and no more: memory is fixed, every refusal counted', () => {
    const mdb = new Mdb({ maxGroups: 64, maxPorts: 8 });
    let refused = 0;
    for (let g = 0; g < 10_000; g++) {
      const m = mdb.member(g % 4094, G(g), 1);
      if (m < 0) refused++;
      else mdb.setExclude(m, 1e9);
    }
    expect(mdb.groups).toBe(64);
    expect(refused).toBe(10_000 - 64);
    expect(mdb.counters.groupsFull).toBe(refused);
    expect(mdb.check()).toBeNull();
  });

  it('hash deletions keep every remaining group findable', () => {
    const mdb = new Mdb({ maxGroups: 256, maxPorts: 4 });
    const ids: number[] = [];
    for (let g = 0; g < 256; g++) ids.push(mdb.member(g & 7, G(g), 0));
    for (let g = 0; g < 256; g += 3) mdb.removeMember(ids[g]);
    for (let g = 0; g < 256; g++) expect(mdb.findGroup(g & 7, G(g)) >= 0).toBe(g % 3 !== 0);
    expect(mdb.check()).toBeNull();
  });

  it('permanent entries never age; a permanent (S,G) is INCLUDE {S}', () => {
    const mdb = new Mdb({ maxGroups: 16, maxPorts: 8 });
    expect(mdb.addStatic(0, G(1), 1, null)).toBe(true);
    expect(mdb.addStatic(0, G(2), 2, S(1))).toBe(true);
    mdb.sweep(1e12, 1000);
    const m1 = mdb.findMember(mdb.findGroup(0, G(1)), 1);
    const m2 = mdb.findMember(mdb.findGroup(0, G(2)), 2);
    expect(mdb.takes(m1, S(9), 1e12)).toBe(true);
    expect(mdb.takes(m2, S(1), 1e12)).toBe(true);
    expect(mdb.takes(m2, S(2), 1e12)).toBe(false);
    expect(mdb.entries(0).map((e) => [e.port, e.permanent, e.mode, e.source === null])).toEqual([[1, true, 'exclude', true], [2, true, 'include', false]]);
    expect(mdb.removePort(1, false)).toBe(0);
    expect(mdb.delStatic(0, G(2), 2, S(1))).toBe(true);
    expect(mdb.delStatic(0, G(1), 1, null)).toBe(true);
    expect(mdb.groups).toBe(0);
  });

  it('router ports: auto learns with a timer, always is static, never ignores', () => {
    const mdb = new Mdb({ maxGroups: 4, maxPorts: 4 });
    mdb.routerMode[1] = ROUTER_ALWAYS;
    mdb.routerMode[2] = ROUTER_NEVER;
    expect(mdb.heardRouter(0, 10, 100)).toBe(true);
    expect(mdb.heardRouter(2, 10, 100)).toBe(false);
    expect([0, 1, 2, 3].map((p) => mdb.isRouter(p, 10, 50))).toEqual([true, true, false, false]);
    expect(mdb.isRouter(0, 10, 100)).toBe(false);
  });

  it('router ports are per (port, VLAN): a query in VLAN 10 makes no router port in VLAN 20; timers age and free their slots', () => {
    const mdb = new Mdb({ maxGroups: 4, maxPorts: 4, maxRouters: 2 });
    mdb.routerMode[1] = ROUTER_ALWAYS;
    expect(mdb.heardRouter(0, 10, 100)).toBe(true);
    expect(mdb.isRouter(0, 10, 50)).toBe(true);
    expect(mdb.isRouter(0, 20, 50)).toBe(false);
    expect(mdb.isRouter(1, 20, 50)).toBe(true); // always: every VLAN
    expect(mdb.heardRouter(0, 20, 200)).toBe(true);
    expect(mdb.heardRouter(2, 30, 200)).toBe(false); // pool of 2 full
    expect(mdb.counters.routersFull).toBe(1);
    expect(mdb.routerTimers(50)).toEqual([{ port: 0, vid: 10, timerMs: 50 }, { port: 0, vid: 20, timerMs: 150 }]);
    mdb.sweep(150, 100); // (0, 10) ran out: its slot is free again
    expect(mdb.check()).toBeNull();
    expect(mdb.heardRouter(2, 30, 300)).toBe(true);
    mdb.flushVlan(20);
    expect(mdb.isRouter(0, 20, 160)).toBe(false);
    mdb.forgetRouter(2);
    expect(mdb.routerTimers(160)).toEqual([]);
    expect(mdb.check()).toBeNull();
  });
});
