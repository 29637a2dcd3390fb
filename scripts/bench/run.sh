#!/usr/bin/env bash
# tapbridge benchmark suite: the same two-host namespace topology built around each implementation in turn, in one run.
# Prints one table with medians and ratios and writes scripts/bench/results/<date>.json. Documented in README.md here.
#
# Path "tap" (TAP vif <-> TAP vif):
#
#   +---- PREFIX-a ----+                                               +---- PREFIX-b ----+
#   | eth0 198.18.0.1  |                                               | eth0 198.18.0.2  |
#   | 02:00:00:00:00:0a|                                               | 02:00:00:00:00:0b|
#   +--------|---------+                                               +--------|---------+
#            | TAP (made as vifa in PREFIX-br, moved + renamed)                 | TAP (vifb)
#   +--------|-------------------------------------------------------------------|---------+
#   |        fd  [ tapbridge daemon | vde_switch -t vifa -t vifb ]               fd        |
#   |                                   PREFIX-br                                           |
#   +---------------------------------------------------------------------------------------+
#
# Path "uplink" (TAP vif <-> AF_PACKET uplink): b hangs off a veth pair instead; the bridge end peth0 stays in PREFIX-br:
#
#   a ---TAP vifa--- [ tapbridge: uplink peth0 (AF_PACKET) | vde_switch -t vifa + vde_pcapplug peth0, only with --vde-pcapplug ] ---veth--- b
#
# Path "uplink-recvmsg" (tapbridge only): the uplink path with `packet_mmap: false`, the AF_PACKET socket without
# PACKET_MMAP rings (one recvmsg / sendmmsg entry per frame), so rings on and off are compared in one run.
#
# Open vSwitch userspace datapath (--impl ovs): ovsdb-server and ovs-vswitchd started by hand inside PREFIX-br (this
# kernel has no openvswitch module, so no ovs-ctl), db, sockets, pid files and logs in the run's temp dir; bridge br0
# with datapath_type=netdev and other_config:userspace-tso-enable=true. Path tap: ports vifa, vifb of type=tap (OVS
# creates the TAPs, moved into a and b like the others). Path uplink: vifa (tap) and peth0 (type=system: on a netdev
# bridge, an AF_PACKET socket on the veth). Skipped with a reason when OVS is missing or fails to start.
#
# Kernel bridge (for comparison; "veth everywhere"): br0 in PREFIX-br, a and b each on a veth pair (vifa, vifb are the
# bridge ports). Both paths are the same topology there, so it is measured once per rep and is the denominator of both.
#
# Metrics per implementation, path and rep (a -> b unless said):
#   ping     RTT avg over `ping -c N -i 0.01` (ms); ping_p50_ms, ping_p99_ms from the per-reply RTTs; ping_cpu_us: the bridge's CPU per frame in that ping-pong (one frame
#            per wakeup), from /proc/PID/task/*/schedstat, less the idle baseline measured over 1 s before
#            (idle_cpu_pct)
#   tcp1     iperf3 -t T, 1 stream (Gbit/s, receiver side)      tcp2  the same with -P 2
#            tcpN_cpu_pct: the bridge's CPU (all threads, % of one core) during that run; tcpN_cpu_pct_per_gbps: per Gbit/s
#   pps      60-byte frames/s counted at b's eth0 (rx_packets delta over a window inside the flood) from the C sendmmsg
#            generator flood.c in a (compiled with cc at run time), dst = b's MAC (known unicast), ethertype 0x88b5
#   offered  the generator's own send rate during that flood
#   cpu_us   bridge CPU per forwarded frame: (utime+stime) delta of the bridge process(es) from /proc/PID/stat over the
#            window / rx delta at b (vde uplink: vde_switch + vde_pcapplug); the user and system parts separately
#   rss_mb   VmRSS of the bridge process(es) after the flood (MB)
#   load_ping  ping -i 0.01 (--load-ping-count replies, default 500) while one iperf3 TCP stream runs a -> b through
#            the same bridge: load_ping_p50_ms, load_ping_p99_ms, load_ping_ms (avg), load_ping_loss_pct, and the
#            stream's own rate load_tcp_gbps
# Then, once per run (tapbridge, tap path): a soak with fdb_max 131072: the generator cycles 100k source MACs for
# --soak seconds, RSS sampled every 2 s, FDB entries read with `tapbridge stats -j`.
#
# Usage (root, after `npm ci`):  bash scripts/bench/run.sh [options]      (also: npm run bench -- [options])
#   --reps N            reps per measurement, medians reported (default 3)
#   --quick             1 rep, short durations (tcp 2 s, flood window 2 s, 50 pings, soak 5 s)
#   --tcp-seconds S     iperf3 -t (default 5)
#   --flood-seconds S   measurement window of the 60-byte flood (default 5; the generator runs S + 2 s)
#   --ping-count N      pings per RTT measurement (default 200)
#   --soak S            seconds of the 100k-MAC soak (default 30; 0 = skip; the issue's target is 600)
#   --load-ping-count N pings of the latency-under-load measurement (default 500; --quick 100)
#   --impl LIST         comma-separated subset of tapbridge,kernel,vde,ovs (default all)
#   --no-install        do not apt-get install vde2 / openvswitch-switch / gnuplot-nox when missing (the
#                       implementation, or the plot, is then skipped, and says so)
#   --vde-pcapplug      also try vde_switch's uplink path through vde_pcapplug (skipped by default: no connectivity here)
#   --out FILE          JSON output (default scripts/bench/results/<UTC date>.json)
#   --busy-poll-us N    run the tapbridge daemon with `busy_poll_us: N` (0..1000000; default: the daemon's default);
#                       in the JSON's settings and the header line, so runs with and without can be compared
#   --direct-poll on|off  run the tapbridge daemon with `direct_poll: true|false` (default: the daemon's default, on);
#                       in the JSON's settings and the header line like --busy-poll-us
#   --data-workers N    run the tapbridge daemon with `data_workers: N` (threads that forward, the main thread included;
#                        default: the daemon's default, 1)
#   --scaling           instead of the comparison: scaling curves (see scaling.sh) for tapbridge, kernel, vde, ovs
#                       (--impl applies): forwarded kpps and CPU per frame with 2, 8 and 32 TAP ports, unicast pairs
#                       and with 10% broadcast, and ping p50/p99 with 0, 1 and 2 busy TCP streams; JSON + a gnuplot PNG
#                       next to it (scripts/bench/results/scaling-<UTC date>.{json,png})
#   --scaling-ports L   port counts of --scaling (default 2,8,32; even numbers 2..64)
#   --scaling-rate K    total offered kpps of --scaling, from one generator process (default 800)
#   --all [OPTIONS]     instead of the comparison alone: every comparison docs/performance.md shows in one run (this one,
#                       vhost-user.sh, tenants.sh, bond-modes.sh, mcast.sh) with one JSON and the docs' tables: all.sh;
#                       must be the first option, the rest are all.sh's (--quick, --steps, --no-install, --out)
#   --profile DIR       instead of the comparison: tapbridge only, one 60-byte flood per path under `perf record -g`
#                       (daemon run with --perf-basic-prof so JIT frames have names), one under `perf stat`, and one
#                       under `strace -c -f` (syscalls per frame; strace itself slows the daemon down), and one iperf3
#                       stream under `perf record` with the daemon's CPU utilisation; reports in DIR
#
# Safety: namespaces tb-bench-PID-*, removed on every exit path; addresses from 198.18.0.0/15 only; nothing touches the
# root namespace's links, addresses or routes; every generator and client is bounded in time (and count); only PIDs this
# script started are stopped.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# --all: every comparison of docs/performance.md in one run (all.sh; its options follow)
if [ "${1:-}" = --all ]; then
	shift
	exec bash "$BENCH_DIR/all.sh" "$@"
