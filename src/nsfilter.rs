// SPDX-License-Identifier: GPL-2.0

//! The probes' first filter: a bit mask of the namespaces they may have work
//! in.
//!
//! Every hit of a probe on a packet or a syscall ends in a filter unless its
//! namespace captures, and most hits are other namespaces'. Finding a
//! namespace's state to ask it costs a chain of dependent loads and their
//! checks (the namespace's array of generic pointers, mace's slot in it, the
//! state, its flag). This mask answers first, for most of those hits, with
//! one load, a multiplication and a bit test: each namespace whose capture
//! was ever on (and so may have entries the probes still clean up) sets the
//! bit its address hashes to ([`bit`]), and a hit whose namespace's bit is
//! clear is not one of theirs. A set bit decides nothing: another namespace
//! may share it, so the state's own flags are asked next, as before.
//!
//! Readers take no lock ([`NsMask::may_capture`]). Writers count the
//! namespaces on each bit ([`NsCounts`]), which they reach only through a
//! `&mut`, so one lock serializes them: a bit is cleared only when no
//! namespace counted on it is left. A namespace is counted before its
//! capture is first switched on and uncounted when it goes away, so while
//! the probes may have work in it, its bit is set.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

/// Bits of the mask.
pub const BITS: usize = 64;

/// The bit of the namespace at `addr`: the top six bits of a multiplicative
/// hash of its address, where allocation puts the varying bits anywhere.
#[inline(always)]
pub fn bit(addr: u64) -> u32 {
    // 2^64 / the golden ratio, odd: every bit of the address reaches the
    // product's top bits.
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    (addr.wrapping_mul(MULTIPLIER) >> 58) as u32
}

/// The namespaces the probes may have work in, as bits ([`bit`]).
pub struct NsMask(AtomicU64);

impl NsMask {
    /// A mask of no namespace.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Whether the namespace at `addr` may be one whose capture was on:
    /// `false` means it is not, `true` that its state must be asked.
    ///
    /// Relaxed: a hit that reads the mask just before a namespace's bit is
    /// set misses only what a hit just before the namespace's capture was
    /// switched on misses too (the bit is set before the switch).
    #[inline(always)]
    pub fn may_capture(&self, addr: u64) -> bool {
        self.0.load(Ordering::Relaxed) & 1u64 << bit(addr) != 0
    }
}

impl Default for NsMask {
    fn default() -> Self {
        Self::new()
    }
}

/// How many namespaces are counted on each bit of an [`NsMask`]: the
/// writers' side, behind their lock.
pub struct NsCounts {
    counts: [u32; BITS],
}

impl NsCounts {
    /// No namespace counted.
    pub const fn new() -> Self {
        Self { counts: [0; BITS] }
    }

    /// Counts the namespace at `addr` and sets its bit in `mask`, before
    /// the probes may have work in it.
    pub fn add(&mut self, mask: &NsMask, addr: u64) {
        let b = bit(addr);
        if let Some(n) = self.counts.get_mut(b as usize) {
            *n = n.saturating_add(1);
        }
        // Release: a probe that sees the namespace's capture on (set after
        // this, with Release) sees this bit as well.
        mask.0.fetch_or(1u64 << b, Ordering::Release);
    }

    /// Uncounts the namespace at `addr`, once the probes have no work in it
    /// any more: its bit in `mask` is cleared if no other namespace is
    /// counted on it. Returns `false`, changing nothing, if no namespace
    /// was counted on its bit.
    pub fn remove(&mut self, mask: &NsMask, addr: u64) -> bool {
        let b = bit(addr);
        let Some(n) = self.counts.get_mut(b as usize).filter(|n| **n > 0) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            mask.0.fetch_and(!(1u64 << b), Ordering::Relaxed);
        }
        true
    }
}

impl Default for NsCounts {
    fn default() -> Self {
        Self::new()
    }
}
