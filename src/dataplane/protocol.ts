// What the main thread and the data-plane workers (src/dataplane/) exchange.
//
//   workerData (WorkerInit)  once: the worker's id, and per bridge the shared FDB's buffers, the worker's
//                            learning ring and its counter slab; the shared clock; the ack word
//   'sync' (SyncMessage)     the port table of every bridge whose table changed (absent: unchanged), under a new
//                            epoch. The worker applies it between two batches, writes its counters into its
//                            counter slabs, stores the epoch into the ack word and notifies: the main thread
//                            waits for that (Atomics.wait, bounded) before it answers the control request that
//                            caused it, and fails the request when the wait times out
//   'stop'                   close every port, ack, exit
//   worker -> main           'io_error' (a port's read failed; the main thread closes and re-opens it as for its
//                            own ports), 'adopt_failed' (the main thread reads that port), 'fatal' (an error while
//                            applying a message: logged; the worker stores that epoch as failed (ack word [1])
//                            before it acknowledges, so the request that caused it fails, and goes on)
//   learning ring entries    carry PortSnap.portKey (learn-ring.ts)
//   punt ring entries        IGMP/MLD control frames a worker read, with PortSnap.portKey (punt-ring.ts)
//   'sync' .mcast            a whole copy of a bridge's MDB when it changed (mdb-publish.ts)

import { PortCounter } from '../io/native-types.js';
import type { BridgeCounters } from '../bridge/bridge.js';
import type { BridgePort, PortKind, PortState } from '../bridge/port.js';
import type { VlanSpec } from '../bridge/vlan.js';
import type { SharedFdbLayout } from '../fdb/fdb.js';
import { McastSnooping, type McastSettings } from '../bridge/mcast.js';
import type { MdbState } from '../mdb/mdb.js';

/** The keys of T whose values are writable numbers (a counter either thread can add to). */
type CounterKeys<T> = {
  [K in keyof T]-?: T[K] extends number ? ((<V>() => V extends { [Q in K]: T[K] } ? 1 : 2) extends (<V>() => V extends { -readonly [Q in K]: T[K] } ? 1 : 2) ? K : never) : never;
}[keyof T];

/** The engine's per-port counters (writable BridgePort number fields) a worker's copy of a port adds to. */
export const PORT_FIELDS = [
  'rxPackets', 'rxBytes', 'txPackets', 'dropRunt', 'dropBadSrc', 'dropLinkLocal', 'dropOversize', 'dropTaggedOnAccess',
  'dropVlanNotMember', 'dropUntaggedNoNative', 'dropVlanReserved', 'dropStackedTag', 'dropMirrorOutput', 'batchErrors',
] as const satisfies readonly CounterKeys<BridgePort>[];
export type PortField = (typeof PORT_FIELDS)[number];

/**
 * Counter slab of one (worker, bridge): per port id a row of ROW words: [0] the generation of the worker's copy
 * of the port (changes when the copy is replaced: the main thread then starts that row from zero), then
 * PORT_FIELDS, then the addon's PortCounter values of the worker's fd; after maxPorts rows, BRIDGE_FIELDS.
 * Written only by the worker while it answers a sync; read by the main thread after the ack.
 */
export const ROW_GEN = 0;
export const ROW_FIELDS = 1;
export const ROW_NATIVE = ROW_FIELDS + PORT_FIELDS.length;
export const ROW = ROW_NATIVE + PortCounter.Count;
/** The engine's counters (Bridge.counters) a worker adds to, first in the bridge part of the slab. */
export const ENGINE_FIELDS = ['flooded', 'floodedGroup', 'forwarded'] as const satisfies readonly CounterKeys<BridgeCounters>[];
/** The bridge part of a counter slab: ENGINE_FIELDS, then the worker's own figures for data_workers.show. */
export const BRIDGE_FIELDS = [...ENGINE_FIELDS, 'batches', 'frames'] as const;

/** The ack words (WorkerInit.ack). */
export const ACK_EPOCH = 0;
export const ACK_FAILED = 1;
export const ACK_WORDS = 2;

/** Where a worker's multicast counters start in a counter slab (McastSnooping.writeWorkerCounters()). */
export function mcastCounterBase(maxPorts: number): number {
  return maxPorts * ROW + BRIDGE_FIELDS.length;
}

export function counterSlabBytes(maxPorts: number): number {
  return 8 * (mcastCounterBase(maxPorts) + McastSnooping.workerCounterWords(maxPorts));
}

export interface WorkerBridgeInit {
  name: string;
  maxPorts: number;
  fdb: SharedFdbLayout;
  /** Int32Array, one word per worker: this worker's word (index `reader`) is odd while it is inside a receive batch */
  readers: SharedArrayBuffer;
  reader: number;
  ring: SharedArrayBuffer;
  /** the punt ring (punt-ring.ts): IGMP/MLD control frames this worker read, for the main thread's MDB */
  punt: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

export interface WorkerInit {
  id: number;
  bridges: WorkerBridgeInit[];
  /** Float64Array(1): the main thread's coarse clock (ms, its performance.now()), written every tick */
  clock: SharedArrayBuffer;
  /** Int32Array(ACK_WORDS): [ACK_EPOCH] the last epoch this worker answered, [ACK_FAILED] the last one it failed to apply */
  ack: SharedArrayBuffer;
  directPoll: boolean;
}

/** A port as a worker's engine sees it. */
export interface PortSnap {
  id: number;
  name: string;
  kind: PortKind;
  /** identity of the port's I/O object on the main thread; a new key is a new fd (then `fd` is set) */
  ioKey: number;
  /**
   * identity of the port itself on the main thread (a port removed and another added under its id get different
   * keys): every learning entry the worker pushes for this port carries it, and the main thread learns an entry
   * only while the port under that id still has this key
   */
  portKey: number;
  /** a dup() of the main thread's fd for the worker to own, set when the worker has not got this ioKey yet */
  fd: number;
  /** ioKind 'vhost-user': the port's device id (src/native/vhost-user.cc registry); the worker adopts a peer, no fd */
  device: number;
  ioKind: 'tap' | 'packet' | 'vhost-user';
  ifindex: number;
  /** the worker reads this port (else it only sends to it) */
  rx: boolean;
  state: PortState;
  learning: boolean;
  flood: boolean;
  isolated: boolean;
  checkStacked: boolean;
  vlan: VlanSpec;
  mtu: number;
  fdbMax: number;
}

export interface SyncMessage {
  type: 'sync';
  epoch: number;
  /**
   * bridge name -> its MDB (mdb-publish.ts), for bridges whose MDB or port table changed since the last one this
   * worker got: null, snooping is off; applied after the tables of this message
   */
  mcast?: Record<string, McastPublish | null>;
  /** bridge name -> its ports (only bridges whose table changed) */
  tables: Record<string, PortSnap[]>;
}

/** A bridge's snooping as a worker is to see it: its settings and a whole copy of its MDB (Mdb.exportState()). */
export interface McastPublish {
  /** identity of the main thread's McastSnooping (another one: the worker makes a new copy) */
  key: number;
  settings: McastSettings;
  maxPorts: number;
  mdb: MdbState;
}

export type MainToWorker = SyncMessage | { type: 'stop'; epoch: number };

export type WorkerToMain =
  | { type: 'io_error'; bridge: string; port: string; ioKey: number; errno: number; syscall: string; stopped: boolean }
  | { type: 'adopt_failed'; bridge: string; port: string; ioKey: number; message: string }
  | { type: 'fatal'; message: string };
