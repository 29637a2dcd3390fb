// The active-backup policy (src/bond/active-backup.ts) driven by a fake clock: no I/O, no real time.
import { describe, expect, it } from 'vitest';
import { ActiveBackup, type ActiveBackupOptions, type Clock, type FailoverEvent } from '../../src/bond/active-backup.js';

/** A manual clock: timers fire only from advance(), in due order. */
class FakeClock implements Clock {
  t = 1000;
  private seq = 0;
  private timers = new Map<number, { due: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { due: this.t + ms, fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  get pending(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].due <= end && (next === undefined || e[1].due < next[1].due)) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = next[1].due;
      next[1].fn();
    }
    this.t = end;
  }
}

const P0 = 0; // peth0, the primary unless said otherwise
const P1 = 1;

type Event = Omit<FailoverEvent, 'newActiveUpForMs'>;

function make(opts: Partial<ActiveBackupOptions> = {}): { ab: ActiveBackup; clock: FakeClock; events: Event[]; upFor: number[] } {
  const clock = new FakeClock();
  const events: Event[] = [];
  const upFor: number[] = [];
  const ab = new ActiveBackup(
    { members: ['peth0', 'peth1'], primary: 'peth0', primaryReselect: 'always', updelayMs: 0, downdelayMs: 0, ...opts },
    ({ newActiveUpForMs, ...e }) => {
      events.push(e);
      upFor.push(newActiveUpForMs);
    },
    clock,
  );
  return { ab, clock, events, upFor };
}

/** Both members up at start, peth0 (primary) active; the start-up events are cleared. */
function bothUp(opts: Partial<ActiveBackupOptions> = {}): ReturnType<typeof make> {
  const m = make(opts);
  m.ab.carrierChanged(P0, true, 'test');
  m.ab.carrierChanged(P1, true, 'test');
  // with updelay the second member comes back only after updelay
  m.clock.advance(opts.updelayMs ?? 0);
  expect(m.ab.active).toBe(P0);
  expect(m.ab.link).toEqual(['up', 'up']);
  m.events.length = 0;
  return m;
}

