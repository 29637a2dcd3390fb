// Privileged end-to-end tests of 802.1Q VLANs (issue 3). Two tapbridge daemons, each in its own dom0 namespace,
// joined by a trunk veth; hosts on access ports in VLANs 10 and 20 on both sides, all in ONE IP subnet so that the
// VLAN is the only thing that separates them. This kernel has no 8021q module: every tag on the wire is tapbridge's,
// and raw frames are injected and captured with AF_PACKET sockets (python3) and tcpdump in the namespaces.
// Needs root and `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   side A (lab A, daemon A)                                        side B (lab B, daemon B)
//   a10 eth0 (TAP vif1.0, access 10) 198.18.40.1 --+               +-- b10 eth0 (TAP vif1.0, access 10) 198.18.40.3
//   a20 eth0 (TAP vif2.0, access 20) 198.18.40.2 --+- xenbr0 --- peth0 ~~ trunk veth [10,20] ~~ peth0 --- xenbr0 -+
//   inj8 eth0 ~~ vif8.0 (attach, default)        --+                                                           |
//   inj9 eth0 ~~ vif9.0 (attach, trunk [10,20]; --+               +-- b20 eth0 (TAP vif2.0, access 20) 198.18.40.4 +
//                 vlan set at runtime, allow_stacked)  .9
//   tcpdump on A's peth0 records the trunk while the hosts ping and transfer.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPcap } from "../support/pcap.js";
import {
  Lab,
  PY_RAW_CAPTURE,
  PY_RAW_SENDER,
  PY_TCP_RECEIVER,
  PY_TCP_SENDER,
  PYTHON,
  canRunNetns,
  sleep,
  type Background,
  waitFor,
} from "./helpers.js";
import type { MacEntry, PortStats, VlanShow } from "../support/json-shapes.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns VLAN tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { a10: "198.18.40.1", a20: "198.18.40.2", b10: "198.18.40.3", b20: "198.18.40.4", inj9: "198.18.40.9" };
const MAC = {
  a10: "02:00:00:40:00:01",
  a20: "02:00:00:40:00:02",
  b10: "02:00:00:40:00:03",
  b20: "02:00:00:40:00:04",
  inj8: "02:00:00:40:00:08",
  inj9: "02:00:00:40:00:09",
};
/** The VLAN each host's access port is in (as configured). */
const HOST_VID: Record<string, number> = { [MAC.a10]: 10, [MAC.b10]: 10, [MAC.a20]: 20, [MAC.b20]: 20 };

interface Captured {
  tpid: number | null;
  tci: number | null;
  where: "auxdata" | "inline" | null;
  len: number;
  src: string;
}

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, "0");
/** A raw frame as hex: DST <- SRC, optional tag (TPID 0x8100 unless given), EtherType 0x88b5, ASCII marker. */
function rawFrame(dst: string, src: string, tci: number | null, marker: string, tpid = 0x8100): string {
  const tag = tci === null ? "" : hex(tpid, 4) + hex(tci, 4);
  return (dst + src).replaceAll(":", "") + tag + "88b5" + Buffer.from(marker).toString("hex").padEnd(92, "0");
}
const BCAST = "ff:ff:ff:ff:ff:ff";
let markerSeq = 0;
const newMarker = (): string => `tbvlan-${process.pid}-${++markerSeq}-${Math.random().toString(16).slice(2, 8)}`;

