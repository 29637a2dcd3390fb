// The daemon as systemd runs it, with systemd's part played by the test (systemd is not PID 1 here): a notify socket
// in the abstract namespace, WATCHDOG_USEC, and stdout on a file named by JOURNAL_STREAM. Then a real Prometheus server
// (Debian's package) scrapes the daemon's metrics endpoint and is queried through its HTTP API. Needs root and
// `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 (TAP, was vif1.0) 198.18.3.1 --+
//                                           +-- dom0: tapbridge (NOTIFY_SOCKET=@..., metrics 127.0.0.1:9464)
//   vm2 eth0 (TAP, was vif2.0) 198.18.3.2 --+         fake systemd (python, abstract socket), prometheus 127.0.0.1:9090

import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, fstatSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Background, CLI_MAIN, Lab, PYTHON, canRunNetns, waitFor } from "./helpers.js";
import { FakeSystemd } from "../support/fake-systemd.js";

const support = canRunNetns();
const hasPrometheus = spawnSync("prometheus", ["--version"], { stdio: "ignore" }).status === 0 &&
  spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0;
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;
const promNote = hasPrometheus ? "" : " (skipped: no prometheus/promtool; run scripts/setup-test-deps.sh)";

const IP = { vm1: "198.18.3.1", vm2: "198.18.3.2" };
const METRICS = "127.0.0.1:9464";
const PROM = "127.0.0.1:9090";
const WATCHDOG_USEC = 400_000;
const PINGS = 20;

