// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the last packet handed over on it, until an outer device
//! transmits it.
//!
//! A sent packet is tied to its send where its sender hands it to its first
//! device (`net_dev_queue`, in the sender's context), and found again by its
//! socket buffer where an outer device transmits it. Through veth, a bridge
//! and NAT without a qdisc that holds it back, that transmission comes a
//! few thousand instructions later on the same CPU, before the CPU hands
//! over anything else. So the packet is noted on its CPU, a few words in a
//! per-CPU slot, in place of a stamp in the shared array of sent packets
//! ([`crate::stamps`]: a hash, a set to search, a claimed slot).
//!
//! What the note cannot assume, it does not lose:
//! - The CPU's next hand-over finds the note still full when its packet has
//!   not left yet (a qdisc holds it, it waits for its neighbour, it went to
//!   another namespace of the host and never will): the writer moves it to
//!   the shared array ([`write`]'s `spill`), where it waits as it always
//!   did, before it notes the new one.
//! - Another CPU transmits it (the qdisc's owner runs it, receive packet
//!   steering moved it): that CPU misses in its own note and in the shared
//!   array, and looks into the note of the CPU a hint names
//!   ([`Hints`]: a buffer's address hashed to the number of the CPU that
//!   last noted a buffer with that hash).
//! - Any context may take a note, on any CPU, while its writer rewrites it:
//!   a note is one slot of the shared array's protocol. The writer claims it
//!   by setting its tag to a mark, moves out what it held, writes its words
//!   and the new tag; a reader reads the tag, then the words, then empties
//!   the tag only if it still holds what it read. A reader that finds the
//!   mark waits a bounded while for the writer to move the packet it may
//!   want to the shared array ([`Taken::Writing`]).
//!
//! Only the CPU's own tasks write its note, with preemption off, and never
//! from an interrupt or a softirq (a hand-over in a softirq is not a
//! sender's): one writer at a time. A transmission on the writer's own CPU
//! that interrupts it (a softirq after an interrupt, where the hand-over
//! runs with softirqs on: a packet handed to its neighbour) cannot wait for
//! it, and misses the packet being moved, as it misses one whose hint
//! another buffer took: the moved stamp is never taken, and is counted as
//! expired when it ages, like any other.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::entry::{Egress, SENT_WORDS};
use core::ops::Deref;
use core::sync::atomic::{fence, AtomicU64, Ordering};

/// Words of a CPU's note: its tag (the noted socket buffer's address), the
/// packet's fingerprint, the [`Egress`]'s sent words, and the CPU's number
/// plus one (written once, when the notes are allocated).
pub const SENT_NOTE_WORDS: usize = 3 + SENT_WORDS;

/// A CPU's note of the packet last handed over on it.
pub type SentNote = [AtomicU64; SENT_NOTE_WORDS];

/// The tag of an empty note.
const EMPTY: u64 = 0;

/// The tag of a note its writer is writing: no socket buffer's address (an
/// address is aligned).
const WRITING: u64 = u64::MAX;

/// Index of the CPU's number plus one.
const CPU: usize = SENT_NOTE_WORDS - 1;

/// The note's words: tag, fingerprint, sent words (the CPU's number is not
/// the packet's).
fn parts(note: &SentNote) -> (&AtomicU64, &AtomicU64, &[AtomicU64]) {
    let [tag, fp, rest @ ..] = note;
    (tag, fp, rest.get(..SENT_WORDS).unwrap_or(&[]))
}

/// Marks `note` as the note of CPU `cpu`. Before the probes can see it.
pub fn set_cpu(note: &SentNote, cpu: u32) {
    if let Some(w) = note.get(CPU) {
        w.store(u64::from(cpu).wrapping_add(1), Ordering::Relaxed);
    }
}

/// The number of the CPU `note` belongs to, if [`set_cpu`] marked it.
#[inline(always)]
pub fn cpu(note: &SentNote) -> Option<u32> {
    let n = note.get(CPU)?.load(Ordering::Relaxed);
    u32::try_from(n.checked_sub(1)?).ok()
}

/// What a note held when [`write`] wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// Nothing, or a packet a reader took meanwhile.
    Empty,
    /// An earlier packet of the same socket buffer, never transmitted (or
    /// this packet, handed over again by its syscall): its entry, with its
    /// fingerprint.
    Superseded(Egress),
    /// Another socket buffer's packet, given to `spill` before the note was
    /// written over.
    Spilled,
}

/// Notes `entry`, the packet with fingerprint `entry.fp` in the socket
/// buffer at `addr` (never 0), on the CPU of `note`, whose one writer the
/// caller is. A packet of another buffer that the note held goes to
/// `spill` (its buffer's address and its entry) while the note is marked as
/// being written, before the new packet's words are: a reader that misses
/// it in the note then finds it where `spill` put it. `None` if the note
/// could not be claimed (another writer held it, which one writer a CPU
/// rules out): nothing was noted or spilled.
#[inline(always)]
pub fn write(
    note: &SentNote,
    addr: u64,
    entry: &Egress,
    spill: impl FnOnce(u64, &Egress),
) -> Option<Noted> {
    let (tag, _, _) = parts(note);
    // Usually the note is empty: the outer device took its packet.
    if tag
        .compare_exchange(EMPTY, WRITING, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        publish(note, addr, entry);
        return Some(Noted::Empty);
    }
    write_over(note, addr, entry, spill)
}

