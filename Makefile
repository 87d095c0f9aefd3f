# SPDX-License-Identifier: GPL-2.0
#
# Builds mace.ko.
#
#   make                      against mace's test kernel (built and cached by
#                             scripts/kernel on first use); MACE_KERNEL=6.12
#                             (default) or 7.3 selects which
#   make KDIR=/path/to/build  against any Rust-enabled kernel build tree made
#                             with the same rustc and bindgen; scripts/check-host
#                             checks the tree and the toolchain first and stops
#                             the build with its findings, and the C compiler
#                             (LLVM=, or CC= for gcc) is taken from the tree's
#                             .config unless LLVM or CC is given
#   make install              builds mace.ko for the kernel of KDIR (default:
#                             the running kernel's /lib/modules/$(uname -r)/build)
#                             and installs it with the kernel's modules_install
#                             into /lib/modules/<release>/$(INSTALL_MOD_DIR)
#                             (default updates), then runs depmod;
#                             INSTALL_MOD_PATH=DIR (or DESTDIR=DIR) installs
#                             under DIR instead of /, DEPMOD=true skips depmod
#   make CLIPPY=1             also run clippy on the Rust code
#   make rustfmtcheck         check the formatting of the Rust code
#   make rustfmt              format the Rust code
#   make clean
#
# dkms.conf builds with "make KDIR=<tree> DKMS=1": dkms appends CC=clang
# LD=ld.lld for clang-built kernels, which DKMS=1 ignores in favour of the
# compiler the tree's .config names.

KDIR ?=
MACE_KERNEL ?= 6.12
export MACE_KERNEL

# make install is for a real kernel: the running one unless KDIR is given.
ifneq ($(filter install,$(MAKECMDGOALS)),)
ifeq ($(KDIR),)
KDIR := /lib/modules/$(shell uname -r)/build
endif
endif

ifeq ($(DKMS),1)
MAKEOVERRIDES := $(filter-out CC=% LD=%,$(MAKEOVERRIDES))
unexport CC LD
cc_given :=
else
cc_given := $(filter command line,$(origin CC))
endif

ifeq ($(KDIR),)
# Evaluated only by the targets that need a kernel.
kdir = $(shell "$(CURDIR)/scripts/kernel")
# The test kernels' toolchains (scripts/lib.sh): LLVM 14 for 6.12, 19 for 7.3.
ifeq ($(MACE_KERNEL),7.3)
LLVM ?= -19
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
else
LLVM ?= 1
export LIBCLANG_PATH ?= /usr/lib/llvm-14/lib
endif
else
kdir = $(KDIR)
# Another tree: the compiler its .config names (LLVM=1, LLVM=-<version> for a
# versioned clang, nothing or CC=gcc-<version> for gcc) and the libclang of
# that clang, unless given.
ifeq ($(origin LLVM)$(cc_given),undefined)
cc_vars := $(shell "$(CURDIR)/scripts/check-host" --kdir "$(KDIR)" --print-make-vars 2>/dev/null)
LLVM := $(patsubst LLVM=%,%,$(filter LLVM=%,$(cc_vars)))
MACE_CC := $(patsubst CC=%,%,$(filter CC=%,$(cc_vars)))
ifeq ($(origin LIBCLANG_PATH),undefined)
ifneq ($(filter LIBCLANG_PATH=%,$(cc_vars)),)
export LIBCLANG_PATH := $(patsubst LIBCLANG_PATH=%,%,$(filter LIBCLANG_PATH=%,$(cc_vars)))
endif
endif
else ifneq ($(cc_given),)
MACE_CC := $(CC)
endif
endif

# What the kernel's make gets, and what check-host checks: the same toolchain.
kmake_vars = LLVM=$(LLVM) $(if $(MACE_CC),CC=$(MACE_CC))
check_args = --llvm "$(LLVM)" $(if $(MACE_CC),--cc "$(MACE_CC)") \
	$(if $(filter command line,$(origin RUSTC)),--rustc "$(RUSTC)") \
	$(if $(filter command line,$(origin BINDGEN)),--bindgen "$(BINDGEN)")

INSTALL_MOD_DIR ?= updates
INSTALL_MOD_PATH ?= $(DESTDIR)
DEPMOD ?= depmod
mod_root = $(if $(INSTALL_MOD_PATH),$(abspath $(INSTALL_MOD_PATH)))

RUST_SOURCES = $(filter-out %_generated.rs,$(wildcard $(CURDIR)/src/*.rs $(CURDIR)/src/*/*.rs))

all: modules

# Objects built against one kernel tree are not reused for another: .kdir
# remembers which tree built them.
modules:
	@set -e; k="$(kdir)"; \
	if [ -n "$(KDIR)" ]; then \
		"$(CURDIR)/scripts/check-host" --kdir "$$k" --build-only --quiet $(check_args) || { \
			echo "mace: not building: fix the above (scripts/check-host --kdir $$k tells more)" >&2; exit 1; }; \
	fi; \
	if [ -f .kdir ] && [ "$$(cat .kdir)" != "$$k" ]; then \
		echo "mace: kernel tree changed, cleaning"; \
		$(MAKE) -C "$$k" M="$(CURDIR)" $(kmake_vars) clean; \
	fi; \
	echo "$$k" > .kdir; \
	$(MAKE) -C "$$k" M="$(CURDIR)" $(kmake_vars) modules

install: modules
	@set -e; k="$(kdir)"; \
	rel=$$(cat "$$k/include/config/kernel.release"); \
	$(MAKE) -C "$$k" M="$(CURDIR)" $(kmake_vars) INSTALL_MOD_DIR="$(INSTALL_MOD_DIR)" \
		$(if $(mod_root),INSTALL_MOD_PATH="$(mod_root)") modules_install; \
	if [ -r "$$k/System.map" ]; then \
		: "modules_install ran depmod (scripts/depmod.sh)"; \
	elif command -v "$(DEPMOD)" >/dev/null 2>&1 || [ -x "/sbin/$(DEPMOD)" ]; then \
		echo "  DEPMOD  $$rel"; \
		PATH="$$PATH:/sbin" "$(DEPMOD)" -a $(if $(mod_root),-b "$(mod_root)") "$$rel"; \
	else \
		echo "mace: $(DEPMOD) not found: run depmod -a $$rel yourself" >&2; \
	fi; \
	echo "mace: installed $(mod_root)/lib/modules/$$rel/$(INSTALL_MOD_DIR)/mace.ko"

clean:
	$(MAKE) -C "$(kdir)" M="$(CURDIR)" $(kmake_vars) clean
	rm -f .kdir

rustfmt:
	rustfmt --edition 2021 $(RUST_SOURCES)

rustfmtcheck:
	rustfmt --edition 2021 --check $(RUST_SOURCES)

.PHONY: all modules install clean rustfmt rustfmtcheck
