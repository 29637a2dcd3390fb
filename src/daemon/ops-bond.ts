// Control operations on bonds (`bond show`, `bond set-active`, `bond rebalance`, `bond set-mode`, src/daemon/bond.ts):
// every bridge's uplink bond by name; and the bond states a --takeover hands over. A bond mode's own verb goes here,
// its state in bond.ts.

import { ControlError } from '../control/errors.js';
import { type Bond, type BondRuntimeState, type BondShow, parseBondStates } from './bond.js';
import type { DaemonCore } from './runtime.js';

function bonds(d: DaemonCore): Bond[] {
  return [...d.bridges.values()].flatMap((br) => (br.bond !== null ? [br.bond] : []));
}

function bondByName(d: DaemonCore, name: unknown): Bond {
  if (typeof name !== 'string') throw new ControlError('invalid_params', 'bond must be a string');
  const bond = bonds(d).find((b) => b.name === name);
  if (bond === undefined) throw new ControlError('not_found', `no such bond: ${name}`, { bond: name });
  return bond;
}

export function bondShow(d: DaemonCore, name: unknown): BondShow | BondShow[] {
  if (name === undefined || name === null) return bonds(d).map((b) => b.show());
  return bondByName(d, name).show();
}

export function bondSetActive(d: DaemonCore, name: unknown, member: unknown): BondShow {
  const bond = bondByName(d, name);
  if (typeof member !== 'string') throw new ControlError('invalid_params', 'member must be a string');
  const problem = bond.setActive(member);
  if (problem !== null) throw new ControlError(bond.memberIndex(member) < 0 ? 'no_such_port' : 'invalid_params', problem);
  return bond.show();
}

/** bond.rebalance: one balance-slb rebalancing round now (src/daemon/bond.ts). */
export function bondRebalance(d: DaemonCore, name: unknown): BondShow & { moved: number } {
  const bond = bondByName(d, name);
  if (bond.slb === null) throw new ControlError('invalid_params', `bond ${bond.name} is ${bond.mode}: rebalance applies to balance-slb bonds`);
  const moved = bond.rebalance();
  return { ...bond.show(), moved };
}

/** bond.set_mode: refused while running; the mode is config (a reload re-creates the bond). */
export function bondSetMode(d: DaemonCore, name: unknown, mode: unknown): never {
  const bond = bondByName(d, name);
  throw new ControlError('invalid_params', `the mode of bond ${bond.name} cannot change while it runs (it is ${bond.mode}; asked ${String(mode)}): set uplink.bond.mode in the config and reload, which re-creates the bond`);
}

/** --takeover: the previous daemon's bond states (state section BOND_STATE_SECTION), before start(). */
export function setBondRestore(d: DaemonCore, section: unknown): void {
  d.bondRestore = parseBondStates(section);
}

/** What a --takeover hands over per bond (SLB assignments, LACP state). */
export function bondStates(d: DaemonCore): Record<string, BondRuntimeState> {
  return Object.fromEntries(bonds(d).map((b) => [b.name, b.runtimeState()]));
}
