# SPDX-License-Identifier: GPL-2.0
#
# Builds mace.ko.
#
#   make                      against mace's test kernel (built and cached by
#                             scripts/kernel on first use)
#   make KDIR=/path/to/build  against any Rust-enabled kernel build tree made
#                             with the same rustc and bindgen
#   make CLIPPY=1             also run clippy on the Rust code
#   make rustfmtcheck         check the formatting of the Rust code
#   make rustfmt              format the Rust code
#   make clean

KDIR ?=
# Evaluated only by the targets that need a kernel.
kdir = $(if $(KDIR),$(KDIR),$(shell "$(CURDIR)/scripts/kernel"))

RUST_SOURCES = $(filter-out %_generated.rs,$(wildcard $(CURDIR)/src/*.rs))

all: modules

# Objects built against one kernel tree are not reused for another: .kdir
# remembers which tree built them.
modules:
	@set -e; k="$(kdir)"; \
	if [ -f .kdir ] && [ "$$(cat .kdir)" != "$$k" ]; then \
		echo "mace: kernel tree changed, cleaning"; \
		$(MAKE) -C "$$k" M="$(CURDIR)" LLVM=1 clean; \
	fi; \
	echo "$$k" > .kdir; \
	$(MAKE) -C "$$k" M="$(CURDIR)" LLVM=1 modules

clean:
	$(MAKE) -C "$(kdir)" M="$(CURDIR)" LLVM=1 clean
	rm -f .kdir

rustfmt:
	rustfmt --edition 2021 $(RUST_SOURCES)

rustfmtcheck:
	rustfmt --edition 2021 --check $(RUST_SOURCES)

.PHONY: all modules clean rustfmt rustfmtcheck
