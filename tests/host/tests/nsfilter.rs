//! Tests of the probes' first filter: the namespace bit mask.

use mace_core::nsfilter::{bit, NsCounts, NsMask, BITS};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Addresses as `struct net`s get them: slab objects of a few KB.
fn net_addr(i: u64) -> u64 {
    0xffff_8880_0400_0000 + i * 0x1280
}

/// Two addresses of distinct namespaces on one bit.
fn same_bit_pair() -> (u64, u64) {
    let a = net_addr(0);
    let b = (1..10_000)
        .map(net_addr)
        .find(|&x| bit(x) == bit(a))
        .expect("64 bits: some address shares one");
    (a, b)
}

#[test]
fn an_empty_mask_lets_nothing_through() {
    let mask = NsMask::new();
    assert!((0..1000).map(net_addr).all(|a| !mask.may_capture(a)));
}

#[test]
fn a_counted_namespace_passes_until_it_is_removed() {
    let (mask, mut counts) = (NsMask::new(), NsCounts::new());
    let a = net_addr(7);
    counts.add(&mask, a);
    assert!(mask.may_capture(a));
    // Every namespace on another bit is turned away.
    for x in (0..1000).map(net_addr).filter(|&x| bit(x) != bit(a)) {
        assert!(!mask.may_capture(x), "{x:#x}");
    }
    assert!(counts.remove(&mask, a));
    assert!(!mask.may_capture(a));
}

#[test]
fn a_shared_bit_stays_set_while_one_namespace_on_it_is_counted() {
    let (mask, mut counts) = (NsMask::new(), NsCounts::new());
    let (a, b) = same_bit_pair();
    counts.add(&mask, a);
    counts.add(&mask, b);
    assert!(counts.remove(&mask, a));
    assert!(mask.may_capture(b), "b is still counted");
    // The mask decides nothing for a on its own: a shares b's bit.
    assert!(mask.may_capture(a));
    assert!(counts.remove(&mask, b));
    assert!(!mask.may_capture(a) && !mask.may_capture(b));
}

#[test]
fn removing_what_was_never_counted_changes_nothing() {
    let (mask, mut counts) = (NsMask::new(), NsCounts::new());
    let a = net_addr(3);
    assert!(!counts.remove(&mask, a));
    let (c, d) = same_bit_pair();
    counts.add(&mask, c);
    // d shares c's bit: its removal is taken as c's (the counts cannot tell
    // them apart), which the caller's bookkeeping rules out; the next
    // removal finds nothing.
    assert!(counts.remove(&mask, d));
    assert!(!counts.remove(&mask, c));
    assert!(!mask.may_capture(c));
}

#[test]
fn slab_spaced_addresses_spread_over_the_bits() {
    // Namespaces one after another in a slab: they must not crowd a few
    // bits, or one capturing namespace would let many others through.
    for stride in [0x1000u64, 0x1280, 0x1300, 0x2000, 0x4000] {
        let bits: HashSet<u32> = (0..64)
            .map(|i| bit(0xffff_8880_1000_0000 + i * stride))
            .collect();
        assert!(bits.len() >= 32, "stride {stride:#x}: {} bits", bits.len());
        assert!(bits.iter().all(|&b| (b as usize) < BITS));
    }
}

#[test]
fn readers_never_miss_a_counted_namespace_while_others_come_and_go() {
    let mask = Arc::new(NsMask::new());
    let counts = Arc::new(Mutex::new(NsCounts::new()));
    let (a, b) = same_bit_pair();
    counts.lock().unwrap().add(&mask, a);
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (mask, stop, checks) = (mask.clone(), stop.clone(), checks.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(mask.may_capture(a), "a counted namespace was turned away");
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Writers, serialized by the lock: namespaces on every bit, b on a's
    // among them, are counted and removed over and over.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (mask, counts) = (mask.clone(), counts.clone());
            thread::spawn(move || {
                for round in 0..20_000u64 {
                    let x = if round % 7 == 0 {
                        b
                    } else {
                        net_addr(100 + w * 1000 + round % 500)
                    };
                    counts.lock().unwrap().add(&mask, x);
                    assert!(counts.lock().unwrap().remove(&mask, x));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 1000);
    // Only a is left: every other bit is clear again.
    let mut counts = counts.lock().unwrap();
    assert!(counts.remove(&mask, a));
    assert!((0..5000).map(net_addr).all(|x| !mask.may_capture(x)));
}