describe('ActiveBackup policy', () => {
  it('starts down; the first member with carrier becomes active at once, the primary preferred', () => {
    const { ab, events } = make();
    expect(ab.active).toBe(-1);
    expect(ab.isUp).toBe(false);
    ab.carrierChanged(P1, true, 'test');
    expect(ab.active).toBe(P1);
    expect(events).toEqual([{ from: -1, to: P1, reason: 'test: carrier back', detectionMs: 0 }]);
    // primary_reselect always: the primary takes over as soon as it is up
    ab.carrierChanged(P0, true, 'test');
    expect(ab.active).toBe(P0);
    expect(events[1]).toMatchObject({ from: P1, to: P0 });
  });

  it('rejects a primary that is not a member', () => {
    expect(() => make({ primary: 'eth9' })).toThrow(/not a member/);
  });

  it('fails over at once when the active member loses carrier (downdelay 0), and counts a link failure', () => {
    const { ab, events } = bothUp();
    ab.carrierChanged(P0, false, 'rtnetlink');
    expect(ab.active).toBe(P1);
    expect(ab.link).toEqual(['down', 'up']);
    expect(ab.linkFailures).toEqual([1, 0]);
    expect(events).toEqual([{ from: P0, to: P1, reason: 'rtnetlink: carrier lost', detectionMs: 0 }]);
  });

  it('repeated reports of the same carrier are ignored (miimon after rtnetlink)', () => {
    const { ab, events } = bothUp();
    ab.carrierChanged(P0, false, 'rtnetlink');
    ab.carrierChanged(P0, false, 'miimon');
    ab.carrierChanged(P1, true, 'miimon');
    expect(events).toHaveLength(1);
    expect(ab.linkFailures).toEqual([1, 0]);
  });

  it('the backup losing carrier changes nothing but its state and failure count', () => {
    const { ab, events } = bothUp();
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(P0);
    expect(ab.link).toEqual(['up', 'down']);
    expect(ab.linkFailures).toEqual([0, 1]);
    expect(events).toEqual([]);
  });

  it('both members down: the bond is down (active -1)', () => {
    const { ab, events } = bothUp();
    ab.carrierChanged(P0, false, 'test');
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(-1);
    expect(ab.isUp).toBe(false);
    expect(events.map((e) => [e.from, e.to])).toEqual([[P0, P1], [P1, -1]]);
    expect(ab.linkFailures).toEqual([1, 1]);
  });

  it('downdelay: the member is `fail` for downdelay ms, then down, and only then the bond fails over', () => {
    const { ab, clock, events } = bothUp({ downdelayMs: 300 });
    ab.carrierChanged(P0, false, 'rtnetlink');
    expect(ab.link[P0]).toBe('fail');
    expect(ab.active).toBe(P0);
    clock.advance(299);
    expect(ab.active).toBe(P0);
    expect(events).toEqual([]);
    clock.advance(1);
    expect(ab.active).toBe(P1);
    expect(ab.link[P0]).toBe('down');
    expect(ab.linkFailures[P0]).toBe(1);
    expect(events).toEqual([{ from: P0, to: P1, reason: 'rtnetlink: carrier lost (after downdelay)', detectionMs: 300 }]);
  });

  it('downdelay: carrier back within downdelay cancels the failure (no failover, no failure counted)', () => {
    const { ab, clock, events } = bothUp({ downdelayMs: 300 });
    ab.carrierChanged(P0, false, 'test');
    clock.advance(100);
    ab.carrierChanged(P0, true, 'test');
    expect(ab.link[P0]).toBe('up');
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(ab.active).toBe(P0);
    expect(ab.linkFailures).toEqual([0, 0]);
    expect(events).toEqual([]);
  });

  it('updelay: a member coming back is `back` for updelay ms, then up; primary_reselect always then switches to it', () => {
    const { ab, clock, events } = bothUp({ updelayMs: 500 });
    ab.carrierChanged(P0, false, 'test');
    expect(ab.active).toBe(P1);
    clock.advance(1000);
    ab.carrierChanged(P0, true, 'test');
    expect(ab.link[P0]).toBe('back');
    clock.advance(499);
    expect(ab.active).toBe(P1);
    clock.advance(1);
    expect(ab.link[P0]).toBe('up');
    expect(ab.active).toBe(P0);
    expect(events[1]).toEqual({ from: P1, to: P0, reason: 'test: carrier back (after updelay)', detectionMs: 500 });
  });

  it('updelay: carrier lost again while `back` cancels the return (no failure counted)', () => {
    const { ab, clock } = bothUp({ updelayMs: 500 });
    ab.carrierChanged(P0, false, 'test');
    clock.advance(10);
    ab.carrierChanged(P0, true, 'test');
    clock.advance(200);
    ab.carrierChanged(P0, false, 'test');
    expect(ab.link[P0]).toBe('down');
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(ab.active).toBe(P1);
    expect(ab.linkFailures[P0]).toBe(1);
  });

  it('no active member: a member coming back is made active at once despite updelay', () => {
    const { ab, clock, events } = bothUp({ updelayMs: 31_000 });
    ab.carrierChanged(P0, false, 'test');
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(-1);
    clock.advance(5);
    ab.carrierChanged(P1, true, 'test');
    expect(ab.link[P1]).toBe('up');
    expect(ab.active).toBe(P1);
    expect(events.at(-1)).toMatchObject({ from: -1, to: P1 });
    // the other member, coming back while one is active, waits for updelay again
    ab.carrierChanged(P0, true, 'test');
    expect(ab.link[P0]).toBe('back');
    clock.advance(31_000);
    expect(ab.active).toBe(P0);
  });

  it('no active member: a member already waiting out its updelay is made active at once (bond_find_best_slave)', () => {
    const { ab, clock, events } = bothUp({ updelayMs: 31_000 });
    // the backup flaps and is `back`, waiting 31 s ...
    ab.carrierChanged(P1, false, 'test');
    ab.carrierChanged(P1, true, 'test');
    expect(ab.link[P1]).toBe('back');
    clock.advance(1_000);
    // ... when the active member fails: the driver makes the BACK member active "N ms earlier"
    ab.carrierChanged(P0, false, 'test');
    expect(ab.active).toBe(P1);
    expect(ab.link[P1]).toBe('up');
    expect(clock.pending).toBe(0);
    expect(events.at(-1)).toMatchObject({ from: P0, to: P1 });
  });

  it('primary_reselect failure: the primary coming back does not take over from a healthy active member', () => {
    const { ab, events } = bothUp({ primaryReselect: 'failure' });
    ab.carrierChanged(P0, false, 'test');
    ab.carrierChanged(P0, true, 'test');
    expect(ab.link[P0]).toBe('up');
    expect(ab.active).toBe(P1);
    expect(events).toHaveLength(1);
    // ... only when the active member fails
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(P0);
  });

  it('primary_reselect better behaves as failure (veth and TAP report no speed)', () => {
    const { ab } = bothUp({ primaryReselect: 'better' });
    ab.carrierChanged(P0, false, 'test');
    ab.carrierChanged(P0, true, 'test');
    expect(ab.active).toBe(P1);
  });

  it('primary_reselect always with the second member as primary', () => {
    const { ab, events } = make({ primary: 'peth1' });
    ab.carrierChanged(P0, true, 'test');
    expect(ab.active).toBe(P0);
    ab.carrierChanged(P1, true, 'test');
    expect(ab.active).toBe(P1);
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(P0);
    ab.carrierChanged(P1, true, 'test');
    expect(ab.active).toBe(P1);
    expect(events.map((e) => e.to)).toEqual([P0, P1, P0, P1]);
  });

  it('vanished(): the active member is down at once whatever downdelay says, one failure counted', () => {
    const { ab, clock, events } = bothUp({ downdelayMs: 5_000 });
    ab.vanished(P0);
    expect(ab.active).toBe(P1);
    expect(ab.link[P0]).toBe('down');
    expect(ab.linkFailures[P0]).toBe(1);
    expect(events).toEqual([{ from: P0, to: P1, reason: 'netdev deleted', detectionMs: 0 }]);
    // it comes back with the re-created netdev
    ab.carrierChanged(P0, true, 'rtnetlink');
    expect(ab.active).toBe(P0);
    expect(clock.pending).toBe(0);
  });

  it('vanished() during downdelay ends the wait (detection counted from the carrier loss)', () => {
    const { ab, clock, events } = bothUp({ downdelayMs: 300 });
    ab.carrierChanged(P0, false, 'test');
    clock.advance(120);
    ab.vanished(P0);
    expect(ab.active).toBe(P1);
    expect(ab.linkFailures[P0]).toBe(1);
    expect(events[0].detectionMs).toBe(120);
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(ab.linkFailures[P0]).toBe(1);
  });

  it('vanished() of a member already down or coming back: no failure counted twice', () => {
    const { ab, clock } = bothUp({ updelayMs: 500 });
    ab.carrierChanged(P1, false, 'test');
    expect(ab.linkFailures[P1]).toBe(1);
    ab.vanished(P1);
    expect(ab.linkFailures[P1]).toBe(1);
    ab.carrierChanged(P1, true, 'test');
    expect(ab.link[P1]).toBe('back');
    ab.vanished(P1);
    expect(ab.link[P1]).toBe('down');
    expect(clock.pending).toBe(0);
    expect(ab.linkFailures[P1]).toBe(1);
  });

  it('setActive forces an up member and holds until the next event; refuses a member that is not up', () => {
    const { ab, events } = bothUp();
    expect(ab.setActive(P1)).toBeNull();
    expect(ab.active).toBe(P1);
    expect(events).toEqual([{ from: P0, to: P1, reason: 'set-active', detectionMs: 0 }]);
    // the same member again: no event
    expect(ab.setActive(P1)).toBeNull();
    expect(events).toHaveLength(1);
    // a forced member that fails: back to the other
    ab.carrierChanged(P1, false, 'test');
    expect(ab.active).toBe(P0);
    expect(ab.setActive(P1)).toBe('peth1 is not up (down)');
    expect(ab.active).toBe(P0);
  });

  it('setActive refuses a member in downdelay or updelay', () => {
    const { ab } = bothUp({ downdelayMs: 100, updelayMs: 100 });
    ab.carrierChanged(P1, false, 'test');
    expect(ab.setActive(P1)).toBe('peth1 is not up (fail)');
  });

  it('link failures accumulate per member over several cuts', () => {
    const { ab } = bothUp();
    for (let i = 0; i < 3; i++) {
      ab.carrierChanged(P0, false, 'test');
      ab.carrierChanged(P0, true, 'test');
    }
    ab.carrierChanged(P1, false, 'test');
    expect(ab.linkFailures).toEqual([3, 1]);
    expect(ab.active).toBe(P0);
  });

  it('stop() cancels pending timers', () => {
    const { ab, clock, events } = bothUp({ downdelayMs: 200 });
    ab.carrierChanged(P0, false, 'test');
    expect(clock.pending).toBe(1);
    ab.stop();
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(events).toEqual([]);
  });

  it('index() maps names to member indexes', () => {
    const { ab } = make();
    expect(ab.index('peth1')).toBe(1);
    expect(ab.index('nope')).toBe(-1);
  });
});

describe('how long the new active member has been up (decides when the bond announces)', () => {
  it('is long for a failover away from a broken link, 0 when the new active has just come back', () => {
    const m = bothUp();
    m.upFor.length = 0;
    m.clock.advance(5000);
    m.ab.carrierChanged(P0, false, 'test');
    expect(m.upFor[0]).toBe(5000);
    m.ab.carrierChanged(P0, true, 'test'); // primary back: reselected at once
    expect(m.ab.active).toBe(P0);
    expect(m.upFor[1]).toBe(0);
  });
});
