#!/usr/bin/env bash
# vhost-user against the TAP path and against OVS-DPDK (issue 23 §3), with a frontend none of us wrote: DPDK's
# dpdk-testpmd.
#
#   vhost-user   testpmd txonly (net_virtio_user) -> tapbridge vhu1 (vhost-user) -> vhu2 (vhost-user) -> testpmd rxonly
#   tap          testpmd txonly (net_af_packet on vif1) -> TAP vif1 -> tapbridge -> TAP vif2 -> testpmd rxonly (af_packet)
#   ovs-dpdk     testpmd txonly (net_virtio_user, server=1) -> ovs-vswitchd-dpdk dpdkvhostuserclient vhu1 -> bridge br0
#                (datapath_type=netdev, NORMAL) -> vhu2 -> testpmd rxonly; ovsdb-server and ovs-vswitchd (Debian
#                openvswitch-switch-dpdk: /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk) started here in the run's
#                temp dir (no system service), their PMD thread on CPU 1. Skipped with the exact error when it is not
#                installed or does not start.
#
# Per case and rep: 60-byte frames for S seconds; delivered kpps (frames the egress port put into testpmd rxonly's ring
# or TAP: `tapbridge stats` tx_packets of the egress port, vhu2's TX packets in `ovs-appctl dpctl/show -s`) and the switch's CPU per
# delivered frame (utime+stime of the daemon / ovs-vswitchd, whose PMD thread polls: a whole core whatever the rate);
# for OVS also its own cycles per packet (dpif-netdev/pmd-stats-show). Medians at the end.
#
# Memory: 2 MiB hugepages (scripts/lib/hugepages.sh): --huge-pages N (default 640: two testpmds of 256 MB and OVS's
# 512 MB) are added to the pool and a private hugetlbfs is mounted in the temp dir; the pool is given back and the mount
# removed on every exit path. When that fails the reason is printed and the testpmds run with --no-huge (memfd-backed
# memory, which vhost-user shares as well); OVS-DPDK is then tried with --no-huge too (OVS 3.1 adds --in-memory, which
# DPDK refuses beside it: the row says so).
#
# Usage: sudo bash scripts/bench/vhost-user.sh [--seconds S] [--reps N] [--quick] [--impl vhost-user,tap,ovs-dpdk]
#                                             [--huge-pages N | --no-huge] [--tsv FILE] [--logs DIR]
#                                             [--no-install]
#   --tsv FILE   also append the figures to FILE as run.sh's raw records (impl "vhost", path the case, rep, metric,
#                value; metric "skipped" carries the reason as its value): scripts/bench/all.sh reads them
#   --logs DIR   copy the daemon's, testpmd's and OVS's logs there before the temp dir is removed
#   --no-install do not apt-get install openvswitch-switch-dpdk when it is missing (its row is then skipped, and says so)
# Needs: root, dist/ built (npm run build), dpdk-testpmd (Debian dpdk-dev).
# Safety: one namespace tb-vhb-PID, removed on every exit path, no link in it (vhost-user and af_packet on TAPs the
# daemon makes there); only PIDs this script started are stopped; testpmd bounded by `timeout`, ovs-vswitchd and
# ovsdb-server stopped after their case and by the exit trap.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$repo/scripts/lib/netns.sh"
# shellcheck source=../lib/hugepages.sh
source "$repo/scripts/lib/hugepages.sh"

seconds=10
reps=3
impls=vhost-user,tap,ovs-dpdk
huge_pages=640
tsv=
keep_logs=
install=1
OVS_DPDK_BIN=${OVS_DPDK_BIN:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift ;;
	--reps) reps=$2; shift ;;
	--quick) seconds=3 reps=1 ;;
	--impl) impls=$2; shift ;;
	--huge-pages) huge_pages=$2; shift ;;
	--no-huge) huge_pages=0 ;;
	--tsv) tsv=$2; shift ;;
	--logs) keep_logs=$2; shift ;;
	--no-install) install=0 ;;
	-h | --help) sed -n '2,/^set -e/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[[ $seconds =~ ^[1-9][0-9]?$ ]] || tb_die "--seconds takes 1..99"
