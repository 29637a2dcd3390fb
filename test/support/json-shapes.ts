// The JSON the CLI prints with -j, as the issues define it: the contract the end-to-end tests check.
// Written from the issues, not imported from src/, so that a change of the implementation's types
// cannot silently change what the tests expect.

export interface ShowPort {
  name: string;
  kind: 'tap' | 'attach';
  state: 'up' | 'down' | 'absent';
  ifindex: number;
}

export interface ShowBridge {
  name: string;
  uplink: { name: string; kind: string; state: string } | null;
  ports: ShowPort[];
}

export interface MacEntry {
  port: string;
  mac: string;
  vlan: number;
  static: boolean;
  age: number;
}

export interface PortStats {
  name: string;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  /** GSO super-frames read from / accepted by the port's fd (issue 9) */
  rx_gso_packets: number;
  tx_gso_packets: number;
  drops: Record<string, number>;
}

export interface BridgeStats {
  bridge: string;
  fdb: { entries: number; learned: number; aged: number; moved: number; evicted: number; flooded: number };
  ports: PortStats[];
}

export interface VlanShow {
  port: string;
  mode: 'access' | 'trunk';
  vlans: number[] | 'all';
  native: number | null;
}

export interface BondMemberShow {
  name: string;
  mii_status: 'up' | 'down';
  link_failures: number;
  state: string;
}

export interface BondShow {
  name: string;
  mode: string;
  active: string | null;
  primary: string;
  mii_status: 'up' | 'down';
  miimon: number;
  updelay: number;
  downdelay: number;
  members: BondMemberShow[];
}
