#!/usr/bin/env bash
# VXLAN benchmark (issue 15): TCP between two VMs on two hosts over a VXLAN overlay, tapbridge + the kernel's vxlan
# netdev against the Linux kernel bridge + the same vxlan netdev. Not a test: it prints figures.
#
#   PREFIX-vm1 eth0 198.18.32.1                                                   PREFIX-vm2 eth0 198.18.32.2
#        |  (tapbridge: TAP vif1.0 the daemon made; kernel: veth vif1.0)                 |
#   PREFIX-h1: bridge xenbr0 + vx10 (vni 10) --- u0 198.18.33.1 ~~ veth, MTU 1600 ~~ u0 198.18.33.2 --- h2: the same
#
# Per rep and per implementation the topology is built afresh: tapbridge runs one daemon per host (`vxlan:` port
# vx10, vlan 10, remote = the other host); kernel = `ip link add br0 type bridge` with the veth and an iproute2 vxlan
# netdev (`bridge fdb append 00:00:00:00:00:00 dev vx10 dst OTHER`). Offloads stay on in the VMs (GSO through vxlan).
# Measures: iperf3 TCP vm1 -> vm2 (receiver's figure, -t SECONDS), and ping RTT (-c 100 -i 0.01); medians over reps
# and the tapbridge/kernel ratio, compared inside one run (the machine is shared: never against remembered figures).
#
# Usage (root, after `npm ci`):  bash scripts/bench/vxlan.sh [--reps N] [--seconds S] [--impl tapbridge,kernel]
#
# Safety: namespaces tb-vxb-PID-RAND-*, removed on every exit path; addresses from 198.18.0.0/15 only; nothing touches
# the root namespace's links, addresses or routes; iperf3 is bounded by -t and `timeout`; only PIDs this script started
# are stopped.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

REPS=3
SECS=5
IMPLS=tapbridge,kernel
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift 2 ;;
	--seconds) SECS=$2; shift 2 ;;
	--impl) IMPLS=$2; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
done
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 && $REPS -le 20 ]] || tb_die "--reps must be 1..20"
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 && $SECS -le 60 ]] || tb_die "--seconds must be 1..60"
tb_require_root
tb_require_cmds ip bridge node iperf3 ping timeout awk
PY=$(tb_python)
CLI="$REPO_ROOT/dist/cli/main.js"
[ -f "$CLI" ] || tb_die "$CLI is missing: run 'npm ci' (or 'npm run build') first"

PREFIX="tb-vxb-$$-$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
WORK=$(mktemp -d /tmp/tapbridge-vxlan-bench-XXXXXX)
tb_trap_cleanup "$WORK"

U1=198.18.33.1 U2=198.18.33.2 V1=198.18.32.1 V2=198.18.32.2
NOV6=(sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1)

