// The running daemon's side of the two-phase handover (src/handover/serve.ts) with the addon faked: the resume rule.
// The old daemon reads again on a refusal, EOF or timeout only while it has not answered "stopping"; once it has, it
// never resumes, whatever happens to the connection.

import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const written: Array<{ fd: number; text: string }> = [];
const sent: Array<{ list: number[]; payload: Uint8Array; version: number }> = [];
vi.mock('../../src/io/native.js', () => ({
  fds: {
    send: (_sock: number, list: number[], payload: Uint8Array, version: number) => {
      sent.push({ list: [...list], payload, version });
    },
    write: (fd: number, text: string) => written.push({ fd, text }),
  },
  isNativeError: () => false,
}));

const { serveHandover } = await import('../../src/handover/serve.js');
const { HANDOVER_ACK_TIMEOUT_MS, HANDOVER_PROTOCOL, parsePayload } = await import('../../src/handover/protocol.js');

type Handler = (sock: FakeSock, params: Record<string, unknown>, id: unknown) => void;

class FakeSock extends EventEmitter {
  _handle = { fd: 9 };
  destroyed = false;
  ended = '';
  pause(): void {}
  resume(): void {}
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
  end(text: string): void {
    this.ended = text;
  }
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => silent };

type VhostHandoverFake = { name: string; fds: Array<[number, number]>; state: Record<string, unknown> };

function setup(vhost: VhostHandoverFake[] = []) {
  let handler: Handler | null = null;
  const control = {
    path: '/run/x.sock',
    handoverFd: 7,
    frozen: 0,
    thawed: 0,
    onConnectionMethod: (_m: string, h: Handler) => {
      handler = h;
    },
    freeze() {
      this.frozen++;
    },
    thaw() {
      this.thawed++;
    },
  };
  const daemon = {
    paused: 0,
    resumed: 0,
    pauseIo() {
      this.paused++;
    },
    resumeIo() {
      this.resumed++;
    },
    /** pauseIo() calls made before vhostHandovers() was asked (the rings are exported only from a paused port) */
    pausedAtExport: -1,
    portIos: () => [],
    /** the data workers that have not acknowledged the pause (workersStillReading) */
    stillReading: [] as number[],
    workersStillReading() {
      return this.stillReading;
    },
    vhostHandovers() {
      this.pausedAtExport = this.paused;
      return vhost;
    },
  };
  const events = { handedOver: 0, resumed: 0 };
  const server = serveHandover({
    daemon: daemon as never,
    control: control as never,
    log: silent as never,
    state: () => '{}',
    stateLockFd: () => -1,
    onHandedOver: () => events.handedOver++,
    onResumed: () => events.resumed++,
  });
  const sock = new FakeSock();
  const start = (protocols: number[] = [HANDOVER_PROTOCOL]) => handler!(sock, { protocols, pid: 1234 }, 1);
  return { server, sock, daemon, control, events, start };
}