describe.skipIf(!support.ok)("802.1Q VLANs: two tapbridge daemons joined by a trunk" + skipNote, () => {
  let A: Lab;
  let B: Lab;
  let trunkCapture: Background | undefined;
  let trunkPcap = "";

  /** Which lab a host lives in, and its node name there. */
  const host = (h: "a10" | "a20" | "b10" | "b20" | "inj8" | "inj9"): [Lab, string] => {
    if (h.startsWith("a")) return [A, h.slice(1) === "10" ? "h10" : "h20"];
    if (h.startsWith("b")) return [B, h.slice(1) === "10" ? "h10" : "h20"];
    return [A, h];
  };
  const ping = (from: Parameters<typeof host>[0], to: string, count = 2) => {
    const [lab, node] = host(from);
    return lab.ping(node, to, count);
  };
  const pingUntil = (from: Parameters<typeof host>[0], to: string, timeoutMs = 10_000) => {
    const [lab, node] = host(from);
    return lab.pingUntil(node, to, timeoutMs);
  };
  const logs = (): string => `${A.daemonLog(15)}\n${B.daemonLog(15)}`;

  async function stats(lab: Lab, port: string): Promise<Record<string, number>> {
    const s = await lab.cliJson<{ bridge: string; ports: PortStats[] }[]>(["stats"]);
    const p = s.find((b) => b.bridge === BRIDGE)?.ports.find((x) => x.name === port);
    if (!p) throw new Error(`no stats for ${port}: ${JSON.stringify(s)}`);
    return p.drops;
  }

  async function vlanSet(lab: Lab, port: string, args: string[]): Promise<VlanShow> {
    const r = await lab.cli(["vlan", "set", BRIDGE, port, ...args, "-j"]);
    if (r.code !== 0) throw new Error(`vlan set ${port} ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as VlanShow;
  }

  /**
   * Start a raw capture for `marker` on each listed [key, lab, node, ifname, expected?]; resolves once all of them
   * listen, with a function that collects what each saw. A capture that expects frames ends as soon as it has that
   * many (or after 8 s); one that expects none listens for `quietS` seconds.
   */
  async function captures(
    marker: string,
    where: [string, Lab, string, string, number?][],
    quietS = 1.5,
  ): Promise<() => Promise<Record<string, Captured[]>>> {
    const bgs = where.map(([key, lab, node, ifname, expected]) => {
      const argv = [PYTHON, "-c", PY_RAW_CAPTURE, ifname, marker, ...(expected ? ["8", String(expected)] : [String(quietS)])];
      return [key, lab.spawn(node, argv, `capture ${key}`)] as const;
    });
    await Promise.all(bgs.map(([, bg]) => bg.waitForOutput("ready")));
    return async () => {
      const out: Record<string, Captured[]> = {};
      for (const [key, bg] of bgs) {
        await bg.wait(20_000);
        const line = bg.stdout.trim().split("\n").pop() ?? "";
        if (!line.startsWith("{")) throw new Error(`capture ${key}: ${bg.stdout} ${bg.stderr}`);
        out[key] = (JSON.parse(line) as { frames: Captured[] }).frames;
      }
      return out;
    };
  }

  async function inject(lab: Lab, node: string, frames: string[], count = 3): Promise<void> {
    const r = await lab.exec(node, [PYTHON, "-c", PY_RAW_SENDER, "eth0", String(count), "0.05", ...frames], { check: false, timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`raw sender in ${node}: ${r.stderr}`);
  }

  beforeAll(async () => {
    A = new Lab("vlan-a");
    B = new Lab("vlan-b");
    for (const n of ["dom0", "h10", "h20", "inj8", "inj9"]) await A.addNs(n);
    for (const n of ["dom0", "h10", "h20"]) await B.addNs(n);
    // No IPv6 anywhere: the trunk capture and the raw captures see only the traffic the tests make (a TAP moved into
    // a host gets that namespace's defaults).
    for (const [lab, nodes] of [[A, ["dom0", "h10", "h20", "inj8", "inj9"]], [B, ["dom0", "h10", "h20"]]] as const) {
      for (const n of nodes) await lab.exec(n, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    // the trunk: peth0 in A's dom0 <-> peth0 in B's dom0
    await A.addVethTo("dom0", "peth0", B, "dom0", "peth0");
    await A.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await B.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    // raw injection points on A: vif8.0 (default port), vif9.0 (trunk, changed at runtime)
    for (const i of [8, 9] as const) {
      await A.addVeth("dom0", `vif${i}.0`, `inj${i}`, "eth0");
      await A.ip("dom0", ["link", "set", "dev", `vif${i}.0`, "up"]);
      await A.ip(`inj${i}`, ["link", "set", "dev", "eth0", "address", MAC[`inj${i}`], "up"]);
    }
    A.writeConfig({
      control_socket: A.socketPath,
      bridges: [{
        name: BRIDGE,
        uplink: { interface: "peth0", trunk: [10, 20] },
        ports: [
          { name: "vif1.0", vlan: 10 },
          { name: "vif2.0", vlan: 20 },
          { name: "vif8.0", kind: "attach" },
          // allow_stacked: the QinQ lab case below (the stacked-tag drop itself: vlan-escape.test.ts)
          { name: "vif9.0", kind: "attach", trunk: [10, 20], allow_stacked: true },
        ],
      }],
    });
    B.writeConfig({
      control_socket: B.socketPath,
      bridges: [{ name: BRIDGE, uplink: { interface: "peth0", trunk: [10, 20] }, ports: [{ name: "vif1.0", vlan: 10 }, { name: "vif2.0", vlan: 20 }] }],
    });
    await Promise.all([A.startDaemon("dom0"), B.startDaemon("dom0")]);
    for (const [lab, side] of [[A, "a"], [B, "b"]] as const) {
      for (const [vif, node, vid] of [["vif1.0", "h10", "10"], ["vif2.0", "h20", "20"]] as const) {
        if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif} in ${lab.ns("dom0")}\n${lab.daemonLog()}`);
        await lab.moveLink("dom0", vif, node, "eth0");
        const h = `${side}${vid}` as "a10" | "a20" | "b10" | "b20";
        await lab.configureHost(node, "eth0", IP[h], undefined, MAC[h]);
      }
    }
    // record the trunk from here on (headers only), as the hosts ping and transfer
    trunkPcap = join(A.dir, "trunk.pcap");
    trunkCapture = A.spawn("dom0", ["tcpdump", "-i", "peth0", "-nn", "--immediate-mode", "-s", "128", "-U", "-Z", "root", "-w", trunkPcap], "tcpdump trunk");
    const listening = await waitFor(() => trunkCapture!.stderr.includes("listening on") || !trunkCapture!.running, 10_000, 50);
    if (!listening || !trunkCapture.running) throw new Error(`tcpdump did not start: ${trunkCapture.stderr}`);
  }, 90_000);

  afterAll(async () => {
    const labs = [A, B].filter((l): l is Lab => l !== undefined);
    try {
      await trunkCapture?.stop(2_000);
    } finally {
      for (const lab of labs) await lab.destroy();
    }
    for (const lab of labs) expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });

  it("vlan show -j: [{port, mode, vlans, native}]; a default port shows as a trunk of all VLANs with native 0", async () => {
    const show = await A.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    const sorted = [...show].sort((x, y) => (x.port < y.port ? -1 : 1));
    expect(sorted).toEqual([
      { port: "peth0", mode: "trunk", vlans: [10, 20], native: null },
      { port: "vif1.0", mode: "access", vlans: [10], native: 10 },
      { port: "vif2.0", mode: "access", vlans: [20], native: 20 },
      { port: "vif8.0", mode: "trunk", vlans: "all", native: 0 },
      { port: "vif9.0", mode: "trunk", vlans: [10, 20], native: null },
    ]);
    for (const e of show) expect(Object.keys(e).sort()).toEqual(["mode", "native", "port", "vlans"]);
  });

  it("ping works inside each VLAN across the trunk and fails across VLANs (one IP subnet for all)", async () => {
    for (const [from, to] of [["a10", IP.b10], ["a20", IP.b20], ["b10", IP.a10], ["b20", IP.a20]] as const) {
      const r = await pingUntil(from, to, 10_000);
      expect(r.ok, `${from} -> ${to}: ${r.output}\n${logs()}`).toBe(true);
    }
    const cross = await Promise.all([
      ping("a10", IP.a20), ping("a10", IP.b20), ping("a20", IP.b10), ping("b10", IP.b20), ping("b20", IP.a10),
    ]);
    for (const r of cross) expect(r.ok, `a ping across VLANs must fail: ${r.output}`).toBe(false);
    // each VLAN learned its own hosts; the other side's hosts sit behind the trunk in their own VLAN
    const macs = await A.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    const find = (mac: string) => macs.filter((e) => e.mac === mac).map((e) => `${e.port}/${e.vlan}`).sort();
    expect(find(MAC.a10), JSON.stringify(macs)).toEqual(["vif1.0/10"]);
    expect(find(MAC.a20)).toEqual(["vif2.0/20"]);
    expect(find(MAC.b10)).toEqual(["peth0/10"]);
    expect(find(MAC.b20)).toEqual(["peth0/20"]);
  });

  it.each([
    { from: "a10", to: "b10", port: 5110 },
    { from: "b20", to: "a20", port: 5120 },
  ] as const)("a 4 MB TCP transfer $from -> $to inside its VLAN across the trunk arrives byte-identical", async ({ from, to, port }) => {
    const MB = 4;
    const [fromLab, fromNode] = host(from);
    const [toLab, toNode] = host(to);
    const receiver = toLab.spawn(toNode, [PYTHON, "-c", PY_TCP_RECEIVER, IP[to], String(port), "30"], `tcp receiver ${to}`);
    await receiver.waitForOutput("ready");
    const sender = await fromLab.exec(fromNode, [PYTHON, "-c", PY_TCP_SENDER, IP[to], String(port), String(MB), "30"], { check: false, timeoutMs: 45_000 });
    await receiver.wait(10_000);
    const diag = `sender ${sender.code}: ${sender.stderr.slice(-1000)}\nreceiver: ${receiver.stdout} ${receiver.stderr.slice(-1000)}\n${logs()}`;
    expect(sender.code, diag).toBe(0);
    const sent = JSON.parse(sender.stdout.trim().split("\n").pop()!) as { sha256: string; seconds: number };
    const got = JSON.parse(receiver.stdout.trim().split("\n").pop()!) as { bytes: number; sha256: string };
    expect(got.bytes, diag).toBe(MB << 20);
    expect(got.sha256, diag).toBe(sent.sha256);
  });

  it("the trunk capture: every frame tagged 0x8100 with its host's VID and PCP 0, no untagged frame", async () => {
    // stop tcpdump (immediate mode, flushed with -U) and read what it wrote; libpcap re-inserts the tags the kernel
    // stripped from received frames
    await sleep(200);
    await trunkCapture!.stop(5_000);
    const frames = await readPcap(trunkPcap);
    const bad: string[] = [];
    const seen = new Map<string, number>();
    for (const f of frames) {
      const src = [...f.subarray(6, 12)].map((b) => hex(b, 2)).join(":");
      const tpid = f.readUInt16BE(12);
      if (tpid !== 0x8100) {
        bad.push(`untagged (type ${hex(tpid, 4)}) from ${src}`);
        continue;
      }
      const tci = f.readUInt16BE(14);
      const vid = tci & 0xfff;
      const inner = f.readUInt16BE(16);
      if (vid !== HOST_VID[src]) bad.push(`VID ${vid} from ${src}`);
      if (tci >> 12 !== 0) bad.push(`PCP/DEI ${tci >> 12} from ${src} (entered untagged: PCP 0)`);
      const proto = inner === 0x0806 ? "arp" : inner === 0x0800 ? (f[18 + 9] === 1 ? "icmp" : f[18 + 9] === 6 ? "tcp" : "ip") : hex(inner, 4);
      const key = `${vid}/${src}/${proto}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    expect(bad, `${frames.length} frames`).toEqual([]);
    // both directions of ARP, ICMP and TCP of each VLAN crossed the trunk
    for (const h of ["a10", "b10", "a20", "b20"] as const) {
      const vid = HOST_VID[MAC[h]];
      for (const proto of ["arp", "icmp"]) expect(seen.get(`${vid}/${MAC[h]}/${proto}`), `${h} ${proto}: ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    }
    for (const h of ["a10", "b10", "a20", "b20"] as const) expect(seen.get(`${HOST_VID[MAC[h]]}/${MAC[h]}/tcp`), h).toBeGreaterThan(0);
  });

  it("a frame tagged VID 20 PCP 5 into a trunk keeps PCP 5 out of the trunk and a default port; access ports get it untagged", async () => {
    const marker = newMarker();
    const collect = await captures(marker, [
      ["trunk", B, "dom0", "peth0", 2], ["inj8", A, "inj8", "eth0", 2], ["a20", A, "h20", "eth0", 2], ["b20", B, "h20", "eth0", 2],
      ["a10", A, "h10", "eth0"], ["b10", B, "h10", "eth0"],
    ]);
    await inject(A, "inj9", [rawFrame(BCAST, "02:00:00:40:01:09", 0xa014, marker)], 2);
    const got = await collect();
    const dump = JSON.stringify(got);
    expect(got.trunk.map((c) => [c.tpid, c.tci]), dump).toEqual([[0x8100, 0xa014], [0x8100, 0xa014]]);
    expect(got.inj8.map((c) => [c.tpid, c.tci]), dump).toEqual([[0x8100, 0xa014], [0x8100, 0xa014]]);
    for (const h of ["a20", "b20"]) expect(got[h].map((c) => c.tci), `${h}: ${dump}`).toEqual([null, null]);
    expect(got.a10, dump).toEqual([]);
    expect(got.b10, dump).toEqual([]);
  });

  it("a tagged frame on an access port is dropped and counted (tagged_on_access)", async () => {
    expect(await vlanSet(A, "vif9.0", ["--access", "10"])).toEqual({ port: "vif9.0", mode: "access", vlans: [10], native: 10 });
    const before = (await stats(A, "vif9.0")).tagged_on_access ?? 0;
    const marker = newMarker();
    const collect = await captures(marker, [["a10", A, "h10", "eth0"], ["a20", A, "h20", "eth0"], ["inj8", A, "inj8", "eth0"], ["trunk", B, "dom0", "peth0"]]);
    await inject(A, "inj9", [rawFrame(BCAST, "02:00:00:40:02:09", 10, marker), rawFrame(BCAST, "02:00:00:40:02:09", 0xa014, marker)], 2);
    const got = await collect();
    expect(got, "nothing may leave the bridge").toEqual({ a10: [], a20: [], inj8: [], trunk: [] });
    const counted = await waitFor(async () => (await stats(A, "vif9.0")).tagged_on_access - before === 4, 3_000);
    expect(counted, JSON.stringify(await stats(A, "vif9.0"))).toBe(true);
    expect((await A.cliJson<MacEntry[]>(["showmacs", BRIDGE])).filter((e) => e.mac === "02:00:00:40:02:09")).toEqual([]);
  });

  it("a priority-tagged frame (VID 0, PCP 3) on an access port is accepted: untagged to access ports, PCP 3 kept on the trunk", async () => {
    await vlanSet(A, "vif9.0", ["--access", "10"]);
    const before = await stats(A, "vif9.0");
    const marker = newMarker();
    const collect = await captures(marker, [
      ["a10", A, "h10", "eth0", 2], ["b10", B, "h10", "eth0", 2], ["a20", A, "h20", "eth0"], ["inj8", A, "inj8", "eth0", 2],
      ["trunk", B, "dom0", "peth0", 2],
    ]);
    await inject(A, "inj9", [rawFrame(BCAST, "02:00:00:40:03:09", 0x6000, marker)], 2);
    const got = await collect();
    const dump = JSON.stringify(got);
    expect(got.a10.map((c) => c.tci), dump).toEqual([null, null]);
    expect(got.b10.map((c) => c.tci), dump).toEqual([null, null]);
    expect(got.trunk.map((c) => c.tci), dump).toEqual([0x600a, 0x600a]);
    expect(got.inj8.map((c) => c.tci), dump).toEqual([0x600a, 0x600a]);
    expect(got.a20, dump).toEqual([]);
    const after = await stats(A, "vif9.0");
    for (const k of ["tagged_on_access", "vlan_not_member", "untagged_no_native"]) expect(after[k], k).toBe(before[k]);
    const macs = await A.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.filter((e) => e.mac === "02:00:00:40:03:09").map((e) => [e.port, e.vlan])).toEqual([["vif9.0", 10]]);
  });

  it("with allow_stacked, an 802.1ad (0x88a8) frame on an access port is untagged traffic: kept with its TPID, C-tagged on the trunk", async () => {
    await vlanSet(A, "vif9.0", ["--access", "10"]);
    const before = await stats(A, "vif9.0");
    const marker = newMarker();
    const collect = await captures(marker, [["a10", A, "h10", "eth0", 1], ["trunk", B, "dom0", "peth0", 1], ["a20", A, "h20", "eth0"]]);
    // the kernel strips the S-tag on vif9.0's receive; the daemon must re-insert it with TPID 0x88a8
    await inject(A, "inj9", [rawFrame(BCAST, "02:00:00:40:06:09", 0x0014, marker, 0x88a8)], 1);
    const got = await collect();
    const dump = JSON.stringify(got);
    expect(got.a10.map((c) => [c.tpid, c.tci]), dump).toEqual([[0x88a8, 0x0014]]);
    expect(got.trunk.map((c) => [c.tpid, c.tci]), dump).toEqual([[0x8100, 0x000a]]); // the outer tag; the S-tag follows
    expect(got.a20, dump).toEqual([]);
    expect((await stats(A, "vif9.0")).tagged_on_access).toBe(before.tagged_on_access);
    expect((await stats(A, "vif9.0")).stacked_tag).toBe(before.stacked_tag);
  });

  it("on a trunk without native VLAN: a disallowed VID is dropped (vlan_not_member), an untagged frame too (untagged_no_native)", async () => {
    await vlanSet(A, "vif9.0", ["--trunk", "10,20"]);
    const before = await stats(A, "vif9.0");
    const marker = newMarker();
    const collect = await captures(marker, [["a10", A, "h10", "eth0"], ["a20", A, "h20", "eth0"], ["inj8", A, "inj8", "eth0"], ["trunk", B, "dom0", "peth0"]]);
    await inject(A, "inj9", [
      rawFrame(BCAST, "02:00:00:40:04:09", 30, marker),
      rawFrame(BCAST, "02:00:00:40:04:09", null, marker),
      rawFrame(BCAST, "02:00:00:40:04:09", 0x2000, marker), // priority-tagged counts as untagged
    ], 2);
    const got = await collect();
    expect(got, "nothing may leave the bridge").toEqual({ a10: [], a20: [], inj8: [], trunk: [] });
    const ok = await waitFor(async () => {
      const d = await stats(A, "vif9.0");
      return d.vlan_not_member - before.vlan_not_member === 2 && d.untagged_no_native - before.untagged_no_native === 4;
    }, 3_000);
    expect(ok, `before ${JSON.stringify(before)} after ${JSON.stringify(await stats(A, "vif9.0"))}`).toBe(true);
  });

  it("the same MAC in two VLANs has two FDB entries (showmacs -j vlan field), on both bridges", async () => {
    await vlanSet(A, "vif9.0", ["--trunk", "10,20"]);
    const mac = "02:00:00:40:05:09";
    await inject(A, "inj9", [rawFrame(BCAST, mac, 10, newMarker()), rawFrame(BCAST, mac, 20, newMarker())], 1);
    const entries = async (lab: Lab) =>
      (await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE])).filter((e) => e.mac === mac).map((e) => `${e.port}/${e.vlan}`).sort();
    expect(await waitFor(async () => (await entries(A)).length === 2, 3_000)).toBe(true);
    expect(await entries(A)).toEqual(["vif9.0/10", "vif9.0/20"]);
    expect(await waitFor(async () => (await entries(B)).length === 2, 3_000)).toBe(true);
    expect(await entries(B)).toEqual(["peth0/10", "peth0/20"]);
  });

  it("native VLAN: a trunk with native_vlan 10 takes untagged frames into VLAN 10 and sends VLAN 10 untagged", async () => {
    expect(await vlanSet(A, "vif9.0", ["--trunk", "10,20", "--native", "10"])).toEqual({ port: "vif9.0", mode: "trunk", vlans: [10, 20], native: 10 });
    // inj9's kernel stack speaks untagged only: it reaches VLAN 10 on both sides, not VLAN 20
    await A.ip("inj9", ["addr", "add", `${IP.inj9}/24`, "dev", "eth0"]);
    for (const to of [IP.a10, IP.b10]) {
      const r = await A.pingUntil("inj9", to, 10_000);
      expect(r.ok, `inj9 -> ${to}: ${r.output}\n${logs()}`).toBe(true);
    }
    expect((await A.ping("inj9", IP.a20, 2)).ok).toBe(false);
    // on the wire of the native trunk: VLAN 10 untagged, VLAN 20 tagged
    const marker = newMarker();
    const collect = await captures(marker, [["inj9", A, "inj9", "eth0", 2]]);
    await Promise.all([
      inject(A, "h10", [rawFrame(BCAST, MAC.a10, null, marker)], 1),
      inject(B, "h20", [rawFrame(BCAST, MAC.b20, null, marker)], 1),
    ]);
    const got = (await collect()).inj9;
    const bySrc = Object.fromEntries(got.map((c) => [c.src, c.tci]));
    expect(bySrc, JSON.stringify(got)).toEqual({ [MAC.a10]: null, [MAC.b20]: 20 });
    await A.ip("inj9", ["addr", "flush", "dev", "eth0"]);
  });

  it("addif --kind attach --access 20 puts a new port into VLAN 20 before it forwards; delif removes it", async () => {
    await A.addNs("h7");
    await A.exec("h7", ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    await A.addVeth("dom0", "vif7.0", "h7", "eth0");
    await A.ip("dom0", ["link", "set", "dev", "vif7.0", "up"]);
    await A.configureHost("h7", "eth0", "198.18.40.7", undefined, "02:00:00:40:00:07");
    const add = await A.cli(["addif", BRIDGE, "vif7.0", "--kind", "attach", "--access", "20"]);
    expect(add.code, add.stderr).toBe(0);
    try {
      const show = await A.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
      expect(show.find((e) => e.port === "vif7.0")).toEqual({ port: "vif7.0", mode: "access", vlans: [20], native: 20 });
      for (const to of [IP.a20, IP.b20]) expect((await A.pingUntil("h7", to, 10_000)).ok, `h7 -> ${to}\n${logs()}`).toBe(true);
      expect((await A.ping("h7", IP.a10, 2)).ok).toBe(false);
      const macs = await A.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
      expect(macs.filter((e) => e.mac === "02:00:00:40:00:07").map((e) => `${e.port}/${e.vlan}`)).toEqual(["vif7.0/20"]);
    } finally {
      expect((await A.cli(["delif", BRIDGE, "vif7.0"])).code).toBe(0);
    }
  });

  it("vlan set at runtime: moving b10's port from VLAN 10 to 20 changes who it reaches and flushes its VLAN 10 entries", async () => {
    expect((await pingUntil("b10", IP.a10, 5_000)).ok).toBe(true);
    const onPort = async () =>
      (await B.cliJson<MacEntry[]>(["showmacs", BRIDGE])).filter((e) => e.port === "vif1.0").map((e) => `${e.mac}/${e.vlan}`);
    expect(await onPort()).toEqual([`${MAC.b10}/10`]);

    expect(await vlanSet(B, "vif1.0", ["--access", "20"])).toEqual({ port: "vif1.0", mode: "access", vlans: [20], native: 20 });
    // entries in the VLAN the port left are flushed at once (b10 may already have been learned again in VLAN 20)
    expect((await onPort()).filter((e) => e.endsWith("/10"))).toEqual([]);
    const show = await B.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    expect(show.find((e) => e.port === "vif1.0")).toEqual({ port: "vif1.0", mode: "access", vlans: [20], native: 20 });
    try {
      for (const to of [IP.b20, IP.a20]) {
        const r = await pingUntil("b10", to, 10_000);
        expect(r.ok, `b10 (now VLAN 20) -> ${to}: ${r.output}\n${logs()}`).toBe(true);
      }
      expect((await ping("b10", IP.a10)).ok, "b10 must no longer reach VLAN 10").toBe(false);
      expect(await onPort()).toEqual([`${MAC.b10}/20`]);
    } finally {
      await vlanSet(B, "vif1.0", ["--access", "10"]);
    }
    expect((await pingUntil("b10", IP.a10, 10_000)).ok, "back in VLAN 10").toBe(true);
    expect((await ping("b10", IP.b20)).ok).toBe(false);
  });
});
