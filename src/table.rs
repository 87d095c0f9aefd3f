// SPDX-License-Identifier: GPL-2.0

//! Bucket-locked, set-associative hash tables that correlate the two ends of
//! a latency window: the GSO packets' egress entries, by key, and the
//! receiving tasks' entries, which are updated in place. Entries with one
//! owner at a time (a buffer's packet, a task's last send) are stamps
//! instead ([`crate::stamps`]), which need no lock.
//!
//! A table is an array of buckets, a power of two of them; a key selects one
//! bucket by a multiplicative hash (keys such as pointers to aligned objects
//! differ only in their high bits), and each bucket has [`WAYS`] slots and
//! its own lock. Each slot holds a 64-bit key (0 means empty), the time it was
//! stored, a flags word and `D` words of data. Slots are atomics so that the
//! table is safe code; they are only ever changed with their bucket's lock
//! held, so relaxed accesses suffice, but for the key, set last. A lookup first
//! looks at the bucket's keys without the lock and takes it only if one of
//! them is its key: the packets of namespaces that do not capture, and
//! other misses, lock nothing.
//!
//! The policy that makes the tables trustworthy lives here too:
//!
//! - an entry older than the table's maximum age is **expired**: it is never
//!   returned, only counted and dropped;
//! - storing a key that a live entry already has, for a different packet, is
//!   a **collision**: the old entry is marked and neither packet is reported;
//! - a full bucket **evicts** its oldest entry (counted).
//!
//! The lock is generic ([`BucketLock`]): in the kernel it is a spinlock taken
//! with interrupts disabled, so that process, softirq and hardirq contexts
//! can meet on one CPU; in host tests it is a plain spinning lock.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::ops::Deref;
use core::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, Release},
};

/// Slots per bucket.
pub const WAYS: usize = 4;

/// A lock that protects one bucket.
pub trait BucketLock {
    /// Proof that the lock is held; dropping it unlocks.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes the lock, spinning (with interrupts disabled in the kernel).
    fn lock(&self) -> Self::Guard<'_>;
}

const FLAG_COLLIDED: u64 = 1;

/// One slot of a bucket.
pub struct Slot<const D: usize> {
    key: AtomicU64,
    time: AtomicU64,
    flags: AtomicU64,
    data: [AtomicU64; D],
}

impl<const D: usize> Slot<D> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            key: AtomicU64::new(0),
            time: AtomicU64::new(0),
            flags: AtomicU64::new(0),
            data: [const { AtomicU64::new(0) }; D],
        }
    }

    fn data(&self) -> [u64; D] {
        let mut out = [0u64; D];
        for (o, w) in out.iter_mut().zip(self.data.iter()) {
            *o = w.load(Relaxed);
        }
        out
    }

    fn store(&self, key: u64, time: u64, data: &[u64; D]) {
        self.time.store(time, Relaxed);
        self.flags.store(0, Relaxed);
        for (w, v) in self.data.iter().zip(data.iter()) {
            w.store(*v, Relaxed);
        }
        self.key.store(key, Release);
    }

    fn clear(&self) {
        self.key.store(0, Relaxed);
    }
}

impl<const D: usize> Default for Slot<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// A bucket: a lock and [`WAYS`] slots.
pub struct Bucket<L, const D: usize> {
    lock: L,
    slots: [Slot<D>; WAYS],
}

impl<L, const D: usize> Bucket<L, D> {
    /// An empty bucket guarded by `lock`.
    pub const fn new(lock: L) -> Self {
        Self {
            lock,
            slots: [const { Slot::new() }; WAYS],
        }
    }
}

/// A table entry as seen under its bucket's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<const D: usize> {
    /// The key.
    pub key: u64,
    /// When it was stored (the caller's clock, e.g. monotonic ns).
    pub time: u64,
    /// The caller's data.
    pub data: [u64; D],
}

