#!/usr/bin/env bash
# vhost-user against the TAP path and against OVS-DPDK (issue 23 §3), with a frontend none of us wrote: DPDK's
# dpdk-testpmd. Two modes (--mode, default loop; --mode loop,txrx runs both):
#
# loop (default): ONE testpmd with both ports on one forwarding lcore, pinned to CPU 1, the switch pinned to CPU 0
#   (taskset; OVS-DPDK's PMD thread by pmd-cpu-mask=0x1 and all its threads by taskset). testpmd runs
#   --forward-mode=mac --tx-first --burst=256: it sends one burst of 256 60-byte frames on each port, then forwards
#   what it receives on port 0 out of port 1 and back, rewriting the source MAC to the sending port's and the
#   destination to the other port's (--eth-peer), so the switch forwards known unicast and learns each MAC on one port.
#   512 frames circulate, 256 per direction; every ring on a direction's way (virtqueues of 1024, af_packet rings of
#   512 frames, a TAP's txqueuelen of at least 1000) holds at most those 256, so no ring can overflow and the loop is
#   never empty: a frame leaves it only by a drop, and drops are reported (and testpmd's TX - RX at its stop: 512 when
#   none was lost). testpmd busy-polls CPU 1 and no other process of this bench runs on CPU 0, so the switch's counters
#   measure the switch, not which of two testpmds the scheduler ran. Per row: frames per second the switch
#   forwarded (its own counters: `tapbridge stats` tx_packets of both ports, `ovs-appctl dpctl/show -s` TX packets of
#   both ports), the switch's CPU per forwarded frame and its CPU share (under 100% of a CPU: the switch waited for
#   frames, the rate is not its limit), bytes per frame (60 expected), its drops and MAC moves (must be
#   0: no flapping), testpmd's RX/TX totals and drops.
#
#   vhost-user   testpmd virtio_user0 <-> tapbridge vhu1 (vhost-user) <-> vhu2 <-> testpmd virtio_user1
#   tap          testpmd net_af_packet on vif1 <-> TAP vif1 <-> tapbridge <-> TAP vif2 <-> net_af_packet on vif2
#   ovs-dpdk     testpmd virtio_user (server=1) <-> ovs-vswitchd-dpdk dpdkvhostuserclient vhu1 <-> bridge br0
#                (datapath_type=netdev, NORMAL) <-> vhu2 <-> testpmd
#
# txrx: testpmd txonly -> switch port -> switch port -> a second testpmd rxonly, on the same three paths (the switch not
#   pinned, OVS's PMD on CPU 1). Two testpmds busy-polling 2 CPUs beside the switch: the receiving one gets a share the
#   scheduler decides, so its figures (delivered kpps below) measure the scheduling as much as the switch.
#
# txrx, per case and rep: 60-byte frames for S seconds; delivered kpps (frames the egress port put into testpmd rxonly's ring
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
# OVS-DPDK: ovsdb-server and ovs-vswitchd (Debian openvswitch-switch-dpdk: /usr/lib/openvswitch-switch-dpdk/
# ovs-vswitchd-dpdk) are started here in the run's temp dir (no system service). Skipped with the exact error when it
# is not installed or does not start.
#
# Usage: sudo bash scripts/bench/vhost-user.sh [--seconds S] [--reps N] [--quick] [--impl vhost-user,tap,ovs-dpdk]
#                                             [--mode loop|txrx|loop,txrx]
#                                             [--huge-pages N | --no-huge] [--tsv FILE] [--logs DIR]
#                                             [--no-install]
#   --tsv FILE   also append the figures to FILE as run.sh's raw records (impl "vhost", path the case, rep, metric,
#                value; metric "skipped" carries the reason as its value): scripts/bench/all.sh reads them. The case
#                is "loop/IMPL" in loop mode, "IMPL" in txrx mode
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
modes=loop
OVS_DPDK_BIN=${OVS_DPDK_BIN:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift ;;
	--reps) reps=$2; shift ;;
	--quick) seconds=3 reps=1 ;;
	--impl) impls=$2; shift ;;
	--mode) modes=$2; shift ;;
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
[[ $modes =~ ^(loop|txrx)(,(loop|txrx))?$ ]] || tb_die "--mode takes loop, txrx or loop,txrx, got '$modes'"
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
tb_info "vhost-user bench: $impls, mode $modes; $reps rep(s) of ${seconds}s; memory: $mem_note"
record all 1 hugepages "$([ -n "$TB_HUGE_DIR" ] && echo 1 || echo 0)"
[ -n "$TB_HUGE_DIR" ] || record all 1 skipped "testpmd with --no-huge: ${TB_HUGE_ERR:-asked for}"

