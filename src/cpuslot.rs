// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the latest send that started on it.
//!
//! A task's datagram send (ICMP, UDP: a packet per send, handed over before
//! the syscall returns) starts its packet's egress window at the syscall's
//! entry and ties the packet to it where the sender hands it over, in the
//! same syscall. Both happen on one CPU unless the task moved to another
//! in between, so the send is noted on its CPU: a few words in a per-CPU
//! slot, which the next send that starts on that CPU overwrites, in place
//! of a stamp of the task in a shared table (a hash, a claimed slot, a set
//! to search).
//!
//! The note names its task (its address and thread id) and the task's
//! migrations then (`se.nr_migrations`), which grow each time the task
//! moves to another CPU. Where a packet is handed over, the CPU's note is
//! the current send's exactly when it names the current task with the same
//! migrations: a task that never left the CPU since its note finds its
//! latest send there, which, with the syscall's own descriptor and socket
//! (checked by the caller), is the one it is in; a note of another task,
//! or of this task before it moved away and back, is not its send's. A
//! task that moved between its send's entry and the hand-over finds
//! neither: its packet is not measured ([`Found::Moved`]).
//!
//! A TCP send may wait for memory and hand its segments over after
//! sleeping, on another CPU: its task keeps its send in a shared table
//! (`capture/egress.rs`).
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::entry::{Sender, Words, SEND_WORDS};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Words of a CPU's note: the task's address, its migrations, then its
/// [`Sender`]'s words.
pub const NOTE_WORDS: usize = 2 + SEND_WORDS;

/// A CPU's note: its words, which only that CPU's tasks read and write,
/// in task context and without leaving the CPU meanwhile.
pub type Note = [AtomicU64; NOTE_WORDS];

/// Notes `sender`, a send of the task at `task` (never 0) whose
/// migrations are `migrations` as it starts, over whatever `note` held.
#[inline(always)]
pub fn write(note: &Note, task: u64, migrations: u64, sender: &Sender) {
    let [a, b, c, d] = sender.to_words();
    for (w, v) in note.iter().zip([task, migrations, a, b, c, d]) {
        w.store(v, Relaxed);
    }
}

/// What a CPU's note says to a task that hands a packet over on that CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The task's latest send, noted on this CPU, which it has not left
    /// since.
    Mine(Sender),
    /// A send of this task from before it last moved to another CPU: its
    /// current send's note, if any, is on another CPU.
    Moved,
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
    let sender = Sender::from_words(&[a, b, c, d].map(|w| w.load(Relaxed)));
    if sender.tid != tid {
        // A dead task's, whose address the current one got.
        return Found::Other;
    }
    if m.load(Relaxed) != migrations {
        return Found::Moved;
    }
    Found::Mine(sender)
}
