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

# tb_install_cleanup DIR: on exit (also after INT/TERM) stop every recorded PID, delete every recorded namespace and
# remove DIR, keeping the script's exit status.
tb_install_cleanup() {
	TB_CLEANUP_DIR=$1
	trap '_tb_on_exit' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
_tb_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	tb_cleanup_all
	[ -n "${TB_CLEANUP_DIR:-}" ] && rm -rf "$TB_CLEANUP_DIR"
	exit "$rc"
}
