// Port mirroring (SPAN / RSPAN): copies of selected frames to an output port or into a VLAN.
//
// Model (Open vSwitch's Mirror table):
//   A mirror selects frames by the port they enter (`direction: in`), leave (`out`) or both, and
//   optionally by VLAN (the bridge-internal VID of the frame). Every selected frame is copied once per
//   mirror, as it looked on the selected port's wire (the tags that port received or sent), even when
//   it is selected both where it enters and where it leaves: the first selection wins (the engine
//   numbers frames, a mirror remembers the last number it copied).
//   `output: PORT`   the output port receives the copies and nothing else (no unicast, no floods);
//                    frames it sends are dropped (`mirror_output`) and nothing is learned from them.
//   `output_vlan: N` the copies leave on the uplink tagged with VLAN N (RSPAN): an untagged wire frame
//                    gets a tag pushed, a tagged one has its VID rewritten (PCP and DEI kept).
//   Config: `mirrors: [ { name, select: { ports: [..] | all, direction, vlans: [..] }, output | output_vlan } ]`.
//
// Precomputed (Snabb style): applyMirrors() gives each port the list of mirrors selecting its rx and
// its tx (null when none), so a frame that matches no mirror pays one null check per port it touches.
// A mirror's VLAN filter is a 4096-byte table. Copies are tx entries pointing into the rx slab (no copy
// of the bytes); the engine queues them (bridge.ts, step "mirror").
//
// Notes on performance: no allocation per frame; mirrors are rebuilt only when mirrors or ports change.

import type { BridgePort } from './port.js';
import { parseTrunkList, VID_MAX } from './vlan.js';

export type MirrorDirection = 'in' | 'out' | 'both';

export interface MirrorSpec {
  name: string;
  /** port names, or 'all' (every port but mirror outputs) */
  ports: string[] | 'all';
  direction: MirrorDirection;
  /** internal VIDs selected, null = every VLAN */
  vlans: number[] | null;
  /** output port name (SPAN), or null with outputVlan set (RSPAN) */
  output: string | null;
  outputVlan: number | null;
}

/** JSON of `mirror show` (one mirror). */
export interface MirrorShow {
  name: string;
  select: { ports: string[] | 'all'; direction: MirrorDirection; vlans: number[] | 'all' };
  output: string | null;
  output_vlan: number | null;
  /** the output port (or the uplink for output_vlan) is present and the mirror copies frames */
  active: boolean;
  /** copies queued */
  mirrored: number;
}

export const MIRROR_NAME_RE = /^[A-Za-z0-9_.:-]{1,32}$/;
/** Mirrors per bridge (each costs a 4 KiB VLAN table and a check per selected port). */
export const MAX_MIRRORS = 32;

export class Mirror {
  readonly spec: MirrorSpec;
  /** VLAN filter: vids[vid] !== 0 selects; null selects every VLAN */
  readonly vids: Uint8Array | null;
  /** where copies go: the output port, or the uplink for RSPAN; null while it is absent */
  out: BridgePort | null = null;
  /** RSPAN VID, 0 for a SPAN output port */
  readonly outputVid: number;
  /** number of the last frame copied (one copy per frame per mirror) */
  lastSeq = -1;
  /** copies queued */
  mirrored = 0;

  constructor(spec: MirrorSpec) {
    this.spec = spec;
    this.outputVid = spec.outputVlan ?? 0;
    if (spec.vlans === null) {
      this.vids = null;
    } else {
      this.vids = new Uint8Array(VID_MAX + 2);
      for (const v of spec.vlans) this.vids[v] = 1;
    }
  }

  describe(): MirrorShow {
    const s = this.spec;
    return {
      name: s.name,
      select: { ports: s.ports, direction: s.direction, vlans: s.vlans ?? 'all' },
      output: s.output,
      output_vlan: s.outputVlan,
      active: this.out !== null,
      mirrored: this.mirrored,
    };
  }
}

/**
 * Recomputes every port's mirror lists and output flag from the mirrors (between batches: a port
 * added or removed, a mirror added or deleted). The uplink (kind uplink or bond) carries RSPAN copies.
 */
export function applyMirrors(mirrors: readonly Mirror[], ports: readonly BridgePort[]): void {
  const outputs = new Set<string>();
  for (const m of mirrors) if (m.spec.output !== null) outputs.add(m.spec.output);
  const uplink = ports.find((p) => p.kind === 'uplink' || p.kind === 'bond') ?? null;
  for (const p of ports) {
    p.mirrorOutput = outputs.has(p.name);
    p.mirrorRx = null;
    p.mirrorTx = null;
  }
  for (const m of mirrors) {
    const s = m.spec;
    m.out = s.output !== null ? ports.find((p) => p.name === s.output) ?? null : uplink;
    for (const p of ports) {
      if (p.mirrorOutput) continue;
      if (s.ports !== 'all' && !s.ports.includes(p.name)) continue;
      if (s.direction !== 'out') (p.mirrorRx ??= []).push(m);
      if (s.direction !== 'in') (p.mirrorTx ??= []).push(m);
    }
  }
}