/** GET a URL from inside dom0 (its 127.0.0.1 is not ours); body text, or throws. */
async function httpGet(lab: Lab, url: string): Promise<string> {
  const r = await lab.exec("dom0", [PYTHON, "-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", url], { check: false, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`GET ${url}: ${r.stderr.trim()}`);
  return r.stdout;
}

describe.skipIf(!support.ok)("tapbridge under a (fake) systemd" + skipNote, () => {
  let lab: Lab;
  let sd: FakeSystemd;
  let daemon: Background;
  let logPath = "";
  let prometheus: Background | undefined;
  const log = (): string => {
    try {
      return readFileSync(logPath, "utf8").split("\n").slice(-40).join("\n");
    } catch {
      return "(no log)";
    }
  };

  beforeAll(async () => {
    lab = new Lab("service");
    for (const node of ["dom0", "vm1", "vm2"]) await lab.addNs(node);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    lab.writeConfig({
      control_socket: lab.socketPath,
      log_level: "warn", // --log-level debug below wins
      metrics: { listen: METRICS },
      bridges: [{ name: "xenbr0", ports: [{ name: "vif1.0" }, { name: "vif2.0" }] }],
    });
    // abstract unix sockets belong to a network namespace: bind the notify socket in dom0, where the daemon runs
    const notifyPath = `@${lab.prefix}-notify`;
    const receiver = lab.spawn("dom0", FakeSystemd.argv(notifyPath, lab.socketPath), "fake systemd notify socket");
    sd = new FakeSystemd(notifyPath, lab.socketPath, receiver.child);
    await sd.ready();
    // stdout and stderr on a file that JOURNAL_STREAM names, as systemd does for StandardOutput=journal
    logPath = join(lab.dir, "journal.log");
    const out = openSync(logPath, "w");
    const st = fstatSync(out, { bigint: true });
    const child = spawn("ip", ["netns", "exec", lab.ns("dom0"), process.execPath, CLI_MAIN, "daemon", "--config", lab.configPath, "--log-level", "debug"], {
      stdio: ["ignore", out, out],
      cwd: lab.dir,
      env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: String(WATCHDOG_USEC), JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    });
    closeSync(out);
    daemon = new Background(child, "tapbridge daemon under fake systemd");
    lab.daemon = daemon; // stopped by lab.destroy(), killed by its last-resort exit hook
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop(3_000);
    if (daemon?.running) await daemon.stop(5_000);
    sd?.stop();
    if (!lab) return;
    await lab.destroy();
    expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });

  it("sends READY=1 only when the control socket answers, with a STATUS summary", async () => {
    await sd.until(() => sd.with("READY").length > 0 || !daemon.running, 20_000, "READY=1").catch((e: Error) => {
      throw new Error(`${e.message}\n${log()}`);
    });
    expect(daemon.running, log()).toBe(true);
    const ready = sd.with("READY")[0];
    expect(ready.control_answered, "the control socket did not answer when READY=1 arrived").toBe(true);
    expect(ready.state).toMatch(/^READY=1\nSTATUS=1 bridge, 2\/2 ports up, \d+ FDB entr(y|ies)$/);
    // nothing claimed readiness before (FDSTORE=1 of the TAPs may come first: the fd store, issue 11)
    expect(sd.messages.slice(0, sd.messages.indexOf(ready)).filter((m) => !m.state.startsWith("FDSTORE=1\n"))).toEqual([]);
  });

  it("sends WATCHDOG=1 at half of WATCHDOG_USEC and STATUS= every few seconds", async () => {
    await sd.until(() => sd.with("WATCHDOG").length >= 4, 10_000, "four WATCHDOG=1");
    const w = sd.with("WATCHDOG").map((m) => m.atMs);
    // pings come at WATCHDOG_USEC / 2, never slower than the watchdog itself
    for (let i = 1; i < w.length; i++) expect(w[i] - w[i - 1]).toBeLessThan(WATCHDOG_USEC / 1000);
    await sd.until(() => sd.messages.some((m) => m.state.startsWith("STATUS=")), 15_000, "a periodic STATUS=");
    expect(sd.messages.find((m) => m.state.startsWith("STATUS="))!.state).toMatch(/^STATUS=1 bridge, 2\/2 ports up/);
  });

  it("writes JSON lines with <N> syslog priorities when JOURNAL_STREAM names stdout; --log-level beats log_level", () => {
    const lines = readFileSync(logPath, "utf8").split("\n").filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      expect(m, l).not.toBeNull();
      JSON.parse(m![2]);
    }
    // info lines are there although the config says warn: the command line won
    expect(lines.some((l) => l.startsWith("<6>") && (JSON.parse(l.slice(3)) as { msg: string }).msg === "daemon ready")).toBe(true);
  });

  describe.skipIf(!hasPrometheus)("metrics" + promNote, () => {
    beforeAll(async () => {
      for (const [i, vm] of [[1, "vm1"], [2, "vm2"]] as const) {
        const present = await waitFor(() => lab.linkExists("dom0", `vif${i}.0`), 10_000);
        if (!present) throw new Error(`vif${i}.0 missing\n${log()}`);
        await lab.moveLink("dom0", `vif${i}.0`, vm, "eth0");
        await lab.configureHost(vm, "eth0", IP[vm]);
      }
      const promConfig = join(lab.dir, "prometheus.yml");
      writeFileSync(promConfig, [
        "global: { scrape_interval: 1s, evaluation_interval: 1s }",
        "scrape_configs:",
        "  - job_name: tapbridge",
        `    static_configs: [ { targets: ["${METRICS}"] } ]`,
        "",
      ].join("\n"));
      prometheus = lab.spawn("dom0", ["prometheus", `--config.file=${promConfig}`, `--storage.tsdb.path=${join(lab.dir, "prom-data")}`,
        `--web.listen-address=${PROM}`, "--log.level=warn"], "prometheus");
      const up = await waitFor(async () => (await httpGet(lab, `http://${PROM}/-/ready`).catch(() => "")).includes("Ready") || !prometheus!.running, 30_000, 250);
      if (!up || !prometheus.running) throw new Error(`prometheus did not become ready: ${prometheus.stderr.slice(-2000)}`);
    }, 90_000);

    it("a scrape passes promtool check metrics", async () => {
      const text = await httpGet(lab, `http://${METRICS}/metrics`);
      expect(text).toContain('tapbridge_port_up{bridge="xenbr0",port="vif1.0"} 1');
      const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 20_000 });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
      expect(r.status).toBe(0);
    });

    it("a scrape reads the same counters as `tapbridge stats`", async () => {
      type Stats = { bridge: string; ports: { name: string; rx_packets: number; drops: Record<string, number> }[] }[];
      const rx = async (): Promise<number> => (await lab.cliJson<Stats>(["stats"]))[0].ports.find((p) => p.name === "vif1.0")!.rx_packets;
      const lo = await rx();
      // a scrape's text is served again for 1 s (Prometheus scrapes too): one built after `lo` was read
      await new Promise((r) => setTimeout(r, 1_100));
      const text = await httpGet(lab, `http://${METRICS}/metrics`);
      const hi = await rx();
      const m = /^tapbridge_port_rx_packets_total\{bridge="xenbr0",port="vif1.0"\} (\d+)$/m.exec(text);
      expect(m, text.slice(0, 2000)).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(lo);
      expect(Number(m![1])).toBeLessThanOrEqual(hi);
      // every drop reason of stats is a reason label of the scrape
      const stats = await lab.cliJson<Stats>(["stats"]);
      for (const reason of Object.keys(stats[0].ports[0].drops)) {
        expect(text).toContain(`tapbridge_port_drops_total{bridge="xenbr0",port="${stats[0].ports[0].name}",reason="${reason}"}`);
      }
    });

    it(`Prometheus sees the rx counter of a port grow by at least the ${PINGS} frames a ping sent`, async () => {
      const query = async (): Promise<number | null> => {
        const q = encodeURIComponent('tapbridge_port_rx_packets_total{bridge="xenbr0",port="vif1.0"}');
        const body = JSON.parse(await httpGet(lab, `http://${PROM}/api/v1/query?query=${q}`)) as {
          status: string; data: { result: { value: [number, string] }[] };
        };
        expect(body.status).toBe("success");
        return body.data.result.length === 1 ? Number(body.data.result[0].value[1]) : null;
      };
      let before: number | null = null;
      await waitFor(async () => (before = await query()) !== null, 30_000, 500);
      expect(before, `no sample in Prometheus\n${prometheus?.stderr.slice(-1000)}`).not.toBeNull();
      const ping = await lab.exec("vm1", ["ping", "-n", "-q", "-c", String(PINGS), "-i", "0.05", "-W", "1", IP.vm2], { check: false, timeoutMs: 30_000 });
      expect(ping.stdout).toMatch(new RegExp(`${PINGS} packets transmitted`));
      let after: number | null = null;
      await waitFor(async () => ((after = await query()) ?? 0) >= before! + PINGS, 20_000, 500);
      console.log(`prometheus: tapbridge_port_rx_packets_total{port="vif1.0"} ${before} -> ${after} after ${PINGS} pings`);
      expect(after!).toBeGreaterThanOrEqual(before! + PINGS);
      const up = JSON.parse(await httpGet(lab, `http://${PROM}/api/v1/query?query=up`)) as { data: { result: { value: [number, string] }[] } };
      expect(up.data.result[0]?.value[1]).toBe("1");
    });
  });

  it("a second daemon whose metrics address is taken fails to start (exit 1, the address named) and removes its socket", async () => {
    const cfg = join(lab.dir, "second.yaml");
    const sock = join(lab.dir, "second.sock");
    // its own state_dir: never /var/lib/tapbridge, never the first daemon's lock
    writeFileSync(cfg, JSON.stringify({ control_socket: sock, state_dir: join(lab.dir, "state-second"), metrics: { listen: METRICS }, bridges: [{ name: "xenbr1" }] }));
    const r = await lab.exec("dom0", [process.execPath, CLI_MAIN, "daemon", "--config", cfg], { check: false, timeoutMs: 30_000 });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain(`tapbridge: start-up failed: metrics: cannot listen on ${METRICS}`);
    expect(existsSync(sock)).toBe(false);
  });

  it("sends STOPPING=1 on SIGTERM and exits 0", async () => {
    expect(daemon.running, log()).toBe(true);
    daemon.kill("SIGTERM");
    await daemon.wait(10_000);
    await sd.until(() => sd.with("STOPPING").length > 0, 5_000, "STOPPING=1");
    expect(daemon.exitCode, log()).toBe(0);
    const i = sd.messages.indexOf(sd.with("STOPPING")[0]);
    expect(sd.messages.slice(i + 1).some((m) => m.state.includes("WATCHDOG"))).toBe(false);
  });
});