# loop mode: the virtio_user ports' MACs (distinct: mac forwarding writes the sending port's MAC as the source)
LOOP_MAC0=02:00:00:00:10:01
LOOP_MAC1=02:00:00:00:10:02
daemon_pid=
switch_pin=() # loop mode: (taskset -c 0), the switch on CPU 0
start_daemon() { # $1: ports JSON
	cat >"$dir/tb.json" <<EOF
{"control_socket":"$dir/ctl.sock","state_dir":"$dir/state","log_level":"warn","bridges":[{"name":"br0","ports":$1}]}
EOF
	rm -rf "$dir/state"
	tb_bg "$ns" "$dir/daemon.log" "${switch_pin[@]+"${switch_pin[@]}"}" node "$repo/dist/cli/main.js" daemon --config "$dir/tb.json"
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

# ------------------------------------------------------------------------------------------------------ loop mode

# testpmd's totals from its log (printed when it stops): "RX TX RX_DROPPED TX_DROPPED" of "Accumulated forward
# statistics for all ports", or "- - - -" when it did not print them
testpmd_totals() {
	awk '/Accumulated forward statistics for all ports/ { a = 1; next }
		a && /RX-packets:/ { rx = $2; rxd = $4 } a && /TX-packets:/ { tx = $2; txd = $4; f = 1; exit }
		END { if (f) print rx, tx, rxd, txd; else print "- - - -" }' "$1"
}

# the switch's counters "FRAMES BYTES DROPS MOVES FLOODED": frames and bytes it sent out of its two ports, the drops of
# those ports, the FDB's MAC moves and (tapbridge) flooded frames; "-" for a figure the switch does not count
tb_counters() {
	node "$repo/dist/cli/main.js" stats -j --socket "$dir/ctl.sock" | node -e '
let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s)[0];let f=0,by=0,dr=0;
for(const p of b.ports){f+=p.tx_packets;by+=p.tx_bytes;for(const v of Object.values(p.drops??{}))dr+=v;}
console.log(f,by,dr,b.fdb.moved,b.fdb.flooded)})'
}
# (ovs-appctl fdb/stats-show: "Total number of port moved MAC entries  : N"; dpctl/show -s: "RX bytes:N (1.2 MiB)  TX
# bytes:N (...)")
ovs_counters() {
	local moves
	moves=$(tb_ovs_appctl fdb/stats-show br0 2>/dev/null | sed -n 's/.*moved MAC entries *: *\([0-9]*\).*/\1/p' | head -n 1)
	tb_ovs_appctl dpctl/show -s 2>/dev/null | awk -v mv="${moves:--}" '$1 == "port" { p = ($3 == "vhu1" || $3 == "vhu2"); next }
		p && $1 == "TX" && $2 ~ /^packets:/ { sub("packets:", "", $2); f += $2; sub("dropped:", "", $4); d += $4 }
		p && /TX bytes:/ { t = $0; sub(/.*TX bytes:/, "", t); b += t + 0 }
		END { print f + 0, b + 0, d + 0, mv, "-" }'
}

