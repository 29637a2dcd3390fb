// sd_notify: the addon's datagram sender against a python receiver (abstract "@" and filesystem paths, SCM_RIGHTS fds),
// the facade's environment rules, and the lifecycle's timing of READY/STATUS/WATCHDOG/STOPPING with fake timers.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { loadAddon } from '../../src/io/native.js';
import { SdNotify, stateLine, watchdogUsecFromEnv, MAX_STATE_VALUE } from '../../src/service/sd-notify.js';
import { ServiceLifecycle, statusLine, STATUS_EVERY_MS, type StatusSource } from '../../src/service/lifecycle.js';
import { silentLogger } from '../../src/log.js';
import { FakeSystemd } from '../support/fake-systemd.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-notify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('native sdNotify', () => {
  const receivers: FakeSystemd[] = [];
  afterEach(() => {
    for (const r of receivers.splice(0)) r.stop();
  });

  it('sends to an abstract-namespace socket (@name) and passes fds with SCM_RIGHTS', async () => {
    const path = `@tb-notify-${process.pid}-${randomBytes(3).toString('hex')}`;
    const sd = new FakeSystemd(path);
    receivers.push(sd);
    await sd.ready();
    const fd = openSync(join(dir, 'stored-file'), 'w');
    try {
      loadAddon().sdNotify(path, 'READY=1\nSTATUS=up');
      loadAddon().sdNotify(path, 'FDSTORE=1\nFDNAME=test', [fd]);
    } finally {
      closeSync(fd);
    }
    await sd.until(() => sd.messages.length === 2, 5_000, 'two datagrams');
    expect(sd.messages[0]).toMatchObject({ state: 'READY=1\nSTATUS=up', fds: [] });
    expect(sd.messages[1]).toMatchObject({ state: 'FDSTORE=1\nFDNAME=test', fds: [join(dir, 'stored-file')] });
  });

  it('sends to a filesystem socket path', async () => {
    const path = join(dir, 'notify.sock');
    const sd = new FakeSystemd(path);
    receivers.push(sd);
    await sd.ready();
    loadAddon().sdNotify(path, 'WATCHDOG=1');
    await sd.until(() => sd.messages.length === 1, 5_000, 'one datagram');
    expect(sd.messages[0].state).toBe('WATCHDOG=1');
  });

  it('throws with errno and syscall when nobody listens, TypeError for bad arguments', () => {
    const a = loadAddon();
    let err: unknown;
    try {
      a.sdNotify(`@tb-nobody-${process.pid}-${randomBytes(4).toString('hex')}`, 'READY=1');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'ECONNREFUSED', syscall: 'sendmsg(NOTIFY_SOCKET)' });
    expect(() => a.sdNotify('relative/path', 'READY=1')).toThrow(TypeError);
    expect(() => a.sdNotify('/x', '')).toThrow(/state must be/);
    expect(() => a.sdNotify('/' + 'x'.repeat(200), 'READY=1')).toThrow(/longer than/);
    expect(() => a.sdNotify('@x', 'READY=1', [-1])).toThrow(/fd must be an integer/);
    expect(() => a.sdNotify('@x', 'READY=1', new Array(254).fill(0))).toThrow(/at most 253 fds/);
  });
});

