// Privileged test of issue 23 with libvirt, the way most people start QEMU: the test runs libvirt's daemon itself (no
// systemd here) as an unprivileged user in session mode with private XDG directories, in the dom0 namespace, and boots
// two domains of type='qemu' (TCG) with `virsh define` + `virsh start`, one after the other:
//
//   guest eth0 (vhostuser, 00:16:3e:00:03:00) 198.18.25.21 ~~ vif3.0 (kind vhost-user, mode client: QEMU listens)
//   guest eth0 (ethernet,  00:16:3e:00:07:00) 198.18.25.22 ~~ TAP vif7.0 (attach, create {owner, group}: nobody)
//                                        dom0: tapbridge xenbr0 --- peth0 (AF_PACKET) ~~ veth ~~ ext eth0 198.18.25.3
//
// Each domain's XML is the docs' snippet, read from the page between its `test-snippet` marker and used verbatim
// (docs/vhost-user.md "libvirt": <interface type='vhostuser'> with shared memfd memory, its socket path replaced by one
// in the test's temp dir; docs/qemu-libvirt.md: <interface type='ethernet'><target dev='vif7.0' managed='no'/>), with
// the test's name, memory, direct kernel boot and a serial console on a Unix socket inserted. The guest's agent
// (scripts/guest/init) answers on that console; each guest pings ext through tapbridge and its MAC is learned on its port;
// the ethernet guest's TCP to ext carries TSO super-frames (libvirt opened the TAP with a vnet header).
//
// Skips with the reason when not root, or when libvirtd, virsh, QEMU or the guest image are missing. Each domain is
// destroyed and undefined, its QEMU killed by the PID libvirt recorded if it is still there, and libvirtd stopped by
// PID, on every exit path.

import { existsSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Background, type Lab, run, uplinkLab, waitFor } from "./helpers.js";
import { BOOT_TIMEOUT_MS, Guest, type GuestPrep, NOBODY, SocketConsole, copyImage, docSnippet, guestToHost, prepareGuest } from "./qemu-helpers.js";
import type { BridgeStats, MacEntry, ShowBridge } from "../support/json-shapes.js";

const BRIDGE = "xenbr0";
const IP = { ext: "198.18.25.3", vhost: "198.18.25.21", ethernet: "198.18.25.22" };
/** The snippets' MACs and the path docs/vhost-user.md's snippet names (the test's socket replaces it). */
const MAC = { vhost: "00:16:3e:00:03:00", ethernet: "00:16:3e:00:07:00" };
const DOC_SOCKET = "/run/tapbridge/vif3.0.sock";

function prepare(): GuestPrep {
  if (!existsSync("/usr/sbin/libvirtd") || !existsSync("/usr/bin/virsh")) {
    return { ok: false, reason: "libvirtd or virsh is not installed (Debian libvirt-daemon, libvirt-clients: scripts/setup-test-deps.sh)", qemu: "", buildMs: 0 };
  }
  return prepareGuest();
}
const prep = prepare();
if (!prep.ok) console.warn(`libvirt tests skipped: ${prep.reason}`);

/**
 * A whole domain from a docs snippet (a `<domain type='qemu' ...>` whose `<devices>` holds the interface): the
 * snippet's text unchanged, with `head` inserted after the `<domain>` line and `devices` before `</devices>`.
 */
function domainXml(snippet: string, head: string, devices: string): string {
  const open = snippet.indexOf("\n") + 1;
  const close = snippet.lastIndexOf("  </devices>\n");
  if (!snippet.startsWith("<domain type='qemu'") || close < 0) throw new Error(`not a <domain type='qemu'> with <devices>:\n${snippet}`);
  return snippet.slice(0, open) + head + snippet.slice(open, close) + devices + snippet.slice(close);
}

