// Privileged end-to-end tests of VXLAN ports (issue 15): three tapbridge "hosts" (namespaces, each with its own daemon
// and two VMs, one in VLAN 10 and one in VLAN 20) across a routed underlay, plus a fourth host that runs no tapbridge
// at all (a kernel bridge and an iproute2 vxlan netdev). VNI 10010 (VLAN 10) uses head-end replication over the
// routed underlay; VNI 10020 (VLAN 20) uses a multicast group on a shared L2 segment (a kernel bridge in the router
// namespace), since routing multicast between namespaces would need a multicast router. Every VM is in ONE IP subnet,
// so the VNI is the only thing that separates them. Needs root and `ip netns`; skips with the reason otherwise.
//
//                          routed underlay, MTU 1600 (rt forwards between the /24s)
//   h1 dom0 u0 198.18.21.1 ---- r1 .21.254 +                        + r4 .24.254 ---- u0 198.18.24.1 kernel host K
//   h2 dom0 u0 198.18.22.1 ---- r2 .22.254 +-- rt (ip_forward=1) ---+                 vx10010 (iproute2) + br10
//   h3 dom0 u0 198.18.23.1 ---- r3 .23.254 +      seg: kernel bridge (MTU 1500)       + vk0 ~~ vma eth0 .30.4
//   hN dom0 m0 198.18.29.N ---- mN ------------- (shared L2 segment, group 239.1.1.20)
//
//   on each tapbridge host N (daemon in hN dom0, bridge xenbr0):
//     vif1.0 (TAP, access 10) -> vma eth0 198.18.30.N   2001:db8:30::N      vx10010 vni 10010 vlan 10 local .2N.1
//     vif2.0 (TAP, access 20) -> vmb eth0 198.18.30.1N  2001:db8:30::1N     vx10020 vni 10020 vlan 20 group via m0
//   h1 and h2 start without h3 among their remotes: `vxlan remote add` brings it in at runtime. h1 and h2 also have
//   IPv6 on u0 (2001:db8:2N::1/64, router ::fe): vx6060 (VLAN 60) is added over it at runtime.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_MAIN, Lab, PY_RAW_CAPTURE, PYTHON, run, tcpTransfer, waitFor } from "./helpers.js";
import { probeVxlan } from "./vxlan-helpers.js";
import type { PortStats, ShowBridge, VxlanShow } from "../support/json-shapes.js";

