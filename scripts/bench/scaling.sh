# shellcheck shell=bash
# The --scaling mode of scripts/bench/run.sh (issue 13: "how cost grows"). Sourced by run.sh after its topology and
# measuring helpers; defines functions, runs nothing.
#
# Part 1, ports: one bridge with N TAP ports (N from --scaling-ports, default 2, 8, 32), one host namespace per port:
#
#   +- PREFIX-h1 -+  +- PREFIX-h2 -+        +- PREFIX-hN-1 -+  +- PREFIX-hN -+
#   | eth0        |  | eth0        |  ...   | eth0          |  | eth0        |    host i: MAC 02:00:00:01:00:<i>
#   +-----|-------+  +-----|-------+        +------|--------+  +-----|-------+    pairs (1,2), (3,4), ... (N-1,N)
#         | vif1           | vif2                  | vifN-1          | vifN
#   +-----|----------------|-----------------------|-----------------|-------+
#   |   [ tapbridge daemon | kernel br0 (veths) | vde_switch | ovs-vswitchd ]  |  PREFIX-br
#   +-------------------------------------------------------------------------+
#
# Every host sends to its partner (so the N/2 pairs send to each other at once), all from ONE flood.c process (-m: a
# socket per host, opened inside the host's namespace, one batch of 64 per host in turn), capped at --scaling-rate kpps
# in total (default 800: more than any userspace bridge forwards here, and bounded so that the generator leaves the
# bridge its share of the 2 cores; one process, so 32 hosts start together and cost what 2 do). Variant "unicast":
# every frame to the partner's MAC; variant "bcast": 10% of the frames to ff:ff:ff:ff:ff:ff (flooded to N-1 ports).
# Counters are read with nsstat.c (one process entering every host namespace). Over the flood window:
#   <variant>_fwd_pps      frames delivered to the hosts (sum of rx_packets of every host's eth0; flooded copies count)
#   <variant>_in_pps       frames the bridge took in (sum of the hosts' tx_packets: for a TAP, what the bridge read)
#   <variant>_drop_pps     frames the hosts' eth0 dropped (tx_dropped: a TAP's ring full, the bridge did not read them)
#   <variant>_offered_pps  in + drop: what the generator handed to the hosts' eth0 in the window
#   <variant>_gen_pps      the generator's own figure over its whole run (what sendmmsg reported as sent: a frame a
#                          full TAP ring dropped ends that call, so this undercounts offered when the bridge falls behind)
#   <variant>_cpu_us       bridge CPU per delivered frame (utime+stime of the bridge process, /proc/PID/stat)
#   <variant>_cpu_util_pct the bridge's CPU over the window (% of one core)
# recorded as IMPL / ports<N>. The kernel bridge forwards in the senders' context: no CPU figure.
#
# Part 2, busy streams: the two-host topology of the comparison (path tap; the kernel bridge: veth) and
# ping -i 0.01 -c --load-ping-count while 0, 1 and 2 iperf3 TCP streams run a -> b: busy<K>_ping_p50_ms, _p99_ms, _ms,
# _loss_pct and busy<K>_tcp_gbps, recorded as IMPL / streams.

SCALE_HOSTS=() # the host namespaces of the current scaling topology

scale_mac() { printf '02:00:00:01:00:%02x' "$1"; }
scale_partner() { if [ $(($1 % 2)) -eq 1 ]; then echo $(($1 + 1)); else echo $(($1 - 1)); fi; }

