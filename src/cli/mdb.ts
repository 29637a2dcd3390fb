// Text output of `tapbridge mdb show` (like `bridge mdb show`, plus the router ports and counters).

import type { MdbShow } from '../mdb/control.js';

export function formatMdbShow(r: MdbShow): string {
  if (!r.snooping) return `${r.bridge}: multicast_snooping is off (multicast is flooded)\n`;
  const lines: string[] = [];
  const rows = r.entries.map((e) => [String(e.vlan), e.group, e.source ?? '*', e.port, e.kind, e.mode, e.kind === 'permanent' ? '-' : e.timer_s.toFixed(1)]);
  const head = ['vlan', 'group', 'source', 'port', 'kind', 'mode', 'timer'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]): string => row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  lines.push(`${r.bridge}: ${r.groups} groups (max ${r.max_groups})`);
  lines.push(fmt(head));
  for (const row of rows) lines.push(fmt(row));
  // per VLAN: `always` ports (all their VLANs) first, then each VLAN's learnt router ports with their timers
  const router = (p: MdbShow['router_ports'][number]): string => (p.kind === 'always' ? `${p.port} (always, all VLANs)` : `${p.port} vlan ${p.vlan} (auto, ${p.timer_s.toFixed(1)} s)`);
  lines.push(`router ports: ${r.router_ports.length === 0 ? 'none' : r.router_ports.map(router).join(', ')}`);
  if (!r.querier.enabled) lines.push('querier: off (multicast_querier: false)');
  for (const v of r.querier.vlans) {
    const fam = (f: typeof v.ipv4): string => (f.querier === 'self' ? 'this bridge' : `${f.other_address} (${f.other_timer_s.toFixed(1)} s)`);
    lines.push(`querier vlan ${v.vlan}: IPv4 ${fam(v.ipv4)} (IGMPv${v.igmp_version}), IPv6 ${fam(v.ipv6)} (MLDv${v.mld_version})`);
  }
  const nonzero = Object.entries(r.counters).filter(([, v]) => v !== 0);
  if (nonzero.length > 0) lines.push(`counters: ${nonzero.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return lines.join('\n') + '\n';
}
