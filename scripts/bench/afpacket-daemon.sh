#!/usr/bin/env bash
# afpacket-daemon.sh: the daemon's CPU per 60-byte frame on the TAP <-> AF_PACKET uplink path, variants A/B interleaved
# in one run (native-notes/packet-mmap.md section 8). Each variant is an addon build and/or a config line:
#
#   a (eth0 = TAP vifa) ---fd--- [ tapbridge in br: vifa, uplink peth0 (AF_PACKET) ] ---veth peth0/eth0--- b
#
# Directions: ab = flood from a to b's MAC (TAP read + AF_PACKET send), ba = flood from b to a's MAC (AF_PACKET receive +
# TAP write). Per rep and direction every variant runs once, in turn (the order rotating), in a fresh topology; medians
# over reps. CPU per frame = the daemon's utime+stime (/proc/PID/stat, all threads) over the window / frames counted at the receiver's eth0.
#
# Direction tcp (not in the default list): one iperf3 stream each way, and the frame sizes the uplink and vifa counted
# (rx/tx packets, GSO super-frames, mean bytes per frame), printed on stderr: are 64 KiB super-frames passed whole?
#
# --rate PPS caps the generator (flood.c -r), so that every variant sees the same offered load and batch sizes: CPU
# per frame depends on frames per wakeup, which a generator sharing the 2 cores with other work does not hold steady.
#
# --perf DIR: `perf record -g` on the daemon over each window, into DIR/DIRECTION-LABEL.data (kernel vs user time).
#
# Usage: bash scripts/bench/afpacket-daemon.sh [--reps N] [--seconds S] [--rate PPS] [--perf DIR] [--dirs ab,ba,tcp] VARIANT...
#   VARIANT = LABEL=ADDON_PATH[@CONFIG_LINE]   (ADDON_PATH "-" = this checkout's build/Release; CONFIG_LINE is appended
#             at the top level of the daemon's YAML, e.g. 'packet_mmap: { qdisc_bypass: true }')
# Needs root, `npm run build`. Namespaces tb-afd-<pid>-{br,a,b}, removed on every exit path; processes stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/netns.sh
. "$REPO_ROOT/scripts/lib/netns.sh"
REPS=5
SECS=4
DIRS=ab,ba
RATE=0
PERF_DIR=
VARIANTS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--reps) REPS=$2; shift 2 ;;
	--seconds) SECS=$2; shift 2 ;;
	--dirs) DIRS=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--perf) PERF_DIR=$2; shift 2 ;;
	*) VARIANTS+=("$1"); shift ;;
	esac
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=("current=-")
WORK=$(mktemp -d)
P=tb-afd-$$
NS_BR=$P-br NS_A=$P-a NS_B=$P-b
MAC_A=02:00:00:00:00:0a MAC_B=02:00:00:00:00:0b
DAEMON=
cleanup() {
	[ -n "$DAEMON" ] && tb_stop_pid "$DAEMON" 5
	for ns in "$NS_BR" "$NS_A" "$NS_B"; do tb_ns_destroy "$ns"; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
cc -O2 -o "$WORK/flood" "$HERE/flood.c"

ticks() { local r; r=$(cat "/proc/$1/stat"); r=${r##*) }; set -- $r; echo $((${12} + ${13})); }
rxp() { ip netns exec "$1" cat /sys/class/net/eth0/statistics/rx_packets; }

run_one() { # run_one DIR ADDON CONFIG_LINE -> "us_per_frame kpps"
	local dir=$1 addon=$2 extra=$3
	for ns in "$NS_BR" "$NS_A" "$NS_B"; do
		tb_ns_create "$ns"
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n "$NS_BR" link add peth0 type veth peer name eth0 netns "$NS_B"
	ip -n "$NS_BR" link set peth0 up
	ip -n "$NS_B" link set eth0 address $MAC_B up
	{
		echo "control_socket: $WORK/tb.sock"
		echo "state_dir: $WORK"
		[ -n "$extra" ] && echo "$extra"
		echo "bridges:"
		echo "  - name: br0"
		echo "    uplink: { interface: peth0 }"
		echo "    ports:"
		echo "      - { name: vifa }"
	} >"$WORK/tb.yaml"
	rm -f "$WORK/tb.sock"
	if [ "$addon" = - ]; then
		tb_bg "$NS_BR" "$WORK/daemon.log" node "$REPO_ROOT/dist/cli/main.js" daemon --config "$WORK/tb.yaml"
	else
		tb_bg "$NS_BR" "$WORK/daemon.log" env TAPBRIDGE_NATIVE="$addon" node "$REPO_ROOT/dist/cli/main.js" daemon --config "$WORK/tb.yaml"
	fi
	DAEMON=$TB_LAST_PID
	tb_wait_socket "$WORK/tb.sock" "$DAEMON" 20 || { cat "$WORK/daemon.log" >&2; tb_die "daemon did not start"; }
	tb_wait_link "$NS_BR" vifa 10 || tb_die "vifa did not appear"
	ip -n "$NS_BR" link set vifa netns "$NS_A"
	ip -n "$NS_A" link set vifa name eth0
	ip -n "$NS_A" link set eth0 address $MAC_A up
	sleep 0.5
	if [ "$dir" = tcp ]; then
		tcp_sizes
		return
	fi
	local src_ns=$NS_A dst_ns=$NS_B src=$MAC_A dst=$MAC_B
	[ "$dir" = ba ] && { src_ns=$NS_B dst_ns=$NS_A src=$MAC_B dst=$MAC_A; }
	ip netns exec "$src_ns" timeout $((SECS + 10)) "$WORK/flood" -i eth0 -d $dst -s $src -t $((SECS + 2)) -c 100000000 -r "$RATE" >/dev/null 2>&1 &
	local gen=$!
	sleep 1
	local r0 c0 r1 c1
	r0=$(rxp "$dst_ns"); c0=$(ticks "$DAEMON")
	if [ -n "$PERF_DIR" ]; then
		perf record -F 999 -g -p "$DAEMON" -o "$PERF_DIR/$dir-$LABEL.data" -- sleep "$SECS" >/dev/null 2>&1 || sleep "$SECS"
	else
		sleep "$SECS"
	fi
	r1=$(rxp "$dst_ns"); c1=$(ticks "$DAEMON")
	wait "$gen" 2>/dev/null || true
	tb_stop_pid "$DAEMON" 5
	DAEMON=
	for ns in "$NS_BR" "$NS_A" "$NS_B"; do tb_ns_destroy "$ns"; done
	awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v f=$((r1 - r0)) -v s="$SECS" \
		'BEGIN { printf "%.3f %.0f\n", (f > 0 ? c / hz * 1e6 / f : 0), f / s / 1000 }'
}

# tcp_sizes: one iperf3 stream a -> b, then one b -> a, through the running daemon; prints per direction the Gbit/s and
# what the uplink and vifa counted: packets, GSO super-frames and mean bytes per frame on rx and tx (whole 64 KiB
# super-frames passed through show as a mean far above the MTU and GSO counts equal on both sides).
tcp_sizes() {
	ip -n "$NS_A" addr add 198.18.0.1/24 dev eth0
	ip -n "$NS_B" addr add 198.18.0.2/24 dev eth0
	local d c s out="" g
	for d in ab ba; do
		c=$NS_A s=198.18.0.2
		[ "$d" = ba ] && { c=$NS_B s=198.18.0.1; }
		local srv_ns=$NS_B
		[ "$d" = ba ] && srv_ns=$NS_A
		ip netns exec "$srv_ns" timeout $((SECS + 15)) iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
		local srv=$!
		sleep 0.5
		local before after
		before=$(TAPBRIDGE_SOCKET=$WORK/tb.sock node "$REPO_ROOT/dist/cli/main.js" stats -j)
		g=$(ip netns exec "$c" timeout $((SECS + 10)) iperf3 -c "$s" -p 5201 -t "$SECS" -J 2>/dev/null |
			node -e 'let t="";process.stdin.on("data",d=>t+=d).on("end",()=>{try{console.log((JSON.parse(t).end.sum_received.bits_per_second/1e9).toFixed(2))}catch{console.log("?")}})')
		after=$(TAPBRIDGE_SOCKET=$WORK/tb.sock node "$REPO_ROOT/dist/cli/main.js" stats -j)
		wait "$srv" 2>/dev/null || true
		out="$out$d ${g}Gbit/s $(node -e '
			const [b, a] = process.argv.slice(1).map((j) => JSON.parse(j));
			const ports = (v) => { const m = {}; const walk = (o) => { if (o && typeof o === "object") { if (typeof o.name === "string" && typeof o.rx_packets === "number") m[o.name] = o; for (const x of Object.values(o)) walk(x); } }; walk(v); return m; };
			const pb = ports(b), pa = ports(a);
			const row = (n) => { const d = (k) => (pa[n]?.[k] ?? 0) - (pb[n]?.[k] ?? 0); const mean = (p, y) => (d(p) > 0 ? Math.round(d(y) / d(p)) : 0);
				return `${n}: rx ${d("rx_packets")} (gso ${d("rx_gso_packets")}, ${mean("rx_packets", "rx_bytes")} B/frame) tx ${d("tx_packets")} (gso ${d("tx_gso_packets")}, ${mean("tx_packets", "tx_bytes")} B/frame)`; };
			console.log(["vifa", "peth0"].map(row).join("; "));' "$before" "$after")
"
	done
	tb_stop_pid "$DAEMON" 5
	DAEMON=
	for ns in "$NS_BR" "$NS_A" "$NS_B"; do tb_ns_destroy "$ns"; done
	printf '%s' "$out" >&2
	echo "0 0"
}

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
OUT=$WORK/lines
for rep in $(seq 1 "$REPS"); do
	for dir in ${DIRS//,/ }; do
		nv=${#VARIANTS[@]}
		for ((i = 0; i < nv; i++)); do
			v=${VARIANTS[$(((i + rep) % nv))]}  # the order rotates from rep to rep
			label=${v%%=*} rest=${v#*=}
			LABEL=$label
			addon=${rest%%@*} extra=
			[[ "$rest" == *@* ]] && extra=${rest#*@}
			[ "$addon" = - ] || addon=$(cd "$(dirname "$addon")" && pwd)/$(basename "$addon")
			echo "$dir $label $(run_one "$dir" "$addon" "$extra")"
		done
	done
done | tee "$OUT"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians over $REPS reps: daemon CPU us per frame, kpps at the receiver"
awk '{ k = $1 " " $2; n[k]++; c[k, n[k]] = $3; p[k, n[k]] = $4; if (!(k in seen)) { seen[k] = 1; o[++m] = k } }
function med(a, k, cnt,   i, j, x, t) {
	for (i = 1; i <= cnt; i++) x[i] = a[k, i]
	for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
	return cnt % 2 ? x[(cnt + 1) / 2] : (x[cnt / 2] + x[cnt / 2 + 1]) / 2
}
END { for (i = 1; i <= m; i++) printf "%-30s %6.3f us  %6.0f kpps\n", o[i], med(c, o[i], n[o[i]]), med(p, o[i], n[o[i]]) }' "$OUT"
