// Whose vxlan netdev is it: which kernel vxlan netdevs the daemon created, and whether an existing one may be
// adopted by a `vxlan` port (src/daemon/vxlan.ts).
//
//   record   every netdev the daemon creates is recorded by name, ifindex and VNI in the state document's section
//            `vxlan_created`, written at once (a SIGKILL may follow), and carried by a takeover like every section.
//            The record goes when the daemon deletes the netdev. Only a recorded netdev (same name AND same
//            ifindex: a netdev re-made by someone else under the same name is not ours) is ever deleted by the
//            daemon (stop, `vxlan del`, reload); `persist: true` keeps even those.
//   adopt    an existing netdev of the port's name is adopted only when it is a vxlan whose VNI, UDP port, local
//            address, group (or its own default remote), and underlay device (when `dev` is configured) are what
//            the config asks; otherwise the port fails with an error naming the netdev and every difference.
//            A recorded netdev (ours, left by `persist: true` or a daemon that was killed) that differs is deleted
//            and created anew; its remotes become the configured ones. On a netdev that is not ours, the daemon
//            adds the configured remotes and removes none; one with remotes the config does not list is refused.
//   VNI      RTM_NEWLINK fails with EEXIST when another vxlan netdev of the namespace holds the VNI on the same UDP
//            port; vniHolders() names it from a dump (vxlanLink.list()).
//   local    a `local` address the host does not have (in the daemon's namespace) is warned about at start and by
//            check-config (localAddressProblem()); the kernel accepts it, and the tunnel sends from it anyway.

import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { Logger } from '../log.js';
import type { LinkKind } from '../io/native-types.js';
import type { VxlanPortConfig } from '../config/config.js';
import { canonicalAddr } from './vxlan.js';

export const VXLAN_CREATED_SECTION = 'vxlan_created';
/** Records kept at most (one per vxlan port). */
export const MAX_VXLAN_CREATED = 4096;

export interface CreatedVxlan {
  name: string;
  ifindex: number;
  vni: number;
}

/** The netdevs the daemon created (see the header). One per process: run.ts loads it from the state and persists it. */
export class CreatedVxlans {
  private readonly records = new Map<string, CreatedVxlan>();
  private log: Logger | null = null;
  /** Called after every change (run.ts writes the state file). */
  onChange: (() => void) | null = null;

  setLogger(log: Logger): void {
    this.log = log;
  }

  list(): CreatedVxlan[] {
    return [...this.records.values()];
  }

  /** The section's value: hostile until checked (it was read from a file or received). Bad entries are skipped. */
  load(section: unknown): void {
    this.records.clear();
    if (!Array.isArray(section)) return;
    for (const e of section.slice(0, MAX_VXLAN_CREATED)) {
      const r = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
      const ok = typeof r.name === 'string' && /^[^\0/\s:]{1,15}$/.test(r.name) &&
        Number.isInteger(r.ifindex) && (r.ifindex as number) > 0 && (r.ifindex as number) <= 0x7fffffff &&
        Number.isInteger(r.vni) && (r.vni as number) >= 1 && (r.vni as number) <= 0xffffff;
      if (!ok) {
        this.log?.warn({ record: e }, 'vxlan-created record does not check out; ignored');
        continue;
      }
      this.records.set(r.name as string, { name: r.name as string, ifindex: r.ifindex as number, vni: r.vni as number });
    }
  }

  created(name: string, ifindex: number, vni: number): void {
    if (this.records.size >= MAX_VXLAN_CREATED && !this.records.has(name)) {
      this.log?.warn({ name }, 'too many vxlan-created records; this netdev will not be deleted at stop');
      return;
    }
    this.records.set(name, { name, ifindex, vni });
    this.onChange?.();
  }

  /** Whether the netdev `name` with this ifindex is one the daemon created. */
  owns(name: string, ifindex: number): boolean {
    const r = this.records.get(name);
    return r !== undefined && ifindex > 0 && r.ifindex === ifindex;
  }

  /** The netdev is gone (deleted by the daemon, or found missing or replaced). */
  forget(name: string): void {
    if (this.records.delete(name)) this.onChange?.();
  }
}

export const createdVxlans = new CreatedVxlans();

const addrOrNone = (a: string | null): string => (a === null ? 'none' : a);

/**
 * What differs between an existing netdev and the vxlan entry: one phrase per attribute, empty when it may be
 * adopted. `devIfindex` is the ifindex of the configured `dev` (null when none is configured or it does not exist).
 */
export function vxlanDifferences(spec: VxlanPortConfig, existing: LinkKind, devIfindex: number | null): string[] {
  if (existing.kind !== 'vxlan') return [`it is not a vxlan netdev (kind "${existing.kind}")`];
  const out: string[] = [];
  if (existing.vni !== spec.vni) out.push(`VNI ${existing.vni} (config ${spec.vni})`);
  if (existing.port !== spec.port) out.push(`dstport ${existing.port} (config ${spec.port})`);
  const local = existing.local === '' ? null : canonicalAddr(existing.local);
  const wantLocal = spec.local === null ? null : canonicalAddr(spec.local);
  if (local !== wantLocal) out.push(`local ${addrOrNone(local)} (config ${addrOrNone(wantLocal)})`);
  const group = existing.group === '' ? null : canonicalAddr(existing.group);
  const wantGroup = spec.group === null ? null : canonicalAddr(spec.group);
  if (group !== wantGroup) {
    // IFLA_VXLAN_GROUP with a unicast address is `ip link add ... remote R`: the netdev's own default destination
    out.push(group !== null && wantGroup === null ? `its own remote ${group} (config: remotes as FDB entries, no default remote)`
      : `group ${addrOrNone(group)} (config ${addrOrNone(wantGroup)})`);
  }
  if (spec.dev !== null && (devIfindex === null || existing.link !== devIfindex)) {
    out.push(`underlay ifindex ${existing.link === 0 ? 'none' : existing.link} (config dev ${spec.dev}${devIfindex === null ? ', not found' : ` = ifindex ${devIfindex}`})`);
  }
  return out;
}

/** The vxlan netdevs (other than `self`) holding `vni` on UDP port `port`, from a dump. */
export function vniHolders(vni: number, port: number, list: readonly (LinkKind & { name: string })[], self: string): string[] {
  return list.filter((l) => l.vni === vni && l.port === port && l.name !== self).map((l) => l.name);
}

export type InterfaceAddresses = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** Null when the host has the entry's `local` address (or none is configured), else the warning. */
export function localAddressProblem(spec: VxlanPortConfig, addrs: InterfaceAddresses = networkInterfaces()): string | null {
  if (spec.local === null) return null;
  const want = canonicalAddr(spec.local);
  for (const list of Object.values(addrs)) {
    if (list?.some((a) => canonicalAddr(a.address.split('%')[0]) === want)) return null;
  }
  return `local ${spec.local} is not an address of this host (namespace); the kernel accepts it, but ${spec.name} sends ` +
    'from an address no interface here has, and remote VTEPs may not reach it';
}

/** check-config: one warning per vxlan entry whose `local` the host does not have. */
export function vxlanLocalWarnings(bridges: { vxlan: VxlanPortConfig[] }[], addrs?: InterfaceAddresses): string[] {
  const out: string[] = [];
  bridges.forEach((b, bi) => b.vxlan.forEach((spec, vi) => {
    const problem = localAddressProblem(spec, addrs);
    if (problem !== null) out.push(`bridges[${bi}].vxlan[${vi}]: ${problem}`);
  }));
  return out;
}
