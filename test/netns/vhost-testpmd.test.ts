// Privileged test of issue 23 §1 with a vhost-user frontend none of us wrote: DPDK's dpdk-testpmd (net_virtio_user),
// txonly on one tapbridge vhost-user port, rxonly on another (both ports in mode server, testpmd connects).
//
//   testpmd txonly (virtio_user0) ~~ vhu1 --- tapbridge br0 --- vhu2 ~~ testpmd rxonly (virtio_user1)
//
// testpmd runs with --no-huge (its memory is a memfd it shares with tapbridge), so no hugepages are needed. Skips with
// the reason when not root or dpdk-testpmd is missing (Debian dpdk-dev, scripts/setup-test-deps.sh).

import { existsSync, rmSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, canRunNetns, sleep, waitFor } from "./helpers.js";
import type { BridgeStats, ShowBridge } from "../support/json-shapes.js";

const TESTPMD = ["/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"].find((p) => existsSync(p)) ?? null;
const support = canRunNetns();
const reason = !support.ok ? support.reason
  : TESTPMD === null ? "dpdk-testpmd is not installed (Debian dpdk-dev, scripts/setup-test-deps.sh)"
  : cpus().length < 2 ? "each testpmd needs lcores 0 and 1 (this machine has one CPU)"
  : "";
if (reason !== "") console.warn(`vhost-user testpmd test skipped: ${reason}`);

describe.skipIf(reason !== "")("testpmd through two vhost-user ports" + (reason === "" ? "" : ` (skipped: ${reason})`), () => {
  let lab: Lab;

  const pmds: Array<{ stdout: string; stderr: string }> = [];

  function testpmd(role: "tx" | "rx", sock: string, lcores: string): void {
    const mode = role === "tx" ? ["--forward-mode=txonly", "--txpkts=60"] : ["--forward-mode=rxonly"];
    // non-interactive testpmd runs until its stdin ends: `stdin: true` keeps a pipe open until it is killed
    pmds.push(lab.spawn("dom0", [TESTPMD!, "-l", lcores, "--no-pci", "--no-huge", "-m", "1024", `--file-prefix=${lab.prefix}-${role}`,
      `--vdev=net_virtio_user${role === "tx" ? 0 : 1},path=${sock},queues=1,queue_size=1024`, "--",
      ...mode, "--auto-start", "--nb-cores=1", "--stats-period=0", "--total-num-mbufs=16384"], `testpmd ${role}`, { stdin: true }));
  }

  async function ports(): Promise<ShowBridge["ports"]> {
    return (await lab.cliJson<ShowBridge[]>(["show"]))[0].ports;
  }
  /** The guest's avail index of queue q of a port (-1 while the queue is not started). */
  async function availIdx(name: string, q: 0 | 1): Promise<number> {
    const p = (await ports()).find((x) => x.name === name) as unknown as { vhost_user?: { rings: Array<{ availIdx: number }> } } | undefined;
    return p?.vhost_user?.rings[q]?.availIdx ?? -1;
  }
  async function rxPackets(name: string): Promise<number> {
    return (await lab.cliJson<BridgeStats[]>(["stats"]))[0].ports.find((p) => p.name === name)?.rx_packets ?? 0;
  }

  beforeAll(async () => {
    lab = new Lab("vhost-testpmd");
    await lab.addNs("dom0");
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{
        name: "br0",
        ports: [
          { name: "vhu1", kind: "vhost-user", socket: join(lab.dir, "vhu1.sock"), mode: "server" },
          { name: "vhu2", kind: "vhost-user", socket: join(lab.dir, "vhu2.sock"), mode: "server" },
        ],
      }],
    });
    await lab.startDaemon("dom0");
  }, 30_000);

  afterAll(async () => {
    await lab?.destroy();
    // testpmd's runtime directories (its --file-prefix)
    for (const role of ["tx", "rx"]) if (lab !== undefined) rmSync(`/var/run/dpdk/${lab.prefix}-${role}`, { recursive: true, force: true });
  });

  it("forwards testpmd's 60-byte frames from one vhost-user port to the other", async () => {
    // A port is up once testpmd's probe has set the device up (DRIVER_OK), which is before testpmd has made its mbuf
    // pool, started the port and waited for its link ("Checking link statuses..."): on a loaded machine seconds
    // before it posts anything. So wait for what each testpmd does once it runs: rxonly posts its receive buffers
    // (vhu2's queue 0), txonly sends (vhu1 reads). Until 2026-12-06 the check came 3 s after "up" and read 0 frames
    // when testpmd was still starting (3 of 12 runs with four busy loops beside it; the guest's ring was empty then).
    testpmd("rx", join(lab.dir, "vhu2.sock"), "0,1");
    expect(await waitFor(async () => (await ports()).find((p) => p.name === "vhu2")?.state === "up", 30_000), lab.daemonLog()).toBe(true);
    expect(await waitFor(async () => (await availIdx("vhu2", 0)) > 0, 60_000), `testpmd rxonly posted no receive buffers\n${lab.daemonLog()}`).toBe(true);
    testpmd("tx", join(lab.dir, "vhu1.sock"), "1,0");
    expect(await waitFor(async () => (await ports()).find((p) => p.name === "vhu1")?.state === "up", 30_000), lab.daemonLog()).toBe(true);
    expect(await waitFor(async () => (await rxPackets("vhu1")) > 0, 60_000), `testpmd txonly sent nothing\n${lab.daemonLog()}`).toBe(true);
    await sleep(3_000);
    const stats = (await lab.cliJson<BridgeStats[]>(["stats"]))[0].ports;
    const vhu1 = stats.find((p) => p.name === "vhu1")!;
    const vhu2 = stats.find((p) => p.name === "vhu2")!;
    // testpmd txonly sends unicast to a MAC nobody behind the bridge owns: flooded to vhu2
    // (on failure: both ports' ring state and the tail of each testpmd's output)
    const why = async (): Promise<string> => `${JSON.stringify((await ports()).map((p) => (p as unknown as { vhost_user: unknown }).vhost_user))}\n` +
      `${pmds.map((p) => `${p.stdout.slice(-1500)}\n${p.stderr.slice(-500)}`).join("\n----\n")}\n${lab.daemonLog()}`;
    if (!(vhu1.rx_packets > 1000)) expect(vhu1.rx_packets, await why()).toBeGreaterThan(1000);
    expect(vhu2.tx_packets).toBeGreaterThan(1000);
    expect(vhu2.tx_bytes).toBeGreaterThanOrEqual(vhu2.tx_packets * 60);
    expect(lab.daemonLog(100_000)).not.toContain("protocol error");
  }, 180_000);
});
