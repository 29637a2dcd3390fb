// `tapbridge bond show` text per mode (src/cli/format.ts formatBond), in the layout of /proc/net/bonding/bondX.
import { describe, expect, it } from 'vitest';
import { formatBond } from '../../src/cli/format.js';
import type { BondShow } from '../../src/daemon/bond.js';

const base = {
  name: 'bond0', primary: 'peth0', primary_reselect: 'always' as const, mii_status: 'up' as const, miimon: 100, updelay: 0, downdelay: 0,
  num_grat_arp: 1, peer_notif_delay: 0, failovers: 0,
};
const info = (system: string, port: number, state: number) => ({ system_priority: 65535, system, key: 1, port_priority: 255, port, state, state_bits: 'ATGSCD..' });

describe('formatBond per mode', () => {
  it('active-backup keeps the driver layout', () => {
    const text = formatBond({ ...base, mode: 'active-backup', active: 'peth0', members: [
      { name: 'peth0', mii_status: 'up', link_failures: 0, state: 'up', permanent_hw_addr: null },
      { name: 'peth1', mii_status: 'up', link_failures: 2, state: 'up', permanent_hw_addr: null },
    ] });
    expect(text).toContain('Bonding Mode: fault-tolerance (active-backup)');
    expect(text).toContain('Currently Active Slave: peth0');
    expect(text).toContain('Up Delay (ms): 0');
    expect(text).not.toContain('Load');
  });

  it('balance-slb: per member its MACs and load, the member that takes floods, the moves', () => {
    const b: BondShow = { ...base, mode: 'balance-slb', active: 'peth1', rebalance_interval: 10000, rebalance_moves: 3, failover_moves: 5, members: [
      { name: 'peth0', mii_status: 'up', link_failures: 0, state: 'up', permanent_hw_addr: null, tx_packets: 10, tx_bytes: 1000, load: 700, macs: ['02:00:00:00:00:01', '02:00:00:00:00:02 vlan 10'] },
      { name: 'peth1', mii_status: 'down', link_failures: 1, state: 'down', permanent_hw_addr: null, tx_packets: 0, tx_bytes: 0, load: 0, macs: [] },
    ] };
    const text = formatBond(b);
    expect(text).toContain('Bonding Mode: source load balancing (balance-slb)');
    expect(text).toContain('Active Slave (broadcast/multicast): peth1');
    expect(text).toContain('Buckets Moved: rebalance 3, failover 5');
    expect(text).toContain('Load (bytes): 700');
    expect(text).toContain('MACs: 02:00:00:00:00:01, 02:00:00:00:00:02 vlan 10');
    expect(text).toContain('MACs: none');
    expect(text).not.toContain('Up Delay');
  });

  it('802.3ad: actor and partner system, key, port state bits and churn per member', () => {
    const b: BondShow = { ...base, mode: '802.3ad', active: null,
      lacp: { activity: 'active', rate: 'fast', hash: 'layer3+4', system_priority: 65535, system: '02:00:00:00:0a:00', key: 1,
        aggregator_partner: { system_priority: 65534, system: '02:00:00:00:0b:00', key: 7 }, distributing: ['peth0'] },
      members: [{ name: 'peth0', mii_status: 'up', link_failures: 0, state: 'up', permanent_hw_addr: '02:00:00:00:0a:00', tx_packets: 5, tx_bytes: 500,
        lacp: { rx_state: 'current', mux_state: 'collecting_distributing', selected: true, partner_mismatch: false,
          actor: info('02:00:00:00:0a:00', 1, 0x3f), partner: info('02:00:00:00:0b:00', 3, 0x3f), lacpdus_rx: 9, lacpdus_tx: 8, lacpdus_bad: 1,
          actor_churn: 'no churn', partner_churn: 'churned', actor_churn_count: 0, partner_churn_count: 1 } }],
      failovers: 0 };
    const text = formatBond(b);
    expect(text).toContain('Bonding Mode: IEEE 802.3ad Dynamic link aggregation');
    expect(text).toContain('Transmit Hash Policy: layer3+4');
    expect(text).toContain('LACP rate: fast');
    expect(text).toContain('Partner: 02:00:00:00:0b:00 (priority 65534, key 7)');
    expect(text).toContain('Distributing: peth0');
    expect(text).toContain('Partner Churn State: churned (1)');
    expect(text).toContain('LACPDUs: rx 9, tx 8, bad 1');
    expect(text).toMatch(/details partner lacp pdu:\n(.*\n)*    port number: 3/);
    expect(text).toContain('port state: 63 ATGSCD..');
  });
});
