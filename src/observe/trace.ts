// `tapbridge trace`: what the bridge would do with one frame, step by step (Open vSwitch ofproto/trace).
//
// Model: the trace runs the engine's own steps (bridge.ts admit(), selectEgress(), txOp(), fits(),
// payloadOf() and the same shouldDeliver predicate) on a made-up frame or the caller's frame bytes,
// between batches, and reads the FDB without touching it (Fdb.peekHL). Nothing is sent, learned or
// counted: the rules exist once, in the engine; this file only reports their results:
//   ingress  the port, its state, every ingress check (or the drop reason)
//   vlan     the VLAN chosen and why (access pvid, trunk tag, native VLAN, default port)
//   learn    what would be learned, refreshed or moved (static entries never move)
//   lookup   an FDB hit with its age, a miss (flood), or broadcast/multicast (flood)
//   egress   each egress port with its tag operation, or the drop reason
//   mirror   the mirrors that would copy the frame, and where to
// The engine learns before it looks up; the trace reads the FDB as it was, except that a frame sent to
// its own source MAC finds the entry learning would have made (the one way learning changes the lookup,
// short of an FDB so full that learning this source evicts the destination's entry).
// The frame is at most MAX_TRACE_FRAME bytes; a frame with a vnet header is never accepted (the CLI
// sends what pcap-parser gives it: an Ethernet frame).

import { Bridge, dropCodeName, DROP_NONE, DROP_OVERSIZE, FWD_MDB, FWD_UNICAST, FWD_UNKNOWN } from '../bridge/bridge.js';
import type { Mirror } from '../bridge/mirror.js';
import type { BridgePort } from '../bridge/port.js';
import { MODE_ACCESS, MODE_TRUNK } from '../bridge/vlan.js';
import { ETH_P_8021Q, VLAN_VID_MASK } from '../frame/ethernet.js';
import { formatMac, parseMac } from '../frame/mac.js';
import { TX_OP_NONE, TX_OP_POP_TAG, TX_OP_PUSH_TAG, TX_OP_SET_TAG, VNET_HDR_LEN } from '../io/native-types.js';

/** Largest frame a trace accepts (a GSO super-frame's size). */
export const MAX_TRACE_FRAME = 65_550;

export type TagOp = 'none' | 'push' | 'pop' | 'set';

export interface TraceEgress {
  port: string;
  /** the tag operation on this port's wire */
  tag_op: TagOp;
  /** the VID of the tag on that wire, null when the frame leaves untagged */
  vlan_tag: number | null;
  /** drop reason on this port (oversize), else null */
  drop: string | null;
}

export interface TraceResult {
  bridge: string;
  in_port: string;
  frame: { src: string; dst: string; ethertype: string; vlan_tag: number | null; length: number };
  /** forward (one port), flood (several or none), drop */
  verdict: 'forward' | 'flood' | 'drop';
  /** the drop reason (a stats `drops` key) when verdict is drop */
  drop_reason: string | null;
  /** the bridge VLAN of the frame, null when dropped before it was chosen */
  vlan: number | null;
  learn: { action: 'learn' | 'refresh' | 'move' | 'static' | 'disabled' | 'none'; port: string | null; vlan: number | null } | null;
  lookup: { result: 'hit' | 'miss' | 'broadcast' | 'multicast'; port: string | null; age_s: number | null; static: boolean } | null;
  egress: TraceEgress[];
  mirrors: { name: string; output: string; output_vlan: number | null }[];
  /** ofproto/trace-like lines, one per step */
  steps: string[];
}

/** A made-up frame: dst, src, optional 802.1Q tag, ethertype, zero payload to 60 bytes (64 tagged). */
export function makeFrame(src: number, dst: number, vlan: number | null, ethertype: number): Uint8Array {
  const tagged = vlan !== null;
  const f = new Uint8Array(tagged ? 64 : 60);
  for (let i = 0; i < 6; i++) {
    f[i] = Math.floor(dst / 2 ** (8 * (5 - i))) & 0xff;
    f[6 + i] = Math.floor(src / 2 ** (8 * (5 - i))) & 0xff;
  }
  let p = 12;
  if (tagged) {
    f[p++] = 0x81;
    f[p++] = 0x00;
    f[p++] = (vlan >> 8) & 0x0f;
    f[p++] = vlan & 0xff;
  }
  f[p++] = (ethertype >> 8) & 0xff;
  f[p] = ethertype & 0xff;
  return f;
}