# scale_up IMPL N: the N-port topology; status 1 (with SCALE_ERR) when it cannot be built.
SCALE_ERR=
scale_up() {
	local impl=$1 n=$2 i
	BR_PIDS=()
	SCALE_HOSTS=()
	SCALE_ERR=
	host_ns "$NS_BR"
	for ((i = 1; i <= n; i++)); do
		host_ns "$PREFIX-h$i"
		SCALE_HOSTS+=("$PREFIX-h$i")
	done
	case $impl in
	kernel)
		ip -n "$NS_BR" link add br0 type bridge stp_state 0
		ip -n "$NS_BR" link set dev br0 up
		for ((i = 1; i <= n; i++)); do
			veth_to "$PREFIX-h$i" "vif$i"
			ip -n "$NS_BR" link set dev "vif$i" master br0
		done
		;;
	tapbridge)
		{
			echo "control_socket: $WORK/tb.sock"
			echo "state_dir: $WORK"
			[ -n "$BUSY_POLL_US" ] && echo "busy_poll_us: $BUSY_POLL_US"
			[ -n "${DATA_WORKERS:-}" ] && echo "data_workers: $DATA_WORKERS"
			echo "bridges:"
			echo "  - name: br0"
			# IGMP/MLD snooping keeps a bridge on the main thread: off when workers are asked for
			[ -n "${DATA_WORKERS:-}" ] && echo "    multicast_snooping: false"
			echo "    ports:"
			for ((i = 1; i <= n; i++)); do echo "      - { name: vif$i }"; done
		} >"$WORK/tb.yaml"
		tb_bg "$NS_BR" "$WORK/daemon-scale$n.log" "$NODE_BIN" "$TB_MAIN" daemon --config "$WORK/tb.yaml"
		BR_PIDS=("$TB_LAST_PID")
		if ! tb_wait_socket "$WORK/tb.sock" "$TB_LAST_PID" 30; then
			SCALE_ERR="tapbridge daemon did not start: $(tail -n 3 "$WORK/daemon-scale$n.log" | tr '\n' ' ')"
			return 1
		fi
		;;
	vde)
		local taps=()
		for ((i = 1; i <= n; i++)); do taps+=(-t "vif$i"); done
		ip netns exec "$NS_BR" vde_switch -d -n $((n + 4)) -p "$WORK/vde.pid" -s "$WORK/vde.ctl" -M "$WORK/vde.mgmt" \
			"${taps[@]}" >"$WORK/vde-scale$n.log" 2>&1 </dev/null
		local pid
		pid=$(tb_wait_pidfile "$WORK/vde.pid") || { SCALE_ERR="vde_switch wrote no pidfile"; return 1; }
		TB_PIDS+=("$pid")
		BR_PIDS=("$pid")
		;;
	ovs)
		local ports=()
		for ((i = 1; i <= n; i++)); do ports+=("vif$i:tap"); done
		ovs_up "${ports[@]}" || { SCALE_ERR=$OVS_ERR; return 1; }
		;;
	esac
	for ((i = 1; i <= n; i++)); do
		[ "$impl" = kernel ] || move_tap "vif$i" "$PREFIX-h$i"
		ip -n "$PREFIX-h$i" link set dev eth0 address "$(scale_mac "$i")"
		ip -n "$PREFIX-h$i" link set dev eth0 up
	done
	# the generator's host list; every host announces its MAC with one broadcast frame (batches of 1, all broadcast), so
	# the pairs' unicast is known from the start
	for ((i = 1; i <= n; i++)); do
		echo "$PREFIX-h$i eth0 $(scale_mac "$i") $(scale_mac "$(scale_partner "$i")")"
	done >"$WORK/scale-hosts"
	local before after
	before=$(scale_counters | cut -d' ' -f1)
	timeout 10 "$WORK/flood" -m "$WORK/scale-hosts" -b 1 -c "$n" -B 100 -t 5 >"$WORK/scale-prime.out" 2>&1 || true
	sleep 0.5
	after=$(scale_counters | cut -d' ' -f1)
	if [ "$after" -le "$before" ]; then
		SCALE_ERR="no frame crossed the bridge after set-up ($impl, $n ports)"
		return 1
	fi
	return 0
}

# scale_counters: "rx tx tx_dropped" summed over the hosts' eth0 (nsstat.c; "0 0 0" when it fails).
scale_counters() {
	local v
	v=$("$WORK/nsstat" eth0 "${SCALE_HOSTS[@]}" 2>>"$WORK/nsstat.err") || tb_warn "nsstat: $(tail -n 1 "$WORK/nsstat.err")"
	[[ $v =~ ^[0-9]+\ [0-9]+\ [0-9]+$ ]] || v="0 0 0"
	echo "$v"
}

# scale_flood IMPL N VARIANT BCAST_PCT REP: every host floods its partner for the window; records the VARIANT_* metrics.
scale_flood() {
	local impl=$1 n=$2 var=$3 pct=$4 rep=$5 gen t0 t1 ta tb c0 c1 rx0 tx0 rx1 tx1 d0 d1
	timeout $((FLOOD_SECONDS + 10)) "$WORK/flood" -m "$WORK/scale-hosts" -t $((FLOOD_SECONDS + 2)) -c 2000000000 \
		-r $((SCALING_KPPS * 1000)) -B "$pct" >"$WORK/scale-flood.out" 2>&1 </dev/null &
	gen=$!
	TB_PIDS+=("$gen")
	sleep 1
	ta=$EPOCHREALTIME; read -r rx0 tx0 d0 <<<"$(scale_counters)"; c0=$(cpu_ticks); tb=$EPOCHREALTIME
	t0=$(awk -v a="$ta" -v b="$tb" 'BEGIN { printf "%.6f", (a + b) / 2 }')
	sleep "$FLOOD_SECONDS"
	ta=$EPOCHREALTIME; read -r rx1 tx1 d1 <<<"$(scale_counters)"; c1=$(cpu_ticks); tb=$EPOCHREALTIME
	t1=$(awk -v a="$ta" -v b="$tb" 'BEGIN { printf "%.6f", (a + b) / 2 }')
	wait "$gen" 2>/dev/null || true
	local gen_pps
	gen_pps=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' "$WORK/scale-flood.out")
	local frames=$((rx1 - rx0))
	record "$impl" "ports$n" "$rep" "${var}_fwd_pps" "$(awk -v f="$frames" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", f / (b - a) }')"
	record "$impl" "ports$n" "$rep" "${var}_in_pps" "$(awk -v f=$((tx1 - tx0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", f / (b - a) }')"
	record "$impl" "ports$n" "$rep" "${var}_drop_pps" "$(awk -v f=$((d1 - d0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", f / (b - a) }')"
	record "$impl" "ports$n" "$rep" "${var}_offered_pps" "$(awk -v f=$((tx1 - tx0 + d1 - d0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", f / (b - a) }')"
	record "$impl" "ports$n" "$rep" "${var}_gen_pps" "${gen_pps:-0}"
	if [ "${#BR_PIDS[@]}" -gt 0 ] && [ "$frames" -gt 0 ]; then
		local u0 s0 u1 s1
		read -r u0 s0 <<<"$c0"
		read -r u1 s1 <<<"$c1"
		record "$impl" "ports$n" "$rep" "${var}_cpu_us" "$(awk -v u=$((u1 - u0 + s1 - s0)) -v f="$frames" -v h="$CLK_TCK" 'BEGIN { printf "%.3f", u * 1e6 / h / f }')"
		record "$impl" "ports$n" "$rep" "${var}_cpu_util_pct" "$(awk -v u=$((u1 - u0 + s1 - s0)) -v h="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100 * u / h / (b - a) }')"
	fi
}