fi
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

REPS=3
REPS_SET=0
TCP_SECONDS=5
FLOOD_SECONDS=5
PING_COUNT=200
SOAK_SECONDS=30
IMPLS=tapbridge,kernel,vde,ovs
INSTALL=1
LOAD_PING_COUNT=500
SCALING=0
SCALING_PORTS=2,8,32
SCALING_KPPS=800
BUSY_POLL_US=
DIRECT_POLL=
DATA_WORKERS=
OUT=
VDE_UPLINK=0
PROFILE_DIR=
NODE_FLAGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2 REPS_SET=1; shift ;;
	--quick) REPS=1 TCP_SECONDS=2 FLOOD_SECONDS=2 PING_COUNT=50 SOAK_SECONDS=5 LOAD_PING_COUNT=100 ;;
	--load-ping-count) LOAD_PING_COUNT=$2; shift ;;
	--scaling) SCALING=1 ;;
	--scaling-ports) SCALING_PORTS=$2; shift ;;
	--scaling-rate) SCALING_KPPS=$2; shift ;;
	--busy-poll-us) BUSY_POLL_US=$2; shift ;;
	--direct-poll) DIRECT_POLL=$2; shift ;;
	--data-workers) DATA_WORKERS=$2; shift ;;
	--tcp-seconds) TCP_SECONDS=$2; shift ;;
	--flood-seconds) FLOOD_SECONDS=$2; shift ;;
	--ping-count) PING_COUNT=$2; shift ;;
	--soak) SOAK_SECONDS=$2; shift ;;
	--impl) IMPLS=$2; shift ;;
	--no-install) INSTALL=0 ;;
	--vde-pcapplug) VDE_UPLINK=1 ;;
	--profile) PROFILE_DIR=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[[ $REPS =~ ^[1-9][0-9]?$ ]] || tb_die "--reps takes 1..99"
[ "$SCALING" = 1 ] && [ "$REPS_SET" = 0 ] && REPS=1 # --scaling: one rep unless asked
[[ $TCP_SECONDS =~ ^[1-9][0-9]?$ ]] || tb_die "--tcp-seconds takes 1..99"
[[ $FLOOD_SECONDS =~ ^[1-9][0-9]?$ ]] || tb_die "--flood-seconds takes 1..99"
[[ $PING_COUNT =~ ^[1-9][0-9]{0,3}$ ]] || tb_die "--ping-count takes 1..9999"
[[ $SOAK_SECONDS =~ ^[0-9]{1,4}$ ]] && [ "$SOAK_SECONDS" -le 3600 ] || tb_die "--soak takes 0..3600"
[[ $LOAD_PING_COUNT =~ ^[1-9][0-9]{0,3}$ ]] || tb_die "--load-ping-count takes 1..9999"
[[ $SCALING_PORTS =~ ^[0-9]+(,[0-9]+)*$ ]] || tb_die "--scaling-ports takes a comma-separated list of even numbers 2..64"
for n in ${SCALING_PORTS//,/ }; do
	[ "$n" -ge 2 ] && [ "$n" -le 64 ] && [ $((n % 2)) -eq 0 ] || tb_die "--scaling-ports: $n is not an even number 2..64"
done
[[ $SCALING_KPPS =~ ^[1-9][0-9]{0,4}$ ]] || tb_die "--scaling-rate takes 1..99999 (kpps)"
if [ -n "$BUSY_POLL_US" ]; then
	[[ $BUSY_POLL_US =~ ^[0-9]{1,7}$ ]] && [ "$BUSY_POLL_US" -le 1000000 ] || tb_die "--busy-poll-us takes 0..1000000"
fi
case $DIRECT_POLL in '') ;; on) DIRECT_POLL=true ;; off) DIRECT_POLL=false ;; *) tb_die "--direct-poll takes on or off" ;; esac
case $DATA_WORKERS in '') ;; *[!0-9]*) tb_die "--data-workers takes an integer 1..64" ;; *) { [ "$DATA_WORKERS" -ge 1 ] && [ "$DATA_WORKERS" -le 64 ]; } || tb_die "--data-workers takes an integer 1..64" ;; esac
for impl in ${IMPLS//,/ }; do
	case $impl in tapbridge | kernel | vde | ovs) ;; *) tb_die "--impl: unknown implementation '$impl' (tapbridge,kernel,vde,ovs)" ;; esac
done

tb_require_root
tb_require_cmds ip ping ss iperf3 timeout node cc
NODE_BIN=$(command -v node)
TB_MAIN=$REPO_ROOT/dist/cli/main.js
CLK_TCK=$(getconf CLK_TCK)

