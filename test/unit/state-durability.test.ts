// Issue 20 section 2 without a daemon: an acknowledged change survives or is refused (full disk), replay reaches the
// acknowledged lock state whatever order the journal holds, state files keyed by the socket's full path (and the old
// name carried over), a takeover to another state_dir locks the new one, nothing but a regular file is read as state,
// and a state_dir others may write is refused. The full-disk case with a real tmpfs needs root (skipped otherwise).

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, fstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { ControlError } from '../../src/control/errors.js';
import type { MethodHandler } from '../../src/control/server.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import '../../src/daemon/locking.js';
import { createLogger } from '../../src/log.js';
import { DaemonState } from '../../src/state/daemon-state.js';
import { emptyState, parseState, serializeState } from '../../src/state/document.js';
import { diffConfig } from '../../src/state/reload.js';
import { legacyStatePath, snapshotPath, StateLockedError, statePath, stateKey, StateStore } from '../../src/state/store.js';

const quiet = (): ReturnType<typeof createLogger> => createLogger({ level: 'silent', isTty: false, journal: false });
const isRoot = process.getuid?.() === 0;

let dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tb-durable-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A daemon without ports or FDB entries. */
const fakeDaemon = { untaggedVid: () => 0, fdbSnapshot: () => ({}), mdbSnapshot: () => ({}), restoreMdb: () => ({ restored: 0 }), restoreFdb: () => ({ restored: 0, skipped: 0 }) } as unknown as Daemon;

/** A DaemonState over `store` with methods that count their calls (setageing) or play port locks (lock.set/clear). */
function stateWith(store: StateStore, configText = 'bridges: []\n', methods = new Map<string, MethodHandler>()): { state: DaemonState; served: Map<string, MethodHandler> } {
  const state = new DaemonState(fakeDaemon, store, parseConfig(configText), null, quiet());
  const served = state.wrap(methods);
  return { state, served };
}

