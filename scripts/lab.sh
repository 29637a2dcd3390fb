#!/usr/bin/env bash
# tapbridge netns lab, in the style of the kernel's net selftests.
#
# Mode "tapbridge" (default): the daemon runs in dom0 and owns bridge xenbr0. It creates TAPs vif1.0, vif2.0 in dom0;
# the lab moves each into its VM namespace and renames it eth0 (the daemon keeps the TAP's fd, so it stays a port).
# The uplink peth0 is one end of a veth pair; the daemon binds an AF_PACKET socket to it; the other end is the external
# host's eth0.
#
#   +-------- PREFIX-vm1 --------+   +-------- PREFIX-vm2 --------+   +-------- PREFIX-ext --------+
#   | eth0 198.18.0.1/24         |   | eth0 198.18.0.2/24         |   | eth0 198.18.0.254/24       |
#   |      2001:db8::1/64        |   |      2001:db8::2/64        |   |      2001:db8::fe/64       |
#   |      00:16:3e:00:01:00     |   |      00:16:3e:00:02:00     |   |      02:00:00:00:fe:00     |
#   +------------|---------------+   +------------|---------------+   +------------|---------------+
#                | TAP (was vif1.0)               | TAP (was vif2.0)               | veth
#   +------------|--------------------------------|--------------------------------|---------------+
#   |            | fd                             | fd                             | peth0         |
#   |   +--------+--------------------------------+--------------------------------+-----------+   |
#   |   |  tapbridge daemon, bridge xenbr0 (TAP ports vif1.0 vif2.0, AF_PACKET uplink peth0)   |   |
#   |   |  control socket: /tmp/tapbridge-lab/PREFIX/tapbridge.sock                            |   |
#   |   +--------------------------------------------------------------------------------------+   |
#   |                                     PREFIX-dom0                                               |
#   +-----------------------------------------------------------------------------------------------+
#
# Mode "kernel" (--kernel), for comparison: the same hosts and addresses, but dom0 holds a Linux bridge xenbr0 and every
# host hangs off it by a veth pair (vifN.0 / peth0 in dom0 are bridge ports, eth0 in each host namespace).
#
# Usage: scripts/lab.sh [--kernel] [--vms N] [--prefix P] COMMAND [ARGS]
#   test              set up, check ping vm<->vm and vm<->ext (IPv4 and IPv6), tear down; exit status = result
#   run [CMD...]      set up, run CMD (default: an interactive shell) with LAB_* variables exported, tear down
#   up                set up and leave the lab running (state in /tmp/tapbridge-lab/PREFIX/, see `down`)
#   down [PREFIX]     tear down a lab made by `up` (default: the most recent)
#   status [PREFIX]   namespaces, links and `tapbridge show` of a running lab
#   exec NODE CMD...  run CMD in a node (dom0, vm1, vm2, ..., ext) of the most recent lab
#   cli ARGS...       run the tapbridge CLI against the most recent lab's socket
#   compare           measure ping RTT and iperf3 TCP throughput through tapbridge and through the kernel bridge, one
#                     after the other, and print them side by side
#
# Environment: TAPBRIDGE_BIN (default: node dist/cli/main.js of this checkout), TB_LAB_ROOT (default /tmp/tapbridge-lab),
# TB_CMD_TIMEOUT (seconds, default 30), TB_DAEMON_ARGS (extra daemon arguments).
#
# Safety: nothing here touches the root namespace's links, addresses or routes. Addresses come from 198.18.0.0/15 and
# 2001:db8::/32 only; there are no default routes. All traffic generators are bounded in count and time.

LAB_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO_ROOT=$(cd "$LAB_SCRIPTS_DIR/.." && pwd)
# shellcheck source=lib/netns.sh
source "$LAB_SCRIPTS_DIR/lib/netns.sh"