has_impl() { [[ ",$IMPLS," == *",$1,"* ]]; }

PREFIX=tb-bench-$$
NS_BR=$PREFIX-br
NS_A=$PREFIX-a
NS_B=$PREFIX-b
IP_A=198.18.0.1
IP_B=198.18.0.2
MAC_A=02:00:00:00:00:0a
MAC_B=02:00:00:00:00:0b
SOAK_SRC=02:00:01:00:00:00
SOAK_MACS=100000
WORK=
BR_PIDS=()     # PIDs whose CPU and RSS are the bridge's (empty for the kernel bridge)
SKIPPED=()     # "impl: reason" lines for the report

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	tb_cleanup_all
	[ -n "$WORK" ] && rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d /tmp/tb-bench.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# ----------------------------------------------------------------------------------------------------------- prerequisites

if has_impl tapbridge; then
	if [ ! -f "$TB_MAIN" ] || [ ! -f "$REPO_ROOT/build/Release/tapbridge_native.node" ]; then
		tb_die "$TB_MAIN or the native addon is missing: run 'npm ci' first"
	fi
fi
# install_on_demand PACKAGE COMMAND: apt-get install PACKAGE when COMMAND is missing (unless --no-install); status 1 when
# COMMAND is still missing afterwards.
APT_UPDATED=0
install_on_demand() {
	local pkg=$1 cmd=$2
	command -v "$cmd" >/dev/null 2>&1 && return 0
	if [ "$INSTALL" = 1 ] && command -v apt-get >/dev/null 2>&1; then
		tb_info "installing $pkg (apt-get)"
		if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >"$WORK/apt.log" 2>&1 && APT_UPDATED=1; fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >>"$WORK/apt.log" 2>&1 ||
			tb_warn "apt-get install $pkg failed: $(tail -n 3 "$WORK/apt.log" | tr '\n' ' ')"
	fi
	command -v "$cmd" >/dev/null 2>&1
}
if has_impl vde && ! install_on_demand vde2 vde_switch; then
	SKIPPED+=("vde: SKIPPED, vde_switch not installed (Debian package vde2)")
	tb_warn "SKIPPING vde_switch: not installed (apt-get install vde2)"
	IMPLS=${IMPLS//vde/}
fi
if has_impl ovs; then
	if ! install_on_demand openvswitch-switch ovs-vswitchd || ! tb_ovs_have; then
		SKIPPED+=("ovs: SKIPPED, Open vSwitch not installed (Debian package openvswitch-switch: ovsdb-server, ovs-vswitchd, ovs-vsctl, $TB_OVS_SCHEMA)")
		tb_warn "SKIPPING Open vSwitch: not installed (apt-get install openvswitch-switch)"
		IMPLS=${IMPLS//ovs/}
	fi
fi
# vde_switch has no AF_PACKET port; its nearest equivalent, vde_pcapplug (libpcap on peth0), gives no connectivity here:
# a -> b frames arrive, b -> a frames never reach a (measured: ping 100% loss; libpcap also captures the frames it
# injects, so a's MAC is learned on the pcapplug port). So the path is skipped unless asked for with --vde-pcapplug.
if has_impl vde && [ "$SCALING" = 0 ]; then
	if [ "$VDE_UPLINK" = 0 ]; then
		SKIPPED+=("vde_switch TAP<->uplink path: SKIPPED (no AF_PACKET port; vde_pcapplug gives no b -> a connectivity here; try --vde-pcapplug)")
	elif ! command -v vde_pcapplug >/dev/null 2>&1; then
		VDE_UPLINK=0
		SKIPPED+=("vde_switch TAP<->uplink path: SKIPPED, vde_pcapplug missing")
	fi
fi

cc -O2 -Wall -o "$WORK/flood" "$BENCH_DIR/flood.c" || tb_die "cannot compile $BENCH_DIR/flood.c"
if [ "$SCALING" = 1 ]; then
	cc -O2 -Wall -o "$WORK/nsstat" "$BENCH_DIR/nsstat.c" || tb_die "cannot compile $BENCH_DIR/nsstat.c"
fi

# --------------------------------------------------------------------------------------------------------------- topology

# host_up NS: silence IPv6 (no MLD/RS frames in the counters), loopback up.
host_ns() {
	tb_ns_create "$1"
	ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
}

# host_addr NS MAC IP: address eth0 of a host namespace and bring it up.
host_addr() {
	ip -n "$1" link set dev eth0 address "$2"
	ip -n "$1" addr add "$3/24" dev eth0
	ip -n "$1" link set dev eth0 up
}

# move_tap IFNAME NS: a TAP made in PREFIX-br moves into a host namespace and becomes its eth0.
move_tap() { tb_move_link "$NS_BR" "$1" "$2"; }

# veth_to NS IFNAME: a veth pair IFNAME (in PREFIX-br, up) <-> eth0 (in NS).
veth_to() {
	ip -n "$NS_BR" link add "$2" type veth peer name eth0 netns "$1"
	ip -n "$NS_BR" link set dev "$2" up
}

topo_up() { # topo_up IMPL PATH
	local impl=$1 path=$2
	BR_PIDS=()
	host_ns "$NS_BR"
	host_ns "$NS_A"
	host_ns "$NS_B"
	ip netns exec "$NS_BR" sysctl -qw net.ipv4.ip_forward=0 >/dev/null 2>&1 || true
	case $impl in
	kernel)
		ip -n "$NS_BR" link add br0 type bridge stp_state 0
		ip -n "$NS_BR" link set dev br0 up
		veth_to "$NS_A" vifa
		veth_to "$NS_B" vifb
		ip -n "$NS_BR" link set dev vifa master br0
		ip -n "$NS_BR" link set dev vifb master br0
		;;
	tapbridge)
		local fdb_max=${TB_FDB_MAX:-8192}
		[ "${path%-recvmsg}" = uplink ] && veth_to "$NS_B" peth0
		{
			echo "control_socket: $WORK/tb.sock"
			[ "$path" = uplink-recvmsg ] && echo "packet_mmap: false"
			echo "state_dir: $WORK"
			[ -n "$BUSY_POLL_US" ] && echo "busy_poll_us: $BUSY_POLL_US"
			[ -n "$DIRECT_POLL" ] && echo "direct_poll: $DIRECT_POLL"
			[ -n "$DATA_WORKERS" ] && echo "data_workers: $DATA_WORKERS"
			echo "bridges:"
			echo "  - name: br0"
			echo "    fdb_max: $fdb_max"
			# IGMP/MLD snooping keeps a bridge on the main thread: off when workers are asked for
			[ -n "$DATA_WORKERS" ] && echo "    multicast_snooping: false"
			[ "${path%-recvmsg}" = uplink ] && echo "    uplink: { interface: peth0 }"
			echo "    ports:"
			echo "      - { name: vifa }"
			[ "$path" = tap ] && echo "      - { name: vifb }"
		} >"$WORK/tb.yaml"
		tb_bg "$NS_BR" "$WORK/daemon-$path.log" "$NODE_BIN" "${NODE_FLAGS[@]+"${NODE_FLAGS[@]}"}" "$TB_MAIN" daemon --config "$WORK/tb.yaml"
		BR_PIDS=("$TB_LAST_PID")
		local rc=0
		tb_wait_socket "$WORK/tb.sock" "$TB_LAST_PID" 20 || rc=$?
		if [ "$rc" -ne 0 ]; then
			tail -n 20 "$WORK/daemon-$path.log" >&2 || true
			tb_die "tapbridge daemon did not start"
		fi
		move_tap vifa "$NS_A"
		[ "$path" = tap ] && move_tap vifb "$NS_B"
		;;
	vde)
		local taps=(-t vifa)
		[ "$path" = tap ] && taps+=(-t vifb)
		[ "$path" = uplink ] && veth_to "$NS_B" peth0
		ip netns exec "$NS_BR" vde_switch -d -p "$WORK/vde.pid" -s "$WORK/vde.ctl" -M "$WORK/vde.mgmt" "${taps[@]}" \
			>"$WORK/vde-$path.log" 2>&1 </dev/null
		local pid
		pid=$(tb_wait_pidfile "$WORK/vde.pid") || tb_die "vde_switch wrote no pidfile"
		TB_PIDS+=("$pid")
		BR_PIDS=("$pid")
		if [ "$path" = uplink ]; then
			ip netns exec "$NS_BR" vde_pcapplug -d -P "$WORK/pcapplug.pid" -s "$WORK/vde.ctl" peth0 \
				>"$WORK/pcapplug.log" 2>&1 </dev/null
			pid=$(tb_wait_pidfile "$WORK/pcapplug.pid") || tb_die "vde_pcapplug wrote no pidfile"
			TB_PIDS+=("$pid")
			BR_PIDS+=("$pid")
		fi
		move_tap vifa "$NS_A"
		[ "$path" = tap ] && move_tap vifb "$NS_B"
		;;
	ovs)
		[ "$path" = uplink ] && veth_to "$NS_B" peth0
		local ports=(vifa:tap)
		if [ "$path" = tap ]; then ports+=(vifb:tap); else ports+=(peth0:system); fi
		ovs_up "${ports[@]}" || return 2
		move_tap vifa "$NS_A"
		[ "$path" = tap ] && move_tap vifb "$NS_B"
		;;
	esac
	host_addr "$NS_A" "$MAC_A" "$IP_A"
	host_addr "$NS_B" "$MAC_B" "$IP_B"
	# both MACs learned, ARP resolved, and the path works at all
	local k
	for ((k = 0; k < 20; k++)); do
		tb_nsexec "$NS_A" ping -q -c 1 -W 1 "$IP_B" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	tb_warn "$impl/$path: no ping a -> b after set-up"
	return 1
}

