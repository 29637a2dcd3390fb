// Helpers shared by the bond netns tests (bond.test.ts, bond-modes.test.ts): frame counters and senders run with
// PYTHON in a lab namespace, a JSON-RPC call on the lab daemon's control socket, and the upstream kernel switch's FDB.

import { connect } from "node:net";
import type { Lab } from "./helpers.js";

/** Count received frames (not our own outgoing ones) carrying MARKER on IFNAME for TIMEOUT s. Prints {"count": n}. */
export const PY_COUNT = String.raw`
import json, socket, sys, time
ifname, marker, timeout = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + timeout
n = 0
while True:
    left = deadline - time.monotonic()
    if left <= 0: break
    s.settimeout(left)
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        break
    if addr[2] != socket.PACKET_OUTGOING and marker in data: n += 1
print(json.dumps({"count": n}), flush=True)
`;

/** Send COUNT broadcast frames (EtherType 0x88b5, payload MARKER) from IFNAME, INTERVAL s apart. */
export const PY_BCAST = String.raw`
import socket, sys, time
ifname, marker, count, interval = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src = s.getsockname()[4]
frame = b"\xff" * 6 + src + b"\x88\xb5" + marker
frame += b"\0" * max(0, 60 - len(frame))
for i in range(count):
    s.send(frame); time.sleep(interval)
print("sent", flush=True)
`;

/** One JSON-RPC call on the control socket from this process (a CLI run costs a node start-up: too slow to poll). */
export function rpc<T>(lab: Lab, method: string, params: Record<string, unknown> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = connect(lab.socketPath);
    let buf = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${method}: no reply in 5 s`));
    }, 5_000);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) + "\n"));
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const reply = JSON.parse(buf.slice(0, nl)) as { result?: T; error?: { message: string } };
      if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
      else resolve(reply.result as T);
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** MAC -> port of the learned (non-permanent, not "self") FDB entries of the kernel bridge br0 in namespace "sw". */
export async function switchFdb(lab: Lab): Promise<Map<string, string>> {
  const r = await lab.exec("sw", ["bridge", "-j", "fdb", "show", "br", "br0"]);
  const entries = JSON.parse(r.stdout) as { mac: string; ifname?: string; state?: string; flags?: string[] }[];
  const out = new Map<string, string>();
  for (const e of entries) {
    if (!e.ifname || e.state === "permanent" || (e.flags ?? []).includes("self")) continue;
    out.set(e.mac.toLowerCase(), e.ifname);
  }
  return out;
}
