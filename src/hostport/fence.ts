// Fencing an uplink's host stack off (issue 11, section 4), for a host port with `mac: uplink`.
//
// The host port and the uplink then share one MAC. Linux answers ARP for any local address on any
// interface and accepts unicast for it on any interface, so without a fence every frame for the
// host would be taken twice: once by the uplink's own stack, once through the bridge and the host
// port (ping shows DUP!). A clsact qdisc with an ingress filter that drops everything does it:
// packet taps (the bridge's AF_PACKET socket) see a frame before tc ingress runs, so the bridge
// still gets every frame; the host stack behind the uplink gets none.
//
// The filter is classic BPF `ret #2` (TC_ACT_SHOT) in direct-action mode on cls_bpf, because
// kernels without act_gact / cls_matchall (this project's CI machines) still have cls_bpf. It is
// installed idempotently (`replace` with a fixed pref and handle), so a daemon that took over finds
// it in place; it is removed when the daemon stops, but not when it hands over.

import { execFileSync } from 'node:child_process';
import type { Logger } from '../log.js';

/** Our filter's priority and handle on the uplink's clsact ingress hook. */
export const FENCE_PREF = '49152';
const FENCE_HANDLE = '0x7b';
/** ret #2 = TC_ACT_SHOT */
const DROP_ALL = '1,6 0 0 2';
const TC_TIMEOUT_MS = 5_000;

function tc(args: string[]): { ok: boolean; out: string } {
  try {
    const out = execFileSync('tc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: TC_TIMEOUT_MS });
    return { ok: true, out };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, out: (e.stderr ?? e.message).trim() };
  }
}

/** Installs the fence on `ifname`; throws with tc's message when it cannot. */
export function fenceHostStack(ifname: string, log: Logger): void {
  const q = tc(['qdisc', 'add', 'dev', ifname, 'clsact']);
  if (!q.ok && !/exists|Exclusivity/i.test(q.out)) throw new Error(`cannot fence the host stack of ${ifname} off: tc qdisc add clsact: ${q.out}`);
  const f = tc(['filter', 'replace', 'dev', ifname, 'ingress', 'pref', FENCE_PREF, 'handle', FENCE_HANDLE, 'bpf', 'da', 'bytecode', DROP_ALL]);
  if (!f.ok) throw new Error(`cannot fence the host stack of ${ifname} off: tc filter replace: ${f.out}`);
  log.info({ ifname, pref: Number(FENCE_PREF) }, "uplink's host stack fenced off (clsact ingress drop; the bridge still sees every frame)");
}

/** Removes our filter, and the clsact qdisc when no other filter is left on it. Never throws. */
export function unfenceHostStack(ifname: string, log: Logger): void {
  const f = tc(['filter', 'del', 'dev', ifname, 'ingress', 'pref', FENCE_PREF]);
  const ingress = tc(['filter', 'show', 'dev', ifname, 'ingress']);
  const egress = tc(['filter', 'show', 'dev', ifname, 'egress']);
  if (ingress.ok && egress.ok && ingress.out.trim() === '' && egress.out.trim() === '') tc(['qdisc', 'del', 'dev', ifname, 'clsact']);
  log.info({ ifname, removed: f.ok, note: f.ok ? undefined : f.out }, "uplink's host stack fence removed");
}
