// Property-based test of VLAN isolation: random port VLAN setups, random frames (0-3 tags of TPIDs
// 0x8100 / 0x88a8 / 0x9100, VIDs including 0 and 4095), random ingress ports, through the real engine.
// The generator is a seeded PRNG written here (TB_PROPERTY_SEED=n reproduces a run; the seed is in every
// failure message). The expectations come from a model of the rules written from docs/vlans-bonds.md, not from
// the engine's code.
//
// Invariants, for every frame that leaves any port:
//   1. the egress port is a member of the frame's VLAN (as the model classifies it at ingress) and the
//      wire bytes carry exactly the tag that port's rule says (untagged, tagged with the VID, as-is);
//      a frame the model drops leaves nowhere.
//   2. what a receiver on the egress wire reads as the frame's VLAN (the outermost tag's VID, or the
//      port's access/native VLAN when untagged or priority-tagged) is a VLAN the ingress port belongs to.
//      This is what the double-tag hop breaks. Not checked for the uplink and `allow_stacked` ports
//      (QinQ through them is legitimate). For a default ingress port (every VLAN) a read VID 4095 behind
//      its own outer tag is exempt: 4095 is no VLAN, every 802.1Q receiver discards it.
import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import type { BridgePort } from '../../src/bridge/port.js';
import type { VlanSpec } from '../../src/bridge/vlan.js';
import { addFakePort, BatchBuilder, type FakeIo } from '../support/fake-io.js';
import { prng } from '../support/prng.js';

const SEED = Number(process.env.TB_PROPERTY_SEED ?? 20261201);
const SETUPS = 400;
const FRAMES_PER_SETUP = 40;

const TPIDS = [0x8100, 0x88a8, 0x9100];


interface ModelPort {
  name: string;
  kind: 'tap' | 'uplink';
  allowStacked: boolean;
  spec: VlanSpec;
}

type Rule = 'none' | 'untagged' | 'tagged' | 'as-is';

/** The egress rule of a port for internal VLAN vid (docs/vlans-bonds.md: default / access / trunk). */
function rule(spec: VlanSpec, vid: number): Rule {
  if (vid < 0 || vid > 4094) return 'none';
  if (spec.mode === 'default') return vid === 0 ? 'as-is' : 'tagged';
  if (spec.mode === 'access') return vid === spec.vlan ? 'untagged' : 'none';
  if (spec.native === vid) return 'untagged';
  if (vid === 0) return 'none';
  return spec.vlans === 'all' || spec.vlans.includes(vid) ? 'tagged' : 'none';
}

/** The VLAN an untagged frame belongs to on this port, or -1. */
function pvid(spec: VlanSpec): number {
  if (spec.mode === 'default') return 0;
  if (spec.mode === 'access') return spec.vlan;
  return spec.native ?? -1;
}

const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];

/** The model's ingress classification: the internal VLAN, or -1 for a drop. */
function classify(p: ModelPort, f: Uint8Array): number {
  const outer = u16(f, 12);
  const outerIsTag = TPIDS.includes(outer);
  if (outerIsTag && (u16(f, 14) & 0xfff) === 4095) return -1; // vlan_reserved, every port
  const dot1q = outer === 0x8100;
  const tagVid = dot1q ? u16(f, 14) & 0xfff : 0;
  const checkStacked = p.kind !== 'uplink' && !p.allowStacked && p.spec.mode !== 'default';
  const stacked = dot1q ? TPIDS.includes(u16(f, 16)) : outerIsTag;
  let vid: number;
  if (p.spec.mode === 'default') vid = tagVid;
  else if (p.spec.mode === 'access') {
    if (tagVid !== 0) return -1;
    vid = p.spec.vlan;
  } else if (tagVid !== 0) {
    if (rule(p.spec, tagVid) === 'none') return -1;
    vid = tagVid;
  } else {
    if (p.spec.native === null) return -1;
    vid = p.spec.native;
  }
  if (checkStacked && stacked) return -1;
  return vid;
}

/** The wire bytes a port with rule r must send for frame f of internal VLAN vid. */
function expectedWire(r: Rule, f: Uint8Array, vid: number): string {
  const h = Buffer.from(f).toString('hex');
  const dot1q = u16(f, 12) === 0x8100;
  const tci = (t: number): string => t.toString(16).padStart(4, '0');
  if (r === 'as-is') return h;
  if (r === 'untagged') return dot1q ? h.slice(0, 24) + h.slice(32) : h;
  // tagged: rewrite the 802.1Q tag's VID (PCP, DEI kept) or push one with PCP 0
  if (dot1q) return h.slice(0, 24) + '8100' + tci((u16(f, 14) & 0xf000) | vid) + h.slice(32);
  return h.slice(0, 24) + '8100' + tci(vid) + h.slice(24);
}

/** What a receiver on a port's wire reads as the VLAN of these bytes. */
function receiverVlan(spec: VlanSpec, wire: Uint8Array): number {
  const outer = u16(wire, 12);
  if (TPIDS.includes(outer)) {
    const vid = u16(wire, 14) & 0xfff;
    if (vid !== 0) return vid;
  }
  return pvid(spec);
}

function isMember(spec: VlanSpec, vid: number): boolean {
  return rule(spec, vid) !== 'none';
}

