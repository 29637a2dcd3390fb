// JSON-RPC methods, named after the CLI verbs, mapped onto Daemon operations.

import type { Daemon } from '../daemon/daemon.js';
import { netdev } from '../io/native.js';
import { VERSION } from '../version.js';
import type { MethodHandler } from './server.js';
import { forceGc } from './debug.js';

export function daemonMethods(d: Daemon): Map<string, MethodHandler> {
  const methods: Array<[string, MethodHandler]> = [
    ['version', () => ({ version: VERSION, addon: netdev.version(), node: process.version })],
    ['show', () => d.show()],
    ['showmacs', (p) => d.showmacs(p.bridge)],
    ['addif', (p) => d.addif(p.bridge, p.ifname, p.kind, p)],
    ['delif', (p) => d.delif(p.bridge, p.ifname)],
    ['fdb.add', (p) => d.fdbAdd(p.bridge, p.mac, p.port, p.vlan)],
    ['fdb.del', (p) => d.fdbDel(p.bridge, p.mac, p.port, p.vlan)],
    ['fdb.flush', (p) => ({ flushed: d.fdbFlush(p.bridge, p.port) })],
    ['mdb.show', (p) => d.mdbShow(p.bridge)],
    ['mdb.add', (p) => d.mdbChange('add', p)],
    ['mdb.del', (p) => d.mdbChange('del', p)],
    ['setageing', (p) => d.setAgeing(p.bridge, p.seconds)],
    ['stats', () => d.stats()],
    ['bond.show', (p) => d.bondShow(p.bond)],
    ['bond.set_active', (p) => d.bondSetActive(p.bond, p.member)],
    ['bond.rebalance', (p) => d.bondRebalance(p.bond)],
    ['bond.set_mode', (p) => d.bondSetMode(p.bond, p.mode)],
    ['vlan.show', (p) => d.vlanShow(p.bridge)],
    ['vlan.set', (p) => d.vlanSet(p.bridge, p.port, p)],
    ['vxlan.show', (p) => d.vxlanShow(p.bridge)],
    ['vxlan.add', (p) => d.vxlanAdd(p.bridge, p)],
    ['vxlan.del', (p) => d.vxlanDel(p.bridge, p.name)],
    ['vxlan.remote.add', (p) => d.vxlanRemote(p.bridge, p.name, 'add', p.ip)],
    ['vxlan.remote.del', (p) => d.vxlanRemote(p.bridge, p.name, 'del', p.ip)],
    ['qos.show', (p) => d.qosShow(p.bridge)],
    ['qos.set', (p) => d.qosSet(p.bridge, p.port, p)],
    ['qos.clear', (p) => d.qosClear(p.bridge, p.port)],
    ['lock.show', (p) => d.lockShow(p.bridge)],
    ['lock.set', (p) => d.lockSet(p.bridge, p.port, p)],
    ['lock.clear', (p) => d.lockClear(p.bridge, p.port)],
    ['trace', (p) => d.trace(p)],
    ['capture', (p, client) => d.capture(p, client)],
    ['capture.stop', (_p, client) => d.captureStop(client)],
    ['mirror.add', (p) => d.mirrorAdd(p)],
    ['mirror.del', (p) => d.mirrorDel(p)],
    ['mirror.show', (p) => d.mirrorShow(p.bridge)],
    ['debug.gc', () => forceGc()],
    ['busy_poll.show', () => d.busyPollShow()],
    ['direct_poll.show', () => d.directPollShow()],
    ['data_workers.show', () => d.dataWorkersShow()],
  ];
  return new Map<string, MethodHandler>(methods.map(([name, h]) => [name, afterSync(d, h)]));
}

/** Every request's changes reach the data-plane workers before its reply goes out, or it fails (data_plane_timeout; src/dataplane/). */
function afterSync(d: Daemon, h: MethodHandler): MethodHandler {
  return (p, client) => {
    try {
      return h(p, client);
    } finally {
      d.syncDataPlane();
    }
  };
}
