// The running daemon's side of `tapbridge daemon --takeover` (protocol in protocol.ts).
//
//   1. the `handover` request arrives on a control connection; no common protocol version, or a
//      handover already running: an error reply, and nothing changes
//   2. stop reading every port (frames queue in the TAPs and sockets), stop accepting control
//      connections and answer requests on open ones with `handing_over`; wait (at most
//      HANDOVER_WORKER_PAUSE_TIMEOUT_MS) until every data worker acknowledged that it stopped reading: a worker
//      that has not may still read a port, so the handover is refused and this daemon reads again (onResumed)
//   3. send every port fd, the listening control socket, the runtime state and the FDB
//   4. wait for the new daemon's line: {"stop":true} -> answer {"stopping":true}; once that is written this
//      daemon is committed (phase 'committed') and onHandedOver runs: it exits without reading,
//      accepting, deleting or unlinking anything (the TAPs, sockets and lock are the new daemon's).
//      A refusal, EOF, no line within HANDOVER_ACK_TIMEOUT_MS, or a "stopping" that cannot be written:
//      read the ports again and keep running (onResumed). After "stopping" nothing resumes.
//
// Bounds: one handover at a time; the transfer and the wait have timeouts; the answer line is capped.

import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Daemon } from '../daemon/daemon.js';
import type { ControlServer } from '../control/server.js';
import { errorReply } from '../control/server.js';
import { RPC_REQUEST_FAILED } from '../control/errors.js';
import { fds, isNativeError } from '../io/native.js';
import { VERSION } from '../version.js';
import {
  encodePayload,
  HANDOVER_ACK_TIMEOUT_MS,
  HANDOVER_MAX_ANSWER_BYTES,
  HANDOVER_PROTOCOL,
  HANDOVER_TRANSFER_TIMEOUT_MS,
  HANDOVER_WORKER_PAUSE_TIMEOUT_MS,
  type HandoverFdEntry,
} from './protocol.js';

export interface HandoverServeOptions {
  daemon: Daemon;
  control: ControlServer;
  log: Logger;
  /** The runtime state document to hand over (serializeState(state.collectState())). */
  state: () => string;
  /** The state file's flock fd (-1: none): its lock moves with it. */
  stateLockFd: () => number;
  /** Called once this daemon answered "stopping": the caller exits without closing or deleting anything. */
  onHandedOver: () => void;
  /** Called when a handover did not complete and this daemon reads again. */
  onResumed?: () => void;
}

/** idle: no handover; sent: the fds are out, the answer not yet in; committed: "stopping" was written */
export type HandoverPhase = 'idle' | 'sent' | 'committed';

export interface HandoverServer {
  readonly phase: HandoverPhase;
}

function refuse(sock: Socket, id: unknown, message: string): void {
  sock.end(`${JSON.stringify({ ...errorReply(id, RPC_REQUEST_FAILED, 'handover_refused', message) })}\n`);
}

