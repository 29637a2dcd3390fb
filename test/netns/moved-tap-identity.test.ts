// A moved persistent TAP is known again by its MAC, not by (nsid, ifindex) alone (src/handover/moved.ts): both are
// reused once a namespace dies or the host reboots, and the record outlives them in the state file. The record
// carries the TAP's name and MAC; a TAP at the recorded place with another MAC is not adopted, and the port opens
// anew in the daemon's namespace. Needs root and `ip netns`; skips with the reason otherwise.
//
//   vm9 eth0 (TAP vif9.0, persist, moved and renamed) --+-- dom0: tapbridge xenbr0 --- peth0 ~~ ext eth0 198.18.6.3

import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uplinkLab } from "./handover-helpers.js";
import { destroyLab, Lab, canRunNetns, waitFor } from "./helpers.js";
import { statePath } from "../../src/state/store.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

interface Record_ { port: string; ifindex: number; nsid: number; name?: string; mac?: string }

describe.skipIf(!support.ok)("a moved persistent TAP's identity" + skipNote, () => {
  let lab: Lab;
  let stateFile = "";

  const readState = (): { sections?: Record<string, unknown> } | null =>
    existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, "utf8")) as { sections?: Record<string, unknown> } : null;

  beforeAll(async () => {
    lab = await uplinkLab("movedid", ["vm9"], "198.18.6.3");
    lab.writeConfig({ control_socket: lab.socketPath, bridges: [{ name: "xenbr0", uplink: { interface: "peth0" }, ports: [{ name: "vif9.0", persist: true }] }] });
    stateFile = statePath(lab.stateDir, lab.socketPath);
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("records the TAP's name and MAC with (nsid, ifindex)", async () => {
    expect(await waitFor(() => lab.linkExists("dom0", "vif9.0"), 10_000)).toBe(true);
    const mac = await lab.mac("dom0", "vif9.0");
    await lab.moveLink("dom0", "vif9.0", "vm9");
    const ifindex = (await lab.link("vm9", "vif9.0"))!.ifindex;
    const recorded = await waitFor(() => ((readState()?.sections?.moved_taps ?? []) as Record_[]).find((m) => m.port === "vif9.0") ?? null, 5_000);
    expect(recorded, lab.daemonLog(30)).toMatchObject({ port: "vif9.0", ifindex, name: "vif9.0", mac });
  }, 60_000);

  it("after SIGKILL, a TAP at the recorded nsid and ifindex with another MAC is not adopted; the port opens anew", async () => {
    lab.daemon!.kill("SIGKILL");
    await lab.daemon!.exited;
    // the place (nsid, ifindex) now holds a TAP with another MAC, as after a namespace was re-made
    await lab.ip("vm9", ["link", "set", "dev", "vif9.0", "address", "02:00:5e:10:00:99"]);
    await (await lab.startDaemon("dom0")).waitForOutput("daemon ready", 20_000);
    expect(lab.daemonLog(200)).toMatch(/now hold another TAP \(another MAC\); not adopted/);
    expect(lab.daemonLog(200)).not.toMatch(/found a moved persistent TAP again/);
    expect(await waitFor(() => lab.linkExists("dom0", "vif9.0"), 10_000)).toBe(true);
    // the other TAP is left where it is, unchanged
    expect(await lab.mac("vm9", "vif9.0")).toBe("02:00:5e:10:00:99");
    await lab.stopDaemon();
    await lab.ip("dom0", ["link", "del", "vif9.0"], { check: false });
  }, 60_000);
});
