// Privileged acceptance tests (issue 2, section 6): the daemon runs in a dom0 namespace, VMs sit on TAPs it created and
// that were moved into their own namespaces, an external host sits behind a veth whose dom0 end is the AF_PACKET uplink.
// Needs root and `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 (TAP, was vif1.0) 198.18.0.1   --+
//   vm2 eth0 (TAP, was vif2.0) 198.18.0.2   --+-- dom0: tapbridge, bridge xenbr0 --- peth0 (AF_PACKET) ~~ veth ~~ ext eth0 198.18.0.3
//   vm4 eth0 ~~ veth ~~ vif4.0 (attach) .14 --+       vif9.0 (TAP, persist: true, stays in dom0)
//   vm3 eth0 ~~ veth ~~ vif3.0 (addif at runtime) .13, vif5.0 (TAP, addif at runtime)

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  destroyLab,
  Lab,
  PY_TCP_RECEIVER,
  PY_TCP_SENDER,
  PY_VLAN_RECEIVER,
  PY_VLAN_SENDER,
  PYTHON,
  REPO_ROOT,
  canRunNetns,
  run,
  sleep,
  waitFor,
} from "./helpers.js";
import type { MacEntry, ShowBridge } from "../support/json-shapes.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
/** Appended to suite names so that a skipped run says why. */
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.0.1", vm2: "198.18.0.2", ext: "198.18.0.3", vm3: "198.18.0.13", vm4: "198.18.0.14" };
const IP6 = { vm1: "2001:db8::1", vm2: "2001:db8::2", ext: "2001:db8::3" };
const MAC = { vm3: "02:00:00:00:00:13", vm4: "02:00:00:00:00:14" };

describe.skipIf(!support.ok)("netns harness" + skipNote, () => {
  it("Lab creates prefixed namespaces and veths, and destroy() removes every one of them", async () => {
    const lab = new Lab("harness");
    try {
      await lab.addNs("a");
      await lab.addNs("b");
      await lab.addVeth("a", "x0", "b", "y0");
      await lab.configureHost("a", "x0", "198.18.1.1");
      await lab.configureHost("b", "y0", "198.18.1.2");
      expect((await lab.pingUntil("a", "198.18.1.2", 5_000)).ok).toBe(true);
      expect((await Lab.leftoverNamespaces(lab.prefix)).sort()).toEqual([lab.ns("a"), lab.ns("b")].sort());
    } finally {
      await lab.destroy();
    }
    expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });
});

