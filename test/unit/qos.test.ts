import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import {
  bucketInit, bucketRefill, bucketTake, bucketTokens, bucketWaitUs, defaultBurstKb, MAX_BURST_KB, MAX_KBPS, MILLIBITS_PER_BYTE,
  MIN_DEFAULT_BURST_KB, NO_QOS, priceBytes, type QosSpec,
} from '../../src/bridge/qos.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { VNET_HDR_LEN } from '../../src/io/native-types.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';
import { parseConfig } from '../../src/config/config.js';
import { qosSetSpec } from '../../src/daemon/qos.js';

const M1 = '00:16:3e:00:00:01';
const M2 = '00:16:3e:00:00:02';
const BCAST = 'ff:ff:ff:ff:ff:ff';

describe('token bucket arithmetic', () => {
  it('refills at the rate, caps at the size, and never refills backwards in time', () => {
    const b = new Float64Array(4);
    // 1000 kbit/s = 1000 millibits per us; 10 kbit bucket = 10^7 millibits
    bucketInit(b, 0, 1000, 10_000_000, 0);
    expect(bucketTokens(b, 0)).toBe(10_000_000);
    expect(bucketTake(b, 0, 9_000_000)).toBe(true);
    expect(bucketTokens(b, 0)).toBe(1_000_000);
    bucketRefill(b, 0, 500);
    expect(bucketTokens(b, 0)).toBe(1_500_000);
    bucketRefill(b, 0, 400); // a clock read earlier than the last one: nothing
    expect(bucketTokens(b, 0)).toBe(1_500_000);
    bucketRefill(b, 0, 1_000_000_000);
    expect(bucketTokens(b, 0)).toBe(10_000_000);
  });

  it('lets a frame through while tokens > 0 and charges all of it (a debt of less than one frame)', () => {
    const b = new Float64Array(4);
    bucketInit(b, 0, 1, 100, 0);
    expect(bucketTake(b, 0, 1000)).toBe(true);
    expect(bucketTokens(b, 0)).toBe(-900);
    expect(bucketTake(b, 0, 1)).toBe(false);
    expect(bucketWaitUs(b, 0)).toBe(901);
    expect(bucketWaitUs(b, 0, 50)).toBe(950);
    bucketRefill(b, 0, 900);
    expect(bucketTake(b, 0, 1)).toBe(false);
    bucketRefill(b, 0, 901);
    expect(bucketTake(b, 0, 1)).toBe(true);
  });

  it('stays exact from 1 kbit/s to 100 Gbit/s with the largest bucket and the longest idle time', () => {
    for (const kbps of [1, 7, 1000, 1_000_000, 10_000_000, MAX_KBPS]) {
      for (const burstKb of [1, defaultBurstKb(kbps), MAX_BURST_KB]) {
        const b = new Float64Array(4);
        const size = burstKb * 1_000_000;
        bucketInit(b, 0, kbps, size, 0);
        bucketTake(b, 0, size + 65_535 * MILLIBITS_PER_BYTE - 1); // drain with the largest debt
        const t0 = bucketTokens(b, 0);
        expect(Number.isSafeInteger(t0)).toBe(true);
        // one microsecond earns exactly kbps millibits
        bucketRefill(b, 0, 1);
        expect(bucketTokens(b, 0) - t0).toBe(Math.min(kbps, size - t0));
        // the longest idle time (any clock value) fills it exactly: the product may round, the comparison cannot
        bucketRefill(b, 0, Number.MAX_SAFE_INTEGER);
        expect(bucketTokens(b, 0)).toBe(size);
      }
    }
  });

  it('defaults the burst to a tenth of a second, at least two jumbo frames', () => {
    expect(defaultBurstKb(100_000)).toBe(10_000);
    expect(defaultBurstKb(1)).toBe(MIN_DEFAULT_BURST_KB);
    expect(MIN_DEFAULT_BURST_KB * 1000).toBeGreaterThanOrEqual(2 * 9018 * 8);
  });
});

