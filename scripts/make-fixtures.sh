#!/usr/bin/env bash
# Regenerates the classic-pcap fixtures in test/fixtures/ from real traffic (needs root, tcpdump, python3).
#
#   +---------------- tbfx-$$-a ----------------+      +------- tbfx-$$-b -------+
#   | veth a0 (198.18.250.1/24, 00:16:3e:fa:00:01) |------| veth b0 (198.18.250.2/24) |
#   +--------------------------------------------+      +-------------------------+
#         tcpdump -w on a0 records both directions
#
# Traffic: ARP + ICMP (ping), and from a0 with a raw socket: an STP BPDU, an LLDP frame, a frame with a
# multicast source MAC, and an 802.1Q VID 100 tagged frame (the sender's own tag survives on veth TX).
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/basic.pcap
A="tbfx-$$-a"; B="tbfx-$$-b"
cleanup() {
  [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$A"; ip netns add "$B"
ip -n "$A" link add a0 address 00:16:3e:fa:00:01 type veth peer name b0 address 00:16:3e:fa:00:02 netns "$B"
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$A" addr add 198.18.250.1/24 dev a0; ip -n "$A" link set a0 up
ip -n "$B" addr add 198.18.250.2/24 dev b0; ip -n "$B" link set b0 up
ip netns exec "$A" tcpdump -q -i a0 -w "$out" -U 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
ip netns exec "$A" ping -c 3 -i 0.2 -W 1 198.18.250.2 >/dev/null
ip netns exec "$A" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("a0", 0))
src = bytes.fromhex("00163efa0001")
pad = lambda b: b + bytes(max(0, 60 - len(b)))
s.send(pad(bytes.fromhex("0180c2000000") + src + bytes.fromhex("0026") + bytes.fromhex("424203000000")))   # STP BPDU (802.3 + LLC)
s.send(pad(bytes.fromhex("0180c200000e") + src + bytes.fromhex("88cc") + bytes.fromhex("0207")))          # LLDP
s.send(pad(bytes.fromhex("00163efa0002") + bytes.fromhex("01005e000001") + bytes.fromhex("0800")))        # multicast source
s.send(pad(bytes.fromhex("00163efa0002") + src + bytes.fromhex("8100a064") + bytes.fromhex("0800")))      # VID 100, PCP 5
PY
sleep 1
kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; TCPDUMP_PID=
echo "wrote $out ($(stat -c %s "$out") bytes)"