[[ $reps =~ ^[1-9]$ ]] || tb_die "--reps takes 1..9"
[[ $huge_pages =~ ^[0-9]{1,5}$ ]] || tb_die "--huge-pages takes 0..99999"
tb_require_root
tb_require_cmds ip node awk timeout
command -v dpdk-testpmd >/dev/null || tb_die "dpdk-testpmd missing (apt-get install dpdk-dev)"
[ -f "$repo/dist/cli/main.js" ] || tb_die "run npm run build first"

dir=$(mktemp -d /tmp/tb-vhb-XXXXXX)
ns=tb-vhb-$$
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	tb_cleanup_all
	tb_huge_release
	if [ -n "$keep_logs" ]; then mkdir -p "$keep_logs" && find "$dir" -maxdepth 2 -name '*.log' -o -maxdepth 2 -name '*.out' | xargs -r cp -t "$keep_logs" 2>/dev/null || true; fi
	rm -rf "$dir" /var/run/dpdk/tbvh-*-$$
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tb_ns_create "$ns"

# record CASE REP METRIC VALUE
record() {
	[ -z "$tsv" ] || printf 'vhost\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$tsv"
}

# memory for the testpmds (and OVS): hugepages, or --no-huge with the reason
mem_note=
if [ "$huge_pages" -gt 0 ] && tb_huge_reserve "$huge_pages" "$dir/huge"; then
	mem_note="$huge_pages 2 MiB hugepages reserved, hugetlbfs on $TB_HUGE_DIR"
	testpmd_mem=(--huge-dir "$TB_HUGE_DIR" --single-file-segments -m 256)
else
	[ "$huge_pages" -gt 0 ] && tb_warn "hugepages: $TB_HUGE_ERR; falling back to --no-huge"
	mem_note="--no-huge (${TB_HUGE_ERR:-asked for with --no-huge})"
	testpmd_mem=(--no-huge -m 1024)
fi
tb_info "vhost-user bench: $impls; $reps rep(s) of ${seconds}s; memory: $mem_note"
record all 1 hugepages "$([ -n "$TB_HUGE_DIR" ] && echo 1 || echo 0)"
[ -n "$TB_HUGE_DIR" ] || record all 1 skipped "testpmd with --no-huge: ${TB_HUGE_ERR:-asked for}"

daemon_pid=
start_daemon() { # $1: ports JSON
	cat >"$dir/tb.json" <<EOF
{"control_socket":"$dir/ctl.sock","state_dir":"$dir/state","log_level":"warn","bridges":[{"name":"br0","ports":$1}]}
EOF
	rm -rf "$dir/state"
	tb_bg "$ns" "$dir/daemon.log" node "$repo/dist/cli/main.js" daemon --config "$dir/tb.json"
	daemon_pid=$TB_LAST_PID
	tb_wait_socket "$dir/ctl.sock" "$daemon_pid" 10 || tb_die "daemon did not start: $(tail -n 5 "$dir/daemon.log")"
}
stop_daemon() {
	tb_stop_pid "$daemon_pid" 10
	rm -f "$dir/ctl.sock"
}
port_tx() { # tx_packets of tapbridge port $1
	node "$repo/dist/cli/main.js" stats -j --socket "$dir/ctl.sock" | node -e '
let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s)[0].ports.find(x=>x.name===process.argv[1]);console.log(p?p.tx_packets:0)})' "$1"
}

