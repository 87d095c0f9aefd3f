// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the latest packet a datagram receive took on it.
//!
//! A receive on a datagram or raw socket (ICMP, UDP, raw, packet sockets)
//! takes its one packet (the copy to the task) and returns a few hundred
//! instructions later, where the packet's ingress window ends; both happen
//! on one CPU unless the task moved to another in between. So the packet
//! is noted on its CPU, a few words in a per-CPU slot, in place of a stamp
//! of the task in a shared table (a hash, a claimed slot, a set to search).
//!
//! A note names its task (its address and thread id) and the task's
//! migrations then (`se.nr_migrations`), which grow each time the task
//! moves to another CPU. Later on that CPU, the note is the task's latest
//! exactly when it names the current task with the same migrations: a
//! task that never left the CPU since finds it there ([`Found::Mine`]); a
//! note of another task, or of this task before it moved away and back, is
//! not that ([`Found::Other`], [`Found::Moved`]). The receive's return
//! takes its note; a note whose task moved, or was held up while another
//! task of the CPU took a packet, stays until the CPU's next receive takes
//! a packet or the task returns there, and is counted as lost then: a note
//! loses what waits, never gives it to another.
//!
//! A send's entry is not noted so: between its entry and its packet's
//! hand-over it may wait for a lock or for memory (on PREEMPT_RT for any
//! spinlock), and another task's send on the CPU meanwhile would take the
//! note's place with nothing to count (`Documentation/evaluation.rst`,
//! eighteenth steps); its packet is, from its hand-over on
//! ([`crate::bufnote`]). A stream receive (TCP) may wait for more data
//! and go on elsewhere: both keep stamps of their task (`capture/`).
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::entry::{LatestPending, Words, LATEST_PENDING_WORDS};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Words of a CPU's note: the task's address, its migrations, then the
/// [`LatestPending`]'s.
pub const NOTE_WORDS: usize = 2 + LATEST_PENDING_WORDS;

/// A CPU's note: its words, which only that CPU's tasks read and write,
/// in task context and without leaving the CPU meanwhile.
pub type Note = [AtomicU64; NOTE_WORDS];

/// Notes `what`, of the task at `task` (never 0) whose migrations are
/// `migrations` now, over whatever `note` held.
#[inline(always)]
pub fn write(note: &Note, task: u64, migrations: u64, what: &LatestPending) {
    let [a, b, c, d] = what.to_words();
    for (w, v) in note.iter().zip([task, migrations, a, b, c, d]) {
        w.store(v, Relaxed);
    }
}

/// Empties `note`.
#[inline(always)]
pub fn clear(note: &Note) {
    let [t, ..] = note;
    t.store(0, Relaxed);
}

/// The packet `note` holds, whoever's it is, if it holds one.
#[inline(always)]
pub fn contents(note: &Note) -> Option<LatestPending> {
    let [t, _, a, b, c, d] = note;
    if t.load(Relaxed) == 0 {
        return None;
    }
    Some(LatestPending::from_words(
        &[a, b, c, d].map(|w| w.load(Relaxed)),
    ))
}

/// What a CPU's note says to a task of that CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The task's latest packet, noted on this CPU, which it has not left
    /// since.
    Mine(LatestPending),
    /// The task's packet, noted before it last moved to another CPU.
    Moved(LatestPending),
    /// Another task's note, or none.
    Other,
}

/// What `note` says to the task at `task`, thread `tid`, whose migrations
/// are `migrations`. Reads the task's address first, and the rest only if
/// it is the task's.
#[inline(always)]
pub fn found(note: &Note, task: u64, tid: u32, migrations: u64) -> Found {
    let [t, m, a, b, c, d] = note;
    let t = t.load(Relaxed);
    if t != task || t == 0 {
        return Found::Other;
    }
    let what = LatestPending::from_words(&[a, b, c, d].map(|w| w.load(Relaxed)));
    if what.tid != tid {
        // A dead task's, whose address the current one got.
        return Found::Other;
    }
    if m.load(Relaxed) != migrations {
        return Found::Moved(what);
    }
    Found::Mine(what)
}
