// The systemd fd store (issue 11, section 2). systemd is not PID 1 here, so the test plays its part: a python3 program
// binds the NOTIFY_SOCKET datagram socket, keeps every fd sent with FDSTORE=1 under its FDNAME (drops it on
// FDSTOREREMOVE=1), and starts each daemon itself, with the kept fds at 3.., LISTEN_FDS, LISTEN_FDNAMES and a LISTEN_PID
// equal to the daemon's own pid (`sh -c 'export LISTEN_PID=$$; exec ...'`). Needs root and `ip netns`; skips with the
// reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 (TAP vif1.0, moved) 198.18.4.1 --+-- dom0: [fake systemd] -> tapbridge xenbr0 --- peth0 ~~ veth ~~ ext eth0 198.18.4.3

import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_MAIN, Lab, PYTHON, canRunNetns, waitFor, type Background } from "./helpers.js";
import { uplinkLab } from "./handover-helpers.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const IP = { vm1: "198.18.4.1", ext: "198.18.4.3" };

/**
 * systemd's part. stdin commands: "start" (with the store as LISTEN_FDS), "start-wrong-pid" (LISTEN_PID of another
 * process), "term" (SIGTERM the daemon). stdout: one JSON line per event: {"notify": state, "fds": n, "store": [names]},
 * {"started": pid, "listen_fds": n}, {"exited": code}.
 */
const FAKE_SYSTEMD = String.raw`
import array, fcntl, json, os, select, signal, socket, subprocess, sys
path, log, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
store = {}   # name -> fd, in insertion order
child = None
def out(o): print(json.dumps(o), flush=True)
def start(wrong_pid):
    global child
    names = list(store.keys()); fds = [store[n] for n in names]
    def setup():
        tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200 + i) for i, fd in enumerate(fds)]
        for i, t in enumerate(tmp):
            os.dup2(t, 3 + i, inheritable=True)
    env = dict(os.environ, NOTIFY_SOCKET=path, LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names))
    pid_expr = "1" if wrong_pid else "$$"
    cmd = ["sh", "-c", 'export LISTEN_PID=%s; exec "$@"' % pid_expr, "sh"] + argv
    lf = open(log, "ab")
    child = subprocess.Popen(cmd, env=env, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL, preexec_fn=setup,
                             close_fds=True, pass_fds=tuple(range(3, 3 + len(fds))))
    out({"started": child.pid, "listen_fds": len(fds)})
out({"listening": path})
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.05)
    if child is not None and child.poll() is not None:
        out({"exited": child.returncode}); child = None
    if s in r:
        msg, anc, flags, addr = s.recvmsg(8192, socket.CMSG_SPACE(253 * 4))
        got = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i"); a.frombytes(data[: len(data) - len(data) % a.itemsize]); got += list(a)
        lines = msg.decode("utf-8", "replace").split("\n")
        kv = dict(l.split("=", 1) for l in lines if "=" in l)
        name = kv.get("FDNAME", "stored")
        if kv.get("FDSTORE") == "1":
            for fd in got:
                if name in store: os.close(store.pop(name))
                store[name] = fd
            got = []
        if kv.get("FDSTOREREMOVE") == "1" and name in store:
            os.close(store.pop(name))
        for fd in got: os.close(fd)
        out({"notify": "\n".join(lines), "store": list(store.keys())})
    if sys.stdin in r:
        line = sys.stdin.readline()
        if not line: break
        cmd = line.strip()
        if cmd == "start": start(False)
        elif cmd == "start-wrong-pid": start(True)
        elif cmd == "term" and child is not None: child.send_signal(signal.SIGTERM)
`;

interface FakeEvent {
  notify?: string;
  store?: string[];
  started?: number;
  listen_fds?: number;
  exited?: number;
}

