// `tapbridge trace` (src/observe/trace.ts) against the engine: the same frames go to traceFrame() and
// then to Bridge.receive(); the trace's verdict, egress ports, wire tags, drop reason and learning must
// be what the engine then does. The trace itself must change nothing (FDB, counters).
import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { Mirror, mirrorSpecFrom } from '../../src/bridge/mirror.js';
import { type DropReason, type BridgePort } from '../../src/bridge/port.js';
import { formatMac, parseMac } from '../../src/frame/mac.js';
import { makeFrame, traceFrame, traceFrameFrom } from '../../src/observe/trace.js';
import { addFakePort, BatchBuilder, type FakeIo } from '../support/fake-io.js';
import { prng } from '../support/prng.js';


function setup(): { br: Bridge; batch: BatchBuilder; ports: { port: BridgePort; io: FakeIo }[] } {
  const br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 64, ageingTimeMs: 300_000 });
  const batch = new BatchBuilder();
  const ports = [
    addFakePort(br, batch, 'vif1.0'),
    addFakePort(br, batch, 'vif2.0'),
    addFakePort(br, batch, 'vif3.0', { flood: false }),
    addFakePort(br, batch, 'vif4.0', { isolated: true }),
    addFakePort(br, batch, 'vif5.0', { isolated: true, learning: false }),
    addFakePort(br, batch, 'vif6.0', { mtu: 100 }),
    addFakePort(br, batch, 'vif9.0'),
    addFakePort(br, batch, 'peth0', { kind: 'uplink' }),
  ];
  br.setPortVlan(ports[0].port, { mode: 'access', vlan: 10 });
  br.setPortVlan(ports[1].port, { mode: 'access', vlan: 10 });
  br.setPortVlan(ports[2].port, { mode: 'access', vlan: 20 });
  br.setPortVlan(ports[3].port, { mode: 'trunk', vlans: [10, 20], native: 10 });
  br.setPortVlan(ports[4].port, { mode: 'trunk', vlans: [20, 30], native: null });
  br.setPortVlan(ports[7].port, { mode: 'trunk', vlans: 'all', native: 30 });
  const m = mirrorSpecFrom({ name: 'm0', select: { ports: ['vif1.0', 'peth0'], direction: 'both', vlans: [10] }, output: 'vif9.0' });
  if ('problems' in m) throw new Error('bad mirror');
  br.setMirrors([new Mirror(m.spec)]);
  return { br, batch, ports };
}

const MACS = ['00:16:3e:00:00:01', '00:16:3e:00:00:02', '00:16:3e:00:00:03', '00:16:3e:00:00:04', '01:00:5e:00:00:01',
  'ff:ff:ff:ff:ff:ff', '01:80:c2:00:00:00', '00:00:00:00:00:00'].map((m) => parseMac(m)!);

function countersOf(br: Bridge): string {
  return JSON.stringify([br.counters, br.fdb.counters, br.fdb.size, br.portList.map((p) => [p.rxPackets, p.txPackets, p.drops()])]);
}

/** The VID of a C-tag on a wire frame (hex), null when untagged. */
function wireTag(hex: string): number | null {
  return hex.slice(24, 28) === '8100' ? parseInt(hex.slice(28, 32), 16) & 0xfff : null;
}

