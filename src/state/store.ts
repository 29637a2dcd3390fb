// The state file on disk: `<state_dir>/<control socket file name>.state`, one per daemon.
//
//   StateStore.open(stateDir, controlSocket)  creates state_dir (0700), takes the lock, or throws StateLockedError
//   store.read()                               the stored document, null when there is none; a corrupt file is
//                                              renamed to <file>.bad-<time> and reported (never crashes start-up)
//   store.write(doc)                           atomic: <file>.tmp, fsync, rename over <file>, fsync the directory
//   store.close()                              releases the lock
//
// Lock: flock(LOCK_EX | LOCK_NB) on `<file>.lock` (the addon's flockExclusive; Node has no flock). Not on the
// state file itself, whose inode every atomic rename replaces. The lock belongs to the open file description:
// it is released when the daemon exits, however it exits, and a copy of `lockFd` passed over SCM_RIGHTS (the fd
// handover) shares it, so a taking-over daemon can adopt it with StateStore.adopt(stateDir, socket, fd).

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, constants } from 'node:fs';
import { basename, join } from 'node:path';
import { netdev } from '../io/native.js';
import { MAX_STATE_BYTES, parseState, serializeState, type StateDocument } from './document.js';

export class StateLockedError extends Error {
  readonly code = 'ESTATELOCKED';
}

/** `<state_dir>/<control socket file name>.state` */
export function statePath(stateDir: string, controlSocket: string): string {
  return join(stateDir, `${basename(controlSocket)}.state`);
}

export class StateStore {
  readonly path: string;
  readonly lockFd: number;
  private closed = false;

  private constructor(path: string, lockFd: number) {
    this.path = path;
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
    return new StateStore(path, fd);
  }

  /** A store whose lock fd was received from the daemon being taken over (it already holds the lock). */
  static adopt(stateDir: string, controlSocket: string, lockFd: number): StateStore {
    return new StateStore(statePath(stateDir, controlSocket), lockFd);
  }

  /** The stored document; null when none. A corrupt or unsupported file is moved aside and reported via `onBad`. */
  read(onBad: (error: string, movedTo: string) => void): StateDocument | null {
    let text: string;
    try {
      const fd = openSync(this.path, constants.O_RDONLY);
      try {
        text = readFileSync(fd, { encoding: 'utf8' });
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const r = text.length > MAX_STATE_BYTES ? { error: `state file is larger than ${MAX_STATE_BYTES} bytes` } : parseState(text);
    if ('doc' in r) return r.doc;
    const aside = `${this.path}.bad-${Date.now()}`;
    try {
      renameSync(this.path, aside);
    } catch {
      // leave it; the next write replaces it
    }
    onBad(r.error, aside);
    return null;
  }

  /** Writes the document atomically (temp file, fsync, rename, fsync of the directory). */
  write(doc: StateDocument): void {
    if (this.closed) return;
    const text = serializeState(doc);
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      const buf = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dfd = openSync(join(this.path, '..'), constants.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }

  /** Releases the lock (the file stays). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.lockFd);
  }
}
