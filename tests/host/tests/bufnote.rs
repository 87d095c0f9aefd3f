// SPDX-License-Identifier: GPL-2.0

//! A CPU's note of the packet last stamped on it by its buffer: what a
//! writer moves out, what a reader takes, and that no stamp is lost or
//! found twice while readers on other threads take notes their writer
//! rewrites.

use mace_core::bufnote::{
    cpu, note_words, occupied, set_cpu, take, take_waiting, write, Hints, Noted, Stamp, Taken,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

const SKB: u64 = 0xffff_8880_0a0b_0c00;
const OTHER_SKB: u64 = 0xffff_8880_0a0b_1d00;

/// Words of a note of three words of value (a sent packet's).
const W3: usize = note_words(3);

/// A note as allocated: all words 0.
fn empty_note<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn stamp(fp: u64, a: u64, b: u64, c: u64) -> Stamp<3> {
    Stamp {
        fp,
        value: [a, b, c],
    }
}

/// The stamp a test derives from a buffer's address, so that a reader can
/// tell a torn read from a whole one.
fn stamp_of(addr: u64) -> Stamp<3> {
    stamp(addr ^ 0x5a5a, addr.wrapping_mul(3), addr >> 6, !addr)
}

#[test]
fn a_note_is_taken_once_by_its_buffer() {
    let n = empty_note::<W3>();
    let s = stamp(0x1234, 1_000, 7, 9);
    assert_eq!(
        write(&n, SKB, &s, |_, _| panic!("nothing to spill")),
        Some(Noted::Empty)
    );
    assert!(occupied(&n));
    // Another buffer's reader finds nothing, and leaves it.
    assert_eq!(take::<W3, 3>(&n, OTHER_SKB), Taken::Miss);
    assert_eq!(take(&n, SKB), Taken::Got(s));
    assert!(!occupied(&n));
    assert_eq!(take::<W3, 3>(&n, SKB), Taken::Miss);
}

#[test]
fn the_same_buffer_again_supersedes_its_earlier_stamp() {
    let n = empty_note::<W3>();
    let first = stamp(0x1234, 1_000, 7, 9);
    let again = stamp(0x9999, 2_000, 8, 9);
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
fn another_buffer_spills_the_stamp_before_it_is_written_over() {
    let n = empty_note::<W3>();
    let first = stamp(0x1234, 1_000, 7, 9);
    let second = stamp(0x9999, 2_000, 8, 9);
    write(&n, SKB, &first, |_, _| panic!("nothing to spill"));
    let mut spilled = None;
    let noted = write(&n, OTHER_SKB, &second, |addr, s| {
        spilled = Some((addr, *s));
    });
    assert_eq!(noted, Some(Noted::Spilled));
    assert_eq!(spilled, Some((SKB, first)));
    assert_eq!(take::<W3, 3>(&n, SKB), Taken::Miss);
    assert_eq!(take(&n, OTHER_SKB), Taken::Got(second));
}

#[test]
fn a_reader_sees_the_mark_while_the_writer_spills() {
    let n = empty_note::<W3>();
    write(&n, SKB, &stamp(1, 1, 1, 1), |_, _| {});
    write(&n, OTHER_SKB, &stamp(2, 2, 2, 2), |_, _| {
        // Inside the spill, the note is the writer's.
        assert_eq!(take::<W3, 3>(&n, SKB), Taken::Writing);
        assert_eq!(take::<W3, 3>(&n, OTHER_SKB), Taken::Writing);
        assert!(occupied(&n));
    });
    assert_eq!(take(&n, OTHER_SKB), Taken::Got(stamp(2, 2, 2, 2)));
}

#[test]
fn a_waiting_reader_gives_up_on_a_writer_that_holds_on() {
    let n = empty_note::<W3>();
    write(&n, SKB, &stamp(1, 1, 1, 1), |_, _| {});
    assert_eq!(
        take_waiting::<W3, 3>(&n, SKB, 4),
        Taken::Got(stamp(1, 1, 1, 1))
    );
    assert_eq!(take_waiting::<W3, 3>(&n, SKB, 4), Taken::Miss);
    write(&n, SKB, &stamp(1, 1, 1, 1), |_, _| {});
    write(&n, OTHER_SKB, &stamp(2, 2, 2, 2), |_, _| {
        // The writer holds the note for all of the looks: they end.
        assert_eq!(take_waiting::<W3, 3>(&n, SKB, 4), Taken::Writing);
        assert_eq!(take_waiting::<W3, 3>(&n, SKB, 0), Taken::Writing);
    });
    // Once it is done, the stamp it moved is not in the note.
    assert_eq!(take_waiting::<W3, 3>(&n, SKB, 4), Taken::Miss);
}

#[test]
fn a_note_taken_empty_is_written_as_empty() {
    let n = empty_note::<W3>();
    write(&n, SKB, &stamp(1, 1, 1, 1), |_, _| {});
    assert!(matches!(take::<W3, 3>(&n, SKB), Taken::Got(_)));
    assert_eq!(
        write(&n, OTHER_SKB, &stamp(2, 2, 2, 2), |_, _| panic!(
            "taken already"
        )),
        Some(Noted::Empty)
    );
}

#[test]
fn a_note_of_one_word_of_value_keeps_it() {
    let n = empty_note::<{ note_words(1) }>();
    let s = Stamp {
        fp: 77,
        value: [123_456],
    };
    assert_eq!(write(&n, SKB, &s, |_, _| {}), Some(Noted::Empty));
    assert_eq!(take(&n, SKB), Taken::Got(s));
}

#[test]
fn a_note_of_the_wrong_size_is_never_written() {
    // Three words of value need six words.
    let n = empty_note::<5>();
    assert_eq!(write(&n, SKB, &stamp(1, 1, 1, 1), |_, _| {}), None);
    assert!(!occupied(&n));
    assert_eq!(take::<5, 3>(&n, SKB), Taken::Miss);
}

#[test]
fn the_cpu_number_is_kept_apart_from_the_stamp() {
    let n = empty_note::<W3>();
    assert_eq!(cpu(&n), None);
    set_cpu(&n, 0);
    assert_eq!(cpu(&n), Some(0));
    write(&n, SKB, &stamp(5, 6, 7, u64::MAX), |_, _| {});
    assert_eq!(take(&n, SKB), Taken::Got(stamp(5, 6, 7, u64::MAX)));
    assert_eq!(cpu(&n), Some(0));
    set_cpu(&n, 41);
    assert_eq!(cpu(&n), Some(41));
    assert_eq!(W3, 6);
}

#[test]
fn hints_name_the_last_cpu_of_a_hash() {
    let slots = |n: usize| -> Box<[AtomicU64]> { (0..n).map(|_| AtomicU64::new(0)).collect() };
    let h = Hints::<_, 64>::new(slots(64)).unwrap();
    let n0 = empty_note::<W3>();
    set_cpu(&n0, 0);
    let n3 = empty_note::<W3>();
    set_cpu(&n3, 3);
    assert_eq!(h.get(SKB), None);
    h.set(SKB, &n0);
    assert_eq!(h.get(SKB), Some(0));
    h.set(SKB, &n3);
    assert_eq!(h.get(SKB), Some(3));
    // A note no CPU was marked on hints at none.
    h.set(SKB, &empty_note::<W3>());
    assert_eq!(h.get(SKB), None);
    assert!(Hints::<_, 48>::new(slots(48)).is_err());
    assert!(Hints::<_, 64>::new(slots(32)).is_err());
}

/// One writer notes buffers 1..=N in turn, spilling what is still noted;
/// readers on other threads take buffers as they see them. Every buffer
/// ends taken once, or spilled once, or in the note at the end, with its
/// own words.
#[test]
fn concurrent_readers_and_one_writer_lose_nothing_and_tear_nothing() {
    const N: u64 = 200_000;
    const READERS: usize = 3;
    let note = Arc::new(empty_note::<W3>());
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
                while !done.load(Ordering::Relaxed) {
                    // The latest buffer, or one just before (a reader late
                    // by one misses, which must be harmless).
                    let l = latest.load(Ordering::Relaxed);
                    let addr = (l.saturating_sub(r as u64 % 2)) << 6;
                    if addr == 0 {
                        continue;
                    }
                    match take::<W3, 3>(&note, addr) {
                        Taken::Got(s) => {
                            assert_eq!(s, stamp_of(addr), "a torn note");
                            got.push(addr);
                        }
                        Taken::Writing | Taken::Miss => {}
                    }
                }
                got
            })
        })
        .collect();
    let mut superseded = 0u64;
    for i in 1..=N {
        let addr = i << 6;
        let sp = Arc::clone(&spilled);
        let noted = write(&note, addr, &stamp_of(addr), move |a, s| {
            assert_eq!(*s, stamp_of(a), "a torn spill");
            sp.lock().unwrap().push(a);
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
        let got = r.join().unwrap();
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
        if let Taken::Got(s) = take::<W3, 3>(&note, i << 6) {
            assert_eq!(s, stamp_of(i << 6));
            seen[i as usize] += 1;
        }
    }
    assert_eq!(superseded, 0);
    assert!(taken > 0, "the readers took no note");
    for (i, n) in seen.iter().enumerate().skip(1) {
        assert_eq!(*n, 1, "buffer {i} was accounted for {n} times");
    }
}