describe.skipIf(!prep.ok)("libvirt domains on tapbridge (issue 23)" + (prep.ok ? "" : ` (skipped: ${prep.reason})`), () => {
  let lab: Lab;
  let dir = "";
  let image: { kernel: string; initrd: string };
  let libvirtd: Background | undefined;
  const vhostSock = (): string => join(dir, "sock", "vif3.0.sock");
  /** QEMU PIDs libvirt recorded for the domains this test started. */
  const qemuPids: number[] = [];
  const consoles: SocketConsole[] = [];
  const defined: string[] = [];

  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH, HOME: join(dir, "home"), XDG_CONFIG_HOME: join(dir, "cfg"), XDG_RUNTIME_DIR: join(dir, "run"), XDG_CACHE_HOME: join(dir, "cache"),
  });
  const asNobody = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--inh-caps=-all"];
  const virsh = (args: string[]) => run(asNobody[0], [...asNobody.slice(1), "virsh", "-c", "qemu:///session", ...args], { check: false, timeoutMs: 60_000, env: env() });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tapbridge-libvirt-"));
    chmodSync(dir, 0o755);
    for (const d of ["home", "cfg", "run", "cache", "sock"]) {
      mkdirSync(join(dir, d));
      chownSync(join(dir, d), NOBODY, NOBODY);
    }
    image = copyImage(dir);
    lab = await uplinkLab("libvirt", [], IP.ext);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{
        name: BRIDGE,
        uplink: { interface: "peth0" },
        ports: [
          { name: "vif3.0", kind: "vhost-user", socket: vhostSock() },
          // docs/qemu-libvirt.md: the session daemon runs as nobody, so the TAP is nobody's
          { name: "vif7.0", kind: "attach", create: { owner: NOBODY, group: NOBODY } },
        ],
      }],
    });
    await lab.startDaemon("dom0");
    // libvirtd in session mode, as nobody, with private directories (no systemd, no system bus)
    libvirtd = lab.spawn("dom0", ["env", ...Object.entries(env()).map(([k, v]) => `${k}=${v}`), ...asNobody, "libvirtd", "--timeout", "600"], "libvirtd");
    const bg = libvirtd;
    if (!(await waitFor(() => existsSync(join(dir, "run/libvirt/libvirt-sock")) || !bg.running, 20_000))) throw new Error(`libvirtd did not start: ${bg.stderr}`);
  }, 60_000);

  afterAll(async () => {
    try {
      for (const c of consoles) c.close();
      if (libvirtd?.running) {
        for (const name of defined) {
          await virsh(["destroy", name]);
          await virsh(["undefine", name]);
        }
      }
      // a QEMU libvirt could not stop: by the PID it recorded
      for (const pid of qemuPids) {
        try {
          // only while that PID is still a QEMU (not a reused PID)
          if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu-system")) process.kill(pid, "SIGKILL");
        } catch {
          /* gone, as expected */
        }
      }
      await lab?.destroy();
    } finally {
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    }
  });

  async function portState(name: string): Promise<string | undefined> {
    return (await lab.cliJson<ShowBridge[]>(["show"]))[0]?.ports.find((p) => p.name === name)?.state;
  }
  async function learnedOn(mac: string, port: string): Promise<boolean> {
    return (await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE])).some((e) => e.mac === mac && e.port === port);
  }

  async function gsoPackets(name: string): Promise<number> {
    return (await lab.cliJson<BridgeStats[]>(["stats"]))[0]?.ports.find((p) => p.name === name)?.rx_gso_packets ?? 0;
  }

  /** virsh define + start of a domain built from a docs snippet; resolves with the guest once its agent is ready. */
  async function boot(name: string, snippet: string, ip4: string): Promise<Guest> {
    const consolePath = join(dir, "home", `${name}.console`);
    const head = [
      `  <name>${name}</name>`,
      `  <memory unit='MiB'>256</memory>`,
      `  <vcpu>1</vcpu>`,
      `  <os>`,
      `    <type arch='x86_64' machine='pc'>hvm</type>`,
      `    <kernel>${image.kernel}</kernel>`,
      `    <initrd>${image.initrd}</initrd>`,
      `    <cmdline>console=ttyS0 loglevel=3 panic=-1 tbguest.ip=${ip4}/24</cmdline>`,
      `  </os>`,
    ].join("\n") + "\n";
    const devices = [
      `    <emulator>${prep.qemu}</emulator>`,
      `    <serial type='unix'><source mode='bind' path='${consolePath}'/><target port='0'/></serial>`,
    ].join("\n") + "\n";
    const xmlPath = join(dir, `${name}.xml`);
    writeFileSync(xmlPath, domainXml(snippet, head, devices));
    chmodSync(xmlPath, 0o644);
    const def = await virsh(["define", xmlPath]);
    expect(def.code, `${def.stderr}\n${readFileSync(xmlPath, "utf8")}`).toBe(0);
    defined.push(name);
    const start = await virsh(["start", name]);
    expect(start.code, `${start.stderr}\n${lab.daemonLog()}`).toBe(0);
    const pidFile = join(dir, "run/libvirt/qemu/run", `${name}.pid`);
    if (existsSync(pidFile)) qemuPids.push(Number(readFileSync(pidFile, "utf8").trim()));
    // QEMU listens on the console socket before the guest runs: connect, then wait for the agent
    const io = await SocketConsole.open(consolePath);
    consoles.push(io);
    const guest = new Guest(io, name);
    await guest.waitReady();
    return guest;
  }

  /** The port comes up, the guest (at `ip`, `mac`) and ext ping each other, and the port learns the guest's MAC. */
  async function expectGuestOnPort(guest: Guest, port: string, ip: string, mac: string): Promise<void> {
    expect(await waitFor(async () => (await portState(port)) === "up", 30_000, 500), lab.daemonLog()).toBe(true);
    expect(await guest.pingUntil(IP.ext), `${guest.tail()}\n${lab.daemonLog()}`).toBe(true);
    const p = await guest.ping(IP.ext, 5);
    expect(p.ok, p.out).toBe(true);
    expect((await lab.ping("ext", ip, 3)).ok).toBe(true);
    expect(await learnedOn(mac, port)).toBe(true);
  }

  async function shutdown(name: string): Promise<void> {
    const d = await virsh(["destroy", name]);
    expect(d.code, d.stderr).toBe(0);
  }

  it("<interface type='vhostuser'> (docs/vhost-user.md): the NIC comes up on the vhost-user port, the guest pings ext", async () => {
    const snippet = docSnippet("vhost-user.md", "libvirt-vhostuser");
    expect(snippet.split(DOC_SOCKET).length, `docs/vhost-user.md's snippet names ${DOC_SOCKET} once`).toBe(2);
    const guest = await boot(`${lab.prefix}-vhost`, snippet.replace(DOC_SOCKET, vhostSock()), IP.vhost);
    await expectGuestOnPort(guest, "vif3.0", IP.vhost, MAC.vhost);
    await shutdown(`${lab.prefix}-vhost`);
  }, BOOT_TIMEOUT_MS + 60_000);

  it("<interface type='ethernet'> managed='no' (docs/qemu-libvirt.md) on a create port: libvirt opens the TAP by name, the guest pings ext", async () => {
    // the daemon made the TAP, owned by nobody; no carrier until libvirt's QEMU holds it
    const owner = await lab.exec("dom0", ["cat", "/sys/class/net/vif7.0/owner", "/sys/class/net/vif7.0/group"]);
    expect(owner.stdout.trim().split(/\s+/)).toEqual([String(NOBODY), String(NOBODY)]);
    expect(await portState("vif7.0")).toBe("down");
    const name = `${lab.prefix}-eth`;
    const guest = await boot(name, docSnippet("qemu-libvirt.md", "libvirt-ethernet"), IP.ethernet);
    await expectGuestOnPort(guest, "vif7.0", IP.ethernet, MAC.ethernet);
    // libvirt opened the TAP with IFF_VNET_HDR (virtio model), so QEMU offered TSO to the guest: its TCP super-frames
    // cross vif7.0 (without a vnet header on QEMU's fd the guest would send MSS-sized frames only)
    const gsoBefore = await gsoPackets("vif7.0");
    const t = await guestToHost(guest, lab, "ext", IP.ext, 5001, 4);
    expect(t.bytes).toBe(4 * 1024 * 1024);
    expect(t.receivedSha256).toBe(t.sentSha256);
    expect((await gsoPackets("vif7.0")) - gsoBefore, lab.daemonLog()).toBeGreaterThan(0);
    // virsh destroy: QEMU closes the TAP, which stays (persistent, nobody's); the port goes down and is flushed
    await shutdown(name);
    expect(await waitFor(async () => (await portState("vif7.0")) === "down", 10_000, 200), lab.daemonLog()).toBe(true);
    expect(await waitFor(async () => !(await learnedOn(MAC.ethernet, "vif7.0")), 10_000, 200)).toBe(true);
    expect(await lab.linkExists("dom0", "vif7.0")).toBe(true);
  }, BOOT_TIMEOUT_MS + 60_000);
});
