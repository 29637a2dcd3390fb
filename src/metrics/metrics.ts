// Prometheus metrics (prom-client, a registry of our own): what `tapbridge stats`, `show` and `bond show` report,
// under Prometheus names (tapbridge_ prefix, _total counters, base units).
//
//   tapbridge_port_{rx,tx}_{packets,bytes}_total{bridge,port}, tapbridge_port_{rx,tx}_gso_packets_total{bridge,port}
//   tapbridge_port_drops_total{bridge,port,reason}     every key of the port's `stats` drops object, whatever they are
//   tapbridge_port_up{bridge,port}                     1 when the port (or uplink/bond) is up
//   tapbridge_port_rate_limited_total{bridge,port,direction}   frames dropped by rate_limit (ingress) / egress_rate_limit
//   tapbridge_port_storm_dropped_total{bridge,port,kind}       storm control drops, kind = broadcast | multicast |
//                                                      unknown_unicast | shutdown (read while shut down)
//   tapbridge_port_rate_limit_bits_per_second{bridge,port,direction}  the limit in force (ports that have one)
//   tapbridge_port_storm_shutdowns_total{bridge,port}  times storm control shut the port down
//   tapbridge_port_mcast_{queries,reports,leaves}_received_total{bridge,port}, tapbridge_port_mcast_malformed_total,
//   tapbridge_port_mdb_entries{bridge,port}, tapbridge_port_mcast_router{bridge,port}   (multicast_snooping on only)
//   tapbridge_mdb_groups{bridge}, tapbridge_mcast_querier_self{bridge,vlan,family}      (multicast_snooping / _querier on)
//   tapbridge_fdb_entries{bridge}
//   tapbridge_fdb_events_total{bridge,event}           event = learned | aged | moved | evicted
//   tapbridge_bond_active_member{bond,member}          1 on the active member, 0 on the other
//   tapbridge_bond_failovers_total{bond}
//   tapbridge_bond_member_up{bond,member}              1 while the member is up (carrier; 802.3ad: collecting and distributing)
//   tapbridge_bond_member_tx_{packets,bytes}_total{bond,member}   what each member sent (balance-slb, 802.3ad: packets;
//                                                      bytes in every mode)
//   tapbridge_bond_member_load_bytes{bond,member}      balance-slb: the member's buckets' load (halved each rebalance)
//   tapbridge_bond_member_lacpdus_total{bond,member,direction}   802.3ad: LACPDUs received (rx) and sent (tx)
//   tapbridge_data_worker_ports{worker}                ports each forwarding thread reads (worker 0: the main thread)
//   tapbridge_data_worker_frames_total{worker}         frames a data-plane worker thread read (data_workers > 1)
//   tapbridge_data_worker_learn_dropped_total{worker}  learning events its full ring refused
//   tapbridge_data_worker_terminated{worker}           1: the worker was stuck and terminated (data_workers > 1)
//   tapbridge_data_worker_punt_dropped_total{worker}   IGMP/MLD control frames its full punt ring refused
//   tapbridge_event_loop_utilization_ratio             share of time the event loop was busy since the last scrape
//   tapbridge_event_loop_active_seconds_total          busy time of the event loop (rate() of it = utilisation)
//   process_* and nodejs_* (prom-client's default metrics; nodejs_eventloop_lag_* is the event-loop lag), less the
//   three gauges prom-client names nodejs_active_*_total, which promtool rejects (their per-type series stay)
//
// Notes on performance: a scrape takes ONE snapshot of the daemon's stats()/show()/bondShow(), the same functions the
// control socket serves, and the families read that snapshot. It asks for the counters without a round trip to the
// data-plane workers (stats(false)): with data_workers > 1 a worker's counts are those last folded into the main
// thread (the daemon's tick asks for them at least every second), not a forced round trip (no Atomics.wait on the
// main loop per scrape). Nothing here runs per frame or keeps its own count: the
// per-frame path is untouched. The scrape runs on the main event loop, so it must be cheap at 1000 ports: prom-client's
// Counter/Gauge (reset + inc per series: label validation, hashing) took 240 ms per scrape of 1000 ports x 17 series
// (scripts/bench/service.mjs). The tapbridge families are therefore plain registry entries whose get() hands the
// registry values with label objects that are cached per label set, so prom-client formats each label set once.