# measure_loop CASE REP VDEV0 VDEV1 MAC0 MAC1 COUNTERS: one testpmd (both ports, mac forwarding, --tx-first) on CPU 1
# against the switch ($cpu_pid, pinned to CPU 0 by the caller); COUNTERS prints tb_counters' figures.
LOOP_BURST=256
measure_loop() {
	local name=$1 rep=$2 v0=$3 v1=$4 m0=$5 m1=$6 counters=$7 tp i s0 s1 t0 t1 c0 c1 f0 f1
	# --lcores 0@1,1@1: the main lcore and the forwarding lcore both on CPU 1 (the main one sleeps)
	tb_bg "$ns" "$dir/testpmd-loop.log" timeout $((seconds + 90)) dpdk-testpmd --lcores=0@1,1@1 --no-pci "${testpmd_mem[@]}" \
		--file-prefix="tbvh-loop-$$" --log-level=lib.eal:error --vdev="$v0" --vdev="$v1" -- --forward-mode=mac --tx-first \
		--burst="$LOOP_BURST" --txpkts=60 --eth-peer=0,"$m1" --eth-peer=1,"$m0" --auto-start --nb-cores=1 \
		--stats-period=3600 --total-num-mbufs=16384
	tp=$TB_LAST_PID
	# frames flow once testpmd is up and both ports connected: up to 30 s
	read -r f0 _ <<<"$($counters)"
	for ((i = 0; i < 60; i++)); do
		sleep 0.5
		read -r f1 _ <<<"$($counters)"
		[ "$f1" -gt "$f0" ] && break
		tb_alive "$tp" || break
	done
	sleep 1
	tb_alive "$tp" || tb_warn "$name: testpmd exited early: $(tail -n 5 "$dir/testpmd-loop.log" | tr '\n' ' ')"
	[ "$name" = ovs-dpdk ] && tb_ovs_appctl dpif-netdev/pmd-stats-clear >/dev/null 2>&1
	s0=$($counters); t0=$EPOCHREALTIME; c0=$(tb_cpu_ticks "$cpu_pid")
	sleep "$seconds"
	s1=$($counters); t1=$EPOCHREALTIME; c1=$(tb_cpu_ticks "$cpu_pid")
	if [ "$name" = ovs-dpdk ]; then
		local cyc
		cyc=$(tb_ovs_appctl dpif-netdev/pmd-stats-show 2>/dev/null | sed -n 's/.*avg processing cycles per packet: \([0-9.]*\).*/\1/p' | head -n 1)
		[ -n "$cyc" ] && record "loop/$name" "$rep" cycles_per_frame "$cyc"
	fi
	tb_stop_pid "$tp" 5
	local tpm
	tpm=$(testpmd_totals "$dir/testpmd-loop.log")
	# one line of figures: kpps us bytes/frame drops moves flooded testpmd-rx testpmd-tx testpmd-rx-dropped testpmd-tx-dropped
	# cpu-% (the switch's CPU time over the window, % of one CPU: under 100 the switch waited for frames)
	local row
	row=$(awk -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v tpm="$tpm" 'BEGIN {
		split(a, x, " "); split(b, y, " "); split(tpm, p, " ")
		n = y[1] - x[1]
		printf "%.1f %s %s %s %s %s %s %s %s %s %.0f\n", n / (t1 - t0) / 1000, (n > 0 ? sprintf("%.3f", c / hz * 1e6 / n) : "-"),
			(n > 0 ? sprintf("%.1f", (y[2] - x[2]) / n) : "-"), y[3] - x[3], (x[4] == "-" ? "-" : y[4] - x[4]),
			(x[5] == "-" ? "-" : y[5] - x[5]), p[1], p[2], p[3], p[4], c / hz / (t1 - t0) * 100 }')
	local kpps us bpf drops moves flooded rx tx rxd txd pct
	read -r kpps us bpf drops moves flooded rx tx rxd txd pct <<<"$row"
	tb_log "$name loop rep $rep: the switch forwarded $(awk -v a="$t0" -v b="$t1" -v k="$kpps" 'BEGIN { printf "%.0f frames in %.1f s", k * 1000 * (b - a), b - a }') = $kpps kpps, CPU $us us/frame ($pct% of a CPU), $bpf bytes/frame, drops $drops, MAC moves $moves, flooded $flooded; testpmd RX $rx TX $tx (dropped RX $rxd TX $txd)"
	# TX - RX: frames testpmd sent that had not come back when it stopped: those in flight plus those dropped on the way;
	# 2 x burst when no frame was lost (the loop stayed full)
	[ "$rx" = - ] || tb_log "$name loop rep $rep: TX - RX = $((tx - rx)) of the $((2 * LOOP_BURST)) frames sent first"
	[ "$moves" = 0 ] || [ "$moves" = - ] || tb_warn "$name loop rep $rep: $moves MAC moves in the window: learning flaps (the ports' MACs must differ)"
	[ "$bpf" = 60.0 ] || [ "$bpf" = - ] || tb_warn "$name loop rep $rep: $bpf bytes per frame, not 60"
	if [ "$kpps" != 0.0 ]; then
		loop_results+=("$name $kpps $us $bpf $drops $moves $rx $tx $rxd $txd $pct")
		record "loop/$name" "$rep" cpu_pct "$pct"
		record "loop/$name" "$rep" kpps "$kpps"
		record "loop/$name" "$rep" cpu_us "$us"
		record "loop/$name" "$rep" bytes_per_frame "$bpf"
		record "loop/$name" "$rep" switch_drops "$drops"
		[ "$moves" = - ] || record "loop/$name" "$rep" mac_moves "$moves"
		[ "$rx" = - ] || { record "loop/$name" "$rep" testpmd_rx "$rx"; record "loop/$name" "$rep" testpmd_tx "$tx"
			record "loop/$name" "$rep" testpmd_rx_dropped "$rxd"; record "loop/$name" "$rep" testpmd_tx_dropped "$txd"; }
	else
		tb_warn "$name loop rep $rep: left out (the switch forwarded nothing); testpmd: $(grep -m1 -iE 'error|fail|cannot' "$dir/testpmd-loop.log" || tail -n 1 "$dir/testpmd-loop.log")"
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

# ovs_dpdk_up LCORE_MASK PMD_MASK: ovs-vswitchd-dpdk with bridge br0 (netdev) and two dpdkvhostuserclient ports vhu1,
# vhu2 whose servers are the testpmds. Status 1 with OVS_DPDK_ERR (the exact error) when it cannot start here.
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
		dpdk-lcore-mask="$1" pmd-cpu-mask="$2"; then
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
loop_results=()
IFS=, read -r -a want <<<"$impls"
IFS=, read -r -a want_modes <<<"$modes"
declare -A skipped=()
for rep in $(seq "$reps"); do
	for mode in "${want_modes[@]}"; do
	if [ "$mode" = loop ]; then switch_pin=(taskset -c 0); else switch_pin=(); fi
	for impl in "${want[@]}"; do
		[ -z "${skipped[$impl]:-}" ] || continue
		case $mode/$impl in
		loop/vhost-user)
			start_daemon "[{\"name\":\"vhu1\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu1.sock\",\"mode\":\"server\"},{\"name\":\"vhu2\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu2.sock\",\"mode\":\"server\"}]"
			cpu_pid=$daemon_pid
			measure_loop vhost-user "$rep" "net_virtio_user0,path=$dir/vhu1.sock,queues=1,queue_size=1024,mac=$LOOP_MAC0" \
				"net_virtio_user1,path=$dir/vhu2.sock,queues=1,queue_size=1024,mac=$LOOP_MAC1" "$LOOP_MAC0" "$LOOP_MAC1" tb_counters
			stop_daemon
			;;
		loop/tap)
			start_daemon '[{"name":"vif1"},{"name":"vif2"}]'
			cpu_pid=$daemon_pid
			tb_wait_link "$ns" vif2 10 || tb_die "TAP vif2 did not appear"
			# testpmd's af_packet ports carry the TAPs' own MACs (distinct: the kernel made them)
			measure_loop tap "$rep" "net_af_packet0,iface=vif1,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" \
				"net_af_packet1,iface=vif2,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" \
				"$(ip netns exec "$ns" cat /sys/class/net/vif1/address)" "$(ip netns exec "$ns" cat /sys/class/net/vif2/address)" tb_counters
			stop_daemon
			;;
		loop/ovs-dpdk)
			if ovs_dpdk_up 0x1 0x1; then
				# the PMD thread is on CPU 0 (pmd-cpu-mask); its other threads go there too
				taskset -a -p -c 0 "$TB_OVS_PID" >/dev/null
				measure_loop ovs-dpdk "$rep" "net_virtio_user0,path=$dir/ovs-vhu1.sock,server=1,queues=1,queue_size=1024,mac=$LOOP_MAC0" \
					"net_virtio_user1,path=$dir/ovs-vhu2.sock,server=1,queues=1,queue_size=1024,mac=$LOOP_MAC1" "$LOOP_MAC0" "$LOOP_MAC1" ovs_counters
			else
				skipped[$impl]=$OVS_DPDK_ERR
				tb_warn "ovs-dpdk: SKIPPED: $OVS_DPDK_ERR"
				record loop/ovs-dpdk "$rep" skipped "$OVS_DPDK_ERR"
			fi
			tb_cleanup_all # ovs-vswitchd and ovsdb-server (and the namespace, made again below)
			tb_ns_create "$ns"
			;;
		txrx/vhost-user)
			start_daemon "[{\"name\":\"vhu1\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu1.sock\",\"mode\":\"server\"},{\"name\":\"vhu2\",\"kind\":\"vhost-user\",\"socket\":\"$dir/vhu2.sock\",\"mode\":\"server\"}]"
			cpu_pid=$daemon_pid
			measure vhost-user "$rep" "net_virtio_user1,path=$dir/vhu2.sock,queues=1,queue_size=1024" \
				"net_virtio_user0,path=$dir/vhu1.sock,queues=1,queue_size=1024" port_tx vhu2
			stop_daemon
			;;
		txrx/tap)
			start_daemon '[{"name":"vif1"},{"name":"vif2"}]'
			cpu_pid=$daemon_pid
			tb_wait_link "$ns" vif2 10 || tb_die "TAP vif2 did not appear"
			measure tap "$rep" "net_af_packet1,iface=vif2,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" \
				"net_af_packet0,iface=vif1,blocksz=4096,framesz=2048,framecnt=512,qpairs=1" port_tx vif2
			stop_daemon
			;;
		txrx/ovs-dpdk)
			if ovs_dpdk_up 0x1 0x2; then
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
done