/// What [`Table::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert<const D: usize> {
    /// Stored in a free slot.
    Stored,
    /// Stored over an expired entry, which is returned.
    ReplacedExpired(Entry<D>),
    /// Stored over the oldest live entry of a full bucket, which is returned.
    Evicted(Entry<D>),
    /// A live entry had the same key and the caller said it is the same
    /// packet: nothing changed ([`Table::upsert`]: its data was updated).
    Same,
    /// A live entry had the same key for another packet: it is now marked
    /// collided (and returned), the new one was not stored.
    Collision(Entry<D>),
}

/// What [`Table::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take<const D: usize> {
    /// A live entry; it was removed.
    Hit(Entry<D>),
    /// No entry with that key.
    Miss,
    /// An expired entry; it was removed and must not be reported.
    Expired(Entry<D>),
    /// An entry marked collided; it was removed and must not be reported.
    Collided(Entry<D>),
}

/// What [`Table::place`]'s caller wants done with a key.
enum Placement<const D: usize> {
    /// Store this data: in a new entry, or over the live entry's data in
    /// place, keeping its time.
    Store([u64; D]),
    /// Leave the bucket as it is and report this.
    Keep(Insert<D>),
    /// Mark the live entry collided.
    Collide,
}

/// Whether an entry stored at `slot_time` is expired at `now` in a table
/// whose entries live `max_age` ([`Table::new`]).
///
/// Ages are signed: an entry stored by another CPU after this one read its
/// clock looks slightly younger than zero and is live.
fn is_expired(max_age: u64, slot_time: u64, now: u64) -> bool {
    (now.wrapping_sub(slot_time) as i64) > max_age as i64
}

/// The entry in `slot`, read with relaxed loads.
fn entry_of<const D: usize>(slot: &Slot<D>) -> Entry<D> {
    Entry {
        key: slot.key.load(Relaxed),
        time: slot.time.load(Relaxed),
        data: slot.data(),
    }
}

/// A key's bucket where a look without its lock found a slot with the key
/// ([`Table::look`]).
pub struct Look<'t, L, const D: usize> {
    bucket: &'t Bucket<L, D>,
    key: u64,
    max_age: u64,
}

impl<L: BucketLock, const D: usize> Look<'_, L, D> {
    /// Removes the entry with the key looked for, if it is still there, and
    /// says what it was, with its age judged at the time `clock` gives:
    /// read only if a slot has the key, once, after the slot was found, and
    /// returned with it (0 if it was not read). For a caller whose next use
    /// of the time is to end a window: its own look into the table lies
    /// inside it.
    pub fn take_timed(self, clock: impl FnOnce() -> u64) -> (Take<D>, u64) {
        self.take_inner(clock, |_| {})
    }

    fn take_inner(
        self,
        clock: impl FnOnce() -> u64,
        with: impl FnOnce(&Entry<D>),
    ) -> (Take<D>, u64) {
        let _guard = self.bucket.lock.lock();
        for slot in &self.bucket.slots {
            if slot.key.load(Relaxed) != self.key {
                continue;
            }
            let now = clock();
            let e = entry_of(slot);
            let outcome = if slot.flags.load(Relaxed) & FLAG_COLLIDED != 0 {
                Take::Collided(e)
            } else if is_expired(self.max_age, e.time, now) {
                Take::Expired(e)
            } else {
                with(&e);
                Take::Hit(e)
            };
            slot.clear();
            return (outcome, now);
        }
        (Take::Miss, 0)
    }
}

/// A bucket-locked table over the buckets in `S` (a `Vec`, a `KVVec`...).
///
/// # Invariants
///
/// `buckets.len()` is a power of two; `mask == buckets.len() - 1`.
pub struct Table<S, L, const D: usize>
where
    S: Deref<Target = [Bucket<L, D>]>,
{
    buckets: S,
    mask: u64,
    max_age: u64,
}

