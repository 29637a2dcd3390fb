// Privileged test of issue 6: a real QEMU guest on tapbridge. The daemon runs in a dom0 namespace with bridge xenbr0 and
// an uplink (veth) to an external host; QEMU (TCG) runs inside dom0 too, so the TAP it creates appears where the daemon
// is. The guest is Debian's kernel (linux-image package unpacked with dpkg -x, never installed) with a busybox
// initramfs that loads the virtio_net module chain and answers commands on its serial console (scripts/guest/).
//
//   guest eth0 (virtio-net, 00:16:3e:06:01:00) 198.18.6.21
//     ~~ TAP vif1.0 (QEMU's; scripts/qemu-ifup adds it as an attach port, qemu-ifdown removes it)
//   guest eth0 (00:16:3e:06:02:00) 198.18.6.22 ~~ TAP vif2.0 (config port with `create`, QEMU unprivileged, script=no)
//                                       dom0: tapbridge xenbr0 --- peth0 (AF_PACKET) ~~ veth ~~ ext eth0 198.18.6.3
//                                                              --- vif10.0 (attach, VLAN 10) ~~ veth ~~ vm10 eth0 198.18.7.3
//
// Skips with the reason when not root, or (outside CI) when qemu-system-x86_64 is missing or the guest image cannot be
// built. In CI (CI=true, root, scripts/setup-test-deps.sh has run) a missing QEMU or image is a failure, not a skip.
// Nothing touches the root namespace; QEMU and the daemon are stopped by PID on every exit path (Lab.destroy).

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, REPO_ROOT, canRunNetns, run, waitFor } from "./helpers.js";
import { BOOT_TIMEOUT_MS, NOBODY, ProcessGuest, appendLine, copyImage, guestToHost, hostToGuest, prepareGuest } from "./qemu-helpers.js";
import type { MacEntry, PortStats, ShowBridge, ShowPort } from "../support/json-shapes.js";

const BRIDGE = "xenbr0";
const IFUP = join(REPO_ROOT, "scripts/qemu-ifup");
const IFDOWN = join(REPO_ROOT, "scripts/qemu-ifdown");

const IP = { ext: "198.18.6.3", vm10: "198.18.7.3", g1: "198.18.6.21", g2: "198.18.6.22", g1v10: "198.18.7.21" };
const IP6 = { ext: "2001:db8:6::3", g1: "2001:db8:6::21" };
const MAC = { g1: "00:16:3e:06:01:00", g2: "00:16:3e:06:02:00" };
const TRANSFER_MB = 8;

// ------------------------------------------------------------------------------------------------ can it run?

const support = canRunNetns();
const IN_CI = process.env.CI === "true" || process.env.CI === "1";
const prep = prepareGuest();
// In CI a missing QEMU or guest image must fail the run rather than pass it by skipping.
const skip = !prep.ok && !(IN_CI && support.ok);
if (skip) console.warn(`QEMU guest tests skipped: ${prep.reason}`);
const skipNote = skip ? ` (skipped: ${prep.reason})` : "";

// ------------------------------------------------------------------------------------------------ the tests

