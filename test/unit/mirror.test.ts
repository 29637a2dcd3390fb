// Port mirroring (src/bridge/mirror.ts) in the engine: selection by port, direction and VLAN, one copy
// per frame per mirror, the output port receives nothing else and what it sends is dropped, RSPAN tags.
import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { Mirror, mirrorSetProblem, mirrorSpecFrom, type MirrorSpec } from '../../src/bridge/mirror.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';

const M1 = '00:16:3e:00:00:01';
const M2 = '00:16:3e:00:00:02';
const M3 = '00:16:3e:00:00:03';
const BCAST = 'ff:ff:ff:ff:ff:ff';

function spec(v: unknown): MirrorSpec {
  const r = mirrorSpecFrom(v);
  if ('problems' in r) throw new Error(JSON.stringify(r.problems));
  return r.spec;
}

/** The frame with an 802.1Q tag of `vid` inserted after the MACs. */
const tagged = (frame: string, vid: number, pcp = 0): string =>
  frame.slice(0, 24) + '8100' + ((pcp << 13) | vid).toString(16).padStart(4, '0') + frame.slice(24);

describe('port mirroring', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let vm1: { port: BridgePort; io: FakeIo };
  let vm2: { port: BridgePort; io: FakeIo };
  let vm3: { port: BridgePort; io: FakeIo };
  let ids: { port: BridgePort; io: FakeIo };
  let up: { port: BridgePort; io: FakeIo };
  const rx = (p: { port: BridgePort }, ...frames: string[]): void => {
    for (const f of frames) batch.add(f);
    br.receive(p.port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };
  const clear = (): void => {
    for (const p of [vm1, vm2, vm3, ids, up]) p.io.sent.length = 0;
  };

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    batch = new BatchBuilder();
    vm1 = addFakePort(br, batch, 'vif1.0');
    vm2 = addFakePort(br, batch, 'vif2.0');
    vm3 = addFakePort(br, batch, 'vif3.0');
    ids = addFakePort(br, batch, 'vif9.0');
    up = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
    br.setPortVlan(vm1.port, { mode: 'access', vlan: 10 });
    br.setPortVlan(vm2.port, { mode: 'access', vlan: 10 });
    br.setPortVlan(vm3.port, { mode: 'access', vlan: 20 });
    br.setPortVlan(up.port, { mode: 'trunk', vlans: 'all', native: null });
  });

  it('copies every selected frame once to the output, which receives nothing else', () => {
    br.setMirrors([new Mirror(spec({ name: 'm0', select: { ports: ['vif1.0', 'vif2.0'], direction: 'both' }, output: 'vif9.0' }))]);
    // a flood from vif1.0 (selected at ingress and at egress on vif2.0): one copy
    rx(vm1, eth(BCAST, M1, '0806'));
    expect(ids.io.sent).toEqual([eth(BCAST, M1, '0806')]);
    expect(vm2.io.sent).toEqual([eth(BCAST, M1, '0806')]);
    // the uplink got it tagged 10; the output port got no flood of its own
    expect(up.io.sent).toEqual([tagged(eth(BCAST, M1, '0806'), 10)]);
    clear();
    // unicast vif2 -> vif1, then an unknown unicast into the output port's MAC space: still one copy each
    rx(vm2, eth(M1, M2));
    expect(vm1.io.sent).toEqual([eth(M1, M2)]);
    expect(ids.io.sent).toEqual([eth(M1, M2)]);
    clear();
    // vif3.0 is not selected: nothing of it reaches the output
    rx(vm3, eth(BCAST, M3, '0806'), eth(M2, M3));
    expect(ids.io.sent).toEqual([]);
    expect(br.mirrors[0].mirrored).toBe(2);
  });

  it('drops what the output port sends (mirror_output) and learns nothing from it', () => {
    br.setMirrors([new Mirror(spec({ name: 'm0', select: { ports: 'all' }, output: 'vif9.0' }))]);
    rx(ids, eth(BCAST, M3, '0806'), eth(M1, M3));
    for (const p of [vm1, vm2, vm3, up]) expect(p.io.sent).toEqual([]);
    expect(ids.port.drops().mirror_output).toBe(2);
    expect(br.fdb.lookup(0, parseMac(M3)!)).toBe(-1);
    // a static entry pointing at the output port does not make it a unicast destination either
    br.fdb.addStatic(10, parseMac(M3)!, ids.port.id, 0);
    rx(vm1, eth(M3, M1));
    expect(ids.io.sent).toEqual([eth(M3, M1)]); // the mirror copy only
    expect(br.mirrors[0].mirrored).toBe(1);
  });

  it('selects by direction: in copies the ingress wire, out the egress wire', () => {
    br.setMirrors([
      new Mirror(spec({ name: 'in', select: { ports: ['peth0'], direction: 'in' }, output: 'vif9.0' })),
    ]);
    rx(up, tagged(eth(BCAST, M2, '0806'), 10));
    // the copy is as received on the trunk: tagged
    expect(ids.io.sent).toEqual([tagged(eth(BCAST, M2, '0806'), 10)]);
    clear();
    rx(vm1, eth(BCAST, M1, '0806')); // leaves on peth0, but only `in` is selected
    expect(ids.io.sent).toEqual([]);
    br.setMirrors([new Mirror(spec({ name: 'out', select: { ports: ['peth0'], direction: 'out' }, output: 'vif9.0' }))]);
    rx(vm1, eth(BCAST, M1, '0806'));
    // the copy is as sent on the trunk: with the tag the uplink pushed
    expect(ids.io.sent).toEqual([tagged(eth(BCAST, M1, '0806'), 10)]);
  });

  it('selects by VLAN', () => {
    br.setMirrors([new Mirror(spec({ name: 'v20', select: { ports: 'all', vlans: [20] }, output: 'vif9.0' }))]);
    rx(vm1, eth(BCAST, M1, '0806'));
    expect(ids.io.sent).toEqual([]);
    rx(vm3, eth(BCAST, M3, '0806'));
    expect(ids.io.sent).toEqual([eth(BCAST, M3, '0806')]);
  });

  it('RSPAN: output_vlan sends copies tagged into that VLAN on the uplink', () => {
    br.setMirrors([new Mirror(spec({ name: 'r', select: { ports: ['vif1.0'], direction: 'in' }, output_vlan: 999 }))]);
    rx(vm1, eth(M2, M1));
    // the RSPAN copy (tagged 999, queued at the ingress step) and the flood to the uplink (tagged 10)
    expect(up.io.sent).toEqual([tagged(eth(M2, M1), 999), tagged(eth(M2, M1), 10)]);
    expect(ids.io.sent).toEqual([tagged(eth(M2, M1), 10)]); // vif9.0 is an ordinary (default, all-VLAN) port here: the flood
    up.io.sent.length = 0;
    // a priority-tagged frame keeps its PCP in the RSPAN tag
    rx(vm1, tagged(eth(M2, M1), 0, 5));
    expect(up.io.sent[0]).toBe(tagged(eth(M2, M1), 999, 5));
  });

  it('an absent output port makes the mirror inactive until it appears', () => {
    br.setMirrors([new Mirror(spec({ name: 'm0', select: { ports: ['vif1.0'] }, output: 'vif8.0' }))]);
    expect(br.mirrors[0].describe().active).toBe(false);
    rx(vm1, eth(BCAST, M1, '0806'));
    const late = addFakePort(br, batch, 'vif8.0');
    expect(br.mirrors[0].describe().active).toBe(true);
    rx(vm1, eth(BCAST, M1, '0806'));
    expect(late.io.sent).toEqual([eth(BCAST, M1, '0806')]);
    br.removePort(late.port);
    expect(br.mirrors[0].describe().active).toBe(false);
  });

  it('checks specs: keys, names, lists, output xor output_vlan', () => {
    expect(mirrorSpecFrom({ name: 'm0', select: { ports: 'vif1.0,vif2.0', direction: 'in', vlans: '10,20-22' }, output: 'vif9.0' }))
      .toEqual({ spec: { name: 'm0', ports: ['vif1.0', 'vif2.0'], direction: 'in', vlans: [10, 20, 21, 22], output: 'vif9.0', outputVlan: null } });
    const bad = (v: unknown): string[] => {
      const r = mirrorSpecFrom(v);
      return 'problems' in r ? r.problems.map(([k]) => k) : [];
    };
    expect(bad({ name: 'm0', select: { ports: 'all' } })).toEqual(['output']);
    expect(bad({ name: 'm0', select: { ports: 'all' }, output: 'a', output_vlan: 3 })).toEqual(['output']);
    expect(bad({ name: 'm 0', select: { ports: [] }, output: 'a' })).toEqual(['name', 'select.ports']);
    expect(bad({ name: 'm0', select: { ports: ['a'], direction: 'sideways', vlans: [5000] }, output_vlan: 0 }))
      .toEqual(['select.direction', 'select.vlans', 'output_vlan']);
    expect(bad({ name: 'm0', select: { ports: ['a'] }, output: 'a', extra: 1 })).toEqual(['extra', 'output']);
    expect(mirrorSetProblem([spec({ name: 'a', select: { ports: 'all' }, output: 'x' }), spec({ name: 'a', select: { ports: 'all' }, output: 'y' })]))
      .toMatch(/used twice/);
    expect(mirrorSetProblem([spec({ name: 'a', select: { ports: 'all' }, output: 'x' }), spec({ name: 'b', select: { ports: ['x'] }, output: 'y' })]))
      .toMatch(/output of a mirror/);
  });
});
