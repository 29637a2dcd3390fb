#!/usr/bin/env bash
# Throughput of tapbridge's bond modes side by side (issue 24): two TCP streams, from two guests to two hosts behind the
# bond, for active-backup, balance-slb and 802.3ad in one run; each member is shaped to --member-mbit (default 300) so
# that a member is the bottleneck, as a NIC would be, and not this machine's two cores. Not a test: it prints figures.
#
#   vm1 eth0 (TAP vif1.0) 198.18.7.1 --+                      +-- peth0 ~~ veth ~~ sw0 --+                  +-- ext1 198.18.7.11
#                                      +-- PREFIX-dom0 bond0 -|   (tbf on both ends)     +-- PREFIX-sw --+
#   vm2 eth0 (TAP vif2.0) 198.18.7.2 --+   (tapbridge)        +-- peth1 ~~ veth ~~ sw1 --+                  +-- ext2 198.18.7.12
#
# The switch is a kernel bridge (active-backup, balance-slb) or Open vSwitch's userspace datapath with a bond
# sw0+sw1, lacp=active, bond_mode=balance-tcp, lacp-time=fast (802.3ad; tapbridge hash layer3+4). Offloads are off on
# every host in every mode (OVS's AF_PACKET ports have no vnet headers), so the modes compare on equal terms.
# iperf3 vm1 -> ext1 and vm2 -> ext2 run at once for --seconds (default 5); the row is the sum of both receivers and
# what each member sent (bond show). With two flows a hash (802.3ad) puts both on one member half the time: the
# member column says which happened; --reps (default 1) repeats each mode with a fresh topology (new source ports).
#
# Usage (root, after `npm ci`):  bash scripts/bench/bond-modes.sh [--member-mbit N] [--seconds S] [--reps N] [--modes LIST]
#
# Safety: namespaces tb-bm-PID-RAND-*, removed on every exit path; addresses from 198.18.0.0/15 only; nothing touches
# the root namespace; iperf3 bounded by -t and `timeout`; only PIDs this script started are stopped.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$REPO_ROOT/scripts/lib/netns.sh"

MEMBER_MBIT=300
SECONDS_RUN=5
REPS=1
MODES=active-backup,balance-slb,802.3ad
while [ $# -gt 0 ]; do
	case $1 in
	--member-mbit) MEMBER_MBIT=$2; shift 2 ;;
	--seconds) SECONDS_RUN=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--modes) MODES=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) tb_die "unknown option $1 (see --help)" ;;
	esac
done
[[ $MEMBER_MBIT =~ ^[0-9]+$ && $MEMBER_MBIT -ge 10 && $MEMBER_MBIT -le 10000 ]] || tb_die "--member-mbit must be 10..10000"
[[ $SECONDS_RUN =~ ^[0-9]+$ && $SECONDS_RUN -ge 2 && $SECONDS_RUN -le 60 ]] || tb_die "--seconds must be 2..60"
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 && $REPS -le 20 ]] || tb_die "--reps must be 1..20"

tb_require_root
tb_require_cmds ip node tc iperf3 ethtool timeout
PY=$(tb_python)
CLI="$REPO_ROOT/dist/cli/main.js"
[ -f "$CLI" ] || tb_die "$CLI is missing: run 'npm ci' (or 'npm run build') first"
WORK=$(mktemp -d /tmp/tapbridge-bondmodes-XXXXXX)
tb_trap_cleanup "$WORK"

# run_mode MODE REP: one fresh topology, daemon, both streams; prints one row
run_mode() {
	local mode=$1 rep=$2 prefix ns sock d i
	prefix="tb-bm-$$-$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
	local DOM0=$prefix-dom0 SW=$prefix-sw
	d=$WORK/$mode-$rep
	mkdir -p "$d"
	sock=$d/tapbridge.sock
	for ns in dom0 sw vm1 vm2 ext1 ext2; do
		tb_ns_create "$prefix-$ns"
		ip netns exec "$prefix-$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null
	done
	for n in 0 1; do
		ip -n "$SW" link add "sw$n" type veth peer name "peth$n" netns "$DOM0"
		ip -n "$SW" link set "sw$n" up
		ip -n "$DOM0" link set "peth$n" up
		tc -n "$DOM0" qdisc add dev "peth$n" root tbf rate "${MEMBER_MBIT}mbit" burst 256k latency 20ms
		tc -n "$SW" qdisc add dev "sw$n" root tbf rate "${MEMBER_MBIT}mbit" burst 256k latency 20ms
	done
	for n in 1 2; do
		ip -n "$SW" link add "swx$n" type veth peer name eth0 netns "$prefix-ext$n"
		ip -n "$SW" link set "swx$n" up
		ip -n "$prefix-ext$n" addr add "198.18.7.1$n/24" dev eth0
		ip -n "$prefix-ext$n" link set eth0 up
		ip netns exec "$prefix-ext$n" ethtool -K eth0 tx off tso off gso off >/dev/null 2>&1 || true
		tb_bg "$prefix-ext$n" "$d/server$n.out" timeout $((SECONDS_RUN + 30)) iperf3 -s -1 -B "198.18.7.1$n"
	done
	if [ "$mode" = 802.3ad ]; then
		tb_ovs_have || tb_die "Open vSwitch missing (ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl: Debian openvswitch-switch)"
		tb_ovs_up "$SW" "$d/ovs" || tb_die "$TB_OVS_ERR"
		tb_ovs_vsctl "$d/ovs" add-br br0 -- set bridge br0 datapath_type=netdev \
			-- add-port br0 swx1 -- add-port br0 swx2 \
			-- add-bond br0 bond0 sw0 sw1 lacp=active bond_mode=balance-tcp other_config:lacp-time=fast
	else
		ip -n "$SW" link add br0 type bridge stp_state 0 mcast_snooping 0
		for p in sw0 sw1 swx1 swx2; do ip -n "$SW" link set "$p" master br0; done
		ip -n "$SW" link set br0 up
	fi
	local keys
	case $mode in
	active-backup) keys="primary: peth0" ;;
	balance-slb) keys="mode: balance-slb, rebalance_interval: 0" ;;
	802.3ad) keys="mode: 802.3ad, lacp: active, lacp_rate: fast, hash: layer3+4" ;;
	esac
	cat >"$d/tapbridge.yaml" <<EOF
