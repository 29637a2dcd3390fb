#!/usr/bin/env node
// tapbridge CLI: the daemon, config checking, and brctl-like verbs over the control socket.
//
// Exit codes: 0 ok, 1 request failed (unknown bridge or port, ...), 2 usage or config error,
// 3 daemon unreachable. Options may stand before or after arguments.

import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET, loadConfig } from '../config/config.js';
import { call, DaemonUnreachableError, RpcError } from '../control/client.js';
import type { BridgeStats, MacEntry, ShowBridge, VlanShow } from '../daemon/daemon.js';
import type { LockShow } from '../bridge/lock.js';
import type { QosShow } from '../bridge/qos.js';
import { VERSION } from '../version.js';
import { formatBond, formatLockShow, formatQosShow, formatShow, formatShowmacs, formatStats, formatVlanShow } from './format.js';
import type { BondShow } from '../daemon/bond.js';
import { isLogFormat, isLogLevel, LOG_LEVELS } from '../log.js';
import type { VxlanShow } from '../daemon/vxlan.js';
import { formatVxlanShow } from './format.js';
import type { MirrorShow } from '../bridge/mirror.js';
import type { TraceResult } from '../observe/trace.js';
import { CaptureError, firstPcapFrame, formatMirrors, formatTrace, runCapture } from './observe.js';
import type { MdbShow } from '../mdb/control.js';
import { formatMdbShow } from './mdb.js';

