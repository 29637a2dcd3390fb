// flood: a bounded 60-byte frame generator for the benchmark suite (scripts/bench/run.sh).
//
// Sends Ethernet frames of LEN bytes (default 60, i.e. minimum size without FCS) from one AF_PACKET
// socket with sendmmsg(2), BATCH frames per call, until SECONDS have passed or COUNT frames were sent,
// whichever comes first; SIGINT/SIGTERM stop it early. The frames carry ethertype 0x88b5 (IEEE "local
// experimental"), so the receiving host's stack counts them in rx_packets and then drops them without
// answering. With -n N the source MAC cycles through N consecutive addresses starting at SRC (to fill
// a bridge's FDB); otherwise every frame has source SRC. With -B PCT, PCT frames in every 100 (spread evenly by
// sequence number) go to ff:ff:ff:ff:ff:ff instead of DSTMAC. With -r PPS the loop sleeps whenever it is ahead of
// PPS frames per second (a bounded rate for many generators sharing the CPUs with the bridge; 0 = as fast as it can).
//
// With -m FILE (instead of -i/-d/-s) one process drives many hosts: FILE has one line per host, "NETNS IFNAME SRCMAC
// DSTMAC" (NETNS a name under /run/netns); the socket of each line is opened inside that namespace (setns) and keeps
// working there. The loop sends one batch per host in turn; COUNT, SECONDS and PPS are totals over all hosts. So N
// hosts start at the same instant and share one bounded generator, instead of N processes fighting for 2 cores.
//
// PACKET_QDISC_BYPASS is set (like trafgen's default): frames go straight to the driver's xmit.
// The socket is blocking with a 200 ms send timeout, so a full queue slows the loop instead of
// spinning, and the deadline is still honoured.
//
// Usage: flood -i IFNAME -d DSTMAC -s SRCMAC [-t SECONDS] [-c COUNT] [-b BATCH] [-l LEN] [-n NSRC] [-B PCT] [-r PPS]
//        flood -m FILE [-t SECONDS] [-c COUNT] [-b BATCH] [-l LEN] [-n NSRC] [-B PCT] [-r PPS]
// Prints one line: sent=N errors=E seconds=S pps=R
//
// Built at run time by run.sh: cc -O2 -o flood flood.c

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

#define MAX_BATCH 1024
#define MAX_LEN 1514
#define MAX_PORTS 256

struct port {
	int fd;
	uint8_t dst[6], src[6];
};
static struct port ports[MAX_PORTS];
static int nports;

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int parse_mac(const char *s, uint8_t mac[6]) {
	unsigned v[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255) return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void) {
	fprintf(stderr, "usage: flood -i IFNAME -d DSTMAC -s SRCMAC [-t SECONDS] [-c COUNT] [-b BATCH] [-l LEN] [-n NSRC] [-B PCT] [-r PPS]\n"
	                "       flood -m FILE (lines: NETNS IFNAME SRCMAC DSTMAC) [-t ...]\n");
	exit(2);
}

// open_port IFNAME: an AF_PACKET socket bound to IFNAME in the current network namespace, or -1 (reason printed).
static int open_port(const char *ifname) {
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) { perror("socket(AF_PACKET)"); return -1; }
	int one = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) perror("warning: PACKET_QDISC_BYPASS");
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = (int)if_nametoindex(ifname) };
	if (sll.sll_ifindex == 0) { perror(ifname); close(fd); return -1; }
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); close(fd); return -1; }
	return fd;
}

// load_ports FILE: one port per line "NETNS IFNAME SRCMAC DSTMAC", each socket opened inside NETNS; 0 or -1.
static int load_ports(const char *file) {
	FILE *f = fopen(file, "r");
	if (!f) { perror(file); return -1; }
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) { perror("/proc/self/ns/net"); fclose(f); return -1; }
	char line[256], ns[65], ifname[IF_NAMESIZE + 1], srcs[32], dsts[32];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n') continue;
		if (sscanf(line, "%64s %16s %31s %31s", ns, ifname, srcs, dsts) != 4 || strchr(ns, '/') || ns[0] == '.' ||
		    nports >= MAX_PORTS) {
			fprintf(stderr, "%s:%d: expected NETNS IFNAME SRCMAC DSTMAC (at most %d lines)\n", file, lineno, MAX_PORTS);
			rc = -1;
			break;
		}
		struct port *p = &ports[nports];
		if (parse_mac(srcs, p->src) || parse_mac(dsts, p->dst)) {
			fprintf(stderr, "%s:%d: bad MAC address\n", file, lineno);
			rc = -1;
			break;
		}
		char path[96];
		snprintf(path, sizeof path, "/run/netns/%s", ns);
		int nsfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
			perror(path);
			if (nsfd >= 0) close(nsfd);
			rc = -1;
			break;
		}
		close(nsfd);
		p->fd = open_port(ifname);
		if (p->fd < 0) { fprintf(stderr, "%s:%d: in %s\n", file, lineno, ns); rc = -1; break; }
		nports++;
	}
	if (setns(self, CLONE_NEWNET) < 0) perror("setns back");
	close(self);
	fclose(f);
	if (rc == 0 && nports == 0) { fprintf(stderr, "%s: no hosts\n", file); rc = -1; }
	return rc;
}

