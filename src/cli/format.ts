// Human-readable output in the layouts users know (brctl show, brctl showmacs).

import type { BridgeStats, MacEntry, ShowBridge, VlanShow } from '../daemon/daemon.js';
import type { BondShow } from '../daemon/bond.js';
import type { VxlanShow } from '../daemon/vxlan.js';
import type { LockShow } from '../bridge/lock.js';
import type { QosShow } from '../bridge/qos.js';

function pad(s: string, n: number): string {
  return s.length >= n ? `${s} ` : s.padEnd(n);
}

export function formatShow(bridges: ShowBridge[]): string {
  const lines = [`${pad('bridge name', 16)}${pad('uplink', 24)}interfaces`];
  for (const b of bridges) {
    const uplink = b.uplink === null ? '-' : `${b.uplink.name} (${b.uplink.state})`;
    const ports = b.ports.map((p) => `${p.name} (${p.kind}, ${p.state}${p.mtu_short === true ? ', underlay MTU too small' : ''}${p.storm_shutdown === true ? ', storm shutdown' : ''})`);
    lines.push(`${pad(b.name, 16)}${pad(uplink, 24)}${ports[0] ?? ''}`);
    for (const p of ports.slice(1)) lines.push(`${' '.repeat(40)}${p}`);
  }
  return lines.join('\n');
}

export function formatShowmacs(entries: MacEntry[]): string {
  const lines = [`${pad('port', 16)}${pad('mac addr', 20)}${pad('vlan', 6)}${pad('is static?', 12)}ageing timer`];
  for (const e of entries) {
    lines.push(`${pad(e.port, 16)}${pad(e.mac, 20)}${pad(String(e.vlan), 6)}${pad(e.static ? 'yes' : 'no', 12)}${e.age.toFixed(2).padStart(8)}`);
  }
  return lines.join('\n');
}