LAB_ROOT=${TB_LAB_ROOT:-/tmp/tapbridge-lab}
LAB_MODE=tapbridge
LAB_VMS=2
LAB_BRIDGE=xenbr0
LAB_UPLINK=peth0
LAB_DAEMON_PID=
LAB_DAEMON_RC=
LAB_PREFIX=

# ---------------------------------------------------------------------------------------------------------------- naming

lab_vm_ip4() { echo "198.18.0.$1"; }
lab_vm_ip6() { printf '2001:db8::%x\n' "$1"; }
lab_vm_mac() { printf '00:16:3e:00:%02x:00\n' "$1"; }
lab_vm_vif() { echo "vif$1.0"; }
LAB_EXT_IP4=198.18.0.254
LAB_EXT_IP6=2001:db8::fe
LAB_EXT_MAC=02:00:00:00:fe:00

# lab_names PREFIX: derive every name of one lab from its prefix.
lab_names() {
	LAB_PREFIX=$1
	NS_DOM0=$LAB_PREFIX-dom0
	NS_EXT=$LAB_PREFIX-ext
	NS_VM=()
	local i
	for ((i = 1; i <= LAB_VMS; i++)); do NS_VM[i]=$LAB_PREFIX-vm$i; done
	LAB_RUNDIR=$LAB_ROOT/$LAB_PREFIX
	LAB_SOCKET=$LAB_RUNDIR/tapbridge.sock
	LAB_CONFIG=$LAB_RUNDIR/tapbridge.yaml
	LAB_DAEMON_LOG=$LAB_RUNDIR/daemon.log
}

# lab_node NAME -> namespace of a node name (dom0, ext, vmN)
lab_node() {
	case $1 in
	dom0) echo "$NS_DOM0" ;;
	ext) echo "$NS_EXT" ;;
	vm[0-9]*) echo "${NS_VM[${1#vm}]:?no such VM: $1}" ;;
	*) tb_die "unknown node '$1' (dom0, ext, vm1..vm$LAB_VMS)" ;;
	esac
}

# tapbridge CLI against this lab's socket, bounded in time.
lab_cli() {
	if [ -n "${TAPBRIDGE_BIN:-}" ]; then
		# shellcheck disable=SC2086
		timeout 15 $TAPBRIDGE_BIN "$@" --socket "$LAB_SOCKET"
	else
		timeout 15 node "$LAB_REPO_ROOT/dist/cli/main.js" "$@" --socket "$LAB_SOCKET"
	fi
}

# ----------------------------------------------------------------------------------------------- setup / cleanup pairs

setup_namespaces() {
	mkdir -p "$LAB_ROOT" && chmod 0700 "$LAB_ROOT"
	mkdir -m 0700 "$LAB_RUNDIR" || tb_die "$LAB_RUNDIR exists: is lab $LAB_PREFIX already up?"
	tb_ns_create "$NS_DOM0"
	tb_ns_create "$NS_EXT"
	local i
	for ((i = 1; i <= LAB_VMS; i++)); do tb_ns_create "${NS_VM[i]}"; done
	# dom0 forwards nothing itself, and its host stack stays off the bridge: without IPv6 on dom0's links, a TAP the
	# daemon just made sends no MLD/RS with its first random MAC before the lab moves it (that MAC would linger in the
	# FDB). A link moved to a VM gets the VM namespace's defaults, so the VMs keep IPv6.
	ip netns exec "$NS_DOM0" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 \
		net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
}

cleanup_namespaces() {
	local i
	for ((i = LAB_VMS; i >= 1; i--)); do tb_ns_destroy "${NS_VM[i]}"; done
	tb_ns_destroy "$NS_EXT"
	tb_ns_destroy "$NS_DOM0"
	TB_NAMESPACES=()
}

# lab_host_addresses NS IFNAME MAC IP4 IP6: address a host's interface (the link is down and unaddressed on entry).
lab_host_addresses() {
	local ns=$1 ifname=$2 mac=$3 ip4=$4 ip6=$5
	ip -n "$ns" link set dev "$ifname" address "$mac"
	ip -n "$ns" addr add "$ip4/24" dev "$ifname"
	ip -n "$ns" addr add "$ip6/64" dev "$ifname" nodad
	ip -n "$ns" link set dev "$ifname" up
}

