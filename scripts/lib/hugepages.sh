# shellcheck shell=bash
# 2 MiB hugepages for a bench (DPDK's testpmd, ovs-vswitchd with DPDK): reserve, mount privately, give back. Source it
# after scripts/lib/netns.sh; it defines functions and variables, runs nothing.
#
#   tb_huge_reserve PAGES DIR   adds PAGES 2 MiB pages to the pool (/sys/kernel/mm/hugepages/hugepages-2048kB/
#                               nr_hugepages, vm.nr_hugepages when 2 MiB is the default size), checks that PAGES are
#                               free, and mounts a hugetlbfs (pagesize=2M) on DIR, a directory of the caller's temp dir.
#                               Status 0: TB_HUGE_DIR=DIR. Status 1: nothing is left reserved or mounted and
#                               TB_HUGE_ERR says why (the caller falls back to --no-huge and prints it).
#   tb_huge_release             unmounts DIR and takes back the pages this process added (not more: another user's
#                               reservation made meanwhile stays). Safe to call twice and when nothing was reserved.
#
# Call tb_huge_release from the caller's exit trap after the processes that map the pages are stopped (a busy mount is
# detached lazily, and the pages return to the kernel's free pool once the last mapping goes away).

TB_HUGE_NR=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
TB_HUGE_ADDED=0
TB_HUGE_DIR=
TB_HUGE_ERR=

# tb_huge_free: free 2 MiB pages in the pool.
tb_huge_free() { cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0; }

tb_huge_reserve() {
	local want=$1 dir=$2 before after free
	TB_HUGE_ERR=
	if [ ! -w "$TB_HUGE_NR" ]; then
		TB_HUGE_ERR="$TB_HUGE_NR is missing or not writable (no 2 MiB hugepage support, or not root)"
		return 1
	fi
	before=$(cat "$TB_HUGE_NR")
	if ! echo $((before + want)) >"$TB_HUGE_NR" 2>/dev/null; then
		TB_HUGE_ERR="writing $((before + want)) to $TB_HUGE_NR failed"
		return 1
	fi
	after=$(cat "$TB_HUGE_NR")
	TB_HUGE_ADDED=$((after - before))
	[ "$TB_HUGE_ADDED" -ge 0 ] || TB_HUGE_ADDED=0
	free=$(tb_huge_free)
	if [ "$free" -lt "$want" ]; then
		TB_HUGE_ERR="asked the kernel for $want more 2 MiB pages, it gave $TB_HUGE_ADDED (nr_hugepages $before -> $after; $free free: memory too fragmented or too small)"
		tb_huge_release
		return 1
	fi
	mkdir -p "$dir"
	if ! mount -t hugetlbfs -o pagesize=2M,mode=0700 tb-hugetlbfs "$dir" 2>"$dir.err"; then
		TB_HUGE_ERR="mount -t hugetlbfs on $dir failed: $(tr '\n' ' ' <"$dir.err")"
		rm -f "$dir.err"
		tb_huge_release
		return 1
	fi
	rm -f "$dir.err"
	TB_HUGE_DIR=$dir
	return 0
}

tb_huge_release() {
	local now
	if [ -n "$TB_HUGE_DIR" ]; then
		rm -rf "${TB_HUGE_DIR:?}"/* 2>/dev/null || true
		umount "$TB_HUGE_DIR" 2>/dev/null || umount -l "$TB_HUGE_DIR" 2>/dev/null || tb_warn "could not unmount $TB_HUGE_DIR"
		TB_HUGE_DIR=
	fi
	if [ "$TB_HUGE_ADDED" -gt 0 ]; then
		now=$(cat "$TB_HUGE_NR")
		echo $((now > TB_HUGE_ADDED ? now - TB_HUGE_ADDED : 0)) >"$TB_HUGE_NR" 2>/dev/null ||
			tb_warn "could not give back $TB_HUGE_ADDED hugepages ($TB_HUGE_NR)"
		TB_HUGE_ADDED=0
	fi
}