export function serveHandover(opts: HandoverServeOptions): HandoverServer {
  const { daemon, control, log } = opts;
  let busy = false;
  let phase: HandoverPhase = 'idle';
  control.onConnectionMethod('handover', (sock, params, id) => {
    const protocols = Array.isArray(params.protocols) ? params.protocols.filter((v): v is number => typeof v === 'number') : [];
    const peer = { pid: typeof params.pid === 'number' ? params.pid : null, version: typeof params.version === 'string' ? params.version.slice(0, 64) : null };
    if (!protocols.includes(HANDOVER_PROTOCOL)) {
      log.warn({ peer, protocols }, 'handover refused: no common protocol version');
      refuse(sock, id, `this daemon (${VERSION}) hands over with protocol ${HANDOVER_PROTOCOL}; the new daemon understands ${JSON.stringify(protocols)}`);
      return;
    }
    if (busy) {
      refuse(sock, id, 'a handover is already in progress');
      return;
    }
    busy = true;
    const listenFd = control.handoverFd;
    if (listenFd < 0) {
      busy = false;
      refuse(sock, id, 'the control socket has no fd to hand over');
      return;
    }
    const sockFd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof sockFd !== 'number' || sockFd < 0) {
      busy = false;
      refuse(sock, id, 'cannot reach the connection fd');
      return;
    }
    const t0 = performance.now();
    control.freeze('the daemon is handing over to a new process; retry in a moment');
    daemon.pauseIo();
    // no fd leaves while a data worker may still read its port: two daemons would read it
    const reading = daemon.workersStillReading(HANDOVER_WORKER_PAUSE_TIMEOUT_MS);
    if (reading.length > 0) {
      daemon.resumeIo();
      control.thaw();
      busy = false;
      log.error({ peer, workers: reading, timeout_ms: HANDOVER_WORKER_PAUSE_TIMEOUT_MS }, 'handover refused: data workers did not acknowledge the I/O pause; forwarding again');
      refuse(sock, id, `data worker${reading.length > 1 ? 's' : ''} ${reading.join(', ')} of this daemon did not acknowledge the I/O pause within ` +
        `${HANDOVER_WORKER_PAUSE_TIMEOUT_MS} ms and may still read ports; this daemon keeps forwarding (a worker stuck for ` +
        'several sync timeouts is terminated: try again later, see data_workers.show)');
      opts.onResumed?.();
      return;
    }
    const ios = daemon.portIos();
    const list: number[] = [];
    const entries: HandoverFdEntry[] = [];
    for (const p of ios) {
      list.push(p.io.fd);
      entries.push({ kind: p.io.kind, name: p.name, ifindex: p.ifindex });
    }
    // vhost-user ports: the connection, guest memory and eventfds, and what was negotiated (no renegotiation)
    const vhost: Record<string, Record<string, unknown>> = {};
    for (const v of daemon.vhostHandovers()) {
      for (const [role, fd] of v.fds) {
        list.push(fd);
        entries.push({ kind: 'vhost-user', name: v.name, ifindex: role });
      }
      vhost[v.name] = v.state;
    }
    list.push(listenFd);
    entries.push({ kind: 'control', name: control.path, ifindex: 0 });
    const lockFd = opts.stateLockFd();
    if (lockFd >= 0) {
      list.push(lockFd);
      entries.push({ kind: 'statelock', name: '', ifindex: 0 });
    }
    let payload: Uint8Array;
    try {
      payload = encodePayload({ protocol: HANDOVER_PROTOCOL, from: { version: VERSION, pid: process.pid }, fds: entries, state: opts.state(), vhost });
    } catch (err) {
      daemon.resumeIo();
      control.thaw();
      busy = false;
      log.error({ err }, 'cannot collect the state to hand over');
      refuse(sock, id, `cannot collect the state: ${(err as Error).message}`);
      return;
    }
    const resume = (why: string, extra: Record<string, unknown> = {}): void => {
      if (phase === 'committed') return; // never after "stopping"
      phase = 'idle';
      daemon.resumeIo();
      control.thaw();
      busy = false;
      log.warn({ peer, reason: why, ...extra }, 'handover did not complete; forwarding again');
      opts.onResumed?.();
    };
    sock.pause();
    try {
      fds.send(sockFd, list, payload, HANDOVER_PROTOCOL, HANDOVER_TRANSFER_TIMEOUT_MS);
    } catch (err) {
      sock.destroy();
      resume('sending failed', { err: isNativeError(err) ? err.message : String(err) });
      return;
    }
    phase = 'sent';
    const sentMs = performance.now() - t0;
    log.info({ peer, fds: list.length, payload_bytes: payload.length, paused_to_sent_ms: Math.round(sentMs * 10) / 10 }, 'handover sent; waiting for the new daemon');
    let answer = '';
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => finish(() => {
      sock.destroy();
      resume(`no answer within ${HANDOVER_ACK_TIMEOUT_MS} ms`);
    }), HANDOVER_ACK_TIMEOUT_MS);
    sock.on('data', (chunk: string | Buffer) => {
      answer += chunk.toString();
      const nl = answer.indexOf('\n');
      if (nl < 0 && answer.length <= HANDOVER_MAX_ANSWER_BYTES) return;
      const line = (nl < 0 ? answer : answer.slice(0, nl)).trim();
      finish(() => {
        let msg: { stop?: unknown; refused?: unknown } = {};
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          /* not JSON: treated as a refusal below */
        }
        if (msg !== null && typeof msg === 'object' && msg.stop === true) {
          // committed once "stopping" is written: whatever happens to the new daemon after that, this one does not
          // read again. A write that fails (EPIPE: the new daemon gave up and closed while this one was stalled, its
          // "stop" still queued here) means nobody takes over: this daemon resumes instead of exiting.
          const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
          try {
            if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no fd');
            fds.write(fd, `${JSON.stringify({ stopping: true })}\n`, 2_000);
          } catch (err) {
            sock.destroy();
            resume('could not answer "stopping" (the new daemon is gone)', { err: (err as Error).message });
            return;
          }
          phase = 'committed';
          log.info({ peer, handover_ms: Math.round((performance.now() - t0) * 10) / 10 }, 'handed over; stopping so that the new daemon can read');
          opts.onHandedOver();
          return;
        }
        sock.destroy();
        resume('refused by the new daemon', { answer: typeof msg?.refused === 'string' ? msg.refused.slice(0, 500) : line.slice(0, 200) });
      });
    });
    sock.on('close', () => finish(() => resume('the new daemon closed the connection')));
    sock.on('error', () => sock.destroy());
    sock.resume();
  });
  return {
    get phase() {
      return phase;
    },
  };
}
