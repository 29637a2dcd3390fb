// Helpers for the privileged tests: build namespace topologies, run the daemon inside one, drive the CLI, and remove
// everything again.
//
// Safety (DESIGN.md section 7): nothing here touches the root namespace's links, addresses or routes. Every link is
// created with `ip -n NS` inside a namespace this module made; namespace names carry a unique prefix
// (tb-<pid>-<random>-...); every child process is tracked and stopped by PID; every command has a timeout. A Lab is
// destroyed by afterAll (Lab.destroy) and, as a last resort, synchronously on process 'exit'.

import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI_MAIN = join(REPO_ROOT, "dist/cli/main.js");

/** Debian's python3 when present (a pyenv shim may not resolve under `ip netns exec`). */
export const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

export interface NetnsSupport {
  ok: boolean;
  reason: string;
}

let netnsSupport: NetnsSupport | undefined;

/**
 * Whether this process can build netns topologies: root, `ip netns` works (a throwaway namespace is created and
 * deleted), /dev/net/tun exists. Synchronous so that describe.skipIf can use it at collection time.
 */
export function canRunNetns(): NetnsSupport {
  if (netnsSupport) return netnsSupport;
  netnsSupport = probeNetns();
  return netnsSupport;
}

function probeNetns(): NetnsSupport {
  if (process.platform !== "linux") return { ok: false, reason: "needs Linux network namespaces" };
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return { ok: false, reason: "needs root (creates network namespaces, TAPs and veths); run as root or in CI" };
  }
  const probe = `tb-probe-${process.pid}-${randomBytes(3).toString("hex")}`;
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "pipe", timeout: 10_000 });
  } catch (e) {
    return { ok: false, reason: `\`ip netns add\` failed: ${errText(e)}` };
  }
  try {
    execFileSync("ip", ["netns", "del", probe], { stdio: "pipe", timeout: 10_000 });
  } catch (e) {
    return { ok: false, reason: `\`ip netns del\` failed: ${errText(e)}` };
  }
  if (!existsSync("/dev/net/tun")) return { ok: false, reason: "/dev/net/tun is missing (no TUN/TAP support)" };
  return { ok: true, reason: "" };
}

function errText(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  const stderr = err.stderr ? err.stderr.toString().trim() : "";
  return stderr || err.message || String(e);
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Milliseconds before the command is killed (default 30 s). */
  timeoutMs?: number;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** execFile with a timeout; resolves with the exit code instead of rejecting unless check is set. */
export function run(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const { timeoutMs = 30_000, check = true, env } = opts;
  return new Promise((resolvePromise, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024, encoding: "utf8", env: env ?? process.env },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const e = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string };
          if (typeof e.code === "number") code = e.code;
          else if (e.killed || e.signal) code = 124;
          else code = 127;
          if (e.killed && !stderr) stderr = `killed after ${timeoutMs} ms timeout`;
          else if (typeof e.code === "string" && !stderr) stderr = e.message;
        }
        const result = { code, stdout, stderr };
        if (check && code !== 0) {
          reject(new Error(`${file} ${args.join(" ")} exited ${code}: ${stderr.trim() || stdout.trim()}`));
        } else {
          resolvePromise(result);
        }
      },
    );
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll fn until it returns a truthy value or timeoutMs passes; returns the last value. */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= deadline) return v;
    await sleep(intervalMs);
  }
}

/** A child process started in a namespace, with its output collected. */
export class Background {
  stdout = "";
  stderr = "";
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  constructor(
    readonly child: ChildProcess,
    readonly description: string,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (this.stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    this.exited = new Promise((r) => {
      child.on("exit", (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        r();
      });
      child.on("error", (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
        this.exitCode = 127;
        r();
      });
    });
  }
  get pid(): number | undefined {
    return this.child.pid;
  }
  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }
  /** Resolves when the output contains text (or rejects after timeoutMs / when the process exits). */
  async waitForOutput(text: string, timeoutMs = 10_000): Promise<void> {
    const ok = await waitFor(() => this.stdout.includes(text) || !this.running, timeoutMs, 20);
    if (!ok || !this.stdout.includes(text)) {
      throw new Error(`${this.description}: no "${text}" in output (exit ${this.exitCode}): ${this.stderr.slice(-2000)}`);
    }
  }
  /** Wait for exit with a timeout; SIGKILL when it passes. */
  async wait(timeoutMs = 30_000): Promise<void> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running && this.child.pid) {
      try {
        process.kill(this.child.pid, signal);
      } catch {
        /* already gone */
      }
    }
  }
  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface SpawnOptions {
  /** A pipe on the child's stdin instead of /dev/null. */
  stdin?: boolean;
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  address: string;
  flags: string[];
  operstate: string;
  mtu: number;
}

