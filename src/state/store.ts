// The state files on disk, one pair per daemon:
//
//   <state_dir>/<control socket file name>.state   the state document without the FDB (written on every runtime
//                                                 change, synchronously: the reply goes out once it is on disk)
//   <state_dir>/<control socket file name>.fdb     the FDB snapshot (every fdb_snapshot_interval seconds, written by
//                                                 libuv's thread pool so the disk never stalls the forwarding loop;
//                                                 at shutdown synchronously)
//
//   StateStore.open(stateDir, controlSocket)  creates state_dir (0700), takes the lock, or throws StateLockedError
//   store.read(onBad)                          { state, fdb } as stored (each null when absent); a corrupt file is
//                                              renamed to <file>.bad-<time> and reported (never crashes start-up)
//   store.write(doc)                           the document (its fdb left out): <file>.tmp, fsync, rename, fsync dir
//   store.writeFdb(fdb) / writeFdbSync(fdb)    the snapshot, the same way; at most one asynchronous write in flight
//                                              (a snapshot due while one is being written is skipped and counted)
//   store.close()                              releases the lock
//
// Lock: flock(LOCK_EX | LOCK_NB) on `<file>.lock` (the addon's flockExclusive; Node has no flock). Not on the
// state file itself, whose inode every atomic rename replaces. The lock belongs to the open file description:
// it is released when the daemon exits, however it exits, and a copy of `lockFd` passed over SCM_RIGHTS (the fd
// handover) shares it, so a taking-over daemon can adopt it with StateStore.adopt(stateDir, socket, fd).

import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, constants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { netdev } from '../io/native.js';
import { MAX_STATE_BYTES, parseSnapshotText, parseState, serializeSnapshot, serializeState, type FdbSnapshot, type StateDocument } from './document.js';

export class StateLockedError extends Error {
  readonly code = 'ESTATELOCKED';
}

/** `<state_dir>/<control socket file name>.state` */
export function statePath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${basename(controlSocket)}.state`);
}

/** `<state_dir>/<control socket file name>.fdb` */
export function snapshotPath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${basename(controlSocket)}.fdb`);
}

function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), constants.O_RDONLY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** The file written piece by piece (appends run one after the other on libuv's thread pool): <file>.tmp, fsync, rename, fsync dir. */
async function writeAtomicStream(path: string, produce: (append: (text: string) => Promise<void>) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await produce(async (text) => {
      await fh.writeFile(text, 'utf8');
    });
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
  const dh = await fsp.open(dirname(path), constants.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** The file's text; null when absent; an error when it is larger than MAX_STATE_BYTES (never read into memory). */
function readText(path: string): string | null | { error: string } {
  try {
    const fd = openSync(path, constants.O_RDONLY);
    try {
      const size = fstatSync(fd).size;
      if (size > MAX_STATE_BYTES) return { error: `${path} is ${size} bytes (at most ${MAX_STATE_BYTES})` };
      return readFileSync(fd, { encoding: 'utf8' });
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export class StateStore {
  readonly path: string;
  readonly fdbPath: string;
  readonly lockFd: number;
  private closed = false;
  /** The asynchronous snapshot write in flight, if any. */
  private fdbWrite: Promise<void> | null = null;
  /** Snapshots skipped because the previous one was still being written. */
  fdbWritesSkipped = 0;

  private constructor(stateDir: string, controlSocket: string, lockFd: number) {
    this.path = statePath(stateDir, controlSocket);
    this.fdbPath = snapshotPath(stateDir, controlSocket);
    this.lockFd = lockFd;
  }

  static open(stateDir: string, controlSocket: string): StateStore {
    const path = statePath(stateDir, controlSocket);
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(`cannot create state_dir ${stateDir}: ${(err as Error).message}`);
    }
    const fd = openSync(`${path}.lock`, constants.O_RDWR | constants.O_CREAT, 0o600);
    let locked: boolean;
    try {
      locked = netdev.flockExclusive(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!locked) {
      closeSync(fd);
      throw new StateLockedError(`state file ${path} is locked by another tapbridge daemon (flock on ${path}.lock); give each daemon its own control_socket or state_dir`);
    }
    return new StateStore(stateDir, controlSocket, fd);
  }

  /** A store whose lock fd was received from the daemon being taken over (it already holds the lock). */
  static adopt(stateDir: string, controlSocket: string, lockFd: number): StateStore {
    return new StateStore(stateDir, controlSocket, lockFd);
  }

  private moveAside(path: string, error: string, onBad: (error: string, movedTo: string) => void): void {
    const aside = `${path}.bad-${Date.now()}`;
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
    const text = readText(this.path);
    if (text !== null) {
      const r = typeof text === 'string' ? parseState(text) : text;
      if ('doc' in r) state = r.doc;
      else this.moveAside(this.path, r.error, onBad);
    }
    const snap = readText(this.fdbPath);
    if (snap !== null) {
      const r = typeof snap === 'string' ? parseSnapshotText(snap) : snap;
      if ('fdb' in r) fdb = r.fdb;
      else this.moveAside(this.fdbPath, r.error, onBad);
    }
    return { state, fdb };
  }

  /** Writes the document (without its FDB snapshot) atomically and synchronously. */
  write(doc: StateDocument): void {
    if (this.closed) return;
    writeAtomicSync(this.path, serializeState({ ...doc, fdb: null }));
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

  /** Releases the lock (the files stay). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.lockFd);
  }
}
