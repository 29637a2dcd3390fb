// Multicast families of the metrics endpoint (issue 22), from a scripted stats().
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DaemonMetrics, type MetricsSource } from '../../src/metrics/metrics.js';

const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const mc = (q: number) => ({ queries_rx: q, reports_rx: 5, leaves_rx: 1, malformed_rx: 2, mdb_entries: 3, router: 'auto' as const, is_router: q > 0, fast_leave: false });

const source: MetricsSource = {
  stats: () => [{
    bridge: 'xenbr0',
    fdb: { entries: 0, learned: 0, aged: 0, moved: 0, evicted: 0, flooded: 0 },
    multicast: { groups: 7, querier: { enabled: true, queries_sent: 4, vlans: [{ vlan: 0, igmp_version: 3, mld_version: 2, ipv4: { querier: 'other', other_address: '198.18.0.1', other_timer_s: 3 }, ipv6: { querier: 'self', other_address: null, other_timer_s: 0 } }] } },
    ports: [
      { name: 'peth0', rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, rx_gso_packets: 0, tx_gso_packets: 0, capture_dropped: 0, drops: {}, multicast: mc(9) },
      { name: 'vif1.0', rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, rx_gso_packets: 0, tx_gso_packets: 0, capture_dropped: 0, drops: {}, multicast: mc(0) },
    ],
  }, {
    bridge: 'xenbr1',
    fdb: { entries: 0, learned: 0, aged: 0, moved: 0, evicted: 0, flooded: 0 },
    multicast: null,
    ports: [{ name: 'vif2.0', rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, rx_gso_packets: 0, tx_gso_packets: 0, capture_dropped: 0, drops: {}, multicast: null }],
  }],
  show: () => [],
  bondShow: () => [],
};

describe('multicast metrics', () => {
  it('exports per-port IGMP/MLD counters, MDB entries, router role, groups and the querier; nothing for a bridge without snooping', async () => {
    const text = await new DaemonMetrics(source).scrape();
    const has = (line: string): boolean => text.split('\n').includes(line);
    expect(has('tapbridge_port_mcast_queries_received_total{bridge="xenbr0",port="peth0"} 9')).toBe(true);
    expect(has('tapbridge_port_mcast_reports_received_total{bridge="xenbr0",port="vif1.0"} 5')).toBe(true);
    expect(has('tapbridge_port_mcast_leaves_received_total{bridge="xenbr0",port="vif1.0"} 1')).toBe(true);
    expect(has('tapbridge_port_mcast_malformed_total{bridge="xenbr0",port="vif1.0"} 2')).toBe(true);
    expect(has('tapbridge_port_mdb_entries{bridge="xenbr0",port="vif1.0"} 3')).toBe(true);
    expect(has('tapbridge_port_mcast_router{bridge="xenbr0",port="peth0"} 1')).toBe(true);
    expect(has('tapbridge_port_mcast_router{bridge="xenbr0",port="vif1.0"} 0')).toBe(true);
    expect(has('tapbridge_mdb_groups{bridge="xenbr0"} 7')).toBe(true);
    expect(has('tapbridge_mcast_querier_self{bridge="xenbr0",vlan="0",family="ipv4"} 0')).toBe(true);
    expect(has('tapbridge_mcast_querier_self{bridge="xenbr0",vlan="0",family="ipv6"} 1')).toBe(true);
    expect(text.split('\n').filter((l) => l.startsWith('tapbridge_port_mcast') && l.includes('vif2.0'))).toEqual([]);
    if (hasPromtool) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text });
      expect(r.stdout.toString() + r.stderr.toString()).not.toMatch(/error|problem/i);
    }
  });
});