# The uplink: peth0 in dom0 <-> eth0 in ext. Created inside the namespaces, never in the root namespace.
setup_uplink() {
	ip -n "$NS_DOM0" link add "$LAB_UPLINK" type veth peer name eth0 netns "$NS_EXT"
	ip -n "$NS_DOM0" link set dev "$LAB_UPLINK" up
	lab_host_addresses "$NS_EXT" eth0 "$LAB_EXT_MAC" "$LAB_EXT_IP4" "$LAB_EXT_IP6"
}

cleanup_uplink() {
	ip -n "$NS_DOM0" link del dev "$LAB_UPLINK" 2>/dev/null || true
}

lab_write_config() {
	local i
	{
		echo "# written by scripts/lab.sh for lab $LAB_PREFIX"
		echo "control_socket: $LAB_SOCKET"
		echo "state_dir: $LAB_RUNDIR"
		echo "bridges:"
		echo "  - name: $LAB_BRIDGE"
		echo "    uplink: { interface: $LAB_UPLINK }"
		echo "    ports:"
		for ((i = 1; i <= LAB_VMS; i++)); do echo "      - { name: $(lab_vm_vif "$i") }"; done
	} >"$LAB_CONFIG"
}

# setup_tapbridge [detach]: write the config, start the daemon in dom0, wait for its control socket.
setup_tapbridge() {
	local detach=${1:-} node_bin
	node_bin=$(command -v node) || tb_die "node not found"
	[ -n "${TAPBRIDGE_BIN:-}" ] || [ -f "$LAB_REPO_ROOT/dist/cli/main.js" ] ||
		tb_die "$LAB_REPO_ROOT/dist/cli/main.js missing: run 'npm ci' first"
	lab_write_config
	local -a daemon_cmd
	if [ -n "${TAPBRIDGE_BIN:-}" ]; then
		# shellcheck disable=SC2206
		daemon_cmd=($TAPBRIDGE_BIN)
	else
		daemon_cmd=("$node_bin" "$LAB_REPO_ROOT/dist/cli/main.js")
	fi
	# shellcheck disable=SC2206
	daemon_cmd+=(daemon --config "$LAB_CONFIG" ${TB_DAEMON_ARGS:-})
	if [ "$detach" = detach ]; then
		# setsid: the daemon outlives this script (`up`); it is not a process-group leader here, so setsid execs in place
		# and $! is the daemon's PID.
		setsid ip netns exec "$NS_DOM0" "${daemon_cmd[@]}" >"$LAB_DAEMON_LOG" 2>&1 </dev/null &
		LAB_DAEMON_PID=$!
	else
		ip netns exec "$NS_DOM0" "${daemon_cmd[@]}" >"$LAB_DAEMON_LOG" 2>&1 </dev/null &
		LAB_DAEMON_PID=$!
	fi
	echo "$LAB_DAEMON_PID" >"$LAB_RUNDIR/daemon.pid"
	local rc=0
	tb_wait_socket "$LAB_SOCKET" "$LAB_DAEMON_PID" 20 || rc=$?
	if [ "$rc" -ne 0 ]; then
		if [ "$rc" -eq 2 ]; then tb_warn "the daemon exited before creating its socket"; else tb_warn "no control socket after 20 s"; fi
		tail -n 30 "$LAB_DAEMON_LOG" >&2 || true
		return 1
	fi
}

# cleanup_tapbridge: SIGTERM the daemon (by PID), wait for it; LAB_DAEMON_RC gets its exit status.
cleanup_tapbridge() {
	[ -n "$LAB_DAEMON_PID" ] || return 0
	tb_stop_pid "$LAB_DAEMON_PID" 10
	LAB_DAEMON_RC=$TB_STOP_RC
	LAB_DAEMON_PID=
	rm -f "$LAB_RUNDIR/daemon.pid"
}

