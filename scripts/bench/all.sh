#!/usr/bin/env bash
# Every comparison docs/performance.md shows, in one run on one machine state (issue 23: "regenerated from one run"):
#
#   main      run.sh: kernel bridge, vde_switch, Open vSwitch userspace (TAP and AF_PACKET), tapbridge TAP<->TAP,
#             TAP<->AF_PACKET with PACKET_MMAP rings and with `packet_mmap: false`; the 100k-MAC soak
#   vhost     vhost-user.sh: testpmd through tapbridge's vhost-user ports, through its TAP path, and through OVS-DPDK's
#             dpdkvhostuserclient ports (2 MiB hugepages reserved and given back; skipped rows say why): one testpmd
#             looping frames through the switch pinned to the other CPU (--mode loop: the table and issue 23's
#             targets), and in the full run also txonly -> rxonly with two testpmds (--mode txrx: a second table)
#   tenants   tenants.sh: the noisy neighbour on the kernel bridge, OVS and tapbridge (limits, storm control)
#   bonds     bond-modes.sh: active-backup, balance-slb, 802.3ad
#   mcast     mcast.sh: a multicast stream with snooping on and off
#
# One after the other (never two at once: they would measure each other), each bounded by a timeout and its output kept;
# a step that fails is a line in the report, not the end of the run. Then all-report.mjs writes one JSON
# (scripts/bench/results/all-<UTC date>.json, every step's figures and output) and prints the markdown tables
# docs/performance.md needs, the load average before and after, and the targets of issues 13 and 23 as MET/MISS with
# their ratios.
#
# Usage (root, after `npm ci` and `npm run build`):
#   bash scripts/bench/all.sh [--quick] [--steps LIST] [--no-install] [--out FILE]     (also: npm run bench -- --all)
#   --quick        1 rep and short durations everywhere: for checking that every step runs (8 minutes on 2 vCPUs at
#                  load average 11: main 154 s, vhost 62 s, tenants 242 s, bonds 21 s, mcast 13 s); the default (3
#                  reps in main and vhost) is the run the tables come from (about 20 minutes, estimated from those)
#   --steps LIST   a subset of main,vhost,tenants,bonds,mcast (default all)
#   --no-install   passed to run.sh and vhost-user.sh (no apt-get for vde2, openvswitch-switch, openvswitch-switch-dpdk)
#   --out FILE     the JSON (default scripts/bench/results/all-<UTC date>.json)
#   --report FILE  print the tables of an earlier run's JSON again (no measurement, no root)
#
# Safety: every step keeps its own rules (namespaces with a per-step prefix removed on every exit path, addresses from
# 198.18.0.0/15, bounded generators, PIDs only); this script starts nothing but the steps, each under `timeout`, and a
# `tail` that shows the running step's output. A Ctrl-C or a SIGTERM to this script sends TERM to the running step (by
# its timeout's PID), waits until it has cleaned up (at most 20 s, then SIGKILL), and ends the run without a report.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

QUICK=0
STEPS=main,vhost,tenants,bonds,mcast
NO_INSTALL=()
OUT=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--steps) STEPS=$2; shift ;;
	--no-install) NO_INSTALL=(--no-install) ;;
	--out) OUT=$2; shift ;;
	--report) exec node "$BENCH_DIR/all-report.mjs" --from "$2" ;;
	-h | --help) sed -n '2,/^set -e/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
	shift
done
for s in ${STEPS//,/ }; do
	case $s in main | vhost | tenants | bonds | mcast) ;; *) tb_die "--steps: unknown step '$s' (main,vhost,tenants,bonds,mcast)" ;; esac
done
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }
tb_require_root
tb_require_cmds node timeout
[ -f "$REPO_ROOT/dist/cli/main.js" ] || tb_die "dist/ is missing: run npm run build"

WORK=$(mktemp -d /tmp/tb-all.XXXXXX)
tb_trap_cleanup "$WORK"
if [ -z "$OUT" ]; then
	mkdir -p "$BENCH_DIR/results"
	OUT=$BENCH_DIR/results/all-$(date -u +%Y-%m-%dT%H%M%SZ).json
fi

