// Handover and start-up under stress (issue 20, section 3). Needs root and `ip netns`; skips with the reason otherwise.
// Nothing touches the root namespace.
//   - a takeover from a daemon with data_workers: 2: the old daemon exits 0, nothing logged at error level;
//
//   vm1..vm2 eth0 (TAPs, were vif1.0..vif2.0) 198.18.4.1-2 --- dom0: tapbridge xenbr0

import { afterEach, describe, expect, it } from "vitest";
import { destroyLab, Lab, canRunNetns, waitFor } from "./helpers.js";
import { pingSummary, takeover } from "./handover-helpers.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.4.1", vm2: "198.18.4.2" };

/** dom0 with two TAPs moved into vm1 and vm2, addressed, pinging each other. */
async function tapLab(tag: string, extra: Record<string, unknown> = {}, env?: NodeJS.ProcessEnv): Promise<Lab> {
  const lab = new Lab(tag);
  for (const node of ["dom0", "vm1", "vm2"]) {
    await lab.addNs(node);
    await lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
  }
  lab.writeConfig({ control_socket: lab.socketPath, ...extra, bridges: [{ name: BRIDGE, ports: [{ name: "vif1.0" }, { name: "vif2.0" }] }] });
  await lab.startDaemon("dom0", 20_000, env);
  for (const [vif, vm] of [["vif1.0", "vm1"], ["vif2.0", "vm2"]] as const) {
    if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`TAP ${vif} not found\n${lab.daemonLog()}`);
    await lab.moveLink("dom0", vif, vm, "eth0");
    await lab.configureHost(vm, "eth0", IP[vm]);
  }
  const r = await lab.pingUntil("vm1", IP.vm2, 10_000);
  if (!r.ok) throw new Error(`vm1 -> vm2 before the test: ${r.output}\n${lab.daemonLog()}`);
  return lab;
}

describe.skipIf(!support.ok)("handover and start-up" + skipNote, () => {
  let lab: Lab | null = null;
  afterEach(async () => {
    if (lab !== null) await destroyLab(lab);
    lab = null;
  });

  it("takeover from a daemon with data_workers: 2: the old daemon exits 0 with no error logged; the new one forwards", async () => {
    lab = await tapLab("howorkers", { data_workers: 2 });
    const old = lab.daemon!;
    const { oldExit } = await takeover(lab);
    const oldErrors = (old.stdout + old.stderr).split("\n").filter((l) => /FATAL|"level":(5|6)\d/.test(l));
    expect(oldExit, (old.stdout + old.stderr).slice(-3000)).toEqual({ code: 0, signal: null });
    expect(oldErrors).toEqual([]);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok && pingSummary(r.output).duplicates === 0, r.output).toBe(true);
  }, 90_000);
});
