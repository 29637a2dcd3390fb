// The handover message between two daemons (`tapbridge daemon --takeover`), protocol version 1.
//
//   new -> old   one JSON-RPC line on the control socket:
//                {"jsonrpc":"2.0","id":1,"method":"handover","params":{"protocols":[1],"pid":N,"version":"..."}}
//   old -> new   either a JSON-RPC error line (refused: no common protocol, a handover already
//                running, ...) or the binary handover of src/native/handover.cc: header with the
//                protocol version, the fds (SCM_RIGHTS), then the payload below as JSON
//   new -> old   one line: {"forwarding":true} once the new daemon reads every port, or
//                {"refused":"why"}; the old daemon exits on the first and resumes on anything else
//                (including EOF and a timeout)
//
// Payload (every field checked by parsePayload: it crossed a process boundary):
//   protocol  1
//   from      {version, pid}
//   fds       [{kind: 'tap'|'packet'|'control', name, ifindex}], entry i describes fd i
//   bridges   [{name, ageing_time, ports: [{name, kind, runtime, vlan}], fdb: [{mac, vlan, port, static, age_ms}]}]
//             runtime = the port was added at runtime (addif), not by the config
//
// A new daemon that does not know the header's version refuses before it reads the payload.

import { formatMac, macIsMulticast, parseMac } from '../frame/mac.js';
import { vlanSpecFrom, type VlanSpec } from '../bridge/vlan.js';

export const HANDOVER_PROTOCOL = 1;
/** Versions this daemon can read (sent in the request so the old daemon can refuse early). */
export const HANDOVER_PROTOCOLS_UNDERSTOOD: readonly number[] = [1];
/** The old daemon waits this long for "forwarding" before it resumes. */
export const HANDOVER_ACK_TIMEOUT_MS = 10_000;
/** Sending or receiving the handover itself. */
export const HANDOVER_TRANSFER_TIMEOUT_MS = 10_000;
/** The new daemon's answer line is at most this long. */
export const HANDOVER_MAX_ANSWER_BYTES = 4096;

export type HandoverFdKind = 'tap' | 'packet' | 'control';

export interface HandoverFdEntry {
  kind: HandoverFdKind;
  name: string;
  ifindex: number;
}

export interface HandoverPort {
  name: string;
  kind: 'tap' | 'attach' | 'host';
  runtime: boolean;
  vlan: VlanSpec;
}

export interface HandoverFdbEntry {
  mac: number;
  vlan: number;
  port: string;
  static: boolean;
  ageMs: number;
}

export interface HandoverBridge {
  name: string;
  ageingTimeS: number;
  ports: HandoverPort[];
  fdb: HandoverFdbEntry[];
}

export interface HandoverPayload {
  protocol: number;
  from: { version: string; pid: number };
  fds: HandoverFdEntry[];
  bridges: HandoverBridge[];
}

/** JSON form of a payload (MACs as strings). */
export function encodePayload(p: HandoverPayload): Uint8Array {
  const json = {
    protocol: p.protocol,
    from: p.from,
    fds: p.fds,
    bridges: p.bridges.map((b) => ({
      name: b.name,
      ageing_time: b.ageingTimeS,
      ports: b.ports,
      fdb: b.fdb.map((e) => ({ mac: formatMac(e.mac), vlan: e.vlan, port: e.port, static: e.static, age_ms: e.ageMs })),
    })),
  };
  return new TextEncoder().encode(JSON.stringify(json));
}

export class HandoverPayloadError extends Error {}

const NAME_RE = /^[^\0/\s]{1,15}$/;
const MAX_PORTS = 4096;
const MAX_FDB = 2_000_000;

function fail(path: string, msg: string): never {
  throw new HandoverPayloadError(`handover payload ${path}: ${msg}`);
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, unknown>;
}

function arr(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'must be a list');
  if (v.length > max) fail(path, `has ${v.length} entries, more than ${max}`);
  return v;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(path, `must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function ifname(v: unknown, path: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) fail(path, `must be an interface name, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, 'must be true or false');
  return v;
}

function vlanSpec(v: unknown, path: string): VlanSpec {
  const o = obj(v, path);
  let r: ReturnType<typeof vlanSpecFrom>;
  if (o.mode === 'default') return { mode: 'default' };
  if (o.mode === 'access') r = vlanSpecFrom(o.vlan, undefined, undefined);
  else if (o.mode === 'trunk') r = vlanSpecFrom(undefined, o.vlans, o.native === null ? undefined : o.native);
  else fail(`${path}.mode`, `must be default, access or trunk, got ${JSON.stringify(o.mode)}`);
  if ('problems' in r) fail(path, r.problems.map(([k, m]) => `${k} ${m}`).join('; '));
  return r.spec;
}

/** Parses and checks the payload; throws HandoverPayloadError naming the field. */
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
  const fdList = arr(d.fds, 'fds', 4096);
  if (fdList.length !== fdCount) fail('fds', `describes ${fdList.length} fds, ${fdCount} arrived`);
  const fdsOut = fdList.map((f, i): HandoverFdEntry => {
    const o = obj(f, `fds[${i}]`);
    if (o.kind !== 'tap' && o.kind !== 'packet' && o.kind !== 'control') fail(`fds[${i}].kind`, `must be tap, packet or control, got ${JSON.stringify(o.kind)}`);
    return {
      kind: o.kind,
      name: o.kind === 'control' ? (typeof o.name === 'string' ? o.name.slice(0, 108) : '') : ifname(o.name, `fds[${i}].name`),
      ifindex: int(o.ifindex, `fds[${i}].ifindex`, 0, 0x7fffffff),
    };
  });
  const bridges = arr(d.bridges, 'bridges', 256).map((b, bi): HandoverBridge => {
    const bp = `bridges[${bi}]`;
    const o = obj(b, bp);
    if (typeof o.name !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(o.name)) fail(`${bp}.name`, 'must be a bridge name');
    return {
      name: o.name,
      ageingTimeS: int(o.ageing_time, `${bp}.ageing_time`, 0, 1_000_000),
      ports: arr(o.ports, `${bp}.ports`, MAX_PORTS).map((p, pi): HandoverPort => {
        const pp = `${bp}.ports[${pi}]`;
        const po = obj(p, pp);
        if (po.kind !== 'tap' && po.kind !== 'attach' && po.kind !== 'host') fail(`${pp}.kind`, `must be tap, attach or host, got ${JSON.stringify(po.kind)}`);
        return { name: ifname(po.name, `${pp}.name`), kind: po.kind, runtime: bool(po.runtime, `${pp}.runtime`), vlan: vlanSpec(po.vlan, `${pp}.vlan`) };
      }),
      fdb: arr(o.fdb, `${bp}.fdb`, MAX_FDB).map((e, ei): HandoverFdbEntry => {
        const ep = `${bp}.fdb[${ei}]`;
        const eo = obj(e, ep);
        const mac = typeof eo.mac === 'string' ? parseMac(eo.mac) : null;
        if (mac === null || mac === 0 || macIsMulticast(mac)) fail(`${ep}.mac`, `must be a unicast MAC, got ${JSON.stringify(eo.mac)}`);
        return {
          mac,
          vlan: int(eo.vlan, `${ep}.vlan`, 0, 4094),
          port: ifname(eo.port, `${ep}.port`),
          static: bool(eo.static, `${ep}.static`),
          ageMs: int(eo.age_ms, `${ep}.age_ms`, 0, 1_000_000_000),
        };
      }),
    };
  });
  return { protocol, from: fromOut, fds: fdsOut, bridges };
}
