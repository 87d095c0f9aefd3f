// SPDX-License-Identifier: GPL-2.0

//! A small bounded FIFO of fixed-size records under one lock.
//!
//! Probes queue work for later here (packets that a tap saw, to be looked
//! at once a grace period has passed): a push never waits for anything but
//! the lock, and a full queue refuses the record instead of overwriting one
//! (the caller counts it). Records are `W` words, stored in atomics written
//! under the lock, like the tables' slots.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::table::BucketLock;
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// One record's place in a [`Fifo`].
pub type FifoSlot<const W: usize> = [AtomicU64; W];

/// An empty record's place.
pub const fn fifo_slot<const W: usize>() -> FifoSlot<W> {
    [const { AtomicU64::new(0) }; W]
}

/// A bounded FIFO of records of `W` words, as many as `S` has slots.
pub struct Fifo<S, L, const W: usize>
where
    S: Deref<Target = [FifoSlot<W>]>,
{
    lock: L,
    /// Index of the oldest record.
    head: AtomicUsize,
    /// Number of records.
    len: AtomicUsize,
    slots: S,
}

impl<S, L, const W: usize> Fifo<S, L, W>
where
    S: Deref<Target = [FifoSlot<W>]>,
    L: BucketLock,
{
    /// An empty FIFO of `slots.len()` records, guarded by `lock`.
    pub fn new(slots: S, lock: L) -> Self {
        Self {
            lock,
            head: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            slots,
        }
    }

    fn slot(&self, i: usize) -> Option<&FifoSlot<W>> {
        self.slots.get(i.checked_rem(self.slots.len())?)
    }

    fn read(slot: &FifoSlot<W>) -> [u64; W] {
        let mut out = [0u64; W];
        for (o, w) in out.iter_mut().zip(slot.iter()) {
            *o = w.load(Relaxed);
        }
        out
    }

    /// Appends `rec`; false (and nothing changes) when the FIFO is full.
    pub fn push(&self, rec: &[u64; W]) -> bool {
        let _guard = self.lock.lock();
        let len = self.len.load(Relaxed);
        if len >= self.slots.len() {
            return false;
        }
        let Some(slot) = self.slot(self.head.load(Relaxed).wrapping_add(len)) else {
            return false;
        };
        for (w, v) in slot.iter().zip(rec.iter()) {
            w.store(*v, Relaxed);
        }
        self.len.store(len.wrapping_add(1), Relaxed);
        true
    }

    /// The oldest record, if any, left in place.
    pub fn front(&self) -> Option<[u64; W]> {
        let _guard = self.lock.lock();
        if self.len.load(Relaxed) == 0 {
            return None;
        }
        self.slot(self.head.load(Relaxed)).map(Self::read)
    }

    /// Removes and returns the oldest record if `ready` says so.
    pub fn pop_if(&self, ready: impl FnOnce(&[u64; W]) -> bool) -> Option<[u64; W]> {
        let _guard = self.lock.lock();
        let len = self.len.load(Relaxed);
        if len == 0 {
            return None;
        }
        let head = self.head.load(Relaxed);
        let rec = Self::read(self.slot(head)?);
        if !ready(&rec) {
            return None;
        }
        self.head
            .store(head.wrapping_add(1).checked_rem(self.slots.len())?, Relaxed);
        self.len.store(len.wrapping_sub(1), Relaxed);
        Some(rec)
    }

    /// Runs `f` on each record, oldest first, letting it change the record
    /// in place.
    pub fn update_each(&self, mut f: impl FnMut(&mut [u64; W])) {
        let _guard = self.lock.lock();
        let head = self.head.load(Relaxed);
        // Bounded: at most the number of slots.
        for i in 0..self.len.load(Relaxed).min(self.slots.len()) {
            let Some(slot) = self.slot(head.wrapping_add(i)) else {
                return;
            };
            let mut rec = Self::read(slot);
            let was = rec;
            f(&mut rec);
            if rec != was {
                for (w, v) in slot.iter().zip(rec.iter()) {
                    w.store(*v, Relaxed);
                }
            }
        }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }
}