# ovs_up NAME:TYPE...: Open vSwitch inside PREFIX-br (tb_ovs_up: everything in $WORK/ovs, never the system's
# /etc/openvswitch or /var/run/openvswitch); bridge br0 (datapath_type=netdev, userspace TSO) with the given ports
# (type tap: OVS creates the TAP; type system: an existing netdev, AF_PACKET on a netdev bridge). Both PIDs go to
# TB_PIDS (stopped on every exit path), ovs-vswitchd's to BR_PIDS. On failure: status 1, OVS_ERR says why.
OVS_ERR=
ovs_up() {
	local d=$WORK/ovs spec name type
	OVS_ERR=
	if ! tb_ovs_up "$NS_BR" "$d" ovs-vswitchd userspace-tso-enable=true; then
		OVS_ERR=$TB_OVS_ERR
		return 1
	fi
	BR_PIDS=("$TB_OVS_PID")
	local cmd=(add-br br0 -- set bridge br0 datapath_type=netdev) names=()
	for spec in "$@"; do
		name=${spec%%:*} type=${spec#*:}
		names+=("$name")
		cmd+=(-- add-port br0 "$name")
		[ "$type" = tap ] && cmd+=(-- set interface "$name" type=tap)
	done
	if ! tb_ovs_vsctl "$d" "${cmd[@]}" >>"$d/vsctl.log" 2>&1; then
		OVS_ERR="ovs-vsctl add-br/add-port failed: $(tail -n 2 "$d/vsctl.log" | tr '\n' ' ')"
		return 1
	fi
	tb_ovs_port_error "$d" "${names[@]}" || { OVS_ERR=$TB_OVS_ERR; return 1; }
	return 0
}

topo_down() {
	tb_cleanup_all
	rm -f "$WORK/tb.sock" "$WORK/vde.pid" "$WORK/pcapplug.pid"
	rm -rf "$WORK/vde.ctl" "$WORK/vde.mgmt"
	BR_PIDS=()
}

# ------------------------------------------------------------------------------------------------------------ measuring

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"; } # impl path rep metric value

# cpu_ticks: "utime stime" summed over BR_PIDS (clock ticks), from /proc/PID/stat fields 14 and 15.
cpu_ticks() {
	local pid u=0 s=0 rest
	for pid in "${BR_PIDS[@]}"; do
		rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${rest##*) }
		# shellcheck disable=SC2086
		set -- $rest
		u=$((u + ${12})) s=$((s + ${13}))
	done
	echo "$u $s"
}

# rss_kb [FIELD]: VmRSS (or FIELD, e.g. VmHWM) summed over BR_PIDS, kB.
rss_kb() {
	local pid total=0 v field=${1:-VmRSS}
	for pid in "${BR_PIDS[@]}"; do
		v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

netstat_of() { # netstat_of NS COUNTER
	ip netns exec "$1" cat "/sys/class/net/eth0/statistics/$2"
}

cpu_ns() { tb_cpu_ns "${BR_PIDS[@]}"; } # on-CPU ns of every thread of the bridge

# m_ping IMPL PATH REP: RTT avg a -> b; and the bridge's CPU per frame in ping-pong (2 frames per ping, one per wakeup).
m_ping() {
	local out avg c0=0 c1=0 i0=0 i1=0 t0 t1 ti0 ti1
	if [ "${#BR_PIDS[@]}" -gt 0 ]; then
		# the idle baseline (timers, ageing sweep, GC threads) over 1 s, subtracted from the ping window below
		ti0=$EPOCHREALTIME; i0=$(cpu_ns); sleep 1; ti1=$EPOCHREALTIME; i1=$(cpu_ns)
		t0=$EPOCHREALTIME; c0=$(cpu_ns)
	fi
	out=$(tb_nsexec "$NS_A" ping -c "$PING_COUNT" -i 0.01 -W 1 "$IP_B" 2>&1) || true
	[ "${#BR_PIDS[@]}" -gt 0 ] && { c1=$(cpu_ns); t1=$EPOCHREALTIME; }
	avg=$(sed -n 's#^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*#\1#p' <<<"$out")
	[ -n "$avg" ] || return 0
	record "$1" "$2" "$3" ping_ms "$avg"
	local p50 p99
	read -r p50 p99 _ <<<"$(rtt_percentiles <<<"$out")"
	if [ -n "$p50" ]; then
		record "$1" "$2" "$3" ping_p50_ms "$p50"
		record "$1" "$2" "$3" ping_p99_ms "$p99"
	fi
	if [ "${#BR_PIDS[@]}" -gt 0 ]; then
		record "$1" "$2" "$3" idle_cpu_pct "$(awk -v c=$((i1 - i0)) -v a="$ti0" -v b="$ti1" 'BEGIN { printf "%.2f", 100 * c / 1e9 / (b - a) }')"
		record "$1" "$2" "$3" ping_cpu_us "$(awk -v c=$((c1 - c0)) -v i=$((i1 - i0)) -v ia="$ti0" -v ib="$ti1" -v a="$t0" -v b="$t1" \
			-v n="$PING_COUNT" 'BEGIN { x = (c - i / (ib - ia) * (b - a)) / 1000 / (2 * n); printf "%.1f", (x < 0 ? 0 : x) }')"
	fi
}

# rtt_percentiles < PING_OUTPUT: "p50 p99 n" (ms) over the per-reply RTTs (`time=X ms` lines), nearest-rank; nothing when
# there was no reply. Values are range-checked (a number, 0..60000 ms) before they count.
rtt_percentiles() {
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' | awk '$1 ~ /^[0-9]+(\.[0-9]+)?$/ && $1 < 60000' | sort -g |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) exit
			i50 = int(0.50 * NR); if (i50 < 0.50 * NR) i50++
			i99 = int(0.99 * NR); if (i99 < 0.99 * NR) i99++
			printf "%.3f %.3f %d\n", v[i50], v[i99], NR }'
}

# m_load_ping IMPL PATH REP STREAMS COUNT [PREFIX]: ping -i 0.01 -c COUNT a -> b while STREAMS iperf3 TCP streams run
# a -> b through the same bridge (0 streams: idle). Records PREFIX_p50_ms, PREFIX_p99_ms, PREFIX_ms (avg),
# PREFIX_loss_pct, and with streams PREFIX_tcp_gbps (PREFIX default load_ping; the stream rate as load_tcp_gbps).
m_load_ping() {
	local impl=$1 path=$2 rep=$3 streams=$4 count=$5 pre=${6:-load_ping} srv='' cli='' out avg loss p50 p99 secs
	secs=$((count / 100 + 4)) # the pings take count * 10 ms plus their RTTs; the stream starts 1 s before, ends after
	if [ "$streams" -gt 0 ]; then
		iperf_server 5202 $((secs + 20)) "$WORK/load-srv.log"
		srv=$TB_LAST_PID
		tb_bg "$NS_A" "$WORK/load-cli.json" timeout $((secs + 15)) iperf3 -c "$IP_B" -p 5202 -t "$secs" -P "$streams" -J
		cli=$TB_LAST_PID
		sleep 1
	fi
	out=$(tb_nsexec "$NS_A" ping -c "$count" -i 0.01 -W 1 "$IP_B" 2>&1) || true
	if [ -n "$cli" ]; then
		wait "$cli" 2>/dev/null || true
		tb_stop_pid "$srv" 3
		local gbps
		gbps=$(iperf_gbps "$WORK/load-cli.json" 2>/dev/null || true)
		[[ $gbps =~ ^[0-9.]+$ ]] && record "$impl" "$path" "$rep" "${pre%_ping}_tcp_gbps" "$gbps"
	fi
	loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$out")
	[ -n "$loss" ] && record "$impl" "$path" "$rep" "${pre}_loss_pct" "$loss"
	avg=$(sed -n 's#^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*#\1#p' <<<"$out")
	[ -n "$avg" ] || { tb_warn "$impl/$path: no ping reply with $streams busy stream(s)"; return 0; }
	record "$impl" "$path" "$rep" "${pre}_ms" "$avg"
	read -r p50 p99 _ <<<"$(rtt_percentiles <<<"$out")"
	record "$impl" "$path" "$rep" "${pre}_p50_ms" "$p50"
	record "$impl" "$path" "$rep" "${pre}_p99_ms" "$p99"
}

# iperf_server PORT SECONDS LOG: a one-shot iperf3 server in b, bounded by SECONDS (recorded in TB_PIDS; its PID in
# TB_LAST_PID); waits until it listens.
iperf_server() {
	local k
	tb_bg "$NS_B" "$3" timeout "$2" iperf3 -s -1 -B "$IP_B" -p "$1"
	for ((k = 0; k < 50; k++)); do
		ip netns exec "$NS_B" ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
}

# iperf_gbps FILE: the receiver's Gbit/s from an iperf3 -J report.
iperf_gbps() {
	"$NODE_BIN" -e 'const e=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).end;
		const r=e.sum_received||e.sum; console.log((r.bits_per_second/1e9).toFixed(3))' "$1"
}

m_iperf() { # m_iperf STREAMS: Gbit/s at the receiver; the bridge's CPU (% of one core, all threads) over the run in $WORK/iperf.cpu
	local streams=$1 out=$WORK/iperf.json srv rc=0 c0 c1 t0 t1
	iperf_server 5201 $((TCP_SECONDS + 20)) "$WORK/iperf-srv.log"
	srv=$TB_LAST_PID
	c0=$(cpu_ns); t0=$EPOCHREALTIME
	timeout $((TCP_SECONDS + 15)) ip netns exec "$NS_A" iperf3 -c "$IP_B" -p 5201 -t "$TCP_SECONDS" -P "$streams" -J \
		>"$out" 2>&1 || rc=$?
	c1=$(cpu_ns); t1=$EPOCHREALTIME
	tb_stop_pid "$srv" 3
	[ "$rc" -eq 0 ] || { tb_warn "iperf3 -P $streams failed (rc $rc): $(head -c 300 "$out")"; return 1; }
	if [ "${#BR_PIDS[@]}" -gt 0 ]; then
		awk -v c=$((c1 - c0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", 100 * c / 1e9 / (b - a) }' >"$WORK/iperf.cpu"
	else
		rm -f "$WORK/iperf.cpu"
	fi
	iperf_gbps "$out"
}

# m_flood IMPL PATH REP [NSRC]: 60-byte flood a -> b; records pps, offered, cpu_us (+ user/sys), a_drops.
m_flood() {
	local impl=$1 path=$2 rep=$3 nsrc=${4:-1} gen t0 t1 rx0 rx1 c0 c1 d0 d1
	# refresh b's FDB entry / the kernel's and vde's tables
	tb_nsexec "$NS_B" ping -q -c 2 -i 0.2 -W 1 "$IP_A" >/dev/null 2>&1 || true
	tb_bg "$NS_A" "$WORK/flood.out" timeout $((FLOOD_SECONDS + 10)) "$WORK/flood" -i eth0 -d "$MAC_B" -s "$MAC_A" \
		-t $((FLOOD_SECONDS + 2)) -c 200000000 -n "$nsrc"
	gen=$TB_LAST_PID
	sleep 1
	d0=$(netstat_of "$NS_A" tx_dropped)
	t0=$EPOCHREALTIME; rx0=$(netstat_of "$NS_B" rx_packets); c0=$(cpu_ticks); t0=$(echo "$t0 $EPOCHREALTIME" | awk '{ printf "%.6f", ($1 + $2) / 2 }')
	sleep "$FLOOD_SECONDS"
	t1=$EPOCHREALTIME; rx1=$(netstat_of "$NS_B" rx_packets); c1=$(cpu_ticks); t1=$(echo "$t1 $EPOCHREALTIME" | awk '{ printf "%.6f", ($1 + $2) / 2 }')
	d1=$(netstat_of "$NS_A" tx_dropped)
	wait "$gen" 2>/dev/null || true
	local frames=$((rx1 - rx0)) gen_pps
	gen_pps=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' "$WORK/flood.out")
	record "$impl" "$path" "$rep" pps "$(awk -v f="$frames" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", f / (b - a) }')"
	record "$impl" "$path" "$rep" offered "${gen_pps:-0}"
	# frames the generator could not hand over: dropped by a's eth0 (a TAP's ring full: the bridge did not read them)
	record "$impl" "$path" "$rep" a_drop_pps "$(awk -v d=$((d1 - d0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", d / (b - a) }')"
	if [ "${#BR_PIDS[@]}" -gt 0 ] && [ "$frames" -gt 0 ]; then
		local u0 s0 u1 s1
		read -r u0 s0 <<<"$c0"
		read -r u1 s1 <<<"$c1"
		record "$impl" "$path" "$rep" cpu_us "$(awk -v u=$((u1 - u0 + s1 - s0)) -v f="$frames" -v h="$CLK_TCK" 'BEGIN { printf "%.3f", u * 1e6 / h / f }')"
		record "$impl" "$path" "$rep" cpu_user_us "$(awk -v u=$((u1 - u0)) -v f="$frames" -v h="$CLK_TCK" 'BEGIN { printf "%.3f", u * 1e6 / h / f }')"
		record "$impl" "$path" "$rep" cpu_sys_us "$(awk -v u=$((s1 - s0)) -v f="$frames" -v h="$CLK_TCK" 'BEGIN { printf "%.3f", u * 1e6 / h / f }')"
		record "$impl" "$path" "$rep" cpu_util_pct "$(awk -v u=$((u1 - u0 + s1 - s0)) -v h="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100 * u / h / (b - a) }')"
	fi
}

measure() { # measure IMPL PATH REP
	local impl=$1 path=$2 rep=$3 v
	m_ping "$impl" "$path" "$rep"
	local n
	for n in 1 2; do
		if v=$(m_iperf "$n"); then
			record "$impl" "$path" "$rep" "tcp${n}_gbps" "$v"
			# the bridge's CPU during the stream(s), in % of one core and per Gbit/s (1 against 2 data_workers)
			if [ -s "$WORK/iperf.cpu" ]; then
				record "$impl" "$path" "$rep" "tcp${n}_cpu_pct" "$(cat "$WORK/iperf.cpu")"
				record "$impl" "$path" "$rep" "tcp${n}_cpu_pct_per_gbps" "$(awk -v c="$(cat "$WORK/iperf.cpu")" -v g="$v" 'BEGIN { if (g > 0) printf "%.2f", c / g }')"
			fi
		fi
	done
	m_load_ping "$impl" "$path" "$rep" 1 "$LOAD_PING_COUNT"
	m_flood "$impl" "$path" "$rep"
	if [ "${#BR_PIDS[@]}" -gt 0 ]; then
		record "$impl" "$path" "$rep" rss_mb "$(awk -v k="$(rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }')"
	fi
}

# soak: tapbridge, tap path, fdb_max 131072; the generator cycles SOAK_MACS source MACs.
soak() {
	local t s rss first=0 max=0 min=0 entries
	TB_FDB_MAX=131072 topo_up tapbridge tap || { topo_down; return 1; }
	record tapbridge soak 1 rss_idle_mb "$(awk -v k="$(rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }')"
	tb_bg "$NS_A" "$WORK/soak.out" timeout $((SOAK_SECONDS + 15)) "$WORK/flood" -i eth0 -d "$MAC_B" -s "$SOAK_SRC" \
		-t "$SOAK_SECONDS" -n "$SOAK_MACS"
	local gen=$TB_LAST_PID samples=()
	local rx0 rx1
	rx0=$(netstat_of "$NS_B" rx_packets)
	for ((t = 2; t <= SOAK_SECONDS; t += 2)); do
		sleep 2
		rss=$(rss_kb)
		samples+=("$rss")
	done
	wait "$gen" 2>/dev/null || true
	rx1=$(netstat_of "$NS_B" rx_packets)
	entries=$(timeout 15 "$NODE_BIN" "$TB_MAIN" stats -j --socket "$WORK/tb.sock" 2>/dev/null |
		"$NODE_BIN" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].fdb.entries))' || echo 0)
	if [ "${#samples[@]}" -gt 0 ]; then
		# the first sample is taken after 2 s, by when the 100k MACs have been learned (about 0.5 s at >= 200 kpps)
		first=${samples[0]} max=$first min=$first
		for s in "${samples[@]}"; do
			[ "$s" -gt "$max" ] && max=$s
			[ "$s" -lt "$min" ] && min=$s
		done
		record tapbridge soak 1 rss_first_mb "$(awk -v k="$first" 'BEGIN { printf "%.1f", k / 1024 }')"
		record tapbridge soak 1 rss_max_mb "$(awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }')"
		record tapbridge soak 1 rss_last_mb "$(awk -v k="${samples[-1]}" 'BEGIN { printf "%.1f", k / 1024 }')"
		record tapbridge soak 1 rss_min_mb "$(awk -v k="$min" 'BEGIN { printf "%.1f", k / 1024 }')"
		record tapbridge soak 1 rss_hwm_mb "$(awk -v k="$(rss_kb VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')"
	fi
	record tapbridge soak 1 fdb_entries "$entries"
	record tapbridge soak 1 seconds "$SOAK_SECONDS"
	record tapbridge soak 1 pps "$(awk -v f=$((rx1 - rx0)) -v s="$SOAK_SECONDS" 'BEGIN { printf "%.0f", f / s }')"
	topo_down
}

