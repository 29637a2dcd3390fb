// Replays a real trunk capture (test/fixtures/vlan.pcap, made by scripts/make-vlan-fixtures.sh: tags stripped by the
// kernel and re-inserted by libpcap) through the engine. H1 sits behind the trunk `up`; H2 and H3 behind the trunk
// `down`; access ports in VLAN 10 and 20 and a default port see only what is flooded in their VLANs.
//
//   #   frame (from the capture)                  enters on
//   0   VLAN 10  ARP who-has, H1 -> broadcast     up
//   1   VLAN 10  ARP is-at, H2 -> H1              down
//   2   VLAN 10  ICMP echo request, H1 -> H2      up
//   3   VLAN 10  ICMP echo reply, H2 -> H1        down
//   4   VLAN 20  ARP who-has, H1 -> broadcast     up
//   5   VLAN 20  ARP is-at, H3 -> H1              down
//   6   VLAN 20  PCP 5, ICMP request H1 -> H3     up
//   7   VLAN 20  PCP 5 DEI, ICMP reply H3 -> H1   down
//   8   VLAN 30  ARP who-has, H2 -> broadcast     down
//   9   untagged ICMP request, H2 -> H1           down
//   10  VID 0 PCP 3 (priority-tagged), H2 -> H1   down
//   11  802.1ad S-tag VID 10, H2 -> H1            down
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import type { VlanSpec } from '../../src/bridge/vlan.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder } from '../support/fake-io.js';
import { readPcap } from '../support/pcap.js';

const fixture = fileURLToPath(new URL('../fixtures/vlan.pcap', import.meta.url));
const H1 = '00163efb0001';
const H2 = '00163efb0002';
const H3 = '00163efb0003';
const colon = (h: string): string => h.match(/../g)!.join(':');

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');
const push = (f: string, tci: number): string => f.slice(0, 24) + '8100' + hex4(tci) + f.slice(24);
const pop = (f: string): string => f.slice(0, 24) + f.slice(32);
const setTag = (f: string, tci: number): string => f.slice(0, 24) + '8100' + hex4(tci) + f.slice(32);

function replay(frames: Buffer[], downSpec: VlanSpec, downKind: 'tap' | 'uplink' = 'tap') {
  const br = new Bridge({ name: 'br', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000 });
  const batch = new BatchBuilder();
  const add = (name: string, spec: VlanSpec, kind: 'tap' | 'uplink' = 'tap') => {
    const p = addFakePort(br, batch, name, { kind });
    br.setPortVlan(p.port, spec);
    return p;
  };
  const up = add('up', { mode: 'trunk', vlans: [10, 20], native: null });
  const down = add('down', downSpec, downKind);
  const h10 = add('h10', { mode: 'access', vlan: 10 });
  const h20 = add('h20', { mode: 'access', vlan: 20 });
  const d = add('d', { mode: 'default' });
  for (const f of frames) {
    const ingress = f.subarray(6, 12).toString('hex') === H1 ? up : down;
    batch.add(f);
    br.receive(ingress.port, batch.slab, batch.desc, batch.count);
    batch.reset();
  }
  const where = (vid: number, mac: string): string | null => {
    const id = br.fdb.lookup(vid, parseMac(colon(mac))!);
    return id < 0 ? null : br.ports[id]!.name;
  };
  return { br, up, down, h10, h20, d, where };
}

describe('VLAN pcap replay through the engine', () => {
  let frames: Buffer[];
  let f: string[];
  beforeAll(async () => {
    frames = await readPcap(fixture);
    f = frames.map((b) => b.toString('hex'));
  });

  it('the fixture holds the trunk traffic with the tags libpcap re-inserted', () => {
    expect(frames).toHaveLength(12);
    const tags = frames.map((b) => {
      const tpid = b.readUInt16BE(12);
      return tpid === 0x8100 || tpid === 0x88a8 ? `${tpid.toString(16)}/${hex4(b.readUInt16BE(14))}` : 'untagged';
    });
    expect(tags).toEqual([
      '8100/000a', '8100/000a', '8100/000a', '8100/000a',
      '8100/0014', '8100/0014', '8100/a014', '8100/b014',
      '8100/001e', 'untagged', '8100/6000', '88a8/000a',
    ]);
  });

  it('trunks without a native VLAN: tags untouched trunk to trunk, popped to access ports, floods stay in their VLAN', () => {
    const { br, up, down, h10, h20, d, where } = replay(frames, { mode: 'trunk', vlans: [10, 20], native: null });
    // known unicast and floods between the trunks: byte-identical, PCP and DEI kept
    expect(up.io.sent).toEqual([f[1], f[3], f[5], f[7]]);
    expect(down.io.sent).toEqual([f[0], f[2], f[4], f[6]]);
    // the access ports see the broadcast of their VLAN, untagged; the default port sees both, tagged
    expect(h10.io.sent).toEqual([pop(f[0])]);
    expect(h20.io.sent).toEqual([pop(f[4])]);
    expect(d.io.sent).toEqual([f[0], f[4]]);
    // VID 30 is not carried; untagged, priority-tagged and S-tagged frames have no native VLAN to go to
    expect(down.port.drops()).toMatchObject({ vlan_not_member: 1, untagged_no_native: 3, tagged_on_access: 0 });
    expect(up.port.drops()).toMatchObject({ vlan_not_member: 0, untagged_no_native: 0 });
    // independent learning: H1 has an entry in each VLAN
    expect(where(10, H1)).toBe('up');
    expect(where(20, H1)).toBe('up');
    expect(where(10, H2)).toBe('down');
    expect(where(20, H3)).toBe('down');
    expect(where(30, H2)).toBeNull();
    expect(where(0, H2)).toBeNull();
    expect(br.fdb.size).toBe(4);
    expect(br.fdb.counters.moved).toBe(0);
  });

  it('a trunk with native VLAN 10: VLAN 10 leaves it untagged; untagged and priority-tagged frames join VLAN 10, S-tagged ones only from the uplink', () => {
    const { up, down, h10, where } = replay(frames, { mode: 'trunk', vlans: [10, 20], native: 10 });
    expect(down.io.sent).toEqual([pop(f[0]), pop(f[2]), f[4], f[6]]);
    // into VLAN 10 and on to H1 over the trunk without native: tagged, PCP 0 when they came untagged,
    // the priority tag's PCP 3 kept; the S-tagged frame is a stacked tag on a guest's trunk (dropped)
    expect(up.io.sent).toEqual([f[1], f[3], f[5], f[7], push(f[9], 0x000a), setTag(f[10], 0x600a)]);
    expect(down.port.drops()).toMatchObject({ vlan_not_member: 1, untagged_no_native: 0, stacked_tag: 1 });
    expect(h10.io.sent).toEqual([pop(f[0])]); // the unicasts to H1 are known: not flooded
    expect(where(10, H2)).toBe('down');
  });

  it('the same trunk as the uplink (QinQ from the physical network): the S-tagged frame gets a C-tag in front of its 0x88a8', () => {
    const { up, down } = replay(frames, { mode: 'trunk', vlans: [10, 20], native: 10 }, 'uplink');
    expect(up.io.sent).toEqual([f[1], f[3], f[5], f[7], push(f[9], 0x000a), setTag(f[10], 0x600a), push(f[11], 0x000a)]);
    expect(up.io.sent[6].slice(24, 40)).toBe('8100000a88a8000a');
    expect(down.port.drops()).toMatchObject({ vlan_not_member: 1, untagged_no_native: 0, stacked_tag: 0 });
  });
});
