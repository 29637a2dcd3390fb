// nsstat: sums one interface's packet counters over many network namespaces, in one process (for run.sh --scaling,
// where 32 `ip netns exec cat` per snapshot would take longer than the measurement window on a busy machine).
//
// For each NETNS (a name under /run/netns) it enters the namespace (setns) and reads /proc/self/net/dev, which shows
// the reading task's namespace; the line of IFNAME gives rx_packets, tx_packets and tx_dropped (the same counters as
// /sys/class/net/IFNAME/statistics). Prints one line: "RX TX TXDROP" (sums) and exits 1 if any namespace or interface
// was missing (the sums then cover the others).
//
// Usage: nsstat IFNAME NETNS...        Built at run time by run.sh: cc -O2 -o nsstat nsstat.c

#define _GNU_SOURCE
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3 || strlen(argv[1]) >= IF_NAMESIZE) {
		fprintf(stderr, "usage: nsstat IFNAME NETNS...\n");
		return 2;
	}
	const char *ifname = argv[1];
	unsigned long long rx = 0, tx = 0, drop = 0;
	int missing = 0;
	for (int a = 2; a < argc; a++) {
		char path[128];
		if (strchr(argv[a], '/') || strlen(argv[a]) > 64) { fprintf(stderr, "nsstat: bad namespace name %s\n", argv[a]); missing = 1; continue; }
		snprintf(path, sizeof path, "/run/netns/%s", argv[a]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
			perror(path);
			if (fd >= 0) close(fd);
			missing = 1;
			continue;
		}
		close(fd);
		FILE *f = fopen("/proc/self/net/dev", "r");
		if (!f) { perror("/proc/self/net/dev"); missing = 1; continue; }
		char line[512];
		int found = 0;
		while (fgets(line, sizeof line, f)) {
			char *colon = strchr(line, ':');
			if (!colon) continue;
			*colon = 0;
			char *name = line;
			while (*name == ' ') name++;
			if (strcmp(name, ifname) != 0) continue;
			// receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
			unsigned long long v[12];
			if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
			           &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) == 12) {
				rx += v[1];
				tx += v[9];
				drop += v[11];
				found = 1;
			}
			break;
		}
		fclose(f);
		if (!found) { fprintf(stderr, "nsstat: no %s in %s\n", ifname, argv[a]); missing = 1; }
	}
	printf("%llu %llu %llu\n", rx, tx, drop);
	return missing;
}
