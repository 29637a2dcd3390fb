import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';
import type { BridgePort } from '../../src/bridge/port.js';

const M1 = '00:16:3e:00:00:01';
const M2 = '00:16:3e:00:00:02';
const M3 = '00:16:3e:00:00:03';
const BCAST = 'ff:ff:ff:ff:ff:ff';

describe('Bridge forwarding', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let p: { port: BridgePort; io: FakeIo }[];

  const rx = (i: number): void => {
    br.receive(p[i].port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    batch = new BatchBuilder();
    p = ['vif1.0', 'vif2.0', 'vif3.0', 'peth0'].map((n) => addFakePort(br, batch, n));
  });

  it('floods an unknown unicast to every other port and learns the source', () => {
    batch.add(eth(M2, M1));
    rx(0);
    expect(p[0].io.sent).toHaveLength(0);
    for (const i of [1, 2, 3]) expect(p[i].io.sent).toEqual([eth(M2, M1)]);
    expect(br.fdb.lookup(0, parseMac(M1)!)).toBe(p[0].port.id);
    expect(br.counters.flooded).toBe(1);
  });

  it('sends a known unicast only to its port', () => {
    batch.add(eth(M2, M1));
    rx(0);
    batch.add(eth(M1, M2));
    rx(1);
    expect(p[0].io.sent).toEqual([eth(M1, M2)]);
    expect(p[2].io.sent).toHaveLength(1); // only the first flood
    expect(br.counters.forwarded).toBe(1);
  });

  it('never sends a frame back out of its ingress port', () => {
    batch.add(eth(M3, M1)).add(eth(M3, M3.replace('03', '04')));
    rx(0); // both sources learned on port 0
    batch.add(eth(M1, M2));
    br.fdb.learn(0, parseMac(M2)!, p[0].port.id, 0); // M2 also behind port 0
    br.receive(p[0].port, batch.slab, batch.desc, batch.count);
    expect(p[0].io.sent).toHaveLength(0);
  });

  it('floods broadcast, counts it as group traffic', () => {
    batch.add(eth(BCAST, M1, '0806'));
    rx(2);
    expect(p[0].io.sent).toHaveLength(1);
    expect(p[1].io.sent).toHaveLength(1);
    expect(p[3].io.sent).toHaveLength(1);
    expect(br.counters.floodedGroup).toBe(1);
  });

  it('drops runts, bad sources and link-local destinations, with counters', () => {
    batch.add('00163e000002 00163e00'); // 10 bytes
    batch.add(eth(M2, '01:00:5e:00:00:01')); // multicast source
    batch.add(eth(M2, '00:00:00:00:00:00')); // zero source
    batch.add(eth('01:80:c2:00:00:00', M1, '0026')); // STP BPDU
    batch.add(eth('01:80:c2:00:00:02', M1, '8809')); // LACP
    batch.add(eth('01:80:c2:00:00:0e', M1, '88cc')); // LLDP
    rx(0);
    for (const i of [1, 2, 3]) expect(p[i].io.sent).toHaveLength(0);
    const d = p[0].port.drops();
    expect(d.runt).toBe(1);
    expect(d.bad_src).toBe(2);
    expect(d.link_local).toBe(3);
    expect(p[0].port.rxPackets).toBe(6);
  });

  it('forwards 01:80:c2:00:00:10 and above (not reserved)', () => {
    batch.add(eth('01:80:c2:00:00:10', M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(1);
  });

  it('passes tagged frames unchanged while VLAN-unaware', () => {
    const tagged = eth(M2, M1, '8100', 'a0640800');
    batch.add(tagged);
    rx(0);
    expect(p[3].io.sent).toEqual([tagged]);
  });

  it('a port with learning off does not learn', () => {
    p[1].port.learning = false;
    batch.add(eth(M1, M2));
    rx(1);
    expect(br.fdb.lookup(0, parseMac(M2)!)).toBe(-1);
  });

  it('a port with flood off gets no unknown unicast or multicast, but still broadcast and known unicast', () => {
    p[1].port.flood = false;
    batch.add(eth(M3, M1)).add(eth('01:00:5e:00:00:fb', M1)).add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toEqual([eth(BCAST, M1)]);
    batch.add(eth(M1, M2));
    rx(1); // learn M2 on port 1
    batch.add(eth(M2, M1));
    rx(0);
    expect(p[1].io.sent).toEqual([eth(BCAST, M1), eth(M2, M1)]);
  });

  it('isolated ports reach only non-isolated ports', () => {
    p[0].port.isolated = true;
    p[1].port.isolated = true;
    batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(0);
    expect(p[2].io.sent).toHaveLength(1);
    expect(p[3].io.sent).toHaveLength(1);
    // known unicast between isolated ports is dropped too
    batch.add(eth(BCAST, M2));
    rx(1);
    batch.add(eth(M2, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(0);
  });

  it('a port that is down receives nothing and loses its dynamic entries', () => {
    batch.add(eth(BCAST, M2));
    rx(1);
    expect(br.fdb.lookup(0, parseMac(M2)!)).toBe(p[1].port.id);
    br.setPortState(p[1].port, 'down');
    expect(br.fdb.lookup(0, parseMac(M2)!)).toBe(-1);
    batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(0);
    expect(p[2].io.sent).toHaveLength(2);
  });

  it('a frame received on a port that is not up is ignored', () => {
    br.setPortState(p[0].port, 'down');
    batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(0);
    expect(br.fdb.size).toBe(0);
  });

  it('drops frames over the egress MTU (counted on the egress), but not GSO super-frames', () => {
    p[1].port.mtu = 100;
    const big = eth(BCAST, M1, '0800', '00'.repeat(200));
    batch.add(big);
    batch.add(big, true);
    rx(0);
    expect(p[1].io.sent).toEqual([big]);
    expect(p[1].port.drops().oversize).toBe(1);
    expect(p[2].io.sent).toHaveLength(2);
  });

  it('sends each egress port its whole batch in one native call', () => {
    for (let i = 0; i < 20; i++) batch.add(eth(BCAST, M1, '0800', i.toString(16).padStart(2, '0')));
    rx(0);
    expect(p[1].io.sendCalls).toBe(1);
    expect(p[1].io.sent).toHaveLength(20);
    expect(p[1].port.txPackets).toBe(20);
    expect(p[1].port.txBytes).toBe(20 * 60);
  });

  it('counts what the kernel did not accept', () => {
    p[1].io.acceptLimit = 3;
    for (let i = 0; i < 5; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].port.txPackets).toBe(3);
    expect(p[1].port.drops().tx_full).toBe(2);
  });

  it('removing a port removes its FDB entries and stops delivery to it', () => {
    batch.add(eth(BCAST, M2));
    rx(1);
    br.fdb.addStatic(0, parseMac(M3)!, p[1].port.id, 0);
    br.removePort(p[1].port);
    expect(br.fdb.size).toBe(0);
    batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(0);
    expect(br.portByName('vif2.0')).toBeNull();
  });
});