# testpmd ROLE VDEV LCORES: txonly (60-byte frames) or rxonly in the namespace, until stopped (SIGTERM prints its
# totals); bounded by timeout. Sets TB_LAST_PID.
testpmd() {
	local role=$1 mode
	if [ "$role" = tx ]; then mode=(--forward-mode=txonly --txpkts=60 --burst=64); else mode=(--forward-mode=rxonly); fi
	# --stats-period: without it a non-interactive testpmd waits for a line on stdin (here /dev/null: it would exit)
	tb_bg "$ns" "$dir/testpmd-$role.log" timeout $((seconds + 90)) dpdk-testpmd -l "$3" --no-pci "${testpmd_mem[@]}" \
		--file-prefix="tbvh-$role-$$" --log-level=lib.eal:error --vdev="$2" -- "${mode[@]}" --auto-start --nb-cores=1 \
		--stats-period=3600 --total-num-mbufs=16384
}

# measure CASE REP RX_VDEV TX_VDEV COUNTER...: start rxonly then txonly, count over $seconds, stop both. COUNTER is a
# command printing the egress port's delivered frames; CPU is that of $cpu_pid.
cpu_pid=
measure() {
	local name=$1 rep=$2 rx tx c0 c1 s0 s1 sent kpps us t0 t1
	shift 2
	local rxv=$1 txv=$2
	shift 2
	testpmd rx "$rxv" 0,1
	rx=$TB_LAST_PID
	sleep 3
	testpmd tx "$txv" 1,0
	tx=$TB_LAST_PID
	# frames flow once both testpmds are up and connected (a vhost-user client retries every second or so): up to 30 s
	local i f0 f1
	f0=$("$@")
	for ((i = 0; i < 60; i++)); do
		sleep 0.5
		f1=$("$@")
		[ "$f1" -gt "$f0" ] && break
		tb_alive "$tx" && tb_alive "$rx" || break
	done
	sleep 1
	tb_alive "$tx" || tb_warn "$name: testpmd tx exited early: $(tail -n 5 "$dir/testpmd-tx.log" | tr '\n' ' ')"
	tb_alive "$rx" || tb_warn "$name: testpmd rx exited early: $(tail -n 5 "$dir/testpmd-rx.log" | tr '\n' ' ')"
	[ "$name" = ovs-dpdk ] && tb_ovs_appctl dpif-netdev/pmd-stats-clear >/dev/null 2>&1
	# a counter read is a CLI run whose start-up takes a while on a loaded machine; the daemon answers at its end, so
	# the read is timed when it returns
	s0=$("$@"); t0=$EPOCHREALTIME; c0=$(tb_cpu_ticks "$cpu_pid")
	sleep "$seconds"
	s1=$("$@"); t1=$EPOCHREALTIME; c1=$(tb_cpu_ticks "$cpu_pid")
	if [ "$name" = ovs-dpdk ]; then
		local cyc
		cyc=$(tb_ovs_appctl dpif-netdev/pmd-stats-show 2>/dev/null | sed -n 's/.*avg processing cycles per packet: \([0-9.]*\).*/\1/p' | head -n 1)
		[ -n "$cyc" ] && record "$name" "$rep" cycles_per_frame "$cyc"
	fi
	# a virtio_user port in server mode (the OVS-DPDK case) can wait on its backend while it closes: 5 s, then SIGKILL
	# (what it leaves in the hugetlbfs goes with the mount)
	tb_stop_pid "$tx" 5
	sleep 0.5
	tb_stop_pid "$rx" 5
	sent=$((s1 - s0))
	kpps=$(awk -v n="$sent" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) / 1000 }')
	us=$(awk -v c=$((c1 - c0)) -v n="$sent" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.3f", c / hz * 1e6 / n; else print "-" }')
	tb_log "$name rep $rep: delivered $sent frames in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s = $kpps kpps, switch CPU $us us/frame"
	# a rep where a testpmd died (mbuf pool, memory) measured nothing: left out of the medians
	if [ "$sent" -gt 0 ]; then
		results+=("$name $kpps $us")
		record "$name" "$rep" kpps "$kpps"
		record "$name" "$rep" cpu_us "$us"
	else
		tb_warn "$name rep $rep: left out (no frame delivered); testpmd tx: $(grep -m1 -iE 'error|fail|cannot' "$dir/testpmd-tx.log" || tail -n 1 "$dir/testpmd-tx.log")"
	fi
}

