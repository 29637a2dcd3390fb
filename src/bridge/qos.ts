// Per-port QoS: rate limits (token buckets) and storm control, on what a guest sends and what it is sent.
//
// Model (XenServer's VIF `ratelimit`, Open vSwitch's ingress_policing_rate/burst, a switch's storm control):
//   rate_limit: { kbps, burst_kb }         what the port sends into the bridge: a bit bucket
//   egress_rate_limit: { kbps, burst_kb }  what the bridge sends to the port: a bit bucket, checked before the write
//   storm_control: { broadcast_pps, multicast_pps, unknown_unicast_pps, action: drop | shutdown, shutdown_s }
//                                          what the port sends, per class: a packet bucket each
//   `kbps` is kilobits per second (1000 bit/s); `burst_kb` the bucket size in kilobits (default: 0.1 s at the rate,
//   at least two 9018-byte jumbo frames). A storm bucket holds max(pps / 10, 8) packets.
//   Classes: broadcast ff:ff:ff:ff:ff:ff; multicast every other group address (IGMP/MLD and the rest; link-local
//   01:80:c2:00:00:0X never gets here, the engine drops it earlier); unknown unicast a unicast frame the engine
//   floods (its destination is not in the FDB).
//
// Buckets (Float64Array, BUCKET_WORDS per bucket; exact integer arithmetic in doubles, < 2^53):
//   bit bucket:    tokens in millibits, clock in microseconds, so that a rate of K kbit/s adds exactly K
//                  millibits per microsecond (1 kbit/s = 1000 bit/s = 1 bit/ms = 1 millibit/us)
//   packet bucket: tokens in micropackets, the same clock: P packets/s adds exactly P micropackets per us
//   refill: tokens + elapsed us * rate, capped at the size. Exact: with size <= 10^15 (MAX_BURST_KB) < 2^53, a
//   product below the room left (size - tokens) is below 2^53 and so exact, and a larger one (however rounded, even
//   above 2^53) compares >= the room, which is exactly representable: the bucket is then full.
//   take: a frame passes while tokens > 0 and costs its whole price (tokens may go below zero by one frame: a
//   64 KiB GSO frame passes a bucket smaller than itself, and the debt is paid before the next one). Over any
//   interval the bucket passes at most size + rate * interval + one frame.
// A frame's price is what it will be on the wire (without preamble and FCS): a GSO super-frame costs its
// segments, each with its own copy of the headers (priceBytes()).
//
// The engine (bridge.ts) calls this module at four points, each one null check per frame for a port without QoS:
//   qosAdmit()     first of all on ingress: rate_limit (and a shut-down port) -> `rate_limit` / `storm_shutdown`
//   qosStorm()     at the flood step, on ingress: the class's bucket -> `storm_broadcast` ...; action shutdown
//   qosEgress()    before a frame is queued on an egress port -> `egress_rate_limit`
//   qosHoldUntil() after an rx batch: when the port's ingress bucket is empty (or it is shut down), the time
//                  (us) until it is half full again: the owner stops reading the port until then (QosHook.hold), so
//                  that what the port sends meanwhile waits in the kernel's queue, or is dropped there, for free.
//                  Half full, not just above zero: each hold ends with one batch read, whose tail past the bucket is
//                  read only to be dropped; resuming at half the bucket bounds those reads to (rate / half the bucket)
//                  batches per second, whatever the guest offers (at the default burst: 20 per second), the way
//                  netback's credit refills once per credit period.
//
// Notes on performance: no allocation per frame; the clock is read once per rx batch, and only by a bridge
// that has a port with QoS (Bridge.qosPorts > 0).

import { VNET_HDR_LEN } from '../io/native-types.js';

export interface RateSpec {
  /** kilobits per second (1000 bit/s), 1 .. MAX_KBPS */
  kbps: number;
  /** bucket size in kilobits, 1 .. MAX_BURST_KB */
  burstKb: number;
}

export interface StormSpec {
  /** packets per second; 0 = no threshold for the class */
  broadcastPps: number;
  multicastPps: number;
  unknownUnicastPps: number;
  action: 'drop' | 'shutdown';
  /** seconds a `shutdown` port stays down */
  shutdownS: number;
}

