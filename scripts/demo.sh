#!/usr/bin/env bash
# tapbridge demo: brings up the netns lab of scripts/lab.sh (picture there), starts the daemon in dom0, shows ping and
# TCP vm<->vm and vm<->external host through it, prints `tapbridge show` and `tapbridge showmacs xenbr0`, stops the
# daemon and tears everything down. Exit 0 when every step worked, 1 otherwise.
#
#   vm1 (198.18.0.1) ---TAP--- [ tapbridge: xenbr0 in dom0 ] ---AF_PACKET peth0 / veth--- ext (198.18.0.254)
#   vm2 (198.18.0.2) ---TAP---/
#
# Run as root after `npm ci`:  sudo bash scripts/demo.sh
# Installs missing system tools (iproute2, iputils-ping, iperf3, ...) through scripts/setup-test-deps.sh.
# Nothing touches the root namespace: all links live in namespaces named tb-demo-PID-*, removed on every exit path.
set -euo pipefail

DEMO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.sh
source "$DEMO_DIR/lab.sh"

tb_require_root
if ! command -v iperf3 >/dev/null 2>&1 || ! command -v ping >/dev/null 2>&1 || ! command -v ss >/dev/null 2>&1; then
	bash "$DEMO_DIR/setup-test-deps.sh"
fi
tb_require_cmds ip ping ss iperf3 timeout node
[ -n "${TAPBRIDGE_BIN:-}" ] || [ -f "$LAB_REPO_ROOT/dist/cli/main.js" ] ||
	tb_die "$LAB_REPO_ROOT/dist/cli/main.js is missing: run 'npm ci' first"

LAB_MODE=tapbridge
lab_names "tb-demo-$$"
trap lab_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILS=0
step() { # step NAME CMD...: run CMD, print a result line, count failures
	local name=$1 rc=0
	shift
	"$@" || rc=$?
	tb_result "$name" "$rc"
	FAILS=$((FAILS + (rc != 0)))
	return 0
}

tb_info "1. lab up: namespaces, uplink veth, daemon in $NS_DOM0, TAPs moved into the VMs"
lab_setup
tb_log "daemon PID $LAB_DAEMON_PID, config $LAB_CONFIG, socket $LAB_SOCKET"
sed 's/^/    /' "$LAB_CONFIG"

tb_info "2. ping through the bridge"
step "ping vm1 -> vm2 ($(lab_vm_ip4 2))" lab_ping vm1 "$(lab_vm_ip4 2)"
step "ping vm2 -> vm1 ($(lab_vm_ip4 1))" lab_ping vm2 "$(lab_vm_ip4 1)"
step "ping vm1 -> ext ($LAB_EXT_IP4, via the AF_PACKET uplink)" lab_ping vm1 "$LAB_EXT_IP4"
step "ping ext -> vm2 ($(lab_vm_ip4 2))" lab_ping ext "$(lab_vm_ip4 2)"
step "ping vm1 -> vm2 ($(lab_vm_ip6 2))" lab_ping vm1 "$(lab_vm_ip6 2)"
tb_log "$(tb_nsexec "$NS_VM1" ping -c 5 -i 0.2 -W 2 "$(lab_vm_ip4 2)" | tail -1 | sed 's/^/vm1 -> vm2: /')" || true

tb_info "3. TCP through the bridge (iperf3, 3 s each, default offloads on)"
iperf_step() { # iperf_step FROM TO ADDR
	local gbps
	gbps=$(lab_iperf "$1" "$2" "$3" 3) || return 1
	tb_log "    $1 -> $2: $gbps Gbit/s"
}
step "TCP vm1 -> vm2" iperf_step vm1 vm2 "$(lab_vm_ip4 2)"
step "TCP vm1 -> ext" iperf_step vm1 ext "$LAB_EXT_IP4"
step "TCP ext -> vm2" iperf_step ext vm2 "$(lab_vm_ip4 2)"

tb_info "4. tapbridge show"
step "tapbridge show" lab_cli show
tb_info "5. tapbridge showmacs $LAB_BRIDGE"
step "tapbridge showmacs $LAB_BRIDGE" lab_cli showmacs "$LAB_BRIDGE"

tb_info "6. SIGTERM the daemon; nothing may be left behind"
cleanup_tapbridge
step "daemon exited 0 (exit status $LAB_DAEMON_RC)" test "$LAB_DAEMON_RC" = 0
step "control socket removed" test ! -e "$LAB_SOCKET"
leftover_taps() {
	local i
	for ((i = 1; i <= LAB_VMS; i++)); do
		ip -n "$NS_DOM0" link show dev "$(lab_vm_vif "$i")" >/dev/null 2>&1 && return 1
		ip -n "${NS_VM[i]}" link show dev eth0 >/dev/null 2>&1 && return 1
	done
	return 0
}
step "TAPs gone from dom0 and from the VMs they were moved to" leftover_taps
if [ "$FAILS" -ne 0 ]; then
	tb_log "daemon log (last 40 lines):"
	tail -n 40 "$LAB_DAEMON_LOG" 2>/dev/null | sed 's/^/    /' || true
fi

tb_info "7. tear down"
lab_cleanup
LAB_PREFIX=
if [ "$FAILS" -eq 0 ]; then
	tb_log "demo: all steps passed"
else
	tb_log "demo: $FAILS step(s) failed"
	exit 1
fi