describe('VLAN isolation, property-based', () => {
  it(`${SETUPS} random setups x ${FRAMES_PER_SETUP} random frames keep both invariants (seed ${SEED})`, () => {
    const rnd = prng(SEED);
    const int = (n: number): number => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
    // a small VID pool so that ports share VLANs often; 4094 and a random one for the edges
    const vidPool = (): number => (rnd() < 0.9 ? pick([1, 2, 3, 4094]) : 1 + int(4094));
    const wireVid = (): number => (rnd() < 0.8 ? pick([0, 0, 1, 2, 3, 4094, 4095, 4095]) : int(4096));
    const randomSpec = (): VlanSpec => {
      const m = int(3);
      if (m === 0) return { mode: 'default' };
      if (m === 1) return { mode: 'access', vlan: vidPool() };
      const vlans = rnd() < 0.2 ? 'all' as const : [...new Set(Array.from({ length: 1 + int(3) }, vidPool))].sort((a, b) => a - b);
      const natives = vlans === 'all' ? [1, 2, 3, 4094] : vlans;
      return { mode: 'trunk', vlans, native: rnd() < 0.5 ? pick(natives) : null };
    };
    const macs = Array.from({ length: 6 }, (_, i) => Uint8Array.from([0x02, 0, 0, 0, 0, i + 1]));

    let forwarded = 0;
    let dropped = 0;
    let hopsTried = 0;
    for (let s = 0; s < SETUPS; s++) {
      const br = new Bridge({ name: 'br', maxPorts: 8, fdbMax: 256, ageingTimeMs: 300_000 });
      const batch = new BatchBuilder();
      const n = 2 + int(5);
      const model: ModelPort[] = [];
      const real: { port: BridgePort; io: FakeIo }[] = [];
      for (let i = 0; i < n; i++) {
        const kind = i === 0 && rnd() < 0.5 ? 'uplink' as const : 'tap' as const;
        const mp: ModelPort = { name: `p${i}`, kind, allowStacked: kind === 'tap' && rnd() < 0.1, spec: randomSpec() };
        const rp = addFakePort(br, batch, mp.name, { kind });
        rp.port.checkStacked = kind !== 'uplink' && !mp.allowStacked;
        br.setPortVlan(rp.port, mp.spec);
        model.push(mp);
        real.push(rp);
      }
      for (let k = 0; k < FRAMES_PER_SETUP; k++) {
        const tags = pick([0, 1, 1, 2, 2, 3]);
        const bytes: number[] = [];
        const dst = rnd() < 0.4 ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : rnd() < 0.2 ? [0x01, 0x00, 0x5e, 0, 0, 1] : [...pick(macs)];
        const src = pick(macs);
        bytes.push(...dst, ...src);
        for (let t = 0; t < tags; t++) {
          const tci = (int(16) << 12) | wireVid();
          bytes.push(...[pick(TPIDS)].flatMap((x) => [x >> 8, x & 0xff]), tci >> 8, tci & 0xff);
        }
        bytes.push(0x08, 0x00, 0x45);
        while (bytes.length < 64) bytes.push(int(256));
        const f = Uint8Array.from(bytes);
        if (bytes.slice(0, 6).every((b, i) => b === src[i])) continue; // to itself: nothing to check
        const inIdx = int(n);
        const ing = model[inIdx];
        for (const r of real) r.io.sent.length = 0;
        batch.reset().add(f);
        br.receive(real[inIdx].port, batch.slab, batch.desc, batch.count);
        const vid = classify(ing, f);
        const where = `seed ${SEED}, setup ${s}, frame ${k}: ${Buffer.from(f).toString('hex').slice(0, 48)}... into ${ing.name} ` +
          `(${ing.kind}${ing.allowStacked ? ', allow_stacked' : ''}, ${JSON.stringify(ing.spec)}); ports ${JSON.stringify(model.map((m) => m.spec))}`;
        const outs = real.flatMap((r, i) => r.io.sent.map((w) => ({ i, w })));
        if (tags >= 2 && u16(f, 12) === 0x8100 && (u16(f, 14) & 0xfff) === 0) hopsTried++;
        if (vid < 0) {
          expect(outs, `model drops, engine forwarded: ${where}`).toEqual([]);
          dropped++;
          continue;
        }
        for (const { i, w } of outs) {
          const eg = model[i];
          expect(i, `sent back to the ingress port: ${where}`).not.toBe(inIdx);
          const r = rule(eg.spec, vid);
          // invariant 1
          expect(r, `left ${eg.name} (${JSON.stringify(eg.spec)}), not a member of VLAN ${vid}: ${where}`).not.toBe('none');
          expect(w, `wrong tag on ${eg.name} (${r}, VLAN ${vid}): ${where}`).toBe(expectedWire(r, f, vid));
          // invariant 2
          if (ing.kind === 'uplink' || ing.allowStacked) continue;
          const wire = Buffer.from(w, 'hex');
          const read = receiverVlan(eg.spec, wire);
          if (ing.spec.mode === 'default' && read === 4095) continue;
          expect(isMember(ing.spec, read), `a receiver on ${eg.name} reads VLAN ${read}, not one of ${ing.name}'s: ${where}`).toBe(true);
          forwarded++;
        }
      }
    }
    // the run exercised both sides, and the double-tag hop was attempted many times
    expect(forwarded).toBeGreaterThan(1000);
    expect(dropped).toBeGreaterThan(1000);
    expect(hopsTried).toBeGreaterThan(100);
  });
});
