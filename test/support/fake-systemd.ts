// Plays systemd's side of sd_notify (systemd is not PID 1 on our machines): a unix datagram socket, bound by a small
// python3 program (Node has no AF_UNIX SOCK_DGRAM), that prints every datagram it receives as one JSON line with the
// fds that came along (SCM_RIGHTS) resolved to what they point at. An optional control socket is probed the moment
// READY=1 arrives, so a test can tell whether the daemon was really answering when it said so.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const RECEIVER = String.raw`
import array, json, os, socket, sys
path, probe = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"listening": path}), flush=True)
def probe_control():
    # one JSON-RPC request on the control socket, right now: does the daemon answer?
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.settimeout(2); c.connect(probe)
        c.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            b = c.recv(65536)
            if not b: break
            buf += b
        c.close()
        return json.loads(buf.decode()).get("result") is not None
    except Exception as e:
        return "error: %s" % e
while True:
    msg, anc, flags, addr = s.recvmsg(8192, socket.CMSG_SPACE(253 * 4))
    fds = []
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            a = array.array("i"); a.frombytes(data[: len(data) - len(data) % a.itemsize]); fds += list(a)
    state = msg.decode("utf-8", "replace")
    rec = {"state": state, "fds": [os.readlink("/proc/self/fd/%d" % f) for f in fds]}
    for f in fds: os.close(f)
    if probe and "READY=1" in state.split("\n"): rec["control_answered"] = probe_control()
    print(json.dumps(rec), flush=True)
`;

export interface NotifyMessage {
  state: string;
  /** readlink of each fd received */
  fds: string[];
  /** with a probe socket: whether the control socket answered a request when READY=1 arrived */
  control_answered?: boolean | string;
  /** ms since the receiver started */
  atMs: number;
}

export class FakeSystemd {
  readonly messages: NotifyMessage[] = [];
  private readonly child: ChildProcess;
  private readonly started = Date.now();
  private buf = '';
  private stderr = '';
  private listening = false;
  private exited = false;

  /** The receiver's command line: bind `path`; probe `probeControlSocket` (if given) when READY=1 arrives. */
  static argv(path: string, probeControlSocket = ''): string[] {
    return [PYTHON, '-c', RECEIVER, path, probeControlSocket];
  }

  /**
   * Starts the receiver here, or reads one already started (e.g. by Lab.spawn inside a namespace: abstract sockets
   * belong to a network namespace) from `child`, which must have piped stdout and stderr.
   */
  constructor(readonly path: string, probeControlSocket = '', child?: ChildProcess) {
    const argv = FakeSystemd.argv(path, probeControlSocket);
    this.child = child ?? spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const rec = JSON.parse(line) as Partial<NotifyMessage> & { listening?: string };
        if (rec.listening !== undefined) this.listening = true;
        else this.messages.push({ ...(rec as NotifyMessage), atMs: Date.now() - this.started });
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.child.on('exit', () => (this.exited = true));
  }

  async ready(timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.listening, timeoutMs, 'the receiver to bind');
  }

  /** Messages whose state has a line `KEY=...` (or exactly `KEY=VALUE`). */
  with(key: string): NotifyMessage[] {
    return this.messages.filter((m) => m.state.split('\n').some((l) => l.startsWith(`${key}=`)));
  }

  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.exited) throw new Error(`fake systemd exited while waiting for ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages)} ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    if (!this.exited && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}