describe('serveHandover: the resume rule', () => {
  beforeEach(() => {
    written.length = 0;
    sent.length = 0;
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('"stop" is answered with "stopping"; the daemon is committed and never resumes afterwards', () => {
    const t = setup();
    t.start();
    expect(t.server.phase).toBe('sent');
    expect(t.daemon.paused).toBe(1);
    t.sock.emit('data', Buffer.from('{"stop":true}\n'));
    expect(written).toEqual([{ fd: 9, text: '{"stopping":true}\n' }]);
    expect(t.server.phase).toBe('committed');
    expect(t.events.handedOver).toBe(1);
    // the new daemon goes away, the timeout passes: nothing resumes
    t.sock.destroy();
    vi.advanceTimersByTime(HANDOVER_ACK_TIMEOUT_MS * 2);
    expect(t.daemon.resumed).toBe(0);
    expect(t.control.thawed).toBe(0);
    expect(t.events.resumed).toBe(0);
  });

  it('no line within the timeout: it resumes, and a "stop" arriving later is not answered', () => {
    const t = setup();
    t.start();
    vi.advanceTimersByTime(HANDOVER_ACK_TIMEOUT_MS);
    expect(t.daemon.resumed).toBe(1);
    expect(t.control.thawed).toBe(1);
    expect(t.server.phase).toBe('idle');
    expect(t.events.resumed).toBe(1);
    t.sock.emit('data', Buffer.from('{"stop":true}\n'));
    expect(written).toEqual([]);
    expect(t.events.handedOver).toBe(0);
  });

  it('a refusal or EOF before "stop" resumes', () => {
    const a = setup();
    a.start();
    a.sock.emit('data', Buffer.from('{"refused":"no"}\n'));
    expect(a.daemon.resumed).toBe(1);
    expect(a.server.phase).toBe('idle');
    const b = setup();
    b.start();
    b.sock.destroy();
    expect(b.daemon.resumed).toBe(1);
    expect(b.events.handedOver).toBe(0);
  });

  it('protocol 2 carries a vhost-user port: its fds (kind vhost-user, role in ifindex) and its state, exported after the pause; committed, it is not resumed', () => {
    const state = { features: '0x1', rings: [{ num: 256, lastAvail: 7 }, { num: 256, lastAvail: 9 }] };
    const t = setup([{ name: 'vif3.0', fds: [[0, 40], [1, 41], [17, 42]], state }]);
    t.start();
    expect(t.daemon.pausedAtExport).toBe(1);
    expect(sent).toHaveLength(1);
    expect(sent[0].version).toBe(2);
    // the vhost-user fds, then the listening control socket
    expect(sent[0].list).toEqual([40, 41, 42, 7]);
    const p = parsePayload(sent[0].payload, sent[0].list.length);
    expect(p.protocol).toBe(2);
    expect(p.fds.slice(0, 3)).toEqual([
      { kind: 'vhost-user', name: 'vif3.0', ifindex: 0 },
      { kind: 'vhost-user', name: 'vif3.0', ifindex: 1 },
      { kind: 'vhost-user', name: 'vif3.0', ifindex: 17 },
    ]);
    expect(p.vhost).toEqual({ 'vif3.0': state });
    t.sock.emit('data', Buffer.from('{"stop":true}\n'));
    expect(t.server.phase).toBe('committed');
    t.sock.destroy();
    vi.advanceTimersByTime(HANDOVER_ACK_TIMEOUT_MS * 2);
    expect(t.daemon.resumed).toBe(0);
  });

  it('version 1\'s {"forwarding":true} is not a "stop": it resumes', () => {
    const t = setup();
    t.start();
    t.sock.emit('data', Buffer.from('{"forwarding":true}\n'));
    expect(t.daemon.resumed).toBe(1);
    expect(t.events.handedOver).toBe(0);
    expect(written).toEqual([]);
  });

  it('a data worker that has not acknowledged the I/O pause (it may still read a port): refused before any fd is sent; the daemon reads again', () => {
    const t = setup();
    t.daemon.stillReading = [2];
    t.start();
    expect(t.daemon.paused).toBe(1);
    expect(sent).toEqual([]);
    expect(t.sock.ended).toMatch(/handover_refused/);
    expect(t.sock.ended).toMatch(/data worker 2 of this daemon did not acknowledge the I\/O pause/);
    expect(t.daemon.resumed).toBe(1);
    expect(t.control.thawed).toBe(1);
    expect(t.server.phase).toBe('idle');
    expect(t.events.resumed).toBe(1);
    // once the worker has acknowledged, the next handover goes ahead
    t.daemon.stillReading = [];
    t.start();
    expect(sent).toHaveLength(1);
    expect(t.server.phase).toBe('sent');
  });

  it('a peer that offers only protocol 1 is refused before anything is paused', () => {
    const t = setup();
    t.start([1]);
    expect(t.sock.ended).toMatch(/handover_refused/);
    expect(t.daemon.paused).toBe(0);
    expect(t.control.frozen).toBe(0);
    expect(t.server.phase).toBe('idle');
  });
});
