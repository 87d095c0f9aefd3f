# shellcheck shell=bash
# Common definitions for mace's scripts; source it, do not run it.
#
# Everything that is built outside the work tree lives under $MACE_CACHE
# (default ~/.cache/mace): the unpacked kernel source, one build directory per
# kernel flavor keyed by source version and configuration hash, and the
# initramfs staging area.

set -euo pipefail

MACE_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MACE_CACHE=${MACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mace}
MACE_FLAVOR=${MACE_FLAVOR:-debug}
MACE_KERNEL=${MACE_KERNEL:-6.12}

export PATH="$HOME/.cargo/bin:$PATH"

# The test kernels mace supports, selected by MACE_KERNEL:
#   MACE_KSRC_PKG      Debian package of the kernel source
#   MACE_KSRC_TARBALL  the source tarball it holds
#   MACE_LLVM          value of the kernel build's LLVM= (1: unversioned tools)
#   MACE_CLANG         the clang that LLVM= selects
#   LIBCLANG_PATH      the libclang bindgen must use: the one of that clang
#                      (with several installed, bindgen would take the newest,
#                      whose flags the older kernel does not pass correctly)
case $MACE_KERNEL in
6.12)
	# Debian 12's own package, built with its LLVM 14.
	MACE_KSRC_PKG=linux-source-6.12
	MACE_KSRC_TARBALL=/usr/src/linux-source-6.12.tar.xz
	MACE_LLVM=1
	MACE_CLANG=clang
	LIBCLANG_PATH=/usr/lib/llvm-14/lib
	;;
7.3)
	# From Debian 13's backports suite (scripts/setup fetches the .deb
	# without changing the machine's apt sources); needs LLVM >= 17.
	MACE_KSRC_PKG=linux-source-7.3
	MACE_KSRC_TARBALL=${MACE_CACHE}/deb/linux-source-7.3/usr/src/linux-source-7.3.tar.xz
	MACE_LLVM=-19
	MACE_CLANG=clang-19
	LIBCLANG_PATH=/usr/lib/llvm-19/lib
	;;
*)
	printf '[mace] error: unknown MACE_KERNEL=%s (accepted: 6.12, 7.3)\n' "$MACE_KERNEL" >&2
	exit 1
	;;
esac
export MACE_KERNEL LIBCLANG_PATH

log() { printf '[mace] %s\n' "$*" >&2; }
die() { printf '[mace] error: %s\n' "$*" >&2; exit 1; }

# Fail early, naming each missing command.
need() {
	local missing=()
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	if ((${#missing[@]})); then
		die "missing tool(s): ${missing[*]} (run scripts/setup, or 'cargo make setup')"
	fi
}

# Version of the Debian kernel source package, e.g. 6.12.117-1~deb12u1: of
# the installed package, or of the .deb scripts/setup unpacked into the cache.
ksrc_version() {
	local v=$MACE_CACHE/deb/$MACE_KSRC_PKG/version
	if [[ -f $v ]]; then
		cat "$v"
	else
		dpkg-query -W -f='${Version}' "$MACE_KSRC_PKG" 2>/dev/null ||
			die "$MACE_KSRC_PKG is not installed (run scripts/setup)"
	fi
}

# Debian's prometheus package unpacked by scripts/setup (not installed, so
# no service runs): its usr/bin has prometheus and promtool, for the tests.
prometheus_dir() { echo "$MACE_CACHE/deb/prometheus"; }

# QEMU for multi-threaded TCG, which every VM run but an --icount one uses:
# Debian 12's own QEMU (7.2) has a race there. A vCPU that translates kernel
# code while another vCPU patches it (ftrace, static keys: text_poke_bp()'s
# int3 and then the new instruction) can keep a translation of the int3
# after the patching has ended, and run it later: "Oops: int3" at the
# patched site. QEMU 8.1 fixed it ("accel/tcg: Always lock pages before
# translation"). scripts/setup unpacks QEMU 10.0 from Debian 12's
# backports into this directory; single-threaded runs keep the machine's
# QEMU (the profiler's plugin is written for its plugin API).
qemu_mt_dir() { echo "$MACE_CACHE/deb/qemu"; }

# Print, one word a line, the command that starts QEMU for multi-threaded
# TCG: $MACE_QEMU_MT if set, else the one scripts/setup unpacked, else the
# machine's qemu-system-x86_64; die if that QEMU is older than 8.1.
qemu_mt() {
	local d bin=${MACE_QEMU_MT:-} v major minor
	d=$(qemu_mt_dir)
	if [[ -z $bin && -x $d/usr/bin/qemu-system-x86_64 ]]; then
		# Its own firmware and option ROMs first; none of the machine's
		# QEMU modules (no device here needs a module).
		printf '%s\n' env "QEMU_MODULE_DIR=$d/usr/lib/x86_64-linux-gnu/qemu" \
			"$d/usr/bin/qemu-system-x86_64" -L "$d/usr/share/qemu" -L "$d/usr/share/seabios"
		return 0
	fi
	bin=${bin:-qemu-system-x86_64}
	v=$("$bin" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || true
	read -r major minor <<<"$v" || true
	[[ -n $major && -n $minor ]] || die "$bin: not a QEMU, or no version (run scripts/setup, or set MACE_QEMU_MT)"
	if ((major < 8 || (major == 8 && minor < 1))); then
		die "$bin is QEMU $major.$minor, whose multi-threaded TCG can run stale code after the kernel patches it (an int3 oops; fixed in QEMU 8.1): run scripts/setup (it unpacks QEMU 10.0 from bookworm-backports into $d), or set MACE_QEMU_MT"
	fi
	echo "$bin"
}

# make in the kernel tree of MACE_KERNEL, with its toolchain.
ksrc_make() { make LLVM="$MACE_LLVM" "$@"; }

# The configuration fragments of the current kernel and flavor, in merge
# order: the base, the flavor, and the kernel's own fragment if it has one.
kconfig_fragments() {
	local k=$MACE_TOP/scripts/kconfig
	echo "$k/base.config"
	# The rt flavor is the debug flavor on a PREEMPT_RT kernel.
	[[ $MACE_FLAVOR != rt ]] || echo "$k/debug.config"
	echo "$k/$MACE_FLAVOR.config"
	[[ ! -f $k/kernel-$MACE_KERNEL.config ]] || echo "$k/kernel-$MACE_KERNEL.config"
}

# Hash of everything that changes the kernel build's output.
kconfig_hash() {
	{
		local f
		while IFS= read -r f; do cat "$f"; done < <(kconfig_fragments)
		rustc --version
		"$MACE_CLANG" --version | head -n 1
		bindgen --version
	} | sha256sum | cut -c1-12
}

# Unpacked, pristine kernel source tree (shared by all flavors).
ksrc_dir() { echo "$MACE_CACHE/src/linux-$(ksrc_version)"; }

# Build directory of the current flavor (make O=...).
kbuild_dir() {
	echo "$MACE_CACHE/kernel/$MACE_FLAVOR-$(ksrc_version)-$(kconfig_hash)"
}

# promtool (checks a Prometheus exposition and configuration).
promtool_path() { echo "$(prometheus_dir)/usr/bin/promtool"; }