// Labs still alive, for the synchronous last-resort cleanup on process exit.
const liveLabs = new Set<Lab>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const lab of liveLabs) lab.destroySync();
  });
}

/**
 * One test topology: namespaces named `${prefix}-${node}`, a temp dir for config, socket and logs, at most one daemon.
 */
export class Lab {
  readonly prefix: string;
  readonly dir: string;
  readonly socketPath: string;
  readonly configPath: string;
  readonly daemonLogPath: string;
  private readonly namespaces: string[] = [];
  private readonly background = new Set<Background>();
  daemon: Background | undefined;
  private destroyed = false;

  constructor(tag = "lab") {
    this.prefix = `tb-${process.pid}-${randomBytes(2).toString("hex")}`;
    this.dir = mkdtempSync(join(tmpdir(), `tapbridge-${tag}-`));
    this.socketPath = join(this.dir, "tapbridge.sock");
    this.configPath = join(this.dir, "tapbridge.yaml");
    this.daemonLogPath = join(this.dir, "daemon.log");
    liveLabs.add(this);
    installExitHook();
  }

  /** The namespace name of a node. */
  ns(node: string): string {
    return `${this.prefix}-${node}`;
  }

  /** Create namespace `${prefix}-${node}` with loopback up and no router-advertisement handling. */
  async addNs(node: string): Promise<string> {
    const name = this.ns(node);
    await run("ip", ["netns", "add", name], { timeoutMs: 10_000 });
    this.namespaces.push(name);
    await run("ip", ["-n", name, "link", "set", "lo", "up"], { timeoutMs: 10_000 });
    await this.exec(node, ["sysctl", "-qw", "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"], {
      check: false,
    });
    return name;
  }

  /** Run argv inside a node's namespace. */
  exec(node: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run("ip", ["netns", "exec", this.ns(node), ...argv], opts);
  }

  /** `ip -n NS ARGS...` */
  ip(node: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run("ip", ["-n", this.ns(node), ...args], { timeoutMs: 10_000, ...opts });
  }

  /** A veth pair from nodeA/nameA to nodeB/nameB, both created inside the namespaces (never in the root one). */
  async addVeth(nodeA: string, nameA: string, nodeB: string, nameB: string): Promise<void> {
    await this.ip(nodeA, ["link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", this.ns(nodeB)]);
  }

  /**
   * A veth pair from this lab's nodeA/nameA to `other` lab's nodeB/nameB (e.g. a trunk between the dom0s of two
   * labs, each with its own daemon); created inside the namespaces, removed with either of them.
   */
  async addVethTo(nodeA: string, nameA: string, other: Lab, nodeB: string, nameB: string): Promise<void> {
    await this.ip(nodeA, ["link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", other.ns(nodeB)]);
  }

  /** Address a host interface (optional MAC), IPv4 /24 and optional IPv6 /64 without DAD, and bring it up. */
  async configureHost(node: string, ifname: string, ip4: string, ip6?: string, mac?: string): Promise<void> {
    if (mac) await this.ip(node, ["link", "set", "dev", ifname, "address", mac]);
    await this.ip(node, ["addr", "add", `${ip4}/24`, "dev", ifname]);
    if (ip6) await this.ip(node, ["addr", "add", `${ip6}/64`, "dev", ifname, "nodad"]);
    await this.ip(node, ["link", "set", "dev", ifname, "up"]);
  }

  /** Move a link from one namespace to another and optionally rename it there. */
  async moveLink(fromNode: string, ifname: string, toNode: string, newName?: string): Promise<void> {
    await this.ip(fromNode, ["link", "set", "dev", ifname, "netns", this.ns(toNode)]);
    if (newName && newName !== ifname) await this.ip(toNode, ["link", "set", "dev", ifname, "name", newName]);
  }

  /** Waits (up to 10 s) for the daemon's TAP `vif` in dom0, moves it into `node` as eth0 and addresses it `ip4`. */
  async takeTap(vif: string, node: string, ip4: string): Promise<void> {
    if (!(await waitFor(() => this.linkExists("dom0", vif), 10_000))) throw new Error(`TAP ${vif} not found in dom0\n${this.daemonLog()}`);
    await this.moveLink("dom0", vif, node, "eth0");
    await this.configureHost(node, "eth0", ip4);
  }

