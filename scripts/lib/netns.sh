# shellcheck shell=bash
# Shared helpers for tapbridge's netns scripts (scripts/lab.sh, scripts/demo.sh). Source it; it defines functions and a few
# variables, runs nothing.
#
# Rules every user of these helpers follows (see DESIGN.md section 7):
#   - never touch the root namespace's interfaces, addresses or routes: every link is created with `ip -n NS`, inside a
#     namespace this script made;
#   - namespaces carry a unique prefix and are recorded in TB_NAMESPACES so tb_cleanup_all can remove them;
#   - background processes are recorded in TB_PIDS and stopped by PID, never by name;
#   - every command that waits on the network is bounded (`timeout`, ping -c/-W).

TB_NAMESPACES=()
TB_PIDS=()
TB_CMD_TIMEOUT=${TB_CMD_TIMEOUT:-30}

# Colour only on a terminal.
if [ -t 1 ]; then
	TB_GREEN=$'\e[32m' TB_RED=$'\e[31m' TB_BOLD=$'\e[1m' TB_RESET=$'\e[0m'
else
	TB_GREEN='' TB_RED='' TB_BOLD='' TB_RESET=''
fi

tb_log() { printf '%s\n' "$*"; }
tb_info() { printf '%s# %s%s\n' "$TB_BOLD" "$*" "$TB_RESET"; }
tb_warn() { printf 'warning: %s\n' "$*" >&2; }
tb_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Kernel-selftest style result line: tb_result NAME RC
tb_result() {
	local name=$1 rc=$2
	if [ "$rc" -eq 0 ]; then
		printf 'TEST: %-60s [ %sOK%s ]\n' "$name" "$TB_GREEN" "$TB_RESET"
	else
		printf 'TEST: %-60s [%sFAIL%s]\n' "$name" "$TB_RED" "$TB_RESET"
	fi
}

tb_require_root() {
	[ "$(id -u)" -eq 0 ] || tb_die "must run as root (creates network namespaces)"
}