# setup_vms_tap: move each daemon-made TAP from dom0 into its VM namespace, rename it eth0, address it.
setup_vms_tap() {
	local i vif
	for ((i = 1; i <= LAB_VMS; i++)); do
		vif=$(lab_vm_vif "$i")
		tb_wait_link "$NS_DOM0" "$vif" 10 || {
			tb_warn "TAP $vif did not appear in $NS_DOM0"
			return 1
		}
		ip -n "$NS_DOM0" link set dev "$vif" netns "${NS_VM[i]}"
		ip -n "${NS_VM[i]}" link set dev "$vif" name eth0
		lab_host_addresses "${NS_VM[i]}" eth0 "$(lab_vm_mac "$i")" "$(lab_vm_ip4 "$i")" "$(lab_vm_ip6 "$i")"
	done
}

# setup_kernel_bridge / cleanup_kernel_bridge: the comparison topology, a Linux bridge in dom0 and veth pairs.
setup_kernel_bridge() {
	local i vif
	ip -n "$NS_DOM0" link add "$LAB_BRIDGE" type bridge stp_state 0
	ip -n "$NS_DOM0" link set dev "$LAB_BRIDGE" up
	ip -n "$NS_DOM0" link set dev "$LAB_UPLINK" master "$LAB_BRIDGE"
	for ((i = 1; i <= LAB_VMS; i++)); do
		vif=$(lab_vm_vif "$i")
		ip -n "$NS_DOM0" link add "$vif" type veth peer name eth0 netns "${NS_VM[i]}"
		ip -n "$NS_DOM0" link set dev "$vif" master "$LAB_BRIDGE"
		ip -n "$NS_DOM0" link set dev "$vif" up
		lab_host_addresses "${NS_VM[i]}" eth0 "$(lab_vm_mac "$i")" "$(lab_vm_ip4 "$i")" "$(lab_vm_ip6 "$i")"
	done
}

cleanup_kernel_bridge() {
	local i
	for ((i = 1; i <= LAB_VMS; i++)); do ip -n "$NS_DOM0" link del dev "$(lab_vm_vif "$i")" 2>/dev/null || true; done
	ip -n "$NS_DOM0" link del dev "$LAB_BRIDGE" 2>/dev/null || true
}

lab_save_state() {
	{
		printf 'LAB_PREFIX=%q\nLAB_MODE=%q\nLAB_VMS=%q\nLAB_DAEMON_PID=%q\n' \
			"$LAB_PREFIX" "$LAB_MODE" "$LAB_VMS" "$LAB_DAEMON_PID"
	} >"$LAB_RUNDIR/state"
	ln -sfn "$LAB_PREFIX" "$LAB_ROOT/current"
}

# lab_load_state [PREFIX]
lab_load_state() {
	local prefix=${1:-}
	if [ -z "$prefix" ]; then
		[ -L "$LAB_ROOT/current" ] || tb_die "no running lab (no $LAB_ROOT/current); start one with: $0 up"
		prefix=$(readlink "$LAB_ROOT/current")
	fi
	[ -f "$LAB_ROOT/$prefix/state" ] || tb_die "no lab state at $LAB_ROOT/$prefix/state"
	# shellcheck disable=SC1090
	source "$LAB_ROOT/$prefix/state"
	lab_names "$LAB_PREFIX"
}

# lab_setup [detach]: the whole topology for LAB_MODE. On failure everything made so far is removed by lab_cleanup.
lab_setup() {
	tb_info "lab $LAB_PREFIX: mode $LAB_MODE, $LAB_VMS VMs"
	setup_namespaces
	setup_uplink
	if [ "$LAB_MODE" = kernel ]; then
		setup_kernel_bridge
	else
		setup_tapbridge "${1:-}"
		setup_vms_tap
	fi
	lab_export_env
}

