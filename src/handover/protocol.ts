// The handover message between two daemons (`tapbridge daemon --takeover`), protocol version 2.
//
//   new -> old   one JSON-RPC line on the control socket:
//                {"jsonrpc":"2.0","id":1,"method":"handover","params":{"protocols":[2],"pid":N,"version":"..."}}
//   old -> new   either a JSON-RPC error line (refused: no common protocol, a handover already
//                running, ...) or the binary handover of src/native/handover.cc: header with the
//                protocol version, the fds (SCM_RIGHTS), then the payload below as JSON. The old
//                daemon has stopped reading every port and accepting control connections before it sends.
//   new -> old   one line, once the new daemon has adopted every fd and replayed the state WITHOUT
//                reading a port, accepting a control connection or writing the state file:
//                {"stop":true}, or {"refused":"why"} when its start-up failed
//   old -> new   {"stopping":true}: the old daemon is committed. It never reads a port or accepts a
//                connection again, stops its threads and exits 0 without closing, deleting or
//                unlinking anything shared. Only once its end of this connection has closed (the
//                process ended) and the old pid is gone (or a zombie) does the new daemon read, accept
//                and write.
//
// The resume rule (old daemon): it reads again on a refusal, EOF or no line within
// HANDOVER_ACK_TIMEOUT_MS, and only while it has not answered "stopping". A "stop" that arrives after
// it resumed is answered by nothing (the connection is closed): the new daemon, seeing no "stopping",
// gives up without ever having read a frame (unless the old pid is gone). After "stopping" the new
// daemon waits HANDOVER_OLD_EXIT_TIMEOUT_MS for the connection's EOF and the pid to go; if neither
// happened it SIGKILLs the pid (the old daemon is committed and holds nothing it must clean up), then
// waits HANDOVER_KILL_WAIT_MS more and refuses the handover unless the connection closed by then (a
// closed connection with a pid still in use: the pid is not the old daemon's, another pid namespace).
//
// Version 1 (the old daemon exits on {"forwarding":true}, which the new one sent after it started
// reading) is not spoken any more: either side refuses a peer that only knows it.
//
// Payload (every field checked by parsePayload: it crossed a process boundary):
//   protocol  2
//   from      {version, pid}
//   fds       [{kind: 'tap'|'packet'|'control'|'statelock'|'vhost-user', name, ifindex}], entry i describes fd i:
//             the daemon's TAPs, the AF_PACKET sockets of attach ports, uplinks and bond members (by
//             netdev name), the listening control socket, the state file's flock fd, and each vhost-user
//             port's connection, memory and eventfds (ifindex holds the fd's role, see native-types.ts)
//   vhost     optional: vhost-user port name -> its negotiated state (features, regions, rings, indexes)
//   state     the runtime state document (src/state/document.ts: journal, a fresh FDB snapshot,
//             named sections) as its JSON text; the new daemon checks it with parseState and replays
//             it as a start from the state file would
//
// A new daemon that does not know the header's version refuses before it reads the payload.

export const HANDOVER_PROTOCOL = 2;
/** Versions this daemon can read (sent in the request so the old daemon can refuse early). */
export const HANDOVER_PROTOCOLS_UNDERSTOOD: readonly number[] = [2];
/** The old daemon waits this long for "stop" before it resumes (and only until it answered "stopping"). */
export const HANDOVER_ACK_TIMEOUT_MS = 10_000;
/** The new daemon waits this long for "stopping" after its "stop". */
export const HANDOVER_STOP_ACK_TIMEOUT_MS = 5_000;
/** After "stopping", the new daemon waits this long for the old pid to be gone before it SIGKILLs it. */
export const HANDOVER_OLD_EXIT_TIMEOUT_MS = 10_000;
/** ... and this long after the SIGKILL before it gives up (refuses, exits 1). */
export const HANDOVER_KILL_WAIT_MS = 2_000;
/** Sending or receiving the handover itself. */
export const HANDOVER_TRANSFER_TIMEOUT_MS = 10_000;
/** The new daemon's answer line is at most this long. */
export const HANDOVER_MAX_ANSWER_BYTES = 4096;
/** How long the old daemon waits, after its pause, for its data workers to acknowledge that they stopped reading. */
export const HANDOVER_WORKER_PAUSE_TIMEOUT_MS = 2_000;