describe('trace against the engine', () => {
  it('predicts verdict, egress ports and tags, drop reason and learning for 2000 seeded frames', () => {
    const { br, batch, ports } = setup();
    const rand = prng(14);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    let forwarded = 0;
    let dropped = 0;
    for (let i = 0; i < 2000; i++) {
      const ing = pick(ports);
      const src = pick(MACS.slice(0, 5).concat(MACS[7]));
      const dst = pick(MACS);
      const vlan = rand() < 0.5 ? null : pick([0, 10, 20, 30, 40, 4095]);
      const big = rand() < 0.1;
      const type = pick([0x0800, 0x0806, 0x86dd, 0x8100]);
      let frame = makeFrame(src, dst, vlan, type);
      if (big) {
        const f = new Uint8Array(300);
        f.set(frame);
        frame = f;
      }
      if (rand() < 0.02) frame = frame.subarray(0, 10);
      br.nowMs = i * 10;
      const before = countersOf(br);
      const t = traceFrame(br, ing.port, frame, br.nowMs);
      expect(countersOf(br)).toBe(before); // the trace changes nothing
      const dropsBefore = ing.port.drops();
      const learnedBefore = br.fdb.peekHL(t.vlan ?? 0, Math.floor(src / 2 ** 32), (src % 2 ** 32) | 0, br.nowMs);
      for (const p of ports) p.io.sent.length = 0;
      batch.add(frame);
      br.receive(ing.port, batch.slab, batch.desc, batch.count);
      batch.reset();
      const ctx = `frame ${i} on ${ing.port.name}: ${Buffer.from(frame).toString('hex')}\n${t.steps.join('\n')}`;
      // drop reason: exactly the counter that moved
      const dropsAfter = ing.port.drops();
      const moved = (Object.keys(dropsAfter) as DropReason[]).filter((k) => dropsAfter[k] !== dropsBefore[k]);
      if (t.drop_reason !== null && t.egress.length === 0 && t.lookup === null) {
        expect(moved, ctx).toEqual([t.drop_reason]);
      } else {
        expect(moved, ctx).toEqual([]);
      }
      // egress: the ports that received a frame (mirror output aside) and the tag on their wire
      const mirrorOut = ports[6];
      // (a frame whose ethertype is 0x8100 shows its inner tag once the outer one is popped: compare ports only)
      const tagOf = (v: number | null): number | null | 'n/a' => (type === 0x8100 ? 'n/a' : v);
      const sent = ports.filter((p) => p !== mirrorOut && p.io.sent.length > 0).map((p) => ({ port: p.port.name, tag: tagOf(wireTag(p.io.sent[0])) }));
      const predicted = t.egress.filter((e) => e.drop === null).map((e) => ({ port: e.port, tag: tagOf(e.vlan_tag) }));
      expect(sent, ctx).toEqual(predicted);
      // mirror copies
      expect(mirrorOut.io.sent.length, ctx).toBe(t.mirrors.length);
      // oversize drops on egress are counted where the trace said
      for (const e of t.egress) if (e.drop !== null) expect(ports.find((p) => p.port.name === e.port)!.port.drops().oversize).toBeGreaterThan(0);
      // learning
      if (t.learn !== null && t.vlan !== null) {
        const after = br.fdb.peekHL(t.vlan, Math.floor(src / 2 ** 32), (src % 2 ** 32) | 0, br.nowMs);
        if (t.learn.action === 'learn' || t.learn.action === 'move') expect(after?.port, ctx).toBe(ing.port.id);
        if (t.learn.action === 'static') expect(after, ctx).toEqual(learnedBefore);
        if (t.learn.action === 'disabled') expect(after?.port ?? -1, ctx).toBe(learnedBefore?.port ?? -1);
      }
      if (t.verdict === 'drop') dropped++;
      else forwarded++;
    }
    // the seeded frames exercise both outcomes richly
    expect(forwarded).toBeGreaterThan(300);
    expect(dropped).toBeGreaterThan(300);
  });

  it('prints ofproto/trace-like steps: VLAN and why, learning, lookup with age, egress tag ops, mirrors', () => {
    const { br, ports } = setup();
    const [vm1, , , , , , , up] = ports;
    const a = parseMac('00:16:3e:00:00:0a')!;
    const b = parseMac('00:16:3e:00:00:0b')!;
    br.fdb.learn(10, b, up.port.id, 0);
    const t = traceFrame(br, vm1.port, makeFrame(a, b, null, 0x0800), 2500);
    expect(t.verdict).toBe('forward');
    expect(t.vlan).toBe(10);
    expect(t.learn).toEqual({ action: 'learn', port: 'vif1.0', vlan: 10 });
    expect(t.lookup).toEqual({ result: 'hit', port: 'peth0', age_s: 2.5, static: false });
    expect(t.egress).toEqual([{ port: 'peth0', tag_op: 'push', vlan_tag: 10, drop: null }]);
    expect(t.mirrors).toEqual([{ name: 'm0', output: 'vif9.0', output_vlan: null }]);
    expect(t.steps.join('\n')).toMatch(/vlan: 10 \(access port: its VLAN \(pvid\)\)[\s\S]*hit on peth0, age 2\.5 s[\s\S]*egress: peth0: push tag 10[\s\S]*mirror: m0: copy to vif9\.0/);
    const d = traceFrame(br, vm1.port, makeFrame(a, b, 20, 0x0800), 0);
    expect(d.verdict).toBe('drop');
    expect(d.drop_reason).toBe('tagged_on_access');
    expect(formatMac(a)).toBe(d.frame.src);
  });

  it('checks its request: MACs, VLAN, ethertype, frame bytes', () => {
    expect(() => traceFrameFrom({ src: 'nope', dst: '00:16:3e:00:00:01' })).toThrow(/^src:/);
    expect(() => traceFrameFrom({ src: '00:16:3e:00:00:01', dst: '00:16:3e:00:00:02', vlan: 5000 })).toThrow(/^vlan:/);
    expect(() => traceFrameFrom({ src: '00:16:3e:00:00:01', dst: '00:16:3e:00:00:02', ethertype: '0x1ffff' })).toThrow(/^ethertype:/);
    expect(() => traceFrameFrom({ frame: 'xyz' })).toThrow(/^frame:/);
    expect(Buffer.from(traceFrameFrom({ src: '00:16:3e:00:00:01', dst: 'ff:ff:ff:ff:ff:ff', vlan: 10, ethertype: '0x0806' })).toString('hex').slice(0, 36))
      .toBe('ffffffffffff00163e00000181' + '00000a0806');
  });
});
