// After a SIGKILL, a `persist: true` TAP that was moved (and renamed) into a VM's namespace is found again (issue 11,
// section 2): the daemon recorded IFLA_NEW_NETNSID / IFLA_NEW_IFINDEX of the move in its state file, and the next
// start finds the namespace by its nsid (RTM_GETNSID) and opens the TAP there after setns() in a short-lived thread,
// instead of making a new TAP in its own namespace. Needs root and `ip netns`; skips with the reason otherwise.
//
//   vm9 eth0 (TAP vif9.0, persist, moved and renamed) 198.18.5.9 --+-- dom0: tapbridge xenbr0 --- peth0 ~~ ext eth0 198.18.5.3

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uplinkLab } from "./handover-helpers.js";
import { destroyLab, Lab, canRunNetns, waitFor } from "./helpers.js";
import { statePath } from "../../src/state/store.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;
const IP = { vm9: "198.18.5.9", ext: "198.18.5.3" };

describe.skipIf(!support.ok)("a moved persistent TAP after SIGKILL" + skipNote, () => {
  let lab: Lab;
  let stateFile = "";

  beforeAll(async () => {
    lab = await uplinkLab("movedtap", ["vm9"], IP.ext);
    lab.writeConfig({ control_socket: lab.socketPath, bridges: [{ name: "xenbr0", uplink: { interface: "peth0" }, ports: [{ name: "vif9.0", persist: true }] }] });
    stateFile = statePath(lab.stateDir, lab.socketPath);
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("records where the TAP went, at once", async () => {
    expect(await waitFor(() => lab.linkExists("dom0", "vif9.0"), 10_000)).toBe(true);
    await lab.moveLink("dom0", "vif9.0", "vm9", "eth0");
    await lab.configureHost("vm9", "eth0", IP.vm9);
    const r = await lab.pingUntil("vm9", IP.ext, 10_000);
    expect(r.ok, `${r.output}\n${lab.daemonLog(30)}`).toBe(true);
    const ifindex = (await lab.link("vm9", "eth0"))!.ifindex;
    const recorded = await waitFor(() => {
      if (!existsSync(stateFile)) return null;
      const doc = JSON.parse(readFileSync(stateFile, "utf8")) as { sections?: Record<string, unknown> };
      const moved = doc.sections?.moved_taps as { port: string; ifindex: number; nsid: number }[] | undefined;
      return moved?.find((m) => m.port === "vif9.0") ?? null;
    }, 5_000);
    expect(recorded, lab.daemonLog(30)).toMatchObject({ bridge: "xenbr0", port: "vif9.0", ifindex });
    expect(recorded!.nsid).toBeGreaterThanOrEqual(0);
  });

  it("after SIGKILL the next daemon opens that TAP in the VM's namespace instead of making a new one", async () => {
    const ifindex = (await lab.link("vm9", "eth0"))!.ifindex;
    lab.daemon!.kill("SIGKILL");
    await lab.daemon!.exited;
    // persistent: the TAP outlived the daemon, in vm9, with no daemon behind it
    expect((await lab.link("vm9", "eth0"))?.ifindex).toBe(ifindex);
    // the SIGKILLed daemon left its socket file: wait for the new one to be ready, not for the file
    await (await lab.startDaemon("dom0")).waitForOutput("daemon ready", 20_000);
    expect(lab.daemonLog(200)).toMatch(/found a moved persistent TAP again/);
    expect(await lab.linkExists("dom0", "vif9.0")).toBe(false);
    const r = await lab.pingUntil("vm9", IP.ext, 10_000);
    expect(r.ok, `${r.output}\n${lab.daemonLog(30)}`).toBe(true);
    expect((await lab.link("vm9", "eth0"))?.ifindex).toBe(ifindex);
    const show = await lab.cliJson<{ ports: { name: string; state: string }[] }[]>(["show"]);
    expect(show[0].ports.find((p) => p.name === "vif9.0")?.state).toBe("up");
  }, 60_000);

  it("when the TAP cannot be found any more, the port is created anew in the daemon's namespace", async () => {
    lab.daemon!.kill("SIGKILL");
    await lab.daemon!.exited;
    await lab.ip("vm9", ["link", "del", "eth0"]);
    await (await lab.startDaemon("dom0")).waitForOutput("daemon ready", 20_000);
    expect(await waitFor(() => lab.linkExists("dom0", "vif9.0"), 10_000)).toBe(true);
    expect(lab.daemonLog(200)).toMatch(/cannot be opened where it went; the port opens anew/);
    await lab.stopDaemon();
    // persist: true survives SIGTERM; remove it from dom0 so that nothing is left behind
    await lab.ip("dom0", ["link", "del", "vif9.0"], { check: false });
  }, 60_000);
});
