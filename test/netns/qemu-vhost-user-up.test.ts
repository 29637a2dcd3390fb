// Privileged test of scripts/qemu-vhost-user-up and qemu-vhost-user-down, qemu-ifup's counterpart for vhost-user ports
// (QEMU runs no script for a vhost-user netdev): the up-script adds a vhost-user port in mode client and prints the
// QEMU arguments; the frontend is the test's (test/netns/vhost-frontend.py, listening on the printed socket as QEMU
// does with server=on) and, when QEMU and the guest image are there, a real QEMU (TCG) started with exactly the printed
// arguments.
//
//   vhost-frontend.py (02:00:00:26:00:21) 198.18.26.21 or a QEMU guest (00:16:3e:26:01:00) 198.18.26.22
//     ~~ vif3.0 (kind vhost-user, added by the script)
//                                dom0: tapbridge xenbr0 --- peth0 (AF_PACKET) ~~ veth ~~ ext eth0 198.18.26.3
//                                                       --- vif9.0 (tap, from the config)
//
// Skips with the reason when not root; the QEMU case also when QEMU or the guest image is missing.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, PYTHON, REPO_ROOT, canRunNetns, run, uplinkLab, waitFor } from "./helpers.js";
import { ProcessGuest, appendLine, copyImage, prepareGuest } from "./qemu-helpers.js";
import type { ShowBridge } from "../support/json-shapes.js";

const BRIDGE = "xenbr0";
const UP = join(REPO_ROOT, "scripts/qemu-vhost-user-up");
const DOWN = join(REPO_ROOT, "scripts/qemu-vhost-user-down");
const FRONTEND = join(REPO_ROOT, "test/netns/vhost-frontend.py");
const IP = { ext: "198.18.26.3", frontend: "198.18.26.21", guest: "198.18.26.22" };
const MAC = { frontend: "02:00:00:26:00:21", guest: "00:16:3e:26:01:00" };

const support = canRunNetns();
const guestPrep = support.ok ? prepareGuest() : { ok: false, reason: support.reason, qemu: "", buildMs: 0 };
if (!support.ok) console.warn(`qemu-vhost-user-up tests skipped: ${support.reason}`);
else if (!guestPrep.ok) console.warn(`qemu-vhost-user-up: the QEMU case is skipped: ${guestPrep.reason}`);

interface VhostShow {
  name: string;
  kind: string;
  state: string;
  vhost_user?: { socket: string; mode: string; connected: boolean };
}

