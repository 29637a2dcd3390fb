// The state files on disk, one pair per daemon instance, named by the control socket's absolute path (stateKey:
// escaped as `systemd-escape --path` does, e.g. /run/tapbridge/tapbridge.sock -> run-tapbridge-tapbridge.sock):
//
//   <state_dir>/<key>.state   the state document without the FDB (written on every runtime change, synchronously:
//                              a mutating request is answered once its record is on disk, daemon-state.ts)
//   <state_dir>/<key>.fdb     the FDB snapshot (every fdb_snapshot_interval seconds, written by libuv's thread pool
//                              so the disk never stalls the forwarding loop; at shutdown synchronously)
//
//   StateStore.open(stateDir, controlSocket)  creates state_dir (0700), checks it (a directory of the daemon's uid,
//                                              not group- or world-writable, else an error naming `state_dir`),
//                                              takes the lock, or throws StateLockedError; carries a state file
//                                              of the old name (<socket file name>.state) over (see Migration)
//   StateStore.forTakeover(dir, socket, fd)   adopts the handed-over lock fd when it locks this store's lock file,
//                                              else closes it and open()s (a takeover to another state_dir)
//   store.notes                                what open() found worth a start-up log line (migration, other files)
//   store.read(onBad)                          { state, fdb } as stored (each null when absent); a corrupt file, one
//                                              larger than MAX_STATE_BYTES or anything but a regular file (FIFO,
//                                              symlink, device) is renamed to <file>.bad-<time> and reported (never
//                                              crashes or hangs start-up)
//   store.write(doc)                           the document (its fdb left out): <file>.tmp, fsync, rename, fsync dir;
//                                              throws the write's error (ENOSPC, EIO, ...)
//   store.writeFdb(fdb) / writeFdbSync(fdb)    the snapshot, the same way; at most one asynchronous write in flight
//                                              (a snapshot due while one is being written is skipped and counted)
//   store.close()                              releases the lock
//
// Files: the lock, temporary and snapshot files are opened with O_NOFOLLOW; a temporary file is unlinked first and
// created with O_EXCL (a symlink planted at <file>.tmp is never followed); reads open with O_NOFOLLOW | O_NONBLOCK
// (a FIFO cannot block), fstat must show a regular file, and at most MAX_STATE_BYTES + 1 bytes are read whatever
// fstat says (a device reports size 0).
//
// Lock: flock(LOCK_EX | LOCK_NB) on `<file>.lock` (the addon's flockExclusive; Node has no flock). Not on the
// state file itself, whose inode every atomic rename replaces. The lock belongs to the open file description:
// it is released when the daemon exits, however it exits, and a copy of `lockFd` passed over SCM_RIGHTS (the fd
// handover) shares it.
//
// Migration: state files used to be named by the socket's file name only (<state_dir>/<socket file name>.state),
// which two daemons with sockets /a/tb.sock and /b/tb.sock shared. When <key>.state is absent and the old name
// exists, is not locked by a running daemon, and its document names this control socket (the section "instance",
// else its config's control_socket), open() renames it (and its .fdb) to the new name; otherwise it stays where it
// is and a note says so. When no state file is found for this socket, a note lists the other state files in
// state_dir (a renamed control_socket leaves its state under the old name).

import { closeSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync, constants, promises as fsp, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { netdev } from '../io/native.js';
import { DEFAULT_CONTROL_SOCKET } from '../config/config.js';
import { MAX_STATE_BYTES, parseSnapshotText, parseState, serializeSnapshot, serializeState, type FdbSnapshot, type StateDocument } from './document.js';

export class StateLockedError extends Error {
  readonly code = 'ESTATELOCKED';
}

/** The state section naming the daemon instance that wrote the document: { control_socket: absolute path }. */
export const INSTANCE_SECTION = 'instance';
/** A key longer than this is cut and completed with a hash of the path (a file name has at most 255 bytes). */
const MAX_KEY_BYTES = 200;
/** At most this many other state files are named in a note. */
const MAX_OTHERS_LISTED = 10;

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/**
 * The name of a control socket's state files: its absolute path without the leading `/`, each `/` as `-`, bytes
 * other than [A-Za-z0-9_.] (and a leading `.`) as `\xNN` (systemd-escape --path).
 */
export function stateKey(controlSocket: string): string {
  const abs = resolve(controlSocket).replace(/^\/+/, '');
  let out = '';
  for (const b of Buffer.from(abs, 'utf8')) {
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (/[A-Za-z0-9_]/.test(c) || (c === '.' && out.length > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  if (out === '') out = '-';
  if (out.length > MAX_KEY_BYTES) out = `${out.slice(0, MAX_KEY_BYTES - 33)}~${createHash('sha256').update(abs).digest('hex').slice(0, 32)}`;
  return out;
}

/** `<state_dir>/<stateKey(socket)>.state` */
export function statePath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${stateKey(controlSocket)}.state`);
}

/** `<state_dir>/<stateKey(socket)>.fdb` */
export function snapshotPath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${stateKey(controlSocket)}.fdb`);
}

/** The name state files had before they were keyed by the socket's path: `<state_dir>/<socket file name>.state`. */
export function legacyStatePath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${basename(controlSocket)}.state`);
}

/** A start-up fact about the state files (logged by daemon-state.ts). */
export interface StoreNote {
  level: 'info' | 'warn';
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * Refuses a state_dir that is not a directory, not owned by the daemon's uid, or group- or world-writable: anyone
 * who may write there could plant files the daemon reads as its state.
 */
export function checkStateDir(stateDir: string): void {
  const st = statSync(stateDir);
  if (!st.isDirectory()) throw new Error(`state_dir ${stateDir} is not a directory`);
  const uid = process.geteuid?.() ?? st.uid;
  if (st.uid !== uid) throw new Error(`state_dir ${stateDir} is owned by uid ${st.uid}, not by the daemon's uid ${uid}; chown it or choose another state_dir`);
  if ((st.mode & 0o022) !== 0) {
    throw new Error(`state_dir ${stateDir} is group- or world-writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); it must be writable by its owner only (chmod go-w)`);
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** A new temporary file: whatever is at `tmp` (a leftover, a planted symlink) is unlinked, then O_EXCL | O_NOFOLLOW. */
function createTemp(tmp: string): number {
  unlinkIfPresent(tmp);
  return openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
}

function fsyncDir(dir: string): void {
  const dfd = openSync(dir, O_RDONLY | O_DIRECTORY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = createTemp(tmp);
  try {
    try {
      const buf = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    // a full disk: the partial temporary file must not keep its blocks
    try {
      unlinkIfPresent(tmp);
    } catch {
      // reported by the original error
    }
    throw err;
  }
  fsyncDir(dirname(path));
}

/** The file written piece by piece (appends run one after the other on libuv's thread pool): <file>.tmp, fsync, rename, fsync dir. */
async function writeAtomicStream(path: string, produce: (append: (text: string) => Promise<void>) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp`;
  await fsp.unlink(tmp).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  const fh = await fsp.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      await produce(async (text) => {
        await fh.writeFile(text, 'utf8');
      });
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dh = await fsp.open(dirname(path), O_RDONLY | O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

function fileType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** Bytes read per read(2) of a state file. */
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * The file's text; null when absent; an error when it is anything but a regular file (never opened through a symlink,
 * never blocking on a FIFO) or longer than MAX_STATE_BYTES (at most MAX_STATE_BYTES + 1 bytes are read).
 */
export function readStateText(path: string): string | null | { error: string } {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') return { error: `${path} is a symbolic link (only a regular file is read)` };
    if (code === 'ENXIO') return { error: `${path} is not a regular file (a socket)` };
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { error: `${path} is not a regular file (${fileType(st)})` };
    if (st.size > MAX_STATE_BYTES) return { error: `${path} is ${st.size} bytes (at most ${MAX_STATE_BYTES})` };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(READ_CHUNK_BYTES, MAX_STATE_BYTES + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, null);
      if (n === 0) break;
      chunks.push(n === want ? buf : buf.subarray(0, n));
      total += n;
      if (total > MAX_STATE_BYTES) return { error: `${path} is larger than ${MAX_STATE_BYTES} bytes` };
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The control socket a stored document belongs to: its "instance" section, else its config's control_socket. */
function documentSocket(doc: StateDocument): string {
  const inst = doc.sections[INSTANCE_SECTION] as { control_socket?: unknown } | undefined;
  if (typeof inst?.control_socket === 'string') return resolve(inst.control_socket);
  const s = doc.config.control_socket;
  return resolve(typeof s === 'string' && s !== '' ? s : DEFAULT_CONTROL_SOCKET);
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Opens (creating) and flocks a lock file; -1 when another process holds it. */
function lockFile(path: string): number {
  const fd = openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
  let locked: boolean;
  try {
    locked = netdev.flockExclusive(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (!locked) {
    closeSync(fd);
    return -1;
  }
  return fd;
}

export class StateStore {
  readonly path: string;
  readonly fdbPath: string;
  readonly lockFd: number;
  /** The control socket's absolute path (written into each document's "instance" section). */
  readonly socketPath: string;
  /** What open() found worth a start-up log line. */
  readonly notes: StoreNote[] = [];
  private closed = false;
  /** The asynchronous snapshot write in flight, if any. */
  private fdbWrite: Promise<void> | null = null;
  /** Snapshots skipped because the previous one was still being written. */
  fdbWritesSkipped = 0;

  private constructor(stateDir: string, controlSocket: string, lockFd: number) {
    this.path = statePath(stateDir, controlSocket);
    this.fdbPath = snapshotPath(stateDir, controlSocket);
    this.socketPath = resolve(controlSocket);
    this.lockFd = lockFd;
  }

  static open(stateDir: string, controlSocket: string): StateStore {
    const path = statePath(stateDir, controlSocket);
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(`cannot create state_dir ${stateDir}: ${(err as Error).message}`);
    }
    checkStateDir(stateDir);
    const fd = lockFile(`${path}.lock`);
    if (fd < 0) {
      throw new StateLockedError(`state file ${path} is locked by another tapbridge daemon (flock on ${path}.lock); give each daemon its own control_socket or state_dir`);
    }
    const store = new StateStore(stateDir, controlSocket, fd);
    try {
      store.migrate(stateDir, controlSocket);
    } catch (err) {
      store.notes.push({ level: 'warn', msg: 'state file of the old name not carried over', fields: { err: (err as Error).message } });
    }
    if (!exists(store.path)) store.noteOthers(stateDir);
    return store;
  }

  /**
   * The store of a daemon taking over: the handed-over lock fd is adopted when it holds this store's lock file (same
   * state_dir and socket); otherwise it is closed (the old daemon releases its lock when it exits) and this store's
   * own state_dir is created and locked as open() does.
   */
  static forTakeover(stateDir: string, controlSocket: string, lockFd: number): StateStore {
    if (lockFd >= 0) {
      const path = statePath(stateDir, controlSocket);
      let same = false;
      try {
        const held = fstatSync(lockFd);
        const here = lstatSync(`${path}.lock`);
        same = held.dev === here.dev && held.ino === here.ino;
      } catch {
        same = false;
      }
      if (same) {
        checkStateDir(stateDir);
        return new StateStore(stateDir, controlSocket, lockFd);
      }
      closeSync(lockFd);
    }
    return StateStore.open(stateDir, controlSocket);
  }

  /** The state file of the old name (<socket file name>.state), renamed to this store's name when it is this socket's. */
  private migrate(stateDir: string, controlSocket: string): void {
    const legacy = legacyStatePath(stateDir, controlSocket);
    if (legacy === this.path || exists(this.path) || !exists(legacy)) return;
    const lfd = lockFile(`${legacy}.lock`);
    if (lfd < 0) {
      this.notes.push({ level: 'warn', msg: 'a state file of the old name is locked by a running daemon; not carried over', fields: { file: legacy } });
      return;
    }
    try {
      const text = readStateText(legacy);
      if (text === null) return;
      const r = typeof text === 'string' ? parseState(text) : text;
      if ('error' in r) {
        this.notes.push({ level: 'warn', msg: 'a state file of the old name does not read; not carried over', fields: { file: legacy, error: r.error } });
        return;
      }
      const owner = documentSocket(r.doc);
      if (owner !== this.socketPath) {
        this.notes.push({ level: 'warn', msg: 'a state file of the old name belongs to another control socket; not carried over', fields: { file: legacy, control_socket: owner } });
        return;
      }
      renameSync(legacy, this.path);
      const legacyFdb = join(stateDir, `${basename(controlSocket)}.fdb`);
      if (exists(legacyFdb) && !exists(this.fdbPath)) renameSync(legacyFdb, this.fdbPath);
      fsyncDir(stateDir);
      this.notes.push({ level: 'info', msg: 'state file carried over from its old name', fields: { from: legacy, to: this.path } });
    } finally {
      closeSync(lfd);
    }
  }

  /** No state for this socket: name the other state files in state_dir (a renamed control_socket left them). */
  private noteOthers(stateDir: string): void {
    let others: string[];
    try {
      others = readdirSync(stateDir).filter((f) => f.endsWith('.state') && join(stateDir, f) !== this.path).sort();
    } catch {
      return;
    }
    if (others.length === 0) return;
    this.notes.push({
      level: 'warn',
      msg: 'no runtime state for this control socket; state_dir holds the state of other control sockets, not applied ' +
        '(after a control_socket rename, stop the daemon and rename <old>.state and <old>.fdb to the new name to carry it over)',
      fields: { state_file: this.path, others: others.slice(0, MAX_OTHERS_LISTED), others_count: others.length },
    });
  }

  private moveAside(path: string, error: string, onBad: (error: string, movedTo: string) => void): void {
    // never onto an earlier file moved aside in the same millisecond (rename would replace it)
    let aside = `${path}.bad-${Date.now()}`;
    for (let n = 1; lexists(aside) && n < 1000; n++) aside = `${path}.bad-${Date.now()}-${n}`;
    try {
      renameSync(path, aside);
    } catch {
      // leave it; the next write replaces it
    }
    onBad(error, aside);
  }

  /** The stored document and snapshot (null when absent). A corrupt or unsupported file is moved aside and reported. */
  read(onBad: (error: string, movedTo: string) => void): { state: StateDocument | null; fdb: FdbSnapshot | null } {
    let state: StateDocument | null = null;
    let fdb: FdbSnapshot | null = null;
    const text = readStateText(this.path);
    if (text !== null) {
      const r = typeof text === 'string' ? parseState(text) : text;
      if ('doc' in r) state = r.doc;
      else this.moveAside(this.path, r.error, onBad);
    }
    const snap = readStateText(this.fdbPath);
    if (snap !== null) {
      const r = typeof snap === 'string' ? parseSnapshotText(snap) : snap;
      if ('fdb' in r) fdb = r.fdb;
      else this.moveAside(this.fdbPath, r.error, onBad);
    }
    return { state, fdb };
  }

  /**
   * Writes the document (without its FDB snapshot, with this socket as its "instance") atomically and synchronously;
   * throws the write's error (the file on disk is then the previous one).
   */
  write(doc: StateDocument): void {
    if (this.closed) throw new Error(`state file ${this.path} is closed`);
    const sections = { ...doc.sections, [INSTANCE_SECTION]: { control_socket: this.socketPath } };
    writeAtomicSync(this.path, serializeState({ ...doc, sections, fdb: null }));
  }

  /**
   * Writes an FDB snapshot atomically on libuv's thread pool; resolves false when skipped because the previous
   * write is still running. Rejects with the write's error.
   */
  async writeFdb(fdb: FdbSnapshot): Promise<boolean> {
    const text = serializeSnapshot(fdb);
    return this.writeFdbStream((append) => append(text));
  }

  /**
   * writeFdb() of a snapshot produced a piece at a time: `produce` gets an `append(text)` that writes each piece to
   * the temporary file as it comes (so no piece outlives its slice: a 100k-entry snapshot never exists as one
   * string), then the file is synced and renamed. Resolves false when skipped (a write is in flight) or closed.
   */
  async writeFdbStream(produce: (append: (text: string) => Promise<void>) => Promise<void>): Promise<boolean> {
    if (this.closed) return false;
    if (this.fdbWrite !== null) {
      this.fdbWritesSkipped++;
      return false;
    }
    const p = writeAtomicStream(this.fdbPath, produce);
    this.fdbWrite = p;
    try {
      await p;
      return true;
    } finally {
      this.fdbWrite = null;
    }
  }

  /** Resolves when no asynchronous snapshot write is in flight (its error, if any, was reported by writeFdb). */
  async idle(): Promise<void> {
    while (this.fdbWrite !== null) await this.fdbWrite.catch(() => undefined);
  }

  /** The snapshot, synchronously (shutdown, after idle(): an older asynchronous write must not land after it). */
  writeFdbSync(fdb: FdbSnapshot): void {
    if (this.closed) return;
    writeAtomicSync(this.fdbPath, serializeSnapshot(fdb));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Releases the lock (the files stay). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.lockFd);
  }
}

function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
