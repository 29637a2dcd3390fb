#!/usr/bin/env bash
# Multicast benchmark (issue 22): a 20 kpps stream to 239.1.2.3 with one member among four guests. Prints what each
# guest's interface received (target for non-members with snooping on: 0) and the daemon's CPU time during the stream,
# with multicast_snooping on and off, in one run. Not a test: it prints figures.
#
#   g1 eth0 198.18.23.1 (joins 239.1.2.3) ~~ vif1.0 --+
#   g2 eth0 198.18.23.2                   ~~ vif2.0 --+
#   g3 eth0 198.18.23.3                   ~~ vif3.0 --+-- PREFIX-dom0: tapbridge xenbr0 (attach ports)
#   g4 eth0 198.18.23.4                   ~~ vif4.0 --+
#   src eth0 198.18.23.9 (the sender)     ~~ vif9.0 --+
#
# The sender writes pre-built 60-byte IPv4 UDP frames to 239.1.2.3 from an AF_PACKET socket, --rate frames/s (default
# 20000) for --seconds (default 5). Received = the rx_packets delta of each guest's eth0 over the stream; CPU = the
# daemon's utime+stime delta (/proc/PID/stat) over the same window, as a share of one core.
#
# Usage (root, after `npm ci`):  bash scripts/bench/mcast.sh [--rate PPS] [--seconds S]
#
# Safety: namespaces tb-mcast-PID-RAND-*, removed on every exit path; addresses from 198.18.0.0/15 only; nothing touches
# the root namespace; the sender is bounded in rate and time; only PIDs this script started are stopped.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

RATE=20000
SECONDS_STREAM=5
while [ $# -gt 0 ]; do
	case $1 in
	--rate) RATE=$2; shift 2 ;;
	--seconds) SECONDS_STREAM=$2; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
done
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 100 && $RATE -le 50000 ]] || tb_die "--rate must be 100..50000"
[[ $SECONDS_STREAM =~ ^[0-9]+$ && $SECONDS_STREAM -ge 1 && $SECONDS_STREAM -le 30 ]] || tb_die "--seconds must be 1..30"

tb_require_root
tb_require_cmds ip node timeout awk
PY=$(tb_python)
CLI="$REPO_ROOT/dist/cli/main.js"
[ -f "$CLI" ] || tb_die "$CLI is missing: run 'npm ci' (or 'npm run build') first"

PREFIX="tb-mcast-$$-$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
WORK=$(mktemp -d /tmp/tapbridge-mcast-XXXXXX)
SOCK=$WORK/tapbridge.sock
tb_trap_cleanup "$WORK"

GUESTS=(g1 g2 g3 g4 src)
declare -A IP=([g1]=198.18.23.1 [g2]=198.18.23.2 [g3]=198.18.23.3 [g4]=198.18.23.4 [src]=198.18.23.9)
declare -A VIF=([g1]=vif1.0 [g2]=vif2.0 [g3]=vif3.0 [g4]=vif4.0 [src]=vif9.0)

tb_info "topology $PREFIX-{dom0,g1,g2,g3,g4,src}"
tb_ns_create "$PREFIX-dom0"
ip netns exec "$PREFIX-dom0" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null
for g in "${GUESTS[@]}"; do
	tb_ns_create "$PREFIX-$g"
	ip netns exec "$PREFIX-$g" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null
	ip -n "$PREFIX-dom0" link add "${VIF[$g]}" type veth peer name eth0 netns "$PREFIX-$g"
	ip -n "$PREFIX-dom0" link set "${VIF[$g]}" up
	ip -n "$PREFIX-$g" addr add "${IP[$g]}/24" dev eth0
	ip -n "$PREFIX-$g" link set eth0 up
done

cat >"$WORK/send.py" <<'EOF'
import socket, struct, sys, time
rate, secs = int(sys.argv[1]), float(sys.argv[2])
def csum(b):
    s = sum((b[i] << 8) + b[i + 1] for i in range(0, len(b), 2))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 1, 17, 0, socket.inet_aton("198.18.23.9"), socket.inet_aton("239.1.2.3")))
ip[10:12] = struct.pack("!H", csum(ip))
frame = bytes.fromhex("01005e010203" "020000001709" "0800") + bytes(ip) + struct.pack("!HHHH", 5000, 5000, 26, 0) + b"x" * 18
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
batch = max(1, rate // 1000); t0 = time.monotonic(); n = 0
while True:
    now = time.monotonic() - t0
    if now >= secs: break
    due = int(now * rate) + batch
    while n < due:
        s.send(frame); n += 1
    time.sleep(0.001)
print(n)
EOF

cat >"$WORK/join.py" <<'EOF'
import socket, struct, time, sys
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("239.1.2.3") + socket.inet_aton("0.0.0.0") + struct.pack("@i", socket.if_nametoindex("eth0")))
print("joined", flush=True)
time.sleep(float(sys.argv[1]))
EOF

rx() { ip netns exec "$PREFIX-$1" cat /sys/class/net/eth0/statistics/rx_packets; }

run_case() { # SNOOPING(true|false)
	local snoop=$1 pid jpid
	cat >"$WORK/tapbridge.yaml" <<EOF
control_socket: $SOCK
state_dir: $WORK/state
bridges:
  - name: xenbr0
    multicast_snooping: $snoop
    ports:
$(for g in "${GUESTS[@]}"; do echo "      - { name: ${VIF[$g]}, kind: attach }"; done)
EOF
	tb_bg "$PREFIX-dom0" "$WORK/daemon-$snoop.log" node "$CLI" daemon --config "$WORK/tapbridge.yaml"
	pid=$TB_LAST_PID
	tb_wait_socket "$SOCK" "$pid" 20 || tb_die "daemon did not start: $(tail -5 "$WORK/daemon-$snoop.log")"
	tb_bg "$PREFIX-g1" "$WORK/join.log" "$PY" "$WORK/join.py" $((SECONDS_STREAM + 10))
	jpid=$TB_LAST_PID
	sleep 2
	local -A before
	for g in g1 g2 g3 g4; do before[$g]=$(rx "$g"); done
	local c0 c1 t0 t1 sent
	c0=$(tb_cpu_ticks "$pid")
	t0=$(date +%s.%N)
	sent=$(tb_nsexec "$PREFIX-src" "$PY" "$WORK/send.py" "$RATE" "$SECONDS_STREAM")
	sleep 0.5
	c1=$(tb_cpu_ticks "$pid")
	t1=$(date +%s.%N)
	local line="multicast_snooping: $snoop  sent $sent:"
	for g in g1 g2 g3 g4; do line+="  $g $(($(rx "$g") - before[$g]))"; done
	local hz
	hz=$(getconf CLK_TCK)
	line+=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN{printf "  daemon CPU %.1f%% of a core (%.2f s over %.1f s)", 100 * c / hz / (t1 - t0), c / hz, t1 - t0}')
	tb_log "$line"
	tb_stop_pid "$jpid" 5
	tb_stop_pid "$pid" 10
	rm -f "$SOCK"
}

tb_info "stream: $RATE frames/s for $SECONDS_STREAM s to 239.1.2.3; g1 a member, g2-g4 not (received = rx_packets at each guest)"
run_case true
run_case false
