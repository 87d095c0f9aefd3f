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
MACE_KSRC_PKG=linux-source-6.12
MACE_KSRC_TARBALL=/usr/src/linux-source-6.12.tar.xz

export PATH="$HOME/.cargo/bin:$PATH"

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

# Version of the Debian kernel source package, e.g. 6.12.117-1~deb12u1.
ksrc_version() {
	dpkg-query -W -f='${Version}' "$MACE_KSRC_PKG" 2>/dev/null ||
		die "$MACE_KSRC_PKG is not installed (run scripts/setup)"
}

# Hash of everything that changes the kernel build's output.
kconfig_hash() {
	{
		cat "$MACE_TOP/scripts/kconfig/base.config" \
			"$MACE_TOP/scripts/kconfig/$MACE_FLAVOR.config"
		rustc --version
		clang --version | head -n 1
		bindgen --version
	} | sha256sum | cut -c1-12
}

# Unpacked, pristine kernel source tree (shared by all flavors).
ksrc_dir() { echo "$MACE_CACHE/src/linux-$(ksrc_version)"; }

# Build directory of the current flavor (make O=...).
kbuild_dir() {
	echo "$MACE_CACHE/kernel/$MACE_FLAVOR-$(ksrc_version)-$(kconfig_hash)"
}