const support = probeVxlan();
if (!support.ok) console.warn(`netns VXLAN tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const HOSTS = [1, 2, 3] as const;
type HostNo = 1 | 2 | 3;
const UNDERLAY = (n: number): string => `198.18.2${n}.1`;
const SEGMENT = (n: number): string => `198.18.29.${n}`;
const GROUP = "239.1.1.20";
/** IPv6 underlay addresses of hosts 1 and 2 (the router is ::fe in each /64). */
const U6 = (n: number): string => `2001:db8:2${n}::1`;
/** VM in VLAN 10 / VNI 10010 on host n (n = 4: the kernel host's VM). */
const VMA = (n: number): { v4: string; v6: string } => ({ v4: `198.18.30.${n}`, v6: `2001:db8:30::${n}` });
/** VM in VLAN 20 / VNI 10020 on host n. */
const VMB = (n: number): { v4: string; v6: string } => ({ v4: `198.18.30.1${n}`, v6: `2001:db8:30::1${n}` });
const MB = 50;

describe.skipIf(!support.ok)("VXLAN: three tapbridge hosts and a kernel VTEP over a routed underlay" + skipNote, () => {
  const H = new Map<HostNo, Lab>();
  let K: Lab;
  const h = (n: HostNo): Lab => H.get(n)!;
  const logs = (): string => HOSTS.map((n) => h(n).daemonLog(12)).join("\n");

  async function portStats(n: HostNo, port: string): Promise<PortStats> {
    const s = await h(n).cliJson<{ bridge: string; ports: PortStats[] }[]>(["stats"]);
    const p = s.find((b) => b.bridge === BRIDGE)?.ports.find((x) => x.name === port);
    if (!p) throw new Error(`no stats for ${port}: ${JSON.stringify(s)}`);
    return p;
  }

  function vxlanEntry(n: HostNo, remotes: number[]): object[] {
    return [
      { name: "vx10010", vni: 10010, vlan: 10, local: UNDERLAY(n), remotes: remotes.map(UNDERLAY) },
      // persist on host 3: its netdev must outlive the daemon, the other must not
      { name: "vx10020", vni: 10020, vlan: 20, local: SEGMENT(n), group: GROUP, dev: "m0", ...(n === 3 ? { persist: true } : {}) },
    ];
  }

  beforeAll(async () => {
    for (const n of HOSTS) H.set(n, new Lab(`vxlan-h${n}`));
    K = new Lab("vxlan-k");
    for (const n of HOSTS) for (const node of ["dom0", "vma", "vmb"]) await h(n).addNs(node);
    await h(1).addNs("rt");
    for (const node of ["dom0", "vma"]) await K.addNs(node);
    // no IPv6 on the underlay: the frame counts at the underlay are the overlay's alone (the VMs keep IPv6)
    const quiet = ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"];
    for (const n of HOSTS) await h(n).exec("dom0", quiet);
    await K.exec("dom0", quiet);
    await h(1).exec("rt", quiet);
    await h(1).exec("rt", ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    // the shared L2 segment for the multicast underlay
    await h(1).ip("rt", ["link", "add", "seg", "type", "bridge", "mcast_snooping", "0"]);
    await h(1).ip("rt", ["link", "set", "seg", "up"]);
    const underlays: [Lab, number][] = [...HOSTS.map((n) => [h(n), n] as [Lab, number]), [K, 4]];
    for (const [lab, n] of underlays) {
      if (lab === h(1)) await lab.addVeth("rt", `r${n}`, "dom0", "u0");
      else await h(1).addVethTo("rt", `r${n}`, lab, "dom0", "u0");
      for (const [l, node, dev] of [[h(1), "rt", `r${n}`], [lab, "dom0", "u0"]] as const) await l.ip(node, ["link", "set", dev, "mtu", "1600", "up"]);
      await h(1).ip("rt", ["addr", "add", `198.18.2${n}.254/24`, "dev", `r${n}`]);
      await lab.ip("dom0", ["addr", "add", `${UNDERLAY(n)}/24`, "dev", "u0"]);
      await lab.ip("dom0", ["route", "add", "198.18.16.0/20", "via", `198.18.2${n}.254`]);
      if (n === 4) continue;
      if (lab === h(1)) await lab.addVeth("rt", `m${n}`, "dom0", "m0");
      else await h(1).addVethTo("rt", `m${n}`, lab, "dom0", "m0");
      await h(1).ip("rt", ["link", "set", `m${n}`, "master", "seg", "up"]);
      await lab.ip("dom0", ["addr", "add", `${SEGMENT(n)}/24`, "dev", "m0"]);
      await lab.ip("dom0", ["link", "set", "m0", "up"]);
    }
    // an IPv6 underlay too, between hosts 1 and 2 only (on u0, next to IPv4)
    for (const n of [1, 2] as const) {
      await h(n).exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.u0.disable_ipv6=0"]);
      await h(1).exec("rt", ["sysctl", "-qw", `net.ipv6.conf.r${n}.disable_ipv6=0`]);
      await h(1).ip("rt", ["addr", "add", `2001:db8:2${n}::fe/64`, "dev", `r${n}`, "nodad"]);
      await h(n).ip("dom0", ["addr", "add", `${U6(n)}/64`, "dev", "u0", "nodad"]);
      await h(n).ip("dom0", ["-6", "route", "add", "2001:db8::/32", "via", `2001:db8:2${n}::fe`]);
    }
    // the kernel host: iproute2 only, one kernel bridge per VNI (no VLAN filtering in this kernel)
    await K.ip("dom0", ["link", "add", "vx10010", "type", "vxlan", "id", "10010", "local", UNDERLAY(4), "dstport", "4789"]);
    for (const n of HOSTS) await run("bridge", ["-n", K.ns("dom0"), "fdb", "append", "00:00:00:00:00:00", "dev", "vx10010", "dst", UNDERLAY(n)]);
    await K.ip("dom0", ["link", "add", "br10", "type", "bridge"]);
    await K.addVeth("dom0", "vk0", "vma", "eth0");
    for (const dev of ["vx10010", "vk0"]) await K.ip("dom0", ["link", "set", dev, "master", "br10", "up"]);
    await K.ip("dom0", ["link", "set", "br10", "up"]);
    await K.configureHost("vma", "eth0", VMA(4).v4, VMA(4).v6);
    // h1 and h2 do not know h3 yet; h3 knows everybody; everybody knows the kernel host
    const remotes: Record<HostNo, number[]> = { 1: [2, 4], 2: [1, 4], 3: [1, 2, 4] };
    for (const n of HOSTS) {
      h(n).writeConfig({
        control_socket: h(n).socketPath,
        bridges: [{ name: BRIDGE, ports: [{ name: "vif1.0", vlan: 10 }, { name: "vif2.0", vlan: 20 }], vxlan: vxlanEntry(n, remotes[n]) }],
      });
    }
    await Promise.all(HOSTS.map((n) => h(n).startDaemon("dom0")));
    for (const n of HOSTS) {
      for (const [vif, node, addr] of [["vif1.0", "vma", VMA(n)], ["vif2.0", "vmb", VMB(n)]] as const) {
        if (!(await waitFor(() => h(n).linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif} on h${n}\n${h(n).daemonLog()}`);
        await h(n).moveLink("dom0", vif, node, "eth0");
        await h(n).configureHost(node, "eth0", addr.v4, addr.v6);
      }
    }
  }, 120_000);

  afterAll(async () => {
    const labs = [...H.values(), K].filter((l): l is Lab => l !== undefined);
    for (const lab of labs) await lab.destroy();
    for (const lab of labs) expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });

  it("vxlan show -j: vni, local, remotes or group, vlan, state; the netdevs are the kernel's, with all-zeros FDB entries", async () => {
    const show = await h(1).cliJson<VxlanShow[]>(["vxlan", "show", BRIDGE]);
    const byName = new Map(show.map((v) => [v.name, v]));
    expect(byName.get("vx10010")).toMatchObject({ vni: 10010, local: UNDERLAY(1), remotes: [UNDERLAY(2), UNDERLAY(4)], group: null, vlan: 10, port: 4789, state: "up", mtu: 1500, mtu_short: false });
    expect(byName.get("vx10020")).toMatchObject({ vni: 10020, local: SEGMENT(1), remotes: [], group: GROUP, dev: "m0", vlan: 20, state: "up" });
    const d = await h(1).ip("dom0", ["-d", "link", "show", "dev", "vx10010"]);
    expect(d.stdout).toMatch(/vxlan id 10010 local 198\.18\.21\.1 .*dstport 4789/);
    const fdb = await run("bridge", ["-n", h(1).ns("dom0"), "fdb", "show", "dev", "vx10010"]);
    for (const n of [2, 4]) expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${UNDERLAY(n)} self permanent`);
    // (entries with a real MAC towards host 3 may exist: the kernel learns them from host 3's floods)
    expect(fdb.stdout).not.toContain(`00:00:00:00:00:00 dst ${UNDERLAY(3)}`);
  });

  it("MTU: the 1500-byte segment cannot carry VLAN 20's overlay at bridge MTU 1500: warned, marked in show, check-config warns", async () => {
    const show = await h(1).cliJson<VxlanShow[]>(["vxlan", "show", BRIDGE]);
    expect(show.find((v) => v.name === "vx10020")).toMatchObject({ mtu: 1450, mtu_short: true });
    const ports = (await h(1).cliJson<ShowBridge[]>(["show"]))[0].ports;
    expect(ports.find((p) => p.name === "vx10020")).toMatchObject({ kind: "vxlan", mtu_short: true });
    expect(ports.find((p) => p.name === "vx10010")).toMatchObject({ kind: "vxlan", mtu_short: false });
    expect(h(1).daemon!.stdout).toMatch(/underlay m0 has MTU 1500, overlay frames of bridge MTU 1500 need 1550/);
    // check-config in the host's namespace, where the underlay is known: exit 0 with a warning for vx10020 only
    const cc = await h(1).exec("dom0", [process.execPath, CLI_MAIN, "check-config", h(1).configPath], { check: false });
    expect(cc.code, cc.stderr).toBe(0);
    expect(cc.stderr).toMatch(/warning: bridges\[0\]\.vxlan\[1\]: underlay m0 has MTU 1500/);
    expect(cc.stderr).not.toMatch(/vxlan\[0\]/);
    // a full-size frame into VNI 10020 is dropped and counted at the vxlan port
    const before = (await portStats(1, "vx10020")).drops.oversize;
    await h(1).exec("vmb", ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1472", VMB(2).v4], { check: false });
    expect((await portStats(1, "vx10020")).drops.oversize).toBeGreaterThanOrEqual(before + 1);
  });

  it("before `vxlan remote add`, host 3 is out of reach from host 1; after it on hosts 1 and 2, it joins", async () => {
    const r = await h(1).ping("vma", VMA(3).v4, 2);
    expect(r.ok, r.output).toBe(false);
    for (const n of [1, 2] as const) {
      const add = await h(n).cli(["vxlan", "remote", "add", BRIDGE, "vx10010", UNDERLAY(3), "-j"]);
      expect(add.code, add.stderr).toBe(0);
      expect((JSON.parse(add.stdout) as VxlanShow).remotes).toContain(UNDERLAY(3));
      const fdb = await run("bridge", ["-n", h(n).ns("dom0"), "fdb", "show", "dev", "vx10010"]);
      expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${UNDERLAY(3)} self permanent`);
    }
    // a second add of the same remote is an error reply, the daemon keeps serving
    const again = await h(1).cli(["vxlan", "remote", "add", BRIDGE, "vx10010", UNDERLAY(3)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already a remote/);
    const joined = await h(1).pingUntil("vma", VMA(3).v4, 10_000);
    expect(joined.ok, `${joined.output}\n${logs()}`).toBe(true);
  });

  it("VNI 10010 (head-end replication, routed underlay): VMs on every pair of hosts ping on IPv4 and IPv6", async () => {
    for (const [a, b] of [[1, 2], [1, 3], [2, 3]] as const) {
      for (const fam of ["v4", "v6"] as const) {
        const r = await h(a).pingUntil("vma", VMA(b)[fam], 10_000);
        expect(r.ok, `h${a} -> h${b} ${fam}: ${r.output}\n${logs()}`).toBe(true);
      }
    }
  });

  it("VNI 10020 (multicast group on the shared segment): VMs ping on IPv4 and IPv6", async () => {
    for (const [a, b] of [[1, 2], [2, 3], [3, 1]] as const) {
      for (const fam of ["v4", "v6"] as const) {
        const r = await h(a).pingUntil("vmb", VMB(b)[fam], 10_000);
        expect(r.ok, `h${a} -> h${b} ${fam}: ${r.output}\n${logs()}`).toBe(true);
      }
    }
    const fdb = await run("bridge", ["-n", h(1).ns("dom0"), "fdb", "show", "dev", "vx10020"]);
    expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${GROUP} via m0`);
  });

  it("VMs in different VNIs cannot reach each other (same IP subnet), on one host or across hosts", async () => {
    for (const [from, node, to] of [[1, "vma", VMB(2).v4], [2, "vmb", VMA(3).v4], [1, "vma", VMB(1).v4]] as const) {
      const r = await h(from).ping(node, to, 2);
      expect(r.ok, `h${from} ${node} -> ${to}: ${r.output}`).toBe(false);
    }
  });

  it("interoperability: the kernel host's VM (kernel bridge + iproute2 vxlan) talks to tapbridge's VMs in VNI 10010", async () => {
    for (const n of HOSTS) {
      for (const fam of ["v4", "v6"] as const) {
        const r = await K.pingUntil("vma", VMA(n)[fam], 10_000);
        expect(r.ok, `kernel host -> h${n} ${fam}: ${r.output}\n${logs()}`).toBe(true);
      }
    }
    const r = await K.ping("vma", VMB(1).v4, 2);
    expect(r.ok, r.output).toBe(false);
  });

  it("learning: after the first exchange, unicast from host 1 to host 2 reaches host 2's underlay only", async () => {
    const first = await h(1).pingUntil("vma", VMA(2).v4, 10_000);
    expect(first.ok, first.output).toBe(true);
    const marker = `vxL${Math.random().toString(36).slice(2, 7)}`;
    const COUNT = 20;
    const at2 = h(2).spawn("dom0", [PYTHON, "-c", PY_RAW_CAPTURE, "u0", marker, "8", String(COUNT)], "capture h2 u0");
    const at3 = h(3).spawn("dom0", [PYTHON, "-c", PY_RAW_CAPTURE, "u0", marker, "4"], "capture h3 u0");
    await Promise.all([at2.waitForOutput("ready"), at3.waitForOutput("ready")]);
    const pattern = Buffer.from(marker).toString("hex");
    const p = await h(1).exec("vma", ["ping", "-n", "-q", "-c", String(COUNT), "-i", "0.05", "-W", "1", "-p", pattern, VMA(2).v4], { check: false, timeoutMs: 20_000 });
    expect(p.code, p.stdout + p.stderr).toBe(0);
    await Promise.all([at2.wait(20_000), at3.wait(20_000)]);
    const frames = (bg: typeof at2): unknown[] => (JSON.parse(bg.stdout.trim().split("\n").pop()!) as { frames: unknown[] }).frames;
    expect(frames(at2).length, at2.stderr).toBeGreaterThanOrEqual(COUNT);
    expect(frames(at3), at3.stderr).toEqual([]);
  });

  it(`${MB} MB of TCP between VMs on two hosts arrive intact with offloads on, as GSO super-frames through the vxlan port`, async () => {
    const port = 5201;
    const before = await portStats(1, "vx10010");
    const t = await tcpTransfer(h(1), "vma", h(2), "vma", VMA(2).v4, port, MB, logs);
    expect(t.senderCode, t.diag).toBe(0);
    expect(t.got?.bytes, t.diag).toBe(MB << 20);
    expect(t.got?.sha256, t.diag).toBe(t.sent?.sha256);
    const after = await portStats(1, "vx10010");
    const frames = after.tx_packets - before.tx_packets;
    const bytes = after.tx_bytes - before.tx_bytes;
    // without the vnet-header path every frame would be at most 1514 bytes
    expect(bytes / frames, `${bytes} bytes in ${frames} frames`).toBeGreaterThan(3000);
    const seconds = t.sent?.seconds ?? NaN;
    console.log(`vxlan TCP ${MB} MB in ${seconds.toFixed(2)} s (${((MB * 8 * 1.048576) / seconds).toFixed(0)} Mbit/s, ` +
      `${(bytes / frames).toFixed(0)} bytes per frame sent to vx10010)`);
  });

  it("reload: a vxlan entry's remotes change in place (same netdev, traffic keeps flowing), a new entry is created", async () => {
    const ifindex = (await h(1).link("dom0", "vx10010"))!.ifindex;
    const file = join(h(1).dir, "reload.yaml");
    const vx = vxlanEntry(1, [2, 3]) as Record<string, unknown>[];
    writeFileSync(file, JSON.stringify({
      control_socket: h(1).socketPath,
      state_dir: h(1).stateDir,
      bridges: [{ name: BRIDGE, ports: [{ name: "vif1.0", vlan: 10 }, { name: "vif2.0", vlan: 20 }],
        vxlan: [...vx, { name: "vx99", vni: 99, vlan: 99, local: UNDERLAY(1), remotes: [UNDERLAY(2)] }] }],
    }));
    const dry = await h(1).cli(["reload", "--config", file, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim().split("\n")).toEqual([
      `~ vxlan ${BRIDGE}/vx10010 remotes +${UNDERLAY(3)} -${UNDERLAY(4)}`,
      `+ vxlan ${BRIDGE}/vx99 (vni 99, access 99)`,
    ]);
    const r = await h(1).cli(["reload", "--config", file]);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect((await h(1).link("dom0", "vx10010"))!.ifindex).toBe(ifindex);
    const fdb = await run("bridge", ["-n", h(1).ns("dom0"), "fdb", "show", "dev", "vx10010"]);
    expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${UNDERLAY(3)} self permanent`);
    expect(fdb.stdout).not.toContain(`00:00:00:00:00:00 dst ${UNDERLAY(4)}`);
    expect(await h(1).linkExists("dom0", "vx99")).toBe(true);
    const p = await h(1).ping("vma", VMA(2).v4, 2);
    expect(p.ok, p.output).toBe(true);
  });

  it("IPv6 underlay, trunk vxlan port (70 + 4 bytes): added at runtime, VLAN 60 travels tagged inside the tunnel; ping and TCP", async () => {
    for (const n of [1, 2] as const) {
      const other = 3 - n;
      const add = await h(n).cli(["vxlan", "add", BRIDGE, "vx6060", "--vni", "6060", "--trunk", "60", "--local", U6(n), "--remote", U6(other), "-j"]);
      expect(add.code, add.stderr).toBe(0);
      // the underlay is found from the local address: 1600 >= 1500 + 70 + 4
      expect(JSON.parse(add.stdout)).toMatchObject({ local: U6(n), remotes: [U6(other)], vlan: null, vlan_mode: "trunk", mtu: 1500, mtu_short: false, underlay: "u0", underlay_mtu: 1600 });
      const addif = await h(n).cli(["addif", BRIDGE, "vif6.0", "--access", "60"]);
      expect(addif.code, addif.stderr).toBe(0);
      await h(n).addNs("vm6");
      if (!(await waitFor(() => h(n).linkExists("dom0", "vif6.0"), 10_000))) throw new Error(`no TAP vif6.0 on h${n}`);
      await h(n).moveLink("dom0", "vif6.0", "vm6", "eth0");
      await h(n).configureHost("vm6", "eth0", `198.18.36.${n}`);
    }
    const d = await h(1).ip("dom0", ["-d", "link", "show", "dev", "vx6060"]);
    expect(d.stdout).toMatch(/vxlan id 6060 local 2001:db8:21::1 /);
    const fdb = await run("bridge", ["-n", h(1).ns("dom0"), "fdb", "show", "dev", "vx6060"]);
    expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${U6(2)} self permanent`);
    const r = await h(1).pingUntil("vm6", "198.18.36.2", 10_000);
    expect(r.ok, `${r.output}\n${logs()}`).toBe(true);
    // on h2's underlay: IPv6 UDP 4789 whose inner frame carries the 802.1Q tag of VLAN 60 (tcpdump decodes VXLAN)
    const dump = h(2).spawn("dom0", ["tcpdump", "-nn", "-e", "-l", "-i", "u0", "-c", "2", "ip6 and udp dst port 4789"], "tcpdump h2 u0");
    await waitFor(() => dump.stderr.includes("listening on") || !dump.running, 10_000, 50);
    await h(1).ping("vm6", "198.18.36.2", 3);
    await dump.wait(10_000);
    expect(dump.stdout, dump.stderr).toMatch(/VXLAN.*vni 6060/);
    expect(dump.stdout, dump.stderr).toMatch(/802\.1Q.*vlan 60/);
    // GSO frames that gain a tag on the way into the tunnel and lose it on the way out keep correct checksums
    const t = await tcpTransfer(h(1), "vm6", h(2), "vm6", "198.18.36.2", 5260, 8, logs);
    expect(t.senderCode, t.diag).toBe(0);
    expect(t.got?.bytes, t.diag).toBe(8 << 20);
    expect(t.got?.sha256, t.diag).toBe(t.sent?.sha256);
  });

  it("a vxlan netdev deleted behind the daemon's back is created again, remotes included, and carries traffic", async () => {
    const old = (await h(2).link("dom0", "vx10010"))!.ifindex;
    await h(2).ip("dom0", ["link", "del", "vx10010"]);
    const back = await waitFor(async () => {
      const l = await h(2).link("dom0", "vx10010");
      return l !== undefined && l.ifindex !== old;
    }, 10_000);
    expect(back, h(2).daemonLog()).toBe(true);
    const fdb = await run("bridge", ["-n", h(2).ns("dom0"), "fdb", "show", "dev", "vx10010"]);
    for (const n of [1, 3, 4]) expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${UNDERLAY(n)} self permanent`);
    const r = await h(1).pingUntil("vma", VMA(2).v4, 10_000);
    expect(r.ok, `${r.output}\n${logs()}`).toBe(true);
    expect((await h(2).cliJson<VxlanShow[]>(["vxlan", "show", BRIDGE])).find((v) => v.name === "vx10010")?.state).toBe("up");
  });

  it("vxlan add and del at runtime; on stop the daemon removes its netdevs, except the one with persist: true", async () => {
    const add = await h(3).cli(["vxlan", "add", BRIDGE, "vx77", "--vni", "77", "--local", UNDERLAY(3), "--remote", UNDERLAY(1), "--vlan", "77",
      "--dstport", "8472", "--ttl", "9", "--no-kernel-learning", "-j"]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ name: "vx77", vni: 77, vlan: 77, port: 8472, remotes: [UNDERLAY(1)], state: "up", kernel_learning: false });
    // the options reach the kernel's netdev
    const d = await h(3).ip("dom0", ["-d", "link", "show", "dev", "vx77"]);
    expect(d.stdout).toMatch(/vxlan id 77 local 198\.18\.23\.1 .*dstport 8472 nolearning ttl 9 /);
    const bad = await h(3).cli(["vxlan", "add", BRIDGE, "vx78", "--vni", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/vxlan\.vni: must be an integer 1\.\.16777215/);
    const del = await h(3).cli(["vxlan", "del", BRIDGE, "vx77"]);
    expect(del.code, del.stderr).toBe(0);
    expect(await h(3).linkExists("dom0", "vx77")).toBe(false);
    // a runtime change that the restart must replay (issue 11's journal)
    const ra = await h(3).cli(["vxlan", "remote", "add", BRIDGE, "vx10010", "198.18.22.77"]);
    expect(ra.code, ra.stderr).toBe(0);
    const exit = await h(3).stopDaemon();
    expect(exit.code).toBe(0);
    expect(await h(3).linkExists("dom0", "vx10010")).toBe(false);
    expect(await h(3).linkExists("dom0", "vx10020")).toBe(true);
    // the next start adopts the persistent netdev (same VNI) and drops an FDB destination the config does not have
    await run("bridge", ["-n", h(3).ns("dom0"), "fdb", "append", "00:00:00:00:00:00", "dev", "vx10020", "dst", "198.18.29.99"]);
    const ifindex = (await h(3).link("dom0", "vx10020"))!.ifindex;
    await h(3).startDaemon("dom0");
    const show = await h(3).cliJson<VxlanShow[]>(["vxlan", "show", BRIDGE]);
    expect(show.find((v) => v.name === "vx10020")).toMatchObject({ state: "up", group: GROUP });
    expect((await h(3).link("dom0", "vx10020"))!.ifindex).toBe(ifindex);
    const fdb = await run("bridge", ["-n", h(3).ns("dom0"), "fdb", "show", "dev", "vx10020"]);
    expect(fdb.stdout).toContain(`00:00:00:00:00:00 dst ${GROUP} via m0`);
    expect(fdb.stdout).not.toContain("198.18.29.99");
    expect(h(3).daemon!.stdout).toMatch(/"removed_remotes":\["198\.18\.29\.99"\].*adopting existing vxlan netdev/);
    // the journal replayed the runtime remote onto the re-created vx10010
    expect(show.find((v) => v.name === "vx10010")?.remotes).toEqual([UNDERLAY(1), UNDERLAY(2), UNDERLAY(4), "198.18.22.77"]);
    const fdb10 = await run("bridge", ["-n", h(3).ns("dom0"), "fdb", "show", "dev", "vx10010"]);
    expect(fdb10.stdout).toContain("00:00:00:00:00:00 dst 198.18.22.77 self permanent");
    // save-config writes the vxlan entries as they are now, in YAML that check-config accepts
    const out = join(h(3).dir, "saved.yaml");
    const sc = await h(3).cli(["save-config", out]);
    expect(sc.code, sc.stderr).toBe(0);
    const saved = parseYaml(readFileSync(out, "utf8")) as { bridges: { ports: { name: string }[]; vxlan: Record<string, unknown>[] }[] };
    expect(saved.bridges[0].ports.map((p) => p.name)).toEqual(["vif1.0", "vif2.0"]);
    expect(saved.bridges[0].vxlan).toEqual([
      { name: "vx10010", vni: 10010, local: UNDERLAY(3), remotes: [UNDERLAY(1), UNDERLAY(2), UNDERLAY(4), "198.18.22.77"], vlan: 10 },
      { name: "vx10020", vni: 10020, local: SEGMENT(3), group: GROUP, dev: "m0", persist: true, vlan: 20 },
    ]);
    const cc = await run(process.execPath, [CLI_MAIN, "check-config", out], { check: false });
    expect(cc.code, cc.stderr).toBe(0);
  });
});
