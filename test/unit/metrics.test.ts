// Metrics: the exposition built from a scripted stats()/show()/bondShow() (every drop reason key exported, whatever it
// is; bond active member; FDB events), `promtool check metrics` on it (Debian's prometheus package, installed by
// scripts/setup-test-deps.sh), the HTTP endpoint's paths and methods, and metrics.listen in the config.
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DaemonMetrics, type MetricsSource } from '../../src/metrics/metrics.js';
import { MetricsServer } from '../../src/metrics/server.js';
import { parseListen } from '../../src/metrics/listen.js';
import { parseConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/log.js';
import { configIssues } from '../support/config-issues.js';

const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

function source(rx = 10): MetricsSource & { drops: Record<string, number> } {
  const drops: Record<string, number> = { runt: 1, bad_src: 0, rx_error: 3, lock_violation: 2 };
  return {
    drops,
    stats: () => [{
      bridge: 'xenbr0',
      fdb: { entries: 4, learned: 6, aged: 1, moved: 2, evicted: 0, flooded: 9 },
      ports: [
        { name: 'bond0', rx_packets: rx, rx_bytes: rx * 100, tx_packets: 5, tx_bytes: 500, rx_gso_packets: 2, tx_gso_packets: 1, capture_dropped: 0, drops: { ...drops } },
        { name: 'vif1.0', rx_packets: 1, rx_bytes: 60, tx_packets: 2, tx_bytes: 120, rx_gso_packets: 0, tx_gso_packets: 0, capture_dropped: 0, drops: { ...drops, kernel_drops: 7 } },
      ],
    }],
    show: () => [{
      name: 'xenbr0',
      uplink: { name: 'bond0', kind: 'bond', state: 'up' },
      ports: [{ name: 'vif1.0', kind: 'tap', state: 'down', ifindex: 4 }],
    }],
    dataWorkersShow: () => ({
      data_workers: 2, epoch: 3, syncs: 3, learned_from_workers: 2, workers_terminated: 0,
      workers: [
        { id: 0, alive: true, ports: ['vif1.0'], batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: 0, terminated: false, punt_pushed: 0, punt_dropped: 0 },
        { id: 1, alive: true, ports: ['vif2.0', 'vif3.0'], batches: 40, frames: 321, learn_pushed: 5, learn_dropped: 1, sync_timeouts: 0, terminated: false, punt_pushed: 3, punt_dropped: 2 },
      ],
    }),
    bondShow: () => [{
      name: 'bond0', mode: 'active-backup', active: 'peth1', primary: 'peth0', primary_reselect: 'always', mii_status: 'up',
      miimon: 100, updelay: 0, downdelay: 0, num_grat_arp: 1, peer_notif_delay: 0, failovers: 3,
      members: [
        { name: 'peth0', mii_status: 'down', link_failures: 3, state: 'down', permanent_hw_addr: null },
        { name: 'peth1', mii_status: 'up', link_failures: 0, state: 'up', permanent_hw_addr: null },
      ],
    }, {
      name: 'bond1', mode: 'balance-slb', active: 'peth2', primary: 'peth2', primary_reselect: 'always', mii_status: 'up',
      miimon: 100, updelay: 0, downdelay: 0, num_grat_arp: 1, peer_notif_delay: 0, failovers: 0,
      members: [
        { name: 'peth2', mii_status: 'up', link_failures: 0, state: 'up', permanent_hw_addr: null, tx_packets: 11, tx_bytes: 1100, load: 700, macs: [] },
        { name: 'peth3', mii_status: 'down', link_failures: 1, state: 'down', permanent_hw_addr: null, tx_packets: 4, tx_bytes: 400, load: 0, macs: [] },
      ],
    }, {
      name: 'bond2', mode: '802.3ad', active: null, primary: 'peth4', primary_reselect: 'always', mii_status: 'up',
      miimon: 100, updelay: 0, downdelay: 0, num_grat_arp: 1, peer_notif_delay: 0, failovers: 0,
      members: ['peth4', 'peth5'].map((name, i) => ({
        name, mii_status: 'up' as const, link_failures: 0, state: 'up', permanent_hw_addr: null, tx_packets: 20 + i, tx_bytes: 2000,
        lacp: {
          rx_state: 'current', mux_state: i === 0 ? 'collecting_distributing' : 'attached', selected: true, partner_mismatch: false,
          actor: { system_priority: 1, system: '02:00:00:00:00:01', key: 1, port_priority: 1, port: i + 1, state: 0x3d, state_bits: '' },
          partner: { system_priority: 1, system: '02:00:00:00:00:02', key: 1, port_priority: 1, port: i + 1, state: 0x3d, state_bits: '' },
          lacpdus_rx: 7 + i, lacpdus_tx: 9, lacpdus_bad: 0, actor_churn: 'no churn' as const, partner_churn: 'no churn' as const,
          actor_churn_count: 0, partner_churn_count: 0,
        },
      })),
    }],
  };
}

/** `name{labels} value` lines of the exposition, without comments. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('DaemonMetrics', () => {
  it('exports every metric the issue names, from the same counters stats reads', async () => {
    const m = new DaemonMetrics(source());
    const s = samples(await m.scrape());
    expect(s.get('tapbridge_port_rx_packets_total{bridge="xenbr0",port="bond0"}')).toBe(10);
    expect(s.get('tapbridge_port_rx_bytes_total{bridge="xenbr0",port="bond0"}')).toBe(1000);
    expect(s.get('tapbridge_port_tx_packets_total{bridge="xenbr0",port="vif1.0"}')).toBe(2);
    expect(s.get('tapbridge_port_tx_bytes_total{bridge="xenbr0",port="vif1.0"}')).toBe(120);
    expect(s.get('tapbridge_port_rx_gso_packets_total{bridge="xenbr0",port="bond0"}')).toBe(2);
    expect(s.get('tapbridge_port_tx_gso_packets_total{bridge="xenbr0",port="bond0"}')).toBe(1);
    expect(s.get('tapbridge_port_up{bridge="xenbr0",port="bond0"}')).toBe(1);
    expect(s.get('tapbridge_port_up{bridge="xenbr0",port="vif1.0"}')).toBe(0);
    expect(s.get('tapbridge_fdb_entries{bridge="xenbr0"}')).toBe(4);
    for (const [event, n] of [['learned', 6], ['aged', 1], ['moved', 2], ['evicted', 0]] as const) {
      expect(s.get(`tapbridge_fdb_events_total{bridge="xenbr0",event="${event}"}`)).toBe(n);
    }
    expect(s.get('tapbridge_bond_active_member{bond="bond0",member="peth1"}')).toBe(1);
    expect(s.get('tapbridge_bond_active_member{bond="bond0",member="peth0"}')).toBe(0);
    expect(s.get('tapbridge_bond_failovers_total{bond="bond0"}')).toBe(3);
    // per member (issue 24): up, tx, SLB load, LACPDUs
    expect(s.get('tapbridge_bond_member_up{bond="bond1",member="peth3"}')).toBe(0);
    expect(s.get('tapbridge_bond_member_up{bond="bond2",member="peth4"}')).toBe(1);
    expect(s.get('tapbridge_bond_member_up{bond="bond2",member="peth5"}')).toBe(0); // attached, not distributing
    expect(s.get('tapbridge_bond_member_tx_packets_total{bond="bond1",member="peth2"}')).toBe(11);
    expect(s.get('tapbridge_bond_member_tx_bytes_total{bond="bond1",member="peth3"}')).toBe(400);
    expect(s.get('tapbridge_bond_member_load_bytes{bond="bond1",member="peth2"}')).toBe(700);
    expect(s.get('tapbridge_bond_member_lacpdus_total{bond="bond2",member="peth5",direction="rx"}')).toBe(8);
    expect(s.get('tapbridge_bond_member_lacpdus_total{bond="bond2",member="peth5",direction="tx"}')).toBe(9);
    expect(s.get('tapbridge_data_worker_ports{worker="0"}')).toBe(1);
    expect(s.get('tapbridge_data_worker_ports{worker="1"}')).toBe(2);
    expect(s.get('tapbridge_data_worker_frames_total{worker="1"}')).toBe(321);
    expect(s.has('tapbridge_data_worker_frames_total{worker="0"}')).toBe(false);
    expect(s.get('tapbridge_data_worker_learn_dropped_total{worker="1"}')).toBe(1);
    expect(s.get('tapbridge_data_worker_terminated{worker="1"}')).toBe(0);
    expect(s.has('tapbridge_data_worker_terminated{worker="0"}')).toBe(false);
    expect(s.get('tapbridge_data_worker_punt_dropped_total{worker="1"}')).toBe(2);
    expect(s.get('tapbridge_event_loop_utilization_ratio')).toBeGreaterThanOrEqual(0);
    expect(s.has('tapbridge_event_loop_active_seconds_total')).toBe(true);
    expect(s.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(s.has('process_cpu_seconds_total')).toBe(true);
  });

  it('exports whatever drop reasons the stats drops object has, and follows the counters from scrape to scrape', async () => {
    const src = source();
    const m = new DaemonMetrics(src);
    let s = samples(await m.scrape());
    expect(s.get('tapbridge_port_drops_total{bridge="xenbr0",port="bond0",reason="rx_error"}')).toBe(3);
    expect(s.get('tapbridge_port_drops_total{bridge="xenbr0",port="bond0",reason="lock_violation"}')).toBe(2);
    expect(s.get('tapbridge_port_drops_total{bridge="xenbr0",port="vif1.0",reason="kernel_drops"}')).toBe(7);
    expect(s.has('tapbridge_port_drops_total{bridge="xenbr0",port="bond0",reason="kernel_drops"}')).toBe(false);
    src.drops.rx_error = 40;
    src.drops.brand_new_reason = 1;
    s = samples(await m.scrape());
    expect(s.get('tapbridge_port_drops_total{bridge="xenbr0",port="bond0",reason="rx_error"}')).toBe(40);
    expect(s.get('tapbridge_port_drops_total{bridge="xenbr0",port="bond0",reason="brand_new_reason"}')).toBe(1);
  });

  it('reads the counters already folded: no forced round trip to the data-plane workers', async () => {
    const src = source();
    const args: unknown[] = [];
    const { stats, dataWorkersShow } = src;
    src.stats = (sync?: boolean) => (args.push(['stats', sync]), stats(sync));
    src.dataWorkersShow = (sync?: boolean) => (args.push(['workers', sync]), dataWorkersShow!(sync));
    await new DaemonMetrics(src).scrape();
    expect(args).toEqual([['stats', false], ['workers', false]]);
  });

  it.skipIf(!hasPromtool)(`passes promtool check metrics${hasPromtool ? '' : ' (skipped: no promtool; run scripts/setup-test-deps.sh)'}`, async () => {
    const text = await new DaemonMetrics(source()).scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('MetricsServer', () => {
  it('serves /metrics in the text format, 404 elsewhere, 405 for other methods', async () => {
    const server = new MetricsServer({ host: '127.0.0.1', port: 0 }, new DaemonMetrics(source()), silentLogger());
    await server.listen();
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const ok = await fetch(`${base}/metrics`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await ok.text()).toContain('tapbridge_port_rx_packets_total{bridge="xenbr0",port="bond0"} 10');
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
      expect(server.scrapes).toBe(1);
      expect(server.refused).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('serves a scrape while 16 idle TCP connections are open (the oldest idle one makes room)', async () => {
    const server = new MetricsServer({ host: '127.0.0.1', port: 0 }, new DaemonMetrics(source()), silentLogger());
    await server.listen();
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 16; i++) {
        const s = connect(server.port, '127.0.0.1');
        s.on('error', () => undefined);
        await new Promise<void>((resolve) => s.once('connect', () => resolve()));
        idle.push(s);
      }
      // the server has seen them all before the scrape connects
      while (server.connectionCount < 16) await new Promise((r) => setTimeout(r, 10));
      const ok = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('tapbridge_port_rx_packets_total');
      expect(server.connectionsEvicted).toBeGreaterThanOrEqual(1);
      expect(server.connectionCount).toBeLessThanOrEqual(16);
    } finally {
      for (const s of idle) s.destroy();
      await server.close();
    }
  });

  it('closes a connection that does not complete its request head in time', async () => {
    const server = new MetricsServer({ host: '127.0.0.1', port: 0 }, new DaemonMetrics(source()), silentLogger(), { headTimeoutMs: 300, sweepIntervalMs: 50 });
    await server.listen();
    const s = connect(server.port, '127.0.0.1');
    s.on('error', () => undefined);
    try {
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      // node's own headersTimeout is checked every 30 s: only the server's sweep closes it within the test's 5 s
      await new Promise<void>((resolve) => s.once('close', () => resolve()));
      expect(server.connectionsTimedOut).toBe(1);
    } finally {
      s.destroy();
      await server.close();
    }
  });

  it('builds one scrape for concurrent requests and serves it again within the cache time', async () => {
    const src = source();
    let statsCalls = 0;
    const stats = src.stats;
    src.stats = (sync?: boolean) => {
      statsCalls++;
      return stats(sync);
    };
    const server = new MetricsServer({ host: '127.0.0.1', port: 0 }, new DaemonMetrics(src), silentLogger(), { cacheMs: 60_000 });
    await server.listen();
    try {
      const url = `http://127.0.0.1:${server.port}/metrics`;
      const all = await Promise.all(Array.from({ length: 5 }, () => fetch(url).then((r) => r.text())));
      expect(new Set(all).size).toBe(1);
      expect((await fetch(url)).status).toBe(200);
      expect(statsCalls).toBe(1);
      expect(server.scrapesBuilt).toBe(1);
      expect(server.scrapes).toBe(6);
    } finally {
      await server.close();
    }
  });

  it('fails to listen with the address in the message', async () => {
    const a = new MetricsServer({ host: '127.0.0.1', port: 0 }, new DaemonMetrics(source()), silentLogger());
    await a.listen();
    try {
      const b = new MetricsServer({ host: '127.0.0.1', port: a.port }, new DaemonMetrics(source()), silentLogger());
      await expect(b.listen()).rejects.toThrow(`metrics: cannot listen on 127.0.0.1:${a.port}`);
    } finally {
      await a.close();
    }
  });
});

describe('metrics and log_level config', () => {
  it('parses metrics.listen and log_level', () => {
    const cfg = parseConfig('log_level: debug\nmetrics: { listen: "[::1]:9464" }\nbridges: []\n');
    expect(cfg.metrics).toEqual({ listen: { host: '::1', port: 9464 } });
    expect(cfg.logLevel).toBe('debug');
    expect(parseConfig('bridges: []\n').metrics).toBeNull();
    expect(parseListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('names the key path of every bad value', () => {
    expect(configIssues('metrics: { listen: "localhost:9464" }\nbridges: []\n')).toEqual([
      'metrics.listen: must be "HOST:PORT" with an IP address (e.g. "127.0.0.1:9464" or "[::1]:9464"), got "localhost:9464"',
    ]);
    expect(configIssues('metrics: { listen: "127.0.0.1:70000" }\nbridges: []\n')).toEqual(['metrics.listen: port must be 1..65535, got 70000']);
    expect(configIssues('metrics: { listen: "999.1.1.1:1" }\nbridges: []\n')).toEqual(['metrics.listen: "999.1.1.1" is not an IPv4 address or a bracketed IPv6 address']);
    expect(configIssues('metrics: { port: 1 }\nbridges: []\n')).toEqual([
      'metrics.port: unknown key (allowed: listen)',
      'metrics.listen: is required',
    ]);
    expect(configIssues('metrics: 9464\nbridges: []\n')).toEqual(['metrics: must be a mapping, got number 9464']);
    expect(configIssues('log_level: loud\nbridges: []\n')).toEqual([
      'log_level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ]);
  });
});

