#!/usr/bin/env bash
# Many guests on one host (issue 21): a noisy neighbour against two victims, side by side in one run, on the kernel
# bridge, Open vSwitch userspace (TAP ports, userspace TSO) and tapbridge (TAP ports); then tapbridge with a rate limit
# and with storm control on the noisy guest, and the kernel bridge with the same limit in tc.
#
#   +- P-g1 -+  +- P-g2 -+  +- P-g3 -+  +- P-g4 -+      g1 noisy, g2 -> g3 victims (ping every 10 ms, then TCP),
#   | eth0   |  | eth0   |  | eth0   |  | eth0   |      g4 the sink of g1's unicast floods
#   +---|----+  +---|----+  +---|----+  +---|----+
#   +---|-----------|-----------|-----------|-------+
#   |  [ kernel br0 (veths) | ovs-vswitchd br0 (TAPs) | tapbridge xenbr0 (TAPs) ]   P-br
#   +-----------------------------------------------+
#
# Cases (what g1 does for the whole measurement; flood.c, 60-byte frames as fast as it can, or iperf3):
#   idle | bcast (ff:ff:ff:ff:ff:ff) | unknown (a MAC nobody has) | known (g4's MAC) | udp (iperf3 -u -b 0 to g4)
# Rows: kernel, ovs, tapbridge without limits; tapbridge+limit (g1: rate_limit RATE_KBPS), kernel+tc (g1's veth in the
# bridge: tc tbf on g1's eth0 at the same rate), tapbridge+limit1M (1 Mbit/s: refuses nearly all of a 60-byte flood,
# for the cost of a refused frame), tapbridge+storm (g1: storm_control broadcast/unknown_unicast STORM_PPS).
# Measured under each case: victim ping g2 -> g3 p50/p99 (ms, -i 0.01, PING_COUNT pings), then victim TCP g2 -> g3
# (iperf3 -t TCP_SECONDS, Gbit/s) and its ratio to the row's idle case; what the flood delivered (rx_packets/s at g4,
# which every flood reaches and no victim traffic does); the bridge's CPU (% of one core; the kernel bridge works in the senders' softirq: -) and,
# for tapbridge and OVS, their CPU per frame g1 offered (us; tx_packets of g1's eth0 + its tx_dropped), over 1.5 s of
# the flood alone before the victims start; the whole machine's busy
# share (/proc/stat, both cores: what the guests, the generator and everything else on the machine took).
# Targets (printed MET/MISS):
#   with g1 limited: victims' ping p50 <= 1.5x idle under every flood; TCP >= kernel+tc's in the same case and >= 0.6x idle
#   with no limit: tapbridge's ping p50 <= OVS's and TCP ratio >= OVS's, per case
#   a refused frame costs the daemon < 10% of a forwarded one (CPU per offered frame, known-unicast flood, limit1M/none)
# and, to tell the daemon's own delays from CPU taken elsewhere: the bridge threads' run-queue wait per time slice (us,
# /proc/PID/task/*/schedstat: how long the bridge was runnable but had no CPU) and the whole machine's busy share.
#
# Usage (root, after `npm ci` and `npm run build`): bash scripts/bench/tenants.sh [--quick] [--impl LIST]
#   --quick   fewer pings and shorter TCP (a smoke run)        --impl  subset of kernel,ovs,tapbridge (default all)
# Safety: namespaces tb-ten-PID-*, removed on every exit path; addresses 198.18.21.0/24; generators bounded in time;
# only PIDs this script started are stopped; the root namespace is not touched.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/netns.sh
. "$REPO/scripts/lib/netns.sh"

PING_COUNT=300
TCP_SECONDS=4
RATE_KBPS=100000
# the refused-frame cost: a limit that refuses nearly all of a 60-byte flood (1 Mbit/s: ~2 kpps)
RATE_LOW_KBPS=1000
STORM_PPS=1000
IMPLS=kernel,ovs,tapbridge
while [ $# -gt 0 ]; do
	case $1 in
	--quick) PING_COUNT=100 TCP_SECONDS=2 ;;
	--impl) IMPLS=$2; shift ;;
	*) tb_die "unknown option $1" ;;
	esac
	shift
done
has_impl() { [[ ",$IMPLS," == *",$1,"* ]]; }