export interface QosSpec {
  rateLimit: RateSpec | null;
  egressRateLimit: RateSpec | null;
  storm: StormSpec | null;
}

export const NO_QOS: QosSpec = { rateLimit: null, egressRateLimit: null, storm: null };

/** 100 Gbit/s */
export const MAX_KBPS = 100_000_000;
/** 10^12 bits: 10^15 millibits, below 2^53 with a refill of MAX_KBPS on top */
export const MAX_BURST_KB = 1_000_000_000;
export const MAX_PPS = 100_000_000;
export const DEFAULT_SHUTDOWN_S = 30;
export const MAX_SHUTDOWN_S = 86_400;
/** Two 9018-byte jumbo frames, in kilobits (rounded up): the smallest default burst. */
export const MIN_DEFAULT_BURST_KB = Math.ceil((2 * 9018 * 8) / 1000);

/** The default burst of a rate: a tenth of a second at the rate, at least two jumbo frames. */
export function defaultBurstKb(kbps: number): number {
  return Math.max(Math.ceil(kbps / 10), MIN_DEFAULT_BURST_KB);
}

/** Drop reasons (index into BridgePort.qosDrops); names in QOS_DROP_NAMES. */
export const QOS_PASS = 0;
export const QOS_RATE_LIMIT = 1;
export const QOS_EGRESS_RATE_LIMIT = 2;
export const QOS_STORM_BROADCAST = 3;
export const QOS_STORM_MULTICAST = 4;
export const QOS_STORM_UNKNOWN_UNICAST = 5;
/**
 * frames read from a port while storm control had shut it down: the tail of the batch that tripped it, and what
 * the guest sent while the port was down (read and dropped when it comes back)
 */
export const QOS_STORM_SHUTDOWN = 6;
export const QOS_REASON_COUNT = 7;
export const QOS_DROP_NAMES = [
  'rate_limit', 'egress_rate_limit', 'storm_broadcast', 'storm_multicast', 'storm_unknown_unicast', 'storm_shutdown',
] as const;

/** Storm classes for qosStorm(). */
export const STORM_BROADCAST = 0;
export const STORM_MULTICAST = 1;
export const STORM_UNKNOWN_UNICAST = 2;

// ---- bucket arithmetic -------------------------------------------------------------------------------------

/** Words per bucket: tokens, last refill (us), rate (tokens/us), size (tokens). */
export const BUCKET_WORDS = 4;
const B_TOKENS = 0;
const B_LAST_US = 1;
const B_RATE = 2;
const B_SIZE = 3;
/** Millibits per byte. */
export const MILLIBITS_PER_BYTE = 8000;
/** Micropackets per packet. */
export const MICROPACKETS = 1_000_000;

/** Sets bucket `i` of `b` to `rate` tokens/us and `size` tokens, full, last refilled at nowUs. */
export function bucketInit(b: Float64Array, i: number, rate: number, size: number, nowUs: number): void {
  const o = i * BUCKET_WORDS;
  b[o + B_TOKENS] = size;
  b[o + B_LAST_US] = nowUs;
  b[o + B_RATE] = rate;
  b[o + B_SIZE] = size;
}

/** Fills the bucket, as refilled at nowUs. */
export function bucketFill(b: Float64Array, i: number, nowUs: number): void {
  const o = i * BUCKET_WORDS;
  b[o + B_TOKENS] = b[o + B_SIZE];
  b[o + B_LAST_US] = nowUs;
}

/** Adds what the bucket earned since its last refill (nowUs: integer microseconds). */
export function bucketRefill(b: Float64Array, i: number, nowUs: number): void {
  const o = i * BUCKET_WORDS;
  const elapsed = nowUs - b[o + B_LAST_US];
  if (elapsed <= 0) return;
  b[o + B_LAST_US] = nowUs;
  const tokens = b[o + B_TOKENS];
  const size = b[o + B_SIZE];
  const earned = elapsed * b[o + B_RATE];
  b[o + B_TOKENS] = earned >= size - tokens ? size : tokens + earned;
}