describe('frame price', () => {
  const slab = new Uint8Array(70_000);
  const off = 16;
  const vnet = (gsoType: number, gsoSize: number, csumStart: number): void => {
    slab.fill(0, 0, off);
    const v = off - VNET_HDR_LEN;
    slab[v] = 1; // NEEDS_CSUM
    slab[v + 1] = gsoType;
    slab[v + 4] = gsoSize & 0xff;
    slab[v + 5] = gsoSize >> 8;
    slab[v + 6] = csumStart & 0xff;
    slab[v + 7] = csumStart >> 8;
  };

  it('is the frame length for an ordinary frame', () => {
    slab.fill(0);
    expect(priceBytes(slab, off, 60)).toBe(60);
    expect(priceBytes(slab, off, 9018)).toBe(9018);
  });

  it('is what the segments cost for a TCP GSO frame: their payload plus one set of headers each', () => {
    vnet(1, 1448, 34);
    slab[off + 34 + 12] = 0x80; // data offset 8 words: 32-byte TCP header (timestamps)
    const headers = 14 + 20 + 32;
    const payload = 45 * 1448;
    expect(priceBytes(slab, off, headers + payload)).toBe(45 * (headers + 1448));
    // a last, short segment
    expect(priceBytes(slab, off, headers + payload + 100)).toBe(46 * headers + payload + 100);
  });

  it('counts UDP GSO headers as 8 bytes after csum_start', () => {
    vnet(5, 1000, 34);
    expect(priceBytes(slab, off, 42 + 3000)).toBe(3 * (42 + 1000));
  });
});