  async link(node: string, ifname: string): Promise<LinkInfo | undefined> {
    const r = await this.ip(node, ["-j", "link", "show", "dev", ifname], { check: false });
    if (r.code !== 0) return undefined;
    const arr = JSON.parse(r.stdout) as LinkInfo[];
    return arr[0];
  }

  async linkExists(node: string, ifname: string): Promise<boolean> {
    return (await this.link(node, ifname)) !== undefined;
  }

  async links(node: string): Promise<LinkInfo[]> {
    const r = await this.ip(node, ["-j", "link", "show"]);
    return JSON.parse(r.stdout) as LinkInfo[];
  }

  async mac(node: string, ifname: string): Promise<string> {
    const l = await this.link(node, ifname);
    if (!l) throw new Error(`no link ${ifname} in ${this.ns(node)}`);
    return l.address.toLowerCase();
  }

  /** ping -c count -W 1 from a node; never throws. */
  async ping(node: string, addr: string, count = 3, opts: { intervalS?: number } = {}): Promise<{ ok: boolean; output: string }> {
    const args = ["ping", "-n", "-q", "-c", String(count), "-i", String(opts.intervalS ?? 0.2), "-W", "1", addr];
    const r = await this.exec(node, args, { check: false, timeoutMs: 5_000 + count * 1_500 });
    return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
  }

  /** Ping repeatedly (one probe at a time) until one is answered or timeoutMs passes. */
  async pingUntil(node: string, addr: string, timeoutMs = 10_000): Promise<{ ok: boolean; output: string }> {
    const deadline = Date.now() + timeoutMs;
    let last = { ok: false, output: "" };
    while (Date.now() < deadline) {
      last = await this.ping(node, addr, 1);
      if (last.ok) return last;
    }
    return last;
  }

