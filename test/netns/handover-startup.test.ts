// Handover and start-up under stress (issue 20, section 3). Needs root and `ip netns`; skips with the reason otherwise.
// Nothing touches the root namespace.
//   - a takeover from a daemon with data_workers: 2: the old daemon exits 0, nothing logged at error level;
//   - two phases: a new daemon slower than HANDOVER_ACK_TIMEOUT_MS (TAPBRIDGE_TAKEOVER_DELAY_MS) never reads or
//     serves while the old daemon lives; the old one resumes, the new one gives up (exit 1), never both forward;
//   - a slow new daemon within the timeout takes over; the old one never resumes once it handed over;
//   - SIGTERM to the old daemon during the handover deletes nothing the new daemon holds (socket file, TAPs);
//   - SIGTERM at the new daemon before it asked the old one to stop: it refuses (exit 1), the old one forwards again;
//   - SIGHUP during start-up (from its first log line on): the daemon keeps running and the reload is applied once it
//     is ready; SIGTERM during start-up: a clean stop once ready (exit 0, TAPs and socket file gone);
//   - SIGHUP at the new daemon during a takeover with metrics.listen set: it survives and forwards.
//
//   vm1..vm2 eth0 (TAPs, were vif1.0..vif2.0) 198.18.4.1-2 --- dom0: tapbridge xenbr0

import { existsSync, readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { destroyLab, CLI_MAIN, Lab, canRunNetns, waitFor, type Background } from "./helpers.js";
import { pingSummary, spawnTakeover, takeover, tapLab as tapLabOf } from "./handover-helpers.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.4.1", vm2: "198.18.4.2" };

const tapLab = (tag: string, extra: Record<string, unknown> = {}, env?: NodeJS.ProcessEnv): Promise<Lab> => tapLabOf(tag, IP, extra, env);

const out = (bg: Background): string => bg.stdout + bg.stderr;