# median COLUMN: the median of that column of stdin's lines ("-" when there is none)
median() { awk -v c="$1" 'NF && $c != "-" { print $c }' | sort -g | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }'; }

if [[ ",$modes," == *",loop,"* ]]; then
	echo
	echo "loop: one testpmd (mac forwarding, --tx-first, $((2 * LOOP_BURST)) frames circulating) on CPU 1, the switch on CPU 0; medians of $reps"
	echo "| path | switch forwarded, kpps | switch CPU per frame, µs | switch CPU, % of one | bytes per frame | switch drops | MAC moves | testpmd RX / TX (dropped RX / TX) |"
	echo "|---|---|---|---|---|---|---|---|"
	for impl in "${want[@]}"; do
		if [ -n "${skipped[$impl]:-}" ]; then
			echo "| $impl | skipped: ${skipped[$impl]} | | | | | | |"
			continue
		fi
		vals=$(printf '%s\n' "${loop_results[@]+"${loop_results[@]}"}" | awk -v i="$impl" '$1 == i')
		echo "| $impl | $(median 2 <<<"$vals") | $(median 3 <<<"$vals") | $(median 11 <<<"$vals") | $(median 4 <<<"$vals") | $(median 5 <<<"$vals") | $(median 6 <<<"$vals") | $(median 7 <<<"$vals") / $(median 8 <<<"$vals") ($(median 9 <<<"$vals") / $(median 10 <<<"$vals")) |"
	done
fi
[[ ",$modes," == *",txrx,"* ]] || { echo "memory: $mem_note"; exit 0; }
echo
echo "txrx: testpmd txonly -> the switch -> testpmd rxonly; medians of $reps"
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