  /**
   * Start argv in a node's namespace in the background; tracked and stopped by PID on destroy. `stdin: true` gives the
   * child a pipe on stdin (Background.child.stdin, e.g. a QEMU serial console); `env` replaces the environment.
   */
  spawn(node: string, argv: string[], description = argv.join(" "), opts: SpawnOptions = {}): Background {
    const child = spawn("ip", ["netns", "exec", this.ns(node), ...argv], {
      stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    const bg = new Background(child, `${description} (in ${this.ns(node)})`);
    this.background.add(bg);
    void bg.exited.then(() => this.background.delete(bg));
    return bg;
  }

  /** This lab's state_dir (writeConfig puts it into an object config that names none). */
  get stateDir(): string {
    return join(this.dir, "state");
  }

  /**
   * Write the daemon's config. An object is written as JSON, which is YAML 1.2; without a `state_dir` it gets the
   * lab's own, so that labs never share (and lock each other out of) /var/lib/tapbridge.
   */
  writeConfig(config: object | string): void {
    const doc = typeof config === "string" || "state_dir" in config ? config : { ...config, state_dir: this.stateDir };
    writeFileSync(this.configPath, typeof doc === "string" ? doc : JSON.stringify(doc, null, 2) + "\n");
  }

  /** A daemon alone in namespace dom0 (made here): `config` plus this lab's control socket, written and started. */
  async daemonInDom0(config: object): Promise<Background> {
    await this.addNs("dom0");
    this.writeConfig({ control_socket: this.socketPath, ...config });
    return this.startDaemon("dom0");
  }

  /**
   * Start `node dist/cli/main.js daemon --config FILE` inside a node's namespace (`ip netns exec` execs, so the PID is
   * the daemon's) and wait for its control socket. Throws with the daemon's log when it exits or times out first.
   */
  async startDaemon(node = "dom0", timeoutMs = 20_000, env?: NodeJS.ProcessEnv): Promise<Background> {
    if (!existsSync(CLI_MAIN)) throw new Error(`${CLI_MAIN} is missing: run 'npm ci' (or 'npm run build') first`);
    if (this.daemon?.running) throw new Error("daemon already running");
    rmSync(this.daemonLogPath, { force: true });
    const child = spawn("ip", ["netns", "exec", this.ns(node), process.execPath, CLI_MAIN, "daemon", "--config", this.configPath], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: this.dir,
      // extra variables for the daemon only (test knobs such as TAPBRIDGE_NETLINK_RCVBUF)
      env: env === undefined ? process.env : { ...process.env, ...env },
    });
    const bg = new Background(child, "tapbridge daemon");
    child.stdout?.on("data", (d: string) => appendFileSync(this.daemonLogPath, d));
    child.stderr?.on("data", (d: string) => appendFileSync(this.daemonLogPath, d));
    this.daemon = bg;
    const ok = await waitFor(() => existsSync(this.socketPath) || !bg.running, timeoutMs, 50);
    if (!ok || !existsSync(this.socketPath)) {
      const why = bg.running ? `no control socket after ${timeoutMs} ms` : `daemon exited (code ${bg.exitCode}, signal ${bg.exitSignal})`;
      await bg.stop(3_000);
      throw new Error(`${why} before creating ${this.socketPath}\n${this.daemonLog()}`);
    }
    return bg;
  }

  /** SIGTERM the daemon (SIGKILL after timeoutMs) and report how it exited. */
  async stopDaemon(timeoutMs = 10_000): Promise<DaemonExit> {
    const d = this.daemon;
    if (!d) throw new Error("no daemon started");
    if (d.running) {
      d.kill("SIGTERM");
      const timer = setTimeout(() => d.kill("SIGKILL"), timeoutMs);
      await d.exited;
      clearTimeout(timer);
    }
    return { code: d.exitCode, signal: d.exitSignal };
  }

  /** The daemon's output so far (last maxLines lines), for failure messages. */
  daemonLog(maxLines = 60): string {
    const d = this.daemon;
    if (!d) return "(no daemon started)";
    const lines = (d.stdout + d.stderr).trimEnd().split("\n");
    return `--- daemon log (last ${Math.min(maxLines, lines.length)} of ${lines.length} lines, full log ${this.daemonLogPath}):\n` +
      lines.slice(-maxLines).join("\n");
  }

  /** The daemon's log lines at level error or fatal (pino JSON lines, levels 50 and 60). */
  daemonErrors(): string[] {
    const d = this.daemon;
    if (!d) return [];
    return (d.stdout + d.stderr).split("\n").filter((l) => {
      if (!l.startsWith("{")) return false;
      try {
        return ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50;
      } catch {
        return false;
      }
    });
  }

  /** Run the CLI against this lab's socket (from the root namespace: a path-bound Unix socket crosses namespaces). */
  cli(args: string[], timeoutMs = 15_000): Promise<ExecResult> {
    return run(process.execPath, [CLI_MAIN, ...args, "--socket", this.socketPath], { check: false, timeoutMs });
  }

  /** Run the CLI with -j and parse its output; throws with stderr and the daemon log when it fails. */
  async cliJson<T = unknown>(args: string[]): Promise<T> {
    const r = await this.cli([...args, "-j"]);
    if (r.code !== 0) {
      throw new Error(`tapbridge ${args.join(" ")} -j exited ${r.code}: ${r.stderr.trim()}\n${this.daemonLog(20)}`);
    }
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`tapbridge ${args.join(" ")} -j printed no JSON: ${r.stdout.slice(0, 500)}`);
    }
  }

  /** Stop every process this lab started (daemon: SIGTERM then SIGKILL), delete every namespace, remove the temp dir. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      if (this.daemon?.running) await this.stopDaemon(5_000);
      await Promise.all([...this.background].map((b) => b.stop(2_000)));
    } finally {
      for (const ns of [...this.namespaces].reverse()) {
        await run("ip", ["netns", "del", ns], { check: false, timeoutMs: 10_000 });
      }
      this.namespaces.length = 0;
      if (process.env.TB_KEEP_LAB_DIR !== "1") rmSync(this.dir, { recursive: true, force: true });
      liveLabs.delete(this);
    }
  }

  /** Last-resort synchronous cleanup (process 'exit'): SIGKILL what is left, delete namespaces. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const pids = [this.daemon, ...this.background].filter((b): b is Background => !!b?.running).map((b) => b.pid);
    for (const pid of pids) {
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of [...this.namespaces].reverse()) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 });
      } catch {
        /* already gone */
      }
    }
    this.namespaces.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
    liveLabs.delete(this);
  }

  /** Namespaces of this lab that `ip netns list` still shows. */
  static async leftoverNamespaces(prefix: string): Promise<string[]> {
    const r = await run("ip", ["netns", "list"], { check: false });
    return r.stdout
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter((n) => n.startsWith(prefix + "-"));
  }
}