export type HandoverFdKind = 'tap' | 'packet' | 'control' | 'statelock' | 'vhost-user';

export interface HandoverFdEntry {
  kind: HandoverFdKind;
  name: string;
  ifindex: number;
}

export interface HandoverPayload {
  protocol: number;
  from: { version: string; pid: number };
  fds: HandoverFdEntry[];
  /** src/state/document.ts StateDocument as JSON text */
  state: string;
  /** vhost-user ports: port name -> the negotiated state of its connection (checked by the addon's adoptHandover) */
  vhost?: Record<string, Record<string, unknown>>;
}

export function encodePayload(p: HandoverPayload): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(p));
}

export class HandoverPayloadError extends Error {}

const NAME_RE = /^[^\0/\s]{1,15}$/;
const FD_KINDS: readonly string[] = ['tap', 'packet', 'control', 'statelock', 'vhost-user'];

function fail(path: string, msg: string): never {
  throw new HandoverPayloadError(`handover payload ${path}: ${msg}`);
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, unknown>;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(path, `must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

/** Parses and checks the payload (not the state document inside: parseState does); throws HandoverPayloadError naming the field. */
export function parsePayload(bytes: Uint8Array, fdCount: number): HandoverPayload {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    fail('(json)', (err as Error).message);
  }
  const d = obj(doc, '(top)');
  const protocol = int(d.protocol, 'protocol', 1, 0x7fffffff);
  const from = obj(d.from, 'from');
  const fromOut = {
    version: typeof from.version === 'string' ? from.version.slice(0, 64) : fail('from.version', 'must be a string'),
    pid: int(from.pid, 'from.pid', 1, 0x7fffffff),
  };
  if (!Array.isArray(d.fds)) fail('fds', 'must be a list');
  if (d.fds.length !== fdCount) fail('fds', `describes ${d.fds.length} fds, ${fdCount} arrived`);
  const fdsOut = (d.fds as unknown[]).map((f, i): HandoverFdEntry => {
    const o = obj(f, `fds[${i}]`);
    if (typeof o.kind !== 'string' || !FD_KINDS.includes(o.kind)) fail(`fds[${i}].kind`, `must be one of ${FD_KINDS.join(', ')}, got ${JSON.stringify(o.kind)}`);
    const kind = o.kind as HandoverFdKind;
    const port = kind === 'tap' || kind === 'packet' || kind === 'vhost-user';
    if (port && (typeof o.name !== 'string' || !NAME_RE.test(o.name))) fail(`fds[${i}].name`, `must be an interface name, got ${JSON.stringify(o.name)}`);
    return {
      kind,
      name: typeof o.name === 'string' ? o.name.slice(0, 108) : '',
      ifindex: int(o.ifindex, `fds[${i}].ifindex`, 0, 0x7fffffff),
    };
  });
  if (typeof d.state !== 'string') fail('state', 'must be the state document as JSON text');
  let vhost: HandoverPayload['vhost'];
  if (d.vhost !== undefined) {
    const v = obj(d.vhost, 'vhost');
    vhost = {};
    for (const [name, st] of Object.entries(v)) {
      if (!NAME_RE.test(name)) fail('vhost', `${JSON.stringify(name)} is not a port name`);
      vhost[name] = obj(st, `vhost.${name}`);
    }
  }
  return { protocol, from: fromOut, fds: fdsOut, state: d.state, ...(vhost !== undefined ? { vhost } : {}) };
}
