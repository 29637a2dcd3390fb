#!/usr/bin/env bash
# vhost-user against the TAP path (issue 23 §3), with a frontend none of us wrote: DPDK's dpdk-testpmd.
#
#   vhost-user   testpmd txonly (net_virtio_user) -> tapbridge vhu1 (vhost-user) -> vhu2 (vhost-user) -> testpmd rxonly
#   tap          testpmd txonly (net_af_packet on vif1) -> TAP vif1 -> tapbridge -> TAP vif2 -> testpmd rxonly (af_packet)
#   ovs-dpdk     the same testpmds on ovs-vswitchd's dpdkvhostuserclient ports (skipped with the reason when it cannot
#                start here)
#
# Per case and rep: 60-byte frames for S seconds; delivered kpps (frames the egress port put into testpmd rxonly's ring
# or TAP, from `tapbridge stats`), tapbridge's CPU per delivered frame (utime+stime of the daemon); medians at the end.
# The testpmds run with --no-huge (virtio_user shares memfd-backed memory, no hugepages needed); the script sets up and
# removes nothing outside its temp dir and one network namespace (tb-vhb-<pid>), and stops what it started by PID.
#
# Usage: sudo bash scripts/bench/vhost-user.sh [--seconds S] [--reps N] [--impl vhost-user,tap,ovs-dpdk]
# Needs: root, dist/ built (npm run build), dpdk-testpmd (Debian dpdk-dev).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=10
reps=3
impls=vhost-user,tap,ovs-dpdk
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--impl) impls=$2; shift 2 ;;
	*) echo "usage: $0 [--seconds S] [--reps N] [--impl LIST]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "vhost-user bench: needs root" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "vhost-user bench: dpdk-testpmd missing (apt-get install dpdk-dev)" >&2; exit 1; }
[ -f "$repo/dist/cli/main.js" ] || { echo "vhost-user bench: run npm run build first" >&2; exit 1; }

dir=$(mktemp -d /tmp/tb-vhb-XXXXXX)
ns=tb-vhb-$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$dir" /var/run/dpdk/tbvh-tx-$$ /var/run/dpdk/tbvh-rx-$$
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

daemon_pid=""
start_daemon() { # $1: ports JSON
	cat >"$dir/tb.json" <<EOF
{"control_socket":"$dir/ctl.sock","state_dir":"$dir/state","log_level":"warn","bridges":[{"name":"br0","ports":$1}]}
EOF
	rm -rf "$dir/state"
	ip netns exec "$ns" node "$repo/dist/cli/main.js" daemon --config "$dir/tb.json" >"$dir/daemon.log" 2>&1 &
	daemon_pid=$!
	pids+=("$daemon_pid")
	for _ in $(seq 100); do [ -S "$dir/ctl.sock" ] && return 0; sleep 0.1; done
	echo "daemon did not start:" >&2; cat "$dir/daemon.log" >&2; exit 1
}
stop_daemon() {
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	rm -f "$dir/ctl.sock"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
port_tx() { # tx_packets of port $1
	node "$repo/dist/cli/main.js" stats -j --socket "$dir/ctl.sock" | node -e '
let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s)[0].ports.find(x=>x.name===process.argv[1]);console.log(p?p.tx_packets:0)})' "$1"
}

# testpmd: $1 tx|rx, $2 vdev, $3 lcores; runs for $seconds (+ warmup), prints the accumulated stats on SIGINT
testpmd() {
	local role=$1 vdev=$2 mode
	[ "$role" = tx ] && mode="--forward-mode=txonly --txpkts=60 --burst=64" || mode="--forward-mode=rxonly"
	# non-interactive testpmd runs until its stdin ends: a pipe held open for the run
	sleep $((seconds + 60)) | ip netns exec "$ns" dpdk-testpmd -l "$3" --no-pci --no-huge -m 1024 --file-prefix="tbvh-$role-$$" --log-level=lib.eal:error \
		--vdev="$vdev" -- $mode --auto-start --nb-cores=1 --stats-period=0 --total-num-mbufs=16384 >"$dir/testpmd-$role.log" 2>&1 &
	echo $!
}

