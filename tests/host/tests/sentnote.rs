// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the packet last handed over on it: what a writer moves
//! out, what a reader takes, and that no packet is lost or found twice
//! while readers on other threads take notes their writer rewrites.

use mace_core::entry::Egress;
use mace_core::sentnote::{
    cpu, occupied, set_cpu, take, write, Hints, Noted, SentNote, Taken, SENT_NOTE_WORDS,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

const SKB: u64 = 0xffff_8880_0a0b_0c00;
const OTHER_SKB: u64 = 0xffff_8880_0a0b_1d00;

/// A note as allocated: all words 0.
fn empty_note() -> SentNote {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn egress(start: u64, pktid: u32, fp: u64) -> Egress {
    Egress {
        start,
        ns: 0xffff_8880_7777_0000,
        pktid,
        fp,
    }
}

/// The entry a test derives from a buffer's address, so that a reader can
/// tell a torn read from a whole one.
fn entry_of(addr: u64) -> Egress {
    egress(addr.wrapping_mul(3), (addr >> 6) as u32, addr ^ 0x5a5a)
}

#[test]
fn a_note_is_taken_once_by_its_buffer() {
    let n = empty_note();
    let e = egress(1_000, 7, 0x1234);
    assert_eq!(
        write(&n, SKB, &e, |_, _| panic!("nothing to spill")),
        Some(Noted::Empty)
    );
    assert!(occupied(&n));
    // Another buffer's transmission finds nothing, and leaves it.
    assert_eq!(take(&n, OTHER_SKB), Taken::Miss);
    assert_eq!(take(&n, SKB), Taken::Got(e));
    assert!(!occupied(&n));
    assert_eq!(take(&n, SKB), Taken::Miss);
}

#[test]
fn the_same_buffer_again_supersedes_its_earlier_packet() {
    let n = empty_note();
    let first = egress(1_000, 7, 0x1234);
    let again = egress(2_000, 8, 0x9999);
    write(&n, SKB, &first, |_, _| panic!("nothing to spill"));
    assert_eq!(
        write(&n, SKB, &again, |_, _| panic!(
            "the same buffer is not spilled"
        )),
        Some(Noted::Superseded(first))
    );
    assert_eq!(take(&n, SKB), Taken::Got(again));
}

#[test]
fn another_buffer_spills_the_packet_before_it_is_written_over() {
    let n = empty_note();
    let first = egress(1_000, 7, 0x1234);
    let second = egress(2_000, 8, 0x9999);
    write(&n, SKB, &first, |_, _| panic!("nothing to spill"));
    let mut spilled = None;
    let noted = write(&n, OTHER_SKB, &second, |addr, e| {
        // The note is marked while the packet moves: a reader waits.
        spilled = Some((addr, *e));
    });
    assert_eq!(noted, Some(Noted::Spilled));
    assert_eq!(spilled, Some((SKB, first)));
    assert_eq!(take(&n, SKB), Taken::Miss);
    assert_eq!(take(&n, OTHER_SKB), Taken::Got(second));
}

#[test]
fn a_reader_sees_the_mark_while_the_writer_spills() {
    let n = empty_note();
    write(&n, SKB, &egress(1, 1, 1), |_, _| {});
    write(&n, OTHER_SKB, &egress(2, 2, 2), |_, _| {
        // Inside the spill, the note is the writer's.
        assert_eq!(take(&n, SKB), Taken::Writing);
        assert_eq!(take(&n, OTHER_SKB), Taken::Writing);
        assert!(occupied(&n));
    });
    assert_eq!(take(&n, OTHER_SKB), Taken::Got(egress(2, 2, 2)));
}

#[test]
fn a_note_taken_empty_is_written_as_empty() {
    let n = empty_note();
    write(&n, SKB, &egress(1, 1, 1), |_, _| {});
    assert!(matches!(take(&n, SKB), Taken::Got(_)));
    assert_eq!(
        write(&n, OTHER_SKB, &egress(2, 2, 2), |_, _| panic!(
            "taken already"
        )),
        Some(Noted::Empty)
    );
}

#[test]
fn the_cpu_number_is_kept_apart_from_the_packet() {
    let n = empty_note();
    assert_eq!(cpu(&n), None);
    set_cpu(&n, 0);
    assert_eq!(cpu(&n), Some(0));
    write(&n, SKB, &egress(5, 6, 7), |_, _| {});
    assert_eq!(take(&n, SKB), Taken::Got(egress(5, 6, 7)));
    assert_eq!(cpu(&n), Some(0));
    set_cpu(&n, 41);
    assert_eq!(cpu(&n), Some(41));
    assert_eq!(SENT_NOTE_WORDS, 6);
}

#[test]
fn hints_name_the_last_cpu_of_a_hash() {
    let slots = |n: usize| -> Box<[AtomicU64]> { (0..n).map(|_| AtomicU64::new(0)).collect() };
    let h = Hints::<_, 64>::new(slots(64)).unwrap();
    let n0 = empty_note();
    set_cpu(&n0, 0);
    let n3 = empty_note();
    set_cpu(&n3, 3);
    assert_eq!(h.get(SKB), None);
    h.set(SKB, &n0);
    assert_eq!(h.get(SKB), Some(0));
    h.set(SKB, &n3);
    assert_eq!(h.get(SKB), Some(3));
    // A note no CPU was marked on hints at none.
    h.set(SKB, &empty_note());
    assert_eq!(h.get(SKB), None);
    assert!(Hints::<_, 48>::new(slots(48)).is_err());
    assert!(Hints::<_, 64>::new(slots(32)).is_err());
}

/// One writer notes buffers 1..=N in turn, spilling what is still noted;
/// readers on other threads take buffers as they see them. Every buffer
/// ends taken once, or spilled once, or in the note at the end, with
/// its own words.
#[test]
fn concurrent_readers_and_one_writer_lose_nothing_and_tear_nothing() {
    const N: u64 = 200_000;
    const READERS: usize = 3;
    let note = Arc::new(empty_note());
    let done = Arc::new(AtomicBool::new(false));
    let spilled = Arc::new(Mutex::new(Vec::new()));
    let latest = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let note = Arc::clone(&note);
            let done = Arc::clone(&done);
            let latest = Arc::clone(&latest);
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut writing = 0u64;
                while !done.load(Ordering::Relaxed) {
                    // The latest buffer, or one just before (a reader late
                    // by one misses, which must be harmless).
                    let l = latest.load(Ordering::Relaxed);
                    let addr = (l.saturating_sub(r as u64 % 2)) << 6;
                    if addr == 0 {
                        continue;
                    }
                    match take(&note, addr) {
                        Taken::Got(e) => {
                            assert_eq!(e, entry_of(addr), "a torn note");
                            got.push(addr);
                        }
                        Taken::Writing => writing += 1,
                        Taken::Miss => {}
                    }
                }
                (got, writing)
            })
        })
        .collect();
    let mut superseded = 0u64;
    for i in 1..=N {
        let addr = i << 6;
        let s = Arc::clone(&spilled);
        let noted = write(&note, addr, &entry_of(addr), move |a, e| {
            assert_eq!(*e, entry_of(a), "a torn spill");
            s.lock().unwrap().push(a);
        });
        match noted {
            Some(Noted::Empty) | Some(Noted::Spilled) => {}
            Some(Noted::Superseded(_)) => superseded += 1,
            None => panic!("one writer always claims its note"),
        }
        latest.store(i, Ordering::Relaxed);
    }
    done.store(true, Ordering::Relaxed);
    let mut seen = vec![0u8; N as usize + 1];
    let mut taken = 0usize;
    for r in readers {
        let (got, _writing) = r.join().unwrap();
        taken += got.len();
        for a in got {
            seen[(a >> 6) as usize] += 1;
        }
    }
    for a in spilled.lock().unwrap().iter() {
        seen[(a >> 6) as usize] += 1;
    }
    // What the note holds at the end.
    for i in 1..=N {
        if let Taken::Got(e) = take(&note, i << 6) {
            assert_eq!(e, entry_of(i << 6));
            seen[i as usize] += 1;
        }
    }
    assert_eq!(superseded, 0);
    assert!(taken > 0, "the readers took no note");
    for (i, n) in seen.iter().enumerate().skip(1) {
        assert_eq!(*n, 1, "buffer {i} was accounted for {n} times");
    }
}