/** Takes `cost` tokens when the bucket has any (it may go below zero by less than `cost`); false when empty. */
export function bucketTake(b: Float64Array, i: number, cost: number): boolean {
  const o = i * BUCKET_WORDS;
  if (b[o + B_TOKENS] <= 0) return false;
  b[o + B_TOKENS] -= cost;
  return true;
}

export function bucketTokens(b: Float64Array, i: number): number {
  return b[i * BUCKET_WORDS + B_TOKENS];
}

/** Microseconds until the bucket holds at least `target` tokens (>= 1); 0 when it has some now. */
export function bucketWaitUs(b: Float64Array, i: number, target = 1): number {
  const o = i * BUCKET_WORDS;
  const t = b[o + B_TOKENS];
  if (t > 0) return 0;
  return Math.ceil((target - t) / b[o + B_RATE]);
}

// ---- frame price -------------------------------------------------------------------------------------------

const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_GSO_ECN = 0x80;
const VIRTIO_NET_HDR_GSO_UDP = 3;
const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
/** Ethernet + IPv4 + TCP without options: the headers assumed when the vnet header does not say. */
const FALLBACK_HEADER_BYTES = 54;

/**
 * Bytes the frame at slab[off .. off+len) will be on the wire (the vnet header precedes it at off - VNET_HDR_LEN):
 * `len` for an ordinary frame; for a GSO super-frame, its segments' bytes: len + (segments - 1) * headers, where the
 * headers end at csum_start + the TCP header (data offset) or + 8 for UDP.
 */
export function priceBytes(slab: Uint8Array, off: number, len: number): number {
  const v = off - VNET_HDR_LEN;
  const gsoType = slab[v + 1] & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gsoType === 0) return len;
  const gsoSize = slab[v + 4] | (slab[v + 5] << 8);
  if (gsoSize === 0) return len;
  let headers = FALLBACK_HEADER_BYTES;
  const l4 = slab[v + 6] | (slab[v + 7] << 8);
  if ((slab[v] & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 && l4 >= 14 && l4 + 20 <= len) {
    headers = gsoType === VIRTIO_NET_HDR_GSO_UDP || gsoType === VIRTIO_NET_HDR_GSO_UDP_L4 ? l4 + 8 : l4 + ((slab[off + l4 + 12] >> 4) << 2);
  }
  if (headers >= len) return len;
  const payload = len - headers;
  const segments = Math.ceil(payload / gsoSize);
  return len + (segments - 1) * headers;
}

// ---- a port's QoS ------------------------------------------------------------------------------------------

const BK_INGRESS = 0;
const BK_EGRESS = 1;
/** storm buckets: BK_STORM + STORM_* */
const BK_STORM = 2;
const BUCKETS = 5;

/** What the engine calls back into its owner (the daemon implements it: src/daemon/qos.ts). */
export interface QosHook {
  /** Stop reading `port` until the engine's clock reaches untilUs (then call Bridge.qosWake). */
  hold(portId: number, untilUs: number): void;
  /** Storm control shut the port down (`kind`: the class that tripped it) until untilUs. */
  shutdown(portId: number, kind: number, untilUs: number): void;
}

/** JSON of `qos show` for one port. */
export interface QosShow {
  port: string;
  rate_limit: { kbps: number; burst_kb: number } | null;
  egress_rate_limit: { kbps: number; burst_kb: number } | null;
  storm_control: { broadcast_pps: number | null; multicast_pps: number | null; unknown_unicast_pps: number | null; action: 'drop' | 'shutdown'; shutdown_s: number } | null;
  /** storm control has the port shut down: seconds left */
  shutdown_remaining_s: number | null;
  /** the port is not read now (its ingress bucket is empty or it is shut down) */
  rx_held: boolean;
  counters: Record<(typeof QOS_DROP_NAMES)[number] | 'storm_shutdowns', number>;
}

