#!/usr/bin/env bash
# One-off measurement (not a test): the same QEMU guest (TCG, virtio-net with default offloads) on tapbridge and on a
# Linux kernel bridge, each in a dom0 namespace with a veth uplink to an external host namespace:
#
#   guest eth0 198.18.6.21 ~~ TAP vif1.0 ~~ dom0 [tapbridge xenbr0 | kernel bridge br0] ~~ peth0 ~~ veth ~~ ext 198.18.6.3
#
# Measures guest -> ext ping RTT (busybox ping in the guest), ext -> guest ping RTT (iputils ping on the host side),
# TCP guest -> ext and ext -> guest (busybox nc in the guest, python3 on the host side; MB mebibytes each way).
# Prints one table. Each setup boots its own guest; RUNS repetitions per measurement, the median is reported.
#
# Usage (root): scripts/guest/compare.sh [--runs N] [--mb MB]
# Namespaces tb-qemucmp-<pid>-*, removed on exit with QEMU and the daemon (stopped by PID). Addresses from
# 198.18.0.0/15 only, no default routes; traffic is bounded (ping counts, MB per transfer). Run it when the machine is
# otherwise idle: TCG makes the guest CPU-bound, so other load changes the numbers.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/netns.sh
. "$repo/scripts/lib/netns.sh"

RUNS=3
MB=32
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--mb) MB=$2; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1" ;;
	esac
done

tb_require_root
tb_require_cmds ip qemu-system-x86_64 ping node
PY=$(tb_python)
CLI=("$(command -v node)" "$repo/dist/cli/main.js")
[ -f "${CLI[1]}" ] || tb_die "${CLI[1]} missing: run npm ci (or npm run build)"

image=$(bash "$here/build-image.sh" | sed -n 's/^image: //p')
[ -n "$image" ] || tb_die "guest image build failed"

