// Capture (src/observe/capture.ts) through the engine with a fake control stream: frames as on the port's
// wire (tags pushed/popped, no vnet header), the direction and VLAN filters, --dropped with the reason,
// -c, a slow reader (frames dropped and counted as capture_dropped, forwarding unaffected), the ISB at the
// end, several captures at once, and the port's tap removed when the last capture ends.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import type { BridgePort } from '../../src/bridge/port.js';
import type { ControlClient, ControlStream } from '../../src/control/server.js';
import { Captures, captureOptionsFrom } from '../../src/observe/capture.js';
import { BT_EPB, BT_IDB, BT_ISB, BT_SHB, readIsb } from '../../src/observe/pcapng.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';

const M1 = '00:16:3e:00:00:01';
const M2 = '00:16:3e:00:00:02';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const tagged = (frame: string, vid: number): string => frame.slice(0, 24) + '8100' + vid.toString(16).padStart(4, '0') + frame.slice(24);

/** A ControlClient/ControlStream pair that keeps what is written; `accept` decides whether a chunk fits. */
class FakeClient {
  chunks: Buffer[] = [];
  accept = (_bytes: number): boolean => true;
  ended = false;
  private closeFns: (() => void)[] = [];
  private open = true;
  readonly stream = {
    maxBufferedBytes: 1 << 20,
    get isOpen(): boolean {
      return client.open;
    },
    write: (chunk: Uint8Array): boolean => {
      if (!this.open || !this.accept(chunk.byteLength)) return false;
      this.chunks.push(Buffer.from(chunk));
      return true;
    },
    onClose: (fn: () => void): void => {
      this.closeFns.push(fn);
    },
    close: (): void => {
      this.open = false;
    },
  };
  openStream(): ControlStream {
    return this.stream as unknown as ControlStream;
  }
  end(): void {
    this.ended = true;
  }
  /** the client went away */
  disconnect(): void {
    this.open = false;
    for (const fn of this.closeFns.splice(0)) fn();
  }
  /** pcapng blocks written so far: [type, body] */
  blocks(): { type: number; block: Buffer }[] {
    const all = Buffer.concat(this.chunks);
    const out: { type: number; block: Buffer }[] = [];
    for (let p = 0; p < all.length;) {
      const len = all.readUInt32LE(p + 4);
      out.push({ type: all.readUInt32LE(p), block: all.subarray(p, p + len) });
      p += len;
    }
    return out;
  }
  /** EPBs: [hex data, flags, comment] */
  packets(): [string, number, string | null][] {
    return this.blocks().filter((b) => b.type === BT_EPB).map(({ block }) => {
      const cap = block.readUInt32LE(20);
      const data = block.subarray(28, 28 + cap).toString('hex');
      let p = 28 + ((cap + 3) & ~3);
      let flags = -1;
      let comment: string | null = null;
      while (p < block.length - 4) {
        const code = block.readUInt16LE(p);
        const len = block.readUInt16LE(p + 2);
        if (code === 0) break;
        if (code === 2) flags = block.readUInt32LE(p + 4);
        if (code === 1) comment = block.subarray(p + 4, p + 4 + len).toString();
        p += 4 + ((len + 3) & ~3);
      }
      return [data, flags, comment];
    });
  }
}
let client: FakeClient;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('capture', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let vm1: { port: BridgePort; io: FakeIo };
  let vm2: { port: BridgePort; io: FakeIo };
  let up: { port: BridgePort; io: FakeIo };
  let caps: Captures;
  const rx = (p: { port: BridgePort }, ...frames: string[]): void => {
    for (const f of frames) batch.add(f);
    br.receive(p.port, batch.slab, batch.desc, batch.count);
    batch.reset();
  };
  const start = (port: BridgePort, p: Record<string, unknown>, c = new FakeClient()): FakeClient => {
    client = c;
    caps.start(port, captureOptionsFrom(p), c as unknown as ControlClient);
    return c;
  };

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 16, fdbMax: 1024, ageingTimeMs: 300_000 });
    batch = new BatchBuilder();
    vm1 = addFakePort(br, batch, 'vif1.0');
    vm2 = addFakePort(br, batch, 'vif2.0');
    up = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
    br.setPortVlan(vm1.port, { mode: 'access', vlan: 10 });
    br.setPortVlan(vm2.port, { mode: 'access', vlan: 10 });
    br.setPortVlan(up.port, { mode: 'trunk', vlans: [10, 20], native: null });
    caps = new Captures();
  });
  afterEach(() => caps.endAll());

  it('records both directions as on the wire: the trunk with its tags, the access port without', async () => {
    const cu = start(up.port, {});
    const c1 = start(vm1.port, {});
    rx(vm1, eth(BCAST, M1, '0806'));
    rx(up, tagged(eth(M1, M2), 10));
    await turn();
    await turn();
    const types = cu.blocks().map((b) => b.type);
    expect(types.slice(0, 2)).toEqual([BT_SHB, BT_IDB]);
    // peth0: the flood leaves tagged (outbound), the reply enters tagged (inbound)
    expect(cu.packets()).toEqual([[tagged(eth(BCAST, M1, '0806'), 10), 2, null], [tagged(eth(M1, M2), 10), 1, null]]);
    // vif1.0: what it sent (inbound to the bridge) and the reply without its tag (outbound)
    expect(c1.packets()).toEqual([[eth(BCAST, M1, '0806'), 1, null], [eth(M1, M2), 2, null]]);
  });

  it('filters by direction and VLAN; --dropped adds drops with the reason; -c ends with an ISB', async () => {
    const cIn = start(up.port, { direction: 'in', vlan: 20 });
    const cDrop = start(vm1.port, { direction: 'in', dropped: true, count: 2 });
    rx(up, tagged(eth(M1, M2), 10), tagged(eth(M1, M2), 20), tagged(eth(M1, M2), 30));
    rx(vm1, tagged(eth(M2, M1), 20), eth(BCAST, M1, '0806'), eth(BCAST, M1, '0806'));
    await turn();
    await turn();
    expect(cIn.packets()).toEqual([[tagged(eth(M1, M2), 20), 1, null]]);
    // the tagged frame on the access port, with its reason; then one frame; -c 2 stops there
    expect(cDrop.packets()).toEqual([[tagged(eth(M2, M1), 20), 1, 'tagged_on_access'], [eth(BCAST, M1, '0806'), 1, null]]);
    const last = cDrop.blocks().at(-1)!;
    expect(last.type).toBe(BT_ISB);
    expect(readIsb(last.block)).toEqual({ received: 2, dropped: 0 });
    expect(cDrop.ended).toBe(true);
    expect(caps.count).toBe(1);
  });

  it('a slow reader loses frames, counted as capture_dropped; forwarding is untouched', async () => {
    const c = start(vm1.port, {});
    c.accept = () => false; // the client's stream buffer is full
    rx(vm1, eth(BCAST, M1, '0806'), eth(M2, M1));
    await turn();
    expect(vm2.io.sent).toHaveLength(2);
    expect(vm1.port.captureDropped).toBe(2);
    expect(Object.keys(vm1.port.drops())).not.toContain('capture_dropped');
    c.accept = () => true;
    rx(vm1, eth(M2, M1));
    await turn();
    caps.stop(c as unknown as ControlClient);
    expect(readIsb(c.blocks().at(-1)!.block)).toEqual({ received: 3, dropped: 2 });
    expect(c.packets()).toHaveLength(1);
  });

  it('the buffer inside a batch is bounded: frames beyond it are dropped and counted', async () => {
    const c = start(vm1.port, {});
    // 5 batches of 16 frames of 60 kB in one event-loop turn (GSO-sized bursts): more than the 4 MiB buffer holds
    const big = eth(BCAST, M1, '0806').padEnd(2 * 60_000, '0');
    for (let b = 0; b < 5; b++) {
      for (let i = 0; i < 16; i++) batch.add(big, true);
      br.receive(vm1.port, batch.slab, batch.desc, batch.count);
      batch.reset();
    }
    const kept = Math.floor((4 * 1024 * 1024) / (16 + 60_000));
    expect(vm1.port.captureDropped).toBe(80 - kept);
    expect(vm2.io.sent).toHaveLength(80);
    await turn();
    expect(c.packets()).toHaveLength(kept);
  });

  it('several captures at once; a client that goes away ends its capture and the port loses its tap', async () => {
    const a = start(vm1.port, {});
    const b = start(vm1.port, { direction: 'out' });
    expect(vm1.port.tap).not.toBeNull();
    rx(vm1, eth(BCAST, M1, '0806'));
    rx(vm2, eth(M1, M2));
    await turn();
    expect(a.packets().length).toBe(2);
    expect(b.packets().map((p) => p[1])).toEqual([2]);
    a.disconnect();
    expect(caps.count).toBe(1);
    b.disconnect();
    expect(caps.count).toBe(0);
    expect(vm1.port.tap).toBeNull();
  });

  it('checks its options', () => {
    expect(() => captureOptionsFrom({ direction: 'up' })).toThrow(/^direction:/);
    expect(() => captureOptionsFrom({ vlan: 4095 })).toThrow(/^vlan:/);
    expect(() => captureOptionsFrom({ count: -1 })).toThrow(/^count:/);
    expect(() => captureOptionsFrom({ dropped: 'yes' })).toThrow(/^dropped:/);
    expect(captureOptionsFrom({})).toEqual({ direction: 'both', dropped: false, vlan: null, count: 0 });
  });
});