tb_require_root
tb_require_cmds ip iperf3 ping cc tc node getconf
WORK=$(mktemp -d /tmp/tapbridge-tenants.XXXXXX)
tb_trap_cleanup "$WORK"
cc -O2 -o "$WORK/flood" "$HERE/flood.c" || tb_die "cannot compile flood.c"
NODE_BIN=$(command -v node)
CLI=("$NODE_BIN" "$REPO/dist/cli/main.js")
[ -f "$REPO/dist/cli/main.js" ] || tb_die "dist/cli/main.js missing: npm run build"
if has_impl ovs && ! tb_ovs_have; then
	tb_warn "Open vSwitch not installed: ovs row skipped"
	IMPLS=${IMPLS//ovs/}
fi

P=tb-ten-$$
NS_BR=$P-br
MAC=(x 02:00:00:21:00:01 02:00:00:21:00:02 02:00:00:21:00:03 02:00:00:21:00:04)
IP=(x 198.18.21.1 198.18.21.2 198.18.21.3 198.18.21.4)
UNKNOWN_MAC=02:00:00:21:99:99
BR_PIDS=()
ROWS=$WORK/rows.tsv
: >"$ROWS"

guest_ns() {
	tb_ns_create "$1"
	ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
}

guest_addr() { # guest_addr I
	local ns=$P-g$1
	ip -n "$ns" link set dev eth0 address "${MAC[$1]}"
	ip -n "$ns" addr add "${IP[$1]}/24" dev eth0
	ip -n "$ns" link set dev eth0 up
	# static neighbours: no ARP in the way of the first ping
	local j
	for j in 1 2 3 4; do [ "$j" = "$1" ] || ip -n "$ns" neigh replace "${IP[$j]}" lladdr "${MAC[$j]}" dev eth0 nud permanent; done
}

move_tap() { tb_move_link "$NS_BR" "$1" "$P-g$2"; } # move_tap IFNAME I

ovs_up() {
	local d=$WORK/ovs i
	tb_ovs_up "$NS_BR" "$d" ovs-vswitchd userspace-tso-enable=true || { tb_warn "$TB_OVS_ERR"; return 1; }
	BR_PIDS=("$TB_OVS_PID")
	local cmd=(add-br br0 -- set bridge br0 datapath_type=netdev)
	for i in 1 2 3 4; do cmd+=(-- add-port br0 "vif$i" -- set interface "vif$i" type=tap); done
	tb_ovs_vsctl "$d" "${cmd[@]}" >>"$d/vsctl.log" 2>&1
}

# topo_up ROW: the bridge and four guests; ROW: kernel | kernel+tc | ovs | tapbridge | tapbridge+limit | tapbridge+storm
topo_up() {
	local row=$1 i
	BR_PIDS=()
	tb_ns_create "$NS_BR"
	for i in 1 2 3 4; do guest_ns "$P-g$i"; done
	case $row in
	kernel*)
		ip -n "$NS_BR" link add br0 type bridge stp_state 0
		ip -n "$NS_BR" link set dev br0 up
		for i in 1 2 3 4; do
			ip -n "$NS_BR" link add "vif$i" type veth peer name eth0 netns "$P-g$i"
			ip -n "$NS_BR" link set dev "vif$i" master br0 up
		done
		if [ "$row" = kernel+tc ]; then
			# what g1 sends, limited before it reaches the bridge (this kernel has no tc police action: a tbf on g1's
			# eth0, like netback's credit on what a guest sends), burst a tenth of a second as rate_limit's default
			ip netns exec "$P-g1" tc qdisc add dev eth0 root tbf rate "${RATE_KBPS}kbit" burst $((RATE_KBPS * 1000 / 8 / 10)) latency 50ms
		fi
		;;
	ovs)
		ovs_up || { tb_warn "OVS did not start (see $WORK/ovs)"; return 1; }
		for i in 1 2 3 4; do move_tap "vif$i" "$i"; done
		;;
	tapbridge*)
		local g1='{ "name": "vif1" }'
		[ "$row" = tapbridge+limit ] && g1="{ \"name\": \"vif1\", \"rate_limit\": { \"kbps\": $RATE_KBPS } }"
		[ "$row" = tapbridge+limit1M ] && g1="{ \"name\": \"vif1\", \"rate_limit\": { \"kbps\": $RATE_LOW_KBPS } }"
		[ "$row" = tapbridge+storm ] && g1="{ \"name\": \"vif1\", \"storm_control\": { \"broadcast_pps\": $STORM_PPS, \"unknown_unicast_pps\": $STORM_PPS } }"
		cat >"$WORK/tb.yaml" <<-EOF
			{ "control_socket": "$WORK/tb.sock", "state_dir": "$WORK/state", "log_level": "warn",
			  "bridges": [ { "name": "xenbr0", "ports": [ $g1, { "name": "vif2" }, { "name": "vif3" }, { "name": "vif4" } ] } ] }
		EOF
		tb_bg "$NS_BR" "$WORK/tb.log" "${CLI[@]}" daemon --config "$WORK/tb.yaml"
		BR_PIDS=("$TB_LAST_PID")
		tb_wait_socket "$WORK/tb.sock" "$TB_LAST_PID" 20 || { tb_warn "tapbridge did not start: $(tail -n 5 "$WORK/tb.log")"; return 1; }
		for i in 1 2 3 4; do move_tap "vif$i" "$i"; done
		;;
	esac
	for i in 1 2 3 4; do guest_addr "$i"; done
	# every guest speaks once, so that the bridge knows where each MAC is (g4: the known-unicast destination)
	for i in 2 3 4; do ip netns exec "$P-g$i" ping -c 1 -W 1 "${IP[1]}" >/dev/null 2>&1 || true; done
	ip netns exec "$P-g1" ping -c 2 -W 1 "${IP[4]}" >/dev/null 2>&1 || true
	ip netns exec "$P-g2" ping -c 1 -W 2 "${IP[3]}" >/dev/null 2>&1 || tb_warn "$row: g2 cannot reach g3"
}

