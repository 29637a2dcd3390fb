// The QEMU guest of the netns tests (qemu*.test.ts, libvirt*.test.ts), in one place: finding QEMU, building (or
// finding cached) the guest image of scripts/guest/build-image.sh at collection time so that describe.skipIf can say
// why it skips, a world-readable copy of the image for an unprivileged QEMU, the kernel command line of scripts/guest/init,
// and the serial-console agent of that init ("@@RUN id cmd" in; "@@START id", the output, "@@RC id status" out).
//
// The console is QEMU's stdio (a QEMU the test spawns with -nographic) or a Unix socket QEMU listens on (a libvirt
// domain's <serial type='unix'>): Guest reads and writes either through GuestConsole.
// Also here: the TCP transfers both QEMU tests run between a guest and a namespace (busybox nc in the guest, Python on the
// host), and docSnippet, which reads a code block between marker comments of a docs page so that a test runs exactly
// what the docs show.

import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { delimiter, join } from "node:path";
import { type Background, type Lab, PY_TCP_RECEIVER, PY_TCP_SENDER, PYTHON, REPO_ROOT, canRunNetns, sleep, waitFor } from "./helpers.js";

export const BUILD_IMAGE = join(REPO_ROOT, "scripts/guest/build-image.sh");
export const IMAGE_DIR = process.env.TAPBRIDGE_GUEST_DIR ?? join(REPO_ROOT, "test/.tmp/guest");
/** TCG boot of Debian's kernel takes 5-40 s on a busy 2-core machine; bounded well above that. */
export const BOOT_TIMEOUT_MS = 150_000;
/** The unprivileged user of the tests (an unprivileged QEMU, libvirt in session mode). */
export const NOBODY = 65534;

function errText(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  const stderr = err.stderr ? err.stderr.toString().trim() : "";
  return stderr || err.message || String(e);
}

export function findQemu(): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter).concat(["/usr/bin", "/usr/local/bin"])) {
    const p = join(dir, "qemu-system-x86_64");
    if (dir && existsSync(p)) return p;
  }
  return null;
}

export interface GuestPrep {
  ok: boolean;
  /** Why the guest tests cannot run ("" when ok). */
  reason: string;
  qemu: string;
  /** Time of scripts/guest/build-image.sh (a build, or the check of a cached image). */
  buildMs: number;
}

/** Root and netns support, QEMU, and the guest image (built when missing). Synchronous, for collection time. */
export function prepareGuest(): GuestPrep {
  const none = { qemu: "", buildMs: 0 };
  const support = canRunNetns();
  if (!support.ok) return { ok: false, reason: support.reason, ...none };
  const qemu = findQemu();
  if (qemu === null) {
    return { ok: false, reason: "qemu-system-x86_64 not found (apt-get install qemu-system-x86, or run scripts/setup-test-deps.sh)", ...none };
  }
  const t0 = Date.now();
  try {
    execFileSync("bash", [BUILD_IMAGE, IMAGE_DIR], { stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });
  } catch (e) {
    return { ok: false, reason: `the guest image cannot be built (scripts/guest/build-image.sh): ${errText(e).slice(-1500)}`, qemu, buildMs: 0 };
  }
  if (!existsSync(join(IMAGE_DIR, "vmlinuz"))) return { ok: false, reason: `no guest image in ${IMAGE_DIR} after scripts/guest/build-image.sh`, qemu, buildMs: 0 };
  return { ok: true, reason: "", qemu, buildMs: Date.now() - t0 };
}

/** Copies the guest's kernel and initramfs into dir, mode 0644 (an unprivileged QEMU reads them). */
export function copyImage(dir: string): { kernel: string; initrd: string } {
  const kernel = join(dir, "vmlinuz");
  const initrd = join(dir, "initrd.gz");
  copyFileSync(join(IMAGE_DIR, "vmlinuz"), kernel);
  copyFileSync(join(IMAGE_DIR, "initrd.gz"), initrd);
  chmodSync(kernel, 0o644);
  chmodSync(initrd, 0o644);
  return { kernel, initrd };
}

/** The kernel command line of scripts/guest/init: serial console, static addresses of eth0 (no gateway). */
export function appendLine(ip4: string, ip6?: string): string {
  return ["console=ttyS0", "loglevel=3", "panic=-1", `tbguest.ip=${ip4}/24`, ...(ip6 ? [`tbguest.ip6=${ip6}/64`] : [])].join(" ");
}

// ------------------------------------------------------------------------------------------------ the console

/** A guest's serial console: what it printed so far, a way to type a line, whether it is still there. */
export interface GuestConsole {
  readonly output: string;
  readonly alive: boolean;
  write(line: string): void;
  /** What else failure messages should show (QEMU's stderr, how it ended). */
  diagnostics(): string;
}

