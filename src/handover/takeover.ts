// The new daemon's side of `tapbridge daemon --takeover` (protocol in protocol.ts).
//
//   receive()  connect to the running daemon's control socket, ask for the handover, receive the
//              fds and the payload. A refusal from the old daemon, a version this daemon does not
//              know, or a payload that does not check out: TakeoverError; unknown versions and bad
//              payloads are refused back (the old daemon resumes), every received fd is closed.
//              Otherwise the port fds go into the inherited pool and the control socket fd is
//              returned for ControlServer.listenInherited.
//   commit()   once every fd is adopted and the state replayed, with no port read, no connection
//              accepted and no state written: {"stop":true}. Resolves only when the old daemon
//              answered {"stopping":true}, its end of the connection has closed (it closes only
//              when the process ends) and its pid is gone or a zombie (oldpid.ts); without that
//              answer, only when its pid is gone already. Otherwise TakeoverError (the old daemon
//              resumed or may: this daemon must give up without reading). The caller reads,
//              accepts and writes only after commit() resolved.
//   refuse()   start-up failed after receiving: {"refused": why}; the old daemon resumes.

import { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { fds } from '../io/native.js';
import { isProcessGone, waitProcessGone } from './oldpid.js';
import { VERSION } from '../version.js';
import { inheritedFds } from './inherited.js';
import {
  HANDOVER_KILL_WAIT_MS,
  HANDOVER_MAX_ANSWER_BYTES,
  HANDOVER_OLD_EXIT_TIMEOUT_MS,
  HANDOVER_PROTOCOLS_UNDERSTOOD,
  HANDOVER_STOP_ACK_TIMEOUT_MS,
  HANDOVER_TRANSFER_TIMEOUT_MS,
  HandoverPayloadError,
  parsePayload,
  type HandoverPayload,
} from './protocol.js';

export class TakeoverError extends Error {}

export class Takeover {
  private sock: number;
  readonly payload: HandoverPayload;
  readonly controlFd: number;
  /** the old daemon's state file lock fd, -1 when it had none */
  readonly stateLockFd: number;
  private readonly log: Logger;

  private constructor(sock: number, payload: HandoverPayload, controlFd: number, stateLockFd: number, log: Logger) {
    this.sock = sock;
    this.payload = payload;
    this.controlFd = controlFd;
    this.stateLockFd = stateLockFd;
    this.log = log;
  }

  /** Asks the daemon on socketPath for its fds and state. */
  static receive(socketPath: string, log: Logger): Takeover {
    const request = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'handover',
      params: { protocols: HANDOVER_PROTOCOLS_UNDERSTOOD, pid: process.pid, version: VERSION },
    });
    let r;
    try {
      r = fds.receive(socketPath, `${request}\n`, HANDOVER_TRANSFER_TIMEOUT_MS);
    } catch (err) {
      throw new TakeoverError(`cannot take over from the daemon at ${socketPath}: ${(err as Error).message}`);
    }
    if ('text' in r) {
      fds.close(r.sock);
      let why = r.text.trim().slice(0, 500);
      try {
        const reply = JSON.parse(r.text) as { error?: { message?: string; data?: { code?: string } } };
        if (reply.error?.message !== undefined) why = `${reply.error.message} (${reply.error.data?.code ?? 'error'})`;
      } catch {
        /* not JSON: quoted as it is */
      }
      throw new TakeoverError(`the daemon at ${socketPath} did not hand over: ${why}`);
    }
    const closeAll = (): void => {
      for (const fd of r.fds) fds.close(fd);
    };
    const refuseAndThrow = (why: string): never => {
      closeAll();
      try {
        fds.write(r.sock, `${JSON.stringify({ refused: why })}\n`, 2_000);
      } catch {
        /* the old daemon resumes on EOF too */
      }
      fds.close(r.sock);
      throw new TakeoverError(why);
    };
    if (!HANDOVER_PROTOCOLS_UNDERSTOOD.includes(r.version)) {
      refuseAndThrow(`handover protocol ${r.version} is not understood by this daemon (${VERSION} understands ${HANDOVER_PROTOCOLS_UNDERSTOOD.join(', ')})`);
    }
    let payload: HandoverPayload;
    try {
      payload = parsePayload(r.payload, r.fds.length);
    } catch (err) {
      if (err instanceof HandoverPayloadError) refuseAndThrow(err.message);
      throw err;
    }
    if (payload.protocol !== r.version) refuseAndThrow(`payload protocol ${payload.protocol} differs from the header's ${r.version}`);
    if (payload.from.pid === process.pid) refuseAndThrow(`the handover names this process (pid ${process.pid}) as the old daemon`);
    let controlFd = -1;
    let stateLockFd = -1;
    inheritedFds.setLogger(log);
    payload.fds.forEach((e, i) => {
      const fd = r.fds[i];
      if (e.kind === 'control') {
        const info = fds.info(fd);
        if (controlFd >= 0 || info.type !== 'unix' || !info.listening) {
          log.warn({ fd, info }, 'handed-over control socket is not a listening Unix socket; ignored');
          fds.close(fd);
          return;
        }
        controlFd = fd;
        return;
      }
      if (e.kind === 'statelock') {
        if (stateLockFd >= 0) fds.close(fd);
        else stateLockFd = fd;
        return;
      }
      if (e.kind === 'vhost-user') {
        inheritedFds.addVhostFd(e.name, e.ifindex, fd);
        return;
      }
      inheritedFds.add({ fd, kind: e.kind, name: e.name, ifindex: e.ifindex, source: 'takeover' });
    });
    for (const [name, st] of Object.entries(payload.vhost ?? {})) inheritedFds.setVhostState(name, st);
    if (controlFd < 0) {
      inheritedFds.closeUnused();
      if (stateLockFd >= 0) fds.close(stateLockFd);
      refuseAndThrow('the handover carried no listening control socket');
    }
    log.info({ from: payload.from, fds: r.fds.length, state_bytes: payload.state.length }, 'handover received');
    return new Takeover(r.sock, payload, controlFd, stateLockFd, log);
  }

  /** The old daemon's pid, as it sent it. */
  get oldPid(): number {
    return this.payload.from.pid;
  }

  /**
   * Asks the old daemon to stop and waits until it is gone (see the file comment). Throws TakeoverError when it may
   * still read: the caller must then give up without reading a port.
   */
  async commit(): Promise<void> {
    if (this.sock < 0) throw new TakeoverError('the handover connection is closed already');
    const pid = this.oldPid;
    const t0 = performance.now();
    const fd = this.sock;
    this.sock = -1;
    try {
      fds.write(fd, `${JSON.stringify({ stop: true })}\n`, 2_000);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'asking the old daemon to stop failed');
    }
    // the connection's socket owns the fd from here and closes it
    const conn = watchConnection(fd);
    try {
      const answer = await withTimeout(conn.line, HANDOVER_STOP_ACK_TIMEOUT_MS, null);
      let stopping = false;
      try {
        stopping = answer !== null && (JSON.parse(answer) as { stopping?: unknown }).stopping === true;
      } catch {
        /* not JSON: no "stopping" */
      }
      if (!stopping) {
        // it resumed (after its timeout) or failed: this daemon may read only if nobody else can
        if (isProcessGone(pid)) {
          this.log.warn({ old_pid: pid, answer }, 'the old daemon did not answer "stopping" but is gone; taking over');
          return;
        }
        throw new TakeoverError(`the old daemon (pid ${pid}) did not answer "stopping" (answer: ${JSON.stringify(answer)}); it keeps (or resumes) forwarding, nothing was read here`);
      }
      const stoppedMs = performance.now() - t0;
      // gone: its end of the connection closed (it closes only when the process ends) and its pid gone or a zombie
      const exited = async (ms: number): Promise<{ eof: boolean; pidGone: boolean }> => {
        const t = performance.now();
        const eof = await withTimeout(conn.eof.then(() => true), ms, false);
        return { eof, pidGone: await waitProcessGone(pid, Math.max(0, ms - (performance.now() - t))) };
      };
      let r = await exited(HANDOVER_OLD_EXIT_TIMEOUT_MS);
      if (!r.eof || !r.pidGone) {
        if (!r.eof && !r.pidGone) {
          this.log.warn({ old_pid: pid, waited_ms: HANDOVER_OLD_EXIT_TIMEOUT_MS }, 'the old daemon answered "stopping" but has not exited; SIGKILL');
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone meanwhile */
          }
        }
        r = await exited(HANDOVER_KILL_WAIT_MS);
        if (!r.eof) throw new TakeoverError(`the old daemon (pid ${pid}) still holds the handover connection; not reading while it may`);
        // its connection closed, so it has ended: a pid still there is not the old daemon's (another pid namespace)
        if (!r.pidGone) this.log.warn({ old_pid: pid }, 'the old daemon closed its connection but its pid is still in use; taking over');
      }
      this.log.info({ old_pid: pid, stopping_ms: Math.round(stoppedMs * 10) / 10, gone_ms: Math.round((performance.now() - t0) * 10) / 10 }, 'the old daemon has stopped and exited');
    } finally {
      conn.destroy();
    }
  }

  /** Start-up failed after the handover arrived: the old daemon keeps (resumes) forwarding. */
  refuse(why: string): void {
    if (this.sock < 0) return;
    try {
      fds.write(this.sock, `${JSON.stringify({ refused: why.slice(0, 1000) })}\n`, 2_000);
    } catch {
      /* EOF tells it the same */
    }
    fds.close(this.sock);
    this.sock = -1;
  }
}

