// The new daemon's side of `tapbridge daemon --takeover` (protocol in protocol.ts).
//
//   receive()  connect to the running daemon's control socket, ask for the handover, receive the
//              fds and the payload. A refusal from the old daemon, a version this daemon does not
//              know, or a payload that does not check out: TakeoverError; unknown versions and bad
//              payloads are refused back (the old daemon resumes), every received fd is closed.
//              Otherwise the port fds go into the inherited pool and the control socket fd is
//              returned for ControlServer.listenInherited.
//   confirm()  once every port reads: {"forwarding":true}; the old daemon exits.
//   refuse()   start-up failed after receiving: {"refused": why}; the old daemon resumes.

import type { Logger } from '../log.js';
import { fds } from '../io/native.js';
import { VERSION } from '../version.js';
import { inheritedFds } from './inherited.js';
import {
  HANDOVER_PROTOCOLS_UNDERSTOOD,
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

  /** Tells the old daemon that this one forwards; it exits. */
  confirm(): void {
    if (this.sock < 0) return;
    try {
      fds.write(this.sock, `${JSON.stringify({ forwarding: true })}\n`, 2_000);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not tell the old daemon that this one forwards');
    }
    fds.close(this.sock);
    this.sock = -1;
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
