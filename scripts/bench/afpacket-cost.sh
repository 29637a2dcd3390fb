#!/usr/bin/env bash
# afpacket-cost.sh: CPU per frame of the AF_PACKET send and receive paths, variants A/B interleaved in one run
# (native-notes/packet-mmap.md section 8). Runs afpacket-cost.c in one namespace:
#
#   ns tb-afc-<pid>:   [sender/receiver under test] v0 ====veth==== v1 [generator / the stack drops 0x88b5]
#                      [sender under test] ---AF_PACKET--> t0 (TAP, txqueuelen 10000) ---fd--> [drain]
#
# Cases (each rep runs every variant once, in turn; medians over reps):
#   tx-veth   send on v0:     sendmmsg | sendmmsg + PACKET_QDISC_BYPASS | tx ring | tx ring + bypass
#   tx-tap    send on t0:     the same four (a drain process reads the TAP)
#   tx-epoll  send on v0 with sendmmsg from a socket that is (-E) or is not in an epoll set, each with and without bypass
#   rx-veth   receive on v1 while a generator floods v0: recvmsg | rx ring | rx ring + SO_BUSY_POLL
#
# Usage: bash scripts/bench/afpacket-cost.sh [--reps N] [--seconds S] [--cases tx-veth,tx-tap,tx-epoll,rx-veth]
# Needs root. Nothing outside the namespace is touched; every process is bounded by --seconds and stopped by PID.
set -euo pipefail
REPS=5
SECS=2
CASES=tx-veth,tx-tap,rx-veth
while [ $# -gt 0 ]; do
	case "$1" in
	--reps) REPS=$2; shift 2 ;;
	--seconds) SECS=$2; shift 2 ;;
	--cases) CASES=$2; shift 2 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
NS=tb-afc-$$
BIN=$TMP/afpacket-cost
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
cc -O2 -o "$BIN" "$HERE/afpacket-cost.c"
ip netns add "$NS"
X() { ip netns exec "$NS" "$@"; }
X sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
X ip link add v0 type veth peer name v1
X ip tuntap add dev t0 mode tap vnet_hdr
X ip link set t0 txqueuelen 10000
for l in lo v0 v1 t0; do X ip link set "$l" up; done
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); qdiscs: v0 $(X cat /sys/class/net/v0/tx_queue_len)/$(X tc qdisc show dev v0 | awk '{print $2}') t0 $(X tc qdisc show dev t0 | awk '{print $2}' | head -1)"

run_tx() { # IFNAME FLAGS
	local drain=""
	if [ "$1" = t0 ]; then
		ip netns exec "$NS" "$BIN" drain t0 -t "$((SECS + 1))" >/dev/null &
		drain=$!
		sleep 0.2
	fi
	X "$BIN" tx "$1" $2 -t "$SECS"
	[ -n "$drain" ] && { kill "$drain" 2>/dev/null || true; wait "$drain" 2>/dev/null || true; }
}
run_rx() { # FLAGS
	ip netns exec "$NS" "$BIN" tx v0 -Q -t "$((SECS + 1))" >/dev/null &
	local gen=$!
	sleep 0.2
	X "$BIN" rx v1 $1 -t "$SECS"
	kill "$gen" 2>/dev/null || true
	wait "$gen" 2>/dev/null || true
}

OUT=$TMP/lines
for rep in $(seq 1 "$REPS"); do
	for c in ${CASES//,/ }; do
		case "$c" in
		tx-veth) for f in "" "-Q" "-R" "-R -Q"; do echo "tx-veth $(run_tx v0 "$f")"; done ;;
		tx-epoll) for f in "-E" "" "-E -Q" "-Q"; do echo "tx-epoll $(run_tx v0 "$f")"; done ;;
		tx-tap) for f in "" "-Q" "-R" "-R -Q"; do echo "tx-tap $(run_tx t0 "$f")"; done ;;
		rx-veth) for f in "" "-R" "-R -P"; do echo "rx-veth $(run_rx "$f")"; done ;;
		esac
	done
done | tee "$OUT"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians over $REPS reps (us of this process's CPU per frame: total, user, system; frames per second)"
awk '{
	key = $1 " " $2
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	n[key]++; t[key, n[key]] = v["us_per_frame"]; u[key, n[key]] = v["user_per_frame"]; s[key, n[key]] = v["sys_per_frame"]
	r[key, n[key]] = v["frames"] / v["seconds"]
	if (!(key in seen)) { seen[key] = 1; order[++k] = key }
}
function med(a, key, cnt,   i, j, x, tmp) {
	for (i = 1; i <= cnt; i++) x[i] = a[key, i]
	for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (x[j] + 0 < x[i] + 0) { tmp = x[i]; x[i] = x[j]; x[j] = tmp }
	return cnt % 2 ? x[(cnt + 1) / 2] : (x[cnt / 2] + x[cnt / 2 + 1]) / 2
}
END { for (i = 1; i <= k; i++) { key = order[i]; printf "%-40s %6.3f  (%5.3f + %5.3f)  %8.0f fps\n", key, med(t, key, n[key]), med(u, key, n[key]), med(s, key, n[key]), med(r, key, n[key]) } }' "$OUT"
