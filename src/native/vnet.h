// tapbridge_native: the virtio-net header every port carries with a frame, and the tx entry check, shared by TAP and
// AF_PACKET ports (port.cc) and vhost-user ports (vhost-user.cc).
//
// struct virtio_net_hdr, native endian (little endian here; tun and af_packet use it so without TUNSETVNETLE, and a
// VERSION_1 virtio ring is little endian): 0 flags, 1 gso_type, 2 hdr_len, 4 gso_size, 6 csum_start, 8 csum_offset,
// [10 num_buffers with MRG_RXBUF]. <linux/virtio_net.h> is not valid C++ (a member named 'class'): the values are here.
#pragma once

#include "common.h"

#include <cstring>

namespace tb {

constexpr uint8_t VNET_F_NEEDS_CSUM = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t VNET_F_DATA_VALID = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
constexpr uint8_t VNET_GSO_TCPV4 = 1;
constexpr uint8_t VNET_GSO_UDP = 3;
constexpr uint8_t VNET_GSO_TCPV6 = 4;
constexpr uint8_t VNET_GSO_ECN = 0x80;
constexpr size_t kMinFrame = 14;  // Ethernet header

inline size_t Align16(size_t v) { return (v + (kSlotAlign - 1)) & ~(kSlotAlign - 1); }

inline uint16_t Ld16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void St16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// A tag pushed (delta +4) or popped (delta -4) in front of the L3 header moves csum_start, and hdr_len (a length of
// headers including Ethernet; 0 for non-GSO frames) by the same amount.
inline void AdjustVnetHdr(uint8_t* h, int delta) {
  if (h[0] & VNET_F_NEEDS_CSUM) {
    uint16_t cs = Ld16(h + 6);
    if (delta > 0 || cs >= static_cast<uint16_t>(-delta)) St16(h + 6, static_cast<uint16_t>(cs + delta));
  }
  uint16_t hl = Ld16(h + 2);
  if (hl != 0 && (delta > 0 || hl > static_cast<uint16_t>(-delta))) St16(h + 2, static_cast<uint16_t>(hl + delta));
}

// A tx entry (off, len, op) of the engine (native-types.ts): the frame lies in the slab behind its vnet header, is
// 14..64 KiB + a tag long, and a pop or a set has a tag to work on. False: count TxOther / EINVAL.
inline bool TxEntryOk(size_t off, size_t len, uint32_t op, size_t slabLen) {
  return off >= kVnetHdrLen && len >= kMinFrame && len <= kMaxFrame + kTagLen && off + len <= slabLen &&
         (op == TX_OP_NONE || op == TX_OP_PUSH_TAG ||
          ((op == TX_OP_POP_TAG || op == TX_OP_SET_TAG) && len >= kMinFrame + kTagLen));
}

// One's complement sum of a byte range (RFC 1071), folded to 16 bits.
inline uint32_t CsumAdd(uint32_t sum, const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) sum += (static_cast<uint32_t>(p[i]) << 8) | p[i + 1];
  if (i < n) sum += static_cast<uint32_t>(p[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

// Completes the partial checksum (NEEDS_CSUM) of frame[0, len) in place, as a NIC would: the one's complement of the
// sum from csum_start to the end, stored at csum_start + csum_offset; clears NEEDS_CSUM in hdr. False (nothing
// written) for a GSO frame or offsets outside the frame.
inline bool CompleteCsum(uint8_t* hdr, uint8_t* frame, size_t len) {
  const size_t cs = Ld16(hdr + 6), co = Ld16(hdr + 8);
  if (cs + co + 2 > len || hdr[1] != 0) return false;
  const uint16_t folded = static_cast<uint16_t>(~CsumAdd(0, frame + cs, len - cs));
  frame[cs + co] = static_cast<uint8_t>(folded >> 8);
  frame[cs + co + 1] = static_cast<uint8_t>(folded);
  hdr[0] &= static_cast<uint8_t>(~VNET_F_NEEDS_CSUM);
  return true;
}

}  // namespace tb
