// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the packet last stamped on it by its buffer, until the
//! packet's next probe takes it.
//!
//! Two stamps of a packet by its buffer are usually taken back on the CPU
//! that made them, a few thousand instructions later, before that CPU makes
//! another:
//! - a sent packet, tied to its send where its sender hands it to its first
//!   device (`net_dev_queue`, in the sender's context), is found again by
//!   its socket buffer where an outer device transmits it: through veth, a
//!   bridge and NAT without a qdisc that holds it back, on the same CPU;
//! - a received packet, stamped by its data buffer where an outer device
//!   receives it (in a softirq), is found again by that buffer where its
//!   reader takes it: a reader woken on that CPU (the sender of a ping
//!   whose reply came back within its own send) takes it there.
//!
//! So the packet is noted on its CPU, a few words in a per-CPU slot, in
//! place of a stamp in a shared array of stamps ([`crate::stamps`]: a hash,
//! a set to search, a claimed slot).
//!
//! What the note cannot assume, it does not lose:
//! - The CPU's next stamp finds the note still full when its packet has
//!   not been taken (a qdisc holds it, it waits for its neighbour, it went
//!   to another namespace of the host and never will; its reader has not
//!   read yet): the writer moves it to the shared array ([`write`]'s
//!   `spill`), where it waits as it always did, before it notes the new
//!   one.
//! - Another CPU takes it (the qdisc's owner runs it, receive packet
//!   steering moved it, the reader runs elsewhere): that CPU misses in its
//!   own note, looks into the note of the CPU a hint names ([`Hints`]: a
//!   buffer's address hashed to the number of the CPU that last noted a
//!   buffer with that hash), then into the shared array: in that order, as
//!   a writer moves a stamp out before it leaves the note, so a stamp is
//!   always in one of them when it is looked for there.
//! - Any context may take a note, on any CPU, while its writer rewrites it:
//!   a note is one slot of the shared array's protocol. The writer claims it
//!   by setting its tag to a mark, moves out what it held, writes its words
//!   and the new tag; a reader reads the tag, then the words, then empties
//!   the tag only if it still holds what it read. A reader that finds the
//!   mark waits a bounded while for the writer to move the packet it may
//!   want to the shared array ([`Taken::Writing`]).
//!
//! One writer at a time writes a CPU's note: its user's probe, in one kind
//! of context that cannot interrupt itself on its CPU (a sender's task with
//! preemption off; a softirq, or a task with softirqs off). A reader on the
//! writer's own CPU that interrupts it (a softirq after an interrupt, where
//! a hand-over runs with softirqs on: a packet handed to its neighbour)
//! cannot wait for it, and misses the packet being moved, as a reader
//! misses one whose hint another buffer took: the moved stamp is then never
//! taken, and ages like any other.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::ops::Deref;
use core::sync::atomic::{fence, AtomicU64, Ordering};

/// Words of a note with `V` words of value: its tag (the noted buffer's
/// address), the packet's fingerprint, the value, and the CPU's number plus
/// one (written once, when the notes are allocated).
pub const fn note_words(v: usize) -> usize {
    v.saturating_add(3)
}

/// The tag of an empty note.
const EMPTY: u64 = 0;

/// The tag of a note its writer is writing: no buffer's address (an address
/// is aligned).
const WRITING: u64 = u64::MAX;

/// What a note holds: a packet's fingerprint and `V` words of value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<const V: usize> {
    /// The packet's fingerprint ([`crate::packet::fingerprint`]).
    pub fp: u64,
    /// What its user stores for it.
    pub value: [u64; V],
}

/// The note's words: tag, fingerprint, `V` words of value, the CPU's number
/// plus one; `None` unless `N` is [`note_words`]`(V)`.
#[inline(always)]
fn parts<const N: usize, const V: usize>(
    note: &[AtomicU64; N],
) -> Option<(&AtomicU64, &AtomicU64, &[AtomicU64], &AtomicU64)> {
    if N != note_words(V) {
        return None;
    }
    let [tag, fp, rest @ ..] = note.as_slice() else {
        return None;
    };
    Some((tag, fp, rest.get(..V)?, rest.get(V)?))
}

