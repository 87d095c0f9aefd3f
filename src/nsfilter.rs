// SPDX-License-Identifier: GPL-2.0

//! The probes' first filter: which namespaces they may have work in, and
//! the state of the one on each slot.
//!
//! Every hit of a probe on a packet or a syscall ends in a filter unless its
//! namespace captures, and most hits are other namespaces'. Finding a
//! namespace's state to ask it costs a chain of dependent loads and their
//! checks (the namespace's array of generic pointers, mace's slot in it, the
//! state, its flag). This filter answers first, with a multiplication and
//! one load: each namespace whose capture was ever on (and so may have
//! entries the probes still clean up) is counted on the slot its address
//! hashes to ([`slot_of`]), one of [`SLOTS`]. A slot holds a word:
//!
//! - [`EMPTY`]: no such namespace hashes there; a hit whose namespace's
//!   slot is empty is not one of theirs;
//! - a *tag*, any other word but [`SHARED`]: one namespace hashes there,
//!   and the tag is its state's address, which the caller compares with
//!   the hit's namespace (the tag's owner, or another namespace on the same
//!   slot, which is not one of theirs): the state without the chain, and
//!   no namespace that merely shares the slot goes on to the chain;
//! - [`SHARED`]: two or more counted namespaces hash there (or did, until
//!   only one is left; which one is not known): the filter decides nothing,
//!   and the chain finds the state, as before.
//!
//! Readers take no lock ([`NsFilter::word`]). Writers count the namespaces
//! on each slot ([`NsCounts`]), which they reach only through a `&mut`, so
//! one lock serializes them: a slot is emptied only when no namespace
//! counted on it is left. A namespace is counted before its capture is
//! first switched on and uncounted when it goes away, so while the probes
//! may have work in it, its slot holds its tag or [`SHARED`].
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate. What a tag points to is the kernel layer's business
//! (`ffi/net.rs`).

#![deny(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering};

/// Slots of the filter.
pub const SLOTS: usize = 64;

/// The slot of the namespace at `addr`: the top six bits of a multiplicative
/// hash of its address, where allocation puts the varying bits anywhere.
#[inline(always)]
pub fn slot_of(addr: u64) -> u32 {
    // 2^64 / the golden ratio, odd: every bit of the address reaches the
    // product's top bits.
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    (addr.wrapping_mul(MULTIPLIER) >> 58) as u32
}

/// The word of a slot on which no counted namespace hashes.
pub const EMPTY: usize = 0;

/// The word of a slot on which two or more counted namespaces hash (or did):
/// the filter decides nothing there. No tag (an aligned address) is 1.
pub const SHARED: usize = 1;

/// The namespaces the probes may have work in: a word per slot ([`slot_of`]).
pub struct NsFilter {
    slots: [AtomicUsize; SLOTS],
}

impl NsFilter {
    /// A filter of no namespace.
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicUsize::new(EMPTY) }; SLOTS],
        }
    }

    /// The word of the slot of the namespace at `addr`: [`EMPTY`] (it is
    /// not one whose capture was ever on), [`SHARED`] (its state must be
    /// asked), or the tag of the one counted namespace on its slot, which
    /// is its own or another's.
    ///
    /// Acquire: a tag is the address of what its writer made before it
    /// stored the tag ([`NsCounts::add`]). A hit that reads the slot just
    /// before a namespace is counted misses only what a hit just before the
    /// namespace's capture was switched on misses too (it is counted before
    /// the switch).
    #[inline(always)]
    pub fn word(&self, addr: u64) -> usize {
        // `slot_of` is below `SLOTS`: `get` never fails.
        self.slots
            .get(slot_of(addr) as usize)
            .map_or(SHARED, |s| s.load(Ordering::Acquire))
    }

    /// Replaces `tag`, if the slot of the namespace at `addr` still holds
    /// it, by [`SHARED`], which is always right: for a namespace going away
    /// that its writers did not uncount. Says whether it did.
    pub fn retire(&self, addr: u64, tag: usize) -> bool {
        if tag == EMPTY || tag == SHARED {
            return false;
        }
        self.slots.get(slot_of(addr) as usize).is_some_and(|s| {
            s.compare_exchange(tag, SHARED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }
}

impl Default for NsFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// How many namespaces are counted on each slot of an [`NsFilter`]: the
/// writers' side, behind their lock.
pub struct NsCounts {
    counts: [u32; SLOTS],
}

impl NsCounts {
    /// No namespace counted.
    pub const fn new() -> Self {
        Self { counts: [0; SLOTS] }
    }

    /// Counts the namespace at `addr`, whose tag is `tag` (neither
    /// [`EMPTY`] nor [`SHARED`], or the slot is [`SHARED`]), in `filter`,
    /// before the probes may have work in it.
    pub fn add(&mut self, filter: &NsFilter, addr: u64, tag: usize) {
        let b = slot_of(addr) as usize;
        let (Some(n), Some(slot)) = (self.counts.get_mut(b), filter.slots.get(b)) else {
            return;
        };
        *n = n.saturating_add(1);
        let word = if *n == 1 && tag != EMPTY { tag } else { SHARED };
        // Release: a probe that sees the tag sees what it points to, and a
        // probe that sees the namespace's capture on (set after this, with
        // Release) sees this word as well.
        slot.store(word, Ordering::Release);
    }

    /// Uncounts the namespace at `addr`, whose tag is `tag`, once the
    /// probes have no work in it any more: its slot in `filter` is emptied
    /// if no other namespace is counted on it. Returns `false`, changing
    /// nothing, if it was not counted: no namespace is counted on its slot,
    /// or the one there is another (its tag is not `tag`).
    pub fn remove(&mut self, filter: &NsFilter, addr: u64, tag: usize) -> bool {
        let b = slot_of(addr) as usize;
        let (Some(n), Some(slot)) = (self.counts.get_mut(b), filter.slots.get(b)) else {
            return false;
        };
        if *n == 0 {
            return false;
        }
        let word = slot.load(Ordering::Relaxed);
        if word != SHARED && word != tag {
            return false;
        }
        *n -= 1;
        if *n == 0 {
            // Relaxed: a probe that still sees the tag after this reads
            // what its caller keeps alive until a grace period later.
            slot.store(EMPTY, Ordering::Relaxed);
        }
        // Else it stays SHARED: which namespace is left is not known here.
        true
    }
}

impl Default for NsCounts {
    fn default() -> Self {
        Self::new()
    }
}
