// Privileged test of issue 23 §1 with libvirt, the way most people start QEMU: the test runs libvirt's daemon itself
// (no systemd here) as an unprivileged user in session mode with private XDG directories, defines a domain of
// type='qemu' with `virsh define` from docs/vhost-user.md's snippet (<interface type='vhostuser'> and
// <memoryBacking><source type='memfd'/><access mode='shared'/>), and starts it. The guest's NIC comes up on tapbridge's
// vhost-user port (mode client: libvirt's QEMU listens) and its MAC is learned there.
// `-global virtio-net-pci.vectors=0` (qemu:commandline): QEMU 7.2 under TCG segfaults with MSI-X on a vhost-user NIC.
//
// Skips with the reason when not root, or when libvirtd, virsh, QEMU or the guest image are missing. The domain is
// destroyed and undefined, libvirtd stopped by PID, on every exit path.

import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, REPO_ROOT, canRunNetns, run, waitFor } from "./helpers.js";
import type { MacEntry, ShowBridge } from "../support/json-shapes.js";

const NOBODY = 65534;
const IMAGE_DIR = process.env.TAPBRIDGE_GUEST_DIR ?? join(REPO_ROOT, "test/.tmp/guest");
const MAC = "00:16:3e:25:01:00";
const support = canRunNetns();

/** The guest image, built (or found cached) by scripts/guest/build-image.sh as the QEMU tests do: "" or why not. */
function buildImage(): string {
  try {
    execFileSync("bash", [join(REPO_ROOT, "scripts/guest/build-image.sh"), IMAGE_DIR], { stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });
    return existsSync(join(IMAGE_DIR, "vmlinuz")) ? "" : `no guest image in ${IMAGE_DIR} after scripts/guest/build-image.sh`;
  } catch (e) {
    return `the guest image cannot be built (scripts/guest/build-image.sh): ${String((e as Error).message).slice(-800)}`;
  }
}

const reason = !support.ok ? support.reason
  : !existsSync("/usr/sbin/libvirtd") || !existsSync("/usr/bin/virsh") ? "libvirtd or virsh is not installed (Debian libvirt-daemon, libvirt-clients: scripts/setup-test-deps.sh)"
  : !existsSync("/usr/bin/qemu-system-x86_64") ? "qemu-system-x86_64 is not installed"
  : buildImage();
if (reason !== "") console.warn(`libvirt vhost-user test skipped: ${reason}`);

describe.skipIf(reason !== "")("libvirt domain with <interface type='vhostuser'>" + (reason === "" ? "" : ` (skipped: ${reason})`), () => {
  let lab: Lab;
  let dir = "";
  let libvirtdPid = 0;
  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH, HOME: join(dir, "home"), XDG_CONFIG_HOME: join(dir, "cfg"), XDG_RUNTIME_DIR: join(dir, "run"), XDG_CACHE_HOME: join(dir, "cache"),
  });
  const asNobody = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--inh-caps=-all"];
  const virsh = (args: string[]) => run(asNobody[0], [...asNobody.slice(1), "virsh", "-c", "qemu:///session", ...args], { check: false, timeoutMs: 60_000, env: env() });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tapbridge-libvirt-"));
    chmodSync(dir, 0o755);
    for (const d of ["home", "cfg", "run", "cache"]) {
      mkdirSync(join(dir, d));
      chownSync(join(dir, d), NOBODY, NOBODY);
    }
    const sockDir = join(dir, "sock");
    mkdirSync(sockDir);
    chownSync(sockDir, NOBODY, NOBODY);
    for (const f of ["vmlinuz", "initrd.gz"]) {
      copyFileSync(join(IMAGE_DIR, f), join(dir, f));
      chmodSync(join(dir, f), 0o644);
    }
    const sock = join(sockDir, "vif3.0.sock");
    lab = new Lab("libvirt");
    await lab.addNs("dom0");
    lab.writeConfig({ control_socket: lab.socketPath, bridges: [{ name: "xenbr0", ports: [{ name: "vif3.0", kind: "vhost-user", socket: sock }] }] });
    await lab.startDaemon("dom0");
    // libvirtd in session mode, as nobody, with private directories (no systemd, no system bus)
    const bg = lab.spawn("dom0", ["env", ...Object.entries(env()).map(([k, v]) => `${k}=${v}`), ...asNobody, "libvirtd", "--timeout", "600"], "libvirtd");
    libvirtdPid = bg.pid ?? 0;
    if (!(await waitFor(() => existsSync(join(dir, "run/libvirt/libvirt-sock")) || !bg.running, 20_000))) throw new Error(`libvirtd did not start: ${bg.stderr}`);
    // docs/vhost-user.md's snippet, with a direct kernel boot and vectors=0 for TCG
    writeFileSync(join(dir, "dom.xml"), `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${lab.prefix}</name>
  <memory unit='MiB'>256</memory>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${join(dir, "vmlinuz")}</kernel>
    <initrd>${join(dir, "initrd.gz")}</initrd>
    <cmdline>console=ttyS0 loglevel=3 panic=-1 tbguest.ip=198.18.25.21/24</cmdline>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='vhostuser'>
      <mac address='${MAC}'/>
      <source type='unix' path='${sock}' mode='server'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='${join(dir, "home", "console.log")}'/><target port='0'/></serial>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='virtio-net-pci.vectors=0'/>
  </qemu:commandline>
</domain>
`);
    chmodSync(join(dir, "dom.xml"), 0o644);
  }, 60_000);

  afterAll(async () => {
    if (dir !== "" && libvirtdPid > 0) {
      await virsh(["destroy", lab.prefix]);
      await virsh(["undefine", lab.prefix]);
    }
    await lab?.destroy();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("virsh define + start: the guest's NIC comes up on the vhost-user port and its MAC is learned there", async () => {
    const def = await virsh(["define", join(dir, "dom.xml")]);
    expect(def.code, def.stderr).toBe(0);
    const start = await virsh(["start", lab.prefix]);
    expect(start.code, start.stderr).toBe(0);
    const up = await waitFor(async () => (await lab.cliJson<ShowBridge[]>(["show"]))[0].ports.find((p) => p.name === "vif3.0")?.state === "up", 150_000, 500);
    expect(up, lab.daemonLog()).toBe(true);
    const learned = await waitFor(async () => (await lab.cliJson<MacEntry[]>(["showmacs", "xenbr0"])).some((e) => e.mac === MAC && e.port === "vif3.0"), 60_000, 500);
    expect(learned, lab.daemonLog()).toBe(true);
  }, 240_000);
});
