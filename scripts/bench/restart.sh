#!/usr/bin/env bash
# Restart benchmark of tapbridge (issue 11): the traffic gap, in ms, and the frames lost when the daemon is replaced
# under traffic. Not a test: it prints figures (targets: --takeover gap <= 50 ms and nothing flooded; SIGTERM + start
# and SIGKILL + start: every port back by itself, gap <= 1 s).
#
#   vm1 eth0 (TAP vif1.0, persist, moved) 198.18.7.1 --+
#                                                      +-- PREFIX-dom0: tapbridge xenbr0 --- peth0 ~~ veth ~~ ext eth0 198.18.7.3
#   vm2 eth0 (TAP vif2.0, persist, moved) 198.18.7.2 --+
#
# Four UDP streams at --rate packets/s (default 2000) for --seconds (default 4), sequence-numbered
# (scripts/bench/stream.py): vm1 -> vm2 and vm2 -> vm1 (TAP <-> TAP), vm1 -> ext and ext -> vm1 (TAP <-> uplink).
# One second in, the daemon is replaced. Cases, --reps times each (default 3):
#   takeover  `tapbridge daemon --takeover` next to the running daemon (fds, state and FDB handed over)
#   term      SIGTERM, then a plain start (the state file and FDB snapshot written at shutdown; the moved persistent
#             TAPs found again in the VMs' namespaces)
#   kill      SIGKILL, then a plain start (the FDB from the last periodic snapshot, fdb_snapshot_interval 1 s here)
# The VMs' TAPs are `persist: true`: a plain `kind: tap` TAP is deleted by SIGTERM (and by SIGKILL: its last fd
# closes), so only the takeover (and systemd's fd store) keep those; the takeover case works for both.
# gap = the largest interval between two consecutive arrivals after the action (worst_ms of stream.py; base = before
# it: this machine's scheduling noise), lost = sequence numbers never received, flooded = the new daemon's
# fdb.flooded after the rep (unicast with a restored FDB floods nothing). Every host has IPv6 off and permanent
# neighbour entries: no ARP, no ND, nothing but the streams.
#
# Usage (root, after `npm ci`):  bash scripts/bench/restart.sh [--reps N] [--rate PPS] [--seconds S] [--cases takeover,term,kill]
#
# Safety: namespaces tb-rst-PID-RAND-*, removed on every exit path; addresses from 198.18.0.0/15 only; nothing touches
# the root namespace's links, addresses or routes; every sender is bounded in time and rate; only PIDs this script
# started are stopped.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

REPS=3
RATE=2000
SECONDS_STREAM=4
CASES=takeover,term,kill
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--seconds) SECONDS_STREAM=$2; shift 2 ;;
	--cases) CASES=$2; shift 2 ;;
	-h | --help) sed -n '2,27p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
