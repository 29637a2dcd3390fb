// 802.1Q VLAN membership of one port: the rules table the engine consults per frame.
//
// Modes (Open vSwitch's vlan_mode, the Linux bridge's vlan_filtering semantics):
//   default  no VLAN key: the port carries every VLAN. Tagged frames (TPID 0x8100, VID 1..4094) stay in
//            their VLAN and keep their tag; untagged and priority-tagged frames form their own untagged
//            network, internal vid 0, and leave exactly as they came. A bridge of default ports is
//            transparent except for VID 4095 (reserved), which is dropped (`vlan_reserved`).
//   access   `vlan: N`: untagged on the wire, VLAN N inside. A frame tagged with a non-zero VID is
//            dropped (`tagged_on_access`); a priority-tagged frame is accepted into N.
//   trunk    `trunk: [...] | all`, optional `native_vlan: N`: tagged frames of allowed VIDs; others are
//            dropped (`vlan_not_member`). Untagged and priority-tagged frames belong to the native VLAN,
//            or are dropped without one (`untagged_no_native`). The native VLAN leaves untagged.
//
// Precomputed at construction (Snabb style): `egress[vid]` says how a frame of internal vid leaves
// this port, so the per-frame path is one typed-array load:
//   0 NOT_MEMBER, 1 UNTAGGED (pop a tag if it has one), 2 TAGGED (push or rewrite the tag),
//   3 AS_IS (default port, untagged network: leave exactly as received).
// The table has 4096 entries, one per value a 12-bit VID can take: a VID read from the wire (masked
// with 0x0fff) always indexes inside it, and an entry nobody set reads 0, NOT_MEMBER. VID 4095 is
// reserved (802.1Q) and never a member; the engine drops it at ingress (`vlan_reserved`).
// 0x88a8 (802.1ad) is an ordinary ethertype on default ports and on the uplink (QinQ from the physical
// network passes); access ports and trunk native VLANs of other ports drop stacked tags (bridge.ts).

export const VID_MAX = 4094;
/** The reserved VID 4095: never a member, dropped at ingress. */
export const VID_RESERVED = 4095;
/** Entries in every per-VID table: all 4096 values of a 12-bit VID. */
export const VID_COUNT = 4096;

export const EGRESS_NOT_MEMBER = 0;
export const EGRESS_UNTAGGED = 1;
export const EGRESS_TAGGED = 2;
export const EGRESS_AS_IS = 3;

export const MODE_DEFAULT = 0;
export const MODE_ACCESS = 1;
export const MODE_TRUNK = 2;

export type VlanSpec =
  | { mode: 'default' }
  | { mode: 'access'; vlan: number }
  | { mode: 'trunk'; vlans: number[] | 'all'; native: number | null };

export class PortVlan {
  readonly spec: VlanSpec;
  /** MODE_DEFAULT, MODE_ACCESS or MODE_TRUNK */
  readonly mode: number;
  /** access VLAN or native VLAN; 0 when untagged frames belong to vid 0 (default) or are dropped (trunk without native) */
  readonly pvid: number;
  readonly egress = new Uint8Array(VID_COUNT);

  constructor(spec: VlanSpec) {
    this.spec = spec;
    const ids = spec.mode === 'access' ? [spec.vlan] : spec.mode === 'trunk' ? [...(spec.vlans === 'all' ? [] : spec.vlans), ...(spec.native !== null ? [spec.native] : [])] : [];
    for (const v of ids) if (vidProblem(v) !== null) throw new RangeError(`VLAN rules: ${String(v)} is not a VID 1..${VID_MAX}`);
    switch (spec.mode) {
      case 'default':
        this.mode = MODE_DEFAULT;
        this.pvid = 0;
        this.egress.fill(EGRESS_TAGGED, 1, VID_RESERVED);
        this.egress[0] = EGRESS_AS_IS;
        break;
      case 'access':
        this.mode = MODE_ACCESS;
        this.pvid = spec.vlan;
        this.egress[spec.vlan] = EGRESS_UNTAGGED;
        break;
      case 'trunk':
        this.mode = MODE_TRUNK;
        this.pvid = spec.native ?? 0;
        if (spec.vlans === 'all') this.egress.fill(EGRESS_TAGGED, 1, VID_RESERVED);
        else for (const v of spec.vlans) this.egress[v] = EGRESS_TAGGED;
        if (spec.native !== null) this.egress[spec.native] = EGRESS_UNTAGGED;
        break;
    }
  }

  /** False for anything that is not a VID 0..4094 this port carries (also for non-integers and 4095). */
  isMember(vid: number): boolean {
    if (!Number.isInteger(vid) || vid < 0 || vid > VID_MAX) return false;
    return this.egress[vid] !== EGRESS_NOT_MEMBER;
  }