const USAGE = `Usage: tapbridge <command> [options]

Commands:
  daemon [--config FILE]                 run the bridge daemon in the foreground (default config ${DEFAULT_CONFIG_PATH})
         [--log-level LEVEL] [--log-format json|pretty]
                                         LEVEL: fatal error warn info debug trace silent (wins over log_level);
                                         pretty is the default on a terminal, JSON lines otherwise
  install-service [--prefix DIR]         install the systemd unit, /etc/tapbridge/tapbridge.yaml (if absent) and
                                         qemu-ifup/-ifdown, qemu-vhost-user-up/-down under DIR (default /; root)
  daemon --takeover [--config FILE]      take over the running daemon's TAPs, sockets and state (upgrade, restart)
  check-config FILE                      check a config file: exit 0, or 2 with the errors
  show [-j]                              bridges, uplinks and ports (like brctl show)
  showmacs BRIDGE [-j]                   forwarding database (like brctl showmacs)
  addif BRIDGE IFNAME [--kind tap|attach|vhost-user] [--vhost-socket PATH] [--vhost-mode client|server] [VLAN options]
                                         add a port: a TAP the daemon creates, or an existing netdev
  delif BRIDGE IFNAME                    remove a port
  fdb add BRIDGE MAC PORT [--vlan N]     add a static FDB entry
  fdb del BRIDGE MAC PORT [--vlan N]     delete an FDB entry
  fdb flush BRIDGE [PORT]                remove dynamic FDB entries (of one port)
  mdb show BRIDGE [-j]                   multicast database: VLAN, group, source, port, timer, kind; router ports
  mdb add|del BRIDGE PORT GROUP [--vlan N] [--source S]
                                         add or delete a permanent MDB entry ((S, G) with --source)
  setageing BRIDGE SECONDS               FDB ageing time (0 = never age, else 10..1000000)
  stats [-j]                             per-bridge FDB and per-port counters
  bond show [BOND] [-j]                  bonds (like /proc/net/bonding/bondX): per mode, members, SLB loads, LACP state
  bond set-active BOND MEMBER            force the active member (active-backup)
  bond rebalance BOND                    one balance-slb rebalancing round now
  bond set-mode BOND MODE                refused while running: set uplink.bond.mode and reload
  vlan show BRIDGE [-j]                  per port: its VLANs, the PVID/native VLAN, which leave untagged
  vlan set BRIDGE PORT VLAN-OPTIONS      change a port's VLAN mode at runtime
  vxlan show BRIDGE [-j]                 vxlan ports: vni, local, remotes or group, vlan, state, MTU
  vxlan add BRIDGE NAME --vni N [VXLAN options] [--vlan N | VLAN options]
                                         create a kernel vxlan netdev and attach it (--vlan N: VNI -> access VLAN N)
  vxlan del BRIDGE NAME                  detach it and remove the netdev (unless it was added with --persist)
  vxlan remote add|del BRIDGE NAME IP    add or remove a remote VTEP (head-end replication) at runtime
  qos show BRIDGE [-j]                   per port: rate limits, storm control, their drop counters
  qos set BRIDGE PORT [--kbps N] [--burst-kb N] [--egress-kbps N] [--egress-burst-kb N]
          [--broadcast-pps N] [--multicast-pps N] [--unknown-unicast-pps N] [--storm-action drop|shutdown] [--shutdown-s N]
                                         change what is given (kbit/s, kbit, packets/s; 0 removes that limit)
  qos clear BRIDGE PORT                  no rate limit and no storm control on the port
  lock show BRIDGE [-j]                  per port: lock mode, MAC, allowed addresses, RA and DHCP guards
  lock set BRIDGE PORT --mac M [--ipv4 LIST] [--ipv6 LIST] [--allow-ethertypes LIST]
                                         lock a port to a MAC and addresses/prefixes (LIST: a,b/24,...);
                                         --allow-ethertypes 0x88cc,...: other ethertypes it may send
  lock set BRIDGE PORT --disabled        drop everything the guest sends
  lock clear BRIDGE PORT                 unlock a port
  capture BRIDGE PORT [-w FILE|-] [-c COUNT] [--direction in|out|both] [--dropped] [--vlan N]
                                         pcapng of the port's frames as on its wire (-w - streams to stdout;
                                         --dropped adds dropped frames, the reason as the packet comment)
  trace BRIDGE IN_PORT --src MAC --dst MAC [--vlan N] [--ethertype 0x0800] [--pcap FILE] [-j]
                                         what the bridge would do with that frame (or the pcap's first), step by step
  mirror add BRIDGE NAME --select-ports LIST [--direction in|out|both] [--select-vlans LIST]
             (--output PORT | --output-vlan N)
                                         copy frames of LIST (ports, or all) to PORT, or tagged N on the uplink
  mirror del BRIDGE NAME                 delete a mirror
  mirror show BRIDGE [-j]                mirrors, their selection, output and frames mirrored
  save-config [FILE|-]                   write the effective config (config plus runtime changes) as YAML
  reload [--config FILE] [--dry-run]     apply the difference to a new config (the daemon's own file without
                                         --config; the CLI sends FILE's text); --dry-run only lists the changes

VLAN options:
  --access N                             access port in VLAN N (untagged on the wire)
  --trunk LIST [--native N]              trunk carrying LIST (e.g. 10,20,100-199 or all); N leaves untagged
  --default                              carry every VLAN, untagged frames in their own network (the default)

VXLAN options (the config keys of a \`vxlan\` entry):
  --local IP  --remote IP (repeatable)  --group IP --dev IFNAME  --dstport N (default 4789)
  --ttl N  --tos N  --no-kernel-learning  --persist  --no-learning  --no-flood  --isolated  --fdb-max N
  version                                CLI and daemon versions (exit 3 when the daemon is unreachable)

Options:
  --socket PATH    control socket (env TAPBRIDGE_SOCKET; default ${DEFAULT_CONTROL_SOCKET})
  -j, --json       print JSON
  -h, --help       this help
  -V, --version    print the version

Exit codes: 0 ok, 1 request failed, 2 usage or config error, 3 daemon unreachable.
Runtime changes (addif, delif, vlan set, fdb add/del, setageing) are kept in the daemon's state file and
survive restarts; save-config makes them permanent.`;

class UsageError extends Error {}

function need(args: string[], n: number, what: string): void {
  if (args.length < n) throw new UsageError(`missing ${what}`);
}