export function formatStats(stats: BridgeStats[]): string {
  const lines: string[] = [];
  for (const s of stats) {
    const f = s.fdb;
    lines.push(`bridge ${s.bridge}: fdb entries ${f.entries} learned ${f.learned} aged ${f.aged} moved ${f.moved} evicted ${f.evicted} flooded ${f.flooded}`);
    lines.push(`  ${pad('port', 16)}${pad('rx_packets', 12)}${pad('rx_bytes', 14)}${pad('tx_packets', 12)}${pad('tx_bytes', 14)}drops`);
    for (const p of s.ports) {
      const drops = (Object.entries(p.drops).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ') || '0') +
        (p.capture_dropped > 0 ? ` (capture_dropped=${p.capture_dropped})` : '');
      lines.push(`  ${pad(p.name, 16)}${pad(String(p.rx_packets), 12)}${pad(String(p.rx_bytes), 14)}${pad(String(p.tx_packets), 12)}${pad(String(p.tx_bytes), 14)}${drops}`);
    }
  }
  return lines.join('\n');
}

/** Like `bridge vlan show`: one line per VLAN of each port, flagged PVID and/or Egress Untagged. */
export function formatVlanShow(ports: VlanShow[]): string {
  const lines = [`${pad('port', 16)}vlan-id`];
  for (const p of ports) {
    const rows: string[] = [];
    if (p.native === 0) rows.push('untagged network (VLAN 0) PVID Egress Untagged', 'all VLANs 1-4094 tagged');
    else {
      const flag = (v: number): string => (v === p.native ? ' PVID Egress Untagged' : '');
      if (p.vlans === 'all') {
        if (p.native !== null) rows.push(`${p.native}${flag(p.native)}`);
        rows.push(p.native !== null ? `all other VLANs 1-4094 tagged` : 'all VLANs 1-4094 tagged');
      } else {
        for (const v of p.vlans) rows.push(`${v}${flag(v)}`);
      }
    }
    lines.push(`${pad(p.port, 16)}${rows[0] ?? ''}`);
    for (const r of rows.slice(1)) lines.push(`${' '.repeat(16)}${r}`);
  }
  return lines.join('\n');
}

/** In the layout of /proc/net/bonding/bondX. */
export function formatBond(b: BondShow): string {
  const lines = [
    `Bond: ${b.name}`,
    'Bonding Mode: fault-tolerance (active-backup)',
    `Primary Slave: ${b.primary} (primary_reselect ${b.primary_reselect})`,
    `Currently Active Slave: ${b.active ?? 'None'}`,
    `MII Status: ${b.mii_status}`,
    `MII Polling Interval (ms): ${b.miimon}`,
    `Up Delay (ms): ${b.updelay}`,
    `Down Delay (ms): ${b.downdelay}`,
    `Peer Notification Delay (ms): ${b.peer_notif_delay}`,
  ];
  const status: Record<string, string> = { up: 'up', fail: 'going down', down: 'down', back: 'going back' };
  for (const m of b.members) {
    lines.push('', `Slave Interface: ${m.name}`, `MII Status: ${status[m.state] ?? m.mii_status}`,
      `Link Failure Count: ${m.link_failures}`, `Permanent HW addr: ${m.permanent_hw_addr ?? 'unknown'}`);
  }
  return lines.join('\n');
}

export function formatVxlanShow(ports: VxlanShow[]): string {
  const lines = [`${pad('port', 16)}${pad('vni', 10)}${pad('local', 18)}${pad('vlan', 8)}${pad('state', 8)}${pad('mtu', 7)}remotes / group`];
  for (const p of ports) {
    const vlan = p.vlan !== null ? String(p.vlan) : p.vlan_mode;
    const dst = p.group !== null ? `group ${p.group} dev ${p.dev ?? '-'}` : p.remotes.join(' ') || '-';
    const mtu = `${p.mtu}${p.mtu_short ? '!' : ''}`;
    lines.push(`${pad(p.name, 16)}${pad(String(p.vni), 10)}${pad(p.local ?? '-', 18)}${pad(vlan, 8)}${pad(p.state, 8)}${pad(mtu, 7)}${dst}`);
    if (p.mtu_short) lines.push(`${' '.repeat(16)}! underlay ${p.underlay ?? '?'} MTU ${p.underlay_mtu ?? '?'} cannot carry full-size overlay frames`);
  }
  return lines.join('\n');
}

/** `lock show`: one line per port (mode, MAC, guards), then its allowed addresses. */
export function formatLockShow(ports: LockShow[]): string {
  const lines = [`${pad('port', 16)}${pad('lock', 10)}${pad('mac', 20)}${pad('ra_guard', 10)}${pad('dhcp_guard', 12)}allowed`];
  for (const p of ports) {
    const allowed = [...p.ipv4, ...p.ipv6, ...p.allow_ethertypes.map((t) => `ethertype ${t}`)];
    if (p.mode === 'locked' && allowed.length === 0) allowed.push('(no IPv4, no IPv6)');
    lines.push(`${pad(p.port, 16)}${pad(p.mode, 10)}${pad(p.mac ?? '-', 20)}${pad(p.ra_guard ? 'on' : 'off', 10)}${pad(p.dhcp_guard ? 'on' : 'off', 12)}${allowed[0] ?? '-'}`);
    for (const a of allowed.slice(1)) lines.push(`${' '.repeat(68)}${a}`);
  }
  return lines.join('\n');
}

/** `qos show`: one line per port (limits in kbit/s and kbit, storm thresholds in packets/s), then its non-zero drop counters. */
export function formatQosShow(ports: QosShow[]): string {
  const lines = [`${pad('port', 16)}${pad('rate_limit', 22)}${pad('egress_rate_limit', 22)}storm_control`];
  const rate = (r: QosShow['rate_limit']): string => (r === null ? '-' : `${r.kbps} kbps/${r.burst_kb} kb`);
  for (const p of ports) {
    const s = p.storm_control;
    const storm = s === null ? '-' : [
      s.broadcast_pps !== null ? `bcast ${s.broadcast_pps} pps` : '', s.multicast_pps !== null ? `mcast ${s.multicast_pps} pps` : '',
      s.unknown_unicast_pps !== null ? `unknown ${s.unknown_unicast_pps} pps` : '', s.action === 'shutdown' ? `shutdown ${s.shutdown_s} s` : 'drop',
    ].filter((x) => x !== '').join(', ');
    const state = p.shutdown_remaining_s !== null ? ` [shut down, ${p.shutdown_remaining_s} s left]` : p.rx_held ? ' [held]' : '';
    lines.push(`${pad(p.port, 16)}${pad(rate(p.rate_limit), 22)}${pad(rate(p.egress_rate_limit), 22)}${storm}${state}`);
    const counters = Object.entries(p.counters).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`);
    if (counters.length > 0) lines.push(`${' '.repeat(16)}${counters.join(' ')}`);
  }
  return lines.join('\n');
}
