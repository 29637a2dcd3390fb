// Whose vxlan netdev is it (src/daemon/vxlan-owner.ts), on the kernel's vxlan driver: a `vxlan` port adopts an
// existing netdev only when it matches the config, and the daemon deletes at SIGTERM only the netdevs it created
// (recorded in its state file, so also after a SIGKILL and a restart, or a takeover: a netdev it adopted stays). A
// VNI held by another netdev is named in the error; a `local` address the host does not have is warned about. Needs
// root, `ip netns` and the vxlan module; skips with the reason otherwise.
//
//   dom0: tapbridge xenbr0, vxlan netdevs over u0 198.18.40.1/24 ---- far: u1 198.18.40.2/24

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { takeover } from "./handover-helpers.js";
import { destroyLab, Lab, waitFor } from "./helpers.js";
import { probeVxlan } from "./vxlan-helpers.js";

const support = probeVxlan();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;
const LOCAL = "198.18.40.1";
const FAR = "198.18.40.2";

interface IpLinkDetail {
  ifname: string;
  ifindex: number;
  linkinfo?: { info_kind: string; info_data?: { id?: number; port?: number; remote?: string; local?: string } };
}

describe.skipIf(!support.ok)("vxlan netdevs the daemon did not create" + skipNote, () => {
  let lab: Lab;

  async function detail(name: string): Promise<IpLinkDetail | null> {
    const r = await lab.ip("dom0", ["-d", "-j", "link", "show", "dev", name], { check: false });
    return r.code === 0 ? (JSON.parse(r.stdout) as IpLinkDetail[])[0] : null;
  }

  async function fdbDsts(name: string): Promise<string[]> {
    const r = await lab.exec("dom0", ["bridge", "fdb", "show", "dev", name]);
    return r.stdout.split("\n").filter((l) => l.startsWith("00:00:00:00:00:00")).map((l) => /dst (\S+)/.exec(l)?.[1] ?? "");
  }

  function config(vxlan: object[]): void {
    lab.writeConfig({ control_socket: lab.socketPath, bridges: [{ name: "xenbr0", ports: [{ name: "vif1.0" }], vxlan }] });
  }

  async function restart(vxlan: object[]): Promise<void> {
    if (lab.daemon?.running) await lab.stopDaemon();
    config(vxlan);
    await (await lab.startDaemon("dom0")).waitForOutput("daemon ready", 20_000);
  }

  beforeAll(async () => {
    lab = new Lab("vxadopt");
    await lab.addNs("dom0");
    await lab.addNs("far");
    await lab.addVeth("dom0", "u0", "far", "u1");
    await lab.configureHost("dom0", "u0", LOCAL);
    await lab.configureHost("far", "u1", FAR);
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("refuses a vxlan netdev of the same name and VNI on another dstport with its own remote, and leaves it alone", async () => {
    // the netdev: someone else's, dstport 8472, its own default remote
    await lab.ip("dom0", ["link", "add", "vxf", "type", "vxlan", "id", "200", "dstport", "8472", "remote", "198.18.40.9", "local", LOCAL]);
    await restart([]);
    const r = await lab.cli(["vxlan", "add", "xenbr0", "vxf", "--vni", "200", "--local", LOCAL, "--remote", FAR]);
    expect(r.code, `${r.stdout}${r.stderr}\n${lab.daemonLog(20)}`).not.toBe(0);
    expect(r.stderr).toMatch(/netdev vxf exists and was not created by tapbridge/);
    expect(r.stderr).toMatch(/dstport 8472 \(config 4789\)/);
    expect(r.stderr).toMatch(/its own remote 198\.18\.40\.9/);
    const d = await detail("vxf");
    expect(d?.linkinfo?.info_data).toMatchObject({ id: 200, port: 8472, remote: "198.18.40.9" });
    expect(await fdbDsts("vxf")).toEqual(["198.18.40.9"]);
    // SIGTERM does not touch it either
    await lab.stopDaemon();
    expect((await detail("vxf"))?.linkinfo?.info_data?.port).toBe(8472);
  }, 60_000);

  it("adopts a matching netdev it did not create, and leaves it in place at SIGTERM", async () => {
    await lab.ip("dom0", ["link", "add", "vxm", "type", "vxlan", "id", "201", "dstport", "4789", "local", LOCAL]);
    const ifindex = (await detail("vxm"))!.ifindex;
    await restart([{ name: "vxm", vni: 201, local: LOCAL, remotes: [FAR] }]);
    expect(lab.daemonLog(200)).toMatch(/adopting existing vxlan netdev/);
    const show = await lab.cliJson<{ name: string; state: string }[]>(["vxlan", "show", "xenbr0"]);
    expect(show.find((v) => v.name === "vxm")?.state).toBe("up");
    await lab.stopDaemon();
    expect((await detail("vxm"))?.ifindex, lab.daemonLog(20)).toBe(ifindex);
  }, 60_000);

  it("after a SIGKILL and a restart, the record still tells its own netdev from an adopted one: SIGTERM deletes only the one it created", async () => {
    // vxk is someone else's (made here, matching the config): adopted, never deleted; vx202 is created by the daemon
    await lab.ip("dom0", ["link", "add", "vxk", "type", "vxlan", "id", "204", "dstport", "4789", "local", LOCAL]);
    const foreign = (await detail("vxk"))!.ifindex;
    const vxk = { name: "vxk", vni: 204, local: LOCAL, remotes: [FAR] };
    await restart([{ name: "vx202", vni: 202, local: LOCAL, remotes: [FAR] }, vxk]);
    const ifindex = (await detail("vx202"))?.ifindex;
    expect(ifindex).toBeGreaterThan(0);
    lab.daemon!.kill("SIGKILL");
    await lab.daemon!.exited;
    expect((await detail("vx202"))?.ifindex).toBe(ifindex);
    // restarted with another remote for vx202: its own netdev is kept (same ifindex) and its remotes become the
    // configured ones (a netdev not its own with a remote the config does not list would be refused)
    const OTHER = "198.18.40.3";
    await restart([{ name: "vx202", vni: 202, local: LOCAL, remotes: [OTHER] }, vxk]);
    expect((await detail("vx202"))?.ifindex).toBe(ifindex);
    expect(await fdbDsts("vx202"), lab.daemonLog(20)).toEqual([OTHER]);
    expect((await detail("vxk"))?.ifindex).toBe(foreign);
    await lab.stopDaemon();
    expect(await waitFor(async () => (await detail("vx202")) === null, 5_000), lab.daemonLog(20)).toBe(true);
    expect((await detail("vxk"))?.ifindex, `the adopted netdev was deleted at SIGTERM\n${lab.daemonLog(20)}`).toBe(foreign);
  }, 60_000);

  it("a takeover carries the record: the new daemon deletes at SIGTERM the netdev the old one created, not the adopted one", async () => {
    await lab.ip("dom0", ["link", "add", "vxk3", "type", "vxlan", "id", "205", "dstport", "4789", "local", LOCAL]);
    const foreign = (await detail("vxk3"))!.ifindex;
    await restart([{ name: "vx203", vni: 203, local: LOCAL, remotes: [FAR] }, { name: "vxk3", vni: 205, local: LOCAL, remotes: [FAR] }]);
    const ifindex = (await detail("vx203"))?.ifindex;
    expect(ifindex).toBeGreaterThan(0);
    await takeover(lab, "dom0");
    expect((await detail("vx203"))?.ifindex).toBe(ifindex);
    await lab.stopDaemon();
    expect(await waitFor(async () => (await detail("vx203")) === null, 5_000), lab.daemonLog(20)).toBe(true);
    expect((await detail("vxk3"))?.ifindex, `the adopted netdev was deleted at SIGTERM\n${lab.daemonLog(20)}`).toBe(foreign);
  }, 90_000);

  it("names the netdev that holds the VNI, and warns about a local address the host does not have", async () => {
    await lab.ip("dom0", ["link", "add", "vxother", "type", "vxlan", "id", "300", "dstport", "4789"]);
    await restart([]);
    const r = await lab.cli(["vxlan", "add", "xenbr0", "vx300", "--vni", "300", "--remote", FAR]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/VNI 300 on UDP port 4789 is already used by netdev vxother/);
    expect(await detail("vx300")).toBeNull();
    const w = await lab.cli(["vxlan", "add", "xenbr0", "vx400", "--vni", "400", "--local", "198.18.41.7", "--remote", FAR]);
    expect(w.code, `${w.stderr}\n${lab.daemonLog(20)}`).toBe(0);
    expect(lab.daemonLog(200)).toMatch(/vx400: local 198\.18\.41\.7 is not an address of this host/);
    await lab.stopDaemon();
    expect(await detail("vx400")).toBeNull();
    expect(await detail("vxother")).not.toBeNull();
  }, 60_000);
});