results=()
run_case() { # $1 name, $2 rx vdev, $3 tx vdev, $4 egress port name (for CPU/frame)
	local rx tx c0 c1 sent kpps us
	rx=$(testpmd rx "$2" 0,1)
	pids+=("$rx")
	sleep 3
	tx=$(testpmd tx "$3" 1,0)
	pids+=("$tx")
	sleep 2
	local s0 ; s0=$(port_tx "$4")
	c0=$(cpu_ticks "$daemon_pid")
	sleep "$seconds"
	c1=$(cpu_ticks "$daemon_pid")
	sent=$(( $(port_tx "$4") - s0 ))
	kill -INT "$tx" 2>/dev/null || { echo "$1: testpmd tx exited early:" >&2; tail -5 "$dir/testpmd-tx.log" >&2; }; wait "$tx" 2>/dev/null || true
	sleep 1
	kill -INT "$rx" 2>/dev/null || { echo "$1: testpmd rx exited early:" >&2; tail -5 "$dir/testpmd-rx.log" >&2; }; wait "$rx" 2>/dev/null || true
	kpps=$(awk -v n="$sent" -v s="$seconds" 'BEGIN{printf "%.0f", n/s/1000}')
	us=$(awk -v c="$((c1 - c0))" -v n="$sent" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (n>0) printf "%.2f", c/hz*1e6/n; else print "-"}')
	echo "$1: forwarded $sent frames in ${seconds}s = $kpps kpps, tapbridge CPU $us us/frame" >&2
	# a rep where a testpmd died (mbuf pool, memory) measured nothing: left out of the medians
	if [ "$sent" -gt 0 ]; then results+=("$1 $kpps $us"); else echo "$1: rep left out (no frame forwarded)" >&2; fi
}

IFS=, read -r -a want <<<"$impls"
for rep in $(seq "$reps"); do
	for impl in "${want[@]}"; do
		case $impl in
		vhost-user)
			start_daemon "[{\"name\":\"vhu1\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu1.sock\",\"mode\":\"server\"},{\"name\":\"vhu2\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu2.sock\",\"mode\":\"server\"}]"
			run_case vhost-user "net_virtio_user1,path=$dir/vhu2.sock,queues=1,queue_size=1024" \
				"net_virtio_user0,path=$dir/vhu1.sock,queues=1,queue_size=1024" vhu2
			stop_daemon
			;;
		tap)
			start_daemon '[{"name":"vif1"},{"name":"vif2"}]'
			sleep 1
			run_case tap "net_af_packet1,iface=vif2,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" \
				"net_af_packet0,iface=vif1,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" vif2
			stop_daemon
			;;
		ovs-dpdk)
			if ! command -v ovs-vswitchd >/dev/null || ! ovs-vswitchd --version 2>/dev/null | grep -qi dpdk; then
				echo "ovs-dpdk: skipped: ovs-vswitchd with DPDK is not installed (Debian openvswitch-switch-dpdk)" >&2
				results+=("ovs-dpdk skipped skipped")
			else
				echo "ovs-dpdk: skipped: needs 2 MiB hugepages and a dedicated PMD core; this script does not reserve them on a shared 2-vCPU machine" >&2
				results+=("ovs-dpdk skipped skipped")
			fi
			;;
		esac
	done
done

echo
echo "| path | 60-byte frames, kpps (median of $reps) | tapbridge CPU per frame, µs |"
echo "|---|---|---|"
for impl in "${want[@]}"; do
	vals=$(printf '%s\n' "${results[@]}" | awk -v i="$impl" '$1==i {print $2" "$3}')
	k=$(echo "$vals" | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END{print (NR? a[int((NR+1)/2)] : "-")}')
	u=$(echo "$vals" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END{print (NR? a[int((NR+1)/2)] : "-")}')
	echo "| $impl | $k | $u |"
done