describe.skipIf(!support.ok)("systemd fd store" + skipNote, () => {
  let lab: Lab;
  let systemd: Background;
  const events: FakeEvent[] = [];
  let seen = 0;

  function parseEvents(): void {
    const lines = systemd.stdout.split("\n").filter((l) => l.trim() !== "");
    for (; seen < lines.length; seen++) events.push(JSON.parse(lines[seen]) as FakeEvent);
  }

  async function until(pred: (e: FakeEvent) => boolean, what: string, timeoutMs = 20_000): Promise<FakeEvent> {
    let hit: FakeEvent | undefined;
    const from = events.length;
    await waitFor(() => {
      parseEvents();
      hit = events.slice(from).find(pred);
      return hit !== undefined || !systemd.running;
    }, timeoutMs, 20);
    if (hit === undefined) throw new Error(`no ${what}; events ${JSON.stringify(events.slice(-10))}\n${systemd.stderr}\n${daemonLog()}`);
    return hit;
  }

  const send = (cmd: string): void => {
    systemd.child.stdin!.write(`${cmd}\n`);
  };
  const lastStore = (): string[] => [...events].reverse().find((e) => e.store !== undefined)?.store ?? [];
  const daemonLog = (lines = 40): string =>
    existsSync(lab.daemonLogPath) ? readFileSync(lab.daemonLogPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n") : "(no log)";
  /** Kills the daemon the fake systemd started last, by its pid, if it still runs. */
  function killDaemon(): void {
    const pid = [...events].reverse().find((e) => e.started !== undefined)?.started;
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }

  beforeAll(async () => {
    lab = await uplinkLab("fdstore", ["vm1"], IP.ext);
    lab.writeConfig({ control_socket: lab.socketPath, bridges: [{ name: "xenbr0", uplink: { interface: "peth0" }, ports: [{ name: "vif1.0" }] }] });
    const notifyPath = `${lab.dir}/notify.sock`;
    systemd = lab.spawn("dom0", [PYTHON, "-c", FAKE_SYSTEMD, notifyPath, lab.daemonLogPath, process.execPath, CLI_MAIN, "daemon", "--config", lab.configPath],
      "fake systemd", { stdin: true });
    await until((e) => "listening" in e, "fake systemd listening");
  }, 60_000);

  afterAll(async () => {
    if (!lab) return;
    parseEvents();
    killDaemon();
    await lab.destroy();
    expect(await Lab.leftoverNamespaces(lab.prefix)).toEqual([]);
  });

  it("stores each TAP fd as <bridge>/<port>/<queue> once the port is open", async () => {
    send("start");
    await until((e) => e.notify?.includes("READY=1") === true, "READY=1");
    expect(lastStore()).toContain("xenbr0/vif1.0/0");
    expect(await waitFor(() => lab.linkExists("dom0", "vif1.0"), 10_000)).toBe(true);
    await lab.moveLink("dom0", "vif1.0", "vm1", "eth0");
    await lab.configureHost("vm1", "eth0", IP.vm1);
    const r = await lab.pingUntil("vm1", IP.ext, 10_000);
    expect(r.ok, `${r.output}\n${daemonLog()}`).toBe(true);
  }, 60_000);

  it("a runtime TAP is stored on addif and removed from the store (and gone) on delif", async () => {
    expect((await lab.cli(["addif", "xenbr0", "vif7.0"])).code).toBe(0);
    await until((e) => e.store?.includes("xenbr0/vif7.0/0") === true, "vif7.0 stored");
    expect((await lab.cli(["delif", "xenbr0", "vif7.0"])).code).toBe(0);
    await until((e) => e.notify?.includes("FDSTOREREMOVE=1") === true && e.store?.includes("xenbr0/vif7.0/0") === false, "vif7.0 removed");
    expect(await waitFor(async () => !(await lab.linkExists("dom0", "vif7.0")), 5_000)).toBe(true);
  }, 30_000);

  it("SIGTERM keeps the stored TAP in the VM's namespace; the next start adopts it from LISTEN_FDS", async () => {
    const ifindex = (await lab.link("vm1", "eth0"))!.ifindex;
    send("term");
    const exited = await until((e) => e.exited !== undefined, "daemon exit");
    expect(exited.exited).toBe(0);
    // the daemon closed its fd; systemd's copy keeps the TAP, still in vm1
    expect((await lab.link("vm1", "eth0"))?.ifindex).toBe(ifindex);
    // frames the VM sends meanwhile queue in the TAP
    send("start");
    const started = await until((e) => e.started !== undefined, "restart");
    expect(started.listen_fds).toBe(1);
    await until((e) => e.notify?.includes("READY=1") === true, "READY=1 after restart");
    expect(await lab.linkExists("dom0", "vif1.0")).toBe(false);
    const r = await lab.pingUntil("vm1", IP.ext, 10_000);
    expect(r.ok, `${r.output}\n${daemonLog()}`).toBe(true);
    expect(daemonLog(400)).toMatch(/"source":"fdstore"[^\n]*adopted inherited fd|adopted inherited fd[^\n]*"source":"fdstore"/);
    expect((await lab.link("vm1", "eth0"))?.ifindex).toBe(ifindex);
  }, 60_000);

  it("fds whose LISTEN_PID is another process are not used", async () => {
    send("term");
    await until((e) => e.exited !== undefined, "daemon exit");
    send("start-wrong-pid");
    await until((e) => e.notify?.includes("READY=1") === true, "READY=1 with a wrong LISTEN_PID");
    // the daemon made a new vif1.0 in dom0 instead of adopting the stored one (which is still in vm1)
    expect(await waitFor(() => lab.linkExists("dom0", "vif1.0"), 10_000)).toBe(true);
    expect(await lab.linkExists("vm1", "eth0")).toBe(true);
    expect(daemonLog(400)).toMatch(/LISTEN_FDS meant for another process/);
    send("term");
    await until((e) => e.exited !== undefined, "daemon exit");
  }, 60_000);
});