PREFIX=tb-qemucmp-$$
WORK=$(mktemp -d /tmp/tapbridge-qemucmp.XXXXXX)
QEMU_PID=
cleanup() {
	exec 7>&- 2>/dev/null || true
	tb_cleanup_all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

IP_EXT=198.18.6.3
IP_GUEST=198.18.6.21
MAC_GUEST=00:16:3e:06:01:00

# ------------------------------------------------------------------------------------------------ guest driver
# guest_start NS NETDEV_OPTS: QEMU in NS, serial console: stdin from a fifo (fd 7), stdout to $WORK/console.log
guest_start() {
	local ns=$1 netdev=$2 i
	rm -f "$WORK/in" "$WORK/console.log"
	mkfifo "$WORK/in"
	exec 7<>"$WORK/in"
	ip netns exec "$ns" qemu-system-x86_64 -accel tcg -nographic -m 256 -no-reboot \
		-kernel "$image/vmlinuz" -initrd "$image/initrd.gz" \
		-append "console=ttyS0 loglevel=3 panic=-1 tbguest.ip=$IP_GUEST/24" \
		-netdev "tap,id=n0,ifname=vif1.0,$netdev" -device "virtio-net-pci,netdev=n0,mac=$MAC_GUEST" \
		<&7 >"$WORK/console.log" 2>"$WORK/qemu.err" &
	QEMU_PID=$!
	TB_PIDS+=("$QEMU_PID")
	for ((i = 0; i < 1500; i++)); do
		grep -q '@@READY' "$WORK/console.log" 2>/dev/null && return 0
		tb_alive "$QEMU_PID" || { cat "$WORK/qemu.err" >&2; tb_die "QEMU exited before the guest was ready"; }
		sleep 0.1
	done
	tb_die "guest not ready after 150 s"
}
GUEST_SEQ=0
# guest_run TIMEOUT_S CMD: run CMD in the guest, print its output, return its status
guest_run() {
	local t=$1 cmd=$2 id i
	GUEST_SEQ=$((GUEST_SEQ + 1))
	id=$GUEST_SEQ
	printf '@@RUN %s %s\n' "$id" "$cmd" >&7
	for ((i = 0; i < t * 10; i++)); do
		grep -q "^@@RC $id " <(tr -d '\r' <"$WORK/console.log") && break
		sleep 0.1
	done
	tr -d '\r' <"$WORK/console.log" | awk -v id="$id" '$0 == "@@START " id { on = 1; next } $1 == "@@RC" && $2 == id { print "@@STATUS " $3; exit } on'
}
guest_stop() {
	[ -n "$QEMU_PID" ] || return 0
	tb_stop_pid "$QEMU_PID" 10
	QEMU_PID=
	exec 7>&-
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else print a[int((NR + 1) / 2)] }'; }

# ------------------------------------------------------------------------------------------------ measurements
# measure NAME DOM0_NS EXT_NS: prints "NAME ping_guest ping_host tx_mbit rx_mbit"
measure() {
	local name=$1 dom0=$2 ext=$3 r out
	local pg=() ph=() tx=() rx=()
	guest_run 30 "i=0; while [ \$i -lt 20 ]; do ping -c 1 -W 1 $IP_EXT >/dev/null && exit 0; i=\$((i+1)); done; exit 1" |
		grep -q '@@STATUS 0' || tb_die "$name: the guest cannot reach $IP_EXT"
	guest_run 60 "dd if=/dev/zero of=/tmp/zero bs=1048576 count=$MB 2>/dev/null" >/dev/null
	for ((r = 0; r < RUNS; r++)); do
		out=$(guest_run 60 "ping -c 50 -i 0.1 -W 2 $IP_EXT")
		pg+=("$(sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$out")")
		out=$(tb_nsexec "$ext" ping -n -q -c 50 -i 0.1 -W 2 "$IP_GUEST" || true)
		ph+=("$(sed -n 's|.*min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$out")")

		# guest -> ext: MB MiB from a tmpfs file through busybox nc (a pipe into nc costs more than the network under
		# TCG); the receiver times accept..EOF
		ip netns exec "$ext" "$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); s.settimeout(120); print("ready", flush=True)
c, _ = s.accept(); c.settimeout(120); t = time.monotonic(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    n += len(b)
print(n, time.monotonic() - t, flush=True)' "$IP_EXT" >"$WORK/rx.out" &
		local rxpid=$!
		TB_PIDS+=("$rxpid")
		for _ in $(seq 50); do grep -q ready "$WORK/rx.out" && break; sleep 0.1; done
		guest_run 180 "timeout 150 nc $IP_EXT 5001 </tmp/zero" >/dev/null
		wait "$rxpid" || true
		tx+=("$(awk 'NR == 2 && $1 > 0 { printf "%.0f", $1 * 8 / $2 / 1e6 }' "$WORK/rx.out")")

		# ext -> guest: the guest's busybox nc reads to /dev/null; the sender times connect..close
		guest_run 30 "( timeout 150 nc -l -p 5002 </dev/null >/dev/null ) & i=0; while ! netstat -ltn | grep -q ':5002 '; do i=\$((i+1)); [ \$i -gt 100 ] && exit 1; usleep 100000; done" >/dev/null
		tb_nsexec "$ext" "$PY" -c '
import socket, sys, time
mb = int(sys.argv[2]); buf = b"\0" * (1 << 20)
t = time.monotonic(); s = socket.create_connection((sys.argv[1], 5002), timeout=120)
for _ in range(mb): s.sendall(buf)
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
print(mb * (1 << 20), time.monotonic() - t)' "$IP_GUEST" "$MB" >"$WORK/tx.out" || true
		rx+=("$(awk '$1 > 0 { printf "%.0f", $1 * 8 / $2 / 1e6 }' "$WORK/tx.out")")
	done
	printf '%s %s %s %s %s\n' "$name" \
		"$(printf '%s\n' "${pg[@]}" | median)" "$(printf '%s\n' "${ph[@]}" | median)" \
		"$(printf '%s\n' "${tx[@]}" | median)" "$(printf '%s\n' "${rx[@]}" | median)" >>"$WORK/results"
}

# base: dom0 and ext joined by a veth; ext addressed
make_base() {
	local tag=$1
	DOM0=$PREFIX-$tag-dom0
	EXT=$PREFIX-$tag-ext
	tb_ns_create "$DOM0"
	tb_ns_create "$EXT"
	ip netns exec "$DOM0" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
	ip -n "$DOM0" link add peth0 type veth peer name eth0 netns "$EXT"
	ip -n "$DOM0" link set peth0 up
	ip -n "$EXT" addr add "$IP_EXT/24" dev eth0
	ip -n "$EXT" link set eth0 up
}

: >"$WORK/results"

# 1. tapbridge
tb_info "tapbridge: daemon in a dom0 namespace, QEMU with scripts/qemu-ifup"
make_base tb
cat >"$WORK/tapbridge.yaml" <<EOF
control_socket: $WORK/tapbridge.sock
state_dir: $WORK
bridges:
  - name: xenbr0
    uplink: { interface: peth0 }
EOF
tb_bg "$DOM0" "$WORK/daemon.log" "${CLI[@]}" daemon --config "$WORK/tapbridge.yaml"
DAEMON_PID=$TB_LAST_PID
tb_wait_socket "$WORK/tapbridge.sock" "$DAEMON_PID" 20 || { cat "$WORK/daemon.log" >&2; tb_die "daemon did not start"; }
export TAPBRIDGE_SOCKET=$WORK/tapbridge.sock TAPBRIDGE_BRIDGE=xenbr0
guest_start "$DOM0" "script=$repo/scripts/qemu-ifup,downscript=$repo/scripts/qemu-ifdown"
measure tapbridge "$DOM0" "$EXT"
guest_stop
"${CLI[@]}" stats --socket "$WORK/tapbridge.sock" >&2 || true
tb_stop_pid "$DAEMON_PID" 10

# 2. kernel bridge
tb_info "kernel bridge: br0 in a dom0 namespace, QEMU with an ifup that enslaves the TAP"
make_base kb
ip -n "$DOM0" link add br0 type bridge
ip -n "$DOM0" link set br0 up
ip -n "$DOM0" link set peth0 master br0
cat >"$WORK/kb-ifup" <<'EOF'
#!/bin/sh
ip link set "$1" master br0 && ip link set "$1" up
EOF
chmod +x "$WORK/kb-ifup"
guest_start "$DOM0" "script=$WORK/kb-ifup,downscript=no"
measure kernel-bridge "$DOM0" "$EXT"
guest_stop

echo
printf '%-14s %18s %18s %18s %18s\n' setup "guest->ext ping ms" "ext->guest ping ms" "guest->ext Mbit/s" "ext->guest Mbit/s"
while read -r n a b c d; do printf '%-14s %18s %18s %18s %18s\n' "$n" "$a" "$b" "$c" "$d"; done <"$WORK/results"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(median of $RUNS runs; 50 pings 0.1 s apart; $MB MiB per TCP transfer; QEMU TCG, 1 vCPU, virtio-net default offloads)"
