// The running daemon's side of the two-phase handover (src/handover/serve.ts) with the addon faked: the resume rule.
// The old daemon reads again on a refusal, EOF or timeout only while it has not answered "stopping"; once it has, it
// never resumes, whatever happens to the connection.

import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const written: Array<{ fd: number; text: string }> = [];
vi.mock('../../src/io/native.js', () => ({
  fds: {
    send: () => undefined,
    write: (fd: number, text: string) => written.push({ fd, text }),
  },
  isNativeError: () => false,
}));

const { serveHandover } = await import('../../src/handover/serve.js');
const { HANDOVER_ACK_TIMEOUT_MS, HANDOVER_PROTOCOL } = await import('../../src/handover/protocol.js');

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

function setup() {
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
    portIos: () => [],
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

  it('version 1\'s {"forwarding":true} is not a "stop": it resumes', () => {
    const t = setup();
    t.start();
    t.sock.emit('data', Buffer.from('{"forwarding":true}\n'));
    expect(t.daemon.resumed).toBe(1);
    expect(t.events.handedOver).toBe(0);
    expect(written).toEqual([]);
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
