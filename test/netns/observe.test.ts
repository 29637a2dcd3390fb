// Privileged end-to-end tests of issue 14: `tapbridge capture` read back by tshark, `tapbridge trace`, and port
// mirroring with an IDS namespace on the mirror output. One daemon in dom0; VMs on TAPs the daemon creates (moved
// into their namespaces), the IDS on an attached veth, an upstream namespace on the uplink veth (a trunk). This
// kernel has no 8021q: tagged frames are injected and captured with AF_PACKET sockets (python3). Needs root,
// `ip netns` and tshark (scripts/setup-test-deps.sh installs it); skips with the reason otherwise.
//
//   vm1 eth0 (TAP vif1.0, access 10) 198.18.44.1 --+
//   vm2 eth0 (TAP vif2.0, access 10) 198.18.44.2 --+
//   vm3 eth0 (TAP vif3.0, access 20) 198.18.44.3 --+-- xenbr0 (dom0) -- peth0 (uplink, trunk 10,20,99) ~~ up eth0
//   vm4 eth0 (TAP vif4.0, access 20) 198.18.44.4 --+
//   ids eth0 ~~ vif9.0 (attach; output of mirror m0: vif1.0,vif2.0 both)
//
// The CLI runs in the root namespace and reaches the daemon through its path-bound control socket.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Background, CLI_MAIN, Lab, PY_RAW_CAPTURE, PY_RAW_SENDER, PYTHON, canRunNetns, run, waitFor } from "./helpers.js";
import type { PortStats } from "../support/json-shapes.js";

