// Prometheus metrics (prom-client, a registry of our own): what `tapbridge stats`, `show` and `bond show` report,
// under Prometheus names (tapbridge_ prefix, _total counters, base units).
//
//   tapbridge_port_{rx,tx}_{packets,bytes}_total{bridge,port}
//   tapbridge_port_drops_total{bridge,port,reason}     every key of the port's `stats` drops object, whatever they are
//   tapbridge_port_up{bridge,port}                     1 when the port (or uplink/bond) is up
//   tapbridge_fdb_entries{bridge}
//   tapbridge_fdb_events_total{bridge,event}           event = learned | aged | moved | evicted
//   tapbridge_bond_active_member{bond,member}          1 on the active member, 0 on the other
//   tapbridge_bond_failovers_total{bond}
//   tapbridge_event_loop_utilization_ratio             share of time the event loop was busy since the last scrape
//   tapbridge_event_loop_active_seconds_total          busy time of the event loop (rate() of it = utilisation)
//   process_* and nodejs_* (prom-client's default metrics; nodejs_eventloop_lag_* is the event-loop lag), less the
//   three gauges prom-client names nodejs_active_*_total, which promtool rejects (their per-type series stay)
//
// Notes on performance: a scrape takes ONE snapshot of the daemon's stats()/show()/bondShow(), the same functions the
// control socket serves, and the collectors read that snapshot. Nothing here runs per frame or keeps its own count:
// the per-frame path is untouched, and the scrape costs O(ports x drop reasons) once per scrape interval.

import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { BridgeStats, ShowBridge } from '../daemon/daemon.js';
import type { BondShow } from '../daemon/bond.js';

/** The daemon's read-only views a scrape needs. */
export interface MetricsSource {
  stats(): BridgeStats[];
  show(): ShowBridge[];
  bondShow(name?: unknown): BondShow | BondShow[];
}

interface Snapshot {
  stats: BridgeStats[];
  show: ShowBridge[];
  bonds: BondShow[];
}

const FDB_EVENTS = ['learned', 'aged', 'moved', 'evicted'] as const;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly source: MetricsSource;
  private snap: Snapshot = { stats: [], show: [], bonds: [] };
  private lastElu: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(source: MetricsSource) {
    this.source = source;
    const reg = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // gauges that prom-client names *_total, which `promtool check metrics` rejects (only counters end in _total);
    // the same numbers, by type, stay in nodejs_active_handles / _requests / _resources
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    const self = this;

    const portCounter = (name: string, help: string, pick: (p: BridgeStats['ports'][number]) => number): void => {
      new Counter({
        name, help, labelNames: ['bridge', 'port'] as const, registers: reg,
        collect() {
          this.reset();
          for (const b of self.snap.stats) for (const p of b.ports) this.inc({ bridge: b.bridge, port: p.name }, pick(p));
        },
      });
    };
    portCounter('tapbridge_port_rx_packets_total', 'Frames received on the port.', (p) => p.rx_packets);
    portCounter('tapbridge_port_rx_bytes_total', 'Bytes received on the port (frame bytes, no vnet header).', (p) => p.rx_bytes);
    portCounter('tapbridge_port_tx_packets_total', 'Frames sent on the port.', (p) => p.tx_packets);
    portCounter('tapbridge_port_tx_bytes_total', 'Bytes sent on the port.', (p) => p.tx_bytes);

    new Counter({
      name: 'tapbridge_port_drops_total',
      help: 'Frames dropped on the port, by reason (the drop reasons of `tapbridge stats`).',
      labelNames: ['bridge', 'port', 'reason'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const b of self.snap.stats) {
          for (const p of b.ports) {
            for (const [reason, n] of Object.entries(p.drops)) {
              if (typeof n === 'number' && Number.isFinite(n) && n >= 0) this.inc({ bridge: b.bridge, port: p.name, reason }, n);
            }
          }
        }
      },
    });

    new Gauge({
      name: 'tapbridge_port_up',
      help: 'Whether the port is up (1) or down or absent (0).',
      labelNames: ['bridge', 'port'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const b of self.snap.show) {
          if (b.uplink !== null) this.set({ bridge: b.name, port: b.uplink.name }, b.uplink.state === 'up' ? 1 : 0);
          for (const p of b.ports) this.set({ bridge: b.name, port: p.name }, p.state === 'up' ? 1 : 0);
        }
      },
    });

    new Gauge({
      name: 'tapbridge_fdb_entries',
      help: 'Entries in the bridge\'s forwarding database (static included).',
      labelNames: ['bridge'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const b of self.snap.stats) this.set({ bridge: b.bridge }, b.fdb.entries);
      },
    });

    new Counter({
      name: 'tapbridge_fdb_events_total',
      help: 'Forwarding database events: addresses learned, aged out, moved to another port, evicted by the size cap.',
      labelNames: ['bridge', 'event'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const b of self.snap.stats) for (const event of FDB_EVENTS) this.inc({ bridge: b.bridge, event }, b.fdb[event]);
      },
    });

    new Gauge({
      name: 'tapbridge_bond_active_member',
      help: 'Active-backup bond members: 1 on the active member, 0 on the other.',
      labelNames: ['bond', 'member'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const bond of self.snap.bonds) for (const m of bond.members) this.set({ bond: bond.name, member: m.name }, bond.active === m.name ? 1 : 0);
      },
    });

    new Counter({
      name: 'tapbridge_bond_failovers_total',
      help: 'Changes of the active member from one member to the other.',
      labelNames: ['bond'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const bond of self.snap.bonds) this.inc({ bond: bond.name }, bond.failovers);
      },
    });

    new Gauge({
      name: 'tapbridge_event_loop_utilization_ratio',
      help: 'Share of wall time the event loop was busy since the previous scrape (0..1).',
      registers: reg,
      collect() {
        const now = performance.eventLoopUtilization();
        this.set(performance.eventLoopUtilization(now, self.lastElu).utilization);
        self.lastElu = now;
      },
    });

    new Counter({
      name: 'tapbridge_event_loop_active_seconds_total',
      help: 'Time the event loop spent busy (not waiting for I/O) since the process started.',
      registers: reg,
      collect() {
        this.reset();
        this.inc(performance.eventLoopUtilization().active / 1000);
      },
    });
  }

  /** One snapshot of the daemon's counters, then the text exposition format. */
  async scrape(): Promise<string> {
    const bonds = this.source.bondShow();
    this.snap = { stats: this.source.stats(), show: this.source.show(), bonds: Array.isArray(bonds) ? bonds : [bonds] };
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
