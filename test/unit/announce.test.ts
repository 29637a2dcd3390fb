import { describe, expect, it } from 'vitest';
import { composeRarp, sendRarps } from '../../src/bond/announce.js';
import { PortVlan } from '../../src/bridge/vlan.js';
import { Bridge } from '../../src/bridge/bridge.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder, eth, FakeIo } from '../support/fake-io.js';

const VM = parseMac('00:16:3e:00:01:00')!;

describe('failover announcements', () => {
  it('composes a RARP like Open vSwitch: broadcast, 0x8035, op 3, sha = tha = the MAC', () => {
    const slab = new Uint8Array(128);
    const len = composeRarp(slab, 0, VM, 0);
    expect(len).toBe(60);
    expect(Buffer.from(slab.subarray(0, 42)).toString('hex')).toBe(
      'ffffffffffff' + '00163e000100' + '8035' + '0001' + '0800' + '06' + '04' + '0003' +
      '00163e000100' + '00000000' + '00163e000100' + '00000000');
    expect(slab.subarray(42, 60).every((b) => b === 0)).toBe(true);
  });

  it('tags per the uplink\'s VLAN rules, skips VLANs it does not carry, native leaves untagged', () => {
    const slab = new Uint8Array(1 << 16);
    const io = new FakeIo(() => slab);
    const trunk = new PortVlan({ mode: 'trunk', vlans: [10, 20], native: 10 });
    const sent = sendRarps(io, slab, trunk, [VM, VM, VM], [10, 20, 30]);
    expect(sent).toBe(2);
    expect(io.sent[0]).toMatch(/^ffffffffffff00163e0001008035/); // native VLAN 10: untagged
    expect(io.sent[1]).toMatch(/^ffffffffffff00163e0001008100001480350001/); // VLAN 20 tagged, PCP 0
    expect(io.sent[1].length).toBe(64 * 2);
  });

  it('never announces VID 4095 (reserved) or a VID outside 0..4094, on any uplink mode', () => {
    const slab = new Uint8Array(1 << 16);
    for (const spec of [{ mode: 'default' }, { mode: 'trunk', vlans: 'all', native: 1 }, { mode: 'trunk', vlans: 'all', native: null }] as const) {
      const io = new FakeIo(() => slab);
      expect(sendRarps(io, slab, new PortVlan(spec), [VM, VM, VM, VM], [4095, 4096, -1, 0.5])).toBe(0);
      expect(io.sent).toEqual([]);
    }
  });

  it('sends a gratuitous ARP for an address seen by ARP snooping', () => {
    const slab = new Uint8Array(1 << 16);
    const io = new FakeIo(() => slab);
    const ip = (198 << 24 | 18 << 16 | 0 << 8 | 1) >>> 0;
    sendRarps(io, slab, new PortVlan({ mode: 'default' }), [VM], [0], [ip]);
    expect(io.sent[0].slice(0, 84)).toBe(
      'ffffffffffff' + '00163e000100' + '0806' + '0001' + '0800' + '06' + '04' + '0001' +
      '00163e000100' + 'c6120001' + '000000000000' + 'c6120001');
  });

  it('splits more frames than the tx queue holds into several sends', () => {
    const slab = new Uint8Array(1 << 16);
    const io = new FakeIo(() => slab);
    const macs = Array.from({ length: 150 }, (_, i) => VM + i);
    expect(sendRarps(io, slab, new PortVlan({ mode: 'default' }), macs, macs.map(() => 0))).toBe(150);
    expect(io.sendCalls).toBe(3);
    expect(new Set(io.sent).size).toBe(150);
  });

  it('the engine snoops the sender IPv4 of ARPs on local ports only', () => {
    const br = new Bridge({ name: 'br', maxPorts: 4, fdbMax: 64, ageingTimeMs: 0 });
    const batch = new BatchBuilder();
    const vif = addFakePort(br, batch, 'vif1.0');
    const up = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
    const arp = (src: string, ip: string): string => eth('ff:ff:ff:ff:ff:ff', src, '0806',
      '0001080006040001' + src.replaceAll(':', '') + ip + '000000000000' + 'c61200fe');
    batch.add(arp('00:16:3e:00:01:00', 'c6120001'));
    br.receive(vif.port, batch.slab, batch.desc, batch.count);
    batch.reset().add(arp('02:00:00:00:00:fe', 'c61200fe'));
    br.receive(up.port, batch.slab, batch.desc, batch.count);
    const ips = new Map<number, number>();
    br.fdb.forEach(0, (e) => ips.set(e.mac, e.ipv4));
    expect(ips.get(VM)).toBe(0xc6120001);
    expect(ips.get(parseMac('02:00:00:00:00:fe')!)).toBe(0);
  });
});