/** Whether the process has a handler for signal `signo` (SigCgt in /proc/<pid>/status). */
function catches(pid: number, signo: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(signo - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!support.ok)("handover and start-up" + skipNote, () => {
  let lab: Lab | null = null;
  afterEach(async () => {
    if (lab !== null) await destroyLab(lab);
    lab = null;
  });

  it("takeover from a daemon with data_workers: 2: the old daemon exits 0 with no error logged; the new one forwards", async () => {
    lab = await tapLab("howorkers", { data_workers: 2 });
    const old = lab.daemon!;
    const { oldExit } = await takeover(lab);
    const oldErrors = (old.stdout + old.stderr).split("\n").filter((l) => /FATAL|"level":(5|6)\d/.test(l));
    expect(oldExit, (old.stdout + old.stderr).slice(-3000)).toEqual({ code: 0, signal: null });
    expect(oldErrors).toEqual([]);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok && pingSummary(r.output).duplicates === 0, r.output).toBe(true);
  }, 90_000);

  it("a new daemon slower than the old one's timeout: it never reads or serves while the old one lives; exactly one forwards", async () => {
    lab = await tapLab("hoslow");
    const old = lab.daemon!;
    // 16 s of pings across the handover: the old daemon pauses, resumes after 10 s; the new one wakes at 12 s
    const ping = lab.spawn("vm1", ["ping", "-n", "-q", "-c", "320", "-i", "0.05", "-W", "2", IP.vm2]);
    await sleep(500);
    const t0 = Date.now();
    const bg = spawnTakeover(lab, { TAPBRIDGE_TAKEOVER_DELAY_MS: "12000" });
    await bg.wait(40_000).catch(() => undefined);
    expect(Date.now() - t0).toBeGreaterThan(10_000); // the old daemon's timeout passed while the new one was blocked
    await ping.wait(30_000);
    const s = pingSummary(ping.stdout + ping.stderr);
    expect(bg.exitCode, out(bg).slice(-3000)).toBe(1);
    expect(out(bg)).toMatch(/did not answer \\?"stopping\\?"/);
    // the new daemon never said it forwards; the old one did resume and still runs
    expect(out(bg)).not.toMatch(/took over; forwarding/);
    expect(out(old)).toMatch(/handover did not complete; forwarding again/);
    expect(old.running).toBe(true);
    expect(s.duplicates, s.output).toBe(0);
    expect(s.transmitted, s.output).toBe(320);
    // the old daemon forwards and answers on its socket, which is still there
    expect(existsSync(lab.socketPath)).toBe(true);
    expect((await lab.cli(["show"])).code).toBe(0);
    const r = await lab.ping("vm1", IP.vm2, 3, { intervalS: 0.1 });
    expect(r.ok, r.output).toBe(true);
  }, 90_000);

  it("a new daemon slow within the timeout takes over; the old one stops, never resumes, and a SIGTERM to it during the handover deletes nothing", async () => {
    lab = await tapLab("hosigterm");
    const old = lab.daemon!;
    const ping = lab.spawn("vm1", ["ping", "-n", "-q", "-c", "120", "-i", "0.05", "-W", "2", IP.vm2]);
    await sleep(300);
    const bg = spawnTakeover(lab, { TAPBRIDGE_TAKEOVER_DELAY_MS: "3000" });
    expect(await waitFor(() => out(old).includes("handover sent"), 15_000, 20), out(old)).toBe(true);
    // the fds are out: a stop signal now must not close the socket file or the TAPs the new daemon adopted
    old.kill("SIGTERM");
    expect(await waitFor(() => out(bg).includes("took over; forwarding") || !bg.running, 30_000, 20), out(bg)).toBe(true);
    expect(bg.running, out(bg).slice(-3000)).toBe(true);
    await old.exited;
    lab.daemon = bg;
    expect({ code: old.exitCode, signal: old.exitSignal }, out(old).slice(-3000)).toEqual({ code: 0, signal: null });
    expect(out(old)).not.toMatch(/forwarding again|shutting down/);
    expect(out(old)).toMatch(/deferred until it completes/);
    expect(out(bg)).toMatch(/the old daemon has stopped and exited/);
    await ping.wait(30_000);
    const s = pingSummary(ping.stdout + ping.stderr);
    expect(s.duplicates, s.output).toBe(0);
    expect(existsSync(lab.socketPath)).toBe(true);
    expect(await lab.linkExists("vm1", "eth0")).toBe(true);
    expect(await lab.linkExists("vm2", "eth0")).toBe(true);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok && pingSummary(r.output).duplicates === 0, r.output).toBe(true);
    expect((await lab.cli(["show"])).code).toBe(0);
  }, 90_000);

  it("SIGTERM at the new daemon before it asked the old one to stop: it refuses, the old one forwards again", async () => {
    lab = await tapLab("hotermnew");
    const old = lab.daemon!;
    const bg = spawnTakeover(lab, { TAPBRIDGE_TAKEOVER_DELAY_MS: "2000" });
    expect(await waitFor(() => catches(bg.pid!, 15) || !bg.running, 15_000, 2), out(bg)).toBe(true);
    expect(await waitFor(() => out(old).includes("handover sent") || !bg.running, 15_000, 5), out(old)).toBe(true);
    bg.kill("SIGTERM");
    expect(await waitFor(() => !bg.running, 20_000, 20)).toBe(true);
    expect(bg.exitCode, out(bg).slice(-3000)).toBe(1);
    expect(out(bg)).toMatch(/SIGTERM during the takeover, before the old daemon was asked to stop/);
    expect(out(bg)).not.toMatch(/took over; forwarding/);
    expect(await waitFor(() => out(old).includes("forwarding again"), 10_000, 20), out(old)).toBe(true);
    expect(old.running).toBe(true);
    expect(existsSync(lab.socketPath)).toBe(true);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok && pingSummary(r.output).duplicates === 0, r.output).toBe(true);
    expect((await lab.cli(["show"])).code).toBe(0);
  }, 60_000);

  it("SIGHUP during start-up (as soon as it has a handler, and 0..30 ms after its first log line, the TAPs being opened): the daemon keeps running and the reload is applied once it is ready", async () => {
    const l = new Lab("hosighup");
    lab = l;
    await l.addNs("dom0");
    let queued = 0;
    const ports = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `vif${i + 1}.0` }));
    // -1: as soon as the process has a SIGHUP handler (before it loaded the daemon), else that long after its first line
    for (const delayMs of [-1, 0, 0, 10, 30]) {
      // vif1.0, vif3.0 .. vif12.0: a start-up that opens a dozen TAPs; the reload adds vif2.0
      l.writeConfig({ control_socket: l.socketPath, bridges: [{ name: BRIDGE, ports: ports(12).filter((p) => p.name !== "vif2.0") }] });
      const bg = l.spawn("dom0", [process.execPath, CLI_MAIN, "daemon", "--config", l.configPath], "tapbridge daemon");
      l.daemon = bg;
      if (delayMs < 0) expect(await waitFor(() => catches(bg.pid!, 1) || !bg.running, 20_000, 1), "no SIGHUP handler").toBe(true);
      else {
        expect(await waitFor(() => out(bg).length > 0 || !bg.running, 20_000, 1), "no output").toBe(true);
        await sleep(delayMs);
      }
      // the config the reload must apply: a second port
      l.writeConfig({ control_socket: l.socketPath, bridges: [{ name: BRIDGE, ports: ports(12) }] });
      bg.kill("SIGHUP");
      const up = await waitFor(async () => !bg.running || (existsSync(l.socketPath) && (await l.linkExists("dom0", "vif2.0"))), 20_000, 50);
      expect(bg.running, `SIGHUP ${delayMs} ms after the first line: exit ${bg.exitCode} signal ${bg.exitSignal}\n${out(bg).slice(-2000)}`).toBe(true);
      expect(up, out(bg).slice(-2000)).toBe(true);
      expect(out(bg)).toMatch(/SIGHUP during start-up: reloading the config now|SIGHUP: reloading the config/);
      queued += out(bg).includes("SIGHUP during start-up") ? 1 : 0;
      // sent before the daemon had read its config: the reload was queued and run once it was ready
      if (delayMs < 0) expect(out(bg)).toMatch(/SIGHUP during start-up: reloading the config now/);
      expect(await l.linkExists("dom0", "vif1.0")).toBe(true);
      const exit = await l.stopDaemon();
      expect(exit, out(bg).slice(-2000)).toEqual({ code: 0, signal: null });
    }
    console.log(`SIGHUP during start-up: ${queued} of 5 arrived before the daemon was ready (queued)`);
  }, 120_000);

  it("SIGTERM during start-up: the daemon stops cleanly once ready (exit 0, its TAPs and socket file gone)", async () => {
    const l = new Lab("hosigterm0");
    lab = l;
    await l.addNs("dom0");
    l.writeConfig({ control_socket: l.socketPath, bridges: [{ name: BRIDGE, ports: Array.from({ length: 8 }, (_, i) => ({ name: `vif${i + 1}.0` })) }] });
    const bg = l.spawn("dom0", [process.execPath, CLI_MAIN, "daemon", "--config", l.configPath], "tapbridge daemon");
    l.daemon = bg;
    expect(await waitFor(() => out(bg).length > 0 || !bg.running, 20_000, 1), "no output").toBe(true);
    bg.kill("SIGTERM");
    expect(await waitFor(() => !bg.running, 20_000, 20)).toBe(true);
    expect({ code: bg.exitCode, signal: bg.exitSignal }, out(bg).slice(-2000)).toEqual({ code: 0, signal: null });
    expect(out(bg)).toMatch(/"msg":"stopped"/);
    expect(existsSync(l.socketPath)).toBe(false);
    expect(await l.linkExists("dom0", "vif1.0")).toBe(false);
  }, 60_000);

  it("SIGHUP at the new daemon during a takeover with metrics.listen set: it survives and forwards", async () => {
    lab = await tapLab("hometrics", { metrics: { listen: "127.0.0.1:19464" } });
    const old = lab.daemon!;
    const bg = spawnTakeover(lab, { TAPBRIDGE_TAKEOVER_DELAY_MS: "2000" });
    // one SIGHUP as soon as it has a handler (its start-up, with the takeover and 2 s of delay, is still ahead), one as
    // it reports that it forwards
    expect(await waitFor(() => catches(bg.pid!, 1) || !bg.running, 15_000, 2), out(bg)).toBe(true);
    bg.kill("SIGHUP");
    expect(await waitFor(() => out(bg).includes("took over; forwarding") || !bg.running, 30_000, 5), out(bg)).toBe(true);
    bg.kill("SIGHUP");
    expect(await waitFor(() => !old.running, 15_000, 20), "the old daemon did not exit").toBe(true);
    lab.daemon = bg;
    await sleep(500);
    expect(bg.running, `exit ${bg.exitCode} signal ${bg.exitSignal}\n${out(bg).slice(-3000)}`).toBe(true);
    expect({ code: old.exitCode, signal: old.exitSignal }).toEqual({ code: 0, signal: null });
    // the first SIGHUP was queued during start-up and run once the daemon was ready
    expect(out(bg), out(bg).slice(-3000)).toMatch(/SIGHUP during start-up: reloading the config now/);
    expect(out(bg)).toMatch(/"msg":"config reloaded"/);
    expect(await lab.linkExists("vm1", "eth0")).toBe(true);
    const r = await lab.ping("vm1", IP.vm2, 5, { intervalS: 0.1 });
    expect(r.ok, r.output).toBe(true);
  }, 90_000);
});
