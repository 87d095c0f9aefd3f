// SPDX-License-Identifier: GPL-2.0

//! Arrival stamps of the packets an outer device receives, by socket buffer.
//!
//! Until a received packet reaches a device of some namespace, NAT hides
//! whose it is, so every packet of an outer device has to be remembered: in
//! this array it costs one 64-bit store, where identifying the packet by
//! its bytes and storing it in a bucket-locked table costs ten times that.
//! From the outer device to the container's device (veth, bridge, routing,
//! NAT) a packet stays the same socket buffer; there, in a namespace that
//! captures, mace takes the stamp back and identifies the packet by its
//! bytes ([`crate::packet`]), which is how its reader finds it.
//!
//! The array is direct-mapped and lockless: a socket buffer's address picks
//! one slot, which holds one word:
//!
//! ```text
//!  63          48 47                                     0
//! | fingerprint  | arrival time, low 48 bits (ns)          |
//! ```
//!
//! The fingerprint is a digest of the packet's first network-header bytes
//! that forwarding and NAT leave alone ([`crate::packet::fingerprint`]): it
//! tells a stamp from one of another packet that took the slot, or of a
//! packet freed before it was taken whose socket buffer the allocator gave
//! to a new packet that never crossed an outer device. The full arrival
//! time is rebuilt from the reader's clock, at most `max_age` (far below
//! 2^47 ns, 39 hours) away. A stamp is never found twice: taking it clears
//! the slot.
//!
//! A later packet whose address maps to the same slot overwrites a stamp
//! not yet taken: the array has several slots per expected packet in
//! flight, and [`Stamps::stamp`] says when it overwrote a fresh one.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering};

/// Bits of the arrival time kept in a slot.
const TIME_BITS: u32 = 48;

/// Mask of the time bits.
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// The oldest stamp [`Stamps::take`] can tell from a newer one, in ns.
pub const MAX_AGE_LIMIT: u64 = 1 << (TIME_BITS - 1);

/// What [`Stamps::stamp`] wrote over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamped {
    /// An empty slot, or a stamp older than `max_age`.
    Free,
    /// The fresh stamp of another packet, never taken: it is lost.
    Overwrote,
}

/// A direct-mapped array of arrival stamps over the words in `S`.
///
/// # Invariants
///
/// `slots.len()` is a power of two; `mask == slots.len() - 1`.
pub struct Stamps<S>
where
    S: Deref<Target = [AtomicU64]>,
{
    slots: S,
    mask: u64,
}

impl<S> Stamps<S>
where
    S: Deref<Target = [AtomicU64]>,
{
    /// An array over `slots` (a power of two of them, or they are given
    /// back), all zero.
    pub fn new(slots: S) -> Result<Self, S> {
        let n = slots.len();
        if !n.is_power_of_two() {
            return Err(slots);
        }
        // INVARIANT: checked just above.
        Ok(Self {
            mask: (n as u64).wrapping_sub(1),
            slots,
        })
    }

    /// The slot of the socket buffer at address `addr`.
    fn slot(&self, addr: u64) -> Option<&AtomicU64> {
        // Socket buffers are aligned objects from a slab: their addresses
        // differ in the middle bits. Multiply, fold the high bits down.
        let h = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.slots
            .get(usize::try_from((h ^ h >> 32) & self.mask).ok()?)
    }

    /// Stamps the packet in the socket buffer at `addr`, whose fingerprint
    /// is `fp`, as arrived at `now`; says whether a fresh stamp (younger than
    /// `max_age`) of another packet was overwritten.
    pub fn stamp(&self, addr: u64, fp: u16, now: u64, max_age: u64) -> Stamped {
        let Some(slot) = self.slot(addr) else {
            return Stamped::Free;
        };
        let word = u64::from(fp) << TIME_BITS | now & TIME_MASK;
        // A zero word means empty: a zero fingerprint at a time whose low
        // bits are zero would look empty. Let it be one ns later.
        let word = if word == 0 { 1 } else { word };
        let old = slot.swap(word, Ordering::Relaxed);
        match age(old, now) {
            Some(a) if old != 0 && a <= max_age as i64 => Stamped::Overwrote,
            _ => Stamped::Free,
        }
    }

    /// Takes the stamp of the packet in the socket buffer at `addr` with
    /// fingerprint `fp`, if there is one no older than `max_age` at `now`:
    /// its arrival time.
    pub fn take(&self, addr: u64, fp: u16, now: u64, max_age: u64) -> Option<u64> {
        let slot = self.slot(addr)?;
        let old = slot.load(Ordering::Relaxed);
        if old == 0 || old >> TIME_BITS != u64::from(fp) {
            return None;
        }
        let a = age(old, now)?;
        // Slightly negative: stamped on another CPU after this one read its
        // clock.
        if a > max_age as i64 || a < -(max_age as i64) {
            return None;
        }
        // Only the one who clears it takes it (another packet may have
        // taken the slot meanwhile).
        slot.compare_exchange(old, 0, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(now.wrapping_sub(a as u64))
    }
}

/// The age at `now` of the stamp in `word`, from the low 48 bits of both
/// times: positive for a stamp in the past, within +-2^47 ns.
fn age(word: u64, now: u64) -> Option<i64> {
    let d = (now & TIME_MASK).wrapping_sub(word & TIME_MASK) & TIME_MASK;
    // Sign-extend the 48-bit difference.
    let d = i64::try_from(d).ok()?;
    Some(if d >= MAX_AGE_LIMIT as i64 {
        d - (1i64 << TIME_BITS)
    } else {
        d
    })
}
