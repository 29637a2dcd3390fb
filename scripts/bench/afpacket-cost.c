// afpacket-cost: CPU per frame of one AF_PACKET socket's send or receive path, the way the daemon uses it
// (PACKET_VNET_HDR, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, 4 MiB buffers), with one knob changed at a time,
// so that variants are compared A/B in one run (scripts/bench/afpacket-cost.sh interleaves the reps).
//
//   tx   sends 60-byte frames (10-byte vnet header + 60) on IFNAME, BATCH per call, for SECONDS:
//        -R  through a TPACKET_V2 tx ring (one sendto(MSG_DONTWAIT) per batch; a full ring: the frame is
//            skipped and counted as "full"), else sendmmsg(MSG_DONTWAIT)
//        -Q  PACKET_QDISC_BYPASS
//        -E  the socket is also registered in an epoll set for EPOLLIN, as the daemon's port sockets are (a waiter on
//            the socket's wait queue: every sent skb's destructor then takes that queue's lock to wake it, for nothing)
//   rx   reads frames from IFNAME for SECONDS (poll, then a batch of up to BATCH frames):
//        -R  through a TPACKET_V2 rx ring of 4096 slots of 2048 bytes, else recvmsg per frame (with auxdata)
//        -P  SO_BUSY_POLL 50 us + SO_PREFER_BUSY_POLL (a no-op unless the socket has a NAPI id)
//   drain  reads a TAP (opened by name with IFF_VNET_HDR) until SECONDS pass, so that frames sent to it are taken
//
// Prints one line: mode=.. frames=N full=F seconds=S user_us=U sys_us=Y us_per_frame=C (getrusage of this process).
// Bounded: every mode stops after SECONDS; the tx loop also after COUNT frames.
//
// Build: cc -O2 -o afpacket-cost afpacket-cost.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif

#define VNET 10
#define FLEN 60
#define SLOT 2048
#define BLOCK 65536

static double now_s(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_us(int sys) {
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	struct timeval t = sys ? r.ru_stime : r.ru_utime;
	return t.tv_sec * 1e6 + t.tv_usec;
}

static void die(const char *what) {
	perror(what);
	exit(1);
}

static int open_packet(const char *ifname, int ring_rx, int ring_tx, int bypass, unsigned *map_len, uint8_t **map) {
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) die("socket");
	int one = 1, buf = 4 << 20, v2 = TPACKET_V2;
	if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) die("PACKET_VNET_HDR");
	if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) die("PACKET_AUXDATA");
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) die("PACKET_IGNORE_OUTGOING");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0) die("SO_RCVBUFFORCE");
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0) die("SO_SNDBUFFORCE");
	if (bypass && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) die("PACKET_QDISC_BYPASS");
	*map_len = 0;
	if (ring_rx || ring_tx) {
		if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2) < 0) die("PACKET_VERSION");
		if (setsockopt(fd, SOL_PACKET, PACKET_LOSS, &one, sizeof one) < 0) die("PACKET_LOSS");
		struct tpacket_req req = {BLOCK, ring_rx ? 128 : 1, SLOT, ring_rx ? 4096 : 32};
		// a TPACKET_V2 socket with a tx ring only still needs no rx ring; give tx-only sockets a 1-block rx ring
		// so that the layout (rx blocks, then tx blocks) is the daemon's
		if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) die("PACKET_RX_RING");
		*map_len = req.tp_block_nr * BLOCK;
		if (ring_tx) {
			struct tpacket_req t = {BLOCK, 8, SLOT, 256};
			if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &t, sizeof t) < 0) die("PACKET_TX_RING");
			*map_len += t.tp_block_nr * BLOCK;
		}
		*map = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
		if (*map == MAP_FAILED) die("mmap");
	}
	struct sockaddr_ll sll = {0};
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = if_nametoindex(ifname);
	if (sll.sll_ifindex == 0) die("if_nametoindex");
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
	return fd;
}