impl<S, L, const D: usize> Table<S, L, D>
where
    S: Deref<Target = [Bucket<L, D>]>,
    L: BucketLock,
{
    /// A table over `buckets` (a power of two of them, or they are given
    /// back) whose entries expire `max_age` clock units after being stored
    /// (`max_age` below 2^63).
    pub fn new(buckets: S, max_age: u64) -> Result<Self, S> {
        let n = buckets.len();
        if !n.is_power_of_two() || max_age > i64::MAX as u64 {
            return Err(buckets);
        }
        // INVARIANT: checked just above.
        Ok(Self {
            mask: (n as u64).wrapping_sub(1),
            buckets,
            max_age,
        })
    }

    fn bucket(&self, key: u64) -> Option<&Bucket<L, D>> {
        // Fibonacci hashing: the product's high bits depend on every bit of
        // the key; fold them down onto the low ones the mask keeps.
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.buckets
            .get(usize::try_from((h ^ h >> 32) & self.mask).ok()?)
    }

    /// Whether a slot of `bucket` may hold `key`, looked at without the
    /// lock: a lookup that finds no slot with its key misses without
    /// taking it.
    ///
    /// A miss seen this way is a miss the locked lookup could have seen
    /// too: the entry was not there yet, or already gone. An entry stored
    /// before the caller learned of its packet (through a queue, a lock, an
    /// interrupt: anything that orders the two) is seen.
    fn may_hold(bucket: &Bucket<L, D>, key: u64) -> bool {
        bucket.slots.iter().any(|s| s.key.load(Relaxed) == key)
    }

    /// Stores `data` under `key` at time `now`.
    ///
    /// `same` tells whether a live entry with the same key is this very
    /// packet seen again (then nothing changes) rather than another packet
    /// (a collision).
    pub fn insert(
        &self,
        key: u64,
        now: u64,
        data: &[u64; D],
        same: impl FnOnce(&Entry<D>) -> bool,
    ) -> Insert<D> {
        self.place(key, now, |live| match live {
            Some(old) if same(old) => Placement::Keep(Insert::Same),
            Some(_) => Placement::Collide,
            None => Placement::Store(*data),
        })
    }

    /// Runs `f` on the live entry with `key`, or else on a new entry with
    /// data `init` stored at `now`, under the bucket's lock; `f` may change
    /// the data. Returns what `f` returned and how the entry was placed
    /// ([`Insert::Same`] for an existing live entry).
    pub fn upsert<R>(
        &self,
        key: u64,
        now: u64,
        init: &[u64; D],
        f: impl FnOnce(&mut [u64; D]) -> R,
    ) -> (Option<R>, Insert<D>) {
        let mut r = None;
        let outcome = self.place(key, now, |live| {
            let mut data = live.map_or(*init, |e| e.data);
            r = Some(f(&mut data));
            Placement::Store(data)
        });
        (r, outcome)
    }

    /// Finds where `key` goes in its bucket, under the lock, and does what
    /// `decide` says given the live entry with that key, if any.
    ///
    /// A bucket holds a key at most once: an expired entry with the key is
    /// replaced in place, so it can never hide a newer one from [`take`].
    ///
    /// [`take`]: Table::take
    fn place(
        &self,
        key: u64,
        now: u64,
        decide: impl FnOnce(Option<&Entry<D>>) -> Placement<D>,
    ) -> Insert<D> {
        let Some(bucket) = self.bucket(key) else {
            return Insert::Same;
        };
        let _guard = bucket.lock.lock();
        let mut free = None;
        let mut expired = None;
        let mut oldest: Option<&Slot<D>> = None;
        for slot in &bucket.slots {
            let k = slot.key.load(Relaxed);
            if k == 0 {
                free = free.or(Some(slot));
                continue;
            }
            let t = slot.time.load(Relaxed);
            let stale = is_expired(self.max_age, t, now);
            if k == key {
                let old = entry_of(slot);
                if stale {
                    return match decide(None) {
                        Placement::Store(data) => {
                            slot.store(key, now, &data);
                            Insert::ReplacedExpired(old)
                        }
                        // An expired entry is never a packet's twin.
                        Placement::Keep(outcome) => outcome,
                        Placement::Collide => Insert::Same,
                    };
                }
                return match decide(Some(&old)) {
                    Placement::Store(data) => {
                        for (w, v) in slot.data.iter().zip(data.iter()) {
                            w.store(*v, Relaxed);
                        }
                        Insert::Same
                    }
                    Placement::Keep(outcome) => outcome,
                    Placement::Collide => {
                        slot.flags.store(FLAG_COLLIDED, Relaxed);
                        Insert::Collision(old)
                    }
                };
            }
            if stale {
                expired = expired.or(Some(slot));
                continue;
            }
            // A `match`, not `map_or(true, ..)` nor `is_none_or` (Rust 1.82,
            // newer than 6.12's minimum), for both kernels' clippy.
            let older = match oldest {
                None => true,
                Some(o) => {
                    (now.wrapping_sub(t) as i64) > (now.wrapping_sub(o.time.load(Relaxed)) as i64)
                }
            };
            if older {
                oldest = Some(slot);
            }
        }
        let data = match decide(None) {
            Placement::Store(data) => data,
            Placement::Keep(outcome) => return outcome,
            Placement::Collide => return Insert::Same,
        };
        // A free slot first, then an expired one, then the oldest.
        let (slot, outcome) = if let Some(s) = free {
            (s, Insert::Stored)
        } else if let Some(s) = expired {
            (s, Insert::ReplacedExpired(entry_of(s)))
        } else if let Some(s) = oldest {
            (s, Insert::Evicted(entry_of(s)))
        } else {
            return Insert::Same;
        };
        slot.store(key, now, &data);
        outcome
    }

    /// Looks for `key` in its bucket without the lock: `None` means no
    /// entry with `key` was there (a lookup would miss); else the bucket,
    /// where one may be (live, expired or collided, or gone by the time the
    /// lock is taken), and where [`Look::take_timed`] takes it without
    /// hashing the key or looking again. Lets a caller skip work a miss
    /// does not need: the look inline, the work that takes the entry out of
    /// line.
    #[inline(always)]
    pub fn look(&self, key: u64) -> Option<Look<'_, L, D>> {
        let bucket = self.bucket(key)?;
        Self::may_hold(bucket, key).then_some(Look {
            bucket,
            key,
            max_age: self.max_age,
        })
    }

    /// Removes the entry with `key`, if any, and says what it was.
    ///
    /// `with` runs under the bucket's lock on a live entry before it is
    /// removed (e.g. to push its latency while the entry still pins the
    /// namespace it points to).
    pub fn take_with(&self, key: u64, now: u64, with: impl FnOnce(&Entry<D>)) -> Take<D> {
        match self.look(key) {
            Some(look) => look.take_inner(|| now, with).0,
            None => Take::Miss,
        }
    }

    /// Removes the entry with `key`, if any, and says what it was.
    pub fn take(&self, key: u64, now: u64) -> Take<D> {
        self.take_with(key, now, |_| {})
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Number of entries stored in the buckets `first..first + count` (those
    /// that exist), live or expired.
    ///
    /// It takes no lock, so it never holds up the table's users: an entry
    /// stored or removed meanwhile may or may not be counted. A caller that
    /// counts a large table does it in chunks, letting others run between
    /// them.
    pub fn occupancy_of(&self, first: usize, count: usize) -> usize {
        let end = first.saturating_add(count).min(self.buckets.len());
        self.buckets
            .get(first.min(end)..end)
            .unwrap_or_default()
            .iter()
            .map(|b| b.slots.iter().filter(|s| s.key.load(Relaxed) != 0).count())
            .fold(0usize, usize::wrapping_add)
    }
}
