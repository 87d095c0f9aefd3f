// SPDX-License-Identifier: GPL-2.0

//! Stamps of packets by the address of a buffer: socket buffers' arrival
//! times on an outer device, and received packets waiting for their reader.
//!
//! Until a received packet reaches a device of some namespace, NAT hides
//! whose it is, so every packet of an outer device has to be remembered: in
//! this array it costs a fingerprint of its header, an exchange and two
//! stores, where identifying the packet by its bytes and storing it in a
//! bucket-locked table costs several times that. From the outer device to
//! the container's device (veth, bridge, routing, NAT) a packet stays the
//! same socket buffer; there, in a namespace that captures, mace takes the
//! stamp back and identifies the packet by its bytes ([`crate::packet`]),
//! and stores its arrival time and id under its data buffer, which its
//! readers' copies share, in another such array: the receiving task takes
//! them from there.
//!
//! The array is set-associative and lockless: a buffer's address picks a
//! set of [`WAYS`] slots, each a tag and `V` words of value, the first the
//! arrival time; a stamp goes to an empty slot of the set or over its
//! oldest stamp, so a flood of other packets must bring four newer stamps
//! to one set before a packet's stamp is lost (a direct-mapped array lost
//! one of ten replies under the queueing suite's flood, 256 slots). The tag
//! comes from the packet's fingerprint ([`crate::packet::fingerprint`]: the
//! header fields that forwarding and NAT leave alone, the remote address
//! among them) and the address. A stamp is taken only by the same buffer
//! holding a packet with the same fingerprint: not by a packet that a freed
//! buffer was reused for (one that never crossed an outer device comes from
//! another address), nor by another packet whose address maps to the same
//! set. Taking a stamp clears it, so it is never found twice.
//!
//! A tag's upper half comes from the address, its lower half from the
//! fingerprint. A buffer holds one packet at a time, so an arrival stamp is
//! its buffer's only one ([`Stamps::put_sole`]): a new stamp of the same
//! buffer goes over its earlier one, whose packet left the buffer before
//! this one came (the set's slots are then not spent on stamps that can
//! never be taken). The waypoints of a breakdown keep several stamps per
//! buffer ([`Stamps::put`]).
//!
//! A writer claims the slot by setting its tag to a mark (one writer at a
//! time: another gives up after a few tries), then writes the value and the
//! new tag; a reader reads the tag, then the value, then empties the tag
//! only if it still holds what it read. So a value is returned only if it
//! was written with that tag (or, if writers rewrote the slot meanwhile and
//! the last one wrote the same tag again, with the same packet's, whose
//! words other than the time are the same).
//!
//! [`Stamps::put`] says when it overwrote a stamp never taken.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::ops::Deref;
use core::sync::atomic::{fence, AtomicU64, Ordering};

/// One slot: a tag (0: empty) and `V` words of value, the first a time.
pub struct Slot<const V: usize = 1> {
    tag: AtomicU64,
    value: [AtomicU64; V],
}

impl<const V: usize> Slot<V> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            tag: AtomicU64::new(0),
            value: [const { AtomicU64::new(0) }; V],
        }
    }
}

impl<const V: usize> Default for Slot<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// A set of [`WAYS`] slots: the slots a buffer's address picks.
pub type Set<const V: usize = 1> = [Slot<V>; WAYS];

/// An empty set.
pub const fn empty_set<const V: usize>() -> Set<V> {
    [const { Slot::new() }; WAYS]
}

/// The tag of an empty slot.
const EMPTY: u64 = 0;

/// The tag of a slot a writer is writing.
const WRITING: u64 = u64::MAX;

/// How often a writer tries to claim a slot another one is writing.
const CLAIM_TRIES: usize = 4;

/// Slots per set: a socket buffer's address picks a set, and its stamp goes
/// to any slot of it.
pub const WAYS: usize = 4;

/// What [`Stamps::put_value`] did, with the `V` words of value a stamp it
/// went over had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put<const V: usize = 1> {
    /// Stored in an empty slot.
    Empty,
    /// Stored over an earlier stamp of the same buffer
    /// ([`Stamps::put_sole_value`]), never taken: its packet left the
    /// buffer, or it is this packet's, stamped again.
    Superseded([u64; V]),
    /// Stored over another stamp, never taken.
    Replaced([u64; V]),
    /// Not stored: other writers kept the slot busy.
    Busy,
}

