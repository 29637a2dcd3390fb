// `tapbridge daemon --takeover` (issue 11, section 2): a new daemon takes the running one's TAP fds, AF_PACKET sockets,
// listening control socket, runtime state and FDB over SCM_RIGHTS; the old one exits without deleting or unlinking
// anything. Needs root and `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 (TAP vif1.0, moved) 198.18.2.1  --+
//   vm2 eth0 (TAP vif2.0, moved) 198.18.2.2  --+-- dom0: tapbridge xenbr0 --- peth0 (AF_PACKET) ~~ veth ~~ ext eth0 198.18.2.3
//   vm3 eth0 ~~ veth ~~ vif3.0 (attach) .2.13 --+      vif5.0 (TAP added at runtime, access VLAN 7, moved into vm5)
//   vm5 eth0 (TAP vif5.0, moved) VLAN 7 only

import { createConnection, createServer, type Socket } from "node:net";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, CLI_MAIN, Lab, canRunNetns, run, waitFor } from "./helpers.js";
import { pingSummary, takeover, uplinkLab } from "./handover-helpers.js";
import type { MacEntry, ShowBridge, VlanShow } from "../support/json-shapes.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.2.1", vm2: "198.18.2.2", ext: "198.18.2.3", vm3: "198.18.2.13", vm5: "198.18.2.15" };
const STATIC_MAC = "02:00:00:00:77:01";