topo_down() {
	tb_cleanup_all
	rm -rf "$WORK/tb.sock" "$WORK/state" "$WORK/ovs"
	BR_PIDS=()
}

cpu_ns() { tb_cpu_ns "${BR_PIDS[@]}"; }                 # on-CPU ns of every thread of BR_PIDS
cpu_ticks() { tb_cpu_ticks "${BR_PIDS[@]+"${BR_PIDS[@]}"}"; } # utime+stime of BR_PIDS, clock ticks
host_busy() { # "busy total" jiffies of the whole machine (/proc/stat cpu line)
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
sched_of() { # "wait_ns slices" summed over the threads of BR_PIDS
	local pid f w=0 n=0 a b c
	for pid in "${BR_PIDS[@]}"; do
		for f in /proc/"$pid"/task/*/schedstat; do
			read -r a b c <"$f" 2>/dev/null || continue
			w=$((w + b)) n=$((n + c))
		done
	done
	echo "$w $n"
}
stat_of() { ip netns exec "$P-g$1" cat "/sys/class/net/eth0/statistics/$2"; }

rtt_percentiles() {
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- -"; exit }
		i50 = int(0.50 * NR); if (i50 < 0.50 * NR) i50++
		i99 = int(0.99 * NR); if (i99 < 0.99 * NR) i99++
		printf "%.3f %.3f\n", v[i50], v[i99] }'
}

# measure ROW CASE: g1 does CASE for the whole window; victim ping, then victim TCP; one line into ROWS.
measure() {
	local row=$1 case=$2 secs=$((PING_COUNT / 100 + TCP_SECONDS + 6)) gen='' sink=4 hz
	hz=$(getconf CLK_TCK)
	tb_bg "$P-g3" "$WORK/srv.log" timeout $((secs + 10)) iperf3 -s -1 -B "${IP[3]}" -p 5201
	local srv=$TB_LAST_PID
	case $case in
	bcast) tb_bg "$P-g1" "$WORK/gen.log" "$WORK/flood" -i eth0 -s "${MAC[1]}" -d ff:ff:ff:ff:ff:ff -t "$secs" ;;
	unknown) tb_bg "$P-g1" "$WORK/gen.log" "$WORK/flood" -i eth0 -s "${MAC[1]}" -d "$UNKNOWN_MAC" -t "$secs" ;;
	known) tb_bg "$P-g1" "$WORK/gen.log" "$WORK/flood" -i eth0 -s "${MAC[1]}" -d "${MAC[4]}" -t "$secs" ;;
	udp)
		tb_bg "$P-g4" "$WORK/usrv.log" timeout $((secs + 10)) iperf3 -s -1 -B "${IP[4]}" -p 5202
		sleep 0.3
		tb_bg "$P-g1" "$WORK/gen.log" timeout $((secs + 5)) iperf3 -c "${IP[4]}" -p 5202 -u -b 0 -t "$secs"
		;;
	esac
	[ "$case" = idle ] || gen=$TB_LAST_PID
	sleep 1
	# the flood alone (no victim traffic yet): the bridge's CPU per frame g1 offered, from on-CPU ns (schedstat)
	local fo0 fo1 fn0 fn1 cpu_us=-
	fo0=$(($(stat_of 1 tx_packets) + $(stat_of 1 tx_dropped))) fn0=$(cpu_ns)
	sleep 1.5
	fo1=$(($(stat_of 1 tx_packets) + $(stat_of 1 tx_dropped))) fn1=$(cpu_ns)
	if [ "${#BR_PIDS[@]}" -gt 0 ] && [ $((fo1 - fo0)) -ge 1000 ]; then
		cpu_us=$(awk -v c=$((fn1 - fn0)) -v n=$((fo1 - fo0)) 'BEGIN { printf "%.2f", c / n / 1000 }')
	fi
	local t0 c0 rx0 tx0 dr0 t1 c1 rx1 tx1 dr1 out p50 p99 gbps
	local hb0 ht0 hb1 ht1 rw0=0 rs0=0 rw1=0 rs1=0
	read -r hb0 ht0 <<<"$(host_busy)"
	[ "${#BR_PIDS[@]}" -eq 0 ] || read -r rw0 rs0 <<<"$(sched_of)"
	t0=$EPOCHREALTIME c0=$(cpu_ticks) rx0=$(stat_of "$sink" rx_packets) tx0=$(stat_of 1 tx_packets) dr0=$(stat_of 1 tx_dropped)
	out=$(ip netns exec "$P-g2" ping -c "$PING_COUNT" -i 0.01 -W 1 "${IP[3]}" 2>&1 || true)
	read -r p50 p99 <<<"$(rtt_percentiles <<<"$out")"
	gbps=$(ip netns exec "$P-g2" timeout $((TCP_SECONDS + 10)) iperf3 -c "${IP[3]}" -p 5201 -t "$TCP_SECONDS" -J 2>/dev/null |
		"$NODE_BIN" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const e=JSON.parse(s).end;console.log((e.sum_received.bits_per_second/1e9).toFixed(3))}catch{console.log("0")}})')
	t1=$EPOCHREALTIME c1=$(cpu_ticks) rx1=$(stat_of "$sink" rx_packets) tx1=$(stat_of 1 tx_packets) dr1=$(stat_of 1 tx_dropped)
	read -r hb1 ht1 <<<"$(host_busy)"
	[ "${#BR_PIDS[@]}" -eq 0 ] || read -r rw1 rs1 <<<"$(sched_of)"
	local host_pct
	host_pct=$(awk -v b=$((hb1 - hb0)) -v t=$((ht1 - ht0)) 'BEGIN { printf "%.0f", (t > 0 ? 100 * b / t : 0) }')
	# the bridge's threads: time spent runnable but waiting for a CPU, per time they got one (/proc/PID/task/*/schedstat)
	local rq
	rq=$(awk -v w=$((rw1 - rw0)) -v n=$((rs1 - rs0)) 'BEGIN { if (n < 1) print "-"; else printf "%.0f", w / n / 1000 }')
	[ -z "$gen" ] || tb_stop_pid "$gen" 3
	tb_stop_pid "$srv" 3
	local dt cpu_pct flood_kpps
	dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	flood_kpps=$(awk -v r=$((rx1 - rx0)) -v d="$dt" 'BEGIN { printf "%.1f", r / d / 1000 }')
	if [ "${#BR_PIDS[@]}" -gt 0 ]; then
		cpu_pct=$(awk -v c=$((c1 - c0)) -v h="$hz" -v d="$dt" 'BEGIN { printf "%.0f", 100 * c / h / d }')
	else
		cpu_pct=-
	fi
	[ "$case" = idle ] && flood_kpps=-
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$case" "$p50" "$p99" "$gbps" "$flood_kpps" "$cpu_pct" "$cpu_us" "$host_pct" "$rq" >>"$ROWS"
	printf '  %-16s %-8s ping p50 %s p99 %s ms  tcp %s Gbit/s  flood %s kpps  cpu %s%%  %s us/offered frame  machine %s%% busy  run-queue wait %s us\n' \
		"$row" "$case" "$p50" "$p99" "$gbps" "$flood_kpps" "$cpu_pct" "$cpu_us" "$host_pct" "$rq"
}

