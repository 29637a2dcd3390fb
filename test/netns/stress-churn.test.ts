// Correctness under stress (issue 13, "Done when"): traffic on every port at once while ports are added and removed
// and a port changes VLAN. No frame may be duplicated, none may leave in the wrong VLAN, and the daemon must stay up.
// Loss during churn is allowed (and printed); speed is not asserted. Needs root and `ip netns`; skips with the reason
// otherwise. Nothing touches the root namespace.
//
//   h1 eth0 (TAP, was vif1.0, access 10) sid 1 ---+
//   h2 eth0 (TAP, was vif2.0, access 10) sid 2 ---+
//   h3 eth0 (TAP, was vif3.0, access 20) sid 3 ---+
//   h4 eth0 (TAP, was vif4.0, access 20) sid 4 ---+
//   h5 eth0 ~~ veth ~~ vif5.0 (attach, access 20) -+-- dom0: tapbridge xenbr0 --- peth0 (uplink, trunk [10,20])
//        sid 5; delif + addif again in a loop     |        ~~ veth ~~ up eth0: sids 10 and 20, tagged 10 and 20
//   h6 eth0 ~~ veth ~~ vif6.0 (attach, access 10) -+
//        receives only; `vlan set` 10 <-> 20 in a loop
//   x  eth0 ~~ veth ~~ vif8.0 (attach, trunk 10,20) -+
//        receives only; addif + delif in a loop
//   vif7.0 (TAP, access 10) and vif9.0 (TAP, default) in dom0: addif + delif in a loop (nobody reads them)
//
// Every peer (test/netns/stress-peer.py) sends and receives on one AF_PACKET socket: broadcast, unicast to peers it
// first heard at least 0.5 s before (the bridge has learned them), unknown unicast, and unicast to MACs of the other
// VLAN, each frame carrying the run's token, its sender id, its VLAN, a sequence number, and a body of 0 to 1040 bytes
// cut from a fixed pattern at an offset given by sender and sequence number (frames of 60 to about 1100 bytes, checked
// byte for byte by the receiver). From the receivers' logs the test checks:
//   - no (sender, seq) arrives twice at one receiver, no receiver gets its own frames back, and no frame arrives
//     mangled or that no peer sent;
//   - an access port sees only untagged frames of its own VLAN; a trunk (up, x) sees every frame tagged with its
//     sender's VLAN; unicast to a fixed host (h1-h4, up) that the sender heard 0.5 s before reaches only that host;
//   - h6, whose VLAN flips, sees the VLANs in runs that follow the order of the flips (a frame of the other VLAN in
//     the middle of a phase would add runs). Timing-free, and it holds because a `vlan set` is atomic for the data
//     path: the daemon applies a control request between batches, so once a frame of the new VLAN has left the port
//     none of the old one follows. A data path of several threads must keep that (apply the change at a point where
//     no thread is inside a batch) or this check fails;
//   - the daemon still runs, answers show/stats, counts only congestion drops, its rx/tx counters agree with what the
//     peers sent and received, and every host MAC is learned on its own port in its own VLAN only;
//   - not vacuous: each receiver got a good share of the broadcasts of each sender in its VLAN.

import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../../src/control/client.js";
import { destroyLab, Lab, PYTHON, REPO_ROOT, canRunNetns, sleep, waitFor, type Background } from "./helpers.js";
import type { BridgeStats, MacEntry, PortStats, ShowBridge } from "../support/json-shapes.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns stress test skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const PEER_SCRIPT = join(REPO_ROOT, "test/netns/stress-peer.py");
/**
 * Ticks per second and frames per tick of each logical sender (bursts, so that the daemon reads full batches), seconds
 * of traffic after the peers' 1 s learning phase, seconds the receivers listen on.
 */
const RATE = 100;
const BURST = 8;
const DURATION_S = 15;
const DRAIN_S = 2;