# ------------------------------------------------------------------------------------------------------------- OVS-DPDK

ovs_dir=$dir/ovs
tb_ovs_appctl() { ovs-appctl -t "$ovs_dir/vswitchd.ctl" "$@"; }
# frames vhu2 put into testpmd rxonly's ring, live from the datapath (the database's statistics lag by seconds)
ovs_tx() {
	tb_ovs_appctl dpctl/show -s 2>/dev/null | awk '$1 == "port" && $3 == "vhu2" { p = 1; next } $1 == "port" { p = 0 }
		p && $1 == "TX" && $2 ~ /^packets:/ { sub("packets:", "", $2); print $2; f = 1; exit } END { if (!f) print 0 }'
}

# ovs_dpdk_up: ovs-vswitchd-dpdk with bridge br0 (netdev) and two dpdkvhostuserclient ports vhu1, vhu2 whose servers
# are the testpmds. Status 1 with OVS_DPDK_ERR (the exact error) when it cannot start here.
OVS_DPDK_ERR=
ovs_dpdk_up() {
	OVS_DPDK_ERR=
	if [ ! -x "$OVS_DPDK_BIN" ] && [ "$install" = 1 ] && command -v apt-get >/dev/null 2>&1; then
		# Debian's alternative for ovs-vswitchd keeps pointing at the plain build (priority 100 against 50): installing
		# this changes nothing for other users of ovs-vswitchd; the bench calls the DPDK build by its path
		tb_info "installing openvswitch-switch-dpdk (apt-get)"
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq openvswitch-switch-dpdk >"$dir/apt.log" 2>&1 ||
			tb_warn "apt-get install openvswitch-switch-dpdk failed: $(tail -n 3 "$dir/apt.log" | tr '\n' ' ')"
	fi
	if [ ! -x "$OVS_DPDK_BIN" ]; then
		OVS_DPDK_ERR="$OVS_DPDK_BIN missing (Debian openvswitch-switch-dpdk)"
		return 1
	fi
	tb_ovs_have "$OVS_DPDK_BIN" || { OVS_DPDK_ERR="Open vSwitch tools missing (Debian openvswitch-switch)"; return 1; }
	local extra="--no-pci --file-prefix=tbvh-ovs-$$"
	local mem=(dpdk-socket-mem=512 dpdk-socket-limit=512)
	if [ -n "$TB_HUGE_DIR" ]; then
		extra+=" --huge-dir=$TB_HUGE_DIR --single-file-segments"
	else
		extra+=" --no-huge -m 512"
		mem=()
	fi
	if ! tb_ovs_up "$ns" "$ovs_dir" "$OVS_DPDK_BIN" dpdk-init=true "dpdk-extra=\"$extra\"" "${mem[@]}" \
		dpdk-lcore-mask=0x1 pmd-cpu-mask=0x2; then
		OVS_DPDK_ERR=$TB_OVS_ERR
		return 1
	fi
	cpu_pid=$TB_OVS_PID
	# DPDK initialises after ovs-vswitchd has read the database: wait for it (or for its death) before adding ports
	local i init=
	for ((i = 0; i < 60; i++)); do
		init=$(tb_ovs_vsctl "$ovs_dir" get Open_vSwitch . dpdk_initialized 2>/dev/null || true)
		[ "$init" = true ] && break
		tb_alive "$TB_OVS_PID" || break
		sleep 0.5
	done
	if [ "$init" != true ]; then
		OVS_DPDK_ERR="DPDK did not initialise in $(basename "$OVS_DPDK_BIN") ($(tb_alive "$TB_OVS_PID" && echo "dpdk_initialized=${init:-?} after 30 s" || echo exited)): $(grep -h -E 'EAL ARGS|dpdk\|(ERR|EMER)' "$ovs_dir/vswitchd.log" | sed 's/^[^|]*|[^|]*|//' | tail -n 4 | tr '\n' ' ')"
		return 1
	fi
	if ! TB_OVS_TIMEOUT=30 tb_ovs_vsctl "$ovs_dir" add-br br0 -- set bridge br0 datapath_type=netdev \
		-- add-port br0 vhu1 -- set interface vhu1 type=dpdkvhostuserclient options:vhost-server-path="$dir/ovs-vhu1.sock" \
		-- add-port br0 vhu2 -- set interface vhu2 type=dpdkvhostuserclient options:vhost-server-path="$dir/ovs-vhu2.sock" \
		>>"$ovs_dir/vsctl.log" 2>&1; then
		OVS_DPDK_ERR="ovs-vsctl add-br/add-port failed: $(tail -n 2 "$ovs_dir/vsctl.log" | tr '\n' ' ') $(grep -h -E 'ERR|EMER' "$ovs_dir/vswitchd.log" | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	tb_ovs_port_error "$ovs_dir" vhu1 vhu2 || { OVS_DPDK_ERR="dpdkvhostuserclient $TB_OVS_ERR"; return 1; }
	return 0
}