describe.skipIf(!support.ok)("daemon --takeover" + skipNote, () => {
  let lab: Lab;
  const ifindexInVm: Record<string, number> = {};

  beforeAll(async () => {
    lab = await uplinkLab("takeover", ["vm1", "vm2", "vm3", "vm5"], IP.ext);
    await lab.addVeth("dom0", "vif3.0", "vm3", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif3.0", "up"]);
    await lab.configureHost("vm3", "eth0", IP.vm3);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{ name: BRIDGE, uplink: { interface: "peth0" }, ports: [{ name: "vif1.0" }, { name: "vif2.0" }, { name: "vif3.0", kind: "attach" }] }],
    });
    await lab.startDaemon("dom0");
    // runtime changes the handover must carry: a TAP added with addif, its VLAN, a static entry, the ageing time
    const add = await lab.cli(["addif", BRIDGE, "vif5.0", "--access", "7"]);
    expect(add.code, add.stderr).toBe(0);
    expect((await lab.cli(["fdb", "add", BRIDGE, STATIC_MAC, "vif2.0"])).code).toBe(0);
    expect((await lab.cli(["setageing", BRIDGE, "600"])).code).toBe(0);
    for (const [vif, vm] of [["vif1.0", "vm1"], ["vif2.0", "vm2"], ["vif5.0", "vm5"]] as const) {
      expect(await waitFor(() => lab.linkExists("dom0", vif), 10_000)).toBe(true);
      await lab.moveLink("dom0", vif, vm, "eth0");
      await lab.configureHost(vm, "eth0", IP[vm]);
      ifindexInVm[vm] = (await lab.link(vm, "eth0"))!.ifindex;
    }
    for (const [from, to] of [["vm1", IP.vm2], ["vm1", IP.ext], ["vm3", IP.vm2], ["ext", IP.vm3]] as const) {
      const r = await lab.pingUntil(from, to, 10_000);
      expect(r.ok, `${from} -> ${to}: ${r.output}\n${lab.daemonLog(30)}`).toBe(true);
    }
  }, 120_000);

  afterAll(() => destroyLab(lab));

  it("the old daemon refuses a handover without a common protocol version and keeps forwarding", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const sock: Socket = createConnection(lab.socketPath);
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("connect", () => sock.write(`${JSON.stringify({ jsonrpc: "2.0", id: 7, method: "handover", params: { protocols: [99] } })}\n`));
      sock.on("data", (d: string) => (buf += d));
      sock.on("close", () => resolve(buf));
      sock.on("error", reject);
      sock.setTimeout(5_000, () => sock.destroy());
    });
    const parsed = JSON.parse(reply.trim()) as { id: number; error: { data: { code: string }; message: string } };
    expect(parsed.id).toBe(7);
    expect(parsed.error.data.code).toBe("handover_refused");
    expect(parsed.error.message).toMatch(/protocol 2/);
    expect(lab.daemon!.running).toBe(true);
    expect((await lab.ping("vm1", IP.vm2, 3)).ok).toBe(true);
  });

  it("a new daemon refuses a handover in a protocol version it does not know; it exits 1 and says why", async () => {
    // a stand-in old daemon that answers with protocol version 3 (the real addon's handoverSend)
    const native = (await import(join("..", "..", "dist", "io", "native.js"))) as typeof import("../../src/io/native.js");
    const path = join(lab.dir, "fake-old.sock");
    const config = join(lab.dir, "fake.yaml");
    await run("sh", ["-c", `printf 'control_socket: ${path}\\nbridges: [{name: br9, ports: []}]\\n' > ${config}`]);
    let answer = "";
    const server = createServer((sock) => {
      sock.once("data", () => {
        const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
        native.fds.send(fd, [], new TextEncoder().encode('{"protocol":3}'), 3, 2_000);
        sock.on("data", (d) => (answer += d.toString()));
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const r = await run(process.execPath, [CLI_MAIN, "daemon", "--takeover", "--config", config], { check: false, timeoutMs: 20_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/handover protocol 3 is not understood/);
      expect(await waitFor(() => answer.includes("refused"), 5_000)).toBe(true);
      expect(JSON.parse(answer.trim()).refused).toMatch(/protocol 3/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("takes over TAPs in other namespaces, the attach port, the uplink and the control socket: no frame lost or doubled", async () => {
    const before = await lab.cliJson<ShowBridge[]>(["show"]);
    const macsBefore = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    const sockIno = statSync(lab.socketPath).ino;
    // traffic across the handover: TAP <-> TAP and attach <-> uplink, 20 per second, 3 s
    const pings = [
      lab.spawn("vm1", ["ping", "-n", "-q", "-c", "60", "-i", "0.05", "-W", "3", IP.vm2]),
      lab.spawn("vm3", ["ping", "-n", "-q", "-c", "60", "-i", "0.05", "-W", "3", IP.ext]),
    ];
    await new Promise((r) => setTimeout(r, 800));
    const oldPid = lab.daemon!.pid;
    const { daemon, oldExit } = await takeover(lab);
    expect(oldExit.code, lab.daemonLog(40)).toBe(0);
    expect(daemon.pid).not.toBe(oldPid);
    for (const p of pings) await p.wait(20_000);
    for (const p of pings) {
      const s = pingSummary(p.stdout + p.stderr);
      expect(s.transmitted, s.output).toBe(60);
      expect(s.duplicates, s.output).toBe(0);
      expect(s.received, `${s.output}\n${lab.daemonLog(40)}`).toBe(60);
    }
    // the TAPs are the same netdevs, in the VMs' namespaces; the socket file is the same one
    for (const vm of ["vm1", "vm2", "vm5"]) expect((await lab.link(vm, "eth0"))?.ifindex).toBe(ifindexInVm[vm]);
    expect(existsSync(lab.socketPath)).toBe(true);
    expect(statSync(lab.socketPath).ino).toBe(sockIno);
    // the same ports, runtime state and FDB
    const after = await lab.cliJson<ShowBridge[]>(["show"]);
    const names = (s: ShowBridge[]) => s[0].ports.map((p) => `${p.name}/${p.kind}/${p.state}`).sort();
    expect(names(after)).toEqual(names(before));
    expect(after[0].uplink).toEqual(before[0].uplink);
    const vlans = await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    expect(vlans.find((v) => v.port === "vif5.0")).toMatchObject({ mode: "access", vlans: [7] });
    const macsAfter = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macsAfter.find((m) => m.mac === STATIC_MAC)).toMatchObject({ port: "vif2.0", static: true });
    for (const m of macsBefore.filter((e) => !e.static)) {
      expect(macsAfter.find((e) => e.mac === m.mac && e.vlan === m.vlan), `${m.mac} restored`).toMatchObject({ port: m.port, static: false });
    }
  }, 90_000);

  it("after the takeover: one daemon forwards (no DUP!) on every kind of port, and it can be taken over again", async () => {
    for (const [from, to] of [["ext", IP.vm1], ["vm2", IP.vm3], ["vm1", IP.ext]] as const) {
      const r = await lab.ping(from, to, 5, { intervalS: 0.1 });
      expect(r.ok, r.output).toBe(true);
      expect(pingSummary(r.output).duplicates, r.output).toBe(0);
    }
    const { oldExit } = await takeover(lab);
    expect(oldExit.code).toBe(0);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok && pingSummary(r.output).duplicates === 0, r.output).toBe(true);
    // SIGTERM of the daemon that took over: a plain kind: tap TAP goes away as before, the socket file too
    const exit = await lab.stopDaemon();
    expect(exit.code).toBe(0);
    expect(await lab.linkExists("vm1", "eth0")).toBe(false);
    expect(existsSync(lab.socketPath)).toBe(false);
  }, 90_000);
});

