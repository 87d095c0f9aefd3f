//! Tests of the bounded FIFO probes queue deferred work in.

use mace_core::fifo::{fifo_slot, Fifo, FifoSlot};
use mace_core::table::BucketLock;
use std::sync::{Arc, Mutex, MutexGuard};

/// A plain mutex as the FIFO's lock.
struct Lock(Mutex<()>);

impl BucketLock for Lock {
    type Guard<'a> = MutexGuard<'a, ()>;
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap()
    }
}

fn fifo(n: usize) -> Fifo<Vec<FifoSlot<2>>, Lock, 2> {
    Fifo::new((0..n).map(|_| fifo_slot()).collect(), Lock(Mutex::new(())))
}

#[test]
fn first_in_first_out_and_bounded() {
    let f = fifo(3);
    assert_eq!(f.len(), 0);
    assert_eq!(f.front(), None);
    for i in 1..=3 {
        assert!(f.push(&[i, i * 10]));
    }
    assert!(!f.push(&[4, 40]), "full: refused");
    assert_eq!(f.len(), 3);
    assert_eq!(f.front(), Some([1, 10]));
    assert_eq!(f.pop_if(|_| true), Some([1, 10]));
    assert!(f.push(&[4, 40]), "room again, across the wrap");
    let mut out = Vec::new();
    while let Some(r) = f.pop_if(|_| true) {
        out.push(r[0]);
    }
    assert_eq!(out, vec![2, 3, 4]);
    assert_eq!(f.len(), 0);
}

#[test]
fn pop_if_leaves_a_record_that_is_not_ready() {
    let f = fifo(4);
    f.push(&[100, 1]);
    f.push(&[200, 2]);
    // Ready when its time (word 0) has come; the clock is at 150.
    let ready = |r: &[u64; 2]| r[0] <= 150;
    assert_eq!(f.pop_if(ready), Some([100, 1]));
    assert_eq!(f.pop_if(ready), None);
    assert_eq!(f.front(), Some([200, 2]));
    assert_eq!(f.len(), 1);
}

#[test]
fn update_each_changes_records_in_place_oldest_first() {
    let f = fifo(3);
    f.push(&[1, 0]);
    f.push(&[2, 0]);
    f.pop_if(|_| true);
    f.push(&[3, 0]);
    f.push(&[4, 0]); // wraps around the end of the slots
    let mut order = Vec::new();
    f.update_each(|r| {
        order.push(r[0]);
        if r[0] != 3 {
            r[1] = r[0] * 100;
        }
    });
    assert_eq!(order, vec![2, 3, 4]);
    let mut out = Vec::new();
    while let Some(r) = f.pop_if(|_| true) {
        out.push(r);
    }
    assert_eq!(out, vec![[2, 200], [3, 0], [4, 400]]);
    let mut calls = 0;
    f.update_each(|_| calls += 1);
    assert_eq!(calls, 0, "an empty FIFO has nothing to update");
}

#[test]
fn a_fifo_without_slots_refuses_everything() {
    let f = fifo(0);
    assert!(!f.push(&[1, 1]));
    assert_eq!(f.pop_if(|_| true), None);
}

#[test]
fn concurrent_pushers_and_a_popper_lose_nothing() {
    let f = Arc::new(fifo(64));
    let pushers: Vec<_> = (0..3u64)
        .map(|t| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let mut refused = 0u64;
                for i in 0..20_000u64 {
                    if !f.push(&[t, i]) {
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    let popper = {
        let f = Arc::clone(&f);
        std::thread::spawn(move || {
            let mut seen = [Vec::new(), Vec::new(), Vec::new()];
            let mut idle = 0;
            while idle < 1_000_000 {
                match f.pop_if(|_| true) {
                    Some([t, i]) => {
                        seen[t as usize].push(i);
                        idle = 0;
                    }
                    None => idle += 1,
                }
            }
            seen
        })
    };
    let refused: u64 = pushers.into_iter().map(|p| p.join().unwrap()).sum();
    let seen = popper.join().unwrap();
    let popped: usize = seen.iter().map(Vec::len).sum();
    assert_eq!(popped as u64 + refused + f.len() as u64, 60_000);
    for s in &seen {
        // Each pusher's records come out in the order it pushed them.
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn concurrent_updates_pushes_and_pops_keep_every_record_whole() {
    // Records are (id, id * 3); updaters mark word 1 as id * 3 + 1. A
    // popped record must be one that was pushed, marked or not: never a
    // mix of two records.
    let f = Arc::new(fifo(64));
    let pusher = {
        let f = Arc::clone(&f);
        std::thread::spawn(move || {
            let mut pushed = 0u64;
            let mut id = 1u64;
            while id <= 20_000 {
                if f.push(&[id, id * 3]) {
                    pushed += 1;
                    id += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            pushed
        })
    };
    let updaters: Vec<_> = (0..2)
        .map(|_| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    f.update_each(|r| {
                        if r[1] == r[0] * 3 {
                            r[1] = r[0] * 3 + 1;
                        }
                    });
                }
            })
        })
        .collect();
    let mut popped = Vec::new();
    while popped.len() < 20_000 {
        match f.pop_if(|_| true) {
            Some(r) => popped.push(r),
            None => std::thread::yield_now(),
        }
    }
    assert_eq!(pusher.join().unwrap(), 20_000);
    for u in updaters {
        u.join().unwrap();
    }
    for (i, r) in popped.iter().enumerate() {
        assert_eq!(r[0], i as u64 + 1, "first in, first out");
        assert!(
            r[1] == r[0] * 3 || r[1] == r[0] * 3 + 1,
            "record {r:?} is whole"
        );
    }
}