function noExtra(args: string[], n: number): void {
  if (args.length > n) throw new UsageError(`unexpected argument: ${args[n]}`);
}

function intArg(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a non-negative integer, got "${text}"`);
  return Number(text);
}

/** `capture ... -c COUNT`: -c is --config elsewhere; for capture it is the frame count. */
function captureArgs(argv: string[]): string[] {
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-')) i += argv[i] === '--socket' ? 2 : 1;
  if (argv[i] !== 'capture') return argv;
  return argv.map((a) => (a === '-c' ? '--count' : a));
}

function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : human()}\n`);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: captureArgs(argv),
      allowPositionals: true,
      options: {
        socket: { type: 'string' },
        json: { type: 'boolean', short: 'j' },
        kind: { type: 'string' },
        'vhost-socket': { type: 'string' },
        'vhost-mode': { type: 'string' },
        vlan: { type: 'string' },
        access: { type: 'string' },
        trunk: { type: 'string' },
        native: { type: 'string' },
        default: { type: 'boolean' },
        vni: { type: 'string' },
        local: { type: 'string' },
        remote: { type: 'string', multiple: true },
        group: { type: 'string' },
        dev: { type: 'string' },
        dstport: { type: 'string' },
        ttl: { type: 'string' },
        tos: { type: 'string' },
        'no-kernel-learning': { type: 'boolean' },
        persist: { type: 'boolean' },
        'no-learning': { type: 'boolean' },
        'no-flood': { type: 'boolean' },
        isolated: { type: 'boolean' },
        'fdb-max': { type: 'string' },
        mac: { type: 'string' },
        ipv4: { type: 'string' },
        ipv6: { type: 'string' },
        disabled: { type: 'boolean' },
        'allow-ethertypes': { type: 'string' },
        kbps: { type: 'string' },
        'burst-kb': { type: 'string' },
        'egress-kbps': { type: 'string' },
        'egress-burst-kb': { type: 'string' },
        'broadcast-pps': { type: 'string' },
        'multicast-pps': { type: 'string' },
        'unknown-unicast-pps': { type: 'string' },
        'storm-action': { type: 'string' },
        'shutdown-s': { type: 'string' },
        write: { type: 'string', short: 'w' },
        count: { type: 'string' },
        direction: { type: 'string' },
        dropped: { type: 'boolean' },
        src: { type: 'string' },
        dst: { type: 'string' },
        ethertype: { type: 'string' },
        pcap: { type: 'string' },
        'select-ports': { type: 'string' },
        'select-vlans': { type: 'string' },
        output: { type: 'string' },
        'output-vlan': { type: 'string' },
        config: { type: 'string', short: 'c' },
        takeover: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        prefix: { type: 'string' },
        source: { type: 'string' },
      },
    });
  } catch (err) {
    process.stderr.write(`tapbridge: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values: opts, positionals } = parsed;
  if (opts.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (opts.version === true) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const [cmd, ...args] = positionals;
  if (cmd === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const json = opts.json === true;
  const socket = opts.socket ?? process.env.TAPBRIDGE_SOCKET ?? DEFAULT_CONTROL_SOCKET;
  const vlan = opts.vlan === undefined ? undefined : intArg(opts.vlan, '--vlan');
  const vlanOpts: Record<string, unknown> = {
    access: opts.access === undefined ? undefined : intArg(opts.access, '--access'),
    trunk: opts.trunk,
    native: opts.native === undefined ? undefined : intArg(opts.native, '--native'),
    default: opts.default === true ? true : undefined,
  };
  const rpc = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => call(socket, method, params);

  switch (cmd) {
    case 'daemon': {
      noExtra(args, 0);
      const logLevel = opts['log-level'];
      const logFormat = opts['log-format'];
      if (logLevel !== undefined && !isLogLevel(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
      if (logFormat !== undefined && !isLogFormat(logFormat)) throw new UsageError(`--log-format must be json or pretty, got "${logFormat}"`);
      // SIGHUP/SIGTERM handled (queued) from here on, before the daemon's modules and the addon load
      const { DaemonSignals } = await import('../service/signals.js');
      const signals = new DaemonSignals();
      const { runDaemon } = await import('../daemon/run.js');
      const code = await runDaemon(opts.config ?? DEFAULT_CONFIG_PATH, opts.socket, { logLevel, logFormat, takeover: opts.takeover === true, signals });
      // native poll handles are closed by now; exit explicitly so nothing else keeps the process
      process.exit(code);
    }
    case 'check-config': {
      const file = args[0] ?? opts.config;
      if (file === undefined) throw new UsageError('missing FILE');
      noExtra(args, 1);
      try {
        const cfg = loadConfig(file);
        const ports = cfg.bridges.reduce((n, b) => n + b.ports.length, 0);
        // where the underlay device is known on this machine: overlay frames that cannot fit its MTU; a `local`
        // address this machine does not have
        if (cfg.bridges.some((b) => b.vxlan.length > 0)) {
          const { vxlanMtuWarnings } = await import('../daemon/vxlan.js');
          const { vxlanLocalWarnings } = await import('../daemon/vxlan-owner.js');
          for (const w of [...vxlanMtuWarnings(cfg.bridges), ...vxlanLocalWarnings(cfg.bridges)]) process.stderr.write(`warning: ${w}\n`);
        }
        process.stdout.write(`${file}: ok (${cfg.bridges.length} bridge(s), ${ports} port(s))\n`);
        return 0;
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`${err.message}\n`);
          return 2;
        }
        throw err;
      }
    }
    case 'show': {
      noExtra(args, 0);
      const r = (await rpc('show')) as ShowBridge[];
      print(json, r, () => formatShow(r));
      return 0;
    }
    case 'showmacs': {
      need(args, 1, 'BRIDGE');
      noExtra(args, 1);
      const r = (await rpc('showmacs', { bridge: args[0] })) as MacEntry[];
      print(json, r, () => formatShowmacs(r));
      return 0;
    }
    case 'addif': {
      need(args, 2, 'BRIDGE IFNAME');
      noExtra(args, 2);
      const kind = opts.kind ?? 'tap';
      if (kind !== 'tap' && kind !== 'attach' && kind !== 'vhost-user') throw new UsageError(`--kind must be tap, attach or vhost-user, got "${kind}"`);
      // --vhost-socket: --socket is the control socket's option for every verb
      if (kind === 'vhost-user' && opts['vhost-socket'] === undefined) throw new UsageError('--kind vhost-user needs --vhost-socket PATH');
      if (kind !== 'vhost-user' && (opts['vhost-socket'] !== undefined || opts['vhost-mode'] !== undefined)) throw new UsageError('--vhost-socket and --vhost-mode apply only to --kind vhost-user');
      const vhost = kind === 'vhost-user' ? { socket: opts['vhost-socket'], mode: opts['vhost-mode'] ?? 'client' } : {};
      const r = await rpc('addif', { bridge: args[0], ifname: args[1], kind, ...vhost, ...vlanOpts });
      if (json) print(json, r, () => '');
      return 0;
    }
    case 'delif': {
      need(args, 2, 'BRIDGE IFNAME');
      noExtra(args, 2);
      await rpc('delif', { bridge: args[0], ifname: args[1] });
      return 0;
    }
    case 'fdb': {
      const [sub, ...rest] = args;
      if (sub === 'add' || sub === 'del') {
        need(rest, 3, 'BRIDGE MAC PORT');
        noExtra(rest, 3);
        await rpc(`fdb.${sub}`, { bridge: rest[0], mac: rest[1], port: rest[2], vlan });
        return 0;
      }
      if (sub === 'flush') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 2);
        const r = await rpc('fdb.flush', { bridge: rest[0], port: rest[1] });
        if (json) print(json, r, () => '');
        return 0;
      }
      throw new UsageError('fdb needs add, del or flush');
    }
    case 'mdb': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('mdb.show', { bridge: rest[0] })) as MdbShow;
        print(json, r, () => formatMdbShow(r));
        return 0;
      }
      if (sub === 'add' || sub === 'del') {
        need(rest, 3, 'BRIDGE PORT GROUP');
        noExtra(rest, 3);
        await rpc(`mdb.${sub}`, { bridge: rest[0], port: rest[1], group: rest[2], vlan, source: opts.source });
        return 0;
      }
      throw new UsageError('mdb needs show, add or del');
    }
    case 'setageing': {
      need(args, 2, 'BRIDGE SECONDS');
      noExtra(args, 2);
      await rpc('setageing', { bridge: args[0], seconds: intArg(args[1], 'SECONDS') });
      return 0;
    }
    case 'stats': {
      noExtra(args, 0);
      const r = (await rpc('stats')) as BridgeStats[];
      print(json, r, () => formatStats(r));
      return 0;
    }
    case 'bond': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        noExtra(rest, 1);
        const r = (await rpc('bond.show', { bond: rest[0] })) as BondShow | BondShow[];
        print(json, r, () => (Array.isArray(r) ? r.map(formatBond).join('\n\n') : formatBond(r)));
        return 0;
      }
      if (sub === 'set-active') {
        need(rest, 2, 'BOND MEMBER');
        noExtra(rest, 2);
        const r = await rpc('bond.set_active', { bond: rest[0], member: rest[1] });
        if (json) print(json, r, () => '');
        return 0;
      }
      if (sub === 'rebalance') {
        need(rest, 1, 'BOND');
        noExtra(rest, 1);
        const r = (await rpc('bond.rebalance', { bond: rest[0] })) as BondShow & { moved: number };
        print(json, r, () => `moved ${r.moved} bucket(s)\n\n${formatBond(r)}`);
        return 0;
      }
      if (sub === 'set-mode') {
        need(rest, 2, 'BOND MODE');
        noExtra(rest, 2);
        await rpc('bond.set_mode', { bond: rest[0], mode: rest[1] });
        return 0;
      }
      throw new UsageError('bond needs show, set-active, rebalance or set-mode');
    }
    case 'vlan': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('vlan.show', { bridge: rest[0] })) as VlanShow[];
        print(json, r, () => formatVlanShow(r));
        return 0;
      }
      if (sub === 'set') {
        need(rest, 2, 'BRIDGE PORT');
        noExtra(rest, 2);
        if (Object.values(vlanOpts).every((v) => v === undefined)) throw new UsageError('vlan set needs --access N, --trunk LIST [--native N] or --default');
        const r = await rpc('vlan.set', { bridge: rest[0], port: rest[1], ...vlanOpts });
        if (json) print(json, r, () => '');
        return 0;
      }
      throw new UsageError('vlan needs show or set');
    }
    case 'vxlan': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('vxlan.show', { bridge: rest[0] })) as VxlanShow[];
        print(json, r, () => formatVxlanShow(r));
        return 0;
      }
      if (sub === 'add') {
        need(rest, 2, 'BRIDGE NAME');
        noExtra(rest, 2);
        if (opts.vni === undefined) throw new UsageError('vxlan add needs --vni N');
        const optInt = (v: string | undefined, what: string): number | undefined => (v === undefined ? undefined : intArg(v, what));
        // the config file's keys of a `vxlan` entry: the daemon checks them with the config checker
        const entry: Record<string, unknown> = {
          name: rest[1],
          vni: intArg(opts.vni, '--vni'),
          local: opts.local,
          remotes: opts.remote,
          group: opts.group,
          dev: opts.dev,
          port: optInt(opts.dstport, '--dstport'),
          ttl: optInt(opts.ttl, '--ttl'),
          tos: optInt(opts.tos, '--tos'),
          kernel_learning: opts['no-kernel-learning'] === true ? false : undefined,
          persist: opts.persist === true ? true : undefined,
          learning: opts['no-learning'] === true ? false : undefined,
          flood: opts['no-flood'] === true ? false : undefined,
          isolated: opts.isolated === true ? true : undefined,
          fdb_max: optInt(opts['fdb-max'], '--fdb-max'),
          vlan: vlan ?? vlanOpts.access,
          trunk: vlanOpts.trunk,
          native_vlan: vlanOpts.native,
        };
        const r = (await rpc('vxlan.add', { bridge: rest[0], ...entry })) as VxlanShow;
        if (json) print(json, r, () => '');
        return 0;
      }
      if (sub === 'del') {
        need(rest, 2, 'BRIDGE NAME');
        noExtra(rest, 2);
        await rpc('vxlan.del', { bridge: rest[0], name: rest[1] });
        return 0;
      }
      if (sub === 'remote') {
        const [op, ...r2] = rest;
        if (op !== 'add' && op !== 'del') throw new UsageError('vxlan remote needs add or del');
        need(r2, 3, 'BRIDGE NAME IP');
        noExtra(r2, 3);
        const r = (await rpc(`vxlan.remote.${op}`, { bridge: r2[0], name: r2[1], ip: r2[2] })) as VxlanShow;
        if (json) print(json, r, () => '');
        return 0;
      }
      throw new UsageError('vxlan needs show, add, del or remote');
    }
    case 'qos': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('qos.show', { bridge: rest[0] })) as QosShow[];
        print(json, r, () => formatQosShow(r));
        return 0;
      }
      if (sub === 'set') {
        need(rest, 2, 'BRIDGE PORT');
        noExtra(rest, 2);
        const params: Record<string, unknown> = { bridge: rest[0], port: rest[1] };
        for (const flag of ['kbps', 'burst-kb', 'egress-kbps', 'egress-burst-kb', 'broadcast-pps', 'multicast-pps', 'unknown-unicast-pps', 'shutdown-s'] as const) {
          const v = opts[flag];
          if (v !== undefined) params[flag.replaceAll('-', '_')] = intArg(v, `--${flag}`);
        }
        if (opts['storm-action'] !== undefined) params.storm_action = opts['storm-action'];
        if (Object.keys(params).length === 2) throw new UsageError('qos set needs at least one of --kbps, --burst-kb, --egress-kbps, --egress-burst-kb, --broadcast-pps, --multicast-pps, --unknown-unicast-pps, --storm-action, --shutdown-s');
        const r = (await rpc('qos.set', params)) as QosShow;
        print(json, r, () => formatQosShow([r]));
        return 0;
      }
      if (sub === 'clear') {
        need(rest, 2, 'BRIDGE PORT');
        noExtra(rest, 2);
        const r = await rpc('qos.clear', { bridge: rest[0], port: rest[1] });
        if (json) print(json, r, () => '');
        return 0;
      }
      throw new UsageError('qos needs show, set or clear');
    }
    case 'lock': {
      const [sub, ...rest] = args;
      const list = (v: string | undefined): string[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => x.trim()).filter((x) => x !== ''));
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('lock.show', { bridge: rest[0] })) as LockShow[];
        print(json, r, () => formatLockShow(r));
        return 0;
      }
      if (sub === 'set') {
        need(rest, 2, 'BRIDGE PORT');
        noExtra(rest, 2);
        const disabled = opts.disabled === true;
        const allow = opts['allow-ethertypes'];
        if (disabled === (opts.mac !== undefined)) throw new UsageError('lock set needs either --mac M [--ipv4 LIST] [--ipv6 LIST] [--allow-ethertypes LIST] or --disabled');
        if (disabled && (opts.ipv4 !== undefined || opts.ipv6 !== undefined || allow !== undefined)) {
          throw new UsageError('--disabled excludes --ipv4, --ipv6 and --allow-ethertypes');
        }
        const params = disabled
          ? { bridge: rest[0], port: rest[1], disabled: true }
          : { bridge: rest[0], port: rest[1], mac: opts.mac, ipv4: list(opts.ipv4), ipv6: list(opts.ipv6), allow_ethertypes: list(allow) };
        const r = await rpc('lock.set', params);
        if (json) print(json, r, () => '');
        return 0;
      }
      if (sub === 'clear') {
        need(rest, 2, 'BRIDGE PORT');
        noExtra(rest, 2);
        const r = await rpc('lock.clear', { bridge: rest[0], port: rest[1] });
        if (json) print(json, r, () => '');
        return 0;
      }
      throw new UsageError('lock needs show, set or clear');
      }
    case 'install-service': {
      noExtra(args, 0);
      const { installService, InstallServiceError } = await import('../service/install.js');
      const prefix = opts.prefix ?? '/';
      if (prefix === '') throw new UsageError('--prefix needs a directory');
      try {
        const r = installService({ prefix });
        process.stdout.write(`${r.done.join('\n')}\nExecStart=${r.execStart} daemon ...\n\nNext:\n${r.next.map((l) => `  ${l}`).join('\n')}\n`);
        return 0;
      } catch (err) {
        if (!(err instanceof InstallServiceError)) throw err;
        process.stderr.write(`tapbridge install-service: ${err.message}\n`);
        return 1;
      }
    }
    case 'capture': {
      need(args, 2, 'BRIDGE PORT');
      noExtra(args, 2);
      const out = opts.write ?? '-';
      if (out === '-' && process.stdout.isTTY) throw new UsageError('capture writes pcapng: give -w FILE, or pipe -w - into tshark -r - / wireshark -k -i -');
      const direction = opts.direction ?? 'both';
      if (direction !== 'in' && direction !== 'out' && direction !== 'both') throw new UsageError(`--direction must be in, out or both, got "${direction}"`);
      const params = {
        bridge: args[0], port: args[1], direction, dropped: opts.dropped === true, vlan,
        count: opts.count === undefined ? 0 : intArg(opts.count, '-c COUNT'),
      };
      try {
        const r = await runCapture(socket, params, out);
        process.stderr.write(r === null ? 'capture ended without statistics (the daemon went away?)\n'
          : `${r.received - r.dropped} frames captured, ${r.dropped} dropped (capture_dropped)\n`);
        return 0;
      } catch (err) {
        if (err instanceof CaptureError) {
          process.stderr.write(`tapbridge: ${err.message}\n`);
          return err.exitCode;
        }
        throw err;
      }
    }
    case 'trace': {
      need(args, 2, 'BRIDGE IN_PORT');
      noExtra(args, 2);
      const params: Record<string, unknown> = { bridge: args[0], port: args[1] };
      if (opts.pcap !== undefined) {
        if (opts.src !== undefined || opts.dst !== undefined || opts.ethertype !== undefined || opts.vlan !== undefined) {
          throw new UsageError('--pcap gives the whole frame: no --src, --dst, --vlan or --ethertype with it');
        }
        let frame: Buffer;
        try {
          frame = await firstPcapFrame(opts.pcap);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        params.frame = frame.toString('hex');
      } else {
        if (opts.src === undefined || opts.dst === undefined) throw new UsageError('trace needs --src MAC and --dst MAC (or --pcap FILE)');
        params.src = opts.src;
        params.dst = opts.dst;
        params.vlan = vlan;
        if (opts.ethertype !== undefined) {
          if (!/^(0x[0-9a-fA-F]{1,4}|\d{1,5})$/.test(opts.ethertype)) throw new UsageError(`--ethertype must be like 0x0800, got "${opts.ethertype}"`);
          params.ethertype = Number(opts.ethertype);
        }
      }
      const r = (await rpc('trace', params)) as TraceResult;
      print(json, r, () => formatTrace(r));
      return 0;
    }
    case 'mirror': {
      const [sub, ...rest] = args;
      if (sub === 'show') {
        need(rest, 1, 'BRIDGE');
        noExtra(rest, 1);
        const r = (await rpc('mirror.show', { bridge: rest[0] })) as MirrorShow[];
        print(json, r, () => formatMirrors(r));
        return 0;
      }
      if (sub === 'add') {
        need(rest, 2, 'BRIDGE NAME');
        noExtra(rest, 2);
        if (opts['select-ports'] === undefined) throw new UsageError('mirror add needs --select-ports LIST (or all)');
        if ((opts.output === undefined) === (opts['output-vlan'] === undefined)) throw new UsageError('mirror add needs either --output PORT or --output-vlan N');
        const r = await rpc('mirror.add', {
          bridge: rest[0], name: rest[1], select_ports: opts['select-ports'], direction: opts.direction,
          select_vlans: opts['select-vlans'], output: opts.output,
          output_vlan: opts['output-vlan'] === undefined ? undefined : intArg(opts['output-vlan'], '--output-vlan'),
        });
        if (json) print(json, r, () => '');
        return 0;
      }
      if (sub === 'del') {
        need(rest, 2, 'BRIDGE NAME');
        noExtra(rest, 2);
        await rpc('mirror.del', { bridge: rest[0], name: rest[1] });
        return 0;
      }
      throw new UsageError('mirror needs add, del or show');
    }
    case 'save-config': {
      noExtra(args, 1);
      const r = (await rpc('save_config')) as { yaml: string };
      const file = args[0] ?? '-';
      if (file === '-') process.stdout.write(r.yaml);
      else writeFileSync(file, r.yaml, { mode: 0o644 });
      return 0;
    }
    case 'reload': {
      noExtra(args, 0);
      const params: Record<string, unknown> = { dry_run: opts['dry-run'] === true };
      if (opts.config !== undefined) {
        try {
          params.config = readFileSync(opts.config, 'utf8');
        } catch (err) {
          process.stderr.write(`tapbridge: cannot read ${opts.config}: ${(err as Error).message}\n`);
          return 2;
        }
      }
      let r: { changes: string[]; applied: boolean; errors: string[] };
      try {
        r = (await call(socket, 'reload', params, 60_000)) as typeof r;
      } catch (err) {
        if (err instanceof RpcError && err.dataCode === 'invalid_config') {
          process.stderr.write(`tapbridge: reload rejected, the daemon keeps its config: ${err.message}\n`);
          return 2;
        }
        throw err;
      }
      print(json, r, () => [...(r.changes.length > 0 ? r.changes : ['(no changes)']), ...r.errors.map((e) => `error: ${e}`)].join('\n'));
      return r.errors.length > 0 ? 1 : 0;
    }
    case 'version': {
      noExtra(args, 0);
      let daemon: unknown = null;
      let unreachable: DaemonUnreachableError | null = null;
      try {
        daemon = await rpc('version');
      } catch (err) {
        if (!(err instanceof DaemonUnreachableError)) throw err;
        unreachable = err;
      }
      // the CLI's own version is printed either way; an unreachable daemon is exit 3, as for every other command
      print(json, { cli: VERSION, daemon }, () => `tapbridge ${VERSION}${daemon !== null ? `\ndaemon ${(daemon as { version: string; addon: string }).version} (${(daemon as { addon: string }).addon})` : '\ndaemon unreachable'}`);
      if (unreachable !== null) {
        process.stderr.write(`tapbridge: ${unreachable.message}\n`);
        return 3;
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command: ${cmd}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`tapbridge: ${err.message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else if (err instanceof DaemonUnreachableError) {
      process.stderr.write(`tapbridge: ${err.message}\n`);
      process.exitCode = 3;
    } else if (err instanceof RpcError) {
      process.stderr.write(`tapbridge: ${err.message} (${err.dataCode})\n`);
      process.exitCode = err.dataCode === 'invalid_params' ? 2 : 1;
    } else {
      process.stderr.write(`tapbridge: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