function tagOpName(op: number): TagOp {
  return op === TX_OP_PUSH_TAG ? 'push' : op === TX_OP_POP_TAG ? 'pop' : op === TX_OP_SET_TAG ? 'set' : 'none';
}

function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

/** The VID on the wire after a tag operation writing `arg` (a TCI) on a frame whose own tag (C-tag) is `tci` (-1: none). */
function wireVid(op: number, arg: number, tci: number): number | null {
  if (op === TX_OP_PUSH_TAG || op === TX_OP_SET_TAG) return arg & VLAN_VID_MASK;
  if (op === TX_OP_POP_TAG) return null;
  return tci >= 0 ? tci & VLAN_VID_MASK : null;
}

function describePort(p: BridgePort): string {
  const v = p.vlan.describe();
  const vlan = p.vlan.mode === MODE_ACCESS ? `access vlan ${p.vlan.pvid}` : p.vlan.mode === MODE_TRUNK
    ? `trunk ${v.vlans === 'all' ? 'all' : v.vlans.join(',')}${v.native !== null ? ` native ${v.native}` : ''}`
    : 'all VLANs (default)';
  return `${p.name} (${p.kind}, ${p.state}, ${vlan})`;
}

/**
 * Traces `frame` entering `ingress` of `bridge` at nowMs. Runs between batches (the control plane and
 * forwarding share one event loop): it uses the engine's scratch state, never its counters.
 */