# Each step's arguments: the default run, and --quick.
if [ "$QUICK" = 1 ]; then
	MAIN_ARGS=(--quick)
	VHOST_ARGS=(--quick)
	TENANTS_ARGS=(--quick)
	BONDS_ARGS=(--seconds 2)
	MCAST_ARGS=(--seconds 2)
else
	MAIN_ARGS=(--reps 3 --tcp-seconds 4 --load-ping-count 200 --soak 30)
	VHOST_ARGS=(--reps 3 --seconds 5 --mode loop,txrx)
	TENANTS_ARGS=()
	BONDS_ARGS=(--seconds 5)
	MCAST_ARGS=(--seconds 5)
fi

# step NAME LIMIT_SECONDS CMD...: run CMD, its output shown and kept in WORK/NAME.out, bounded by LIMIT; the status and
# the seconds it took go to WORK/steps.tsv.
# `timeout` runs CMD in a process group of its own, which a Ctrl-C on this script does not reach, and bash runs this
# script's traps only once a foreground command has ended: so CMD runs in the background, this script waits for it
# (a trapped signal ends that wait at once) and stop_step() passes INT or TERM on to it by timeout's PID, and CMD
# writes to its file, never to a pipe whose reader a Ctrl-C could end (SIGPIPE would end CMD without its cleanup).
STEP_PID=
: >"$WORK/steps.tsv"
step() {
	local name=$1 limit=$2 t0 rc=0 show
	shift 2
	tb_info "step $name: $*"
	t0=$(date +%s)
	: >"$WORK/$name.out"
	timeout --kill-after=20 "$limit" "$@" </dev/null >"$WORK/$name.out" 2>&1 &
	STEP_PID=$!
	tail -n +1 -s 0.2 -f --pid="$STEP_PID" "$WORK/$name.out" &
	show=$!
	wait "$STEP_PID" || rc=$?
	STEP_PID=
	wait "$show" || true
	printf '%s\t%s\t%s\n' "$name" "$rc" $(($(date +%s) - t0)) >>"$WORK/steps.tsv"
	[ "$rc" -eq 0 ] || tb_warn "step $name failed (status $rc); the report says so and goes on"
}

# stop_step STATUS: a signal to this script: the running step gets TERM (its own exit trap cleans up; timeout sends
# SIGKILL 20 s later) and is waited for, then this script exits with STATUS (its exit trap runs).
stop_step() {
	trap '' INT TERM
	if [ -n "$STEP_PID" ]; then
		tb_warn "stopping the running step (timeout PID $STEP_PID) and waiting for its cleanup"
		kill -TERM "$STEP_PID" 2>/dev/null || true
		wait "$STEP_PID" 2>/dev/null || true
		STEP_PID=
	fi
	wait 2>/dev/null || true
	exit "$1"
}
trap 'stop_step 130' INT
trap 'stop_step 143' TERM

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
tb_info "tapbridge bench --all: steps $STEPS$([ "$QUICK" = 1 ] && echo ' (--quick)'); load average $LOAD_BEFORE"
has_step main && step main 2400 bash "$BENCH_DIR/run.sh" "${MAIN_ARGS[@]}" "${NO_INSTALL[@]+"${NO_INSTALL[@]}"}" --out "$WORK/main.json"
has_step vhost && step vhost 900 bash "$BENCH_DIR/vhost-user.sh" "${VHOST_ARGS[@]}" "${NO_INSTALL[@]+"${NO_INSTALL[@]}"}" --tsv "$WORK/vhost.tsv"
has_step tenants && step tenants 1500 bash "$BENCH_DIR/tenants.sh" "${TENANTS_ARGS[@]+"${TENANTS_ARGS[@]}"}"
has_step bonds && step bonds 600 bash "$BENCH_DIR/bond-modes.sh" "${BONDS_ARGS[@]}"
has_step mcast && step mcast 300 bash "$BENCH_DIR/mcast.sh" "${MCAST_ARGS[@]}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

ALL_WORK=$WORK ALL_OUT=$OUT ALL_QUICK=$QUICK ALL_STEPS=$STEPS ALL_LOAD_BEFORE=$LOAD_BEFORE ALL_LOAD_AFTER=$LOAD_AFTER \
	ALL_ELAPSED=$(($(date +%s) - START)) node "$BENCH_DIR/all-report.mjs"
