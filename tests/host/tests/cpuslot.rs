// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of a datagram receive's latest packet: whose it is, and
//! when it is not.

use mace_core::cpuslot::{clear, found, take_moved, write, Note};
use mace_core::entry::{LatestPending, Pending, Words};
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Release},
};

const TASK: u64 = 0xffff_8880_1234_5600;

/// A note that names no packet: all words 0, as a CPU's is when allocated.
fn empty_note() -> Note {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The packet `note` holds, whoever's it is, if it holds one: its words
/// after the task's address and migrations.
fn contents(note: &Note) -> Option<LatestPending> {
    if note[0].load(Acquire) == 0 {
        return None;
    }
    Some(LatestPending::from_words(
        &[2, 3, 4, 5].map(|i| note[i].load(Acquire)),
    ))
}

fn pending(tid: u32, pktid: u32, t_rx: u64) -> LatestPending {
    LatestPending {
        packet: Pending {
            t_rx,
            pktid,
            end: 0,
        },
        ns: 0xffff_8880_5555_0000,
        tid,
    }
}

#[test]
fn a_task_that_stayed_finds_its_packet_and_empties_the_note() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 7, &p);
    assert_eq!(found(&n, TASK, 41), Some(p));
    assert_eq!(contents(&n), Some(p));
    clear(&n);
    assert_eq!(found(&n, TASK, 41), None);
    assert_eq!(contents(&n), None);
    // The receive's next packet replaces it.
    let later = pending(41, 10, 6_000);
    write(&n, TASK, 7, &later);
    assert_eq!(found(&n, TASK, 41), Some(later));
}

#[test]
fn a_task_that_moved_away_and_back_since_its_note_finds_it() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 7, &p);
    // It moved away and back (its migrations grew): the note is still its
    // packet, which its return takes as it would on the CPU it left.
    assert_eq!(take_moved(&n, TASK, 41, 9), Some(p));
    write(&n, TASK, 7, &p);
    assert_eq!(found(&n, TASK, 41), Some(p));
    clear(&n);
    assert_eq!(found(&n, TASK, 41), None);
}

#[test]
fn another_tasks_note_or_none_is_not_mine_but_its_contents_are_kept() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 7, &p);
    // Another task: it counts the leftover.
    assert_eq!(found(&n, TASK + 0x1000, 41), None);
    assert_eq!(contents(&n), Some(p));
    // A dead task's, whose address a new task got.
    assert_eq!(found(&n, TASK, 42), None);
    // A CPU that never noted a packet: all zero, even for a task at 0.
    assert_eq!(found(&empty_note(), TASK, 41), None);
    assert_eq!(found(&empty_note(), 0, 0), None);
    assert_eq!(contents(&empty_note()), None);
}

#[test]
fn a_note_keeps_every_field_of_its_packet() {
    for (tid, pktid, t_rx) in [
        (1, 0, 1),
        (u32::MAX, u32::MAX, u64::MAX),
        (7, 1 << 20, 1 << 62),
    ] {
        let mut p = pending(tid, pktid, t_rx);
        p.packet.end = t_rx.wrapping_add(3);
        let n = empty_note();
        write(&n, TASK, u64::MAX, &p);
        assert_eq!(found(&n, TASK, tid), Some(p), "tid {tid}");
    }
}

/// Notes are per CPU: each thread here is a CPU whose task notes the
/// packets it takes and finds them again, while the others do the same.
#[test]
fn notes_of_different_cpus_do_not_mix() {
    let notes: Vec<Note> = (0..4).map(|_| empty_note()).collect();
    std::thread::scope(|sc| {
        for (cpu, n) in notes.iter().enumerate() {
            sc.spawn(move || {
                let task = TASK + 0x1000 * cpu as u64;
                let tid = cpu as u32 + 1;
                for i in 0..100_000u64 {
                    let p = pending(tid, i as u32, i + 1);
                    write(n, task, i, &p);
                    assert_eq!(found(n, task, tid), Some(p));
                    clear(n);
                }
            });
        }
    });
    for n in &notes {
        assert_eq!(contents(n), None);
    }
}

#[test]
fn a_write_returns_what_the_note_held_and_whether_it_was_the_writers() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    assert_eq!(write(&n, TASK, 7, &p), None);
    // The same task, same CPU, no move since: its receive's earlier packet.
    let q = pending(41, 10, 5_100);
    assert_eq!(write(&n, TASK, 7, &q), Some((p, true)));
    // The same task after a move away and back: not known to be its latest.
    let r = pending(41, 11, 5_200);
    assert_eq!(write(&n, TASK, 8, &r), Some((q, false)));
    // Another task's leftover, or a dead task's under the same address.
    let other = pending(42, 1, 5_300);
    assert_eq!(write(&n, TASK + 0x1000, 8, &other), Some((r, false)));
    assert_eq!(
        write(&n, TASK + 0x1000, 8, &pending(43, 2, 5_400)),
        Some((other, false))
    );
    // Emptied by its task's return: nothing to count.
    clear(&n);
    assert_eq!(write(&n, TASK, 8, &p), None);
}