export function traceFrame(bridge: Bridge, ingress: BridgePort, frame: Uint8Array, nowMs: number): TraceResult {
  if (frame.length > MAX_TRACE_FRAME) throw new RangeError(`frame is ${frame.length} bytes; at most ${MAX_TRACE_FRAME}`);
  // the engine reads the vnet header before the frame (gso_type 0: not a GSO frame)
  const slab = new Uint8Array(VNET_HDR_LEN + frame.length);
  slab.set(frame, VNET_HDR_LEN);
  const off = VNET_HDR_LEN;
  const len = frame.length;
  const hdr = bridge.hdr;
  const steps: string[] = [];
  const name = (id: number): string => bridge.ports[id]?.name ?? `#${id}`;
  const res: TraceResult = {
    bridge: bridge.name,
    in_port: ingress.name,
    frame: { src: '', dst: '', ethertype: '', vlan_tag: null, length: len },
    verdict: 'drop',
    drop_reason: null,
    vlan: null,
    learn: null,
    lookup: null,
    egress: [],
    mirrors: [],
    steps,
  };
  steps.push(`bridge("${bridge.name}")`);
  steps.push(`ingress: in_port ${describePort(ingress)}, ${len} bytes`);
  if (ingress.state !== 'up') {
    res.drop_reason = 'port_down';
    steps.push(`  drop: the port is ${ingress.state}; the bridge reads nothing from it`);
    return res;
  }
  const verdict = bridge.admit(ingress, slab, off, len);
  if (len >= 14) {
    const mac = (o: number): string => formatMac(frame.subarray(o, o + 6).reduce((a, b) => a * 256 + b, 0));
    res.frame.dst = mac(0);
    res.frame.src = mac(6);
    const t = (frame[12] << 8) | frame[13];
    const tagged = t === ETH_P_8021Q && len >= 18;
    res.frame.vlan_tag = tagged ? ((frame[14] << 8) | frame[15]) & VLAN_VID_MASK : null;
    res.frame.ethertype = hex16(tagged ? (frame[16] << 8) | frame[17] : t);
    steps.push(`  frame: ${res.frame.src} > ${res.frame.dst}${tagged ? `, 802.1Q vid ${res.frame.vlan_tag}` : ''}, ethertype ${res.frame.ethertype}`);
  }
  if (verdict !== DROP_NONE) {
    res.drop_reason = dropCodeName(verdict);
    steps.push(`  drop: ${res.drop_reason} (ingress check)`);
    return res;
  }
  steps.push('  ingress checks: passed (runt, port security, source MAC, link-local, reserved VID, VLAN membership, stacked tag)');
  const vid = bridge.vid;
  const tci = bridge.tci;
  res.vlan = vid;
  const tagVid = tci > 0 ? tci & VLAN_VID_MASK : 0;
  const why = ingress.vlan.mode === MODE_ACCESS ? `access port: its VLAN (pvid)${tci >= 0 ? ', priority tag accepted' : ''}`
    : ingress.vlan.mode === MODE_TRUNK ? (tagVid !== 0 ? `trunk port: tagged VID ${tagVid} is allowed` : 'trunk port: untagged, the native VLAN')
      : tagVid !== 0 ? `default port: the tag's VID ${tagVid}` : 'default port: untagged network (vid 0)';
  steps.push(`vlan: ${vid} (${why})`);
  // learning: what learnHL would do, read from the FDB without touching it
  if (!ingress.learning) {
    res.learn = { action: 'disabled', port: null, vlan: vid };
    steps.push('learn: learning is off on this port');
  } else {
    const e = bridge.fdb.peekHL(vid, hdr.srcHi, hdr.srcLo, nowMs);
    if (e === null) {
      res.learn = { action: 'learn', port: ingress.name, vlan: vid };
      steps.push(`learn: ${res.frame.src} vlan ${vid} would be learned on ${ingress.name}`);
    } else if (e.isStatic) {
      res.learn = { action: 'static', port: name(e.port), vlan: vid };
      steps.push(`learn: ${res.frame.src} vlan ${vid} is a static entry on ${name(e.port)}: unchanged`);
    } else if (e.port === ingress.id) {
      res.learn = { action: 'refresh', port: ingress.name, vlan: vid };
      steps.push(`learn: ${res.frame.src} vlan ${vid} already on ${ingress.name} (age ${(e.ageMs / 1000).toFixed(1)} s): refreshed`);
    } else {
      res.learn = { action: 'move', port: name(e.port), vlan: vid };
      steps.push(`learn: ${res.frame.src} vlan ${vid} would move from ${name(e.port)} to ${ingress.name}`);
    }
  }
  const mirrored: Mirror[] = [];
  const addMirrors = (list: Mirror[] | null): void => {
    if (list === null) return;
    for (const m of list) {
      if (mirrored.includes(m) || (m.vids !== null && m.vids[vid] === 0) || m.out === null || !m.out.forwarding) continue;
      mirrored.push(m);
    }
  };
  addMirrors(ingress.mirrorRx);
  const reportMirrors = (): void => {
    for (const m of mirrored) {
      res.mirrors.push({ name: m.spec.name, output: m.out!.name, output_vlan: m.spec.outputVlan });
      steps.push(`mirror: ${m.spec.name}: copy to ${m.out!.name}${m.spec.outputVlan !== null ? ` tagged ${m.spec.outputVlan} (RSPAN)` : ''}`);
    }
  };
  const payload = bridge.payloadOf(slab, off, len);
  // the engine learns before it looks up: a frame to its own source finds the entry just learned
  const selfAddressed = !hdr.dstGroup && hdr.dstHi === hdr.srcHi && hdr.dstLo === hdr.srcLo &&
    res.learn !== null && res.learn.action !== 'disabled' && res.learn.action !== 'static';
  if (selfAddressed) {
    res.lookup = { result: 'hit', port: ingress.name, age_s: 0, static: false };
    res.drop_reason = 'same_port';
    steps.push(`lookup: ${res.frame.dst} vlan ${vid}: hit on ${ingress.name} (just learned: the frame is addressed to its own source)`);
    steps.push(`  drop: the destination is on the ingress port ${ingress.name}`);
    reportMirrors();
    steps.push('result: drop (same_port)');
    return res;
  }
  const n = bridge.selectEgress(ingress, vid, slab, off, len);
  const kind = bridge.fwdKind;
  if (kind === FWD_UNICAST) {
    const e = bridge.fdb.peekHL(vid, hdr.dstHi, hdr.dstLo, nowMs);
    res.lookup = { result: 'hit', port: name(bridge.fwdPort), age_s: e === null || e.isStatic ? null : Math.round(e.ageMs / 100) / 10, static: e?.isStatic ?? false };
    steps.push(`lookup: ${res.frame.dst} vlan ${vid}: hit on ${name(bridge.fwdPort)}${e?.isStatic === true ? ' (static)' : e !== null ? `, age ${(e.ageMs / 1000).toFixed(1)} s` : ''}`);
  } else if (kind === FWD_UNKNOWN) {
    res.lookup = { result: 'miss', port: null, age_s: null, static: false };
    steps.push(`lookup: ${res.frame.dst} vlan ${vid}: miss, flood to ports with flood on`);
  } else if (kind === FWD_MDB) {
    res.lookup = { result: 'multicast', port: null, age_s: null, static: false };
    steps.push(`lookup: multicast vlan ${vid}: IGMP/MLD snooping: the group's members and the router ports (or router ports only)`);
  } else {
    res.lookup = { result: hdr.dstIsBroadcast ? 'broadcast' : 'multicast', port: null, age_s: null, static: false };
    steps.push(`lookup: ${hdr.dstIsBroadcast ? 'broadcast' : 'multicast'}: flood`);
  }
  // copy out[] before anything else uses the engine's scratch
  const egress = bridge.out.slice(0, n);
  let delivered = 0;
  for (const p of egress) {
    const op = bridge.txOp(p, vid, tci);
    const arg = bridge.txTci;
    const fits = Bridge.fits(p, payload);
    const e: TraceEgress = { port: p.name, tag_op: tagOpName(op), vlan_tag: wireVid(op, arg, tci), drop: fits ? null : dropCodeName(DROP_OVERSIZE) };
    res.egress.push(e);
    if (fits) {
      delivered++;
      addMirrors(p.mirrorTx);
    }
    const tag = op === TX_OP_NONE ? (e.vlan_tag === null ? 'untagged' : `tagged ${e.vlan_tag} as received`)
      : op === TX_OP_POP_TAG ? 'pop tag: untagged' : op === TX_OP_PUSH_TAG ? `push tag ${e.vlan_tag}` : `rewrite tag to ${e.vlan_tag}`;
    steps.push(`egress: ${p.name}: ${fits ? tag : `drop: oversize (payload ${payload} > mtu ${p.mtu})`}`);
  }
  if (kind === FWD_UNICAST && n === 0) {
    const dst = bridge.ports[bridge.fwdPort];
    res.drop_reason = dst === ingress ? 'same_port' : 'not_deliverable';
    steps.push(dst === ingress ? `  drop: the destination is on the ingress port ${ingress.name}`
      : `  drop: ${name(bridge.fwdPort)} does not take this frame (down, not in VLAN ${vid}, isolated, or a mirror output)`);
  } else if (delivered === 0) {
    res.drop_reason = res.egress.length > 0 ? dropCodeName(DROP_OVERSIZE) : 'no_egress';
    if (res.egress.length === 0) steps.push(`  drop: no port takes this frame in VLAN ${vid}`);
  } else {
    res.verdict = kind === FWD_UNICAST ? 'forward' : 'flood';
  }
  reportMirrors();
  steps.push(res.verdict === 'drop' ? `result: drop (${res.drop_reason})` : `result: ${res.verdict} to ${res.egress.filter((x) => x.drop === null).map((x) => x.port).join(', ')}`);
  return res;
}

