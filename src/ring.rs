// SPDX-License-Identifier: GPL-2.0

//! Fixed-capacity, lock-free, multi-producer multi-consumer ring of records.
//!
//! Every network namespace that captures owns one ring. Probes push latency
//! records into it from any context (process, softirq, hardirq, on any CPU);
//! readers of `/dev/mace` pop them. A full ring drops the new record and counts
//! it: nothing is overwritten and nothing is lost silently.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue: each slot carries a
//! sequence number that says whose turn it is (a producer of lap `n` or a
//! consumer of lap `n`), and producers and consumers claim positions with a
//! compare-and-swap on a shared counter. The payload of a slot is a few
//! `AtomicU64` words, so the whole queue is safe code: on x86 a relaxed atomic
//! load or store is a plain `mov`.
//!
//! Compare-and-swap retries are bounded by [`MAX_RETRIES`]: a caller in atomic
//! context never spins for long; giving up is counted like an overrun.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::ops::Deref;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of `u64` words a record is packed into.
pub const WORDS: usize = 3;

/// How often [`Ring::push`] and [`Ring::pop`] retry a lost compare-and-swap.
pub const MAX_RETRIES: usize = 64;

/// A value that can be stored in a [`Ring`] slot.
pub trait Packed: Sized {
    /// Packs the value into words.
    fn pack(&self) -> [u64; WORDS];
    /// Unpacks a value packed by [`Packed::pack`].
    fn unpack(words: [u64; WORDS]) -> Self;
}

/// One slot of a [`Ring`].
pub struct Slot {
    seq: AtomicUsize,
    words: [AtomicU64; WORDS],
}

impl Slot {
    /// Creates an empty slot; [`Ring::new`] numbers it.
    pub const fn new() -> Self {
        Self {
            seq: AtomicUsize::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a [`Ring::push`] dropped its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Every slot holds a record nobody has read yet.
    Full,
    /// Other producers won the race [`MAX_RETRIES`] times in a row.
    Busy,
}

/// Counters of a [`Ring`], read with [`Ring::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Records pushed.
    pub pushed: u64,
    /// Records popped.
    pub popped: u64,
    /// Records dropped because the ring was full.
    pub full: u64,
    /// Records dropped because of contention ([`PushError::Busy`]).
    pub busy: u64,
}

impl RingStats {
    /// The counts of `self` and `other` together (of two rings).
    pub fn plus(&self, other: &RingStats) -> RingStats {
        RingStats {
            pushed: self.pushed.wrapping_add(other.pushed),
            popped: self.popped.wrapping_add(other.popped),
            full: self.full.wrapping_add(other.full),
            busy: self.busy.wrapping_add(other.busy),
        }
    }
}

/// A bounded MPMC queue over the slots in `S` (a `Vec`, `KVVec`, array...).
///
/// # Invariants
///
/// `slots.len()` is a power of two and at least 2; `mask == slots.len() - 1`.
pub struct Ring<S: Deref<Target = [Slot]>> {
    slots: S,
    mask: usize,
    head: AtomicUsize,
    tail: AtomicUsize,
    pushed: AtomicU64,
    popped: AtomicU64,
    full: AtomicU64,
    busy: AtomicU64,
}

impl<S: Deref<Target = [Slot]>> Ring<S> {
    /// Builds a ring over `slots`, or gives them back if their number is not
    /// a power of two of at least 2.
    pub fn new(slots: S) -> Result<Self, S> {
        let len = slots.len();
        if len < 2 || !len.is_power_of_two() {
            return Err(slots);
        }
        for (i, slot) in slots.iter().enumerate() {
            slot.seq.store(i, Ordering::Relaxed);
        }
        // INVARIANT: `len` was checked above.
        Ok(Self {
            slots,
            mask: len - 1,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            pushed: AtomicU64::new(0),
            popped: AtomicU64::new(0),
            full: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mask.wrapping_add(1)
    }

    fn slot(&self, pos: usize) -> Option<&Slot> {
        self.slots.get(pos & self.mask)
    }

    /// Appends `value`; never blocks, never overwrites.
    // Inlined into each of its callers (the recording of a latency, with
    // segments or without): out of line it costs a call and the moves of
    // its arguments on every record.
    #[inline(always)]
    pub fn push<T: Packed>(&self, value: &T) -> Result<(), PushError> {
        let mut pos = self.head.load(Ordering::Relaxed);
        for _ in 0..MAX_RETRIES {
            let Some(slot) = self.slot(pos) else { break };
            let seq = slot.seq.load(Ordering::Acquire);
            // The slot is free for lap `pos` when seq == pos, and still holds
            // the record of the previous lap when seq == pos + 1 - capacity.
            let diff = seq.wrapping_sub(pos) as isize;
            if diff == 0 {
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        for (w, v) in slot.words.iter().zip(value.pack()) {
                            w.store(v, Ordering::Relaxed);
                        }
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        self.pushed.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                self.full.fetch_add(1, Ordering::Relaxed);
                return Err(PushError::Full);
            } else {
                pos = self.head.load(Ordering::Relaxed);
            }
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Err(PushError::Busy)
    }

    /// Removes the oldest record, if any.
    ///
    /// Returns `None` when the ring is empty (or, rarely, when other readers
    /// kept winning the race; the record is then theirs or still queued).
    pub fn pop<T: Packed>(&self) -> Option<T> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        for _ in 0..MAX_RETRIES {
            let slot = self.slot(pos)?;
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as isize;
            if diff == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let mut words = [0u64; WORDS];
                        for (v, w) in words.iter_mut().zip(slot.words.iter()) {
                            *v = w.load(Ordering::Relaxed);
                        }
                        slot.seq
                            .store(pos.wrapping_add(self.capacity()), Ordering::Release);
                        self.popped.fetch_add(1, Ordering::Relaxed);
                        return Some(T::unpack(words));
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                return None;
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
        None
    }

    /// Records queued now (a snapshot; it may change at once).
    pub fn len(&self) -> usize {
        // Tail first: the head loaded after it is never behind it.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        head.wrapping_sub(tail).min(self.capacity())
    }

    /// The ring's counters.
    pub fn stats(&self) -> RingStats {
        RingStats {
            pushed: self.pushed.load(Ordering::Relaxed),
            popped: self.popped.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}