/// A set-associative array of stamps over the sets of slots in `S`, `V`
/// words each.
///
/// # Invariants
///
/// `sets.len()` is a power of two; `mask == sets.len() - 1`.
pub struct Stamps<S, const V: usize = 1>
where
    S: Deref<Target = [Set<V>]>,
{
    sets: S,
    mask: u64,
}

/// The hash of a socket buffer's address: slot index and tag both come from
/// it (slab objects' addresses differ in their middle bits).
fn mix(addr: u64) -> u64 {
    let h = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ h >> 32
}

impl<S, const V: usize> Stamps<S, V>
where
    S: Deref<Target = [Set<V>]>,
{
    /// An array over `sets` (a power of two of them, or they are given
    /// back), all empty.
    pub fn new(sets: S) -> Result<Self, S> {
        let n = sets.len();
        if !n.is_power_of_two() {
            return Err(sets);
        }
        // INVARIANT: checked just above.
        Ok(Self {
            mask: n as u64 - 1,
            sets,
        })
    }

    /// How many stamps the array holds.
    pub fn capacity(&self) -> usize {
        self.sets.len().saturating_mul(WAYS)
    }

    /// The set of the socket buffer at `addr`, and the hash of the address
    /// ([`Self::tag`]). One bounds check: a set is an array of its own.
    #[inline(always)]
    fn set_of(&self, addr: u64) -> Option<(&Set<V>, u64)> {
        let h = mix(addr);
        // The mask keeps the index below the number of sets, a `usize`.
        Some((self.sets.get((h & self.mask) as usize)?, h))
    }

    /// The tag of a packet with fingerprint `fp` in the buffer whose
    /// address hashes to `h`: its upper half from the address (bit 63
    /// clear: never the writer's mark), its lower half from the
    /// fingerprint; never empty.
    #[inline(always)]
    fn tag(h: u64, fp: u64) -> u64 {
        let tag = (h >> 33) << 32 | (fp ^ fp >> 32) & 0xffff_ffff;
        if tag == EMPTY {
            1
        } else {
            tag
        }
    }

    /// The set of the socket buffer at `addr`, and the tag of a packet with
    /// fingerprint `fp` in it ([`Self::tag`]).
    #[inline(always)]
    fn set(&self, addr: u64, fp: u64) -> Option<(&Set<V>, u64)> {
        let (set, h) = self.set_of(addr)?;
        Some((set, Self::tag(h, fp)))
    }

    /// Stamps the packet with fingerprint `fp` in the buffer at `addr` with
    /// `value` (its time first), beside the buffer's other stamps: in an
    /// empty slot of its set, over the same packet's stamp, or over the
    /// oldest stamp there; says what was in the slot.
    pub fn put_value(&self, addr: u64, fp: u64, value: &[u64; V]) -> Put<V> {
        self.put_in::<false, V>(addr, fp, value)
    }

    /// Stamps the packet with fingerprint `fp` in the buffer at `addr` with
    /// `value` (its time first), as the buffer's only stamp: in the first
    /// slot of its set that is empty or holds an earlier stamp of the same
    /// buffer, else over the oldest stamp there; says what was in the slot.
    pub fn put_sole_value(&self, addr: u64, fp: u64, value: &[u64; V]) -> Put<V> {
        self.put_in::<true, V>(addr, fp, value)
    }

    /// [`Self::put_sole_value`], saying of what the slot held only its time
    /// (its first word), for callers that need no more: the other words of
    /// the stamp it goes over are not read.
    pub fn put_sole_time(&self, addr: u64, fp: u64, value: &[u64; V]) -> Put<1> {
        self.put_in::<true, 1>(addr, fp, value)
    }

    /// [`Self::put_value`], or [`Self::put_sole_value`] if `SOLE`, saying of
    /// what the slot held its first `W` words.
    #[inline(always)]
    fn put_in<const SOLE: bool, const W: usize>(
        &self,
        addr: u64,
        fp: u64,
        value: &[u64; V],
    ) -> Put<W> {
        let Some((set, tag)) = self.set(addr, fp) else {
            return Put::Busy;
        };
        let time = value.first().copied().unwrap_or(0);
        // The slot is the writer's while its tag says WRITING: one writer at
        // a time, and a reader that read a new word (after the fence) sees
        // the tag changed when it tries to clear it ([`Self::take_value`]).
        // Bounded: another writer holds it for a few instructions.
        let mut claimed = None;
        for _ in 0..CLAIM_TRIES {
            if let Some((slot, old)) = victim::<SOLE, V>(set, tag, time) {
                if slot
                    .tag
                    .compare_exchange(old, WRITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    claimed = Some((slot, old));
                    break;
                }
            }
            core::hint::spin_loop();
        }
        let Some((slot, old)) = claimed else {
            return Put::Busy;
        };
        fence(Ordering::Release);
        let put = |slot: &Slot<V>| {
            for (w, v) in slot.value.iter().zip(value) {
                w.store(*v, Ordering::Relaxed);
            }
            slot.tag.store(tag, Ordering::Release);
        };
        if old == EMPTY {
            // Nothing to give back: the words of an empty slot are not read.
            put(slot);
            return Put::Empty;
        }
        let was =
            core::array::from_fn(|i| slot.value.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
        put(slot);
        if SOLE && same_buffer(old, tag) {
            Put::Superseded(was)
        } else {
            Put::Replaced(was)
        }
    }

    /// Takes the stamp of the packet with fingerprint `fp` in the buffer at
    /// `addr`, if there is one: its value.
    pub fn take_value(&self, addr: u64, fp: u64) -> Option<[u64; V]> {
        let (set, tag) = self.set(addr, fp)?;
        let slot = set.iter().find(|s| s.tag.load(Ordering::Acquire) == tag)?;
        self.claim(slot, tag)
    }

    /// The stamp of the packet with fingerprint `fp` in the buffer at
    /// `addr`, read without taking it: its value as it was at some instant,
    /// or `None` if there is none or a writer took its slot meanwhile.
    ///
    /// Whole only if no writer stamps the same packet again while it is
    /// read (a writer of another tag claims the slot first, which the tag
    /// read again after the value shows): for stamps that only their reader
    /// writes (a task's own entry, rewritten at its next send).
    pub fn read_value(&self, addr: u64, fp: u64) -> Option<[u64; V]> {
        let (set, tag) = self.set(addr, fp)?;
        let slot = set.iter().find(|s| s.tag.load(Ordering::Acquire) == tag)?;
        let value =
            core::array::from_fn(|i| slot.value.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
        // Pairs with the writers' fence: had a writer claimed the slot after
        // the tag was read, the tag read below is not `tag` any more.
        fence(Ordering::Acquire);
        (slot.tag.load(Ordering::Relaxed) == tag).then_some(value)
    }

    /// Takes the stamp of the buffer at `addr`, of whatever packet, if it
    /// has one: its value, and whether it is the packet's with fingerprint
    /// `fp` (else the leftover of another packet in that buffer). `fp` is
    /// asked only once a stamp of the buffer is seen: a buffer without one
    /// costs no fingerprint (`None`: the stamp stays).
    #[inline(always)]
    pub fn take_buffer(
        &self,
        addr: u64,
        fp: impl FnOnce() -> Option<u64>,
    ) -> Option<([u64; V], bool)> {
        let (set, h) = self.set_of(addr)?;
        let any = Self::tag(h, 0);
        if !set.iter().any(|s| of_buffer(s, any)) {
            return None;
        }
        let tag = Self::tag(h, fp()?);
        // This packet's stamp, else the buffer's leftover (a buffer may
        // hold two stamps: [`Self::put_sole_value`] takes the first slot
        // that is empty or the buffer's).
        let slot = set
            .iter()
            .find(|s| s.tag.load(Ordering::Relaxed) == tag)
            .or_else(|| set.iter().find(|s| of_buffer(s, tag)))?;
        let t = slot.tag.load(Ordering::Acquire);
        if t == EMPTY || !same_buffer(t, tag) {
            return None;
        }
        let value = self.claim(slot, t)?;
        Some((value, t == tag))
    }

    /// The value of `slot`, whose tag was `tag` (read with acquire), if it
    /// still is: then the slot is emptied, and the value is the one written
    /// with that tag.
    #[inline(always)]
    fn claim(&self, slot: &Slot<V>, tag: u64) -> Option<[u64; V]> {
        let value =
            core::array::from_fn(|i| slot.value.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
        // Pairs with the writer's fence: a word written by a writer that
        // began after the tag was read makes the exchange below see that
        // writer's mark (or a later tag) and fail.
        fence(Ordering::Acquire);
        // Only if the tag is still the one read: then no writer began since
        // (or the last one wrote the same packet's stamp again).
        slot.tag
            .compare_exchange(tag, EMPTY, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(value)
    }

    /// How many of the slots from `first`, at most `n` of them, hold a
    /// stamp (or a writer), read without claiming them. Slot `i` is slot
    /// `i % WAYS` of set `i / WAYS`.
    pub fn occupancy_of(&self, first: usize, n: usize) -> usize {
        let end = first.saturating_add(n).min(self.capacity());
        let sets = self.sets.get(first / WAYS..end.div_ceil(WAYS));
        sets.into_iter()
            .flatten()
            .flatten()
            .zip((first / WAYS).saturating_mul(WAYS)..)
            .filter(|(s, i)| (first..end).contains(i) && s.tag.load(Ordering::Relaxed) != EMPTY)
            .count()
    }
}

impl<S> Stamps<S>
where
    S: Deref<Target = [Set]>,
{
    /// Stamps the packet with fingerprint `fp` in the buffer at `addr` as
    /// arrived at `time`, beside the buffer's other stamps
    /// ([`Self::put_value`]).
    pub fn put(&self, addr: u64, fp: u64, time: u64) -> Put {
        self.put_value(addr, fp, &[time])
    }

    /// Stamps the packet with fingerprint `fp` in the buffer at `addr` as
    /// arrived at `time`, as the buffer's only stamp
    /// ([`Self::put_sole_value`]).
    pub fn put_sole(&self, addr: u64, fp: u64, time: u64) -> Put {
        self.put_sole_value(addr, fp, &[time])
    }

    /// Takes the stamp of the packet with fingerprint `fp` in the buffer at
    /// `addr`, if there is one: its arrival time.
    pub fn take(&self, addr: u64, fp: u64) -> Option<u64> {
        self.take_value(addr, fp).map(|[time]| time)
    }
}

/// Whether tags `a` and `b` are of the same socket buffer (the writer's mark
/// is of none).
fn same_buffer(a: u64, b: u64) -> bool {
    (a ^ b) >> 32 == 0
}

/// Whether `slot` holds a stamp of the buffer that `tag` is of.
fn of_buffer<const V: usize>(slot: &Slot<V>, tag: u64) -> bool {
    let t = slot.tag.load(Ordering::Relaxed);
    t != EMPTY && same_buffer(t, tag)
}

/// The slot of `set` a stamp with `tag` at `time` goes to, and its tag now:
/// the first one that is empty or has the same tag (the same packet again),
/// or if `SOLE` any tag of the same socket buffer, else the one with the
/// oldest stamp; none while writers hold all of them.
#[inline(always)]
fn victim<const SOLE: bool, const V: usize>(
    set: &Set<V>,
    tag: u64,
    time: u64,
) -> Option<(&Slot<V>, u64)> {
    let mut oldest: Option<(&Slot<V>, u64, i64)> = None;
    for slot in set {
        let t = slot.tag.load(Ordering::Relaxed);
        if t == tag || t == EMPTY || SOLE && same_buffer(t, tag) {
            return Some((slot, t));
        }
        if t == WRITING {
            continue;
        }
        let t0 = slot.value.first().map_or(0, |w| w.load(Ordering::Relaxed));
        let age = time.wrapping_sub(t0) as i64;
        // A `match`, not `is_none_or` (Rust 1.82, newer than 6.12's
        // minimum).
        let older = match oldest {
            None => true,
            Some((_, _, a)) => age > a,
        };
        if older {
            oldest = Some((slot, t, age));
        }
    }
    oldest.map(|(slot, t, _)| (slot, t))
}