/** Parses a port list: `all`, an array of names, or a comma-separated string. */
export function parsePortList(v: unknown): { ports: string[] | 'all' } | { error: string } {
  if (v === 'all') return { ports: 'all' };
  let items: unknown[];
  if (typeof v === 'string') items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  else if (Array.isArray(v)) items = v;
  else return { error: `must be "all" or a list of port names, got ${JSON.stringify(v)}` };
  if (items.length === 0) return { error: 'is empty; select at least one port (or "all")' };
  const ports: string[] = [];
  for (const it of items) {
    if (typeof it !== 'string' || it.length === 0 || Buffer.byteLength(it) > 15) {
      return { error: `item ${JSON.stringify(it)} is not an interface name (1..15 bytes)` };
    }
    if (it === 'all') return { error: '"all" cannot be combined with port names' };
    if (!ports.includes(it)) ports.push(it);
  }
  return { ports };
}

/**
 * Builds a MirrorSpec from config keys / RPC params: name, select {ports, direction, vlans}, output,
 * output_vlan. Problems come back as [key path, message] pairs (relative to the mirror).
 */
export function mirrorSpecFrom(v: unknown): { spec: MirrorSpec } | { problems: [string, string][] } {
  const problems: [string, string][] = [];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problems: [['', 'must be a mapping']] };
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['name', 'select', 'output', 'output_vlan'].includes(k)) problems.push([k, 'unknown key (name, select, output, output_vlan)']);
  }
  const name = o.name;
  if (typeof name !== 'string' || !MIRROR_NAME_RE.test(name)) {
    problems.push(['name', `must be 1..32 characters of A-Z a-z 0-9 _ . : -, got ${JSON.stringify(name)}`]);
  }
  const sel = o.select;
  let ports: string[] | 'all' = 'all';
  let direction: MirrorDirection = 'both';
  let vlans: number[] | null = null;
  if (typeof sel !== 'object' || sel === null || Array.isArray(sel)) {
    problems.push(['select', 'must be a mapping with `ports` (and optionally `direction`, `vlans`)']);
  } else {
    const s = sel as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!['ports', 'direction', 'vlans'].includes(k)) problems.push([`select.${k}`, 'unknown key (ports, direction, vlans)']);
    }
    if (s.ports === undefined) problems.push(['select.ports', 'is required: a list of ports or "all"']);
    else {
      const p = parsePortList(s.ports);
      if ('error' in p) problems.push(['select.ports', p.error]);
      else ports = p.ports;
    }
    if (s.direction !== undefined) {
      if (s.direction !== 'in' && s.direction !== 'out' && s.direction !== 'both') {
        problems.push(['select.direction', `must be in, out or both, got ${JSON.stringify(s.direction)}`]);
      } else direction = s.direction;
    }
    if (s.vlans !== undefined && s.vlans !== 'all') {
      const t = parseTrunkList(s.vlans);
      if ('error' in t) problems.push(['select.vlans', t.error]);
      else if (t.vlans !== 'all') vlans = t.vlans;
    }
  }
  let output: string | null = null;
  let outputVlan: number | null = null;
  if (o.output !== undefined && o.output_vlan !== undefined) {
    problems.push(['output', 'give either `output` (a port) or `output_vlan` (RSPAN on the uplink), not both']);
  } else if (o.output !== undefined) {
    if (typeof o.output !== 'string' || o.output.length === 0 || Buffer.byteLength(o.output) > 15) {
      problems.push(['output', `must be an interface name (1..15 bytes), got ${JSON.stringify(o.output)}`]);
    } else {
      output = o.output;
      if (ports !== 'all' && ports.includes(output)) problems.push(['output', `${output} is also a selected port`]);
    }
  } else if (o.output_vlan !== undefined) {
    const n = o.output_vlan;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > VID_MAX) {
      problems.push(['output_vlan', `must be a VID 1..${VID_MAX}, got ${JSON.stringify(n)}`]);
    } else outputVlan = n;
  } else {
    problems.push(['output', 'is required: `output: PORT` or `output_vlan: N`']);
  }
  if (problems.length > 0) return { problems };
  return { spec: { name: name as string, ports, direction, vlans, output, outputVlan } };
}

/** Problems of a set of mirrors on one bridge: duplicate names, the cap, a port both output and selected. */
export function mirrorSetProblem(specs: readonly MirrorSpec[]): string | null {
  if (specs.length > MAX_MIRRORS) return `at most ${MAX_MIRRORS} mirrors per bridge`;
  const names = new Set<string>();
  const outputs = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) return `mirror name ${s.name} is used twice`;
    names.add(s.name);
    if (s.output !== null) outputs.add(s.output);
  }
  for (const s of specs) {
    if (s.ports === 'all') continue;
    for (const p of s.ports) if (outputs.has(p)) return `port ${p} is the output of a mirror and cannot be selected by mirror ${s.name}`;
  }
  return null;
}