const support = canRunNetns();
const hasTshark = existsSync("/usr/bin/tshark");
const reason = !support.ok ? support.reason : !hasTshark ? "tshark is not installed (scripts/setup-test-deps.sh)" : "";
if (reason !== "") console.warn(`netns observe tests skipped: ${reason}`);
const skipNote = reason === "" ? "" : ` (skipped: ${reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.44.1", vm2: "198.18.44.2", vm3: "198.18.44.3", vm4: "198.18.44.4" };
const MAC = {
  vm1: "02:00:00:44:00:01",
  vm2: "02:00:00:44:00:02",
  vm3: "02:00:00:44:00:03",
  vm4: "02:00:00:44:00:04",
  ids: "02:00:00:44:00:09",
  up: "02:00:00:44:00:0a",
};
type Vm = "vm1" | "vm2" | "vm3" | "vm4";

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, "0");
/** A raw frame as hex: DST <- SRC, optional 802.1Q tag, EtherType 0x88b5, ASCII marker. */
function rawFrame(dst: string, src: string, tci: number | null, marker: string): string {
  const tag = tci === null ? "" : "8100" + hex(tci, 4);
  return (dst + src).replaceAll(":", "") + tag + "88b5" + Buffer.from(marker).toString("hex").padEnd(92, "0");
}
let markerSeq = 0;
const newMarker = (): string => `tbobs-${process.pid}-${++markerSeq}-${Math.random().toString(16).slice(2, 8)}`;

describe.skipIf(reason !== "")("capture, trace and mirrors in a netns lab" + skipNote, () => {
  let lab: Lab;

  /** Starts `tapbridge capture` in the background (root namespace), writing pcapng to a file of the lab. */
  async function startCapture(port: string, args: string[], file: string): Promise<Background> {
    const child = spawn(process.execPath, [CLI_MAIN, "capture", BRIDGE, port, "-w", file, ...args, "--socket", lab.socketPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const bg = new Background(child, `capture ${port}`);
    // running once the daemon has written the section header
    const ok = await waitFor(() => (existsSync(file) && run("stat", ["-c", "%s", file], { check: false }).then((r) => Number(r.stdout) > 0)) || !bg.running, 5_000, 50);
    if (!ok || !bg.running) throw new Error(`capture ${port} did not start (exit ${bg.exitCode}): ${bg.stderr}`);
    return bg;
  }

  /** Ctrl-C a capture; resolves with its stderr report. */
  async function stopCapture(bg: Background): Promise<string> {
    bg.kill("SIGINT");
    await bg.wait(10_000);
    expect(bg.exitCode, bg.stderr).toBe(0);
    return bg.stderr;
  }

  /** tshark -r FILE -T fields: one array of field values per packet. */
  async function fields(file: string, filter: string, names: string[]): Promise<string[][]> {
    const r = await run("tshark", ["-r", file, "-Y", filter, "-T", "fields", ...names.flatMap((n) => ["-e", n])], { check: false, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
    return r.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("\t"));
  }

  async function inject(node: string, frames: string[], count = 1): Promise<void> {
    const r = await lab.exec(node, [PYTHON, "-c", PY_RAW_SENDER, "eth0", String(count), "0.02", ...frames], { check: false, timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`raw sender in ${node}: ${r.stderr}`);
  }

  async function portStats(port: string): Promise<PortStats & { capture_dropped: number }> {
    const s = await lab.cliJson<{ bridge: string; ports: (PortStats & { capture_dropped: number })[] }[]>(["stats"]);
    const p = s.find((b) => b.bridge === BRIDGE)?.ports.find((x) => x.name === port);
    if (!p) throw new Error(`no stats for ${port}`);
    return p;
  }

  beforeAll(async () => {
    lab = new Lab("observe");
    const nodes = ["dom0", "vm1", "vm2", "vm3", "vm4", "ids", "up"];
    for (const n of nodes) await lab.addNs(n);
    for (const n of nodes) await lab.exec(n, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.addVeth("dom0", "vif9.0", "ids", "eth0");
    await lab.addVeth("dom0", "peth0", "up", "eth0");
    for (const i of ["vif9.0", "peth0"]) await lab.ip("dom0", ["link", "set", "dev", i, "up"]);
    await lab.ip("ids", ["link", "set", "dev", "eth0", "address", MAC.ids, "up"]);
    await lab.ip("up", ["link", "set", "dev", "eth0", "address", MAC.up, "up"]);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{
        name: BRIDGE,
        uplink: { interface: "peth0", trunk: [10, 20, 99] },
        ports: [
          { name: "vif1.0", vlan: 10 },
          { name: "vif2.0", vlan: 10 },
          { name: "vif3.0", vlan: 20 },
          { name: "vif4.0", vlan: 20 },
          { name: "vif9.0", kind: "attach" },
        ],
        mirrors: [{ name: "m0", select: { ports: ["vif1.0", "vif2.0"], direction: "both" }, output: "vif9.0" }],
      }],
    });
    await lab.startDaemon("dom0");
    for (const vm of ["vm1", "vm2", "vm3", "vm4"] as Vm[]) {
      const vif = `vif${vm.slice(2)}.0`;
      if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif}\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vif, vm, "eth0");
      await lab.configureHost(vm, "eth0", IP[vm], undefined, MAC[vm]);
    }
    for (const [a, b] of [["vm1", IP.vm2], ["vm3", IP.vm4]] as const) {
      const r = await lab.pingUntil(a, b, 15_000);
      if (!r.ok) throw new Error(`${a} cannot reach ${b}: ${r.output}\n${lab.daemonLog()}`);
    }
  }, 90_000);

  afterAll(async () => {
    if (lab === undefined) return;
    await lab.destroy();
    expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });

  it("capture of a ping on vif1.0: tshark reads the ICMP fields, the EPB direction and nanosecond timestamps", async () => {
    const file = join(lab.dir, "ping.pcapng");
    const bg = await startCapture("vif1.0", [], file);
    const p = await lab.ping("vm1", IP.vm2, 3, { intervalS: 0.05 });
    expect(p.ok, p.output).toBe(true);
    const report = await stopCapture(bg);
    expect(report).toMatch(/(\d+) frames captured, 0 dropped \(capture_dropped\)/);
    const echo = await fields(file, "icmp", ["icmp.type", "ip.src", "ip.dst", "icmp.seq", "frame.packet_flags_direction", "vlan.id", "frame.len"]);
    const requests = echo.filter((f) => f[0] === "8");
    const replies = echo.filter((f) => f[0] === "0");
    expect(requests.map((f) => f[3])).toEqual(["1", "2", "3"]);
    // a request enters the bridge on vif1.0 (inbound), the reply leaves on it (outbound); untagged: an access port
    for (const f of requests) expect(f.slice(1)).toEqual([IP.vm1, IP.vm2, f[3], "0x00000001", "", "98"]);
    for (const f of replies) expect(f.slice(1)).toEqual([IP.vm2, IP.vm1, f[3], "0x00000002", "", "98"]);
    const info = await run("capinfos", ["-a", "-e", "-T", "-r", file], { check: false });
    const ts = await fields(file, "icmp", ["frame.time_epoch"]);
    // nanosecond resolution in the file (if_tsresol 9); the timestamps are real and ordered
    expect((await run("capinfos", [file], { check: false })).stdout).toMatch(/nanoseconds \(9\)/);
    const t = ts.map((x) => Number(x[0]));
    expect(t.every((v, i) => i === 0 || v >= t[i - 1]), info.stdout).toBe(true);
    expect(Math.abs(t[0] - Date.now() / 1000)).toBeLessThan(60);
    expect(ts[0][0]).toMatch(/^\d+\.\d{9}$/);
  });

  it("-w - streams into tshark -r -; the trunk port's frames carry VLAN tags, the access port's do not", async () => {
    // a broadcast ARP from vm1 (access 10) to an address nobody has: flooded to vif2.0 (access) and peth0 (trunk)
    const target = "198.18.44.77";
    const pipe = (port: string): Background => {
      const cmd = `${process.execPath} ${CLI_MAIN} capture ${BRIDGE} ${port} -w - -c 2 --direction out --socket ${lab.socketPath} ` +
        `| tshark -r - -Y 'arp.dst.proto_ipv4 == ${target}' -T fields -e vlan.id -e arp.src.proto_ipv4 -e frame.packet_flags_direction`;
      return new Background(spawn("sh", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] }), `capture pipe ${port}`);
    };
    const started = (): number => (lab.daemonLog(100_000).match(/capture started/g) ?? []).length;
    const n0 = started();
    const trunk = pipe("peth0");
    const access = pipe("vif2.0");
    await waitFor(() => started() >= n0 + 2, 10_000, 50);
    // two ARP requests (arping is not installed: ping makes the kernel resolve)
    await lab.ping("vm1", target, 2, { intervalS: 1 });
    await waitFor(() => !trunk.running && !access.running, 15_000, 100);
    trunk.kill("SIGINT");
    access.kill("SIGINT");
    await Promise.all([trunk.wait(5_000), access.wait(5_000)]);
    const lines = (bg: Background): string[][] => bg.stdout.trimEnd().split("\n").filter((l) => l !== "").map((l) => l.split("\t"));
    expect(lines(trunk).length, trunk.stderr).toBeGreaterThanOrEqual(1);
    for (const l of lines(trunk)) expect(l).toEqual(["10", IP.vm1, "0x00000002"]);
    expect(lines(access).length, access.stderr).toBeGreaterThanOrEqual(1);
    for (const l of lines(access)) expect(l).toEqual(["", IP.vm1, "0x00000002"]);
  });

  it("--dropped records a tagged frame on an access port with its reason as frame.comment; stats has capture_dropped beside drops", async () => {
    const file = join(lab.dir, "dropped.pcapng");
    const plain = join(lab.dir, "plain.pcapng");
    const bg = await startCapture("vif3.0", ["--dropped"], file);
    const bg2 = await startCapture("vif3.0", [], plain); // a second capture of the same port at once
    const before = (await portStats("vif3.0")).drops.tagged_on_access;
    const marker = newMarker();
    await inject("vm3", [rawFrame(MAC.vm4, MAC.vm3, 20, marker)], 2);
    await waitFor(async () => (await portStats("vif3.0")).drops.tagged_on_access >= before + 2, 5_000);
    await Promise.all([stopCapture(bg), stopCapture(bg2)]);
    const dropped = await fields(file, "frame.comment", ["frame.comment", "vlan.id", "eth.src", "frame.packet_flags_direction"]);
    expect(dropped).toEqual([
      ["tagged_on_access", "20", MAC.vm3, "0x00000001"],
      ["tagged_on_access", "20", MAC.vm3, "0x00000001"],
    ]);
    // without --dropped the same frames are not in the capture
    expect(await fields(plain, "vlan", ["frame.number"])).toEqual([]);
    const s = await portStats("vif3.0");
    expect(s.capture_dropped).toBe(0);
    expect("capture_dropped" in s.drops).toBe(false);
  });

  it("the IDS on the mirror output sees exactly the frames between vm1 and vm2, nothing of vm3, nothing else", async () => {
    const m12 = newMarker();
    const m34 = newMarker();
    // the marked frames, and everything the IDS receives for 3 s (empty marker: every frame)
    const ids = lab.spawn("ids", [PYTHON, "-c", PY_RAW_CAPTURE, "eth0", m12, "3"], "ids capture");
    const idsAll = lab.spawn("ids", [PYTHON, "-c", PY_RAW_CAPTURE, "eth0", "", "3"], "ids capture (all)");
    await ids.waitForOutput("ready");
    await idsAll.waitForOutput("ready");
    await inject("vm1", [rawFrame(MAC.vm2, MAC.vm1, null, m12)], 3);
    await inject("vm2", [rawFrame(MAC.vm1, MAC.vm2, null, m12)], 2);
    await inject("vm3", [rawFrame(MAC.vm4, MAC.vm3, null, m34), rawFrame("ff:ff:ff:ff:ff:ff", MAC.vm3, null, m34)], 3);
    await inject("vm4", [rawFrame(MAC.vm3, MAC.vm4, null, m34)], 2);
    // vm3 also pings vm4 (ARP, ICMP); none of it may reach the IDS
    await lab.ping("vm3", IP.vm4, 2, { intervalS: 0.1 });
    await Promise.all([ids.wait(15_000), idsAll.wait(15_000)]);
    const srcsOf = (bg: Background): string[] =>
      (JSON.parse(bg.stdout.trim().split("\n").pop()!) as { frames: { src: string }[] }).frames.map((f) => f.src);
    const marked = srcsOf(ids);
    // one copy of each of vm1's 3 and vm2's 2 frames, although each is selected where it enters and where it leaves
    expect(marked.filter((s) => s === MAC.vm1)).toHaveLength(3);
    expect(marked.filter((s) => s === MAC.vm2)).toHaveLength(2);
    const all = srcsOf(idsAll);
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.filter((s) => s !== MAC.vm1 && s !== MAC.vm2)).toEqual([]);
    // the output port itself: what it sends is dropped (mirror_output) and never forwarded
    const before = (await portStats("vif9.0")).drops.mirror_output;
    const m9 = newMarker();
    const vm1 = lab.spawn("vm1", [PYTHON, "-c", PY_RAW_CAPTURE, "eth0", m9, "1.5"], "vm1 capture");
    await vm1.waitForOutput("ready");
    await inject("ids", [rawFrame("ff:ff:ff:ff:ff:ff", MAC.ids, null, m9), rawFrame(MAC.vm1, MAC.ids, null, m9)], 2);
    await vm1.wait(10_000);
    expect((JSON.parse(vm1.stdout.trim().split("\n").pop()!) as { frames: unknown[] }).frames).toEqual([]);
    expect((await portStats("vif9.0")).drops.mirror_output).toBeGreaterThanOrEqual(before + 4);
    const macs = await lab.cliJson<{ mac: string }[]>(["showmacs", BRIDGE]);
    expect(macs.map((m) => m.mac)).not.toContain(MAC.ids);
    const show = await lab.cliJson<{ name: string; active: boolean; mirrored: number }[]>(["mirror", "show", BRIDGE]);
    expect(show.map((m) => [m.name, m.active])).toEqual([["m0", true]]);
    expect(show[0].mirrored).toBeGreaterThanOrEqual(5);
  });

  it("mirror add --output-vlan: RSPAN copies of vm3's frames leave the uplink tagged 99; mirror del stops them", async () => {
    const add = await lab.cli(["mirror", "add", BRIDGE, "r1", "--select-ports", "vif3.0", "--direction", "in", "--output-vlan", "99"]);
    expect(add.code, add.stderr).toBe(0);
    const bad = await lab.cli(["mirror", "add", BRIDGE, "r2", "--select-ports", "vif7.0", "--output", "vif9.0"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/vif7\.0/);
    const marker = newMarker();
    const up = lab.spawn("up", [PYTHON, "-c", PY_RAW_CAPTURE, "eth0", marker, "8", "2"], "up capture");
    await up.waitForOutput("ready");
    await inject("vm3", [rawFrame(MAC.vm4, MAC.vm3, null, marker)], 2);
    await up.wait(15_000);
    const got = (JSON.parse(up.stdout.trim().split("\n").pop()!) as { frames: { tci: number | null; src: string }[] }).frames;
    expect(got.map((f) => [f.tci === null ? null : f.tci & 0xfff, f.src])).toEqual([[99, MAC.vm3], [99, MAC.vm3]]);
    expect((await lab.cli(["mirror", "del", BRIDGE, "r1"])).code).toBe(0);
    const show = await lab.cliJson<{ name: string }[]>(["mirror", "show", BRIDGE]);
    expect(show.map((m) => m.name)).toEqual(["m0"]);
    const marker2 = newMarker();
    const up2 = lab.spawn("up", [PYTHON, "-c", PY_RAW_CAPTURE, "eth0", marker2, "1.5"], "up capture 2");
    await up2.waitForOutput("ready");
    await inject("vm3", [rawFrame(MAC.vm4, MAC.vm3, null, marker2)], 2);
    await up2.wait(10_000);
    expect((JSON.parse(up2.stdout.trim().split("\n").pop()!) as { frames: unknown[] }).frames).toEqual([]);
  });

  it("save-config writes the mirrors in force: a runtime mirror appended, one deleted at runtime left out", async () => {
    expect((await lab.cli(["mirror", "add", BRIDGE, "r2", "--select-ports", "vif3.0,vif4.0", "--select-vlans", "20", "--output-vlan", "99"])).code).toBe(0);
    const file = join(lab.dir, "saved.yaml");
    const r = await lab.cli(["save-config", file]);
    expect(r.code, r.stderr).toBe(0);
    const check = await lab.cli(["check-config", file]);
    expect(check.code, check.stderr + check.stdout).toBe(0);
    const { parseConfig } = await import("../../src/config/config.js");
    const { readFileSync } = await import("node:fs");
    const saved = parseConfig(readFileSync(file, "utf8")).bridges[0].mirrors;
    expect(saved.map((m) => [m.name, m.ports, m.vlans, m.output, m.outputVlan])).toEqual([
      ["m0", ["vif1.0", "vif2.0"], null, "vif9.0", null],
      ["r2", ["vif3.0", "vif4.0"], [20], null, 99],
    ]);
    expect((await lab.cli(["mirror", "del", BRIDGE, "r2"])).code).toBe(0);
  });

  it("trace: a made-up frame and the first frame of a pcap, step by step, without changing the FDB", async () => {
    const macs = async (): Promise<string[]> =>
      (await lab.cliJson<{ mac: string; port: string; vlan: number }[]>(["showmacs", BRIDGE])).map((m) => `${m.mac} ${m.port} ${m.vlan}`).sort();
    const macsBefore = await macs();
    const t = await lab.cliJson<{ verdict: string; vlan: number; lookup: { result: string; port: string }; egress: { port: string; tag_op: string }[]; steps: string[] }>(
      ["trace", BRIDGE, "vif1.0", "--src", "02:00:00:44:00:55", "--dst", MAC.vm2]);
    expect(t.verdict).toBe("forward");
    expect(t.vlan).toBe(10);
    expect(t.lookup).toMatchObject({ result: "hit", port: "vif2.0" });
    expect(t.egress.map((e) => [e.port, e.tag_op])).toEqual([["vif2.0", "none"]]);
    const text = await lab.cli(["trace", BRIDGE, "peth0", "--src", "02:00:00:44:00:55", "--dst", MAC.vm2, "--vlan", "30"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/drop: vlan_not_member/);
    expect(await macs()).toEqual(macsBefore); // 02:00:00:44:00:55 was not learned
    // a capture converted to classic pcap (tshark), traced from the CLI with pcap-parser
    const ng = join(lab.dir, "ping.pcapng");
    const pcap = join(lab.dir, "ping.pcap");
    await run("tshark", ["-r", ng, "-Y", "icmp.type == 8", "-F", "pcap", "-w", pcap], { timeoutMs: 30_000 });
    const fromPcap = await lab.cliJson<{ frame: { src: string; dst: string; ethertype: string }; verdict: string; egress: { port: string }[] }>(
      ["trace", BRIDGE, "vif1.0", "--pcap", pcap]);
    expect(fromPcap.frame).toMatchObject({ src: MAC.vm1, dst: MAC.vm2, ethertype: "0x0800" });
    expect(fromPcap.verdict).toBe("forward");
    expect(fromPcap.egress.map((e) => e.port)).toEqual(["vif2.0"]);
  });

  it("a runtime mirror survives a daemon restart (runtime journal); a deleted config mirror stays deleted", async () => {
    expect((await lab.cli(["mirror", "add", BRIDGE, "r3", "--select-ports", "vif3.0", "--direction", "in", "--output-vlan", "99"])).code).toBe(0);
    expect((await lab.cli(["mirror", "del", BRIDGE, "m0"])).code).toBe(0);
    const exit = await lab.stopDaemon();
    expect(exit.code, lab.daemonLog(20)).toBe(0);
    await lab.startDaemon("dom0");
    const show = await lab.cliJson<{ name: string; output_vlan: number | null }[]>(["mirror", "show", BRIDGE]);
    expect(show.map((m) => [m.name, m.output_vlan])).toEqual([["r3", 99]]);
  });
});
