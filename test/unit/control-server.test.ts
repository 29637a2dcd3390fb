// The control server under hostile clients (issue 9, section 1): backpressure for a client that
// never reads, the per-client output cap, control_max_clients (stop accepting, the backlog queues,
// nobody is refused), the idle timeout for half-sent lines, over-long lines, the stream hook, bad
// JSON-RPC ids, and what may be at the socket path. Needs the native addon (built by npm ci), no root.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ControlServer,
  handleLine,
  SocketPathError,
  type ControlServerOptions,
  type ControlStream,
  type MethodHandler,
} from '../../src/control/server.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { collectLines, connectUnix } from '../support/unix-connect.js';

let dir: string;
let servers: ControlServer[] = [];
let sockets: Socket[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tb-ctl-'));
});
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  for (const s of servers) await s.close();
  servers = [];
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(fn: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function logCapture(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(s) }) as unknown as Logger;
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function start(methods: Map<string, MethodHandler>, opts: ControlServerOptions = {}, log = silentLogger()): Promise<ControlServer> {
  const s = new ControlServer(join(dir, 'ctl.sock'), methods, log, opts);
  await s.listen();
  servers.push(s);
  return s;
}

const connect = (path: string): Promise<Socket> => connectUnix(path, sockets);

const lines = collectLines;

const req = (id: number, method = 'version'): string => `${JSON.stringify({ jsonrpc: '2.0', id, method })}\n`;

describe('JSON-RPC ids', () => {
  const methods = new Map<string, MethodHandler>([['echo', (p) => p]]);
  const rpc = (line: string): unknown => handleLine(line, methods, silentLogger());

  it('rejects an id that is an object, an array, a fraction or a boolean with -32600 and id null', () => {
    for (const id of ['{"a":1}', '[1]', '1.5', 'true']) {
      expect(rpc(`{"jsonrpc":"2.0","id":${id},"method":"echo"}`), id).toMatchObject({
        id: null, error: { code: -32600, data: { code: 'invalid_request' } },
      });
    }
  });

  it('accepts string, integer and null ids, and keeps notifications unanswered', () => {
    expect(rpc('{"jsonrpc":"2.0","id":"a","method":"echo"}')).toMatchObject({ id: 'a', result: {} });
    expect(rpc('{"jsonrpc":"2.0","id":-3,"method":"echo"}')).toMatchObject({ id: -3, result: {} });
    expect(rpc('{"jsonrpc":"2.0","id":null,"method":"echo"}')).toMatchObject({ id: null, result: {} });
    expect(rpc('{"jsonrpc":"2.0","method":"echo"}')).toBeNull();
  });
});

