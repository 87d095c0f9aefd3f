// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of a datagram receive's latest packet: whose it is, and
//! when it is not.

use mace_core::cpuslot::{clear, contents, found, write, Found, Note};
use mace_core::entry::{LatestPending, Pending};
use std::sync::atomic::AtomicU64;

const TASK: u64 = 0xffff_8880_1234_5600;

/// A note that names no packet: all words 0, as a CPU's is when allocated.
fn empty_note() -> Note {
    std::array::from_fn(|_| AtomicU64::new(0))
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
    assert_eq!(found(&n, TASK, 41, 7), Found::Mine(p));
    assert_eq!(contents(&n), Some(p));
    clear(&n);
    assert_eq!(found(&n, TASK, 41, 7), Found::Other);
    assert_eq!(contents(&n), None);
    // The receive's next packet replaces it.
    let later = pending(41, 10, 6_000);
    write(&n, TASK, 7, &later);
    assert_eq!(found(&n, TASK, 41, 7), Found::Mine(later));
}

#[test]
fn a_task_that_moved_since_its_note_finds_it_moved() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 7, &p);
    // It moved away (and maybe back): the note is from before.
    assert_eq!(found(&n, TASK, 41, 8), Found::Moved(p));
    assert_eq!(found(&n, TASK, 41, 9), Found::Moved(p));
}

#[test]
fn another_tasks_note_or_none_is_not_mine_but_its_contents_are_kept() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 7, &p);
    // Another task, whatever its migrations: it counts the leftover.
    assert_eq!(found(&n, TASK + 0x1000, 41, 7), Found::Other);
    assert_eq!(contents(&n), Some(p));
    // A dead task's, whose address a new task got.
    assert_eq!(found(&n, TASK, 42, 7), Found::Other);
    // A CPU that never noted a packet: all zero, even for a task at 0.
    assert_eq!(found(&empty_note(), TASK, 41, 0), Found::Other);
    assert_eq!(found(&empty_note(), 0, 0, 0), Found::Other);
    assert_eq!(contents(&empty_note()), None);
}

#[test]
fn a_note_keeps_every_field_of_its_packet() {
    for (tid, pktid, t_rx) in [(1, 0, 1), (u32::MAX, u32::MAX, u64::MAX), (7, 1 << 20, 1 << 62)] {
        let mut p = pending(tid, pktid, t_rx);
        p.packet.end = t_rx.wrapping_add(3);
        let n = empty_note();
        write(&n, TASK, u64::MAX, &p);
        assert_eq!(found(&n, TASK, tid, u64::MAX), Found::Mine(p), "tid {tid}");
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
                    assert_eq!(found(n, task, tid, i), Found::Mine(p));
                    clear(n);
                }
            });
        }
    });
    for n in &notes {
        assert_eq!(contents(n), None);
    }
}