# build IMPL: namespaces h1 h2 vm1 vm2, the underlay, and the bridge of IMPL on each host
build() {
	local impl=$1 n ns other
	for ns in h1 h2 vm1 vm2; do
		tb_ns_create "$PREFIX-$ns"
		tb_nsexec "$PREFIX-$ns" "${NOV6[@]}"
	done
	ip -n "$PREFIX-h1" link add u0 mtu 1600 type veth peer name u0 netns "$PREFIX-h2" mtu 1600
	for n in 1 2; do
		other=$((3 - n))
		ns=$PREFIX-h$n
		ip -n "$ns" addr add "198.18.33.$n/24" dev u0
		ip -n "$ns" link set u0 up
		if [ "$impl" = tapbridge ]; then
			cat >"$WORK/h$n.yaml" <<EOF
control_socket: $WORK/h$n.sock
state_dir: $WORK/h$n.state
bridges:
  - name: xenbr0
    ports: [ { name: vif1.0, vlan: 10 } ]
    vxlan: [ { name: vx10, vni: 10, vlan: 10, local: 198.18.33.$n, remotes: [198.18.33.$other] } ]
EOF
			tb_bg "$ns" "$WORK/h$n.log" node "$CLI" daemon --config "$WORK/h$n.yaml"
			tb_wait_socket "$WORK/h$n.sock" "$TB_LAST_PID" 20 || { cat "$WORK/h$n.log" >&2; tb_die "daemon on h$n did not start"; }
			tb_wait_link "$ns" vif1.0 10 || tb_die "no vif1.0 on h$n"
			ip -n "$ns" link set vif1.0 netns "$PREFIX-vm$n"
		else
			ip -n "$ns" link add vx10 type vxlan id 10 local "198.18.33.$n" dstport 4789
			bridge -n "$ns" fdb append 00:00:00:00:00:00 dev vx10 dst "198.18.33.$other"
			ip -n "$ns" link add br0 type bridge
			ip -n "$ns" link add vif1.0 type veth peer name vif1.0 netns "$PREFIX-vm$n"
			ip -n "$ns" link set vif1.0 master br0 up
			ip -n "$ns" link set vx10 master br0 up
			ip -n "$ns" link set br0 up
		fi
		ip -n "$PREFIX-vm$n" link set vif1.0 name eth0
		ip -n "$PREFIX-vm$n" addr add "198.18.32.$n/24" dev eth0
		ip -n "$PREFIX-vm$n" link set eth0 up
	done
	local i
	for ((i = 0; i < 50; i++)); do
		tb_nsexec "$PREFIX-vm1" ping -n -q -c 1 -W 1 "$V2" >/dev/null 2>&1 && return 0
	done
	tb_die "$impl: vm1 cannot reach vm2"
}

# measure IMPL: prints "gbps rtt_ms"
measure() {
	local srv gbps rtt
	tb_bg "$PREFIX-vm2" "$WORK/iperf-server.log" iperf3 -s -1 -B "$V2"
	srv=$TB_LAST_PID
	sleep 0.5
	tb_nsexec "$PREFIX-vm1" timeout $((SECS + 20)) iperf3 -c "$V2" -t "$SECS" -J >"$WORK/iperf.json" || tb_die "iperf3 failed: $(tail -c 500 "$WORK/iperf.json")"
	tb_stop_pid "$srv" 5
	gbps=$("$PY" -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf.json")
	rtt=$(tb_nsexec "$PREFIX-vm1" ping -n -q -c 100 -i 0.01 -W 1 "$V2" | awk -F/ '/^rtt|^round-trip/ { print $5 }')
	echo "$gbps ${rtt:-nan}"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

tb_info "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=, read -r -a IMPL_LIST <<<"$IMPLS"
for ((rep = 1; rep <= REPS; rep++)); do
	for impl in "${IMPL_LIST[@]}"; do
		case $impl in tapbridge | kernel) ;; *) tb_die "unknown --impl $impl (tapbridge, kernel)" ;; esac
		build "$impl"
		read -r gbps rtt < <(measure)
		echo "$impl $gbps $rtt" >>"$WORK/results.txt"
		tb_log "rep $rep $impl: TCP $gbps Gbit/s, ping $rtt ms"
		tb_cleanup_all
	done
done
tb_info "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

printf '\n%-34s %14s %12s\n' "VM<->VM across two hosts, VXLAN" "TCP Gbit/s" "ping ms"
for impl in "${IMPL_LIST[@]}"; do
	g=$(awk -v i="$impl" '$1 == i { print $2 }' "$WORK/results.txt" | median)
	r=$(awk -v i="$impl" '$1 == i { print $3 }' "$WORK/results.txt" | median)
	label=$([ "$impl" = tapbridge ] && echo "tapbridge + kernel vxlan" || echo "kernel bridge + kernel vxlan")
	printf '%-34s %14s %12s\n' "$label" "$g" "$r"
	eval "G_$impl=$g"
done
if [ -n "${G_tapbridge:-}" ] && [ -n "${G_kernel:-}" ]; then
	awk -v t="$G_tapbridge" -v k="$G_kernel" 'BEGIN { if (k > 0) printf "tapbridge / kernel TCP ratio: %.2f (medians of %d reps)\n", t / k, '"$REPS"' }'
fi