function errnoError(code: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

describe('full disk: a mutating request whose record cannot be written is refused and not applied', () => {
  it('an injected ENOSPC: state_write_failed with the errno, the method never runs, the journal and file stay as they were', () => {
    const dir = tmp();
    const store = StateStore.open(dir, join(dir, 'tb.sock'));
    const applied: unknown[] = [];
    const { state, served } = stateWith(store, 'bridges: []\n', new Map([['setageing', (p: Record<string, unknown>) => { applied.push(p.seconds); return {}; }]]));
    state.restore(new Map());
    // one change that works
    served.get('setageing')!({ bridge: 'xenbr0', seconds: 30 }, null);
    expect(applied).toEqual([30]);
    const write = store.write.bind(store);
    store.write = () => {
      throw errnoError('ENOSPC');
    };
    let err: unknown;
    try {
      served.get('setageing')!({ bridge: 'xenbr0', seconds: 60 }, null);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ControlError);
    expect((err as ControlError).code).toBe('state_write_failed');
    expect((err as ControlError).details).toEqual({ errno: 'ENOSPC', path: store.path });
    expect((err as ControlError).message).toMatch(/not applied: cannot write the state file .*ENOSPC/);
    expect(applied).toEqual([30]);
    expect(state.journal.list().map((r) => r.params.seconds)).toEqual([30]);
    store.write = write;
    const onDisk = store.read(() => undefined).state!;
    expect(onDisk.runtime.map((r) => r.params.seconds)).toEqual([30]);
    store.close();
  });

  it('a request that fails after its record was written takes the record out of the file again', () => {
    const dir = tmp();
    const store = StateStore.open(dir, join(dir, 'tb.sock'));
    const { state, served } = stateWith(store, 'bridges: []\n', new Map([['setageing', () => {
      throw new ControlError('no_such_bridge', 'no such bridge');
    }]]));
    state.restore(new Map());
    expect(() => served.get('setageing')!({ bridge: 'nope', seconds: 60 }, null)).toThrow(/no such bridge/);
    expect(state.journal.size).toBe(0);
    expect(store.read(() => undefined).state!.runtime).toEqual([]);
    store.close();
  });

  it.skipIf(!isRoot)('a real full tmpfs (64 KiB): ENOSPC, refused, not applied; the change works once there is room' + (isRoot ? '' : ' (skipped: needs root to mount a tmpfs)'), () => {
    const dir = tmp();
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tb-durable', mnt]);
    let store: StateStore | null = null;
    try {
      const stateDir = join(mnt, 'state');
      store = StateStore.open(stateDir, join(dir, 'tb.sock'));
      const applied: unknown[] = [];
      const { state, served } = stateWith(store, 'bridges: []\n', new Map([['setageing', (p: Record<string, unknown>) => { applied.push(p.seconds); return {}; }]]));
      state.restore(new Map());
      // fill the filesystem
      const filler = join(mnt, 'filler');
      try {
        writeFileSync(filler, Buffer.alloc(128 * 1024));
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      let err: unknown;
      try {
        served.get('setageing')!({ bridge: 'xenbr0', seconds: 60 }, null);
      } catch (e) {
        err = e;
      }
      expect((err as ControlError | undefined)?.code).toBe('state_write_failed');
      expect((err as ControlError).details?.errno).toBe('ENOSPC');
      expect(applied).toEqual([]);
      expect(state.journal.size).toBe(0);
      // no partial temporary file keeps the blocks
      expect(readdirSync(stateDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      rmSync(filler);
      served.get('setageing')!({ bridge: 'xenbr0', seconds: 60 }, null);
      expect(applied).toEqual([60]);
      expect(store.read(() => undefined).state!.runtime.map((r) => r.params.seconds)).toEqual([60]);
    } finally {
      // the lock file is open on the mount: close it first, or umount fails with EBUSY
      store?.close();
      try {
        execFileSync('umount', [mnt]);
      } catch {
        execFileSync('umount', ['-l', mnt]);
      }
    }
  });
});

/**
 * Port locks as daemon.ts keeps them, reduced to the rule replay trips over: a locked MAC belongs to one port
 * (lock.set refuses a MAC locked on another port). `locks` starts as the config gives it.
 */
function lockMethods(locks: Map<string, string | null>): Map<string, MethodHandler> {
  return new Map<string, MethodHandler>([
    ['lock.set', (p) => {
      const mac = String(p.mac);
      for (const [port, m] of locks) if (m === mac && port !== p.port) throw new ControlError('invalid_params', `mac ${mac} is already the locked MAC of ${port}`);
      locks.set(String(p.port), mac);
      return {};
    }],
    ['lock.clear', (p) => {
      locks.set(String(p.port), null);
      return {};
    }],
  ]);
}

describe('lock replay reaches the acknowledged state', () => {
  const M = '02:00:00:20:00:01';
  const M2 = '02:00:00:20:00:02';
  const config = `bridges:\n  - name: br0\n    ports:\n      - { name: P, lock: { mac: "${M}" } }\n      - { name: Q }\n`;

  it('config locks P to M; lock clear P, lock set Q M, lock set P M2; after a restart (or a takeover\'s document) Q has M and P has M2', () => {
    const dir = tmp();
    const sock = join(dir, 'tb.sock');
    const store = StateStore.open(dir, sock);
    const live = new Map<string, string | null>([['P', M], ['Q', null]]);
    const { state, served } = stateWith(store, config, lockMethods(live));
    state.restore(new Map());
    served.get('lock.clear')!({ bridge: 'br0', port: 'P' }, null);
    served.get('lock.set')!({ bridge: 'br0', port: 'Q', mac: M }, null);
    served.get('lock.set')!({ bridge: 'br0', port: 'P', mac: M2 }, null);
    expect(Object.fromEntries(live)).toEqual({ P: M2, Q: M });
    const takeoverDoc = serializeState(state.collectState());
    store.close();

    // SIGTERM + start: the daemon starts from the config, then replays the state file
    const store2 = StateStore.open(dir, sock);
    const restarted = new Map<string, string | null>([['P', M], ['Q', null]]);
    const methods2 = lockMethods(restarted);
    const s2 = new DaemonState(fakeDaemon, store2, parseConfig(config), null, quiet());
    s2.wrap(methods2);
    s2.load();
    s2.restore(methods2);
    expect(Object.fromEntries(restarted)).toEqual({ P: M2, Q: M });
    store2.close();

    // a takeover replays the handed-over document the same way
    const taken = new Map<string, string | null>([['P', M], ['Q', null]]);
    const methods3 = lockMethods(taken);
    const s3 = new DaemonState(fakeDaemon, null, parseConfig(config), null, quiet());
    s3.wrap(methods3);
    const doc = parseState(takeoverDoc);
    if (!('doc' in doc)) throw new Error(doc.error);
    s3.load(doc.doc);
    s3.restore(methods3);
    expect(Object.fromEntries(taken)).toEqual({ P: M2, Q: M });
  });
});

describe('state files keyed by the control socket\'s full path', () => {
  it('sockets /a/tb.sock and /b/tb.sock have their own state; the key is the escaped path', () => {
    const dir = tmp();
    expect(stateKey('/run/tapbridge/tapbridge.sock')).toBe('run-tapbridge-tapbridge.sock');
    expect(stateKey('/tmp/my-dir/.x sock')).toBe('tmp-my\\x2ddir-.x\\x20sock');
    expect(stateKey('/.x')).toBe('\\x2ex');
    expect(stateKey(`/${'d/'.repeat(150)}tb.sock`).length).toBeLessThanOrEqual(200);
    expect(statePath(dir, '/tmp/a/tb.sock')).not.toBe(statePath(dir, '/tmp/b/tb.sock'));
    const a = StateStore.open(dir, '/tmp/a/tb.sock');
    const b = StateStore.open(dir, '/tmp/b/tb.sock');
    const doc = emptyState({ bridges: [] });
    doc.runtime.push({ method: 'mirror.add', params: { bridge: 'br0', name: 'm' }, key: 'mirror:br0/m', target: 'bridge:br0/mirrors/m' });
    a.write(doc);
    expect(b.read(() => undefined).state).toBeNull();
    expect(a.read(() => undefined).state?.runtime).toHaveLength(1);
    a.close();
    b.close();
  });

  it('a state file of the old name (<socket file name>.state) is carried over when it is this socket\'s, and left alone when not', () => {
    const dir = tmp();
    const mine = '/run/tb-test/tb.sock';
    const legacy = legacyStatePath(dir, mine);
    const doc = emptyState({ control_socket: mine, bridges: [] });
    doc.runtime.push({ method: 'setageing', params: { bridge: 'br0', seconds: 10 }, key: 'ageing:br0', target: 'bridge:br0/ageing_time' });
    writeFileSync(legacy, serializeState(doc));
    writeFileSync(join(dir, 'tb.sock.fdb'), '{"saved_at":1,"bridges":{}}\n');
    // another socket of the same file name does not take it
    const other = StateStore.open(dir, '/run/tb-other/tb.sock');
    expect(other.read(() => undefined).state).toBeNull();
    expect(other.notes.map((n) => n.msg)).toContain('a state file of the old name belongs to another control socket; not carried over');
    expect(existsSync(legacy)).toBe(true);
    other.close();
    const store = StateStore.open(dir, mine);
    expect(store.notes.map((n) => n.msg)).toContain('state file carried over from its old name');
    expect(existsSync(legacy)).toBe(false);
    expect(store.read(() => undefined).state?.runtime.map((r) => r.params.seconds)).toEqual([10]);
    expect(existsSync(snapshotPath(dir, mine))).toBe(true);
    store.close();
  });

  it('a renamed control_socket starts without the old state and says so (start-up log and reload --dry-run)', () => {
    const dir = tmp();
    const old = StateStore.open(dir, '/run/tb-test/tb.sock');
    old.write(emptyState({ bridges: [] }));
    old.close();
    const renamed = StateStore.open(dir, '/run/tb-test/tapbridge.sock');
    const note = renamed.notes.find((n) => n.level === 'warn');
    expect(note?.msg).toMatch(/no runtime state for this control socket/);
    expect(note?.fields.others).toEqual(['run-tb\\x2dtest-tb.sock.state']);
    renamed.close();
    const a = parseConfig(`control_socket: /run/tb-test/tb.sock\nstate_dir: ${dir}\nbridges: []\n`);
    const b = parseConfig(`control_socket: /run/tb-test/tapbridge.sock\nstate_dir: ${dir}\nbridges: []\n`);
    expect(diffConfig(a, b).map((c) => c.line)).toEqual([
      `~ control_socket /run/tb-test/tb.sock -> /run/tb-test/tapbridge.sock (takes effect at restart; the runtime state stays in ${statePath(dir, '/run/tb-test/tb.sock')}: ` +
        `a restart reads ${statePath(dir, '/run/tb-test/tapbridge.sock')} and starts without the runtime changes unless the .state and .fdb files are moved there)`,
    ]);
  });
});

describe('takeover to a config with another state_dir', () => {
  it('creates and locks the new state_dir and lets go of the handed-over lock; the same state_dir adopts it', () => {
    const dir = tmp();
    const sock = join(dir, 'tb.sock');
    const oldStore = StateStore.open(join(dir, 'old'), sock);
    const fd = oldStore.lockFd;
    const newDir = join(dir, 'new');
    const taken = StateStore.forTakeover(newDir, sock, fd);
    // its lock fd is the new directory's lock file (the handed-over fd was closed; its number may be reused)
    expect(fstatSync(taken.lockFd).ino).toBe(statSync(`${statePath(newDir, sock)}.lock`).ino);
    expect(existsSync(newDir)).toBe(true);
    expect(() => StateStore.open(newDir, sock)).toThrow(StateLockedError);
    // the old lock is no longer held by the new daemon (in a real takeover it goes when the old daemon exits)
    StateStore.open(join(dir, 'old'), sock).close();
    taken.write(emptyState({ bridges: [] }));
    expect(existsSync(statePath(newDir, sock))).toBe(true);
    // the same state_dir: the handed-over lock is adopted as it is
    const same = StateStore.forTakeover(newDir, sock, taken.lockFd);
    expect(same.lockFd).toBe(taken.lockFd);
    same.close();
  });
});

describe('files at the state path', () => {
  it.skipIf(!existsSync('/dev/zero'))('a FIFO, a symlink to /dev/zero or /dev/urandom, a directory: moved aside and reported at once, never read', () => {
    const dir = tmp();
    const sock = join(dir, 'tb.sock');
    const store = StateStore.open(dir, sock);
    execFileSync('mkfifo', [store.path]);
    symlinkSync('/dev/zero', store.fdbPath);
    const bad: string[] = [];
    expect(store.read((e) => bad.push(e))).toEqual({ state: null, fdb: null });
    expect(bad).toEqual([`${store.path} is not a regular file (a FIFO)`, `${store.fdbPath} is a symbolic link (only a regular file is read)`]);
    symlinkSync('/dev/urandom', store.path);
    mkdirSync(store.fdbPath);
    bad.length = 0;
    expect(store.read((e) => bad.push(e))).toEqual({ state: null, fdb: null });
    expect(bad).toEqual([`${store.path} is a symbolic link (only a regular file is read)`, `${store.fdbPath} is not a regular file (a directory)`]);
    expect(readdirSync(dir).filter((f) => f.includes('.bad-'))).toHaveLength(4);
    store.close();
  });

  it('a symlink planted at <state>.tmp is replaced, not followed: the file it points to is untouched', () => {
    const dir = tmp();
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'root-owned contents\n');
    const stateDir = join(dir, 'state');
    const store = StateStore.open(stateDir, join(dir, 'tb.sock'));
    symlinkSync(victim, `${store.path}.tmp`);
    symlinkSync(victim, `${store.fdbPath}.tmp`);
    store.write(emptyState({ bridges: [] }));
    store.writeFdbSync({ saved_at: 1, bridges: {} });
    expect(readFileSync(victim, 'utf8')).toBe('root-owned contents\n');
    expect(store.read(() => undefined).state).not.toBeNull();
    store.close();
  });

  it('a lock file that is a symlink is refused (O_NOFOLLOW)', () => {
    const dir = tmp();
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'x');
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    symlinkSync(victim, `${statePath(stateDir, join(dir, 'tb.sock'))}.lock`);
    expect(() => StateStore.open(stateDir, join(dir, 'tb.sock'))).toThrow(/ELOOP/);
  });
});

describe('state_dir others may write is refused', () => {
  it('mode 0777 or 0770: an error naming state_dir; 0755 and 0700 are fine', () => {
    const dir = tmp();
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    for (const mode of [0o777, 0o770, 0o1777]) {
      chmodSync(stateDir, mode);
      expect(() => StateStore.open(stateDir, join(dir, 'tb.sock'))).toThrow(/^state_dir .* is group- or world-writable \(mode [0-7]{4}\)/);
    }
    expect(readdirSync(stateDir)).toEqual([]);
    for (const mode of [0o755, 0o700]) {
      chmodSync(stateDir, mode);
      StateStore.open(stateDir, join(dir, 'tb.sock')).close();
    }
  });

  it.skipIf(!isRoot)('owned by another uid: an error naming state_dir' + (isRoot ? '' : ' (skipped: needs root to chown)'), () => {
    const dir = tmp();
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    chownSync(stateDir, 65534, 65534);
    expect(() => StateStore.open(stateDir, join(dir, 'tb.sock'))).toThrow(/^state_dir .* is owned by uid 65534, not by the daemon's uid 0/);
  });
});