scale_down() {
	topo_down
	SCALE_HOSTS=()
}

# scaling: both parts for every implementation in ORDER, REPS times; then the report (table, JSON, PNG).
scaling() {
	local rep impl n streams start
	start=$(date +%s)
	for ((rep = 1; rep <= REPS; rep++)); do
		for impl in "${ORDER[@]}"; do
			for n in ${SCALING_PORTS//,/ }; do
				[ -n "${SKIP_REASON[$impl/ports$n]:-}" ] && continue
				tb_log "rep $rep/$REPS: $impl, $n ports"
				if scale_up "$impl" "$n"; then
					scale_flood "$impl" "$n" unicast 0 "$rep"
					scale_flood "$impl" "$n" bcast 10 "$rep"
					awk -F'\t' -v i="$impl" -v p="ports$n" -v r="$rep" '$1 == i && $2 == p && $3 == r { printf "  %s=%s", $4, $5 } END { print "" }' "$RESULTS"
				else
					skip_path "$impl" "ports$n" "$SCALE_ERR"
				fi
				scale_down
			done
			[ -n "${SKIP_REASON[$impl/streams]:-}" ] && continue
			tb_log "rep $rep/$REPS: $impl, ping with 0, 1, 2 busy streams"
			local path=tap topo_rc=0
			[ "$impl" = kernel ] && path=veth
			topo_up "$impl" "$path" || topo_rc=$?
			if [ "$topo_rc" -eq 0 ]; then
				for streams in 0 1 2; do
					m_load_ping "$impl" streams "$rep" "$streams" "$LOAD_PING_COUNT" "busy${streams}_ping"
				done
				awk -F'\t' -v i="$impl" -v r="$rep" '$1 == i && $2 == "streams" && $3 == r { printf "  %s=%s", $4, $5 } END { print "" }' "$RESULTS"
			else
				skip_path "$impl" streams "${OVS_ERR:-no ping a -> b after set-up}"
			fi
			topo_down
		done
	done
	LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
	if [ -z "$OUT" ]; then
		mkdir -p "$BENCH_DIR/results"
		OUT=$BENCH_DIR/results/scaling-$(date -u +%Y-%m-%dT%H%M%SZ).json
	fi
	local plot=1
	install_on_demand gnuplot-nox gnuplot || {
		plot=0
		SKIPPED+=("plot: SKIPPED, gnuplot not installed (Debian package gnuplot-nox)")
	}
	BENCH_RESULTS=$RESULTS BENCH_OUT=$OUT BENCH_REPS=$REPS BENCH_FLOOD_SECONDS=$FLOOD_SECONDS BENCH_PING_COUNT=$LOAD_PING_COUNT \
		BENCH_SCALING_PORTS=$SCALING_PORTS BENCH_SCALING_KPPS=$SCALING_KPPS BENCH_LOAD_BEFORE=$LOAD_BEFORE \
		BENCH_LOAD_AFTER=$LOAD_AFTER BENCH_ELAPSED=$(($(date +%s) - start)) BENCH_BUSY_POLL_US=$BUSY_POLL_US BENCH_DATA_WORKERS=${DATA_WORKERS:-} BENCH_PLOT=$plot BENCH_WORK=$WORK \
		BENCH_SKIPPED=$(printf '%s\n' "${SKIPPED[@]+"${SKIPPED[@]}"}") "$NODE_BIN" "$BENCH_DIR/scaling.mjs"
}
