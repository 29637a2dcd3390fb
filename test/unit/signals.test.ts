// DaemonSignals (src/service/signals.ts): signals during start-up are queued, not lost and not fatal.

import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { DaemonSignals, type StopSignal } from '../../src/service/signals.js';

function fakeProcess(): EventEmitter & Pick<NodeJS.Process, 'on' | 'off'> {
  return new EventEmitter() as EventEmitter & Pick<NodeJS.Process, 'on' | 'off'>;
}

describe('DaemonSignals', () => {
  it('installs SIGHUP, SIGTERM and SIGINT handlers at once', () => {
    const proc = fakeProcess();
    const s = new DaemonSignals(proc);
    expect(proc.listenerCount('SIGHUP')).toBe(1);
    expect(proc.listenerCount('SIGTERM')).toBe(1);
    expect(proc.listenerCount('SIGINT')).toBe(1);
    s.dispose();
    expect(proc.listenerCount('SIGHUP')).toBe(0);
  });

  it('SIGHUPs during start-up queue one reload, run once by serve()', () => {
    const proc = fakeProcess();
    const s = new DaemonSignals(proc);
    proc.emit('SIGHUP');
    proc.emit('SIGHUP');
    expect(s.queuedReloads).toBe(2);
    let reloads = 0;
    s.serve({ reload: () => reloads++, stop: () => undefined });
    expect(reloads).toBe(1);
    proc.emit('SIGHUP');
    expect(reloads).toBe(2);
  });

  it('a stop during start-up is visible to start-up and wins over a queued reload', () => {
    const proc = fakeProcess();
    const s = new DaemonSignals(proc);
    proc.emit('SIGHUP');
    proc.emit('SIGTERM');
    proc.emit('SIGINT');
    expect(s.stopRequested).toBe('SIGTERM');
    const stops: StopSignal[] = [];
    let reloads = 0;
    s.serve({ reload: () => reloads++, stop: (sig) => stops.push(sig) });
    expect(stops).toEqual(['SIGTERM']);
    expect(reloads).toBe(0);
    expect(s.stopRequested).toBe(null);
    proc.emit('SIGINT');
    expect(stops).toEqual(['SIGTERM', 'SIGINT']);
  });

  it('nothing queued: serve() calls nothing', () => {
    const proc = fakeProcess();
    const s = new DaemonSignals(proc);
    let calls = 0;
    s.serve({ reload: () => calls++, stop: () => calls++ });
    expect(calls).toBe(0);
  });
});