/// [`write`] over a note that held a packet when it looked (or that its
/// writer held, which one writer a CPU rules out). Out of line: the moves
/// cost the common write nothing.
#[cold]
#[inline(never)]
fn write_over(
    note: &SentNote,
    addr: u64,
    entry: &Egress,
    spill: impl FnOnce(u64, &Egress),
) -> Option<Noted> {
    let (tag, fp, words) = parts(note);
    // One writer: the tag changes under it only from a packet's to empty,
    // when a reader takes the packet. Bounded: two tries at most.
    let mut old = tag.load(Ordering::Relaxed);
    let mut claimed = false;
    for _ in 0..2 {
        if old == WRITING {
            break;
        }
        match tag.compare_exchange(old, WRITING, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                claimed = true;
                break;
            }
            Err(now) => old = now,
        }
    }
    if !claimed {
        return None;
    }
    let noted = if old == EMPTY {
        Noted::Empty
    } else {
        // Claimed: the words stay as the last writer left them.
        fence(Ordering::Acquire);
        let was = read_entry(fp, words);
        if old == addr {
            Noted::Superseded(was)
        } else {
            spill(old, &was);
            Noted::Spilled
        }
    };
    publish(note, addr, entry);
    Some(noted)
}

/// Writes `entry` into `note`, which its writer claimed, and publishes it
/// under the tag `addr`.
#[inline(always)]
fn publish(note: &SentNote, addr: u64, entry: &Egress) {
    let (tag, fp, words) = parts(note);
    // Pairs with the readers' fence: a reader that reads a word written
    // below sees the mark (or a later tag) when it tries to empty the tag.
    fence(Ordering::Release);
    fp.store(entry.fp, Ordering::Relaxed);
    for (w, v) in words.iter().zip(entry.to_sent_words()) {
        w.store(v, Ordering::Relaxed);
    }
    tag.store(addr, Ordering::Release);
}

/// The entry whose fingerprint and sent words are `fp` and `words`.
#[inline(always)]
fn read_entry(fp: &AtomicU64, words: &[AtomicU64]) -> Egress {
    let w: [u64; SENT_WORDS] =
        core::array::from_fn(|i| words.get(i).map_or(0, |w| w.load(Ordering::Relaxed)));
    Egress::from_sent_words(&w, fp.load(Ordering::Relaxed))
}

/// What [`take`] found in a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// No packet of the socket buffer.
    Miss,
    /// Its writer is writing it: the packet it held may be on its way to
    /// the shared array.
    Writing,
    /// The packet the note held for the socket buffer, now taken: its
    /// entry, with the fingerprint it was noted with (another packet's if
    /// it is not the one in the buffer now).
    Got(Egress),
}

/// Takes the packet `note` holds for the socket buffer at `addr`, if it
/// holds one. Any context, any CPU.
#[inline(always)]
pub fn take(note: &SentNote, addr: u64) -> Taken {
    let (tag, fp, words) = parts(note);
    let t = tag.load(Ordering::Acquire);
    if t != addr {
        return if t == WRITING {
            Taken::Writing
        } else {
            Taken::Miss
        };
    }
    let entry = read_entry(fp, words);
    // Pairs with the writer's fence: a word written by a writer that began
    // after the tag was read makes the exchange below fail.
    fence(Ordering::Acquire);
    match tag.compare_exchange(t, EMPTY, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => Taken::Got(entry),
        Err(WRITING) => Taken::Writing,
        Err(_) => Taken::Miss,
    }
}

/// Whether `note` holds a packet (or is being written), read without taking
/// it.
pub fn occupied(note: &SentNote) -> bool {
    let (tag, _, _) = parts(note);
    tag.load(Ordering::Relaxed) != EMPTY
}

/// Hints of where a packet is noted: a socket buffer's address, hashed, to
/// the number (plus one) of the CPU that last noted a buffer with that hash;
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

    /// The slot of the socket buffer at `addr`.
    #[inline(always)]
    fn slot(&self, addr: u64) -> Option<&AtomicU64> {
        let h = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        // Below `N`, a power of two: no bounds check is left.
        self.slots.get(h as usize & N.wrapping_sub(1))
    }

    /// Hints that the CPU of `note` noted the socket buffer at `addr`.
    #[inline(always)]
    pub fn set(&self, addr: u64, note: &SentNote) {
        if let (Some(s), Some(cpu)) = (self.slot(addr), note.get(CPU)) {
            s.store(cpu.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The CPU that last noted a socket buffer with the hash of `addr`'s,
    /// if one did.
    #[inline(always)]
    pub fn get(&self, addr: u64) -> Option<u32> {
        let n = self.slot(addr)?.load(Ordering::Relaxed);
        u32::try_from(n.checked_sub(1)?).ok()
    }
}