static void report(const char *mode, double frames, double full, double secs, double u0, double s0) {
	double u = cpu_us(0) - u0, s = cpu_us(1) - s0;
	printf("mode=%s frames=%.0f full=%.0f seconds=%.2f user_us=%.0f sys_us=%.0f us_per_frame=%.3f user_per_frame=%.3f sys_per_frame=%.3f\n",
	       mode, frames, full, secs, u, s, frames > 0 ? (u + s) / frames : 0, frames > 0 ? u / frames : 0,
	       frames > 0 ? s / frames : 0);
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: afpacket-cost tx|rx|drain IFNAME [-R] [-Q] [-P] [-E] [-t SECONDS] [-b BATCH] [-c COUNT]\n");
		return 2;
	}
	const char *mode = argv[1], *ifname = argv[2];
	int ring = 0, bypass = 0, busy = 0, ep = 0, batch = 64, opt;
	double seconds = 2, count = 1e9;
	optind = 3;
	while ((opt = getopt(argc, argv, "RQPEt:b:c:")) != -1) {
		switch (opt) {
		case 'R': ring = 1; break;
		case 'Q': bypass = 1; break;
		case 'P': busy = 1; break;
		case 'E': ep = 1; break;
		case 't': seconds = atof(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 'c': count = atof(optarg); break;
		default: return 2;
		}
	}
	if (batch < 1 || batch > 256) batch = 64;
	char label[64];
	snprintf(label, sizeof label, "%s%s%s%s%s", mode, ring ? "-ring" : "", bypass ? "-bypass" : "", busy ? "-busypoll" : "",
	         ep ? "-epoll" : "");

	if (strcmp(mode, "drain") == 0) {
		int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
		if (fd < 0) die("open tun");
		struct ifreq ifr = {0};
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
		static uint8_t b[70000];
		double frames = 0, t0 = now_s(), u0 = cpu_us(0), s0 = cpu_us(1);
		struct pollfd p = {fd, POLLIN, 0};
		while (now_s() - t0 < seconds) {
			if (poll(&p, 1, 100) <= 0) continue;
			while (read(fd, b, sizeof b) > 0) frames++;
		}
		report(label, frames, 0, now_s() - t0, u0, s0);
		return 0;
	}

	unsigned map_len;
	uint8_t *map = NULL;
	int is_tx = strcmp(mode, "tx") == 0;
	int fd = open_packet(ifname, ring && !is_tx, ring && is_tx, bypass, &map_len, &map);
	if (ep) {
		int e = epoll_create1(0);
		struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
		if (e < 0 || epoll_ctl(e, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll");
	}
	double t0 = now_s(), u0 = cpu_us(0), s0 = cpu_us(1), frames = 0, full = 0;

	if (is_tx) {
		static uint8_t f[VNET + FLEN];
		memset(f, 0, sizeof f);
		memset(f + VNET, 0xff, 6);  // broadcast from 02:00:00:00:00:01, ethertype 0x88b5
		f[VNET + 6] = 2;
		f[VNET + 11] = 1;
		f[VNET + 12] = 0x88;
		f[VNET + 13] = 0xb5;
		struct iovec iov[256];
		struct mmsghdr m[256];
		memset(m, 0, sizeof m);
		for (int i = 0; i < batch; i++) {
			iov[i].iov_base = f;
			iov[i].iov_len = sizeof f;
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		uint8_t *tx = map + BLOCK;  // after the 1-block rx ring of a tx-only socket
		unsigned head = 0;
		const unsigned tx_slots = 256;
		while (frames < count) {
			if (now_s() - t0 >= seconds) break;
			if (ring) {
				int n = 0;
				for (int i = 0; i < batch; i++) {
					uint8_t *s = tx + (size_t)head * SLOT;
					struct tpacket2_hdr *h = (struct tpacket2_hdr *)s;
					if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
						full++;
						continue;
					}
					memcpy(s + TPACKET_ALIGN(sizeof *h), f, sizeof f);
					h->tp_len = sizeof f;
					__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
					head = (head + 1) % tx_slots;
					n++;
				}
				// slots the kernel did not take (it stops at the first frame it cannot send) are handed
				// over again by the next sendto, so one is made even when no new slot was filled
				sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
				frames += n;
			} else {
				int r = sendmmsg(fd, m, batch, MSG_DONTWAIT);
				if (r < 0) {
					full += batch;
					continue;
				}
				frames += r;
				full += batch - r;
			}
		}
	} else {
		struct pollfd p = {fd, POLLIN, 0};
		if (busy) {
			int us = 50, one = 1;
			if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &us, sizeof us) < 0) die("SO_BUSY_POLL");
			if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof one) < 0) die("SO_PREFER_BUSY_POLL");
		}
		static uint8_t b[70000];
		static uint8_t cbuf[128];
		unsigned head = 0;
		while (now_s() - t0 < seconds) {
			if (poll(&p, 1, 100) <= 0) continue;
			for (int i = 0; i < batch; i++) {
				if (ring) {
					uint8_t *s = map + (size_t)(head / 32) * BLOCK + (size_t)(head % 32) * SLOT;
					struct tpacket2_hdr *h = (struct tpacket2_hdr *)s;
					if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
					memcpy(b, s + h->tp_mac - VNET, VNET + h->tp_snaplen);
					__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
					head = (head + 1) % 4096;
				} else {
					struct iovec v = {b, sizeof b};
					struct msghdr mh = {0};
					mh.msg_iov = &v;
					mh.msg_iovlen = 1;
					mh.msg_control = cbuf;
					mh.msg_controllen = sizeof cbuf;
					if (recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC) < 0) break;
				}
				frames++;
			}
		}
		struct tpacket_stats st;
		socklen_t l = sizeof st;
		if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0) full = st.tp_drops;
	}
	report(label, frames, full, now_s() - t0, u0, s0);
	return 0;
}