type PeerName = "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "x" | "up";
interface PeerSpec {
  port: string;
  mac: string;
  /** The VLAN of an access host (h6: its first one), null for a trunk. */
  vid: number | null;
  senders: { sid: number; vid: number; tagged: boolean }[];
}
const PEERS: Record<PeerName, PeerSpec> = {
  h1: { port: "vif1.0", mac: "02:00:00:13:00:01", vid: 10, senders: [{ sid: 1, vid: 10, tagged: false }] },
  h2: { port: "vif2.0", mac: "02:00:00:13:00:02", vid: 10, senders: [{ sid: 2, vid: 10, tagged: false }] },
  h3: { port: "vif3.0", mac: "02:00:00:13:00:03", vid: 20, senders: [{ sid: 3, vid: 20, tagged: false }] },
  h4: { port: "vif4.0", mac: "02:00:00:13:00:04", vid: 20, senders: [{ sid: 4, vid: 20, tagged: false }] },
  h5: { port: "vif5.0", mac: "02:00:00:13:00:05", vid: 20, senders: [{ sid: 5, vid: 20, tagged: false }] },
  h6: { port: "vif6.0", mac: "02:00:00:13:00:06", vid: 10, senders: [] },
  x: { port: "vif8.0", mac: "02:00:00:13:00:08", vid: null, senders: [] },
  up: {
    port: "peth0",
    mac: "02:00:00:13:00:09",
    vid: null,
    senders: [{ sid: 10, vid: 10, tagged: true }, { sid: 20, vid: 20, tagged: true }],
  },
};
const PEER_NAMES = Object.keys(PEERS) as PeerName[];
/** The VLAN of each sender id, and the peer it belongs to. */
const SID_VID = new Map<number, number>();
const SID_PEER = new Map<number, PeerName>();
for (const name of PEER_NAMES) {
  for (const s of PEERS[name].senders) {
    SID_VID.set(s.sid, s.vid);
    SID_PEER.set(s.sid, name);
  }
}
/** Hosts whose FDB entries nothing flushes: known unicast to them must reach them alone. */
const FIXED_DST = new Map<string, PeerName>(
  (["h1", "h2", "h3", "h4", "up"] as const).map((n) => [PEERS[n].mac.replaceAll(":", ""), n]),
);
/** Extra ports added and removed in the churn loop (addif params); vif8.0 is x's veth, the TAPs nobody reads. */
const EXTRA_PORTS: Record<string, unknown>[] = [
  { ifname: "vif7.0", kind: "tap", access: 10 },
  { ifname: "vif8.0", kind: "attach", trunk: "10,20" },
  { ifname: "vif9.0", kind: "tap" },
];
/** Drop reasons of congestion (allowed under churn on a loaded machine); any other reason is a bug here. */
const CONGESTION_DROPS = new Set(["tx_full", "tx_link_down", "socket", "kernel_drops"]);

interface Received {
  sid: number;
  vid: number;
  seq: number;
  kind: number;
  tag: number;
  dst: string;
}
interface PeerSummary {
  sent: Record<string, Record<string, number>>;
  send_errors: number;
  received: number;
  other: number;
  mangled: number;
}
interface PeerResult {
  summary: PeerSummary;
  frames: Received[];
}

function parseLog(text: string): Received[] {
  const out: Received[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [sid, vid, seq, kind, tag, dst] = line.split(" ");
    out.push({ sid: Number(sid), vid: Number(vid), seq: Number(seq), kind: Number(kind), tag: Number(tag), dst: dst ?? "" });
  }
  return out;
}

/** Compressed runs of a sequence: [10, 10, 20, 10] -> [10, 20, 10]. */
function runsOf(values: number[]): number[] {
  const runs: number[] = [];
  for (const v of values) if (runs[runs.length - 1] !== v) runs.push(v);
  return runs;
}

/** Whether `sub` is a subsequence of `seq` (order kept, gaps allowed). */
function isSubsequence(sub: number[], seq: number[]): boolean {
  let i = 0;
  for (const v of seq) if (i < sub.length && sub[i] === v) i++;
  return i === sub.length;
}

