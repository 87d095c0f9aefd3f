// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of its latest send: whose it is, and when it is not.

use mace_core::cpuslot::{clear, contents, found, write, Found, Note};
use mace_core::entry::{LatestPending, Pending, SendCall, Sender};
use std::sync::atomic::AtomicU64;

/// A note that names no send: all words 0, as a CPU's is when allocated.
fn empty_note() -> Note {
    std::array::from_fn(|_| AtomicU64::new(0))
}

const TASK: u64 = 0xffff_8880_1234_5600;

fn sender(tid: u32, fd: u32, start: u64) -> Sender {
    Sender {
        tid,
        fd,
        call: SendCall {
            start,
            sock: 0xffff_8880_abcd_0000,
            tcp_write_seq: None,
        },
    }
}

fn noted(task: u64, migrations: u64, s: &Sender) -> Note {
    let n = empty_note();
    write(&n, task, migrations, s);
    n
}

#[test]
fn a_task_that_stayed_finds_its_latest_send() {
    let s = sender(41, 3, 1_000_000);
    let n = noted(TASK, 7, &s);
    assert_eq!(found::<Sender>(&n, TASK, 41, 7), Found::Mine(s));
    // The next send on the CPU replaces it.
    let later = sender(41, 3, 2_000_000);
    write(&n, TASK, 7, &later);
    assert_eq!(found::<Sender>(&n, TASK, 41, 7), Found::Mine(later));
}

#[test]
fn a_task_that_moved_since_its_note_finds_none() {
    let n = noted(TASK, 7, &sender(41, 3, 1_000_000));
    // It moved away (and maybe back): its current send was noted elsewhere.
    assert_eq!(found::<Sender>(&n, TASK, 41, 8), Found::Moved);
    assert_eq!(found::<Sender>(&n, TASK, 41, 9), Found::Moved);
}

#[test]
fn another_tasks_note_or_none_is_not_mine() {
    let n = noted(TASK, 7, &sender(41, 3, 1_000_000));
    // Another task, whatever its migrations.
    assert_eq!(found::<Sender>(&n, TASK + 0x1000, 41, 7), Found::Other);
    // A dead task's, whose address a new task got.
    assert_eq!(found::<Sender>(&n, TASK, 42, 7), Found::Other);
    // Another task's send replaces it.
    write(&n, TASK + 0x1000, 2, &sender(50, 4, 5));
    assert_eq!(found::<Sender>(&n, TASK, 41, 7), Found::Other);
    // A CPU that never noted a send: all zero, even for a task at 0.
    assert_eq!(found::<Sender>(&empty_note(), TASK, 41, 0), Found::Other);
    assert_eq!(found::<Sender>(&empty_note(), 0, 0, 0), Found::Other);
}

#[test]
fn a_note_keeps_every_field_of_its_send() {
    for (tid, fd, start) in [
        (1, 0, 1),
        (u32::MAX, u32::MAX, u64::MAX),
        (7, 1 << 20, 1 << 62),
    ] {
        let s = sender(tid, fd, start);
        let n = noted(TASK, u64::MAX, &s);
        assert_eq!(found::<Sender>(&n, TASK, tid, u64::MAX), Found::Mine(s), "tid {tid}");
    }
}

/// Notes are per CPU: each thread here is a CPU whose tasks note their
/// sends and find them again, while the others do the same on theirs.
#[test]
fn notes_of_different_cpus_do_not_mix() {
    let notes: Vec<Note> = (0..4).map(|_| empty_note()).collect();
    std::thread::scope(|sc| {
        for (cpu, n) in notes.iter().enumerate() {
            sc.spawn(move || {
                let task = TASK + 0x1000 * cpu as u64;
                for i in 0..100_000u64 {
                    let s = sender(cpu as u32 + 1, 3, i + 1);
                    write(n, task, i, &s);
                    assert_eq!(found::<Sender>(n, task, cpu as u32 + 1, i), Found::Mine(s));
                }
            });
        }
    });
    for (cpu, n) in notes.iter().enumerate() {
        let task = TASK + 0x1000 * cpu as u64;
        assert_eq!(
            found::<Sender>(n, task, cpu as u32 + 1, 99_999),
            Found::Mine(sender(cpu as u32 + 1, 3, 100_000))
        );
    }
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

/// A receive's note: taken by its task where its receive returns, on the
/// same CPU; a leftover's contents, whoever's, for its count.
#[test]
fn a_received_packet_is_found_by_its_task_and_cleared() {
    let n = empty_note();
    let p = pending(41, 9, 5_000);
    write(&n, TASK, 3, &p);
    assert_eq!(found::<LatestPending>(&n, TASK + 8, 41, 3), Found::Other);
    assert_eq!(found::<LatestPending>(&n, TASK, 41, 4), Found::Moved);
    assert_eq!(found::<LatestPending>(&n, TASK, 41, 3), Found::Mine(p));
    assert_eq!(contents::<LatestPending>(&n), Some(p));
    clear(&n);
    assert_eq!(found::<LatestPending>(&n, TASK, 41, 3), Found::Other);
    assert_eq!(contents::<LatestPending>(&n), None);
    // A sender's note and a receive's are told apart by their slots, not
    // their words: the thread id is where each kind keeps it.
    write(&n, TASK, 3, &sender(41, 3, 7));
    assert_eq!(found::<Sender>(&n, TASK, 41, 3), Found::Mine(sender(41, 3, 7)));
}