describe.skipIf(!support.ok)("scripts/qemu-vhost-user-up and -down" + (support.ok ? "" : ` (skipped: ${support.reason})`), () => {
  let lab: Lab;
  let sock = "";

  /** The scripts' environment: TAPBRIDGE_* as given, nothing inherited; `node` (the one running this test) on PATH. */
  function scriptEnv(vars: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? "/usr/bin:/bin"}`,
      TAPBRIDGE_SOCKET: lab.socketPath,
      TAPBRIDGE_BRIDGE: BRIDGE,
      TAPBRIDGE_VHOST_SOCKET: sock,
      ...vars,
    };
  }
  const up = (vars: Record<string, string> = {}, name = "vif3.0") => run(UP, [name], { env: scriptEnv(vars), check: false, timeoutMs: 30_000 });
  const down = (vars: Record<string, string> = {}, name = "vif3.0") => run(DOWN, [name], { env: scriptEnv(vars), check: false, timeoutMs: 30_000 });

  async function port(name: string): Promise<VhostShow | undefined> {
    const br = (await lab.cliJson<ShowBridge[]>(["show"])).find((b) => b.name === BRIDGE);
    return (br?.ports as VhostShow[] | undefined)?.find((p) => p.name === name);
  }
  async function vlanOf(name: string): Promise<{ mode: string; vlans: number[] | "all" } | undefined> {
    return (await lab.cliJson<{ port: string; mode: string; vlans: number[] | "all" }[]>(["vlan", "show", BRIDGE])).find((v) => v.port === name);
  }

  beforeAll(async () => {
    lab = await uplinkLab("vhost-up", [], IP.ext);
    sock = join(lab.dir, "vif3.0.sock");
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{ name: BRIDGE, uplink: { interface: "peth0" }, ports: [{ name: "vif9.0", kind: "tap" }] }],
    });
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it("adds a vhost-user port in mode client and prints the QEMU arguments; a frontend on the printed socket answers ext", async () => {
    const r = await up({ TAPBRIDGE_MAC: MAC.frontend });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`qemu-vhost-user-up: vif3.0 added to xenbr0 as a vhost-user port (mode client, socket ${sock})`);
    expect(r.stdout.trimEnd().split("\n")).toEqual([
      "-object memory-backend-memfd,id=mem0,size=1024M,share=on",
      "-numa node,memdev=mem0",
      `-chardev socket,id=chr-vif3.0,path=${sock},server=on,wait=off`,
      "-netdev vhost-user,id=net-vif3.0,chardev=chr-vif3.0",
      `-device virtio-net-pci,netdev=net-vif3.0,mac=${MAC.frontend}`,
    ]);
    expect(await port("vif3.0")).toMatchObject({ kind: "vhost-user", state: "down", vhost_user: { socket: sock, mode: "client" } });
    // the frontend listens where the printed -chardev says, as QEMU with server=on
    const path = /path=([^,]+),server=on/.exec(r.stdout)?.[1] ?? "";
    const fe = lab.spawn("dom0", [PYTHON, FRONTEND, path, "listen", "host", MAC.frontend, IP.frontend, "30"], "vhost frontend");
    expect(await waitFor(() => fe.stdout.includes("ready") || !fe.running, 20_000), fe.stderr).toBe(true);
    expect(await waitFor(async () => (await port("vif3.0"))?.state === "up", 15_000), lab.daemonLog()).toBe(true);
    const p = await lab.pingUntil("ext", IP.frontend, 15_000);
    expect(p.ok, `${p.output}\n${fe.stderr}\n${lab.daemonLog()}`).toBe(true);
    await fe.stop(2_000);
    expect(await waitFor(async () => (await port("vif3.0"))?.state === "down", 10_000)).toBe(true);
  }, 60_000);

  it("run again for the same port and socket (QEMU restarted): the port is kept, its VLAN set, the same arguments printed", async () => {
    const r = await up({ TAPBRIDGE_VLAN: "10", TAPBRIDGE_MEM: "none", TAPBRIDGE_TCG: "1" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("vif3.0 is already a vhost-user port of xenbr0");
    expect(r.stdout.trimEnd().split("\n")).toEqual([
      `-chardev socket,id=chr-vif3.0,path=${sock},server=on,wait=off`,
      "-netdev vhost-user,id=net-vif3.0,chardev=chr-vif3.0",
      "-device virtio-net-pci,netdev=net-vif3.0,vectors=0",
    ]);
    expect(await vlanOf("vif3.0")).toMatchObject({ mode: "access", vlans: [10] });
    const back = await up();
    expect(back.code, back.stderr).toBe(0);
    expect(await vlanOf("vif3.0")).toMatchObject({ vlans: "all" });
  }, 60_000);

  it("fails with the reason, prints nothing on stdout and adds no port", async () => {
    const cases: { vars: Record<string, string>; name?: string; code?: number; expect: RegExp }[] = [
      { vars: { TAPBRIDGE_BRIDGE: "xenbr9" }, name: "vif4.0", expect: /qemu-vhost-user-up: cannot add vif4\.0 to bridge xenbr9: .*no_such_bridge/ },
      { vars: { TAPBRIDGE_SOCKET: join(lab.dir, "nothing.sock") }, name: "vif4.0", expect: /cannot add vif4\.0 to bridge xenbr0: .*cannot reach the daemon/ },
      { vars: { TAPBRIDGE_VLAN: "5000" }, name: "vif4.0", code: 2, expect: /cannot add vif4\.0 to xenbr0: TAPBRIDGE_VLAN must be a VLAN id 1-4094, got '5000'/ },
      { vars: { TAPBRIDGE_MAC: "00:16:3e:1" }, name: "vif4.0", code: 2, expect: /TAPBRIDGE_MAC must be a MAC address/ },
      { vars: { TAPBRIDGE_VHOST_SOCKET: "vif4.0.sock" }, name: "vif4.0", code: 2, expect: /TAPBRIDGE_VHOST_SOCKET must be an absolute path/ },
      { vars: { TAPBRIDGE_MEM: "lots" }, name: "vif4.0", code: 2, expect: /TAPBRIDGE_MEM must be a size like 1024M/ },
      { vars: {}, name: "4vif", code: 2, expect: /NAME must be 1-15 letters/ },
      // the name is another kind of port, or the same port on another socket
      { vars: {}, name: "vif9.0", code: 1, expect: /vif9\.0 is already a port of xenbr0 \(tap\), not a vhost-user port in mode client/ },
      { vars: { TAPBRIDGE_VHOST_SOCKET: join(lab.dir, "other.sock") }, code: 1, expect: /vif3\.0 is already a port of xenbr0 \(vhost-user client .*vif3\.0\.sock\), not a vhost-user port in mode client on .*other\.sock/ },
    ];
    for (const c of cases) {
      const r = await up(c.vars, c.name);
      expect(r.code, `${JSON.stringify(c)}: ${r.stderr}`).not.toBe(0);
      if (c.code !== undefined) expect(r.code, r.stderr).toBe(c.code);
      expect(r.stderr).toMatch(c.expect);
      expect(r.stdout).toBe("");
      if (c.name === "vif4.0") expect(await port("vif4.0")).toBeUndefined();
    }
    expect(await port("vif9.0")).toMatchObject({ kind: "tap" });
    expect(await port("vif3.0")).toMatchObject({ kind: "vhost-user", vhost_user: { socket: sock } });
  }, 60_000);

  it("a socket in a missing directory: the directory is made once the port is added", async () => {
    const deep = join(lab.dir, "run", "vif5.0.sock");
    const r = await up({ TAPBRIDGE_VHOST_SOCKET: deep }, "vif5.0");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`created ${dirname(deep)} for the socket`);
    expect(existsSync(dirname(deep))).toBe(true);
    expect(await port("vif5.0")).toMatchObject({ kind: "vhost-user", vhost_user: { socket: deep, mode: "client" } });
    const d = await down({}, "vif5.0");
    expect(d.code, d.stderr).toBe(0);
  }, 30_000);

  it("qemu-vhost-user-down removes the port; a port already gone is no error; an unreachable daemon is", async () => {
    const d = await down();
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toContain("qemu-vhost-user-down: vif3.0 removed from xenbr0");
    expect(await port("vif3.0")).toBeUndefined();
    const again = await down();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("vif3.0 is not a port of xenbr0 (already removed)");
    const bad = await down({ TAPBRIDGE_SOCKET: join(lab.dir, "nothing.sock") });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/qemu-vhost-user-down: cannot remove vif3\.0 from bridge xenbr0: .*cannot reach the daemon/);
  }, 30_000);

  it.skipIf(!guestPrep.ok)("a QEMU guest started with exactly the printed arguments (TAPBRIDGE_TCG=1) pings ext" + (guestPrep.ok ? "" : ` (skipped: ${guestPrep.reason})`), async () => {
    const r = await up({ TAPBRIDGE_MAC: MAC.guest, TAPBRIDGE_MEM: "256M", TAPBRIDGE_TCG: "1" });
    expect(r.code, r.stderr).toBe(0);
    const imgDir = mkdtempSync(join(tmpdir(), "tapbridge-vhost-up-img-"));
    try {
      const { kernel, initrd } = copyImage(imgDir);
      const argv = [
        guestPrep.qemu, "-accel", "tcg", "-nographic", "-m", "256", "-no-reboot",
        "-kernel", kernel, "-initrd", initrd, "-append", appendLine(IP.guest),
        ...r.stdout.trim().split(/\s+/),
      ];
      const guest = new ProcessGuest(lab.spawn("dom0", argv, "qemu (qemu-vhost-user-up's arguments)", { stdin: true }), "guest");
      await guest.waitReady();
      expect(await waitFor(async () => (await port("vif3.0"))?.state === "up", 30_000), `${guest.tail()}\n${lab.daemonLog()}`).toBe(true);
      expect(await guest.pingUntil(IP.ext), `${guest.tail()}\n${lab.daemonLog()}`).toBe(true);
      const p = await guest.ping(IP.ext, 5);
      expect(p.ok, p.out).toBe(true);
      await guest.kill("SIGTERM");
      const d = await down();
      expect(d.code, d.stderr).toBe(0);
      expect(await port("vif3.0")).toBeUndefined();
    } finally {
      rmSync(imgDir, { recursive: true, force: true });
    }
  }, 180_000);
});