done
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 && $REPS -le 20 ]] || tb_die "--reps must be 1..20"
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 100 && $RATE -le 10000 ]] || tb_die "--rate must be 100..10000"
if ! [[ $SECONDS_STREAM =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk "BEGIN{exit !($SECONDS_STREAM >= 3 && $SECONDS_STREAM <= 20)}"; then
	tb_die "--seconds must be 3..20"
fi

tb_require_root
tb_require_cmds ip node timeout awk
PY=$(tb_python)
CLI="$REPO_ROOT/dist/cli/main.js"
[ -f "$CLI" ] || tb_die "$CLI is missing: run 'npm ci' (or 'npm run build') first"

PREFIX="tb-rst-$$-$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
NS_DOM0=$PREFIX-dom0 NS_EXT=$PREFIX-ext NS_VM1=$PREFIX-vm1 NS_VM2=$PREFIX-vm2
WORK=$(mktemp -d /tmp/tapbridge-restart-XXXXXX)
SOCK=$WORK/tapbridge.sock
DAEMON_PID=

tb_trap_cleanup "$WORK"

# shellcheck disable=SC2034 # read indirectly as ${!ip} and ${!mac}
IP_VM1=198.18.7.1 IP_VM2=198.18.7.2 IP_EXT=198.18.7.3
# shellcheck disable=SC2034
MAC_VM1=02:00:00:00:07:01 MAC_VM2=02:00:00:00:07:02 MAC_EXT=02:00:00:00:07:03

cp "$BENCH_DIR/stream.py" "$WORK/stream.py"
cli() { node "$CLI" "$@" --socket "$SOCK"; }

# start_daemon LOG [--takeover]: a daemon in dom0; sets DAEMON_PID
start_daemon() {
	local log=$1
	shift
	tb_bg "$NS_DOM0" "$log" node "$CLI" daemon --config "$WORK/tapbridge.yaml" "$@"
	DAEMON_PID=$TB_LAST_PID
}

# wait_ready LOG PID: until the daemon logged "daemon ready" (a socket file may be a stale one after SIGKILL)
wait_ready() {
	local log=$1 pid=$2 i
	for ((i = 0; i < 200; i++)); do
		grep -q '"msg":"daemon ready"' "$log" 2>/dev/null && return 0
		tb_alive "$pid" || break
		sleep 0.05
	done
	cat "$log" >&2
	tb_die "daemon $pid not ready"
}

# wait_exit PID: until it is gone (bounded)
wait_exit() {
	local i
	for ((i = 0; i < 400; i++)); do
		tb_alive "$1" || { wait "$1" 2>/dev/null || true; return 0; }
		[ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ] && { wait "$1" 2>/dev/null || true; return 0; }
		sleep 0.05
	done
	tb_die "PID $1 did not exit"
}

tb_info "topology $PREFIX-{dom0,ext,vm1,vm2}"
for ns in "$NS_DOM0" "$NS_EXT" "$NS_VM1" "$NS_VM2"; do
	tb_ns_create "$ns"
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null
done
ip -n "$NS_DOM0" link add peth0 type veth peer name eth0 netns "$NS_EXT"
ip -n "$NS_DOM0" link set peth0 up
ip -n "$NS_EXT" link set eth0 address "$MAC_EXT"
ip -n "$NS_EXT" addr add "$IP_EXT/24" dev eth0
ip -n "$NS_EXT" link set eth0 up

cat >"$WORK/tapbridge.yaml" <<EOF
control_socket: $SOCK
state_dir: $WORK/state
fdb_snapshot_interval: 1
bridges:
  - name: xenbr0
    uplink: { interface: peth0 }
    ports: [ { name: vif1.0, persist: true }, { name: vif2.0, persist: true } ]
EOF
start_daemon "$WORK/daemon-0.log"
wait_ready "$WORK/daemon-0.log" "$DAEMON_PID"
for i in 1 2; do
	vm=$PREFIX-vm$i ip=IP_VM$i mac=MAC_VM$i
	tb_wait_link "$NS_DOM0" "vif$i.0" 10 || tb_die "no vif$i.0"
	ip -n "$NS_DOM0" link set "vif$i.0" netns "$vm"
	ip -n "$vm" link set "vif$i.0" name eth0
	ip -n "$vm" link set eth0 address "${!mac}"
	ip -n "$vm" addr add "${!ip}/24" dev eth0
	ip -n "$vm" link set eth0 up
done
for a in VM1 VM2 EXT; do
	for b in VM1 VM2 EXT; do
		[ "$a" = "$b" ] && continue
		ns=NS_$a ip=IP_$b mac=MAC_$b
		ip -n "${!ns}" neigh replace "${!ip}" lladdr "${!mac}" dev eth0 nud permanent
	done
done
# one ping each way teaches the bridge every MAC
for vm in "$NS_VM1" "$NS_VM2"; do
	tb_nsexec "$vm" ping -n -q -c 3 -i 0.2 -W 1 "$IP_EXT" >/dev/null || tb_die "$vm cannot reach ext"
done
tb_nsexec "$NS_VM1" ping -n -q -c 3 -i 0.2 -W 1 "$IP_VM2" >/dev/null || tb_die "vm1 cannot reach vm2"
sleep 1.5 # a periodic FDB snapshot (fdb_snapshot_interval 1) for the kill case

RESULTS=$WORK/results.txt
: >"$RESULTS"
FLOWS="vm1:vm2 vm2:vm1 vm1:ext ext:vm1"

# rep CASE N: four streams, the daemon replaced one second in; appends "CASE FLOW gap base lost flooded" lines
rep() {
	local case=$1 n=$2 recv_s log cut old flow src dst port k flooded
	recv_s=$(awk "BEGIN{print $SECONDS_STREAM + 4}")
	local -a rpids=() spids=()
	k=0
	for flow in $FLOWS; do
		src=${flow%%:*} dst=${flow##*:} port=$((42000 + k))
		local dns=NS_${dst^^} dip=IP_${dst^^}
		tb_bg "${!dns}" "$WORK/r$k.out" "$PY" "$WORK/stream.py" recv "${!dip}" "$port" "$recv_s" "$WORK/r$k.json"
		rpids+=("$TB_LAST_PID")
		k=$((k + 1))
	done
	for ((k = 0; k < 4; k++)); do
		for ((i = 0; i < 50; i++)); do grep -q ready "$WORK/r$k.out" 2>/dev/null && break; sleep 0.05; done
	done
	k=0
	for flow in $FLOWS; do
		src=${flow%%:*} dst=${flow##*:} port=$((42000 + k))
		local sns=NS_${src^^} dip=IP_${dst^^}
		tb_bg "${!sns}" "$WORK/s$k.out" timeout 30 "$PY" "$WORK/stream.py" send "${!dip}" "$port" "$RATE" "$SECONDS_STREAM"
		spids+=("$TB_LAST_PID")
		k=$((k + 1))
	done
	sleep 1
	old=$DAEMON_PID
	log="$WORK/daemon-$case-$n.log"
	cut=$(date +%s.%N)
	case $case in
	takeover)
		start_daemon "$log" --takeover
		wait_exit "$old"
		;;
	term)
		kill -TERM "$old"
		wait_exit "$old"
		start_daemon "$log"
		;;
	kill)
		kill -KILL "$old"
		wait_exit "$old"
		start_daemon "$log"
		;;
	esac
	wait_ready "$log" "$DAEMON_PID"
	# senders and receivers end by themselves (bounded by --seconds and timeout)
	for p in "${spids[@]}" "${rpids[@]}"; do wait "$p" 2>/dev/null || true; done
	flooded=$(cli stats -j | "$PY" -c 'import json, sys; print(sum(b["fdb"]["flooded"] for b in json.load(sys.stdin)))')
	k=0
	for flow in $FLOWS; do
		local sent j
		sent=$(awk "BEGIN{print int($RATE * $SECONDS_STREAM)}")
		j=$("$PY" "$WORK/stream.py" analyze "$WORK/r$k.json" "$cut" "$sent")
		"$PY" -c 'import json, sys
j = json.loads(sys.argv[1]); print(sys.argv[2], sys.argv[3], j["worst_ms"], j["base_ms"], j["lost"], sys.argv[4])' "$j" "$case" "$flow" "$flooded" >>"$RESULTS"
		k=$((k + 1))
	done
	printf '  %-9s rep %d: %s\n' "$case" "$n" "$(grep "^$case " "$RESULTS" | tail -4 | awk '{printf "%s gap %s ms lost %s; ", $2, $3, $5} END {printf "flooded %s", $6}')"
}

tb_info "streams of $RATE packets/s for ${SECONDS_STREAM}s, daemon replaced 1 s in; $REPS reps of: ${CASES//,/ }"
for ((n = 1; n <= REPS; n++)); do
	for c in ${CASES//,/ }; do
		case $c in
		takeover | term | kill) rep "$c" "$n" ;;
		*) tb_die "unknown case $c (takeover, term, kill)" ;;
		esac
	done
done

tb_info "summary over $REPS reps: gap = largest inter-arrival gap after the action (median / max over reps and flows)"
printf '%-9s %-8s %12s %10s %10s %10s %9s\n' case flow gap_med_ms gap_max_ms base_ms lost_med lost_max
for c in ${CASES//,/ }; do
	for flow in $FLOWS; do
		grep "^$c $flow " "$RESULTS" | "$PY" -c 'import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
g = sorted(float(r[2]) for r in rows); b = max(float(r[3]) for r in rows); l = sorted(int(r[4]) for r in rows)
print("%-9s %-8s %12.1f %10.1f %10.1f %10d %9d" % (rows[0][0], rows[0][1], statistics.median(g), g[-1], b, statistics.median(l), l[-1]))'
	done
	printf '%-9s flooded after the restart (per rep): %s\n' "$c" "$(grep "^$c " "$RESULTS" | awk 'NR % 4 == 1 {print $6}' | tr '\n' ' ')"
done
