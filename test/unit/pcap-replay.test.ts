// Replays real captured traffic (test/fixtures/basic.pcap, made by scripts/make-fixtures.sh) through
// the forwarding engine: each frame enters on the port of the host that sent it.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import { parseMac } from '../../src/frame/mac.js';
import { addFakePort, BatchBuilder } from '../support/fake-io.js';
import { readPcap } from '../support/pcap.js';

const fixture = fileURLToPath(new URL('../fixtures/basic.pcap', import.meta.url));
const HOST_A = '00163efa0001';
const HOST_B = '00163efa0002';

describe('pcap replay through the engine', () => {
  it('learns both hosts, floods the ARP request, unicasts the rest and drops what must not pass', async () => {
    const frames = await readPcap(fixture);
    expect(frames.length).toBe(12);
    const br = new Bridge({ name: 'br', maxPorts: 8, fdbMax: 64, ageingTimeMs: 300_000 });
    const batch = new BatchBuilder();
    const a = addFakePort(br, batch, 'vifa');
    const b = addFakePort(br, batch, 'vifb');
    const c = addFakePort(br, batch, 'vifc');
    for (const f of frames) {
      const src = f.subarray(6, 12).toString('hex');
      // the multicast-source frame was sent by A's raw socket
      const ingress = src === HOST_B ? b : a;
      batch.add(f);
      br.receive(ingress.port, batch.slab, batch.desc, batch.count);
      batch.reset();
    }
    expect(br.fdb.lookup(0, parseMac('00:16:3e:fa:00:01')!)).toBe(a.port.id);
    expect(br.fdb.lookup(0, parseMac('00:16:3e:fa:00:02')!)).toBe(b.port.id);
    // default ports learn per VLAN: A is known in the untagged network and, from the tagged frame, in VLAN 100
    expect(br.fdb.lookup(100, parseMac('00:16:3e:fa:00:01')!)).toBe(a.port.id);
    expect(br.fdb.size).toBe(3);
    // C sees the broadcast ARP request and the VID 100 frame (B is unknown in VLAN 100: flooded, tag intact)
    expect(c.io.sent).toHaveLength(2);
    expect(c.io.sent[0].startsWith(`ffffffffffff${HOST_A}0806`)).toBe(true);
    expect(c.io.sent[1]).toMatch(new RegExp(`^${HOST_B}${HOST_A}8100a064`));
    // B gets ARP request, 3 echo requests and the VID 100 tagged frame, tag intact
    expect(b.io.sent).toHaveLength(5);
    expect(b.io.sent[4]).toMatch(new RegExp(`^${HOST_B}${HOST_A}8100a064`));
    // A gets the ARP reply and 3 echo replies
    expect(a.io.sent).toHaveLength(4);
    expect(a.port.drops()).toMatchObject({ link_local: 2, bad_src: 1, runt: 0 });
    expect(br.counters.flooded).toBe(1);
    expect(br.counters.floodedGroup).toBe(1);
  });
});