describe('QoS in the engine', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let p: { port: BridgePort; io: FakeIo }[];
  let nowUs: number;
  let holds: Array<[number, number]>;
  let shutdowns: number[];

  const rx = (i: number): void => {
    br.receive(p[i].port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };
  const spec = (s: Partial<QosSpec>): QosSpec => ({ ...NO_QOS, ...s });

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    nowUs = 1_000_000;
    br.clockUs = () => nowUs;
    holds = [];
    shutdowns = [];
    br.qosHook = { hold: (id, until) => holds.push([id, until]), shutdown: (id) => shutdowns.push(id) };
    batch = new BatchBuilder();
    p = ['vif1.0', 'vif2.0', 'vif3.0'].map((n) => addFakePort(br, batch, n));
  });

  it('rate_limit: passes the burst, counts the rest of the batch as rate_limit, and holds the port until it refills', () => {
    // 8 kbit/s (8 millibits/us = 1 byte per ms), bucket of 1 kbit = 125 bytes: two 60-byte frames and then some
    br.setPortQos(p[0].port, spec({ rateLimit: { kbps: 8, burstKb: 1 } }));
    for (let i = 0; i < 5; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(3);
    expect(p[0].port.drops().rate_limit).toBe(2);
    // 125 - 180 = -55 bytes = -440000 millibits; read again at half the bucket (500000): 940000 to earn at 8 per us
    expect(holds).toEqual([[p[0].port.id, nowUs + 117_500]]);
    nowUs += 117_500;
    expect(br.qosWake(p[0].port)).toBe(0);
    expect(br.qosWake(p[0].port)).toBe(0);
    batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(4);
  });

  it('rate_limit: the bucket earns between batches, also when the port was never held', () => {
    br.setPortQos(p[0].port, spec({ rateLimit: { kbps: 8, burstKb: 1 } })); // 125 bytes, 1 byte per ms
    batch.add(eth(BCAST, M1));
    rx(0); // 65 bytes left
    nowUs += 100_000; // full again (capped at 125)
    for (let i = 0; i < 3; i++) batch.add(eth(BCAST, M1));
    rx(0); // 125 -> 65 -> 5 -> -55: all three pass
    expect(p[1].io.sent).toHaveLength(4);
    expect(p[0].port.drops().rate_limit).toBe(0);
  });

  it('a port without QoS is not held and nothing is dropped for it', () => {
    for (let i = 0; i < 64; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(64);
    expect(holds).toHaveLength(0);
  });

  it('egress_rate_limit drops before the write', () => {
    br.setPortQos(p[1].port, spec({ egressRateLimit: { kbps: 8, burstKb: 1 } }));
    for (let i = 0; i < 5; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent).toHaveLength(3);
    expect(p[2].io.sent).toHaveLength(5);
    expect(p[1].port.drops().egress_rate_limit).toBe(2);
    expect(holds).toHaveLength(0); // egress limits never stop reading the sender
  });

  it('storm control counts per class: broadcast, multicast, unknown unicast; known unicast and link-local are not', () => {
    br.setPortQos(p[0].port, spec({ storm: { broadcastPps: 10, multicastPps: 10, unknownUnicastPps: 10, action: 'drop', shutdownS: 30 } }));
    br.fdb.learn(0, Number.parseInt(M2.replaceAll(':', ''), 16), p[1].port.id, 0);
    for (let i = 0; i < 10; i++) batch.add(eth(BCAST, M1, '0806'));
    for (let i = 0; i < 10; i++) batch.add(eth('01:00:5e:00:00:16', M1)); // IGMP's group: multicast
    for (let i = 0; i < 10; i++) batch.add(eth('00:16:3e:00:00:99', M1)); // unknown
    for (let i = 0; i < 10; i++) batch.add(eth(M2, M1)); // known
    rx(0);
    const d = p[0].port.drops();
    // a bucket holds max(pps / 10, 8) packets
    expect(d.storm_broadcast).toBe(2);
    expect(d.storm_multicast).toBe(2);
    expect(d.storm_unknown_unicast).toBe(2);
    expect(p[1].io.sent).toHaveLength(3 * 8 + 10);
    // a second later the buckets hold 8 again (10 earned, capped)
    nowUs += 1_000_000;
    for (let i = 0; i < 10; i++) batch.add(eth(BCAST, M1, '0806'));
    rx(0);
    expect(p[0].port.drops().storm_broadcast).toBe(4);
  });

  it('storm control shutdown takes the port down until shutdown_s is over, then up again', () => {
    br.setPortQos(p[0].port, spec({ storm: { broadcastPps: 10, multicastPps: 0, unknownUnicastPps: 0, action: 'shutdown', shutdownS: 5 } }));
    br.fdb.learn(0, Number.parseInt(M1.replaceAll(':', ''), 16), p[0].port.id, 0);
    for (let i = 0; i < 12; i++) batch.add(eth(BCAST, M2, '0806'));
    rx(0);
    expect(p[0].port.state).toBe('down');
    expect(p[0].port.stormShutdowns).toBe(1);
    expect(shutdowns).toEqual([p[0].port.id]);
    const d = p[0].port.drops();
    expect(d.storm_broadcast).toBe(1);
    expect(d.storm_shutdown).toBe(3);
    expect(holds).toEqual([[p[0].port.id, nowUs + 5_000_000]]);
    // nothing reaches the shut-down port either
    batch.add(eth(BCAST, M2));
    rx(1);
    expect(p[0].io.sent).toHaveLength(0);
    // a carrier event meanwhile does not bring it up
    br.setPortState(p[0].port, 'up');
    expect(p[0].port.state).toBe('down');
    nowUs += 4_000_000;
    expect(br.qosWake(p[0].port)).toBe(nowUs + 1_000_000);
    nowUs += 1_000_000;
    expect(br.qosWake(p[0].port)).toBe(0);
    expect(p[0].port.state).toBe('up');
    batch.add(eth(BCAST, M2));
    rx(1);
    expect(p[0].io.sent).toHaveLength(1);
    // what the guest sent while it was down is read and dropped until a read finds the queue empty
    const sentBefore = p[1].io.sent.length;
    for (let i = 0; i < 64; i++) batch.add(eth(BCAST, M1, '0806'));
    rx(0);
    batch.add(eth(BCAST, M1, '0806'));
    rx(0);
    expect(p[0].port.drops().storm_shutdown).toBe(3 + 65);
    expect(p[1].io.sent).toHaveLength(sentBefore);
    batch.add(eth(BCAST, M1, '0806'));
    rx(0);
    expect(p[1].io.sent).toHaveLength(sentBefore + 1);
    expect(p[0].port.stormShutdowns).toBe(1);
  });

  it('qos clear (an empty spec) brings a shut-down port up and stops dropping', () => {
    br.setPortQos(p[0].port, spec({ rateLimit: { kbps: 8, burstKb: 100 }, storm: { broadcastPps: 1, multicastPps: 0, unknownUnicastPps: 0, action: 'shutdown', shutdownS: 30 } }));
    for (let i = 0; i < 20; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[0].port.state).toBe('down');
    br.setPortQos(p[0].port, NO_QOS);
    expect(p[0].port.qos).toBeNull();
    expect(p[0].port.state).toBe('up');
    for (let i = 0; i < 20; i++) batch.add(eth(BCAST, M1));
    rx(0);
    expect(p[1].io.sent.length).toBeGreaterThanOrEqual(20);
  });
});

