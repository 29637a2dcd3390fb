#!/usr/bin/env bash
# Installs the system packages tapbridge's tests, lab and demo need, only if they are missing.
#
#   iproute2  ip netns / ip link / ip -j / ss (the lab and the netns tests); bridge fdb (the VXLAN test's kernel VTEP)
#   iputils-ping  ping (IPv4 and IPv6)
#   ethtool   offload inspection in the lab
#   tcpdump   captures in the lab and the VLAN test's fallback
#   iperf3    TCP throughput in the demo and the lab's comparison
#   python3   byte-checked TCP transfer and raw AF_PACKET frames in the netns tests
#   procps    sysctl, ps
#   kmod      modprobe (tun, veth, bridge are loaded on demand); depmod for the QEMU guest's modules.dep
#   qemu-system-x86  the QEMU guest test (test/netns/qemu.test.ts) boots a real guest with TCG
#   busybox-static   the guest's initramfs (a statically linked busybox), built by scripts/guest/build-image.sh
#                    and udhcpd/udhcpc for the DHCP lease in test/netns/lock.test.ts
#   cpio      packs that initramfs (the guest's kernel is downloaded by that script with apt-get download)
#   prometheus  promtool (`promtool check metrics`) and a real Prometheus server that scrapes the daemon in a netns
#               (test/netns/metrics.test.ts); its service is never started: policy-rc.d refuses it during the install
#   systemd   systemd-analyze verify / security --offline=yes on the installed unit (systemd need not be PID 1)
#   tshark    reads `tapbridge capture` pcapng output in the capture netns test (test/netns/observe.test.ts)
#   libvirt-daemon, libvirt-clients  libvirtd (libvirt-daemon, which pulls in libvirt-daemon-driver-qemu) and virsh for
#             test/netns/libvirt.test.ts (run in session mode by the test itself; no systemd, no system bus)
#   dpdk-dev  dpdk-testpmd, a vhost-user frontend none of us wrote (test/netns/vhost-testpmd.test.ts and
#             scripts/bench/vhost-user.sh); it runs with --no-huge, so no hugepages are reserved
#   openvswitch-switch  the LACP partner of test/netns/bond-modes.test.ts (ovsdb-server, ovs-vswitchd started by hand
#                       in a namespace, userspace datapath; its service is never started)
#
# Idempotent and quiet: does nothing when every command is present. Uses apt-get only, as root; when not root
# (or not on a Debian-like system) it prints what is missing and exits 0, so the tests can skip what they cannot run.
set -euo pipefail

# command -> Debian package
declare -A PKG_OF=(
	[ip]=iproute2
	[ss]=iproute2
	[bridge]=iproute2
	[ping]=iputils-ping
	[ethtool]=ethtool
	[tcpdump]=tcpdump
	[iperf3]=iperf3
	[sysctl]=procps
	[modprobe]=kmod
	[depmod]=kmod
	[qemu-system-x86_64]=qemu-system-x86
	[cpio]=cpio
	[promtool]=prometheus
	[prometheus]=prometheus
	[systemd-analyze]=systemd
	[tshark]=tshark
	[dpdk-testpmd]=dpdk-dev
	[libvirtd]=libvirt-daemon
	[virsh]=libvirt-clients
	[ovs-vswitchd]=openvswitch-switch
	[ovsdb-server]=openvswitch-switch
	[ovs-vsctl]=openvswitch-switch
	# npm ci compiles the addon (scripts/build-addon.mjs, node-gyp)
	[g++]=g++
	[make]=make
)

missing=()
for cmd in "${!PKG_OF[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/sbin/$cmd" ]; then
		missing+=("${PKG_OF[$cmd]}")
	fi
done
# python3 from Debian specifically: a pyenv shim may be absent inside `ip netns exec` or under another user.
if ! [ -x /usr/bin/python3 ] && ! command -v python3 >/dev/null 2>&1; then
	missing+=(python3)
fi

# busybox statically linked (the guest's initramfs has no libraries); a dynamic busybox does not do
busybox_static=no
for b in /bin/busybox /usr/bin/busybox; do
	[ -x "$b" ] || continue
	ldd_out=$(LC_ALL=C ldd "$b" 2>&1 || true)
	if grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out"; then busybox_static=yes; fi
done
[ "$busybox_static" = yes ] || missing+=(busybox-static)

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup-test-deps: all test dependencies present"
	exit 0
fi

# de-duplicate, stable order
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-test-deps: not root; missing packages not installed: ${missing[*]} (privileged tests will skip)" >&2
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "setup-test-deps: apt-get not found; install these yourself: ${missing[*]}" >&2
	exit 0
fi

echo "setup-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# No package's service may start here (Debian's prometheus would listen on :9090 in the root namespace): a
# policy-rc.d that refuses every start, only for this install and only when the machine has none of its own.
policy=/usr/sbin/policy-rc.d
own_policy=no
if ! [ -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=yes
fi
trap 'rm -f "$log"; if [ "$own_policy" = yes ]; then rm -f "$policy"; fi' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "setup-test-deps: apt-get failed" >&2
	exit 1
fi
echo "setup-test-deps: done"