control_socket: $sock
state_dir: $d
bridges:
  - name: xenbr0
    uplink: { bond: { name: bond0, members: [peth0, peth1], $keys } }
    ports: [ { name: vif1.0 }, { name: vif2.0 } ]
EOF
	tb_bg "$DOM0" "$d/daemon.log" node "$CLI" daemon --config "$d/tapbridge.yaml"
	local daemon=$TB_LAST_PID
	tb_wait_socket "$sock" "$daemon" 20 || { cat "$d/daemon.log" >&2; tb_die "daemon did not start"; }
	for n in 1 2; do
		tb_wait_link "$DOM0" "vif$n.0" 10 || tb_die "no vif$n.0"
		ip -n "$DOM0" link set "vif$n.0" netns "$prefix-vm$n"
		ip -n "$prefix-vm$n" link set "vif$n.0" name eth0
		ip -n "$prefix-vm$n" addr add "198.18.7.$n/24" dev eth0
		ip -n "$prefix-vm$n" link set eth0 up
		ip netns exec "$prefix-vm$n" ethtool -K eth0 tx off tso off gso off >/dev/null 2>&1 || true
	done
	# the bond whole (802.3ad: both members distributing), then every host reachable
	for ((i = 0; i < 150; i++)); do
		local st
		st=$(node "$CLI" bond show bond0 -j --socket "$sock" 2>/dev/null | "$PY" -c 'import json, sys
b = json.load(sys.stdin)
print(len(b["lacp"]["distributing"]) if b.get("lacp") else sum(m["mii_status"] == "up" for m in b["members"]))' 2>/dev/null || echo 0)
		[ "$st" = 2 ] && break
		sleep 0.1
	done
	for n in 1 2; do
		for ((i = 0; i < 50; i++)); do
			tb_nsexec "$prefix-vm$n" ping -n -q -c 1 -W 1 "198.18.7.1$n" >/dev/null 2>&1 && break
			sleep 0.2
		done
	done
	local before after
	before=$(node "$CLI" bond show bond0 -j --socket "$sock")
	for n in 1 2; do
		tb_bg "$prefix-vm$n" "$d/client$n.json" timeout $((SECONDS_RUN + 20)) iperf3 -J -c "198.18.7.1$n" -t "$SECONDS_RUN"
		eval "client$n=\$TB_LAST_PID"
	done
	# shellcheck disable=SC2154
	wait "$client1" || true
	# shellcheck disable=SC2154
	wait "$client2" || true
	after=$(node "$CLI" bond show bond0 -j --socket "$sock")
	"$PY" - "$mode" "$rep" "$d/client1.json" "$d/client2.json" "$before" "$after" <<'PY'
import json, sys
mode, rep, c1, c2, before, after = sys.argv[1:7]
def mbit(path):
    try:
        j = json.load(open(path))
        return j["end"]["sum_received"]["bits_per_second"] / 1e6
    except Exception:
        return float("nan")
a, b = mbit(c1), mbit(c2)
bm = {m["name"]: m.get("tx_bytes", 0) for m in json.loads(before)["members"]}
am = {m["name"]: m.get("tx_bytes", 0) for m in json.loads(after)["members"]}
per = " ".join("%s=%.0fMB" % (k, (am[k] - bm.get(k, 0)) / 1e6) for k in sorted(am))
print("%-14s %3s %10.0f %10.0f %10.0f   %s" % (mode, rep, a, b, a + b, per))
PY
	# this mode's processes and namespaces go now (the trap would get them too)
	tb_cleanup_all
}

tb_info "members shaped to ${MEMBER_MBIT} Mbit/s each; two iperf3 streams of ${SECONDS_RUN} s (vm1 -> ext1, vm2 -> ext2)"
printf '%-14s %3s %10s %10s %10s   %s\n' mode rep vm1_mbit vm2_mbit sum_mbit "sent per member"
for ((r = 1; r <= REPS; r++)); do
	for m in ${MODES//,/ }; do
		case $m in active-backup | balance-slb | 802.3ad) ;; *) tb_die "unknown mode $m" ;; esac
		run_mode "$m" "$r"
	done
done