# profile_flood PATH TOOL: a 60-byte flood a -> b with TOOL attached to the daemon for the window; frames counted at b.
profile_flood() {
	local path=$1 tool=$2 pid=${BR_PIDS[0]} gen tool_pid rx0 rx1 out=$PROFILE_DIR/$1-$2
	tb_nsexec "$NS_B" ping -q -c 2 -i 0.2 -W 1 "$IP_A" >/dev/null 2>&1 || true
	tb_bg "$NS_A" "$WORK/flood.out" timeout $((FLOOD_SECONDS + 10)) "$WORK/flood" -i eth0 -d "$MAC_B" -s "$MAC_A" \
		-t $((FLOOD_SECONDS + 2)) -c 200000000
	gen=$TB_LAST_PID
	sleep 1
	rx0=$(netstat_of "$NS_B" rx_packets)
	case $tool in
	perf-record) timeout -s INT "$FLOOD_SECONDS" perf record -F 999 -g -p "$pid" -o "$out.data" >/dev/null 2>&1 & ;;
	perf-stat) timeout -s INT "$FLOOD_SECONDS" perf stat -p "$pid" -o "$out.txt" >/dev/null 2>&1 & ;;
	strace) timeout -s INT "$FLOOD_SECONDS" strace -c -f -p "$pid" -o "$out.txt" >/dev/null 2>&1 & ;;
	esac
	tool_pid=$!
	wait "$tool_pid" 2>/dev/null || true
	rx1=$(netstat_of "$NS_B" rx_packets)
	wait "$gen" 2>/dev/null || true
	echo "frames at b during the window: $((rx1 - rx0)) (${FLOOD_SECONDS} s)" >"$out.frames"
	if [ "$tool" = perf-record ]; then
		perf report -i "$out.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^$' | head -n 120 >"$out.txt" || true
		perf report -i "$out.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 20 >"$out.dso.txt" || true
	fi
	tb_log "  $path $tool: $((rx1 - rx0)) frames at b; $out.txt"
}