describe('SdNotify facade', () => {
  it('reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled does', () => {
    expect(SdNotify.fromEnv({})).toBeNull();
    expect(SdNotify.fromEnv({ NOTIFY_SOCKET: '' })).toBeNull();
    expect(SdNotify.fromEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '2000000' })?.watchdogUsec).toBe(2_000_000);
    expect(watchdogUsecFromEnv({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '42' }, 42)).toBe(2_000_000);
    expect(watchdogUsecFromEnv({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '43' }, 42)).toBe(0);
    expect(watchdogUsecFromEnv({ WATCHDOG_USEC: '0' }, 42)).toBe(0);
    expect(watchdogUsecFromEnv({ WATCHDOG_USEC: '-5' }, 42)).toBe(0);
    expect(watchdogUsecFromEnv({ WATCHDOG_USEC: '1e6' }, 42)).toBe(0);
  });

  it('counts failed sends instead of throwing, and keeps state lines on one line and bounded', () => {
    const sent: string[] = [];
    let fail = false;
    const sd = new SdNotify('@x', 0, (_p, state) => {
      if (fail) throw new Error('ECONNREFUSED');
      sent.push(state);
    });
    expect(sd.status('a\nb')).toBe(true);
    fail = true;
    expect(sd.watchdog()).toBe(false);
    expect(sd.failed).toBe(1);
    expect(sd.lastError?.message).toBe('ECONNREFUSED');
    expect(sent).toEqual(['STATUS=a b']);
    expect(stateLine('STATUS', 'x'.repeat(5000)).length).toBe('STATUS='.length + MAX_STATE_VALUE);
  });
});

describe('ServiceLifecycle', () => {
  const source: StatusSource = {
    show: () => [
      { name: 'xenbr0', uplink: { name: 'peth0', kind: 'uplink', state: 'up' }, ports: [
        { name: 'vif1.0', kind: 'tap', state: 'up', ifindex: 3 }, { name: 'vif2.0', kind: 'attach', state: 'absent', ifindex: 0 }] },
      { name: 'xenbr1', uplink: null, ports: [{ name: 'vif1.1', kind: 'tap', state: 'down', ifindex: 5 }] },
    ],
    stats: () => [
      { bridge: 'xenbr0', fdb: { entries: 7, learned: 9, aged: 2, moved: 0, evicted: 0, flooded: 1 }, ports: [] },
      { bridge: 'xenbr1', fdb: { entries: 1, learned: 1, aged: 0, moved: 0, evicted: 0, flooded: 0 }, ports: [] },
    ],
  };

  it('summarises bridges, ports up of all (uplinks included) and FDB entries', () => {
    expect(statusLine(source)).toBe('2 bridges, 2/4 ports up, 8 FDB entries');
  });

  it('READY=1 with STATUS, STATUS every few seconds, WATCHDOG at half of WATCHDOG_USEC, STOPPING=1 and silence after', () => {
    vi.useFakeTimers();
    try {
      const sent: string[] = [];
      const sd = new SdNotify('@x', 1_000_000, (_p, s) => void sent.push(s));
      const life = new ServiceLifecycle(sd, source, silentLogger());
      expect(life.watchdogPingMs).toBe(500);
      life.ready();
      expect(sent[0]).toBe('READY=1\nSTATUS=2 bridges, 2/4 ports up, 8 FDB entries');
      expect(sent[1]).toBe('WATCHDOG=1');
      sent.length = 0;
      vi.advanceTimersByTime(STATUS_EVERY_MS);
      expect(sent.filter((s) => s === 'WATCHDOG=1').length).toBe(STATUS_EVERY_MS / 500);
      expect(sent.filter((s) => s.startsWith('STATUS=')).length).toBe(1);
      sent.length = 0;
      life.stopping();
      expect(sent).toEqual(['STOPPING=1\nSTATUS=stopping']);
      vi.advanceTimersByTime(10 * STATUS_EVERY_MS);
      expect(sent.length).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('sends no WATCHDOG=1 when WatchdogSec= is not set', () => {
    vi.useFakeTimers();
    try {
      const sent: string[] = [];
      const life = new ServiceLifecycle(new SdNotify('@x', 0, (_p, s) => void sent.push(s)), source, silentLogger());
      life.ready();
      vi.advanceTimersByTime(3 * STATUS_EVERY_MS);
      life.stopping();
      expect(sent.some((s) => s.includes('WATCHDOG'))).toBe(false);
      expect(sent.filter((s) => s.startsWith('STATUS=')).length).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