/**
 * The topology the handover, QEMU and libvirt tests start from: namespaces dom0 (IPv6 off, so the daemon's own stack
 * stays off the bridge), ext and `others`; a veth peth0 (dom0, up: the uplink) ~~ eth0 (ext, addressed extIp).
 */
export async function uplinkLab(tag: string, others: string[], extIp: string): Promise<Lab> {
  const lab = new Lab(tag);
  try {
    for (const node of ["dom0", "ext", ...others]) await lab.addNs(node);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.addVeth("dom0", "peth0", "ext", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await lab.configureHost("ext", "eth0", extIp);
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

/** The afterAll of a suite: destroys its lab and fails the suite if any of the lab's namespaces is left. */
export async function destroyLab(lab: Lab | undefined): Promise<void> {
  if (!lab) return;
  await lab.destroy();
  expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
}

// ------------------------------------------------------------------------------------------------ python helpers
// Small programs run with python3 inside namespaces. Each prints one JSON line at the end (and "ready" once listening).

/**
 * TCP receiver: accept one connection on ADDR PORT, read to EOF, print {"bytes": n, "sha256": hex}; with a fourth
 * argument "timed", also "seconds" (accept to EOF).
 */
export const PY_TCP_RECEIVER = String.raw`
import hashlib, json, socket, sys, time
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
timed = len(sys.argv) > 4 and sys.argv[4] == "timed"
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port)); srv.listen(1); srv.settimeout(timeout)
print("ready", flush=True)
conn, peer = srv.accept(); conn.settimeout(timeout)
t0 = time.monotonic(); h = hashlib.sha256(); n = 0
while True:
    b = conn.recv(1 << 20)
    if not b: break
    h.update(b); n += len(b)
dt = time.monotonic() - t0
conn.close()
out = {"bytes": n, "sha256": h.hexdigest()}
if timed: out["seconds"] = dt
print(json.dumps(out), flush=True)
`;

/** What tcpTransfer saw: both sides' byte counts and digests, and a diagnostic text for failed expectations. */
export interface TcpTransfer {
  senderCode: number;
  sent: { bytes: number; sha256: string; seconds: number } | null;
  got: { bytes: number; sha256: string } | null;
  diag: string;
}

/**
 * MB mebibytes of TCP from (fromLab, fromNode) to ADDR:PORT in (toLab, toNode), with PY_TCP_SENDER / PY_TCP_RECEIVER
 * (30 s socket timeouts). `extraDiag` is appended to the diagnostic (e.g. daemon logs).
 */
export async function tcpTransfer(fromLab: Lab, fromNode: string, toLab: Lab, toNode: string, addr: string, port: number, mb: number,
  extraDiag: () => string = () => ""): Promise<TcpTransfer> {
  const receiver = toLab.spawn(toNode, [PYTHON, "-c", PY_TCP_RECEIVER, addr, String(port), "30"], `tcp receiver ${toNode}`);
  await receiver.waitForOutput("ready");
  const sender = await fromLab.exec(fromNode, [PYTHON, "-c", PY_TCP_SENDER, addr, String(port), String(mb), "30"], { check: false, timeoutMs: 45_000 });
  await receiver.wait(10_000);
  const last = (out: string): string => out.trim().split("\n").pop() ?? "";
  const parse = <T>(out: string): T | null => (last(out).startsWith("{") ? (JSON.parse(last(out)) as T) : null);
  return {
    senderCode: sender.code,
    sent: sender.code === 0 ? parse(sender.stdout) : null,
    got: parse(receiver.stdout),
    diag: `sender ${sender.code}: ${sender.stderr.slice(-1000)}\nreceiver: ${receiver.stdout} ${receiver.stderr.slice(-1000)}\n${extraDiag()}`,
  };
}

/** TCP sender: connect to ADDR PORT, send MB mebibytes of seeded pseudo-random data, print {"bytes", "sha256", "seconds"}. */
export const PY_TCP_SENDER = String.raw`
import hashlib, json, random, socket, sys, time
addr, port, mb, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = random.Random(0x7a9b)
s = socket.create_connection((addr, port), timeout=timeout)
h = hashlib.sha256(); n = 0; t0 = time.monotonic()
for i in range(mb):
    chunk = rng.randbytes(1 << 20)
    s.sendall(chunk); h.update(chunk); n += len(chunk)
s.shutdown(socket.SHUT_WR)
s.settimeout(timeout)
while s.recv(65536): pass
s.close()
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": time.monotonic() - t0}), flush=True)
`;

/**
 * Raw 802.1Q sender: on IFNAME send COUNT copies of a frame DST <- SRC, TPID 0x8100, TCI, inner EtherType 0x88b5,
 * payload MARKER, padded to 64 bytes, 100 ms apart. The tag is inline in the bytes given to AF_PACKET.
 */
export const PY_VLAN_SENDER = String.raw`
import socket, struct, sys, time
ifname, dst, src, tci, marker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].encode(), int(sys.argv[6])
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
frame = mac(dst) + mac(src) + struct.pack("!HHH", 0x8100, tci, 0x88b5) + marker
frame += b"\0" * max(0, 64 - len(frame))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for i in range(count):
    s.send(frame); time.sleep(0.1)
print("sent", flush=True)
`;

/**
 * Raw receiver: on IFNAME wait up to TIMEOUT seconds for a frame carrying MARKER; report its VLAN tag whether the
 * kernel stripped it (PACKET_AUXDATA tp_vlan_tci / tp_vlan_tpid) or left it inline. Prints
 * {"found": bool, "tci": n|null, "tpid": n|null, "where": "auxdata"|"inline"|null, "len": n}.
 */
export const PY_VLAN_RECEIVER = String.raw`
import json, socket, struct, sys, time
ifname, marker, timeout = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 1 << 4, 1 << 6
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + timeout
res = {"found": False, "tci": None, "tpid": None, "where": None, "len": 0}
while time.monotonic() < deadline:
    s.settimeout(max(0.05, deadline - time.monotonic()))
    try:
        data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64))
    except socket.timeout:
        break
    if addr[2] == socket.PACKET_OUTGOING or marker not in data:
        continue
    res["found"] = True; res["len"] = len(data)
    for level, typ, cdata in anc:
        if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
            status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
            if status & TP_STATUS_VLAN_VALID:
                res["tci"] = tci; res["where"] = "auxdata"
                res["tpid"] = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
    if res["where"] is None and len(data) >= 18 and struct.unpack("!H", data[12:14])[0] in (0x8100, 0x88a8):
        res["tpid"], res["tci"] = struct.unpack("!HH", data[12:16]); res["where"] = "inline"
    break
print(json.dumps(res), flush=True)
`;

/**
 * Raw frame sender: on IFNAME send each hex FRAME (as given: tags inline) COUNT times, INTERVAL seconds apart.
 * Args: IFNAME COUNT INTERVAL FRAME... Prints {"sent": n}.
 */
export const PY_RAW_SENDER = String.raw`
import json, socket, sys, time
ifname, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
frames = [bytes.fromhex(h) for h in sys.argv[4:]]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
n = 0
for i in range(count):
    for f in frames:
        s.send(f); n += 1
    if i + 1 < count: time.sleep(interval)
print(json.dumps({"sent": n}), flush=True)
`;

/**
 * Raw capture: on IFNAME, for TIMEOUT seconds (or until MAX frames), record every received frame (not our own
 * outgoing ones) that carries the ASCII MARKER, with its VLAN tag whether the kernel stripped it (PACKET_AUXDATA) or
 * left it inline. Args: IFNAME MARKER TIMEOUT [MAX]. Prints "ready", then
 * {"frames": [{"tpid": n|null, "tci": n|null, "where": "auxdata"|"inline"|null, "len": n, "src": "aa:bb:.."}]}.
 */
export const PY_RAW_CAPTURE = String.raw`
import json, socket, struct, sys, time
ifname, marker, timeout = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
maxn = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 30
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 1 << 4, 1 << 6
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + timeout
out = []
while len(out) < maxn and time.monotonic() < deadline:
    s.settimeout(max(0.02, deadline - time.monotonic()))
    try:
        data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64))
    except socket.timeout:
        break
    if addr[2] == socket.PACKET_OUTGOING or marker not in data:
        continue
    r = {"tpid": None, "tci": None, "where": None, "len": len(data), "src": ":".join("%02x" % b for b in data[6:12])}
    for level, typ, cdata in anc:
        if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
            status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
            if status & TP_STATUS_VLAN_VALID:
                r["tci"] = tci; r["where"] = "auxdata"
                r["tpid"] = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
    if r["where"] is None and len(data) >= 18 and struct.unpack("!H", data[12:14])[0] in (0x8100, 0x88a8):
        r["tpid"], r["tci"] = struct.unpack("!HH", data[12:16]); r["where"] = "inline"
    out.append(r)
print(json.dumps({"frames": out}), flush=True)
`;