# profile_tcp PATH: one iperf3 stream a -> b with `perf record -g` on the daemon, and its CPU utilisation.
profile_tcp() {
	local path=$1 pid=${BR_PIDS[0]} out=$PROFILE_DIR/$1-tcp c0 c1 t0 t1 srv
	iperf_server 5201 $((FLOOD_SECONDS + 20)) "$WORK/iperf-srv.log"
	srv=$TB_LAST_PID
	timeout $((FLOOD_SECONDS + 15)) ip netns exec "$NS_A" iperf3 -c "$IP_B" -p 5201 -t $((FLOOD_SECONDS + 2)) >"$out.iperf.txt" 2>&1 &
	local cli=$!
	sleep 1
	local s0 s1
	s0=$(head -n 1 /proc/stat)
	t0=$EPOCHREALTIME; c0=$(cpu_ns)
	if command -v perf >/dev/null 2>&1; then
		timeout -s INT "$FLOOD_SECONDS" perf record -F 999 -g -p "$pid" -o "$out.data" >/dev/null 2>&1 || true
	else
		sleep "$FLOOD_SECONDS"
	fi
	c1=$(cpu_ns); t1=$EPOCHREALTIME
	s1=$(head -n 1 /proc/stat)
	wait "$cli" 2>/dev/null || true
	tb_stop_pid "$srv" 3
	echo "daemon CPU during TCP: $(awk -v c=$((c1 - c0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100 * c / 1e9 / (b - a) }')% of one core; whole machine busy $(echo "$s0 $s1" | awk '{ b0 = $2 + $3 + $4 + $7 + $8 + $9; t0 = b0 + $5 + $6; b1 = $13 + $14 + $15 + $18 + $19 + $20; t1 = b1 + $16 + $17; printf "%.0f", 100 * (b1 - b0) / (t1 - t0) }')% of $(nproc) cores" >"$out.cpu.txt"
	if [ -f "$out.data" ]; then perf report -i "$out.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep "%" | head -n 40 >"$out.txt" || true; fi
	tb_log "  $path tcp: $(cat "$out.cpu.txt"); $(grep -E 'receiver' "$out.iperf.txt" | tail -1 | awk '{ print $7, $8 }')"
}