/** Resolves like p, or with `otherwise` after ms. */
function withTimeout<T>(p: Promise<T>, ms: number, otherwise: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(otherwise), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

interface WatchedConnection {
  /** the first line (without its newline); null on EOF, an error or a line longer than HANDOVER_MAX_ANSWER_BYTES */
  line: Promise<string | null>;
  /** resolves when the peer's end closes (EOF) or the connection fails */
  eof: Promise<void>;
  destroy(): void;
}

/** Reads the old daemon's answer from the stream socket fd (the socket made here owns the fd and closes it). */
function watchConnection(fd: number): WatchedConnection {
  let sock: Socket;
  try {
    sock = new Socket({ fd, readable: true, writable: false });
  } catch {
    fds.close(fd);
    return { line: Promise.resolve(null), eof: Promise.resolve(), destroy: () => undefined };
  }
  let buf = '';
  let lineDone = false;
  let onLine: (l: string | null) => void = () => undefined;
  let onEof: () => void = () => undefined;
  const line = new Promise<string | null>((resolve) => (onLine = resolve));
  const eof = new Promise<void>((resolve) => (onEof = resolve));
  const giveLine = (l: string | null): void => {
    if (lineDone) return;
    lineDone = true;
    onLine(l);
  };
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    if (lineDone) return;
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl >= 0) giveLine(buf.slice(0, nl));
    else if (buf.length > HANDOVER_MAX_ANSWER_BYTES) giveLine(null);
  });
  const ended = (): void => {
    giveLine(null);
    onEof();
  };
  sock.on('end', ended);
  sock.on('close', ended);
  sock.on('error', ended);
  return { line, eof, destroy: () => sock.destroy() };
}