/** The precomputed buckets of one port; rebuilt as a whole by `qos set` (its counters live on the port). */
export class PortQos {
  readonly spec: QosSpec;
  readonly buckets = new Float64Array(BUCKETS * BUCKET_WORDS);
  readonly ingressLimited: boolean;
  readonly egressLimited: boolean;
  /** per STORM_* class: 1 when it has a threshold */
  readonly stormClass = new Uint8Array(3);
  readonly stormShutdown: boolean;
  readonly shutdownUs: number;
  /** storm control shut the port down until this time (us); 0 when it is not */
  shutUntilUs = 0;
  /**
   * After a shutdown: what the guest sent while the port was down (queued in the kernel) is read and dropped
   * (`storm_shutdown`) until a read finds the queue empty (a batch shorter than the read budget).
   */
  draining = false;
  /** the owner holds the port's reads until this time (us); 0 when it reads */
  heldUntilUs = 0;
  /** a held port is read again when its ingress bucket holds this much (half its size, at least 1) */
  readonly resumeTokens: number;

  constructor(spec: QosSpec, nowUs: number) {
    this.spec = spec;
    const b = this.buckets;
    const r = spec.rateLimit;
    const e = spec.egressRateLimit;
    const s = spec.storm;
    this.ingressLimited = r !== null;
    this.egressLimited = e !== null;
    if (r !== null) bucketInit(b, BK_INGRESS, r.kbps, r.burstKb * 1_000_000, nowUs);
    this.resumeTokens = r === null ? 1 : Math.max(1, Math.floor((r.burstKb * 1_000_000) / 2));
    if (e !== null) bucketInit(b, BK_EGRESS, e.kbps, e.burstKb * 1_000_000, nowUs);
    const pps = s === null ? [0, 0, 0] : [s.broadcastPps, s.multicastPps, s.unknownUnicastPps];
    for (let k = 0; k < 3; k++) {
      if (pps[k] <= 0) continue;
      this.stormClass[k] = 1;
      bucketInit(b, BK_STORM + k, pps[k], Math.max(Math.ceil(pps[k] / 10), 8) * MICROPACKETS, nowUs);
    }
    this.stormShutdown = s !== null && s.action === 'shutdown';
    this.shutdownUs = s === null ? 0 : s.shutdownS * 1_000_000;
  }

  /** null when the spec asks for nothing (the port then costs one null check per frame). */
  static build(spec: QosSpec, nowUs: number): PortQos | null {
    return spec.rateLimit === null && spec.egressRateLimit === null && spec.storm === null ? null : new PortQos(spec, nowUs);
  }

  describe(name: string, drops: Float64Array, shutdowns: number, nowUs: number): QosShow {
    const s = this.spec.storm;
    const rate = (r: RateSpec | null): QosShow['rate_limit'] => (r === null ? null : { kbps: r.kbps, burst_kb: r.burstKb });
    return {
      port: name,
      rate_limit: rate(this.spec.rateLimit),
      egress_rate_limit: rate(this.spec.egressRateLimit),
      storm_control: s === null ? null : {
        broadcast_pps: s.broadcastPps || null, multicast_pps: s.multicastPps || null, unknown_unicast_pps: s.unknownUnicastPps || null,
        action: s.action, shutdown_s: s.shutdownS,
      },
      shutdown_remaining_s: this.shutUntilUs > nowUs ? Math.ceil((this.shutUntilUs - nowUs) / 1e6) : null,
      rx_held: this.heldUntilUs !== 0,
      counters: qosCounters(drops, shutdowns),
    };
  }
}

/** The `qos show` counters of a port (also for a port without QoS: what it counted before `qos clear`). */
export function qosCounters(drops: Float64Array, shutdowns: number): QosShow['counters'] {
  return {
    rate_limit: drops[QOS_RATE_LIMIT],
    egress_rate_limit: drops[QOS_EGRESS_RATE_LIMIT],
    storm_broadcast: drops[QOS_STORM_BROADCAST],
    storm_multicast: drops[QOS_STORM_MULTICAST],
    storm_unknown_unicast: drops[QOS_STORM_UNKNOWN_UNICAST],
    storm_shutdown: drops[QOS_STORM_SHUTDOWN],
    storm_shutdowns: shutdowns,
  };
}

/** `qos show` of a port without QoS. */
export function describeNoQos(name: string, drops: Float64Array, shutdowns: number): QosShow {
  return {
    port: name, rate_limit: null, egress_rate_limit: null, storm_control: null, shutdown_remaining_s: null, rx_held: false,
    counters: qosCounters(drops, shutdowns),
  };
}

