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

const BOND_MODE_TITLE: Record<string, string> = {
  'active-backup': 'fault-tolerance (active-backup)',
  'balance-slb': 'source load balancing (balance-slb)',
  '802.3ad': 'IEEE 802.3ad Dynamic link aggregation',
};

/** In the layout of /proc/net/bonding/bondX (balance-slb members also as Open vSwitch's bond/show). */
export function formatBond(b: BondShow): string {
  const mode = b.mode ?? 'active-backup';
  const lines = [`Bond: ${b.name}`, `Bonding Mode: ${BOND_MODE_TITLE[mode] ?? mode}`];
  if (mode === 'active-backup') {
    lines.push(`Primary Slave: ${b.primary} (primary_reselect ${b.primary_reselect})`, `Currently Active Slave: ${b.active ?? 'None'}`);
  } else if (mode === 'balance-slb') {
    lines.push(`Active Slave (broadcast/multicast): ${b.active ?? 'None'}`, `Rebalance Interval (ms): ${b.rebalance_interval ?? 0}`,
      `Buckets Moved: rebalance ${b.rebalance_moves ?? 0}, failover ${b.failover_moves ?? 0}`);
  } else if (b.lacp !== undefined) {
    const l = b.lacp;
    lines.push(`Transmit Hash Policy: ${l.hash}`, `LACP active: ${l.activity === 'active' ? 'on' : 'off'}`, `LACP rate: ${l.rate}`,
      `System priority: ${l.system_priority}`, `System MAC address: ${l.system}`, `Aggregator key: ${l.key}`,
      `Partner: ${l.aggregator_partner === null ? 'none' : `${l.aggregator_partner.system} (priority ${l.aggregator_partner.system_priority}, key ${l.aggregator_partner.key})`}`,
      `Distributing: ${l.distributing.join(' ') || 'none'}`);
  }
  lines.push(`MII Status: ${b.mii_status}`, `MII Polling Interval (ms): ${b.miimon}`);
  if (mode === 'active-backup') lines.push(`Up Delay (ms): ${b.updelay}`, `Down Delay (ms): ${b.downdelay}`);
  if (mode !== '802.3ad') lines.push(`Peer Notification Delay (ms): ${b.peer_notif_delay}`);
  const status: Record<string, string> = { up: 'up', fail: 'going down', down: 'down', back: 'going back' };
  for (const m of b.members) {
    lines.push('', `Slave Interface: ${m.name}`, `MII Status: ${status[m.state] ?? m.mii_status}`,
      `Link Failure Count: ${m.link_failures}`, `Permanent HW addr: ${m.permanent_hw_addr ?? 'unknown'}`);
    if (m.tx_packets !== undefined && mode !== 'active-backup') lines.push(`TX: ${m.tx_packets} packets, ${m.tx_bytes ?? 0} bytes`);
    if (m.load !== undefined) lines.push(`Load (bytes): ${m.load}`, `MACs: ${m.macs !== undefined && m.macs.length > 0 ? m.macs.join(', ') : 'none'}`);
    if (m.lacp !== undefined) {
      const p = m.lacp;
      lines.push(`Selected: ${p.selected ? 'yes' : p.partner_mismatch ? 'no (partner is not the aggregator\'s)' : 'no'}`,
        `Receive state: ${p.rx_state}, mux state: ${p.mux_state}`,
        `Actor Churn State: ${p.actor_churn} (${p.actor_churn_count})`, `Partner Churn State: ${p.partner_churn} (${p.partner_churn_count})`,
        `LACPDUs: rx ${p.lacpdus_rx}, tx ${p.lacpdus_tx}, bad ${p.lacpdus_bad}`,
        'details actor lacp pdu:',
        `    system priority: ${p.actor.system_priority}`, `    system mac address: ${p.actor.system}`, `    port key: ${p.actor.key}`,
        `    port priority: ${p.actor.port_priority}`, `    port number: ${p.actor.port}`, `    port state: ${p.actor.state} ${p.actor.state_bits}`,
        'details partner lacp pdu:',
        `    system priority: ${p.partner.system_priority}`, `    system mac address: ${p.partner.system}`, `    oper key: ${p.partner.key}`,
        `    port priority: ${p.partner.port_priority}`, `    port number: ${p.partner.port}`, `    port state: ${p.partner.state} ${p.partner.state_bits}`);
    }
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
