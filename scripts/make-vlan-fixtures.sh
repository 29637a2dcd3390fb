#!/usr/bin/env bash
# Regenerates test/fixtures/vlan.pcap: tagged traffic as it arrives on a trunk (needs root, tcpdump, python3).
#
#   +------------ tbvfx-$$-a ------------+      +------------ tbvfx-$$-b ------------+
#   | veth a0: python3 raw socket sends   |------| veth b0: tcpdump -w records what    |
#   | the trunk traffic below             |      | arrives (receive side)               |
#   +------------------------------------+      +-------------------------------------+
#
# The capture is taken on the receiving end on purpose: there the kernel strips the 802.1Q (and 802.1ad) tag
# into the skb and libpcap re-inserts it from PACKET_AUXDATA, the same path tapbridge's AF_PACKET ports take.
# This kernel has no 8021q module, so the VLAN traffic is built by python (valid ARP and ICMP, checksums right):
#
#   1-4  VLAN 10, PCP 0:  ARP who-has / is-at and ICMP echo request / reply between H1 and H2
#   5-8  VLAN 20:         ARP between H1 (the same MAC as in VLAN 10) and H3; ICMP echo with PCP 5, the reply
#                         with PCP 5 and DEI 1
#   9    VLAN 30          a broadcast in a VLAN the replaying trunk does not carry
#   10   untagged         ICMP echo request H2 -> H1
#   11   priority-tagged  VID 0, PCP 3, H2 -> H1
#   12   802.1ad S-tag    TPID 0x88a8, VID 10 (an ordinary ethertype for tapbridge: no QinQ)
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/vlan.pcap
A="tbvfx-$$-a"; B="tbvfx-$$-b"
cleanup() {
  [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$A"; ip netns add "$B"
ip -n "$A" link add a0 address 00:16:3e:fb:00:0a type veth peer name b0 address 00:16:3e:fb:00:0b netns "$B"
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$A" link set a0 up
# b0 carries no address: nothing but the frames below appears on it
ip -n "$B" link set b0 arp off up
ip netns exec "$B" tcpdump -q -i b0 -w "$out" -U 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
ip netns exec "$A" python3 - <<'PY'
import socket, struct, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("a0", 0))
mac = lambda m: bytes.fromhex(m.replace(":", ""))
ip = lambda a: socket.inet_aton(a)
BC = mac("ff:ff:ff:ff:ff:ff")
H1, H2, H3 = mac("00:16:3e:fb:00:01"), mac("00:16:3e:fb:00:02"), mac("00:16:3e:fb:00:03")
IP1, IP2, IP3 = "198.18.251.1", "198.18.251.2", "198.18.251.3"

def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff

def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip(spa) + tha + ip(tpa)

def icmp_echo(src, dst, typ, seq):
    body = struct.pack("!BBHHH", typ, 0, 0, 0x7462, seq) + b"tapbridge-vlan-fixture"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), seq, 0x4000, 64, 1, 0, ip(src), ip(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + body

def frame(dst, src, tag, ethertype, payload, tpid=0x8100):
    f = dst + src + (struct.pack("!HH", tpid, tag) if tag is not None else b"") + struct.pack("!H", ethertype) + payload
    return f + bytes(max(0, 60 - len(f)))

frames = [
    frame(BC, H1, 10, 0x0806, arp(1, H1, IP1, bytes(6), IP2)),
    frame(H1, H2, 10, 0x0806, arp(2, H2, IP2, H1, IP1)),
    frame(H2, H1, 10, 0x0800, icmp_echo(IP1, IP2, 8, 1)),
    frame(H1, H2, 10, 0x0800, icmp_echo(IP2, IP1, 0, 1)),
    frame(BC, H1, 20, 0x0806, arp(1, H1, IP1, bytes(6), IP3)),
    frame(H1, H3, 20, 0x0806, arp(2, H3, IP3, H1, IP1)),
    frame(H3, H1, (5 << 13) | 20, 0x0800, icmp_echo(IP1, IP3, 8, 2)),
    frame(H1, H3, (5 << 13) | (1 << 12) | 20, 0x0800, icmp_echo(IP3, IP1, 0, 2)),
    frame(BC, H2, 30, 0x0806, arp(1, H2, IP2, bytes(6), IP3)),
    frame(H1, H2, None, 0x0800, icmp_echo(IP2, IP1, 8, 3)),
    frame(H1, H2, 3 << 13, 0x0800, icmp_echo(IP2, IP1, 8, 4)),
    frame(H1, H2, 10, 0x0800, icmp_echo(IP2, IP1, 8, 5), tpid=0x88a8),
]
for f in frames:
    s.send(f)
    time.sleep(0.02)
PY
sleep 1
kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; TCPDUMP_PID=
echo "wrote $out ($(stat -c %s "$out") bytes, $(tcpdump -r "$out" 2>/dev/null | wc -l) frames)"
tcpdump -e -nn -r "$out" 2>/dev/null