/** QEMU's stdio (-nographic): the console of a QEMU the test spawned with a pipe on stdin. */
export class ProcessConsole implements GuestConsole {
  constructor(readonly bg: Background) {}
  get output(): string {
    return this.bg.stdout;
  }
  get alive(): boolean {
    return this.bg.running;
  }
  write(line: string): void {
    this.bg.child.stdin?.write(line);
  }
  diagnostics(): string {
    const end = this.bg.running ? "" : ` (exited: code ${this.bg.exitCode}, signal ${this.bg.exitSignal})`;
    return `qemu stderr${end}:\n${this.bg.stderr.trim().slice(-3000)}`;
  }
}

/**
 * A Unix socket QEMU listens on for the serial port (libvirt's <serial type='unix'><source mode='bind'>). Output the
 * guest printed before the connection is not seen: connect before the guest's init runs.
 */
export class SocketConsole implements GuestConsole {
  output = "";
  private closed = false;
  private constructor(private readonly sock: Socket, readonly path: string) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (this.output += d));
    sock.on("close", () => (this.closed = true));
    sock.on("error", () => (this.closed = true));
  }

  /** Connects, retrying until the socket exists and accepts or timeoutMs passes. */
  static async open(path: string, timeoutMs = 20_000): Promise<SocketConsole> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        return new SocketConsole(sock, path);
      } catch (e) {
        last = (e as Error).message;
        await sleep(100);
      }
    }
    throw new Error(`cannot connect to the guest console ${path} within ${timeoutMs} ms: ${last}`);
  }

  get alive(): boolean {
    return !this.closed;
  }
  write(line: string): void {
    this.sock.write(line);
  }
  diagnostics(): string {
    return `console socket ${this.path}${this.closed ? " (closed)" : ""}`;
  }
  close(): void {
    this.sock.destroy();
  }
}

// ------------------------------------------------------------------------------------------------ the guest

/** A booted guest driven through the agent of scripts/guest/init on its serial console. */
export class Guest {
  private nextId = 1;
  private readonly startedAt = Date.now();
  bootMs = 0;

  constructor(
    readonly io: GuestConsole,
    readonly name: string,
  ) {}

  /** The console's text so far, without carriage returns. */
  get console(): string {
    return this.io.output.replace(/\r/g, "");
  }

  /** Last lines of the console and the console's diagnostics, for failure messages. */
  tail(lines = 40): string {
    const con = this.console.trimEnd().split("\n").slice(-lines).join("\n");
    return `--- ${this.name} console (last ${lines} lines):\n${con}\n--- ${this.name} ${this.io.diagnostics()}`;
  }

  /** Waits for "@@READY" (eth0 configured); throws with the console's tail when the guest dies or reports an error. */
  async waitReady(timeoutMs = BOOT_TIMEOUT_MS): Promise<void> {
    await waitFor(() => this.io.output.includes("@@READY ") || !this.io.alive, timeoutMs, 100);
    if (!this.io.output.includes("@@READY ")) {
      const why = this.io.alive ? `not ready after ${timeoutMs} ms` : "the console went away";
      throw new Error(`${this.name}: ${why}\n${this.tail()}`);
    }
    if (this.console.includes("@@ERROR")) throw new Error(`${this.name}: the guest reported an error\n${this.tail()}`);
    this.bootMs = Date.now() - this.startedAt;
  }

  /** Runs a shell command in the guest; resolves with its exit status and output. */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ rc: number; out: string }> {
    if (!this.io.alive) throw new Error(`${this.name}: the guest is not running\n${this.tail()}`);
    const id = this.nextId++;
    const from = this.io.output.length;
    this.io.write(`@@RUN ${id} ${cmd}\n`);
    const done = new RegExp(`@@RC ${id} (\\d+)\\r?\\n`);
    await waitFor(() => done.test(this.io.output.slice(from)) || !this.io.alive, timeoutMs, 50);
    const text = this.io.output.slice(from).replace(/\r/g, "");
    const m = done.exec(text);
    if (m === null) throw new Error(`${this.name}: "${cmd}" did not finish within ${timeoutMs} ms\n${this.tail()}`);
    const startMark = `@@START ${id}\n`;
    const start = text.indexOf(startMark);
    return { rc: Number(m[1]), out: text.slice(start >= 0 ? start + startMark.length : 0, m.index) };
  }

  /** Pings count times: {ok (a reply came), avg ms}. busybox prints "round-trip min/avg/max = a/b/c ms". */
  async ping(addr: string, count: number, v6 = false): Promise<{ ok: boolean; avgMs: number; out: string }> {
    const r = await this.run(`${v6 ? "ping6" : "ping"} -c ${count} -i 0.2 -W 2 ${addr}`, 15_000 + count * 2_000);
    const m = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(r.out);
    const received = /(\d+) packets received/.exec(r.out);
    return { ok: r.rc === 0 && received !== null && Number(received[1]) > 0, avgMs: m ? Number(m[1]) : NaN, out: r.out };
  }

  /** Pings until one reply arrives (the port just came up) or timeoutMs passes. */
  async pingUntil(addr: string, timeoutMs = 30_000): Promise<boolean> {
    const r = await this.run(`i=0; while [ $i -lt ${Math.ceil(timeoutMs / 1000)} ]; do ping -c 1 -W 1 ${addr} >/dev/null && exit 0; i=$((i+1)); done; exit 1`, timeoutMs + 15_000);
    return r.rc === 0;
  }
}