/// Marks `note` as the note of CPU `cpu`. Before the probes can see it.
pub fn set_cpu<const N: usize>(note: &[AtomicU64; N], cpu: u32) {
    if let Some(w) = note.last() {
        w.store(u64::from(cpu).wrapping_add(1), Ordering::Relaxed);
    }
}

/// The number of the CPU `note` belongs to, if [`set_cpu`] marked it.
#[inline(always)]
pub fn cpu<const N: usize>(note: &[AtomicU64; N]) -> Option<u32> {
    let n = note.last()?.load(Ordering::Relaxed);
    u32::try_from(n.checked_sub(1)?).ok()
}

/// What a note held when [`write`] wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted<const V: usize> {
    /// Nothing, or a packet a reader took meanwhile.
    Empty,
    /// An earlier stamp of the same buffer, never taken (its packet left
    /// the buffer, or it is this packet's, stamped again).
    Superseded(Stamp<V>),
    /// Another buffer's stamp, given to `spill` before the note was written
    /// over.
    Spilled,
}

/// Notes `stamp`, of the packet in the buffer at `addr` (never 0), on the
/// CPU of `note` (`N` words: [`note_words`]`(V)`), whose one writer the
/// caller is. Another buffer's stamp that the note held goes to `spill`
/// (its buffer's address and its stamp) while the note is marked as being
/// written, before the new stamp's words are: a reader that misses it in
/// the note then finds it where `spill` put it. `None` if the note could
/// not be claimed (another writer held it, which one writer a CPU rules
/// out): nothing was noted or spilled.
#[inline(always)]
pub fn write<const N: usize, const V: usize>(
    note: &[AtomicU64; N],
    addr: u64,
    stamp: &Stamp<V>,
    spill: impl FnOnce(u64, &Stamp<V>),
) -> Option<Noted<V>> {
    let (tag, _, _, _) = parts::<N, V>(note)?;
    // Usually the note is empty: its stamp was taken.
    let noted = if tag
        .compare_exchange(EMPTY, WRITING, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        Noted::Empty
    } else {
        match claim_over::<N, V>(note)? {
            None => Noted::Empty,
            Some((old, was)) if old == addr => Noted::Superseded(was),
            Some((old, was)) => {
                spill(old, &was);
                Noted::Spilled
            }
        }
    };
    publish(note, addr, stamp);
    Some(noted)
}

/// Claims `note`, which held a stamp when [`write`] looked (or which its
/// writer held, which one writer a CPU rules out): the tag and the stamp it
/// held, `None` inside if a reader took it meanwhile; `None` if it could
/// not be claimed. Out of line: the common write (an empty note) keeps its
/// stamp in registers.
#[cold]
#[inline(never)]
#[allow(clippy::type_complexity)]
fn claim_over<const N: usize, const V: usize>(
    note: &[AtomicU64; N],
) -> Option<Option<(u64, Stamp<V>)>> {
    let (tag, fp, value, _) = parts::<N, V>(note)?;
    // One writer: the tag changes under it only from a packet's to empty,
    // when a reader takes the packet. Bounded: two tries at most.
    let mut old = tag.load(Ordering::Relaxed);
    for _ in 0..2 {
        if old == WRITING {
            return None;
        }
        match tag.compare_exchange(old, WRITING, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) if old == EMPTY => return Some(None),
            Ok(_) => {
                // Claimed: the words stay as the last writer left them.
                fence(Ordering::Acquire);
                return Some(Some((old, read_stamp(fp, value))));
            }
            Err(now) => old = now,
        }
    }
    None
}

/// Writes `stamp` into `note`, which its writer claimed, and publishes it
/// under the tag `addr`.
#[inline(always)]
fn publish<const N: usize, const V: usize>(note: &[AtomicU64; N], addr: u64, stamp: &Stamp<V>) {
    let Some((tag, fp, value, _)) = parts::<N, V>(note) else {
        return;
    };
    // Pairs with the readers' fence: a reader that reads a word written
    // below sees the mark (or a later tag) when it tries to empty the tag.
    fence(Ordering::Release);
    fp.store(stamp.fp, Ordering::Relaxed);
    for (w, v) in value.iter().zip(stamp.value) {
        w.store(v, Ordering::Relaxed);
    }
    tag.store(addr, Ordering::Release);
}