describe('QoS config and qos set parameters', () => {
  it('reads rate_limit, egress_rate_limit and storm_control on ports and port_defaults; null undoes a default', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    port_defaults: { rate_limit: { kbps: 100000 }, storm_control: { broadcast_pps: 1000 } }
    ports:
      - { name: vif1.0 }
      - { name: vif2.0, egress_rate_limit: { kbps: 50000, burst_kb: 500 }, rate_limit: null }
      - { name: vif3.0, storm_control: { multicast_pps: 10, unknown_unicast_pps: 20, action: shutdown, shutdown_s: 5 } }
    vxlan:
      - { name: vx1, vni: 1, local: 198.18.0.1, remotes: [198.18.0.2], rate_limit: { kbps: 1000, burst_kb: 10 } }
`);
    const [p1, p2, p3] = cfg.bridges[0].ports;
    expect(p1.qos).toEqual({ rateLimit: { kbps: 100_000, burstKb: 10_000 }, egressRateLimit: null, storm: { broadcastPps: 1000, multicastPps: 0, unknownUnicastPps: 0, action: 'drop', shutdownS: 30 } });
    expect(p2.qos.rateLimit).toBeNull();
    expect(p2.qos.egressRateLimit).toEqual({ kbps: 50_000, burstKb: 500 });
    expect(p3.qos.storm).toEqual({ broadcastPps: 0, multicastPps: 10, unknownUnicastPps: 20, action: 'shutdown', shutdownS: 5 });
    expect(cfg.bridges[0].vxlan[0].qos.rateLimit).toEqual({ kbps: 1000, burstKb: 10 });
  });

  it('names the key path of bad values', () => {
    let msg = '';
    try {
      parseConfig(`
bridges:
  - name: b
    ports:
      - { name: v1, rate_limit: { kbps: 0 } }
      - { name: v2, storm_control: { action: shutdown } }
      - { name: v3, egress_rate_limit: { kbps: 1000, burst: 3 } }
      - { name: h, kind: host, rate_limit: { kbps: 1000 } }
`);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('bridges[0].ports[0].rate_limit.kbps: must be an integer 1..100000000, got 0');
    expect(msg).toContain('bridges[0].ports[1].storm_control: sets no threshold');
    expect(msg).toContain('bridges[0].ports[2].egress_rate_limit.burst: unknown key');
    expect(msg).toContain('bridges[0].ports[3]: rate_limit, egress_rate_limit and storm_control apply to tap and attach ports');
  });

  it('qos set changes only what it names; 0 removes a limit or threshold', () => {
    const set = (cur: QosSpec, p: Record<string, unknown>): QosSpec => {
      const r = qosSetSpec(cur, p);
      if ('problems' in r) throw new Error(JSON.stringify(r.problems));
      return r.spec;
    };
    let s = set(NO_QOS, { kbps: 100_000 });
    expect(s.rateLimit).toEqual({ kbps: 100_000, burstKb: 10_000 });
    s = set(s, { burst_kb: 2000, broadcast_pps: 100 });
    expect(s.rateLimit).toEqual({ kbps: 100_000, burstKb: 2000 });
    expect(s.storm).toMatchObject({ broadcastPps: 100, action: 'drop' });
    s = set(s, { egress_kbps: 5000, storm_action: 'shutdown', shutdown_s: 9 });
    expect(s.egressRateLimit).toEqual({ kbps: 5000, burstKb: defaultBurstKb(5000) });
    expect(s.storm).toMatchObject({ broadcastPps: 100, action: 'shutdown', shutdownS: 9 });
    s = set(s, { kbps: 0, broadcast_pps: 0 });
    expect(s).toEqual({ rateLimit: null, egressRateLimit: { kbps: 5000, burstKb: defaultBurstKb(5000) }, storm: null });
    expect(qosSetSpec(NO_QOS, { burst_kb: 10 })).toEqual({ problems: [['burst_kb', 'needs kbps (the port has no such limit)']] });
    expect(qosSetSpec(NO_QOS, { kbps: -1 })).toMatchObject({ problems: [['kbps', expect.stringContaining('0..100000000')]] });
  });
});