// ---- the engine's steps --------------------------------------------------------------------------------------

/** Step "qos" on ingress, first of all: a shut-down port's frames, then the port's rate_limit. */
export function qosAdmit(q: PortQos, slab: Uint8Array, off: number, len: number): number {
  if (q.shutUntilUs !== 0 || q.draining) return QOS_STORM_SHUTDOWN;
  if (!q.ingressLimited) return QOS_PASS;
  return bucketTake(q.buckets, BK_INGRESS, priceBytes(slab, off, len) * MILLIBITS_PER_BYTE) ? QOS_PASS : QOS_RATE_LIMIT;
}

/**
 * Step "storm" at the flood step (STORM_* class of the frame): QOS_PASS, or the class's drop reason. With action
 * shutdown, a drop shuts the port down (shutUntilUs set; the engine tells its hook).
 */
export function qosStorm(q: PortQos, kind: number, nowUs: number): number {
  if (q.stormClass[kind] === 0) return QOS_PASS;
  const b = q.buckets;
  bucketRefill(b, BK_STORM + kind, nowUs);
  if (bucketTake(b, BK_STORM + kind, MICROPACKETS)) return QOS_PASS;
  if (q.stormShutdown && q.shutUntilUs === 0) q.shutUntilUs = nowUs + q.shutdownUs;
  return QOS_STORM_BROADCAST + kind;
}

/** Step "qos" on egress, before a frame is queued: the port's egress_rate_limit. */
export function qosEgress(q: PortQos, slab: Uint8Array, off: number, len: number, nowUs: number): number {
  if (!q.egressLimited) return QOS_PASS;
  bucketRefill(q.buckets, BK_EGRESS, nowUs);
  return bucketTake(q.buckets, BK_EGRESS, priceBytes(slab, off, len) * MILLIBITS_PER_BYTE) ? QOS_PASS : QOS_EGRESS_RATE_LIMIT;
}

/** Before a batch of the port: the ingress bucket earns what it earned since the last batch. */
export function qosBatchStart(q: PortQos, nowUs: number): void {
  if (q.ingressLimited) bucketRefill(q.buckets, BK_INGRESS, nowUs);
}

/**
 * After a batch of the port (or when a hold expires): the time (us) until which the port should not be read, or
 * 0 to read on. A port shut down by storm control that reached its time is up again (shutUntilUs cleared), first
 * draining what was queued meanwhile, with its storm buckets full.
 */
export function qosHoldUntil(q: PortQos, nowUs: number): number {
  if (q.shutUntilUs !== 0) {
    if (nowUs < q.shutUntilUs) return q.shutUntilUs;
    q.shutUntilUs = 0;
    q.draining = true;
    for (let k = 0; k < 3; k++) bucketFill(q.buckets, BK_STORM + k, nowUs);
  }
  if (!q.ingressLimited) return 0;
  bucketRefill(q.buckets, BK_INGRESS, nowUs);
  const wait = bucketWaitUs(q.buckets, BK_INGRESS, q.resumeTokens);
  return wait === 0 ? 0 : nowUs + wait;
}

// ---- config and control parameters ------------------------------------------------------------------------

/** The config keys of a port (and of port_defaults) this module reads. */
export const QOS_KEYS = ['rate_limit', 'egress_rate_limit', 'storm_control'] as const;
const RATE_KEYS = ['kbps', 'burst_kb'];
const STORM_KEYS = ['broadcast_pps', 'multicast_pps', 'unknown_unicast_pps', 'action', 'shutdown_s'];

type Problems = [string, string][];

function intIn(v: unknown, key: string, min: number, max: number, problems: Problems): number | null {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    problems.push([key, `must be an integer ${min}..${max}, got ${JSON.stringify(v)}`]);
    return null;
  }
  return v;
}

function keysOf(o: Record<string, unknown>, allowed: readonly string[], prefix: string, problems: Problems): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.push([`${prefix}${k}`, `unknown key (allowed: ${allowed.join(', ')})`]);
}