run_row() { # run_row ROW CASE...
	local row=$1 c
	shift
	tb_info "$row"
	if ! topo_up "$row"; then topo_down; return 0; fi
	for c in "$@"; do measure "$row" "$c"; done
	topo_down
}

ALL=(idle bcast unknown known udp)
has_impl kernel && run_row kernel "${ALL[@]}"
has_impl ovs && run_row ovs "${ALL[@]}"
if has_impl tapbridge; then
	run_row tapbridge "${ALL[@]}"
	run_row tapbridge+limit "${ALL[@]}"
	run_row tapbridge+storm idle bcast unknown
	run_row tapbridge+limit1M idle known
fi
has_impl kernel && run_row kernel+tc "${ALL[@]}"

# ---------------------------------------------------------------------------------------------------- table, targets
echo
"$NODE_BIN" - "$ROWS" "$RATE_KBPS" "$STORM_PPS" <<'EOF'
const fs = require('fs');
const [file, rateKbps, stormPps] = process.argv.slice(2);
const rows = fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
  const [row, kase, p50, p99, gbps, flood, cpu, cpuUs, host, rq] = l.split('\t');
  return { row, kase, p50: +p50, p99: +p99, gbps: +gbps, flood, cpu, cpuUs, host, rq };
});
const get = (row, kase) => rows.find((r) => r.row === row && r.kase === kase);
const ratio = (r) => { const idle = get(r.row, 'idle'); return idle && idle.gbps > 0 ? r.gbps / idle.gbps : NaN; };
const label = { idle: 'nothing', bcast: '60-byte broadcast flood', unknown: 'unknown-unicast flood', known: 'known-unicast flood to g4', udp: 'UDP bulk to g4 (iperf3 -b 0)' };
console.log(`| row | g1 does | victim ping p50 / p99 (ms) | victim TCP (Gbit/s) | vs idle | flood delivered (kpps) | bridge CPU | us per offered frame | machine busy | bridge run-queue wait per slice (us) |`);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.row} | ${label[r.kase]} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} | ${r.gbps.toFixed(2)} | ${ratio(r).toFixed(2)} | ${r.flood} | ${r.cpu === '-' ? '-' : r.cpu + '%'} | ${r.cpuUs} | ${r.host}% | ${r.rq} |`);
}
console.log(`\n(limit: rate_limit ${rateKbps} kbit/s on g1, kernel+tc: tc tbf on g1's eth0 at the same rate; storm: ${stormPps} pps broadcast and unknown unicast)\n`);
const verdict = (ok, what) => console.log(`${Number.isNaN(ok) || ok === undefined ? 'n/a ' : ok ? 'MET ' : 'MISS'}  ${what}`);
for (const k of ['bcast', 'unknown', 'known', 'udp']) {
  const l = get('tapbridge+limit', k), idle = get('tapbridge+limit', 'idle'), kt = get('kernel+tc', k);
  if (l && idle) verdict(l.p50 <= 1.5 * idle.p50, `limited, ${k}: victim ping p50 ${l.p50.toFixed(2)} <= 1.5 x idle ${idle.p50.toFixed(2)} ms`);
  if (l && kt) verdict(l.gbps >= kt.gbps, `limited, ${k}: victim TCP ${l.gbps.toFixed(2)} >= kernel+tc ${kt.gbps.toFixed(2)} Gbit/s`);
  if (l && idle) verdict(ratio(l) >= 0.6, `limited, ${k}: victim TCP ratio ${ratio(l).toFixed(2)} >= 0.6`);
  const t = get('tapbridge', k), o = get('ovs', k);
  if (t && o) verdict(t.p50 <= o.p50, `no limit, ${k}: ping p50 tapbridge ${t.p50.toFixed(2)} <= OVS ${o.p50.toFixed(2)} ms`);
  if (t && o) verdict(ratio(t) >= ratio(o), `no limit, ${k}: TCP ratio tapbridge ${ratio(t).toFixed(2)} >= OVS ${ratio(o).toFixed(2)}`);
}
const fwd = get('tapbridge', 'known'), ref = get('tapbridge+limit1M', 'known');
if (fwd && ref && fwd.cpuUs !== '-' && ref.cpuUs !== '-') {
  verdict(+ref.cpuUs < 0.1 * +fwd.cpuUs, `refused frame ${ref.cpuUs} us < 10% of forwarded ${fwd.cpuUs} us (daemon CPU per offered frame, known-unicast flood)`);
}
EOF