profile() {
	command -v perf >/dev/null 2>&1 || tb_warn "perf missing (Debian: linux-perf): no perf profiles"
	command -v strace >/dev/null 2>&1 || tb_warn "strace missing: no syscall counts"
	mkdir -p "$PROFILE_DIR"
	NODE_FLAGS=(--perf-basic-prof)
	local path tool
	for path in tap uplink; do
		topo_up tapbridge "$path" || tb_die "tapbridge/$path: set-up failed"
		for tool in perf-stat perf-record strace; do
			case $tool in perf-*) command -v perf >/dev/null 2>&1 || continue ;; strace) command -v strace >/dev/null 2>&1 || continue ;; esac
			profile_flood "$path" "$tool"
		done
		profile_tcp "$path"
		rm -f "/tmp/perf-${BR_PIDS[0]}.map"
		topo_down
	done
	tb_info "profiles in $PROFILE_DIR"
}

# ------------------------------------------------------------------------------------------------------------------ run

PATHS_OF() { # the paths measured for an implementation
	case $1 in
	kernel) echo veth ;;
	vde) if [ "$VDE_UPLINK" = 1 ]; then echo tap uplink; else echo tap; fi ;;
	ovs) echo tap uplink ;;
	tapbridge) echo tap uplink uplink-recvmsg ;;
	*) echo tap uplink ;;
	esac
}