/** `rate_limit` / `egress_rate_limit`: { kbps, burst_kb? }, or null / absent for none. */
export function rateSpecFrom(v: unknown, key: string, problems: Problems): RateSpec | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push([key, `must be a mapping {kbps, burst_kb}, got ${JSON.stringify(v)}`]);
    return null;
  }
  const o = v as Record<string, unknown>;
  keysOf(o, RATE_KEYS, `${key}.`, problems);
  const kbps = intIn(o.kbps, `${key}.kbps`, 1, MAX_KBPS, problems);
  const burstKb = o.burst_kb === undefined || o.burst_kb === null ? (kbps === null ? null : defaultBurstKb(kbps)) : intIn(o.burst_kb, `${key}.burst_kb`, 1, MAX_BURST_KB, problems);
  return kbps === null || burstKb === null ? null : { kbps, burstKb };
}

/** `storm_control`: { broadcast_pps?, multicast_pps?, unknown_unicast_pps?, action?, shutdown_s? }, or null / absent. */
export function stormSpecFrom(v: unknown, key: string, problems: Problems): StormSpec | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push([key, `must be a mapping {broadcast_pps, multicast_pps, unknown_unicast_pps, action, shutdown_s}, got ${JSON.stringify(v)}`]);
    return null;
  }
  const o = v as Record<string, unknown>;
  keysOf(o, STORM_KEYS, `${key}.`, problems);
  const pps = (k: string): number => (o[k] === undefined || o[k] === null ? 0 : intIn(o[k], `${key}.${k}`, 1, MAX_PPS, problems) ?? 0);
  const spec: StormSpec = {
    broadcastPps: pps('broadcast_pps'), multicastPps: pps('multicast_pps'), unknownUnicastPps: pps('unknown_unicast_pps'),
    action: 'drop', shutdownS: DEFAULT_SHUTDOWN_S,
  };
  if (o.action !== undefined && o.action !== null) {
    if (o.action !== 'drop' && o.action !== 'shutdown') problems.push([`${key}.action`, `must be "drop" or "shutdown", got ${JSON.stringify(o.action)}`]);
    else spec.action = o.action;
  }
  if (o.shutdown_s !== undefined && o.shutdown_s !== null) spec.shutdownS = intIn(o.shutdown_s, `${key}.shutdown_s`, 1, MAX_SHUTDOWN_S, problems) ?? DEFAULT_SHUTDOWN_S;
  if (spec.broadcastPps === 0 && spec.multicastPps === 0 && spec.unknownUnicastPps === 0) {
    problems.push([key, 'sets no threshold: give broadcast_pps, multicast_pps or unknown_unicast_pps']);
  }
  return spec;
}

/**
 * A port's QoS from its config mapping (or port_defaults'): each of QOS_KEYS present replaces the default's;
 * `null` switches a default off.
 */
export function qosSpecFrom(o: Record<string, unknown>, defaults: QosSpec, problems: Problems): QosSpec {
  return {
    rateLimit: o.rate_limit === undefined ? defaults.rateLimit : rateSpecFrom(o.rate_limit, 'rate_limit', problems),
    egressRateLimit: o.egress_rate_limit === undefined ? defaults.egressRateLimit : rateSpecFrom(o.egress_rate_limit, 'egress_rate_limit', problems),
    storm: o.storm_control === undefined ? defaults.storm : stormSpecFrom(o.storm_control, 'storm_control', problems),
  };
}

/** The config keys of a spec (save-config, the runtime record): only what it sets. */
export function qosSpecToConfig(s: QosSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (s.rateLimit !== null) out.rate_limit = { kbps: s.rateLimit.kbps, burst_kb: s.rateLimit.burstKb };
  if (s.egressRateLimit !== null) out.egress_rate_limit = { kbps: s.egressRateLimit.kbps, burst_kb: s.egressRateLimit.burstKb };
  const st = s.storm;
  if (st !== null) {
    const m: Record<string, unknown> = {};
    if (st.broadcastPps > 0) m.broadcast_pps = st.broadcastPps;
    if (st.multicastPps > 0) m.multicast_pps = st.multicastPps;
    if (st.unknownUnicastPps > 0) m.unknown_unicast_pps = st.unknownUnicastPps;
    m.action = st.action;
    m.shutdown_s = st.shutdownS;
    out.storm_control = m;
  }
  return out;
}