/// The stamp whose fingerprint and value are in `fp` and `value`.
#[inline(always)]
fn read_stamp<const V: usize>(fp: &AtomicU64, value: &[AtomicU64]) -> Stamp<V> {
    Stamp {
        fp: fp.load(Ordering::Relaxed),
        value: core::array::from_fn(|i| value.get(i).map_or(0, |w| w.load(Ordering::Relaxed))),
    }
}

/// What [`take`] found in a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken<const V: usize> {
    /// No stamp of the buffer.
    Miss,
    /// Its writer is writing it: the stamp it held may be on its way to the
    /// shared array.
    Writing,
    /// The stamp the note held for the buffer, now taken (another packet's,
    /// if its fingerprint is not the packet's in the buffer now).
    Got(Stamp<V>),
}

/// Takes the stamp `note` holds for the buffer at `addr`, if it holds one.
/// Any context, any CPU.
#[inline(always)]
pub fn take<const N: usize, const V: usize>(note: &[AtomicU64; N], addr: u64) -> Taken<V> {
    let Some((tag, fp, value, _)) = parts::<N, V>(note) else {
        return Taken::Miss;
    };
    let t = tag.load(Ordering::Acquire);
    if t != addr {
        return if t == WRITING {
            Taken::Writing
        } else {
            Taken::Miss
        };
    }
    let stamp = read_stamp(fp, value);
    // Pairs with the writer's fence: a word written by a writer that began
    // after the tag was read makes the exchange below fail.
    fence(Ordering::Acquire);
    match tag.compare_exchange(t, EMPTY, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => Taken::Got(stamp),
        Err(WRITING) => Taken::Writing,
        Err(_) => Taken::Miss,
    }
}

/// Takes the stamp another CPU's `note` holds for the buffer at `addr`,
/// looking again, at most `tries` times in all, while its writer holds it:
/// what the last look found. A writer moves a stamp to the shared array
/// before it leaves the note, so a stamp that this misses is in the shared
/// array by the time it returns (unless the writer still held the note at
/// the last look): look there after the note, never before. Any context,
/// any CPU; bounded.
#[inline(always)]
pub fn take_waiting<const N: usize, const V: usize>(
    note: &[AtomicU64; N],
    addr: u64,
    tries: usize,
) -> Taken<V> {
    for _ in 0..tries {
        match take(note, addr) {
            Taken::Writing => core::hint::spin_loop(),
            found => return found,
        }
    }
    Taken::Writing
}

/// Whether `note` holds a stamp (or is being written), read without taking
/// it.
pub fn occupied<const N: usize>(note: &[AtomicU64; N]) -> bool {
    note.first()
        .is_some_and(|t| t.load(Ordering::Relaxed) != EMPTY)
}

/// Hints of where a packet is noted: a buffer's address, hashed, to the
/// number (plus one) of the CPU that last noted a buffer with that hash;
/// `N` of them, a power of two.
///
/// # Invariants
///
/// `slots.len() == N`.
pub struct Hints<S: Deref<Target = [AtomicU64]>, const N: usize> {
    slots: S,
}

impl<S: Deref<Target = [AtomicU64]>, const N: usize> Hints<S, N> {
    /// Hints over `slots` (zeroed), if there are `N` of them and `N` is a
    /// power of two; else gives them back.
    pub fn new(slots: S) -> Result<Self, S> {
        if !N.is_power_of_two() || slots.len() != N {
            return Err(slots);
        }
        Ok(Self { slots })
    }

    /// The slot of the buffer at `addr`.
    #[inline(always)]
    fn slot(&self, addr: u64) -> Option<&AtomicU64> {
        let h = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        self.slots.get(h as usize & N.wrapping_sub(1))
    }

    /// Hints that the CPU of `note` noted the buffer at `addr`.
    #[inline(always)]
    pub fn set<const W: usize>(&self, addr: u64, note: &[AtomicU64; W]) {
        if let (Some(s), Some(cpu)) = (self.slot(addr), note.last()) {
            s.store(cpu.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The CPU that last noted a buffer with the hash of `addr`'s, if one
    /// did.
    #[inline(always)]
    pub fn get(&self, addr: u64) -> Option<u32> {
        let n = self.slot(addr)?.load(Ordering::Relaxed);
        u32::try_from(n.checked_sub(1)?).ok()
    }
}