# skip_path IMPL PATH REASON: the row is SKIPPED with REASON (in the report and the JSON), in this rep and the next ones.
declare -A SKIP_REASON=()
skip_path() {
	SKIP_REASON[$1/$2]=$3
	SKIPPED+=("$1 $2 path: SKIPPED, $3")
	tb_warn "SKIPPING $1/$2: $3"
}

if [ -n "$PROFILE_DIR" ]; then
	profile
	exit 0
fi

ORDER=()
for impl in kernel tapbridge vde ovs; do has_impl "$impl" && ORDER+=("$impl"); done
[ "${#ORDER[@]}" -gt 0 ] || tb_die "nothing to measure (--impl $IMPLS)"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$SCALING" = 1 ]; then
	# shellcheck source=scaling.sh
	source "$BENCH_DIR/scaling.sh"
	tb_info "tapbridge bench --scaling: ${ORDER[*]}; ports $SCALING_PORTS; $SCALING_KPPS kpps offered in total; $REPS rep(s); flood window ${FLOOD_SECONDS}s, $LOAD_PING_COUNT pings per busy-stream count; load $LOAD_BEFORE"
	scaling
	exit 0
fi
tb_info "tapbridge bench: ${ORDER[*]}; $REPS rep(s); tcp ${TCP_SECONDS}s, flood window ${FLOOD_SECONDS}s, $PING_COUNT pings${BUSY_POLL_US:+; tapbridge busy_poll_us $BUSY_POLL_US}${DIRECT_POLL:+; tapbridge direct_poll $DIRECT_POLL}${DATA_WORKERS:+; tapbridge data_workers $DATA_WORKERS}; load $LOAD_BEFORE"
START=$(date +%s)
for ((rep = 1; rep <= REPS; rep++)); do
	for impl in "${ORDER[@]}"; do
		for path in $(PATHS_OF "$impl"); do
			[ -n "${SKIP_REASON[$impl/$path]:-}" ] && continue
			tb_log "rep $rep/$REPS: $impl $path"
			topo_rc=0
			topo_up "$impl" "$path" || topo_rc=$?
			if [ "$topo_rc" -eq 0 ]; then
				measure "$impl" "$path" "$rep"
				awk -F'\t' -v i="$impl" -v p="$path" -v r="$rep" '$1 == i && $2 == p && $3 == r { printf "  %s=%s", $4, $5 } END { print "" }' "$RESULTS"
			elif [ "$impl" = ovs ]; then
				# OVS failing to start or to pass frames is a skipped row with its reason, not a failed measurement
				skip_path "$impl" "$path" "${OVS_ERR:-no ping a -> b through ovs-vswitchd after set-up (see $WORK/ovs/vswitchd.log)}"
			else
				record "$impl" "$path" "$rep" setup_failed 1
			fi
			topo_down
		done
	done
done
if has_impl tapbridge && [ "$SOAK_SECONDS" -gt 0 ]; then
	tb_log "soak: tapbridge, $SOAK_MACS source MACs, ${SOAK_SECONDS}s"
	soak || tb_warn "soak failed"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -z "$OUT" ]; then
	mkdir -p "$BENCH_DIR/results"
	OUT=$BENCH_DIR/results/$(date -u +%Y-%m-%dT%H%M%SZ).json
fi
BENCH_RESULTS=$RESULTS BENCH_OUT=$OUT BENCH_REPS=$REPS BENCH_TCP_SECONDS=$TCP_SECONDS BENCH_FLOOD_SECONDS=$FLOOD_SECONDS \
	BENCH_PING_COUNT=$PING_COUNT BENCH_SOAK_SECONDS=$SOAK_SECONDS BENCH_LOAD_PING_COUNT=$LOAD_PING_COUNT BENCH_BUSY_POLL_US=$BUSY_POLL_US BENCH_DIRECT_POLL=$DIRECT_POLL BENCH_DATA_WORKERS=$DATA_WORKERS BENCH_LOAD_BEFORE=$LOAD_BEFORE BENCH_LOAD_AFTER=$LOAD_AFTER \
	BENCH_ELAPSED=$(($(date +%s) - START)) BENCH_SKIPPED=$(printf '%s\n' "${SKIPPED[@]+"${SKIPPED[@]}"}") \
	"$NODE_BIN" "$BENCH_DIR/report.mjs"