/** A guest whose QEMU the test spawned (console on QEMU's stdio): its process too. */
export class ProcessGuest extends Guest {
  constructor(
    readonly bg: Background,
    name: string,
  ) {
    super(new ProcessConsole(bg), name);
  }

  /** Kills QEMU by PID and waits for it. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    this.bg.kill(signal);
    await this.bg.wait(20_000);
  }
}

// ------------------------------------------------------------------------------------------------ TCP transfers

export interface GuestTransfer {
  /** Bytes the receiver counted. */
  bytes: number;
  /** sha256 of what was received, and of what was sent. */
  receivedSha256: string;
  sentSha256: string;
  /** The timing side's seconds (the receiver's accept to EOF, or the sender's clock). */
  seconds: number;
}

/** The guest sends mb MiB of random data with busybox nc to a Python receiver in node at addr:port. */
export async function guestToHost(guest: Guest, lab: Lab, node: string, addr: string, port: number, mb: number): Promise<GuestTransfer> {
  const rx = lab.spawn(node, [PYTHON, "-c", PY_TCP_RECEIVER, addr, String(port), "90", "timed"], `tcp receiver ${node}`);
  await rx.waitForOutput("ready", 10_000);
  const r = await guest.run(
    `dd if=/dev/urandom of=/tmp/blob bs=1048576 count=${mb} 2>/dev/null && sha256sum /tmp/blob && timeout 90 nc ${addr} ${port} </tmp/blob && echo sent`,
    120_000,
  );
  if (r.rc !== 0) throw new Error(`${guest.name}: sending failed (rc ${r.rc}): ${r.out}\n${guest.tail()}`);
  await rx.wait(30_000);
  const res = JSON.parse(rx.stdout.trim().split("\n").pop() ?? "{}") as { bytes: number; sha256: string; seconds: number };
  return { bytes: res.bytes, receivedSha256: res.sha256, sentSha256: /^([0-9a-f]{64}) {2}\/tmp\/blob$/m.exec(r.out)?.[1] ?? "", seconds: res.seconds };
}

/** A Python sender in node sends mb MiB to busybox nc listening in the guest at guestAddr:port. */
export async function hostToGuest(guest: Guest, lab: Lab, node: string, guestAddr: string, port: number, mb: number): Promise<GuestTransfer> {
  const listen = await guest.run(
    `rm -f /tmp/rx /tmp/rx.done; ( timeout 90 nc -l -p ${port} </dev/null >/tmp/rx; echo $? >/tmp/rx.done ) & ` +
      `i=0; while ! netstat -ltn | grep -q ':${port} '; do i=$((i+1)); [ $i -gt 100 ] && exit 1; usleep 100000; done; echo listening`,
    30_000,
  );
  if (listen.rc !== 0) throw new Error(`${guest.name}: nc did not listen: ${listen.out}\n${guest.tail()}`);
  const tx = lab.spawn(node, [PYTHON, "-c", PY_TCP_SENDER, guestAddr, String(port), String(mb), "90"], `tcp sender ${node}`);
  await tx.wait(120_000);
  if (tx.exitCode !== 0) throw new Error(`the sender in ${node} failed (exit ${tx.exitCode}): ${tx.stderr}`);
  const sent = JSON.parse(tx.stdout.trim().split("\n").pop() ?? "{}") as { bytes: number; sha256: string; seconds: number };
  const r = await guest.run(
    "i=0; while [ ! -f /tmp/rx.done ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; usleep 100000; done; " +
      'echo "nc=$(cat /tmp/rx.done) bytes=$(wc -c </tmp/rx)"; sha256sum /tmp/rx; rm -f /tmp/rx',
    60_000,
  );
  if (r.rc !== 0) throw new Error(`${guest.name}: nc did not finish: ${r.out}\n${guest.tail()}`);
  return {
    bytes: Number(/bytes=(\d+)/.exec(r.out)?.[1] ?? -1),
    receivedSha256: /^([0-9a-f]{64}) {2}\/tmp\/rx$/m.exec(r.out)?.[1] ?? "",
    sentSha256: sent.sha256,
    seconds: sent.seconds,
  };
}

// ------------------------------------------------------------------------------------------------ docs snippets

/**
 * The body of the first fenced code block after `<!-- test-snippet: NAME -->` in docs page `page` (relative to docs/),
 * byte for byte (the fence lines excluded). Throws naming the page and marker when either is missing.
 */
export function docSnippet(page: string, name: string): string {
  const path = join(REPO_ROOT, "docs", page);
  const text = readFileSync(path, "utf8");
  const marker = `<!-- test-snippet: ${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`docs/${page} has no ${marker}`);
  const m = /^```[a-z]*\n([\s\S]*?)^```$/m.exec(text.slice(at + marker.length));
  if (m === null) throw new Error(`docs/${page}: no fenced code block after ${marker}`);
  return m[1];
}