# lab_cleanup: inverse of lab_setup; safe to call at any point and twice.
lab_cleanup() {
	[ -n "$LAB_PREFIX" ] || return 0
	if [ "$LAB_MODE" = kernel ]; then cleanup_kernel_bridge; else cleanup_tapbridge; fi
	tb_cleanup_all
	cleanup_uplink
	cleanup_namespaces
	if [ -n "${LAB_RUNDIR:-}" ] && [ -d "$LAB_RUNDIR" ]; then
		[ "${LAB_KEEP_LOGS:-}" = 1 ] || rm -rf "$LAB_RUNDIR"
		[ "$(readlink "$LAB_ROOT/current" 2>/dev/null)" = "$LAB_PREFIX" ] && rm -f "$LAB_ROOT/current"
	fi
	rmdir "$LAB_ROOT" 2>/dev/null || true
}

lab_export_env() {
	export LAB_PREFIX LAB_MODE LAB_SOCKET NS_DOM0 NS_EXT LAB_EXT_IP4 LAB_EXT_IP6
	local i
	for ((i = 1; i <= LAB_VMS; i++)); do export "NS_VM$i=${NS_VM[i]}" "LAB_VM${i}_IP4=$(lab_vm_ip4 "$i")"; done
	export TAPBRIDGE_SOCKET=$LAB_SOCKET
}

# ------------------------------------------------------------------------------------------------------------- checks

# lab_ping FROM_NODE TO_ADDR [COUNT]
lab_ping() {
	local ns count=${3:-3}
	ns=$(lab_node "$1")
	tb_nsexec "$ns" ping -q -c "$count" -i 0.2 -W 2 "$2" >/dev/null 2>&1
}

lab_check_pings() {
	local fails=0 rc i j
	for ((i = 1; i <= LAB_VMS; i++)); do
		for ((j = 1; j <= LAB_VMS; j++)); do
			[ "$i" -eq "$j" ] && continue
			rc=0; lab_ping "vm$i" "$(lab_vm_ip4 "$j")" || rc=$?
			tb_result "ping vm$i -> vm$j ($(lab_vm_ip4 "$j"))" "$rc"; fails=$((fails + (rc != 0)))
		done
		rc=0; lab_ping "vm$i" "$LAB_EXT_IP4" || rc=$?
		tb_result "ping vm$i -> ext ($LAB_EXT_IP4)" "$rc"; fails=$((fails + (rc != 0)))
	done
	rc=0; lab_ping ext "$(lab_vm_ip4 1)" || rc=$?
	tb_result "ping ext -> vm1 ($(lab_vm_ip4 1))" "$rc"; fails=$((fails + (rc != 0)))
	rc=0; lab_ping vm1 "$(lab_vm_ip6 2)" || rc=$?
	tb_result "ping vm1 -> vm2 ($(lab_vm_ip6 2))" "$rc"; fails=$((fails + (rc != 0)))
	rc=0; lab_ping vm2 "$LAB_EXT_IP6" || rc=$?
	tb_result "ping vm2 -> ext ($LAB_EXT_IP6)" "$rc"; fails=$((fails + (rc != 0)))
	return "$fails"
}

# lab_iperf FROM_NODE TO_NODE TO_ADDR SECONDS: one bounded iperf3 run; prints "<Gbit/s receiver>" or fails.
lab_iperf() {
	local from to addr secs=${4:-3} srv_pid out
	from=$(lab_node "$1")
	to=$(lab_node "$2")
	addr=$3
	out=$(mktemp)
	tb_bg "$to" "$out.srv" timeout $((secs + 20)) iperf3 -s -1 -B "$addr" -p 5201
	srv_pid=$TB_LAST_PID
	# wait for the server to listen
	local k
	for ((k = 0; k < 50; k++)); do
		ip netns exec "$to" ss -Hltn "sport = :5201" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	local rc=0
	timeout $((secs + 15)) ip netns exec "$from" iperf3 -c "$addr" -p 5201 -t "$secs" -J >"$out" 2>&1 || rc=$?
	tb_stop_pid "$srv_pid" 3
	if [ "$rc" -ne 0 ]; then
		tb_warn "iperf3 $1 -> $2 failed (rc $rc): $(head -c 600 "$out")"
		rm -f "$out" "$out.srv"
		return 1
	fi
	"$(tb_python)" -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d["end"]; r=e.get("sum_received") or e["sum"]; print("%.2f" % (r["bits_per_second"]/1e9))' "$out"
	rm -f "$out" "$out.srv"
}

