// The host's own port, `kind: host` (issue 11, section 4): a TAP in the daemon's namespace that carries the host's
// address, as XenServer's management interface on xenbr0. With `mac: uplink` it has the uplink's MAC and the uplink's
// host stack is fenced off (clsact ingress drop), so nothing is answered twice (no DUP!), before and after a
// --takeover. Needs root, `ip netns` and tc; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 (TAP vif1.0, moved) 198.18.3.1 --+
//                                             +-- dom0: tapbridge xenbr0 --- peth0 (AF_PACKET, fenced) ~~ veth ~~ ext eth0 198.18.3.3
//   dom0 xenbr0 (kind: host, mac: uplink) 198.18.3.10
//   dom0 hostb (kind: host on bridge lab1, no uplink: MAC derived from the bridge name and /etc/machine-id)

import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, canRunNetns, run, waitFor } from "./helpers.js";
import { pingSummary, takeover, uplinkLab } from "./handover-helpers.js";
import type { ShowBridge } from "../support/json-shapes.js";

const support = canRunNetns();
const tcMissing = !existsSync("/usr/sbin/tc") && !existsSync("/sbin/tc") && !existsSync("/usr/bin/tc");
const skipReason = !support.ok ? support.reason : tcMissing ? "needs tc (iproute2)" : "";
const skipNote = skipReason === "" ? "" : ` (skipped: ${skipReason})`;

const IP = { vm1: "198.18.3.1", ext: "198.18.3.3", host: "198.18.3.10" };

describe.skipIf(skipReason !== "")("kind: host, the host's own port" + skipNote, () => {
  let lab: Lab;
  let upMac = "";

  beforeAll(async () => {
    lab = await uplinkLab("hostport", ["vm1"], IP.ext);
    upMac = await lab.mac("dom0", "peth0");
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [
        { name: "xenbr0", uplink: { interface: "peth0" }, ports: [{ name: "xenbr0", kind: "host", mac: "uplink" }, { name: "vif1.0" }] },
        { name: "lab1", ports: [{ name: "hostb", kind: "host" }] },
      ],
    });
    await lab.startDaemon("dom0");
    expect(await waitFor(() => lab.linkExists("dom0", "vif1.0"), 10_000)).toBe(true);
    await lab.moveLink("dom0", "vif1.0", "vm1", "eth0");
    await lab.configureHost("vm1", "eth0", IP.vm1);
    // the host's management address on the host port, as on XenServer's xenbr0
    await lab.ip("dom0", ["addr", "add", `${IP.host}/24`, "dev", "xenbr0"]);
  }, 90_000);

  afterAll(() => destroyLab(lab));

  async function pingNoDup(from: string, to: string): Promise<void> {
    const first = await lab.pingUntil(from, to, 10_000);
    expect(first.ok, `${from} -> ${to}: ${first.output}\n${lab.daemonLog(30)}`).toBe(true);
    const r = await lab.ping(from, to, 5, { intervalS: 0.1 });
    const s = pingSummary(r.output);
    expect(s.received, r.output).toBe(5);
    expect(s.duplicates, r.output).toBe(0);
    expect(r.output).not.toMatch(/DUP!/);
  }

  it("show -j lists the host port; it has the uplink's MAC and its host stack is on", async () => {
    const show = await lab.cliJson<ShowBridge[]>(["show"]);
    const br = show.find((b) => b.name === "xenbr0")!;
    expect(br.ports.find((p) => p.name === "xenbr0")).toMatchObject({ kind: "host", state: "up" });
    expect(await lab.mac("dom0", "xenbr0")).toBe(upMac);
    const filters = await lab.exec("dom0", ["tc", "filter", "show", "dev", "peth0", "ingress"]);
    expect(filters.stdout).toMatch(/pref 49152 bpf/);
  });

  it("the host port answers a VM and a host beyond the uplink, each reply once (no DUP!)", async () => {
    await pingNoDup("vm1", IP.host);
    await pingNoDup("ext", IP.host);
    await pingNoDup("vm1", IP.ext);
  });

  it("without the fence the uplink's own stack answers too (the test sees DUP!), with it again once", async () => {
    await run("ip", ["netns", "exec", lab.ns("dom0"), "tc", "filter", "del", "dev", "peth0", "ingress", "pref", "49152"]);
    await lab.exec("ext", ["ip", "neigh", "flush", "dev", "eth0"]);
    const r = await lab.ping("ext", IP.host, 4, { intervalS: 0.1 });
    expect(pingSummary(r.output).duplicates, r.output).toBeGreaterThan(0);
    await run("ip", ["netns", "exec", lab.ns("dom0"), "tc", "filter", "replace", "dev", "peth0", "ingress", "pref", "49152", "handle", "0x7b", "bpf", "da", "bytecode", "1,6 0 0 2"]);
    await pingNoDup("ext", IP.host);
  });

  it("after a --takeover the host port is the same netdev with its address, and still answers once", async () => {
    const before = await lab.link("dom0", "xenbr0");
    const { oldExit } = await takeover(lab);
    expect(oldExit.code).toBe(0);
    const after = await lab.link("dom0", "xenbr0");
    expect(after?.ifindex).toBe(before?.ifindex);
    expect(after?.address).toBe(upMac);
    const addr = await lab.ip("dom0", ["-j", "addr", "show", "dev", "xenbr0"]);
    expect(addr.stdout).toContain(IP.host);
    await pingNoDup("vm1", IP.host);
    await pingNoDup("ext", IP.host);
  }, 60_000);

  it("a derived host MAC is locally administered and the same after a restart; stopping removes the fence", async () => {
    const mac1 = await lab.mac("dom0", "hostb");
    expect(parseInt(mac1.slice(0, 2), 16) & 0x03).toBe(0x02);
    const exit = await lab.stopDaemon();
    expect(exit.code).toBe(0);
    const filters = await lab.exec("dom0", ["tc", "filter", "show", "dev", "peth0", "ingress"]);
    expect(filters.stdout).not.toMatch(/pref 49152/);
    await lab.startDaemon("dom0");
    expect(await waitFor(() => lab.linkExists("dom0", "hostb"), 10_000)).toBe(true);
    expect(await lab.mac("dom0", "hostb")).toBe(mac1);
    expect(await lab.mac("dom0", "xenbr0")).toBe(upMac);
  }, 60_000);
});
