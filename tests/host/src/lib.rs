// SPDX-License-Identifier: GPL-2.0

//! The core-only files of the mace module, compiled for the host.
//!
//! Each module below is the very file the kernel module compiles (by
//! `#[path]`), so host tests exercise the same code; `record_parse`, the
//! inverse of `record`'s line formatter, is compiled here only, for the
//! tools that read `/dev/mace`. The crate is `no_std`, which proves those
//! files need nothing but `core`, and forbids `unsafe`.

#![no_std]

#[path = "../../../src/bufnote.rs"]
pub mod bufnote;
#[path = "../../../src/counters.rs"]
pub mod counters;
#[path = "../../../src/cpuslot.rs"]
pub mod cpuslot;
#[path = "../../../src/entry.rs"]
pub mod entry;
#[path = "../../../src/fifo.rs"]
pub mod fifo;
#[path = "../../../src/hist.rs"]
pub mod hist;
#[path = "../../../src/hist_parse.rs"]
pub mod hist_parse;
#[path = "../../../src/nsfilter.rs"]
pub mod nsfilter;
#[path = "../../../src/packet.rs"]
pub mod packet;
#[path = "../../../src/params.rs"]
pub mod params;
#[path = "../../../src/parse.rs"]
pub mod parse;
#[path = "../../../src/peers.rs"]
pub mod peers;
#[path = "../../../src/record.rs"]
pub mod record;
#[path = "../../../src/record_parse.rs"]
pub mod record_parse;
#[path = "../../../src/ring.rs"]
pub mod ring;
#[path = "../../../src/stamps.rs"]
pub mod stamps;
#[path = "../../../src/table.rs"]
pub mod table;
#[path = "../../../src/tapread.rs"]
pub mod tapread;
#[path = "../../../src/text.rs"]
pub mod text;
