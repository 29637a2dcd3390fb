// Exception boundaries of the daemon's callbacks (issue 9 section 4): a throw is caught, logged with its context and
// rate-limited; the daemon keeps running while the state is sound; an invariant breach calls onFatal once.
import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { CallbackGuard, InvariantError } from '../../src/daemon/guard.js';
import type { Logger } from '../../src/log.js';

function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream) as unknown as Logger, lines };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('CallbackGuard', () => {
  it('catches, logs with the context, keeps going; at most one line per context per 10 s', async () => {
    const { log, lines } = capture();
    let now = 0;
    const onFatal = vi.fn();
    const g = new CallbackGuard(log, () => null, onFatal, () => now);
    let calls = 0;
    const cb = g.wrap('link monitor', (n: number) => {
      calls += n;
      throw new TypeError('boom');
    });
    expect(() => cb(1)).not.toThrow();
    cb(1);
    cb(1);
    now = 10_000;
    cb(1);
    await flush();
    expect(calls).toBe(4);
    expect(onFatal).not.toHaveBeenCalled();
    expect(g.errors.get('link monitor')).toBe(4);
    const errs = lines.filter((l) => l.level === 50);
    expect(errs).toHaveLength(2);
    expect(errs[0]).toMatchObject({ context: 'link monitor', errors: 1 });
    expect(errs[1]).toMatchObject({ context: 'link monitor', errors: 4, suppressed_since_last_log: 2 });
    expect(String((errs[0].err as { message: string }).message)).toBe('boom');
  });

  it('a broken invariant after the exception, or an InvariantError, is fatal (once)', async () => {
    const { log, lines } = capture();
    let broken: string | null = null;
    const onFatal = vi.fn();
    const g = new CallbackGuard(log, () => broken, onFatal);
    g.run('tick', () => {
      throw new Error('first');
    });
    expect(onFatal).not.toHaveBeenCalled();
    broken = 'bridge xenbr0: FDB: port 3: 5 dynamic entries counted, 4 present';
    g.run('tick', () => {
      throw new Error('second');
    });
    g.run('tick', () => {
      throw new Error('third');
    });
    expect(onFatal).toHaveBeenCalledTimes(1);
    await flush();
    expect(lines.find((l) => l.level === 60)).toMatchObject({ context: 'tick', invariant: broken });

    const onFatal2 = vi.fn();
    const g2 = new CallbackGuard(log, () => null, onFatal2);
    g2.run('miimon', () => {
      throw new InvariantError('active member index 7');
    });
    expect(onFatal2).toHaveBeenCalledTimes(1);
  });

  it('a callback that does not throw runs as is and returns nothing to libuv', () => {
    const g = new CallbackGuard(pino({ level: 'silent' }) as unknown as Logger, () => null, () => {});
    const seen: number[] = [];
    g.wrap('x', (a: number, b: number) => seen.push(a + b))(2, 3);
    expect(seen).toEqual([5]);
  });
});
