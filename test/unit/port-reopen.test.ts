// A port whose I/O the addon stopped is re-opened with backoff while its netdev exists (issue 9 section 3), with the
// native layer faked: the addon's onError(errno, syscall, stopped=true) is played by the test.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/log.js';

interface FakeIo {
  name: string;
  ifindex: number;
  kind: 'packet';
  tx: Uint32Array;
  counters: Float64Array;
  isClosed: boolean;
  onError: ((errno: number, syscall: string, stopped: boolean) => void) | null;
  start(onBatch: unknown, onError: (errno: number, syscall: string, stopped: boolean) => void): void;
  send(): number;
  readSocketDrops(): number;
  close(): void;
}

const state = vi.hoisted(() => ({
  info: null as null | { ifindex: number; flags: number; mtu: number; mac: string; txqueuelen: number },
  opened: [] as FakeIo[],
}));

vi.mock('../../src/io/native.js', () => ({
  IFF_UP: 0x1,
  IFF_RUNNING: 0x40,
  IFF_LOWER_UP: 0x10000,
  IFF_LOOPBACK: 0x8,
  netdev: { info: () => state.info },
  PacketPort: {
    openPacket: (name: string): FakeIo => {
      if (state.info === null) throw new Error('ENODEV');
      const io: FakeIo = {
        name,
        ifindex: state.info.ifindex,
        kind: 'packet',
        tx: new Uint32Array(256),
        counters: new Float64Array(16),
        isClosed: false,
        onError: null,
        start(_onBatch, onError) {
          this.onError = onError;
        },
        send: () => 0,
        readSocketDrops: () => 0,
        close() {
          this.isClosed = true;
        },
      };
      state.opened.push(io);
      return io;
    },
  },
}));
vi.mock('../../src/daemon/hoststack.js', () => ({ silenceHostStack: () => {} }));

const { Bridge } = await import('../../src/bridge/bridge.js');
const { BridgePort } = await import('../../src/bridge/port.js');
const { ManagedPort, REOPEN_MIN_MS } = await import('../../src/daemon/ports.js');
const { pino } = await import('pino');

function setup(): InstanceType<typeof ManagedPort> {
  const bridge = new Bridge({ name: 'br0', maxPorts: 8, fdbMax: 64, ageingTimeMs: 0 });
  const port = new BridgePort(0, 'vif3.0', 'attach', { learning: true, flood: true, isolated: false }, 1500);
  bridge.addPort(port);
  return new ManagedPort(bridge, port, { persist: false }, 1500, pino({ level: 'silent' }) as unknown as Logger);
}

describe('re-open after the addon stopped a port', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    state.opened.length = 0;
    state.info = { ifindex: 7, flags: 0x1 | 0x40, mtu: 1500, mac: '02:00:00:00:00:07', txqueuelen: 1000 };
  });
  afterEach(() => vi.useRealTimers());

  it('re-opens after 100 ms, then after 200 ms, ... while the netdev exists; stops when it is gone', () => {
    const mp = setup();
    expect(mp.open()).toBe(true);
    expect(mp.port.state).toBe('up');
    // the addon gave up on the fd (e.g. 8 POLLERR wakeups in a row)
    state.opened[0].onError!(9, 'poll', true);
    expect(state.opened[0].isClosed).toBe(true);
    expect(mp.port.state).toBe('absent');
    vi.advanceTimersByTime(REOPEN_MIN_MS - 1);
    expect(state.opened).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(state.opened).toHaveLength(2);
    expect(mp.port.state).toBe('up');
    expect(mp.reopens).toBe(1);
    // stopped again at once: the next delay doubles
    state.opened[1].onError!(9, 'poll', true);
    vi.advanceTimersByTime(2 * REOPEN_MIN_MS - 1);
    expect(state.opened).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(state.opened).toHaveLength(3);
    // stopped, and the netdev is gone meanwhile: no re-open (rtnetlink announces a new one)
    state.opened[2].onError!(19, 'recvmsg', true);
    state.info = null;
    vi.advanceTimersByTime(60_000);
    expect(state.opened).toHaveLength(3);
    expect(mp.port.state).toBe('absent');
  });

  it('a port closed on purpose (delif, shutdown) cancels a pending re-open; a transient error re-opens nothing', () => {
    const mp = setup();
    mp.open();
    state.opened[0].onError!(100, 'poll', false);
    expect(state.opened[0].isClosed).toBe(false);
    state.opened[0].onError!(9, 'poll', true);
    mp.close('absent');
    vi.advanceTimersByTime(60_000);
    expect(state.opened).toHaveLength(1);
  });
});