# ------------------------------------------------------------------------------------------------------------------ run

results=()
IFS=, read -r -a want <<<"$impls"
declare -A skipped=()
for rep in $(seq "$reps"); do
	for impl in "${want[@]}"; do
		[ -z "${skipped[$impl]:-}" ] || continue
		case $impl in
		vhost-user)
			start_daemon "[{\"name\":\"vhu1\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu1.sock\",\"mode\":\"server\"},{\"name\":\"vhu2\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu2.sock\",\"mode\":\"server\"}]"
			cpu_pid=$daemon_pid
			measure vhost-user "$rep" "net_virtio_user1,path=$dir/vhu2.sock,queues=1,queue_size=1024" \
				"net_virtio_user0,path=$dir/vhu1.sock,queues=1,queue_size=1024" port_tx vhu2
			stop_daemon
			;;
		tap)
			start_daemon '[{"name":"vif1"},{"name":"vif2"}]'
			cpu_pid=$daemon_pid
			tb_wait_link "$ns" vif2 10 || tb_die "TAP vif2 did not appear"
			measure tap "$rep" "net_af_packet1,iface=vif2,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" \
				"net_af_packet0,iface=vif1,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" port_tx vif2
			stop_daemon
			;;
		ovs-dpdk)
			if ovs_dpdk_up; then
				measure ovs-dpdk "$rep" "net_virtio_user1,path=$dir/ovs-vhu2.sock,server=1,queues=1,queue_size=1024" \
					"net_virtio_user0,path=$dir/ovs-vhu1.sock,server=1,queues=1,queue_size=1024" ovs_tx
			else
				skipped[$impl]=$OVS_DPDK_ERR
				tb_warn "ovs-dpdk: SKIPPED: $OVS_DPDK_ERR"
				record ovs-dpdk "$rep" skipped "$OVS_DPDK_ERR"
			fi
			tb_cleanup_all # ovs-vswitchd and ovsdb-server (and the namespace, made again below)
			tb_ns_create "$ns"
			;;
		*) tb_die "--impl: unknown case '$impl' (vhost-user,tap,ovs-dpdk)" ;;
		esac
	done
done

echo
echo "| path | 60-byte frames, kpps (median of $reps) | switch CPU per frame, µs |"
echo "|---|---|---|"
for impl in "${want[@]}"; do
	if [ -n "${skipped[$impl]:-}" ]; then
		echo "| $impl | skipped: ${skipped[$impl]} | |"
		continue
	fi
	vals=$(printf '%s\n' "${results[@]+"${results[@]}"}" | awk -v i="$impl" '$1 == i { print $2 " " $3 }')
	k=$(echo "$vals" | awk 'NF { print $1 }' | sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }')
	u=$(echo "$vals" | awk 'NF { print $2 }' | sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }')
	echo "| $impl | $k | $u |"
done
echo "memory: $mem_note"