// Once with the data path on the main thread alone, once with a worker thread reading half of the ports
// (src/dataplane/): every check below must hold for both.
for (const dataWorkers of [1, 2]) {
  describe.skipIf(!support.ok)(`stress: traffic on all ports while ports are added, removed and re-VLANed (data_workers ${dataWorkers})` + skipNote, () => {
    let lab: Lab;
    const rpc = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => call(lab.socketPath, method, params, 20_000);
    const stats = async (): Promise<BridgeStats> => {
      const all = (await rpc("stats")) as BridgeStats[];
      const b = all.find((x) => x.bridge === BRIDGE);
      if (!b) throw new Error(`no stats for ${BRIDGE}: ${JSON.stringify(all)}`);
      return b;
    };
    const portOf = (s: BridgeStats, port: string): PortStats | undefined => s.ports.find((p) => p.name === port);

    // what the run produced, for the checks below
    const results = {} as Record<PeerName, PeerResult>;
    let before: BridgeStats;
    let after: BridgeStats;
    /** h6's VLAN in each phase, in order (the first is its config VLAN). */
    const h6Phases: number[] = [];
    const ops = { addif: 0, delif: 0, vlanSet: 0 };
    let ran = false;

    beforeAll(async () => {
      lab = new Lab("stress");
      const nodes = ["dom0", ...PEER_NAMES];
      for (const n of nodes) await lab.addNs(n);
      // No IPv6 and no addresses anywhere: the only frames on the bridge are the peers' (before any link exists, so
      // that every link gets these defaults)
      for (const n of nodes) await lab.exec(n, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
      await lab.addVeth("dom0", "peth0", "up", "eth0");
      for (const n of ["h5", "h6", "x"] as const) await lab.addVeth("dom0", PEERS[n].port, n, "eth0");
      for (const ifname of ["peth0", "vif5.0", "vif6.0", "vif8.0"]) await lab.ip("dom0", ["link", "set", "dev", ifname, "up"]);
      lab.writeConfig({
        control_socket: lab.socketPath,
        data_workers: dataWorkers,
        bridges: [{
          name: BRIDGE,
          // IGMP/MLD snooping on (the default) in both runs: with data_workers 2 the workers forward by copies of the MDB
          uplink: { interface: "peth0", trunk: [10, 20] },
          ports: [
            { name: "vif1.0", vlan: 10 },
            { name: "vif2.0", vlan: 10 },
            { name: "vif3.0", vlan: 20 },
            { name: "vif4.0", vlan: 20 },
            { name: "vif5.0", kind: "attach", vlan: 20 },
            { name: "vif6.0", kind: "attach", vlan: 10 },
          ],
        }],
      });
      await lab.startDaemon("dom0");
      for (const n of ["h1", "h2", "h3", "h4"] as const) {
        const vif = PEERS[n].port;
        if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif}\n${lab.daemonLog()}`);
        await lab.moveLink("dom0", vif, n, "eth0");
      }
      for (const n of PEER_NAMES) {
        await lab.ip(n, ["link", "set", "dev", "eth0", "address", PEERS[n].mac]);
        await lab.ip(n, ["link", "set", "dev", "eth0", "up"]);
      }
      h6Phases.push(PEERS.h6.vid!);
    }, 60_000);

    afterAll(() => destroyLab(lab));

    it(`runs ${DURATION_S} s of traffic from every peer while the loop adds, removes and re-VLANs ports`, async () => {
      const token = randomBytes(4).toString("hex");
      const peers = new Map<PeerName, Background>();
      for (const n of PEER_NAMES) {
        const p = PEERS[n];
        const cfg = {
          ifname: "eth0",
          token,
          rate: RATE,
          burst: BURST,
          duration_s: DURATION_S,
          drain_s: DRAIN_S,
          log: join(lab.dir, `peer-${n}.log`),
          mac: p.mac,
          senders: p.senders,
          // unicast to a MAC of the other VLAN: h1/h2 (VLAN 10) for VLAN 20 senders and h3-h5 for VLAN 10 senders
          cross: { "10": ["h3", "h4", "h5"].map((x) => PEERS[x as PeerName].mac), "20": ["h1", "h2"].map((x) => PEERS[x as PeerName].mac) },
        };
        peers.set(n, lab.spawn(n, [PYTHON, PEER_SCRIPT, JSON.stringify(cfg)], `stress peer ${n}`, { stdin: true }));
      }
      await Promise.all([...peers.values()].map((b) => b.waitForOutput("ready", 15_000)));
      before = await stats();
      const goAt = Date.now();
      for (const b of peers.values()) b.child.stdin?.write("go\n");

      // the churn: from the end of the peers' learning phase to 1.5 s before their traffic ends, so that the last
      // frames cross a settled bridge (vif5.0 back, h6 in its last VLAN)
      const churnEnd = goAt + 1_000 + DURATION_S * 1_000 - 1_500;
      await sleep(1_000);
      let h6Vid = PEERS.h6.vid!;
      while (Date.now() < churnEnd) {
        for (const params of EXTRA_PORTS) {
          await rpc("addif", { bridge: BRIDGE, ...params });
          ops.addif++;
        }
        await sleep(150);
        await rpc("delif", { bridge: BRIDGE, ifname: "vif5.0" });
        ops.delif++;
        await sleep(150);
        await rpc("addif", { bridge: BRIDGE, ifname: "vif5.0", kind: "attach", access: 20 });
        ops.addif++;
        h6Vid = h6Vid === 10 ? 20 : 10;
        await rpc("vlan.set", { bridge: BRIDGE, port: "vif6.0", access: h6Vid });
        h6Phases.push(h6Vid);
        ops.vlanSet++;
        await sleep(150);
        for (const { ifname } of EXTRA_PORTS) {
          await rpc("delif", { bridge: BRIDGE, ifname });
          ops.delif++;
        }
        await sleep(300);
      }

      for (const [n, b] of peers) {
        await b.wait((DURATION_S + DRAIN_S + 20) * 1_000);
        const last = b.stdout.trim().split("\n").pop() ?? "";
        if (b.exitCode !== 0 || !last.startsWith("{")) throw new Error(`peer ${n} exited ${b.exitCode}: ${b.stdout} ${b.stderr}`);
        results[n] = { summary: JSON.parse(last) as PeerSummary, frames: parseLog(readFileSync(join(lab.dir, `peer-${n}.log`), "utf8")) };
      }
      after = await stats();
      ran = true;

      // figures (not asserted): what was sent and received, and how much the churn cost
      const sentBy = (n: PeerName): number =>
        Object.values(results[n].summary.sent).reduce((a, k) => a + Object.values(k).reduce((x, y) => x + y, 0), 0);
      console.log(`stress: churn ${ops.addif} addif, ${ops.delif} delif, ${ops.vlanSet} vlan set (h6 phases ${h6Phases.join(",")})`);
      for (const n of PEER_NAMES) {
        const s = results[n].summary;
        const ps = portOf(after, PEERS[n].port);
        const drops = Object.entries(ps?.drops ?? {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
        console.log(`stress: ${n} (${PEERS[n].port}) sent ${sentBy(n)} (${s.send_errors} send errors), received ${s.received}, ` +
          `other ${s.other}, mangled ${s.mangled}; port drops: ${drops}`);
      }
      console.log(`stress: fdb ${JSON.stringify(after.fdb)}`);
      // a figure, not a check: frames that arrived after a later frame of the same sender (one ingress port, one
      // egress port: a single-threaded data path keeps their order)
      const reordered = PEER_NAMES.map((n) => {
        const last = new Map<number, number>();
        let late = 0;
        for (const f of results[n].frames) {
          if ((last.get(f.sid) ?? -1) > f.seq) late++;
          else last.set(f.sid, f.seq);
        }
        return `${n} ${late}`;
      });
      console.log(`stress: frames behind a later one of their sender: ${reordered.join(", ")}`);
    }, 90_000);

    it("no receiver got the same (sender, seq) twice, its own frames back, a mangled frame or one nobody sent", () => {
      expect(ran).toBe(true);
      const problems: string[] = [];
      for (const n of PEER_NAMES) {
        // the namespaces have no addresses and no IPv6: every frame on the bridge is a peer's test frame
        const { other, mangled } = results[n].summary;
        if (other > 0 || mangled > 0) problems.push(`${n}: ${mangled} mangled test frames, ${other} frames no peer sent`);
        const seen = new Set<number>();
        let dups = 0;
        let own = 0;
        for (const f of results[n].frames) {
          const key = f.sid * 2 ** 32 + f.seq;
          if (seen.has(key)) {
            if (dups++ < 5) problems.push(`${n}: (${f.sid}, ${f.seq}) twice`);
          }
          seen.add(key);
          if (SID_PEER.get(f.sid) === n) own++;
        }
        if (dups > 5) problems.push(`${n}: ${dups} duplicates in all`);
        if (own > 0) problems.push(`${n}: ${own} of its own frames came back`);
      }
      expect(problems).toEqual([]);
    });

    it("access ports see only untagged frames of their VLAN; the trunk sees each frame tagged with its sender's VLAN", () => {
      expect(ran).toBe(true);
      const problems: string[] = [];
      const note = (n: string, what: string, f: Received): void => {
        if (problems.length < 20) problems.push(`${n}: ${what}: sid ${f.sid} (VLAN ${SID_VID.get(f.sid)}) seq ${f.seq} kind ${f.kind} tag ${f.tag}`);
      };
      for (const n of PEER_NAMES) {
        for (const f of results[n].frames) {
          const vid = SID_VID.get(f.sid);
          if (vid === undefined || f.vid !== vid) note(n, "unknown sender or VLAN", f);
          else if (PEERS[n].vid === null) {
            if (f.tag !== vid) note(n, "wrong tag on a trunk", f);
          } else if (f.tag !== -1) note(n, "tagged frame on an access port", f);
          else if (n !== "h6" && vid !== PEERS[n].vid) note(n, "frame of another VLAN", f);
        }
      }
      expect(problems).toEqual([]);
    });

    it("known unicast to a fixed host reaches that host alone", () => {
      expect(ran).toBe(true);
      const problems: string[] = [];
      for (const n of PEER_NAMES) {
        for (const f of results[n].frames) {
          const to = f.kind === 1 ? FIXED_DST.get(f.dst) : undefined;
          if (to !== undefined && to !== n && problems.length < 20) problems.push(`${n} got sid ${f.sid} seq ${f.seq} for ${to}`);
        }
      }
      expect(problems).toEqual([]);
    });

    it("h6, re-VLANed in a loop, sees the VLANs in runs that follow the order of its `vlan set`s", () => {
      expect(ran).toBe(true);
      expect(ops.vlanSet).toBeGreaterThanOrEqual(2);
      const runs = runsOf(results.h6.frames.map((f) => SID_VID.get(f.sid) ?? -1));
      const shown = runs.length > 40 ? `${runs.slice(0, 40).join(",")},... (${runs.length} runs)` : runs.join(",");
      expect(isSubsequence(runs, h6Phases), `runs ${shown} vs phases ${h6Phases.join(",")}`).toBe(true);
      // not vacuous: it heard both VLANs
      expect(new Set(runs)).toEqual(new Set([10, 20]));
    });

    it("each receiver got a good share of the broadcasts of every sender in its VLAN", () => {
      expect(ran).toBe(true);
      const problems: string[] = [];
      const share: string[] = [];
      for (const n of PEER_NAMES) {
        if (n === "h6" || n === "x") continue; // h6: the runs check above; x: below
        const got = new Map<number, Set<number>>();
        for (const f of results[n].frames) {
          if (f.kind !== 0) continue;
          let set = got.get(f.sid);
          if (!set) got.set(f.sid, (set = new Set()));
          set.add(f.seq);
        }
        for (const [sid, vid] of SID_VID) {
          const from = SID_PEER.get(sid)!;
          if (from === n || (PEERS[n].vid !== null && PEERS[n].vid !== vid)) continue;
          const sent = results[from].summary.sent[String(sid)]?.["0"] ?? 0;
          const recv = got.get(sid)?.size ?? 0;
          const ratio = sent > 0 ? recv / sent : 0;
          share.push(`${from}/${sid}->${n} ${(100 * ratio).toFixed(0)}%`);
          // vif5.0 is away for part of each churn cycle; everyone else loses only what congestion costs
          const min = from === "h5" || n === "h5" ? 0.1 : 0.25;
          if (!(ratio >= min)) problems.push(`${n} got ${recv} of ${sent} broadcasts from ${from} (sid ${sid}), want >= ${min * 100}%`);
        }
      }
      // x's port is away for most of each churn cycle: it must still have heard both VLANs
      const xVids = new Set(results.x.frames.map((f) => SID_VID.get(f.sid)));
      if (!xVids.has(10) || !xVids.has(20)) problems.push(`x heard VLANs [${[...xVids].join(", ")}], want 10 and 20`);
      console.log(`stress: broadcasts received / sent: ${share.join(", ")}; x received ${results.x.frames.length}`);
      expect(problems).toEqual([]);
    });

    it("the daemon is up, answers show and stats, and counts no drop reason but congestion", async () => {
      expect(ran).toBe(true);
      expect(lab.daemon?.running, lab.daemonLog()).toBe(true);
      const show = (await rpc("show")) as ShowBridge[];
      const b = show.find((x) => x.name === BRIDGE);
      expect(b?.uplink?.state).toBe("up");
      const ports = Object.fromEntries((b?.ports ?? []).map((p) => [p.name, p.state]));
      expect(ports).toEqual({ "vif1.0": "up", "vif2.0": "up", "vif3.0": "up", "vif4.0": "up", "vif5.0": "up", "vif6.0": "up" });
      const unexpected: string[] = [];
      for (const p of after.ports) {
        for (const [reason, count] of Object.entries(p.drops)) {
          if (count > 0 && !CONGESTION_DROPS.has(reason)) unexpected.push(`${p.name}: ${reason} ${count}`);
        }
      }
      expect(unexpected).toEqual([]);
      // no error or fatal line in the daemon's log (JSON lines: pino levels 50 and 60)
      expect(lab.daemonErrors()).toEqual([]);
      if (dataWorkers > 1) {
        // not vacuous: the worker thread did read ports and forward during the run
        const dw = (await rpc("data_workers.show")) as { workers: { id: number; alive: boolean; ports: string[]; frames: number }[] };
        console.log(`stress: data_workers ${JSON.stringify(dw.workers)}`);
        expect(dw.workers.length).toBe(dataWorkers);
        expect(dw.workers.slice(1).every((w) => w.alive && w.ports.length > 0 && w.frames > 1000)).toBe(true);
      }
    });

    it("rx/tx counters agree with the peers, no MAC moved, and every host is learned on its own port and VLAN only", async () => {
      expect(ran).toBe(true);
      const problems: string[] = [];
      const seenFrom = new Map<number, Set<number>>();
      for (const n of PEER_NAMES) {
        for (const f of results[n].frames) {
          let set = seenFrom.get(f.sid);
          if (!set) seenFrom.set(f.sid, (set = new Set()));
          set.add(f.seq);
        }
      }
      // the ports nothing removes: their counters span the whole run
      for (const n of ["h1", "h2", "h3", "h4", "h6", "up"] as const) {
        const port = PEERS[n].port;
        const b = portOf(before, port);
        const a = portOf(after, port);
        if (!a || !b) {
          problems.push(`no stats for ${port}`);
          continue;
        }
        const rx = a.rx_packets - b.rx_packets;
        const tx = a.tx_packets - b.tx_packets;
        const s = results[n].summary;
        const sent = Object.values(s.sent).reduce((acc, k) => acc + Object.values(k).reduce((x, y) => x + y, 0), 0);
        const seen = PEERS[n].senders.reduce((acc, x) => acc + (seenFrom.get(x.sid)?.size ?? 0), 0);
        // every frame a peer received came from the daemon; every frame of a peer seen anywhere was read by the
        // daemon once; the daemon read no more than the peer sent
        if (tx < s.received) problems.push(`${port}: tx_packets +${tx} < ${s.received} received by ${n}`);
        if (rx < seen) problems.push(`${port}: rx_packets +${rx} < ${seen} distinct frames of ${n} seen by receivers`);
        if (rx > sent) problems.push(`${port}: rx_packets +${rx} > ${sent} sent by ${n}`);
      }
      if (after.fdb.moved !== before.fdb.moved) problems.push(`fdb.moved ${before.fdb.moved} -> ${after.fdb.moved}`);
      const macs = (await rpc("showmacs", { bridge: BRIDGE })) as MacEntry[];
      for (const n of PEER_NAMES) {
        const got = macs.filter((e) => e.mac === PEERS[n].mac).map((e) => `${e.port}/${e.vlan}`).sort();
        const want = n === "up" ? ["peth0/10", "peth0/20"] : n === "h6" || n === "x" ? [] : [`${PEERS[n].port}/${PEERS[n].vid}`];
        // h5's entry may be missing: a delif flushed it and its next frame may not have come yet
        const ok = JSON.stringify(got) === JSON.stringify(want) || (n === "h5" && got.length === 0);
        if (!ok) problems.push(`${n} ${PEERS[n].mac} learned as [${got.join(", ")}], want [${want.join(", ")}]`);
      }
      const strays = macs.filter((e) => e.mac.startsWith("02:00:00:13:ee:"));
      if (strays.length > 0) problems.push(`unknown-unicast destinations learned: ${JSON.stringify(strays)}`);
      expect(problems).toEqual([]);
    });
  });
}
