// Runtime mirrors of one bridge: `mirror add/del/show` (JSON-RPC mirror.add, mirror.del, mirror.show)
// and the config's `mirrors:` at start-up. The engine side is src/bridge/mirror.ts; this file checks
// requests against the bridge's ports and replaces the bridge's mirror list between batches.
//
// Runtime state (src/state/journal.ts extension point): mirror.add records key mirror:<br>/<name>; mirror.del
// drops that record when the mirror was added at runtime, else records the deletion (of a config mirror), so that
// a restart replays the same mirrors. A config mirror deleted and added again keeps both records, in order.

import type { Bridge } from '../bridge/bridge.js';
import { Mirror, mirrorSetProblem, mirrorSpecFrom, type MirrorShow, type MirrorSpec } from '../bridge/mirror.js';
import { ControlError } from '../control/errors.js';
import { registerRecordedMethod } from '../state/journal.js';

/** Builds the spec of `mirror.add` params: name, select_ports, direction, select_vlans, output | output_vlan. */
export function mirrorSpecFromParams(p: Record<string, unknown>): MirrorSpec {
  const select: Record<string, unknown> = { ports: p.select_ports };
  if (p.direction !== undefined) select.direction = p.direction;
  if (p.select_vlans !== undefined) select.vlans = p.select_vlans;
  const m: Record<string, unknown> = { name: p.name, select };
  if (p.output !== undefined) m.output = p.output;
  if (p.output_vlan !== undefined) m.output_vlan = p.output_vlan;
  const r = mirrorSpecFrom(m);
  if ('problems' in r) {
    const [key, msg] = r.problems[0];
    const param = key === 'select.ports' ? 'select_ports' : key === 'select.vlans' ? 'select_vlans' : key === 'select.direction' ? 'direction' : key;
    throw new ControlError('invalid_params', `${param}: ${msg}`, { param });
  }
  return r.spec;
}

export class BridgeMirrors {
  private readonly bridge: Bridge;
  /** name of the bridge's uplink (or bond), null without one */
  private readonly uplinkName: () => string | null;

  constructor(bridge: Bridge, uplinkName: () => string | null) {
    this.bridge = bridge;
    this.uplinkName = uplinkName;
  }

  show(): MirrorShow[] {
    return this.bridge.mirrors.map((m) => m.describe());
  }

  /** Adds a mirror; the ports it names must be ports of this bridge. */
  add(spec: MirrorSpec): MirrorShow {
    const br = this.bridge;
    const known = (n: string): boolean => br.portByName(n) !== null;
    if (spec.ports !== 'all') {
      for (const n of spec.ports) if (!known(n)) throw new ControlError('no_such_port', `no such port on ${br.name}: ${n}`, { bridge: br.name, port: n });
    }
    if (spec.output !== null) {
      if (!known(spec.output)) throw new ControlError('no_such_port', `no such port on ${br.name}: ${spec.output}`, { bridge: br.name, port: spec.output });
      if (spec.output === this.uplinkName()) {
        throw new ControlError('invalid_params', `output: ${spec.output} is the uplink; use output_vlan for RSPAN on the uplink`, { param: 'output' });
      }
    }
    if (spec.outputVlan !== null && this.uplinkName() === null) {
      throw new ControlError('invalid_params', `output_vlan: bridge ${br.name} has no uplink to carry the RSPAN VLAN`, { param: 'output_vlan' });
    }
    if (br.mirrors.some((m) => m.spec.name === spec.name)) {
      throw new ControlError('invalid_params', `bridge ${br.name} already has a mirror named ${spec.name}`, { bridge: br.name, mirror: spec.name });
    }
    const specs = [...br.mirrors.map((m) => m.spec), spec];
    const problem = mirrorSetProblem(specs);
    if (problem !== null) throw new ControlError('invalid_params', problem);
    const m = new Mirror(spec);
    br.setMirrors([...br.mirrors, m]);
    return m.describe();
  }

  del(name: unknown): void {
    const br = this.bridge;
    if (typeof name !== 'string') throw new ControlError('invalid_params', 'name: must be a string');
    if (!br.mirrors.some((m) => m.spec.name === name)) {
      throw new ControlError('not_found', `no mirror named ${name} on ${br.name}`, { bridge: br.name, mirror: name });
    }
    br.setMirrors(br.mirrors.filter((m) => m.spec.name !== name));
  }
}

const mirrorTarget = (bridge: string, name: string): string => `bridge:${bridge}/mirrors/${name}`;

registerRecordedMethod('mirror.add', (p, _r, j) => {
  const bridge = String(p.bridge);
  const name = String(p.name);
  const key = `mirror:${bridge}/${name}`;
  const prev = j.get(key);
  // a config mirror deleted at runtime, now added again: the deletion stays first
  if (prev !== undefined && prev.method === 'mirror.del') {
    j.remove(key);
    j.put({ ...prev, key: `mirror-del:${bridge}/${name}` });
  }
  const params: Record<string, unknown> = { bridge, name };
  for (const k of ['select_ports', 'direction', 'select_vlans', 'output', 'output_vlan']) if (p[k] !== undefined && p[k] !== null) params[k] = p[k];
  j.put({ method: 'mirror.add', params, key, target: mirrorTarget(bridge, name) });
});

registerRecordedMethod('mirror.del', (p, _r, j) => {
  const bridge = String(p.bridge);
  const name = String(p.name);
  const key = `mirror:${bridge}/${name}`;
  const prev = j.get(key);
  if (prev !== undefined && prev.method === 'mirror.add') {
    // added at runtime: it just leaves the journal (and a deletion of the config's mirror of that name stays)
    j.remove(key);
    return;
  }
  j.put({ method: 'mirror.del', params: { bridge, name }, key, target: mirrorTarget(bridge, name) });
});