/** Parses the `trace` request's frame: `frame` (hex) or src/dst/vlan/ethertype. Throws a message naming the param. */
export function traceFrameFrom(p: Record<string, unknown>): Uint8Array {
  if (p.frame !== undefined) {
    if (typeof p.frame !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(p.frame)) throw new TypeError('frame: must be the frame bytes as a hex string');
    if (p.frame.length / 2 > MAX_TRACE_FRAME) throw new TypeError(`frame: at most ${MAX_TRACE_FRAME} bytes`);
    if (p.frame.length < 2) throw new TypeError('frame: is empty');
    return Uint8Array.from(Buffer.from(p.frame, 'hex'));
  }
  const src = typeof p.src === 'string' ? parseMac(p.src) : null;
  if (src === null) throw new TypeError(`src: must be a MAC address like 52:54:00:12:34:56, got ${JSON.stringify(p.src)}`);
  const dst = typeof p.dst === 'string' ? parseMac(p.dst) : null;
  if (dst === null) throw new TypeError(`dst: must be a MAC address like 52:54:00:12:34:56, got ${JSON.stringify(p.dst)}`);
  let vlan: number | null = null;
  if (p.vlan !== undefined && p.vlan !== null) {
    if (typeof p.vlan !== 'number' || !Number.isInteger(p.vlan) || p.vlan < 0 || p.vlan > 4095) throw new TypeError(`vlan: must be a VID 0..4095, got ${JSON.stringify(p.vlan)}`);
    vlan = p.vlan;
  }
  let ethertype = 0x0800;
  if (p.ethertype !== undefined) {
    const t = typeof p.ethertype === 'string' ? Number(p.ethertype) : p.ethertype;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffff) throw new TypeError(`ethertype: must be 0x0000..0xffff, got ${JSON.stringify(p.ethertype)}`);
    ethertype = t;
  }
  return makeFrame(src, dst, vlan, ethertype);
}