int main(int argc, char **argv) {
	const char *ifname = NULL, *multi = NULL;
	uint8_t dst[6], src[6];
	int have_dst = 0, have_src = 0, opt;
	double seconds = 5;
	unsigned long long count = 100000000ULL;
	int batch = 64, len = 60;
	unsigned long nsrc = 1;
	int bcast_pct = 0;
	double rate = 0;
	while ((opt = getopt(argc, argv, "i:d:s:t:c:b:l:n:B:r:m:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'd': if (parse_mac(optarg, dst)) usage(); have_dst = 1; break;
		case 's': if (parse_mac(optarg, src)) usage(); have_src = 1; break;
		case 't': seconds = atof(optarg); break;
		case 'c': count = strtoull(optarg, NULL, 10); break;
		case 'b': batch = atoi(optarg); break;
		case 'l': len = atoi(optarg); break;
		case 'n': nsrc = strtoul(optarg, NULL, 10); break;
		case 'B': bcast_pct = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'm': multi = optarg; break;
		default: usage();
		}
	}
	if ((multi ? (ifname || have_dst || have_src) : (!ifname || !have_dst || !have_src)) || seconds <= 0 || seconds > 3600 || batch < 1 || batch > MAX_BATCH ||
	    len < 60 || len > MAX_LEN || nsrc < 1 || nsrc > 16000000 || bcast_pct < 0 || bcast_pct > 100 || rate < 0 ||
	    rate > 100e6)
		usage();

	if (multi) {
		if (load_ports(multi) < 0) return 1;
	} else {
		ports[0].fd = open_port(ifname);
		if (ports[0].fd < 0) return 1;
		memcpy(ports[0].dst, dst, 6);
		memcpy(ports[0].src, src, 6);
		nports = 1;
	}
	memcpy(dst, ports[0].dst, 6);
	memcpy(src, ports[0].src, 6);

	static uint8_t frames[MAX_BATCH][MAX_LEN];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	for (int i = 0; i < batch; i++) {
		memset(frames[i], 0, (size_t)len);
		memcpy(frames[i], dst, 6);
		memcpy(frames[i] + 6, src, 6);
		frames[i][12] = 0x88;
		frames[i][13] = 0xb5;
		iov[i].iov_base = frames[i];
		iov[i].iov_len = (size_t)len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint32_t src_low = ((uint32_t)src[3] << 16) | ((uint32_t)src[4] << 8) | src[5];
	unsigned long long rr = 0;
	const struct port *p = &ports[0];

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	double t0 = now_s(), deadline = t0 + seconds, t = t0;
	unsigned long long sent = 0, errors = 0, seq = 0, iter = 0;
	while (!stop && sent < count) {
		if (rate > 0 || (iter++ & 15) == 0) {
			t = now_s();
			if (t >= deadline) break;
		}
		if (rate > 0) {
			// ahead of the rate: sleep until the frames sent so far are due (at most 200 ms, so the deadline holds)
			double ahead = (double)sent / rate - (now_s() - t0);
			if (ahead > 0) {
				if (ahead > 0.2) ahead = 0.2;
				struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(ahead * 1e9) };
				nanosleep(&ts, NULL);
				continue;
			}
		}
		int n = batch;
		if ((unsigned long long)n > count - sent) n = (int)(count - sent);
		if (nports > 1) {
			// the next host in turn: its addresses into the batch
			p = &ports[rr++ % (unsigned long long)nports];
			memcpy(dst, p->dst, 6);
			memcpy(src, p->src, 6);
			src_low = ((uint32_t)src[3] << 16) | ((uint32_t)src[4] << 8) | src[5];
			for (int i = 0; i < n; i++) {
				memcpy(frames[i], dst, 6);
				memcpy(frames[i] + 6, src, 6);
			}
		}
		if (nsrc > 1) {
			// source MACs advance only by what was sent, so every one of the nsrc addresses is offered in turn
			for (int i = 0; i < n; i++) {
				uint32_t low = (src_low + (uint32_t)((seq + (unsigned long long)i) % nsrc)) & 0xffffff;
				frames[i][9] = (uint8_t)(low >> 16);
				frames[i][10] = (uint8_t)(low >> 8);
				frames[i][11] = (uint8_t)low;
			}
		}
		if (bcast_pct > 0) {
			// frame k of every 100 is a broadcast when (k * PCT) mod 100 < PCT: PCT of them, evenly spread
			for (int i = 0; i < n; i++) {
				unsigned k = (unsigned)((seq + (unsigned long long)i) % 100);
				memcpy(frames[i], (k * (unsigned)bcast_pct) % 100 < (unsigned)bcast_pct ? bcast : dst, 6);
			}
		}
		int r = sendmmsg(p->fd, msgs, (unsigned)n, 0);
		if (r > 0) {
			sent += (unsigned long long)r;
			seq += (unsigned long long)r;
		} else if (r < 0) {
			errors++;
			if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR && errno != EWOULDBLOCK) {
				perror("sendmmsg");
				if (errors > 1000) break;
			}
		}
	}
	t = now_s();
	printf("sent=%llu errors=%llu seconds=%.3f pps=%.0f\n", sent, errors, t - t0, sent / (t - t0));
	for (int i = 0; i < nports; i++) close(ports[i].fd);
	return 0;
}