describe('control server bounds', () => {
  it('stops reading a client that does not read its replies, and answers everything once it does', async () => {
    let calls = 0;
    const big = 'x'.repeat(100_000);
    const s = await start(new Map<string, MethodHandler>([['big', () => {
      calls++;
      return big;
    }]]));
    const c = await connect(s.path);
    c.pause();
    const n = 1000;
    const all = Array.from({ length: n }, (_, i) => req(i, 'big')).join('');
    c.write(all);
    await sleep(500);
    // replies pile up in the kernel's buffers (a few hundred KB), not in the daemon: few requests ran
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(60);
    expect(s.clientCount).toBe(1);
    const r = lines(c);
    c.resume();
    await waitUntil(() => r.got.length === n, 20_000);
    expect(calls).toBe(n);
    expect(r.got.map((l) => (JSON.parse(l) as { id: number }).id)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('drops a client whose pending output would exceed the cap, and logs it once', async () => {
    const cap = logCapture();
    const s = await start(new Map<string, MethodHandler>([['big', () => 'y'.repeat(5_000_000)]]), { maxPendingBytes: 1_000_000 }, cap.log);
    const c = await connect(s.path);
    c.pause();
    const r = lines(c);
    c.write(req(1, 'big') + req(2, 'big') + req(3, 'big'));
    await waitUntil(() => r.closed());
    expect(s.clientsDropped).toBe(1);
    expect(cap.lines().filter((l) => l.msg === 'control client dropped')).toHaveLength(1);
  });

  it('at control_max_clients stops accepting: new clients wait in the backlog, are served as others leave, logged once', async () => {
    const cap = logCapture();
    const s = await start(new Map<string, MethodHandler>([['version', () => 'v']]), { maxClients: 3 }, cap.log);
    const first = await Promise.all([connect(s.path), connect(s.path), connect(s.path)]);
    await waitUntil(() => s.clientCount === 3);
    expect(s.accepting).toBe(false);
    // connect() succeeds through the kernel backlog; the request waits
    const waiting = await Promise.all([connect(s.path), connect(s.path)]);
    const replies = waiting.map((w) => lines(w));
    waiting.forEach((w, i) => w.write(req(10 + i)));
    await sleep(300);
    expect(replies.map((r) => r.got.length)).toEqual([0, 0]);
    expect(s.clientCount).toBe(3);
    first[0]!.destroy();
    first[1]!.destroy();
    await waitUntil(() => replies.every((r) => r.got.length === 1));
    expect(replies.map((r) => (JSON.parse(r.got[0]!) as { result: string }).result)).toEqual(['v', 'v']);
    expect(cap.lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('control clients at control_max_clients'))).toHaveLength(1);
  });

  it('serves 700 concurrent clients with a cap of 8 without refusing any (backlog above Node\'s default 511)', async () => {
    const s = await start(new Map<string, MethodHandler>([['version', () => 'v']]), { maxClients: 8 });
    const results = await Promise.all(Array.from({ length: 700 }, async (_, i) => {
      const c = await connect(s.path);
      const r = lines(c);
      c.write(req(i));
      await waitUntil(() => r.got.length === 1, 20_000);
      c.destroy();
      return (JSON.parse(r.got[0]!) as { id: number }).id;
    }));
    expect(results).toEqual(Array.from({ length: 700 }, (_, i) => i));
    expect(s.acceptPauses).toBeGreaterThan(0);
  });

  it('closes a connection whose half-sent line sees no newline within the idle timeout', async () => {
    const s = await start(new Map<string, MethodHandler>([['version', () => 'v']]), { lineIdleTimeoutMs: 200 });
    const c = await connect(s.path);
    const r = lines(c);
    c.write('{"jsonrpc":"2.0","id":1,"meth');
    await waitUntil(() => r.closed());
    expect(JSON.parse(r.got[0]!)).toMatchObject({ error: { code: -32600, data: { code: 'request_timeout' } } });
    // an idle client without a half-sent line is left alone
    const idle = await connect(s.path);
    const ri = lines(idle);
    await sleep(500);
    expect(ri.closed()).toBe(false);
    idle.write(req(2));
    await waitUntil(() => ri.got.length === 1);
  });

  it('drops a client whose replies do not drain for the idle timeout, freeing its slot at control_max_clients', async () => {
    const cap = logCapture();
    const big = 'x'.repeat(100_000);
    const s = await start(new Map<string, MethodHandler>([['big', () => big], ['version', () => 'v']]), { lineIdleTimeoutMs: 300, maxClients: 2 }, cap.log);
    // two clients that ask for more than the socket buffers hold and never read: every slot taken
    const stuck = await Promise.all([connect(s.path), connect(s.path)]);
    const closed = stuck.map((c) => {
      c.pause();
      c.write(Array.from({ length: 50 }, (_, i) => req(i, 'big')).join(''));
      return lines(c);
    });
    await waitUntil(() => s.clientCount === 2);
    // a third client waits in the backlog, and is answered once the idle timeout has dropped the stuck ones
    const third = await connect(s.path);
    const r = lines(third);
    third.write(req(7));
    await waitUntil(() => r.got.length === 1, 10_000);
    expect(JSON.parse(r.got[0]!)).toMatchObject({ id: 7, result: 'v' });
    // both stuck clients dropped before they read again: one that resumed before its own idle timer fired would be
    // a reading client again (its replies drain), and rightly stay connected
    await waitUntil(() => s.clientsDropped === 2, 10_000);
    // the stuck clients see the close once they read what the kernel buffered for them
    for (const c of stuck) c.resume();
    await waitUntil(() => closed.every((c) => c.closed()), 10_000);
    expect(s.clientsDropped).toBe(2);
    const dropped = cap.lines().filter((l) => l.msg === 'control client dropped');
    expect(dropped).toHaveLength(2);
    expect(dropped[0]).toMatchObject({ reason: 'replies not drained for 300 ms' });
    third.destroy();
  });

  it('answers an over-long line with request_too_large and closes', async () => {
    const s = await start(new Map<string, MethodHandler>([['version', () => 'v']]), { maxLineBytes: 10_000 });
    const c = await connect(s.path);
    const r = lines(c);
    c.write('a'.repeat(50_000));
    await waitUntil(() => r.closed());
    expect(JSON.parse(r.got[0]!)).toMatchObject({ error: { code: -32600, data: { code: 'request_too_large' } } });
  });

  it('gives a stream its own bounded buffer, exempt from the reply cap', async () => {
    let stream: ControlStream | null = null;
    const s = await start(new Map<string, MethodHandler>([['capture', (_p, client) => {
      stream = client!.openStream({ maxBufferedBytes: 200_000 });
      const chunk = 'z'.repeat(16_000) + '\n';
      for (let i = 0; i < 200; i++) stream.write(chunk);
      return 'streaming';
    }]]), { maxPendingBytes: 50_000 });
    const c = await connect(s.path);
    c.pause();
    c.write(req(1, 'capture'));
    await waitUntil(() => stream !== null);
    const st = stream as unknown as ControlStream;
    // the kernel buffer and 200 KB of ours took some chunks, the rest was dropped and counted
    expect(st.droppedChunks).toBeGreaterThan(100);
    expect(st.droppedChunks).toBeLessThan(200);
    expect(s.clientsDropped).toBe(0);
    expect(s.clientCount).toBe(1);
    c.destroy();
    await waitUntil(() => !st.isOpen);
  });
});

describe('control socket path', () => {
  it('refuses a regular file at the path and leaves it alone', async () => {
    const path = join(dir, 'ctl.sock');
    writeFileSync(path, 'precious\n');
    const s = new ControlServer(path, new Map(), silentLogger());
    await expect(s.prepare()).rejects.toThrow(SocketPathError);
    await expect(s.prepare()).rejects.toThrow(/is a regular file; refusing to replace it/);
    expect(readFileSync(path, 'utf8')).toBe('precious\n');
  });

  it('refuses a path longer than sun_path', async () => {
    const s = new ControlServer(join(dir, 'x'.repeat(120)), new Map(), silentLogger());
    await expect(s.prepare()).rejects.toThrow(/at most 107 bytes/);
  });

  it('replaces a stale socket, refuses a live one', async () => {
    const path = join(dir, 'ctl.sock');
    const other = createServer();
    await new Promise<void>((r) => other.listen(path, r));
    const s = new ControlServer(path, new Map(), silentLogger());
    await expect(s.prepare()).rejects.toThrow(/another daemon answers/);
    // a socket file nobody listens on (closing a Node server would unlink it: bind one by hand)
    await new Promise<void>((r) => other.close(() => r()));
    const { unixSocket } = await import('../../src/io/native.js');
    const fd = unixSocket.listen(path, 1);
    unixSocket.close(fd);
    expect(statSync(path).isSocket()).toBe(true);
    await s.listen();
    servers.push(s);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});
