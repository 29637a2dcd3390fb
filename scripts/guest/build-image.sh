#!/usr/bin/env bash
# Builds the test guest that tapbridge's QEMU test (test/netns/qemu.test.ts) and scripts/guest/compare.sh boot:
#
#   OUTDIR/vmlinuz      the kernel of Debian's linux-image package for this release (the one linux-image-amd64 depends
#                       on), downloaded with `apt-get download` and unpacked with `dpkg -x`: never installed
#   OUTDIR/initrd.gz    a busybox-static initramfs (newc cpio, gzip): the virtio_net module chain copied from the same
#                       package (failover, net_failover, virtio_net and the virtio core/PCI transport when modular),
#                       ordered with the modules.dep that depmod writes for the unpacked tree, and scripts/guest/init
#                       as /init
#   OUTDIR/image.env    KERNEL_PACKAGE=, KERNEL_VERSION=, MODULES= (load order), BUILD_KEY=
#
# Usage: scripts/guest/build-image.sh [OUTDIR]     (default: <repo>/test/.tmp/guest, ignored by git)
#
# Reuses OUTDIR when image.env names the same kernel package and the same init/builder (BUILD_KEY); otherwise downloads
# the package (about 70 MB) and rebuilds. Nothing is cached anywhere else, so a fresh clone builds from scratch.
# Env: TAPBRIDGE_GUEST_KERNEL_PKG overrides the package (e.g. linux-image-6.1.0-56-amd64); TAPBRIDGE_GUEST_REBUILD=1
# forces a rebuild. Needs apt-get (apt-get download works unprivileged once the package lists exist), dpkg-deb, depmod
# (kmod), cpio, gzip and a statically linked busybox (package busybox-static). Exit 0 with the paths on stdout's last
# line (`image: OUTDIR`), non-zero with the reason on stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/test/.tmp/guest}
init_src=$here/init
# what the guest needs to get eth0 on a virtio-net PCI device; dependencies are added from modules.dep
want_modules=(virtio_pci virtio_net)

die() {
	echo "build-image: $*" >&2
	exit 1
}
log() { echo "build-image: $*" >&2; }

export PATH="$PATH:/usr/sbin:/sbin"
for c in apt-get apt-cache dpkg-deb depmod cpio gzip sha256sum; do
	command -v "$c" >/dev/null 2>&1 || die "missing command $c (run scripts/setup-test-deps.sh as root)"
done
[ -f "$init_src" ] || die "missing $init_src"

# a busybox that runs with no libraries in the initramfs
busybox=
for b in /bin/busybox /usr/bin/busybox; do
	[ -x "$b" ] || continue
	ldd_out=$(LC_ALL=C ldd "$b" 2>&1 || true)
	if grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
		busybox=$b
		break
	fi
done
[ -n "$busybox" ] || die "no statically linked busybox found (install the busybox-static package)"

# The kernel package of this Debian release: the one the linux-image-amd64 meta-package depends on.
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
pkg=${TAPBRIDGE_GUEST_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(kernel_pkg)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		log "no package lists for linux-image-amd64; running apt-get update"
		apt-get update -qq >&2 || die "apt-get update failed"
		pkg=$(kernel_pkg)
	fi
	[ -n "$pkg" ] || die "cannot find the kernel package linux-image-amd64 depends on (apt-cache depends linux-image-amd64; run apt-get update as root)"
fi

build_key=$(cat "$0" "$init_src" "$busybox" | sha256sum | cut -c1-16)
if [ "${TAPBRIDGE_GUEST_REBUILD:-0}" != 1 ] && [ -f "$out/image.env" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.gz" ] &&
	grep -qx "KERNEL_PACKAGE=$pkg" "$out/image.env" && grep -qx "BUILD_KEY=$build_key" "$out/image.env"; then
	log "up to date ($pkg)"
	echo "image: $out"
	exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. the package, downloaded (kept in OUTDIR for the next build with the same package) and unpacked
deb=$(find "$out" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
if [ -z "$deb" ]; then
	log "downloading $pkg"
	# apt-get download writes into the current directory; as root it warns that _apt cannot write there: harmless
	if ! (cd "$work" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
		# stale package lists name a version the mirror no longer has: refresh them once and retry
		if [ "$(id -u)" -eq 0 ] && [ -z "${TAPBRIDGE_GUEST_KERNEL_PKG:-}" ]; then
			log "apt-get download $pkg failed; running apt-get update and retrying"
			apt-get update -qq >&2 || die "apt-get update failed"
			pkg=$(kernel_pkg)
		fi
		if ! (cd "$work" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
			cat "$work/download.log" >&2
			die "apt-get download $pkg failed"
		fi
	fi
	dl=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	[ -n "$dl" ] || die "apt-get download $pkg left no .deb"
	rm -f "$out"/linux-image-*.deb
	mv "$dl" "$out/"
	deb=$out/$(basename "$dl")
fi
log "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/pkg" || die "dpkg-deb -x $deb failed"
kver=$(ls "$work/pkg/lib/modules" | head -n1)
[ -n "$kver" ] || die "no lib/modules/<version> in $deb"
vmlinuz=$work/pkg/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "no boot/vmlinuz-$kver in $deb"
mdir=$work/pkg/lib/modules/$kver

# 2. the module chain. The package has no modules.dep (the postinst runs depmod): make one for the unpacked tree.
depmod -b "$work/pkg" "$kver" || die "depmod -b $work/pkg $kver failed"
declare -A seen=()
order=()
# visit NAME: its dependencies first (modules.dep lists them with the one to load first last), then itself
visit() {
	local name=$1 line path deps d i
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	line=$(grep -E "/${name}\.ko(\.[a-z]+)?:" "$mdir/modules.dep" || true)
	if [ -z "$line" ]; then
		if grep -Eq "/${name}\.ko$" "$mdir/modules.builtin"; then
			log "$name is built into $kver"
			return 0
		fi
		die "module $name is neither in modules.dep nor built into $kver"
	fi
	path=${line%%:*}
	read -r -a deps <<<"${line#*:}"
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
		d=$(basename "${deps[i]}")
		visit "${d%%.ko*}"
	done
	order+=("$name:$path")
}
for m in "${want_modules[@]}"; do visit "$m"; done

# 3. the initramfs
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$init_src" "$root/init"
names=()
for entry in "${order[@]}"; do
	name=${entry%%:*}
	path=${entry#*:}
	case $path in
	*.ko) cp "$mdir/$path" "$root/lib/modules/$name.ko" ;;
	*.ko.xz) xz -dc "$mdir/$path" >"$root/lib/modules/$name.ko" ;;
	*.ko.zst) zstd -qdc "$mdir/$path" >"$root/lib/modules/$name.ko" ;;
	*) die "unexpected module file $path" ;;
	esac
	names+=("$name")
	echo "$name" >>"$root/etc/modules"
done
# a console before devtmpfs is mounted, when we may make device nodes (root); /init mounts devtmpfs either way
if [ "$(id -u)" -eq 0 ]; then mknod -m 600 "$root/dev/console" c 5 1; fi
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9n >"$work/initrd.gz"

cp "$vmlinuz" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initrd.gz" "$out/initrd.gz"
chmod 0644 "$out/vmlinuz" "$out/initrd.gz"
cat >"$out/image.env" <<EOF
KERNEL_PACKAGE=$pkg
KERNEL_VERSION=$kver
MODULES=${names[*]}
BUILD_KEY=$build_key
EOF
log "built $out (kernel $kver, modules: ${names[*]})"
echo "image: $out"