  /** The VLAN an untagged frame on this port belongs to (for `fdb add` without --vlan). */
  get untaggedVid(): number {
    return this.pvid;
  }

  /** JSON of `vlan show`: {mode, vlans, native}. */
  describe(): { mode: 'access' | 'trunk'; vlans: number[] | 'all'; native: number | null } {
    const s = this.spec;
    if (s.mode === 'default') return { mode: 'trunk', vlans: 'all', native: 0 };
    if (s.mode === 'access') return { mode: 'access', vlans: [s.vlan], native: s.vlan };
    return { mode: 'trunk', vlans: s.vlans, native: s.native };
  }
}

export const DEFAULT_VLAN = new PortVlan({ mode: 'default' });

/**
 * Parses a trunk list: `all`, or items that are VIDs or "a-b" ranges (numbers or strings, also a
 * comma-separated string like "10,20,100-199"). Returns sorted unique VIDs, or an error message.
 */
export function parseTrunkList(input: unknown): { vlans: number[] | 'all' } | { error: string } {
  if (input === 'all') return { vlans: 'all' };
  let items: unknown[];
  if (typeof input === 'string') items = input.split(',').map((s) => s.trim());
  else if (Array.isArray(input)) items = input;
  else return { error: `must be "all" or a list of VIDs and ranges, got ${JSON.stringify(input)}` };
  if (items.length === 0) return { error: 'is empty; a trunk needs at least one VLAN (or "all")' };
  const seen = new Uint8Array(VID_MAX + 1);
  for (const item of items) {
    let lo: number;
    let hi: number;
    if (typeof item === 'number') {
      lo = hi = item;
    } else if (typeof item === 'string' && /^\d+$/.test(item)) {
      lo = hi = Number(item);
    } else if (typeof item === 'string' && /^\d+-\d+$/.test(item)) {
      [lo, hi] = item.split('-').map(Number);
    } else {
      return { error: `item ${JSON.stringify(item)} is not a VID or a range like "100-199"` };
    }
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > VID_MAX || lo > hi) {
      return { error: `item ${JSON.stringify(item)} is out of range: VIDs are 1..${VID_MAX}` };
    }
    for (let v = lo; v <= hi; v++) {
      if (seen[v] !== 0) return { error: `item ${JSON.stringify(item)} overlaps another item (VID ${v} twice)` };
      seen[v] = 1;
    }
  }
  const vlans: number[] = [];
  for (let v = 1; v <= VID_MAX; v++) if (seen[v] !== 0) vlans.push(v);
  return { vlans };
}

/** Checks a VID given as access or native VLAN. */
export function vidProblem(v: unknown): string | null {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > VID_MAX) return `must be a VID 1..${VID_MAX}, got ${JSON.stringify(v)}`;
  return null;
}

/**
 * Builds a VlanSpec from the config/RPC keys `vlan`, `trunk`, `native_vlan`; problems come back as
 * [key, message] pairs.
 */
export function vlanSpecFrom(vlan: unknown, trunk: unknown, native: unknown): { spec: VlanSpec } | { problems: [string, string][] } {
  const problems: [string, string][] = [];
  if (vlan !== undefined && trunk !== undefined) {
    problems.push(['vlan', 'a port is either access (`vlan`) or trunk (`trunk`), not both']);
    return { problems };
  }
  if (vlan !== undefined) {
    const p = vidProblem(vlan);
    if (p !== null) problems.push(['vlan', p]);
    if (native !== undefined) problems.push(['native_vlan', 'applies only to trunk ports']);
    return problems.length > 0 ? { problems } : { spec: { mode: 'access', vlan: vlan as number } };
  }
  if (trunk !== undefined) {
    const t = parseTrunkList(trunk);
    if ('error' in t) problems.push(['trunk', t.error]);
    let nat: number | null = null;
    if (native !== undefined && native !== null) {
      const p = vidProblem(native);
      if (p !== null) problems.push(['native_vlan', p]);
      else if ('vlans' in t && t.vlans !== 'all' && !t.vlans.includes(native as number)) {
        problems.push(['native_vlan', `VLAN ${String(native)} is not in the trunk`]);
      } else nat = native as number;
    }
    return problems.length > 0 || !('vlans' in t) ? { problems } : { spec: { mode: 'trunk', vlans: t.vlans, native: nat } };
  }
  if (native !== undefined) {
    problems.push(['native_vlan', 'applies only to trunk ports (set `trunk` too)']);
    return { problems };
  }
  return { spec: { mode: 'default' } };
}