describe.skipIf(!support.ok)("tapbridge daemon in a dom0 namespace" + skipNote, () => {
  let lab: Lab;
  const vmMac: Record<string, string> = {};
  let extMac = "";

  beforeAll(async () => {
    lab = new Lab("bridge");
    for (const node of ["dom0", "vm1", "vm2", "vm4", "ext"]) await lab.addNs(node);
    // dom0's host stack stays off the bridge: no IPv6 on its links, so a fresh TAP sends no MLD/RS with its first
    // random MAC before it is moved (a link moved into a VM gets the VM namespace's defaults and keeps IPv6).
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    // uplink: peth0 in dom0 <-> eth0 in ext
    await lab.addVeth("dom0", "peth0", "ext", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await lab.configureHost("ext", "eth0", IP.ext, IP6.ext);
    // an attach port present from the start (deleted and re-created by one test)
    await lab.addVeth("dom0", "vif4.0", "vm4", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif4.0", "up"]);
    await lab.configureHost("vm4", "eth0", IP.vm4, undefined, MAC.vm4);

    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [
        {
          name: BRIDGE,
          uplink: { interface: "peth0" },
          ports: [
            { name: "vif1.0" },
            { name: "vif2.0", kind: "tap" },
            { name: "vif4.0", kind: "attach" },
            { name: "vif9.0", kind: "tap", persist: true },
          ],
        },
      ],
    });
    await lab.startDaemon("dom0");

    // The daemon made the TAPs in dom0; move each into its VM, rename it eth0, address it.
    for (const [i, vm] of [[1, "vm1"], [2, "vm2"]] as const) {
      const vif = `vif${i}.0`;
      const present = await waitFor(() => lab.linkExists("dom0", vif), 10_000);
      if (!present) throw new Error(`TAP ${vif} not found in dom0 after the socket appeared\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vif, vm, "eth0");
      await lab.configureHost(vm, "eth0", IP[vm], IP6[vm]);
      vmMac[vm] = await lab.mac(vm, "eth0");
    }
    vmMac.vm4 = await lab.mac("vm4", "eth0");
    extMac = await lab.mac("ext", "eth0");
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("show -j lists the bridge with its TAP ports, attach port and AF_PACKET uplink", async () => {
    const show = await lab.cliJson<ShowBridge[]>(["show"]);
    const br = show.find((b) => b.name === BRIDGE);
    expect(br, JSON.stringify(show)).toBeDefined();
    expect(br!.uplink?.name).toBe("peth0");
    const kinds = Object.fromEntries(br!.ports.map((p) => [p.name, p.kind]));
    expect(kinds).toMatchObject({ "vif1.0": "tap", "vif2.0": "tap", "vif4.0": "attach", "vif9.0": "tap" });
    expect(br!.ports.find((p) => p.name === "vif4.0")?.state).toBe("up");
  });

  it("VMs on two TAP ports ping each other (TAP <-> TAP), IPv4 and IPv6", async () => {
    const v4 = await lab.pingUntil("vm1", IP.vm2, 10_000);
    expect(v4.ok, `${v4.output}\n${lab.daemonLog(30)}`).toBe(true);
    const r = await lab.ping("vm2", IP.vm1, 5);
    expect(r.ok, r.output).toBe(true);
    const v6 = await lab.pingUntil("vm1", IP6.vm2, 10_000);
    expect(v6.ok, v6.output).toBe(true);
  });

  it("a VM and the external host ping each other over the AF_PACKET uplink (TAP <-> AF_PACKET)", async () => {
    const a = await lab.pingUntil("vm1", IP.ext, 10_000);
    expect(a.ok, `${a.output}\n${lab.daemonLog(30)}`).toBe(true);
    const b = await lab.ping("ext", IP.vm2, 5);
    expect(b.ok, b.output).toBe(true);
    const c = await lab.pingUntil("ext", IP6.vm1, 10_000);
    expect(c.ok, c.output).toBe(true);
    const d = await lab.pingUntil("vm4", IP.ext, 10_000);
    expect(d.ok, `attach <-> uplink: ${d.output}`).toBe(true);
  });

  it("showmacs -j lists each VM's MAC on its own port and the external host's MAC on the uplink", async () => {
    // make sure every host has just transmitted
    await lab.ping("vm1", IP.vm2, 1);
    await lab.ping("vm2", IP.ext, 1);
    await lab.ping("vm4", IP.vm1, 1);
    const macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    const where = (mac: string) => macs.filter((e) => e.mac === mac).map((e) => e.port);
    const on = (port: string) => macs.filter((e) => e.port === port).map((e) => e.mac);
    const dump = JSON.stringify(macs);
    expect(on("vif1.0"), dump).toEqual([vmMac.vm1]);
    expect(on("vif2.0"), dump).toEqual([vmMac.vm2]);
    expect(where(vmMac.vm1!), dump).toEqual(["vif1.0"]);
    expect(where(vmMac.vm2!), dump).toEqual(["vif2.0"]);
    expect(where(vmMac.vm4!), dump).toEqual(["vif4.0"]);
    expect(where(extMac), dump).toEqual(["peth0"]);
    for (const e of macs) {
      expect(e.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      expect(typeof e.vlan).toBe("number");
      expect(e.static).toBe(false);
      expect(e.age).toBeGreaterThanOrEqual(0);
    }
  });

  // TCP with the peers' default offloads left on: partial checksums and GSO frames must cross the bridge.
  const transfers = [
    { name: "vm1 -> vm2 (TAP -> TAP)", from: "vm1", to: "vm2" },
    { name: "ext -> vm1 (AF_PACKET -> TAP)", from: "ext", to: "vm1" },
    { name: "vm2 -> ext (TAP -> AF_PACKET)", from: "vm2", to: "ext" },
  ] as const;
  let port = 5001;
  it.each(transfers)("50 MB over TCP $name arrive byte-identical with default offloads on", async ({ from, to }) => {
    const MB = 50;
    const offloads = await lab.exec(from, ["ethtool", "-k", "eth0"], { check: false });
    const txCsum = /^tx-checksumming: (\w+)/m.exec(offloads.stdout)?.[1];
    if (from === "ext") expect(txCsum, "the veth's default tx checksum offload should be on").toBe("on");
    const p = String(port++);
    const receiver = lab.spawn(to, [PYTHON, "-c", PY_TCP_RECEIVER, IP[to], p, "60"], `tcp receiver ${to}`);
    await receiver.waitForOutput("ready");
    const sender = await lab.exec(from, [PYTHON, "-c", PY_TCP_SENDER, IP[to], p, String(MB), "60"], {
      check: false,
      timeoutMs: 90_000,
    });
    await receiver.wait(10_000);
    const diag = `sender exit ${sender.code}: ${sender.stderr.slice(-1500)}\nreceiver: ${receiver.stdout}${receiver.stderr.slice(-1500)}\n${lab.daemonLog(30)}`;
    expect(sender.code, diag).toBe(0);
    const sent = JSON.parse(sender.stdout.trim().split("\n").pop()!) as { bytes: number; sha256: string; seconds: number };
    const got = JSON.parse(receiver.stdout.trim().split("\n").pop()!) as { bytes: number; sha256: string };
    expect(got.bytes, diag).toBe(MB << 20);
    expect(got.sha256, diag).toBe(sent.sha256);
    console.log(
      `TCP ${from} -> ${to}: ${MB} MB in ${sent.seconds.toFixed(2)} s = ${((MB * 8 * 1.048576) / sent.seconds).toFixed(0)} Mbit/s` +
        ` (sender eth0 tx-checksumming ${txCsum ?? "?"})`,
    );
  });

  // VLAN-unaware bridge: a tagged frame passes unchanged. Frames go to broadcast so every port gets them.
  async function sendTagged(fromNode: string, toNode: string, src: string): Promise<Record<string, unknown>> {
    const marker = `tapbridge-vid100-${Math.random().toString(16).slice(2, 10)}`;
    const receiver = lab.spawn(toNode, [PYTHON, "-c", PY_VLAN_RECEIVER, "eth0", marker, "8"], `vlan receiver ${toNode}`);
    await receiver.waitForOutput("ready");
    const sender = await lab.exec(fromNode, [PYTHON, "-c", PY_VLAN_SENDER, "eth0", "ff:ff:ff:ff:ff:ff", src, "100", marker, "3"], {
      check: false,
      timeoutMs: 15_000,
    });
    expect(sender.code, sender.stderr).toBe(0);
    await receiver.wait(15_000);
    const line = receiver.stdout.trim().split("\n").pop() ?? "";
    expect(line, `receiver: ${receiver.stdout} ${receiver.stderr}`).toMatch(/^\{/);
    return JSON.parse(line) as Record<string, unknown>;
  }

  it("a frame tagged VID 100 entering through the AF_PACKET uplink reaches a VM with its tag intact", async () => {
    const res = await sendTagged("ext", "vm1", "02:00:00:00:10:01");
    expect(res, lab.daemonLog(30)).toMatchObject({ found: true, tci: 100, tpid: 0x8100 });
  });

  it("a frame tagged VID 100 from a VM leaves through the AF_PACKET uplink with its tag intact", async () => {
    const res = await sendTagged("vm2", "ext", "02:00:00:00:10:02");
    expect(res, lab.daemonLog(30)).toMatchObject({ found: true, tci: 100, tpid: 0x8100 });
  });

  it("addif attaches a new veth at runtime and traffic flows; delif detaches it and traffic stops", async () => {
    await lab.addNs("vm3");
    await lab.addVeth("dom0", "vif3.0", "vm3", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif3.0", "up"]);
    await lab.configureHost("vm3", "eth0", IP.vm3, undefined, MAC.vm3);
    expect((await lab.ping("vm3", IP.vm1, 1)).ok, "vm3 must be unreachable before addif").toBe(false);

    const add = await lab.cli(["addif", BRIDGE, "vif3.0", "--kind", "attach"]);
    expect(add.code, add.stderr + lab.daemonLog(20)).toBe(0);
    const ping = await lab.pingUntil("vm3", IP.vm1, 10_000);
    expect(ping.ok, `${ping.output}\n${lab.daemonLog(30)}`).toBe(true);
    expect((await lab.pingUntil("vm3", IP.ext, 10_000)).ok).toBe(true);
    let show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show.find((b) => b.name === BRIDGE)!.ports.find((p) => p.name === "vif3.0")).toMatchObject({ kind: "attach" });

    const del = await lab.cli(["delif", BRIDGE, "vif3.0"]);
    expect(del.code, del.stderr).toBe(0);
    show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show.find((b) => b.name === BRIDGE)!.ports.map((p) => p.name)).not.toContain("vif3.0");
    const after = await lab.ping("vm3", IP.vm1, 2);
    expect(after.ok, "vm3 must be unreachable after delif").toBe(false);
    // the attached netdev is the user's: delif leaves it in place
    expect(await lab.linkExists("dom0", "vif3.0")).toBe(true);
  });

  it("addif --kind tap creates a TAP in the daemon's namespace at runtime; delif removes it", async () => {
    const add = await lab.cli(["addif", BRIDGE, "vif5.0", "--kind", "tap"]);
    expect(add.code, add.stderr + lab.daemonLog(20)).toBe(0);
    expect(await waitFor(() => lab.linkExists("dom0", "vif5.0"), 5_000)).toBe(true);
    const show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show.find((b) => b.name === BRIDGE)!.ports.find((p) => p.name === "vif5.0")).toMatchObject({ kind: "tap" });
    const del = await lab.cli(["delif", BRIDGE, "vif5.0"]);
    expect(del.code, del.stderr).toBe(0);
    expect(await waitFor(async () => !(await lab.linkExists("dom0", "vif5.0")), 5_000)).toBe(true);
  });

  it("CLI errors: unknown bridge exits 1, bad usage exits 2, no daemon exits 3", async () => {
    expect((await lab.cli(["showmacs", "nosuchbr", "-j"])).code).toBe(1);
    expect((await lab.cli(["addif"])).code).toBe(2);
    const r = await run(process.execPath, [`${REPO_ROOT}/dist/cli/main.js`, "show", "--socket", `${lab.dir}/nothing.sock`], {
      check: false,
    });
    expect(r.code).toBe(3);
  });

  it("an attach port whose netdev is deleted and re-created forwards again", async () => {
    expect((await lab.pingUntil("vm4", IP.vm1, 10_000)).ok).toBe(true);
    await lab.ip("dom0", ["link", "del", "dev", "vif4.0"]); // takes vm4's eth0 with it
    const absent = await waitFor(async () => {
      const show = await lab.cliJson<ShowBridge[]>(["show"]);
      return show.find((b) => b.name === BRIDGE)?.ports.find((p) => p.name === "vif4.0")?.state === "absent";
    }, 5_000);
    expect(absent, `vif4.0 should show state "absent" once deleted\n${lab.daemonLog(20)}`).toBe(true);

    await lab.addVeth("dom0", "vif4.0", "vm4", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif4.0", "up"]);
    await lab.configureHost("vm4", "eth0", IP.vm4, undefined, MAC.vm4);
    const again = await lab.pingUntil("vm4", IP.vm1, 15_000);
    expect(again.ok, `${again.output}\n${lab.daemonLog(40)}`).toBe(true);
    expect((await lab.pingUntil("vm4", IP.ext, 5_000)).ok).toBe(true);
  });

  it("on SIGTERM the daemon exits 0 and leaves no TAP (in dom0 or moved into a VM) and no socket behind", async () => {
    expect(await lab.linkExists("vm1", "eth0")).toBe(true);
    const exit = await lab.stopDaemon(10_000);
    expect(exit, lab.daemonLog(30)).toEqual({ code: 0, signal: null });
    expect(await waitFor(async () => !(await lab.linkExists("vm1", "eth0")) && !(await lab.linkExists("vm2", "eth0")), 3_000),
      "the TAPs moved into vm1/vm2 must be gone").toBe(true);
    const dom0 = (await lab.links("dom0")).map((l) => l.ifname);
    for (const tap of ["vif1.0", "vif2.0", "vif5.0"]) expect(dom0).not.toContain(tap);
    expect(existsSync(lab.socketPath), "control socket must be removed").toBe(false);
    // what the daemon did not create stays
    expect(dom0).toContain("peth0");
    expect(dom0).toContain("vif4.0");
  });

  it("a TAP configured with persist: true outlives the daemon", async () => {
    expect(lab.daemon?.running).toBe(false);
    expect(await lab.linkExists("dom0", "vif9.0")).toBe(true);
  });
});

describe.skipIf(!support.ok)("lab and demo scripts" + skipNote, () => {
  async function ourNamespaces(): Promise<string[]> {
    const r = await run("ip", ["netns", "list"], { check: false });
    return r.stdout.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => /^tb-(lab|demo)-/.test(n));
  }

  it.each([
    ["scripts/lab.sh --kernel test", ["scripts/lab.sh", "--kernel", "test"]],
    ["scripts/lab.sh test", ["scripts/lab.sh", "test"]],
    ["scripts/demo.sh", ["scripts/demo.sh"]],
  ])("%s passes and leaves no namespace behind", async (_name, argv) => {
    const before = await ourNamespaces();
    const [script, ...args] = argv;
    const r = await run("bash", [join(REPO_ROOT, script!), ...args], { check: false, timeoutMs: 110_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    await sleep(100);
    expect(await ourNamespaces()).toEqual(before);
  }, 120_000);
});