import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { BridgeStats, ShowBridge } from '../daemon/daemon.js';
import type { BondShow } from '../daemon/bond.js';
import type { DataPlaneShow } from '../dataplane/dataplane.js';
import type { QosShow } from '../bridge/qos.js';

/** The daemon's read-only views a scrape needs. */
export interface MetricsSource {
  /** syncWorkers false: the counters the main thread already holds, without a round trip to the data-plane workers */
  stats(syncWorkers?: boolean): BridgeStats[];
  show(): ShowBridge[];
  bondShow(name?: unknown): BondShow | BondShow[];
  /** data_workers.show (absent: no such family); syncWorkers as for stats() */
  dataWorkersShow?(syncWorkers?: boolean): DataPlaneShow;
  /** qos.show of a bridge (absent: no limit gauges) */
  qosShow?(bridge: unknown): QosShow[];
}

interface Snapshot {
  stats: BridgeStats[];
  show: ShowBridge[];
  bonds: BondShow[];
  workers: DataPlaneShow['workers'];
  qos: Array<{ bridge: string; ports: QosShow[] }>;
}

type Labels = Readonly<Record<string, string>>;
interface Sample {
  value: number;
  labels: Labels;
  /** prom-client formats sharedLabels once per object (a WeakMap cache): our cached label objects go here */
  sharedLabels: Labels;
}

const FDB_EVENTS = ['learned', 'aged', 'moved', 'evicted'] as const;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
const NO_LABELS: Labels = Object.freeze({});

/** A port's label object and its per-reason label objects for the drops family. */
interface PortLabels {
  labels: Labels;
  reasons: Map<string, Labels>;
  gen: number;
}

/**
 * Label objects by label values, kept from scrape to scrape so that prom-client's per-object cache of the formatted
 * labels hits; entries a scrape did not use are dropped after it, so ports that went away leave (bounded by the ports).
 */
class LabelCache {
  private readonly ports = new Map<string, PortLabels>();
  private readonly other = new Map<string, { labels: Labels; gen: number }>();
  private gen = 0;

  port(bridge: string, port: string): PortLabels {
    const key = `${bridge}\0${port}`;
    let e = this.ports.get(key);
    if (e === undefined) {
      e = { labels: Object.freeze({ bridge, port }), reasons: new Map(), gen: this.gen };
      this.ports.set(key, e);
    }
    e.gen = this.gen;
    return e;
  }

  drop(p: PortLabels, reason: string): Labels {
    let l = p.reasons.get(reason);
    if (l === undefined) {
      l = Object.freeze({ ...p.labels, reason });
      p.reasons.set(reason, l);
    }
    return l;
  }

  get(values: readonly string[], names: readonly string[]): Labels {
    const key = values.join('\0');
    let e = this.other.get(key);
    if (e === undefined) {
      const o: Record<string, string> = {};
      names.forEach((n, i) => (o[n] = values[i]));
      e = { labels: Object.freeze(o), gen: this.gen };
      this.other.set(key, e);
    }
    e.gen = this.gen;
    return e.labels;
  }

  /** Drops what this scrape did not use. */
  endScrape(): void {
    for (const [k, e] of this.ports) if (e.gen !== this.gen) this.ports.delete(k);
    for (const [k, e] of this.other) if (e.gen !== this.gen) this.other.delete(k);
    this.gen++;
  }
}