# lab_rtt FROM_NODE TO_ADDR: average RTT in ms over 200 pings at 10 ms intervals.
lab_rtt() {
	local ns
	ns=$(lab_node "$1")
	tb_nsexec "$ns" ping -q -c 200 -i 0.01 -W 1 "$2" 2>/dev/null | sed -n 's#^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*#\1#p'
}

# ----------------------------------------------------------------------------------------------------------- commands

lab_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	lab_cleanup
	exit "$rc"
}

cmd_test() {
	trap lab_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	lab_setup
	local fails=0
	lab_check_pings || fails=$?
	if [ "$LAB_MODE" = tapbridge ]; then
		cleanup_tapbridge
		local rc=0
		[ "$LAB_DAEMON_RC" = 0 ] || rc=1
		tb_result "daemon exits 0 on SIGTERM (got $LAB_DAEMON_RC)" "$rc"; fails=$((fails + rc))
		rc=0; [ ! -e "$LAB_SOCKET" ] || rc=1
		tb_result "control socket removed" "$rc"; fails=$((fails + rc))
	fi
	if [ "$fails" -eq 0 ]; then tb_log "all checks passed"; else tb_log "$fails check(s) failed"; fi
	[ "$fails" -eq 0 ]
}

cmd_run() {
	trap lab_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	lab_setup
	if [ $# -eq 0 ]; then
		tb_info "lab is up; nodes: dom0=$NS_DOM0 ext=$NS_EXT vm1=${NS_VM[1]} ...; exit the shell to tear it down"
		PS1="[lab $LAB_PREFIX] \\w# " bash --norc -i || true
	else
		"$@"
	fi
}

cmd_up() {
	# If set-up fails half way, remove what was made; on success leave it running.
	trap lab_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	lab_setup detach
	lab_save_state
	# The daemon was started with setsid and is not ours to wait for any more.
	TB_PIDS=()
	trap - EXIT INT TERM
	tb_info "lab $LAB_PREFIX is up ($LAB_MODE)"
	tb_log "  nodes:   dom0=$NS_DOM0 ext=$NS_EXT $(for ((i = 1; i <= LAB_VMS; i++)); do printf 'vm%d=%s ' "$i" "${NS_VM[i]}"; done)"
	[ "$LAB_MODE" = tapbridge ] && tb_log "  daemon:  PID $LAB_DAEMON_PID, log $LAB_DAEMON_LOG, socket $LAB_SOCKET"
	tb_log "  try:     $0 exec vm1 ping -c 3 $(lab_vm_ip4 2);  $0 cli show;  $0 down"
}

cmd_down() {
	lab_load_state "${1:-}"
	tb_info "tearing down lab $LAB_PREFIX ($LAB_MODE)"
	TB_NAMESPACES=()
	lab_cleanup
	tb_log "done"
}

cmd_status() {
	lab_load_state "${1:-}"
	tb_info "lab $LAB_PREFIX ($LAB_MODE)"
	local ns
	for ns in "$NS_DOM0" "${NS_VM[@]}" "$NS_EXT"; do
		echo "--- $ns"
		ip -n "$ns" -br link 2>&1 | grep -v '^lo ' || true
		ip -n "$ns" -br addr 2>&1 | grep -v '^lo ' | awk 'NF > 2' || true
	done
	if [ "$LAB_MODE" = tapbridge ]; then
		echo "--- daemon PID $LAB_DAEMON_PID: $(tb_alive "$LAB_DAEMON_PID" && echo running || echo gone)"
		lab_cli show || true
	fi
}

cmd_exec() {
	lab_load_state
	[ $# -ge 2 ] || tb_die "usage: $0 exec NODE CMD..."
	local ns
	ns=$(lab_node "$1")
	shift
	ip netns exec "$ns" "$@"
}

cmd_cli() {
	lab_load_state
	lab_cli "$@"
}

cmd_compare() {
	local secs=${TB_COMPARE_SECONDS:-5} mode base=$LAB_PREFIX
	for mode in tapbridge kernel; do
		(
			LAB_MODE=$mode
			lab_names "$base-${mode:0:1}"
			trap lab_on_exit EXIT
			trap 'exit 130' INT
			trap 'exit 143' TERM
			lab_setup >&2
			lab_check_pings >&2 || tb_die "$mode: pings fail; not measuring"
			# warm the FDB / neighbour caches, then measure
			printf '%s %s %s %s %s\n' "$mode" \
				"$(lab_rtt vm1 "$(lab_vm_ip4 2)")" "$(lab_rtt vm1 "$LAB_EXT_IP4")" \
				"$(lab_iperf vm1 vm2 "$(lab_vm_ip4 2)" "$secs")" "$(lab_iperf vm1 ext "$LAB_EXT_IP4" "$secs")"
		) >"$LAB_ROOT.compare.$mode" || tb_warn "$mode measurement failed"
	done
	printf '\n%-10s | %-16s | %-16s | %-18s | %-18s\n' bridge "RTT vm1-vm2 ms" "RTT vm1-ext ms" "TCP vm1->vm2 Gb/s" "TCP vm1->ext Gb/s"
	printf '%s\n' "-----------+------------------+------------------+--------------------+-------------------"
	for mode in tapbridge kernel; do
		if [ -s "$LAB_ROOT.compare.$mode" ]; then
			# shellcheck disable=SC2046,SC2183
			printf '%-10s | %-16s | %-16s | %-18s | %-18s\n' $(cat "$LAB_ROOT.compare.$mode")
		else
			printf '%-10s | failed\n' "$mode"
		fi
		rm -f "$LAB_ROOT.compare.$mode"
	done
	echo "(one run of each; repeat for medians: the generators share the 2 cores with the bridge)"
}

lab_main() {
	set -euo pipefail
	local prefix=
	while [ $# -gt 0 ]; do
		case $1 in
		--kernel) LAB_MODE=kernel ;;
		--tapbridge) LAB_MODE=tapbridge ;;
		--vms) LAB_VMS=$2; shift ;;
		--prefix) prefix=$2; shift ;;
		-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; return 0 ;;
		--) shift; break ;;
		-*) tb_die "unknown option $1 (see --help)" ;;
		*) break ;;
		esac
		shift
	done
	[ $# -ge 1 ] || { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; return 2; }
	[[ $LAB_VMS =~ ^[1-9]$ ]] || tb_die "--vms takes 1..9"
	local cmd=$1
	shift
	case $cmd in
	test | run | up | compare)
		tb_require_root
		tb_require_cmds ip ping timeout ss
		[ "$cmd" = compare ] && tb_require_cmds iperf3
		lab_names "${prefix:-tb-lab-$$}"
		;;
	esac
	case $cmd in
	test) cmd_test ;;
	run) cmd_run "$@" ;;
	up) cmd_up ;;
	down) tb_require_root; cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	exec) cmd_exec "$@" ;;
	cli) cmd_cli "$@" ;;
	compare) cmd_compare ;;
	*) tb_die "unknown command '$cmd' (see --help)" ;;
	esac
}

# Run only when executed; scripts/demo.sh sources this file for its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	lab_main "$@"
fi