describe.skipIf(skip)("QEMU guest on tapbridge (issue 6)" + skipNote, () => {
  let lab: Lab;
  let imgDir = "";
  let image: { kernel: string; initrd: string };
  const guests: ProcessGuest[] = [];
  const results: Record<string, string> = {};

  /** The environment QEMU passes to qemu-ifup/qemu-ifdown. */
  function scriptEnv(vlan?: number): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // the scripts run `node`: the one running this test
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? "/usr/bin:/bin"}`,
      TAPBRIDGE_SOCKET: lab.socketPath,
      TAPBRIDGE_BRIDGE: BRIDGE,
    };
    delete env.TAPBRIDGE_VLAN;
    if (vlan !== undefined) env.TAPBRIDGE_VLAN = String(vlan);
    return env;
  }

  /**
   * Start QEMU in dom0. `script`: docs/qemu-libvirt.md's first way (qemu-ifup/qemu-ifdown, TAPBRIDGE_* from the environment).
   * `create`: the second way: QEMU opens the daemon's persistent TAP by name with script=no, as the TAP's owner
   * (uid/gid 65534, no capabilities).
   */
  function startQemu(o: {
    name: string;
    ifname: string;
    mac: string;
    ip4: string;
    ip6?: string;
    way: "script" | "create";
    vlan?: number;
    env?: NodeJS.ProcessEnv;
  }): ProcessGuest {
    const { kernel, initrd } = image;
    const netdev =
      o.way === "script"
        ? `tap,id=n0,ifname=${o.ifname},script=${IFUP},downscript=${IFDOWN}`
        : `tap,id=n0,ifname=${o.ifname},script=no,downscript=no`;
    const qemuArgv = [
      prep.qemu, "-accel", "tcg", "-nographic", "-m", "256", "-no-reboot",
      "-kernel", kernel, "-initrd", initrd, "-append", appendLine(o.ip4, o.ip6),
      "-netdev", netdev, "-device", `virtio-net-pci,netdev=n0,mac=${o.mac}`,
    ];
    const env = { ...scriptEnv(o.vlan), ...(o.env ?? {}) };
    let argv = qemuArgv;
    if (o.way === "create") {
      const drop = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--inh-caps=-all", ...qemuArgv];
      // An unprivileged QEMU needs a world-usable /dev/net/tun (udev makes it 0666 on a normal system). Where it is not
      // (a container), bind a 0666 node of the same device over it in a private mount namespace of QEMU's own.
      const tunMode = statSync("/dev/net/tun").mode;
      if ((tunMode & 0o006) !== 0o006) {
        const tunNode = join(lab.dir, "tun");
        if (!existsSync(tunNode)) execFileSync("mknod", ["-m", "666", tunNode, "c", "10", "200"], { stdio: "pipe" });
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /dev/net/tun && exec "$@"', tunNode, ...drop];
      } else {
        argv = drop;
      }
    }
    const g = new ProcessGuest(lab.spawn("dom0", argv, `qemu ${o.name}`, { stdin: true, env }), o.name);
    guests.push(g);
    return g;
  }

  async function showmacs(): Promise<MacEntry[]> {
    return lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
  }
  async function port(name: string): Promise<ShowPort | undefined> {
    const br = (await lab.cliJson<ShowBridge[]>(["show"])).find((b) => b.name === BRIDGE);
    return br?.ports.find((p) => p.name === name);
  }
  async function portStats(name: string): Promise<PortStats | undefined> {
    const s = await lab.cliJson<{ bridge: string; ports: PortStats[] }[]>(["stats"]);
    return s.find((b) => b.bridge === BRIDGE)?.ports.find((p) => p.name === name);
  }
  function learnedOn(macs: MacEntry[], mac: string, portName: string): boolean {
    return macs.some((e) => e.mac === mac && e.port === portName);
  }

  beforeAll(async () => {
    if (!prep.ok) throw new Error(`QEMU guest test cannot run: ${prep.reason}`);
    imgDir = mkdtempSync(join(tmpdir(), "tapbridge-qemu-img-"));
    chmodSync(imgDir, 0o755);
    image = copyImage(imgDir);

    lab = new Lab("qemu");
    for (const node of ["dom0", "ext", "vm10"]) await lab.addNs(node);
    // dom0's own stack stays off the bridge (the daemon also silences every port it opens)
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.addVeth("dom0", "peth0", "ext", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await lab.configureHost("ext", "eth0", IP.ext, IP6.ext);
    // a host in VLAN 10 on an access port (a veth the daemon attaches to)
    await lab.addVeth("dom0", "vif10.0", "vm10", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif10.0", "up"]);
    await lab.configureHost("vm10", "eth0", IP.vm10);

    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [
        {
          name: BRIDGE,
          uplink: { interface: "peth0" },
          // the second way: a persistent TAP owned by nobody, opened by an unprivileged QEMU
          ports: [
            { name: "vif2.0", kind: "attach", create: { owner: NOBODY, group: NOBODY } },
            { name: "vif10.0", kind: "attach", vlan: 10 },
          ],
        },
      ],
    });
    await lab.startDaemon("dom0");
  });

  afterAll(async () => {
    try {
      for (const g of guests) await g.bg.stop(3_000);
      await lab?.destroy();
    } finally {
      if (imgDir) rmSync(imgDir, { recursive: true, force: true });
      const lines = Object.entries(results).map(([k, v]) => `  ${k}: ${v}`);
      if (lines.length > 0) console.log(`QEMU guest results (TCG):\n${lines.join("\n")}`);
    }
  });

  let g1: ProcessGuest;

  it("qemu-ifup adds QEMU's TAP as an attach port; the guest boots and the daemon brought the TAP up", async () => {
    g1 = startQemu({ name: "guest1", ifname: "vif1.0", mac: MAC.g1, ip4: IP.g1, ip6: IP6.g1, way: "script" });
    await g1.waitReady();
    results["image build or cache check (scripts/guest/build-image.sh)"] = `${(prep.buildMs / 1000).toFixed(1)} s`;
    results["boot to @@READY (first boot)"] = `${(g1.bootMs / 1000).toFixed(1)} s`;
    expect(g1.bg.stderr).toContain("qemu-ifup: vif1.0 added to xenbr0");
    const p = await port("vif1.0");
    expect(p).toMatchObject({ name: "vif1.0", kind: "attach", state: "up" });
    const link = JSON.parse((await lab.ip("dom0", ["-j", "link", "show", "dev", "vif1.0"])).stdout)[0] as {
      mtu: number;
      txqlen: number;
      flags: string[];
    };
    expect(link.mtu).toBe(1500);
    expect(link.txqlen).toBe(10000);
    expect(link.flags).toContain("UP");
  }, BOOT_TIMEOUT_MS + 30_000);

  it("the guest gets ping replies from the external host through the bridge (IPv4 and IPv6), and answers its pings", async () => {
    expect(await g1.pingUntil(IP.ext), g1.tail()).toBe(true);
    const p = await g1.ping(IP.ext, 20);
    expect(p.ok, p.out).toBe(true);
    results["guest -> ext ping RTT avg (20 pings)"] = `${p.avgMs} ms`;
    const p6 = await g1.ping(IP6.ext, 3, true);
    expect(p6.ok, p6.out).toBe(true);
    const back = await lab.ping("ext", IP.g1, 3);
    expect(back.ok, back.output).toBe(true);
  });

  it(`guest -> external host: ${TRANSFER_MB} MB over TCP with the virtio-net offloads at their defaults (TSO, partial checksums)`, async () => {
    const before = await portStats("vif1.0");
    const res = await guestToHost(g1, lab, "ext", IP.ext, 5001, TRANSFER_MB);
    expect(res.bytes).toBe(TRANSFER_MB * 1024 * 1024);
    expect(res.receivedSha256).toBe(res.sentSha256);
    results["guest -> ext TCP"] = `${((res.bytes / res.seconds) * 8 / 1e6).toFixed(0)} Mbit/s (${TRANSFER_MB} MiB in ${res.seconds.toFixed(2)} s)`;
    // TSO from the guest: at least one GSO super-frame crossed vif1.0 (counted from the vnet header's gso_type). The
    // average size is no test: a TCG guest under load sends MSS-sized segments most of the time (1,319 bytes on average
    // in one CI run), so asserting more than 1514 bytes per packet depended on the machine's speed.
    const after = await portStats("vif1.0");
    const pkts = (after?.rx_packets ?? 0) - (before?.rx_packets ?? 0);
    const bytes = (after?.rx_bytes ?? 0) - (before?.rx_bytes ?? 0);
    const gso = (after?.rx_gso_packets ?? 0) - (before?.rx_gso_packets ?? 0);
    expect(bytes).toBeGreaterThanOrEqual(TRANSFER_MB * 1024 * 1024);
    expect(gso, `vif1.0 received ${pkts} packets, ${bytes} bytes, no GSO frame among them`).toBeGreaterThan(0);
    results["vif1.0 rx during guest -> ext"] = `${pkts} packets, ${gso} GSO, ${(bytes / pkts).toFixed(0)} bytes/packet`;
  }, 180_000);

  it(`external host -> guest: ${TRANSFER_MB} MB over TCP`, async () => {
    const res = await hostToGuest(g1, lab, "ext", IP.g1, 5002, TRANSFER_MB);
    expect(res.bytes).toBe(TRANSFER_MB * 1024 * 1024);
    expect(res.receivedSha256).toBe(res.sentSha256);
    results["ext -> guest TCP"] = `${((res.bytes / res.seconds) * 8 / 1e6).toFixed(0)} Mbit/s (${TRANSFER_MB} MiB in ${res.seconds.toFixed(2)} s, sender's clock)`;
  }, 180_000);

  it("the guest's MAC is learned on its vif (showmacs -j)", async () => {
    await g1.ping(IP.ext, 1);
    const macs = await showmacs();
    expect(macs.find((e) => e.mac === MAC.g1)).toMatchObject({ port: "vif1.0", mac: MAC.g1, vlan: 0, static: false });
  });

  it("QEMU killed (SIGKILL, no down-script): the port goes absent and its FDB entries are flushed", async () => {
    await g1.kill("SIGKILL");
    const gone = await waitFor(async () => !learnedOn(await showmacs(), MAC.g1, "vif1.0"), 10_000, 100);
    expect(gone, JSON.stringify(await showmacs())).toBe(true);
    expect(await port("vif1.0")).toMatchObject({ state: "absent" });
    expect(await waitFor(async () => !(await lab.linkExists("dom0", "vif1.0")), 10_000)).toBe(true);
  }, 60_000);

  it("QEMU started again with the same ifname: qemu-ifup keeps the port, it forwards again; SIGTERM runs qemu-ifdown", async () => {
    const g = startQemu({ name: "guest1-again", ifname: "vif1.0", mac: MAC.g1, ip4: IP.g1, way: "script" });
    await g.waitReady();
    results["boot to @@READY (second boot)"] = `${(g.bootMs / 1000).toFixed(1)} s`;
    expect(g.bg.stderr).toContain("qemu-ifup: vif1.0 is already an attach port of xenbr0");
    expect(await g.pingUntil(IP.ext), g.tail()).toBe(true);
    expect((await lab.ping("ext", IP.g1, 3)).ok).toBe(true);
    expect(learnedOn(await showmacs(), MAC.g1, "vif1.0")).toBe(true);
    expect(await port("vif1.0")).toMatchObject({ kind: "attach", state: "up" });
    // a clean QEMU exit runs the down-script: the port leaves the bridge
    await g.kill("SIGTERM");
    expect(g.bg.stderr).toContain("qemu-ifdown: vif1.0 removed from xenbr0");
    expect(await port("vif1.0")).toBeUndefined();
    expect(learnedOn(await showmacs(), MAC.g1, "vif1.0")).toBe(false);
  }, BOOT_TIMEOUT_MS + 60_000);

  it("TAPBRIDGE_VLAN=10: qemu-ifup adds the port in access VLAN 10; the guest reaches the host in VLAN 10", async () => {
    const g = startQemu({ name: "guest1-vlan10", ifname: "vif1.0", mac: MAC.g1, ip4: IP.g1v10, way: "script", vlan: 10 });
    await g.waitReady();
    expect(g.bg.stderr).toContain("qemu-ifup: vif1.0 added to xenbr0 as an attach port in VLAN 10");
    const vlans = await lab.cliJson<{ port: string; mode: string; vlans: number[] | "all"; native: number | null }[]>(["vlan", "show", BRIDGE]);
    expect(vlans.find((v) => v.port === "vif1.0")).toMatchObject({ mode: "access", vlans: [10], native: 10 });
    expect(await g.pingUntil(IP.vm10), g.tail()).toBe(true);
    expect((await showmacs()).find((e) => e.mac === MAC.g1)).toMatchObject({ port: "vif1.0", vlan: 10 });

    // daemon restart: the port qemu-ifup added is runtime state, recorded in the state file and replayed at start
    // (issue 11), so it is back by itself in VLAN 10 and the guest reaches the host again without any script
    await lab.stopDaemon();
    await lab.startDaemon("dom0");
    expect(await port("vif1.0")).toMatchObject({ kind: "attach" });
    const back = await lab.cliJson<{ port: string; mode: string; vlans: number[] | "all"; native: number | null }[]>(["vlan", "show", BRIDGE]);
    expect(back.find((v) => v.port === "vif1.0")).toMatchObject({ mode: "access", vlans: [10], native: 10 });
    expect(await g.pingUntil(IP.vm10), g.tail()).toBe(true);
    // running qemu-ifup again for the running guest finds the port and keeps it
    const again = await run(IFUP, ["vif1.0"], { env: scriptEnv(10), check: false });
    expect(again.code, again.stderr).toBe(0);
    expect(await g.pingUntil(IP.vm10), g.tail()).toBe(true);
    expect(learnedOn(await showmacs(), MAC.g1, "vif1.0")).toBe(true);

    await g.kill("SIGTERM");
    expect(await port("vif1.0")).toBeUndefined();
  }, BOOT_TIMEOUT_MS + 60_000);

  it("qemu-ifup fails with the reason (unknown bridge, unreachable daemon, bad VLAN) and QEMU refuses to start", async () => {
    const cases: { env: NodeJS.ProcessEnv; vlan?: number; expect: RegExp }[] = [
      { env: { TAPBRIDGE_BRIDGE: "xenbr9" }, expect: /qemu-ifup: cannot add vif3\.0 to bridge xenbr9: .*no_such_bridge/ },
      { env: { TAPBRIDGE_SOCKET: join(lab.dir, "nothing.sock") }, expect: /qemu-ifup: cannot add vif3\.0 to bridge xenbr0: .*cannot reach the daemon/ },
      { env: { TAPBRIDGE_VLAN: "5000" }, expect: /qemu-ifup: cannot add vif3\.0 to xenbr0: TAPBRIDGE_VLAN must be a VLAN id 1-4094/ },
    ];
    for (const c of cases) {
      const g = startQemu({ name: "guest-ifup-fails", ifname: "vif3.0", mac: "00:16:3e:06:03:00", ip4: "198.18.6.23", way: "script", env: c.env });
      await g.bg.wait(30_000);
      expect(g.bg.exitCode, g.tail()).not.toBe(0);
      expect(g.bg.stderr).toMatch(c.expect);
      expect(g.console).not.toContain("@@BOOT");
      expect(await port("vif3.0")).toBeUndefined();
    }
  }, 120_000);

  it("the second way: config port with create {owner, group}; an unprivileged QEMU opens the TAP by name (script=no)", async () => {
    // the daemon made a persistent TAP owned by nobody and holds no fd on it: no carrier yet
    const owner = await lab.exec("dom0", ["cat", "/sys/class/net/vif2.0/owner", "/sys/class/net/vif2.0/group"]);
    expect(owner.stdout.trim().split(/\s+/)).toEqual([String(NOBODY), String(NOBODY)]);
    expect(await port("vif2.0")).toMatchObject({ kind: "attach", state: "down" });

    const g = startQemu({ name: "guest2", ifname: "vif2.0", mac: MAC.g2, ip4: IP.g2, way: "create" });
    await g.waitReady();
    results["boot to @@READY (unprivileged QEMU)"] = `${(g.bootMs / 1000).toFixed(1)} s`;
    expect(await waitFor(async () => (await port("vif2.0"))?.state === "up", 10_000)).toBe(true);
    expect(await g.pingUntil(IP.ext), g.tail()).toBe(true);
    const p = await g.ping(IP.ext, 5);
    expect(p.ok, p.out).toBe(true);
    expect((await lab.ping("ext", IP.g2, 3)).ok).toBe(true);
    expect(learnedOn(await showmacs(), MAC.g2, "vif2.0")).toBe(true);

    // daemon restart: the config port finds its TAP (still open in QEMU) and attaches again; the guest is back
    await lab.stopDaemon();
    await lab.startDaemon("dom0");
    expect(await waitFor(async () => (await port("vif2.0"))?.state === "up", 10_000)).toBe(true);
    expect(await g.pingUntil(IP.ext), g.tail()).toBe(true);
    expect(learnedOn(await showmacs(), MAC.g2, "vif2.0")).toBe(true);

    // QEMU gone: the persistent TAP stays (owned by nobody) without carrier; the port is down and flushed
    await g.kill("SIGKILL");
    expect(await waitFor(async () => !learnedOn(await showmacs(), MAC.g2, "vif2.0"), 10_000, 100)).toBe(true);
    expect(await port("vif2.0")).toMatchObject({ state: "down" });
    expect(await lab.linkExists("dom0", "vif2.0")).toBe(true);
  }, BOOT_TIMEOUT_MS + 60_000);
});