/** One family in prom-client's registry, its values computed at scrape time from the snapshot. */
class Family {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly collect: (out: Sample[]) => void,
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    const values: Sample[] = [];
    this.collect(values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

function finite(n: unknown): n is number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly source: MetricsSource;
  private readonly labels = new LabelCache();
  private snap: Snapshot = { stats: [], show: [], bonds: [], workers: [], qos: [] };
  private lastElu: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(source: MetricsSource) {
    this.source = source;
    collectDefaultMetrics({ register: this.registry });
    // gauges that prom-client names *_total, which `promtool check metrics` rejects (only counters end in _total);
    // the same numbers, by type, stay in nodejs_active_handles / _requests / _resources
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);

    const add = (name: string, help: string, type: 'counter' | 'gauge', collect: (out: Sample[]) => void): void => {
      this.registry.registerMetric(new Family(name, help, type, collect) as unknown as Parameters<Registry['registerMetric']>[0]);
    };
    const portLabels = (bridge: string, port: string): Labels => this.labels.port(bridge, port).labels;
    const portFamily = (name: string, help: string, pick: (p: BridgeStats['ports'][number]) => number): void => {
      add(name, help, 'counter', (out) => {
        for (const b of this.snap.stats) {
          for (const p of b.ports) {
            const v = pick(p);
            if (finite(v)) out.push({ value: v, labels: NO_LABELS, sharedLabels: portLabels(b.bridge, p.name) });
          }
        }
      });
    };
    portFamily('tapbridge_port_rx_packets_total', 'Frames received on the port.', (p) => p.rx_packets);
    portFamily('tapbridge_port_rx_bytes_total', 'Bytes received on the port (frame bytes, no vnet header).', (p) => p.rx_bytes);
    portFamily('tapbridge_port_tx_packets_total', 'Frames sent on the port.', (p) => p.tx_packets);
    portFamily('tapbridge_port_tx_bytes_total', 'Bytes sent on the port.', (p) => p.tx_bytes);
    portFamily('tapbridge_port_rx_gso_packets_total', 'GSO super-frames (a vnet header with a gso_type) read from the port.', (p) => p.rx_gso_packets);
    portFamily('tapbridge_port_tx_gso_packets_total', 'GSO super-frames the port accepted for transmission.', (p) => p.tx_gso_packets);

    // IGMP/MLD snooping (src/bridge/mcast.ts): only ports of bridges with multicast_snooping on
    portFamily('tapbridge_port_mcast_queries_received_total', 'IGMP/MLD queries received on the port.', (p) => p.multicast?.queries_rx ?? NaN);
    portFamily('tapbridge_port_mcast_reports_received_total', 'IGMP/MLD reports received on the port (v1/v2 reports and v3 reports).', (p) => p.multicast?.reports_rx ?? NaN);
    portFamily('tapbridge_port_mcast_leaves_received_total', 'IGMPv2 leaves and MLDv1 dones received on the port.', (p) => p.multicast?.leaves_rx ?? NaN);
    portFamily('tapbridge_port_mcast_malformed_total', 'Malformed IGMP/MLD received on the port (dropped).', (p) => p.multicast?.malformed_rx ?? NaN);
    add('tapbridge_port_mdb_entries', 'Multicast database entries (group memberships) of the port.', 'gauge', (out) => {
      for (const b of this.snap.stats) {
        for (const p of b.ports) if (p.multicast) out.push({ value: p.multicast.mdb_entries, labels: NO_LABELS, sharedLabels: portLabels(b.bridge, p.name) });
      }
    });
    add('tapbridge_port_mcast_router', 'Whether the port is a multicast router port now, in at least one VLAN (1), or not (0).', 'gauge', (out) => {
      for (const b of this.snap.stats) {
        for (const p of b.ports) if (p.multicast) out.push({ value: p.multicast.is_router ? 1 : 0, labels: NO_LABELS, sharedLabels: portLabels(b.bridge, p.name) });
      }
    });

    add('tapbridge_port_drops_total', 'Frames dropped on the port, by reason (the drop reasons of `tapbridge stats`).', 'counter', (out) => {
      for (const b of this.snap.stats) {
        for (const p of b.ports) {
          const pl = this.labels.port(b.bridge, p.name);
          for (const reason in p.drops) {
            const n = p.drops[reason];
            if (finite(n)) out.push({ value: n, labels: NO_LABELS, sharedLabels: this.labels.drop(pl, reason) });
          }
        }
      }
    });

    add('tapbridge_port_up', 'Whether the port is up (1) or down or absent (0).', 'gauge', (out) => {
      for (const b of this.snap.show) {
        if (b.uplink !== null) out.push({ value: b.uplink.state === 'up' ? 1 : 0, labels: NO_LABELS, sharedLabels: portLabels(b.name, b.uplink.name) });
        for (const p of b.ports) out.push({ value: p.state === 'up' ? 1 : 0, labels: NO_LABELS, sharedLabels: portLabels(b.name, p.name) });
      }
    });

    // QoS (src/bridge/qos.ts): the drop counters of `stats`, by direction and storm class, and the limits in force
    const BPD = ['bridge', 'port', 'direction'] as const;
    const BPK = ['bridge', 'port', 'kind'] as const;
    add('tapbridge_port_rate_limited_total', 'Frames dropped by the port\'s rate limit: ingress (rate_limit, what the port sends) or egress (egress_rate_limit).', 'counter', (out) => {
      for (const b of this.snap.stats) {
        for (const p of b.ports) {
          for (const [direction, key] of [['ingress', 'rate_limit'], ['egress', 'egress_rate_limit']] as const) {
            const n = p.drops[key];
            if (finite(n)) out.push({ value: n, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, p.name, direction], BPD) });
          }
        }
      }
    });
    add('tapbridge_port_storm_dropped_total', 'Frames storm control dropped on the port, by kind (shutdown: read while storm control had the port shut down).', 'counter', (out) => {
      for (const b of this.snap.stats) {
        for (const p of b.ports) {
          for (const kind of ['broadcast', 'multicast', 'unknown_unicast', 'shutdown'] as const) {
            const n = p.drops[`storm_${kind}`];
            if (finite(n)) out.push({ value: n, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, p.name, kind], BPK) });
          }
        }
      }
    });
    add('tapbridge_port_rate_limit_bits_per_second', 'The port\'s rate limit in force, bits per second (kbps x 1000), by direction; absent without one.', 'gauge', (out) => {
      for (const b of this.snap.qos) {
        for (const q of b.ports) {
          if (q.rate_limit !== null) out.push({ value: q.rate_limit.kbps * 1000, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, q.port, 'ingress'], BPD) });
          if (q.egress_rate_limit !== null) out.push({ value: q.egress_rate_limit.kbps * 1000, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, q.port, 'egress'], BPD) });
        }
      }
    });
    add('tapbridge_port_storm_shutdowns_total', 'Times storm control (action shutdown) shut the port down.', 'counter', (out) => {
      for (const b of this.snap.qos) {
        for (const q of b.ports) if (finite(q.counters.storm_shutdowns)) out.push({ value: q.counters.storm_shutdowns, labels: NO_LABELS, sharedLabels: portLabels(b.bridge, q.port) });
      }
    });

    const B = ['bridge'] as const;
    add('tapbridge_fdb_entries', 'Entries in the bridge\'s forwarding database (static included).', 'gauge', (out) => {
      for (const b of this.snap.stats) out.push({ value: b.fdb.entries, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge], B) });
    });

    add('tapbridge_mdb_groups', 'Groups in the bridge\'s multicast database (multicast_snooping on only).', 'gauge', (out) => {
      for (const b of this.snap.stats) if (b.multicast) out.push({ value: b.multicast.groups, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge], B) });
    });
    const BVF = ['bridge', 'vlan', 'family'] as const;
    add('tapbridge_mcast_querier_self', 'Whether this bridge is the IGMP/MLD querier of the VLAN (1) or another querier is (0); multicast_querier on only.', 'gauge', (out) => {
      for (const b of this.snap.stats) {
        for (const v of b.multicast?.querier.vlans ?? []) {
          out.push({ value: v.ipv4.querier === 'self' ? 1 : 0, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, String(v.vlan), 'ipv4'], BVF) });
          out.push({ value: v.ipv6.querier === 'self' ? 1 : 0, labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, String(v.vlan), 'ipv6'], BVF) });
        }
      }
    });

    const BE = ['bridge', 'event'] as const;
    add('tapbridge_fdb_events_total', 'Forwarding database events: addresses learned, aged out, moved to another port, evicted by the size cap.', 'counter', (out) => {
      for (const b of this.snap.stats) {
        for (const event of FDB_EVENTS) {
          if (finite(b.fdb[event])) out.push({ value: b.fdb[event], labels: NO_LABELS, sharedLabels: this.labels.get([b.bridge, event], BE) });
        }
      }
    });

    const BM = ['bond', 'member'] as const;
    add('tapbridge_bond_active_member', 'Active-backup bond members: 1 on the active member, 0 on the other.', 'gauge', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) out.push({ value: bond.active === m.name ? 1 : 0, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name], BM) });
      }
    });

    const BO = ['bond'] as const;
    add('tapbridge_bond_failovers_total', 'Changes of the active member from one member to the other.', 'counter', (out) => {
      for (const bond of this.snap.bonds) {
        if (finite(bond.failovers)) out.push({ value: bond.failovers, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name], BO) });
      }
    });

    add('tapbridge_bond_member_up', 'Bond members: 1 while up (carrier; 802.3ad: collecting and distributing).', 'gauge', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) {
          const up = m.lacp !== undefined ? m.lacp.mux_state === 'collecting_distributing' : m.mii_status === 'up';
          out.push({ value: up ? 1 : 0, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name], BM) });
        }
      }
    });
    add('tapbridge_bond_member_tx_packets_total', 'Frames each bond member sent (balance-slb, 802.3ad).', 'counter', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) if (m.tx_packets !== undefined && finite(m.tx_packets) && bond.mode !== 'active-backup') out.push({ value: m.tx_packets, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name], BM) });
      }
    });
    add('tapbridge_bond_member_tx_bytes_total', 'Bytes each bond member sent (the kernel accepted).', 'counter', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) if (m.tx_bytes !== undefined && finite(m.tx_bytes)) out.push({ value: m.tx_bytes, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name], BM) });
      }
    });
    add('tapbridge_bond_member_load_bytes', 'balance-slb: load of the buckets each member carries (bytes, halved every rebalance).', 'gauge', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) if (m.load !== undefined && finite(m.load)) out.push({ value: m.load, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name], BM) });
      }
    });
    const BMD = ['bond', 'member', 'direction'] as const;
    add('tapbridge_bond_member_lacpdus_total', '802.3ad: LACPDUs each member received (rx) and sent (tx).', 'counter', (out) => {
      for (const bond of this.snap.bonds) {
        for (const m of bond.members) {
          if (m.lacp === undefined) continue;
          out.push({ value: m.lacp.lacpdus_rx, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name, 'rx'], BMD) });
          out.push({ value: m.lacp.lacpdus_tx, labels: NO_LABELS, sharedLabels: this.labels.get([bond.name, m.name, 'tx'], BMD) });
        }
      }
    });

    const W = ['worker'] as const;
    add('tapbridge_data_worker_ports', 'Ports each forwarding thread reads (worker 0 is the main thread; data_workers).', 'gauge', (out) => {
      for (const w of this.snap.workers) out.push({ value: w.ports.length, labels: NO_LABELS, sharedLabels: this.labels.get([String(w.id)], W) });
    });
    const workerFamily = (name: string, help: string, pick: (w: DataPlaneShow['workers'][number]) => number): void => {
      add(name, help, 'counter', (out) => {
        for (const w of this.snap.workers) {
          if (w.id > 0 && finite(pick(w))) out.push({ value: pick(w), labels: NO_LABELS, sharedLabels: this.labels.get([String(w.id)], W) });
        }
      });
    };
    workerFamily('tapbridge_data_worker_frames_total', 'Frames a data-plane worker thread read and forwarded (data_workers > 1).', (w) => w.frames);
    add('tapbridge_data_worker_terminated', 'A data-plane worker thread was stuck (three sync timeouts in a row) and terminated: 1, else 0.', 'gauge', (out) => {
      for (const w of this.snap.workers) {
        if (w.id > 0) out.push({ value: w.terminated ? 1 : 0, labels: NO_LABELS, sharedLabels: this.labels.get([String(w.id)], W) });
      }
    });
    workerFamily('tapbridge_data_worker_learn_dropped_total', 'Learning events of a worker thread its full ring refused (the frames were flooded, not lost).', (w) => w.learn_dropped);
    workerFamily('tapbridge_data_worker_punt_dropped_total', 'IGMP/MLD control frames a worker thread read that its full punt ring refused (forwarded, not learned).', (w) => w.punt_dropped);

    add('tapbridge_event_loop_utilization_ratio', 'Share of wall time the event loop was busy since the previous scrape (0..1).', 'gauge', (out) => {
      const now = performance.eventLoopUtilization();
      out.push({ value: performance.eventLoopUtilization(now, this.lastElu).utilization, labels: NO_LABELS, sharedLabels: NO_LABELS });
      this.lastElu = now;
    });

    add('tapbridge_event_loop_active_seconds_total', 'Time the event loop spent busy (not waiting for I/O) since the process started.', 'counter', (out) => {
      out.push({ value: performance.eventLoopUtilization().active / 1000, labels: NO_LABELS, sharedLabels: NO_LABELS });
    });
  }

  /** One snapshot of the daemon's counters, then the text exposition format. */
  async scrape(): Promise<string> {
    const bonds = this.source.bondShow();
    this.snap = {
      stats: this.source.stats(false), show: this.source.show(), bonds: Array.isArray(bonds) ? bonds : [bonds],
      workers: this.source.dataWorkersShow?.(false).workers ?? [],
      qos: [],
    };
    const qosShow = this.source.qosShow?.bind(this.source);
    if (qosShow !== undefined) for (const b of this.snap.show) this.snap.qos.push({ bridge: b.name, ports: qosShow(b.name) });
    try {
      return await this.registry.metrics();
    } finally {
      this.labels.endScrape();
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
