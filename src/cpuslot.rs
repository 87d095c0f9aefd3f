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
//! moves to another CPU. Later on that CPU, the receive's return takes a
//! note that names its task ([`found`]), whether the task never left the
//! CPU since or moved away and back between its packet and its return
//! (preempted twice, on a kernel that preempts kernel code): either way
//! it is its packet, as it would be on the CPU it left ([`take_moved`]),
//! and the return reads no migrations. A note of another task is not
//! found. (A [`write`] that finds a note of its own task from before a
//! move does not take it for the same receive's earlier packet: its
//! caller counts it as lost. The migrations are there for it and for
//! [`take_moved`].)
//!
//! A task may move between its packet and its return (preempted there, on
//! a kernel that preempts kernel code). Its return then takes the note
//! from the CPU it left, which a hint names ([`crate::bufnote::Hints`], by
//! the task's address), and which that CPU's next receive may be writing
//! meanwhile: the two claim the note's first word, the task's address,
//! the writer by swapping a mark in ([`write`]), the task by swapping it
//! for 0 only if it still holds its address ([`take_moved`]), so that
//! exactly one of them gets the packet. A note of a task held up while
//! another task of the CPU took a packet, or one that its task's return
//! did not find, stays until the CPU's next receive takes a packet, and is
//! counted as lost then: a note loses what waits, never gives it to
//! another.
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
use core::sync::atomic::{
    AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

/// Words of a CPU's note: the task's address, its migrations, the
/// [`LatestPending`]'s, and last its CPU's number plus one (set when the
/// notes are allocated, [`crate::bufnote::set_cpu`], for the hints).
pub const NOTE_WORDS: usize = 3 + LATEST_PENDING_WORDS;

/// A CPU's note: its words, which that CPU's tasks write in task context
/// without leaving the CPU meanwhile, and which a task that left the CPU
/// may take ([`take_moved`]).
pub type Note = [AtomicU64; NOTE_WORDS];

/// The first word of a note that its CPU's writer is writing: no task's
/// address (a task is aligned), and not 0 (an empty note).
const WRITING: u64 = 1;

/// Notes `what`, of the task at `task` (never 0) whose migrations are
/// `migrations` now, in place of what `note` held, which it returns with
/// whether it was this task's latest on this CPU (the same task and
/// thread, with the same migrations: it has not left the CPU since).
/// Claims the note first, so that a task that moved away and takes its
/// packet from here ([`take_moved`]) gets it only if this writer does not.
#[inline(always)]
pub fn write(
    note: &Note,
    task: u64,
    migrations: u64,
    what: &LatestPending,
) -> Option<(LatestPending, bool)> {
    let [t, m, a, b, c, d, _cpu] = note;
    // Acquire: the words below are read and written after the claim.
    let held = t.swap(WRITING, Acquire);
    let old = if held == 0 || held == WRITING {
        None
    } else {
        let old = LatestPending::from_words(&[a, b, c, d].map(|w| w.load(Relaxed)));
        let mine = held == task && old.tid == what.tid && m.load(Relaxed) == migrations;
        Some((old, mine))
    };
    let [wa, wb, wc, wd] = what.to_words();
    for (w, v) in [m, a, b, c, d]
        .into_iter()
        .zip([migrations, wa, wb, wc, wd])
    {
        w.store(v, Relaxed);
    }
    // Release: a task that sees its address sees the words written here.
    t.store(task, Release);
    old
}

/// Empties `note`.
///
/// Only its task, on its CPU, empties a note that [`found`] gave it: no
/// other writer runs there meanwhile, and [`take_moved`] takes a note only
/// for its own task, which is running here.
#[inline(always)]
pub fn clear(note: &Note) {
    let [t, ..] = note;
    t.store(0, Relaxed);
}

/// Takes from `note`, another CPU's, the packet the task at `task`, thread
/// `tid`, noted there before it moved to the CPU it runs on now, where its
/// migrations are `migrations`: only if the note still holds it (its
/// address, its thread, fewer migrations), and only if that CPU's writer
/// did not claim the note first ([`write`]). Only the task itself takes
/// its note so, while it runs on another CPU: no writer puts its address
/// back into the note between the look and the claim.
#[inline(always)]
pub fn take_moved(note: &Note, task: u64, tid: u32, migrations: u64) -> Option<LatestPending> {
    let [t, m, a, b, c, d, _cpu] = note;
    // Acquire: the words below are those its writer wrote before it.
    if task == 0 || task == WRITING || t.load(Acquire) != task {
        return None;
    }
    let noted_at = m.load(Relaxed);
    let what = LatestPending::from_words(&[a, b, c, d].map(|w| w.load(Relaxed)));
    // A dead task's leftover, under an address this task got, stays for
    // the CPU's next writer to count.
    if what.tid != tid || noted_at >= migrations {
        return None;
    }
    // AcqRel: the words above were read before the claim; a writer that
    // claimed the note after it reads them after it too. The words may
    // have been torn by a writer meanwhile: then its mark is in the first
    // word, and the claim fails.
    t.compare_exchange(task, 0, AcqRel, Relaxed).ok()?;
    Some(what)
}

/// The packet `note` holds for the task at `task`, thread `tid`, if it
/// holds one of that task's; `None` if it is another task's, or empty.
///
/// Reads the task's address first, and the rest only if it is the task's.
/// The task's migrations are not read: a note of its own from before it
/// moved away and back is its packet too.
#[inline(always)]
pub fn found(note: &Note, task: u64, tid: u32) -> Option<LatestPending> {
    let [t, _m, a, b, c, d, _cpu] = note;
    let t = t.load(Relaxed);
    if t != task || t == 0 {
        return None;
    }
    let what = LatestPending::from_words(&[a, b, c, d].map(|w| w.load(Relaxed)));
    // A dead task's, whose address the current one got, is not found.
    (what.tid == tid).then_some(what)
}