tb_require_cmds() {
	local c missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	[ ${#missing[@]} -eq 0 ] || tb_die "missing commands: ${missing[*]} (run scripts/setup-test-deps.sh as root)"
}

# Debian's python3 when present: a pyenv shim may not resolve the same way inside `ip netns exec`.
tb_python() {
	if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# tb_ns_create NAME: make a namespace with loopback up and record it for cleanup.
tb_ns_create() {
	local ns=$1
	ip netns add "$ns" || tb_die "ip netns add $ns failed"
	TB_NAMESPACES+=("$ns")
	ip -n "$ns" link set lo up
	# No router solicitations / SLAAC noise on lab hosts; addresses are configured by hand.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0 >/dev/null 2>&1 || true
}

# tb_ns_destroy NAME: delete one namespace (and with it every veth/TAP still inside it).
tb_ns_destroy() {
	local ns=$1
	ip netns del "$ns" 2>/dev/null || true
}

# tb_nsexec NS CMD...: run CMD inside NS, bounded by TB_CMD_TIMEOUT seconds.
tb_nsexec() {
	local ns=$1
	shift
	timeout --kill-after=5 "$TB_CMD_TIMEOUT" ip netns exec "$ns" "$@"
}

# tb_bg NS LOGFILE CMD...: start CMD in NS in the background, output to LOGFILE; sets TB_LAST_PID and records it.
# `ip netns exec` execs the command, so the PID is the command's own.
tb_bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	TB_LAST_PID=$!
	TB_PIDS+=("$TB_LAST_PID")
}

# tb_alive PID
tb_alive() { kill -0 "$1" 2>/dev/null; }

# tb_stop_pid PID [GRACE_SECONDS]: SIGTERM, wait up to GRACE, then SIGKILL. Sets TB_STOP_RC to the exit status when the
# process was our child (otherwise 0 when it went away after SIGTERM, 137 after SIGKILL).
tb_stop_pid() {
	local pid=$1 grace=${2:-10} i
	TB_STOP_RC=0
	tb_alive "$pid" || {
		wait "$pid" 2>/dev/null && TB_STOP_RC=0 || TB_STOP_RC=$?
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		tb_alive "$pid" || break
		# a zombie child counts as gone
		if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then break; fi
		sleep 0.1
	done
	if tb_alive "$pid" && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
		tb_warn "PID $pid did not exit ${grace}s after SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		TB_STOP_RC=137
	fi
	if wait "$pid" 2>/dev/null; then
		TB_STOP_RC=0
	else
		local rc=$?
		# 127: not our child (wait cannot report it); keep what we know
		[ "$rc" -eq 127 ] || TB_STOP_RC=$rc
	fi
}

# tb_wait_socket PATH PID TIMEOUT_SECONDS: wait until PATH is a socket while PID lives.
tb_wait_socket() {
	local path=$1 pid=$2 t=${3:-20} i
	for ((i = 0; i < t * 10; i++)); do
		[ -S "$path" ] && return 0
		tb_alive "$pid" || return 2
		sleep 0.1
	done
	return 1
}

# tb_wait_link NS IFNAME TIMEOUT_SECONDS: wait until IFNAME exists in NS.
tb_wait_link() {
	local ns=$1 ifname=$2 t=${3:-10} i
	for ((i = 0; i < t * 10; i++)); do
		ip -n "$ns" link show dev "$ifname" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# tb_trap_cleanup WORKDIR: on exit, INT or TERM: tb_cleanup_all, remove WORKDIR, keep the exit status (130 / 143 for
# the signals).
tb_trap_cleanup() {
	TB_WORKDIR=$1
	trap tb_exit_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
tb_exit_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	tb_cleanup_all
	[ -z "${TB_WORKDIR:-}" ] || rm -rf "$TB_WORKDIR"
	exit "$rc"
}

# tb_cleanup_all: stop every recorded PID, delete every recorded namespace (reverse order). Safe to call twice.
tb_cleanup_all() {
	local i
	for ((i = ${#TB_PIDS[@]} - 1; i >= 0; i--)); do
		tb_stop_pid "${TB_PIDS[i]}" 5 2>/dev/null || true
	done
	TB_PIDS=()
	for ((i = ${#TB_NAMESPACES[@]} - 1; i >= 0; i--)); do
		tb_ns_destroy "${TB_NAMESPACES[i]}"
	done
	TB_NAMESPACES=()
}

# tb_wait_pidfile FILE: echo the PID a daemonizing program wrote there (waits up to 5 s; status 1 when none).
tb_wait_pidfile() {
	local i
	for ((i = 0; i < 50; i++)); do
		if [ -s "$1" ]; then cat "$1"; return 0; fi
		sleep 0.1
	done
	return 1
}

# tb_move_link FROM_NS IFNAME TO_NS [NEWNAME]: wait until IFNAME exists in FROM_NS (a TAP a bridge made there), move it
# into TO_NS and rename it NEWNAME (default eth0).
tb_move_link() {
	tb_wait_link "$1" "$2" 10 || tb_die "$2 did not appear in $1"
	ip -n "$1" link set dev "$2" netns "$3"
	ip -n "$3" link set dev "$2" name "${4:-eth0}"
}

# tb_cpu_ticks PID...: utime + stime of the PIDs in clock ticks (/proc/PID/stat fields 14 and 15); a PID gone counts 0.
tb_cpu_ticks() {
	local pid total=0 v
	for pid in "$@"; do
		v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# Open vSwitch started by hand (no ovs-ctl, no system service): ovsdb-server and ovs-vswitchd inside a namespace the
# caller made, with the database, sockets, logs and OVS_RUNDIR (the bridges' .mgmt sockets) under DIR, never the
# system's /etc/openvswitch or /var/run/openvswitch.
TB_OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

# tb_ovs_vsctl DIR ARGS...: ovs-vsctl against the database under DIR (TB_OVS_TIMEOUT seconds, default 10).
tb_ovs_vsctl() {
	local d=$1
	shift
	ovs-vsctl --db="unix:$d/db.sock" --timeout="${TB_OVS_TIMEOUT:-10}" "$@"
}

# tb_ovs_have [VSWITCHD]: status 0 when ovsdb-tool, ovsdb-server, ovs-vsctl, the schema and VSWITCHD (default
# ovs-vswitchd) are installed.
tb_ovs_have() {
	local c
	for c in ovsdb-tool ovsdb-server ovs-vsctl "${1:-ovs-vswitchd}"; do command -v "$c" >/dev/null 2>&1 || return 1; done
	[ -f "$TB_OVS_SCHEMA" ]
}

# tb_ovs_port_error DIR PORT...: status 1 and TB_OVS_ERR "port PORT: ERROR" for the first PORT whose Interface row has
# an error (a port OVS could not open); status 0 when none has.
tb_ovs_port_error() {
	local d=$1 p err
	shift
	for p in "$@"; do
		err=$(tb_ovs_vsctl "$d" get interface "$p" error 2>&1 || true)
		if [ -n "$err" ] && [ "$err" != '[]' ]; then
			TB_OVS_ERR="port $p: $err"
			return 1
		fi
	done
	return 0
}

# tb_ovs_up NS DIR [VSWITCHD [KEY=VALUE...]]: a fresh database in DIR, ovsdb-server, Open_vSwitch other_config KEY=VALUE
# (before ovs-vswitchd reads it: dpdk-init and its friends), then VSWITCHD (default ovs-vswitchd; the DPDK build by its
# path), both in NS and recorded in TB_PIDS. Status 0: TB_OVS_PID is ovs-vswitchd's PID, its unixctl socket is
# DIR/vswitchd.ctl. Status 1: TB_OVS_ERR says which step failed and the last lines of its log.
TB_OVS_PID=
TB_OVS_ERR=
tb_ovs_up() {
	local ns=$1 d=$2 bin=${3:-ovs-vswitchd} kv rc=0
	shift 3 2>/dev/null || shift $#
	TB_OVS_PID= TB_OVS_ERR=
	rm -rf "$d"
	mkdir -p "$d"
	if ! ovsdb-tool create "$d/conf.db" "$TB_OVS_SCHEMA" >"$d/tool.log" 2>&1; then
		TB_OVS_ERR="ovsdb-tool create failed: $(tail -n 2 "$d/tool.log" | tr '\n' ' ')"
		return 1
	fi
	tb_bg "$ns" "$d/ovsdb.out" env OVS_RUNDIR="$d" OVS_DBDIR="$d" OVS_LOGDIR="$d" ovsdb-server "$d/conf.db" \
		--remote="punix:$d/db.sock" --unixctl="$d/ovsdb.ctl" --log-file="$d/ovsdb.log" --no-chdir -vconsole:off
	tb_wait_socket "$d/db.sock" "$TB_LAST_PID" 10 || {
		TB_OVS_ERR="ovsdb-server did not start: $(tail -q -n 2 "$d/ovsdb.out" "$d/ovsdb.log" 2>/dev/null | tr '\n' ' ')"
		return 1
	}
	local init=(--no-wait init)
	for kv in "$@"; do init+=(-- set Open_vSwitch . "other_config:$kv"); done
	if ! tb_ovs_vsctl "$d" "${init[@]}" >"$d/vsctl.log" 2>&1; then
		TB_OVS_ERR="ovs-vsctl init failed: $(tail -n 2 "$d/vsctl.log" | tr '\n' ' ')"
		return 1
	fi
	tb_bg "$ns" "$d/vswitchd.out" env OVS_RUNDIR="$d" OVS_DBDIR="$d" OVS_LOGDIR="$d" "$bin" "unix:$d/db.sock" \
		--unixctl="$d/vswitchd.ctl" --log-file="$d/vswitchd.log" --no-chdir -vconsole:off
	TB_OVS_PID=$TB_LAST_PID
	tb_wait_socket "$d/vswitchd.ctl" "$TB_OVS_PID" 30 || rc=$?
	if [ "$rc" -ne 0 ]; then
		TB_OVS_ERR="$bin $([ "$rc" = 2 ] && echo exited || echo 'did not open its control socket in 30 s'): $(grep -h -E 'ERR|EMER|WARN' "$d/vswitchd.log" 2>/dev/null | tail -n 3 | tr '\n' ' ')$(tail -n 2 "$d/vswitchd.out" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
	return 0
}

# tb_cpu_ns PID...: on-CPU time of every thread of the PIDs in ns (/proc/PID/task/*/schedstat), for windows where clock
# ticks are too coarse.
tb_cpu_ns() {
	local pid f total=0 v
	for pid in "$@"; do
		for f in /proc/"$pid"/task/*/schedstat; do
			read -r v _ <"$f" 2>/dev/null || continue
			total=$((total + v))
		done
	done
	echo "$total"
}