#[test]
fn a_task_that_moved_takes_its_packet_from_the_cpu_it_left() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    let _ = write(&n, TASK, 7, &p);
    // Not moved since (the caller asks another CPU's note only after a
    // move, but a note written at these migrations is not from before one).
    assert_eq!(take_moved(&n, TASK, 41, 7), None);
    // Another task, or a dead task's leftover under this address: kept.
    assert_eq!(take_moved(&n, TASK + 0x1000, 41, 8), None);
    assert_eq!(take_moved(&n, TASK, 42, 8), None);
    assert_eq!(contents(&n), Some(p));
    // Moved once or more since: taken, once.
    assert_eq!(take_moved(&n, TASK, 41, 9), Some(p));
    assert_eq!(take_moved(&n, TASK, 41, 9), None);
    assert_eq!(contents(&n), None);
    // The CPU's next writer finds the note empty: nothing counted lost.
    assert_eq!(write(&n, TASK + 0x1000, 3, &pending(42, 1, 6_000)), None);
    // Never for a task at 0 or an empty note.
    assert_eq!(take_moved(&empty_note(), 0, 0, 1), None);
}

/// A task that moved away takes its packet from the note of the CPU it
/// left while that CPU's next task writes its own there: each packet goes
/// to exactly one of the two, whole (the writer counts what it found as
/// lost, the moved task reports what it took). As in the kernel, the
/// moved task notes no packet on that CPU while it takes one from there:
/// it is running elsewhere.
#[test]
fn a_moved_task_and_the_cpus_writer_never_both_get_a_packet() {
    const MOVER: u64 = TASK;
    const OTHER: u64 = TASK + 0x1000;
    const ROUNDS: u32 = 20_000;
    // A packet whose words agree with each other: a torn read shows.
    let packet = |tid: u32, i: u32| pending(tid, i, u64::from(i) << 8 | u64::from(tid));
    let whole =
        |p: &LatestPending| p.packet.t_rx == u64::from(p.packet.pktid) << 8 | u64::from(p.tid);
    let n = empty_note();
    // Rounds whose packet the mover noted (it moved away since) and rounds
    // whose take it finished, each as the round's number plus one.
    let (noted, done) = (AtomicU32::new(0), AtomicU32::new(0));
    let (by_writer, by_mover) = std::thread::scope(|sc| {
        let mover = sc.spawn(|| {
            let mut taken = Vec::new();
            for i in 1..=ROUNDS {
                while noted.load(Acquire) != i {
                    std::hint::spin_loop();
                }
                // Its return, on the CPU it moved to, a varying while later.
                for _ in 0..i.wrapping_mul(7919) % 512 {
                    std::hint::spin_loop();
                }
                if let Some(p) = take_moved(&n, MOVER, 41, 6) {
                    assert!(
                        p.tid == 41 && p.packet.pktid == i - 1 && whole(&p),
                        "torn or wrong: {p:?}"
                    );
                    taken.push(p.packet.pktid);
                }
                done.store(i, Release);
            }
            taken
        });
        // The CPU it left: the mover's packet, as it noted it before it
        // moved, then another task's, which finds it if it is still there.
        let mut found = Vec::new();
        for i in 0..ROUNDS {
            while done.load(Acquire) != i {
                std::hint::spin_loop();
            }
            let _ = write(&n, MOVER, 5, &packet(41, i));
            noted.store(i + 1, Release);
            for _ in 0..i.wrapping_mul(104_729) % 512 {
                std::hint::spin_loop();
            }
            if let Some((old, mine)) = write(&n, OTHER, 9, &packet(42, i)) {
                assert!(
                    old.tid == 41 && old.packet.pktid == i && whole(&old) && !mine,
                    "torn or wrong: {old:?}"
                );
                found.push(old.packet.pktid);
            }
            clear(&n);
        }
        (found, mover.join().unwrap())
    });
    let mut all: Vec<u32> = by_writer.iter().chain(&by_mover).copied().collect();
    all.sort_unstable();
    let counts = format!(
        "{} found by the writer, {} taken by the mover",
        by_writer.len(),
        by_mover.len()
    );
    assert!(all.iter().copied().eq(0..ROUNDS), "{counts}");
    // Both happened, else the race was not run.
    assert!(!by_writer.is_empty() && !by_mover.is_empty(), "{counts}");
    println!("{counts}");
}
