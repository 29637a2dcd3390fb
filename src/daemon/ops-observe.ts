// Control operations that observe (`trace`, `capture`, `mirror show|add|del`; src/observe/, src/daemon/mirrors.ts):
// a trace sends, learns and counts nothing; a capture streams on the client's connection; mirrors are recorded in
// the runtime journal by the recorders in mirrors.ts.

import type { MirrorShow } from '../bridge/mirror.js';
import { ControlError } from '../control/errors.js';
import type { ControlClient } from '../control/server.js';
import { type Captures, captureOptionsFrom } from '../observe/capture.js';
import { traceFrame, traceFrameFrom, type TraceResult } from '../observe/trace.js';
import { mirrorSpecFromParams } from './mirrors.js';
import type { DaemonCore } from './runtime.js';

/** `trace`: what the bridge would do with one frame on `port` (nothing sent, learned or counted). */
export function trace(d: DaemonCore, p: Record<string, unknown>): TraceResult {
  const br = d.bridge(p.bridge);
  const mp = d.port(br, p.port);
  let frame: Uint8Array;
  try {
    frame = traceFrameFrom(p);
  } catch (err) {
    const msg = (err as Error).message;
    throw new ControlError('invalid_params', msg, { param: msg.split(':')[0] });
  }
  return traceFrame(br.bridge, mp.port, frame, d.now());
}

/** `capture`: starts a pcapng stream of `port` on the client's connection. */
export function capture(d: DaemonCore, captures: Captures, p: Record<string, unknown>, client: ControlClient | null): unknown {
  const br = d.bridge(p.bridge);
  const mp = d.port(br, p.port);
  const opts = captureOptionsFrom(p);
  const r = captures.start(mp.port, opts, client);
  d.log.info({ bridge: br.cfg.name, port: mp.name, ...opts }, 'capture started');
  return r;
}

export function mirrorShow(d: DaemonCore, bridgeName: unknown): MirrorShow[] {
  return d.bridge(bridgeName).mirrors.show();
}

export function mirrorAdd(d: DaemonCore, p: Record<string, unknown>): MirrorShow {
  const br = d.bridge(p.bridge);
  const r = br.mirrors.add(mirrorSpecFromParams(p));
  d.log.info({ bridge: br.cfg.name, mirror: r.name, select: r.select, output: r.output, output_vlan: r.output_vlan }, 'mirror added');
  return r;
}

export function mirrorDel(d: DaemonCore, p: Record<string, unknown>): void {
  const br = d.bridge(p.bridge);
  br.mirrors.del(p.name);
  d.log.info({ bridge: br.cfg.name, mirror: p.name }, 'mirror deleted');
}
