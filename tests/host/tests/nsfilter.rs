//! Tests of the probes' first filter: a word per slot, the state's tag of
//! a namespace alone on its slot.

use mace_core::nsfilter::{slot_of, NsCounts, NsFilter, EMPTY, SHARED, SLOTS};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Addresses as `struct net`s get them: slab objects of a few KB.
fn net_addr(i: u64) -> u64 {
    0xffff_8880_0400_0000 + i * 0x1280
}

/// A tag for the namespace at `addr`, as its state's address would be:
/// aligned, never `EMPTY` or `SHARED`.
fn tag(addr: u64) -> usize {
    (addr as usize).wrapping_add(0x10_0000) & !7
}

/// What a probe decides for the namespace at `addr`: `Some(true)` its
/// state was found by its tag, `Some(false)` its state must be asked,
/// `None` it is turned away.
fn decide(f: &NsFilter, addr: u64) -> Option<bool> {
    match f.word(addr) {
        EMPTY => None,
        SHARED => Some(false),
        t if t == tag(addr) => Some(true),
        _ => None,
    }
}

/// Two addresses of distinct namespaces on one slot.
fn same_slot_pair() -> (u64, u64) {
    let a = net_addr(0);
    let b = (1..10_000)
        .map(net_addr)
        .find(|&x| slot_of(x) == slot_of(a))
        .expect("64 slots: some address shares one");
    (a, b)
}

#[test]
fn an_empty_filter_lets_nothing_through() {
    let f = NsFilter::new();
    assert!((0..1000).map(net_addr).all(|a| decide(&f, a).is_none()));
}

#[test]
fn a_counted_namespace_is_found_by_its_tag_until_it_is_removed() {
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let a = net_addr(7);
    counts.add(&f, a, tag(a));
    assert_eq!(decide(&f, a), Some(true));
    // Every other namespace is turned away, on its slot or another: the
    // tag is not theirs.
    for x in (0..1000).map(net_addr).filter(|&x| x != a) {
        assert_eq!(decide(&f, x), None, "{x:#x}");
    }
    assert!(counts.remove(&f, a, tag(a)));
    assert_eq!(decide(&f, a), None);
    assert_eq!(f.word(a), EMPTY);
}

#[test]
fn a_namespace_on_a_counted_ones_slot_is_turned_away_exactly() {
    // The case a bit mask could not tell: a namespace that does not capture
    // whose slot a capturing one holds goes no further than the tag.
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let (a, b) = same_slot_pair();
    counts.add(&f, a, tag(a));
    assert_eq!(f.word(b), tag(a));
    assert_eq!(decide(&f, b), None);
}

#[test]
fn a_shared_slot_decides_nothing_while_one_namespace_on_it_is_counted() {
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let (a, b) = same_slot_pair();
    counts.add(&f, a, tag(a));
    counts.add(&f, b, tag(b));
    assert_eq!(f.word(a), SHARED);
    assert!(counts.remove(&f, a, tag(a)));
    // Which one is left is not known: the slot stays shared.
    assert_eq!(decide(&f, b), Some(false), "b is still counted");
    assert_eq!(decide(&f, a), Some(false));
    assert!(counts.remove(&f, b, tag(b)));
    assert_eq!(f.word(a), EMPTY);
    assert!(decide(&f, a).is_none() && decide(&f, b).is_none());
}

#[test]
fn removing_what_was_never_counted_changes_nothing() {
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let a = net_addr(3);
    assert!(!counts.remove(&f, a, tag(a)));
    let (c, d) = same_slot_pair();
    counts.add(&f, c, tag(c));
    // d shares c's slot but not its tag: not counted.
    assert!(!counts.remove(&f, d, tag(d)));
    assert_eq!(decide(&f, c), Some(true));
    assert!(counts.remove(&f, c, tag(c)));
    assert!(!counts.remove(&f, c, tag(c)));
    assert_eq!(f.word(c), EMPTY);
}

#[test]
fn a_namespace_without_a_tag_makes_its_slot_shared() {
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let a = net_addr(9);
    counts.add(&f, a, EMPTY);
    assert_eq!(f.word(a), SHARED);
    assert!(counts.remove(&f, a, SHARED));
    assert_eq!(f.word(a), EMPTY);
}

#[test]
fn a_retired_tag_leaves_the_slot_shared_and_never_anothers() {
    let (f, mut counts) = (NsFilter::new(), NsCounts::new());
    let (a, b) = same_slot_pair();
    counts.add(&f, a, tag(a));
    // a goes away without being uncounted: its tag must go.
    assert!(f.retire(a, tag(a)));
    assert_eq!(f.word(a), SHARED);
    assert!(!f.retire(a, tag(a)), "once");
    // Another namespace's tag is never taken out for it.
    let (g, mut gc) = (NsFilter::new(), NsCounts::new());
    gc.add(&g, b, tag(b));
    assert!(!g.retire(a, tag(a)));
    assert_eq!(g.word(b), tag(b));
    assert!(!g.retire(a, SHARED) && !g.retire(a, EMPTY));
    assert!(counts.remove(&f, a, tag(a)));
}

#[test]
fn slab_spaced_addresses_spread_over_the_slots() {
    // Namespaces one after another in a slab: they must not crowd a few
    // slots, or one capturing namespace would share its slot with many.
    for stride in [0x1000u64, 0x1280, 0x1300, 0x2000, 0x4000] {
        let slots: HashSet<u32> = (0..64)
            .map(|i| slot_of(0xffff_8880_1000_0000 + i * stride))
            .collect();
        assert!(
            slots.len() >= 32,
            "stride {stride:#x}: {} slots",
            slots.len()
        );
        assert!(slots.iter().all(|&b| (b as usize) < SLOTS));
    }
}

#[test]
fn readers_never_miss_a_counted_namespace_while_others_come_and_go() {
    let f = Arc::new(NsFilter::new());
    let counts = Arc::new(Mutex::new(NsCounts::new()));
    let (a, b) = same_slot_pair();
    counts.lock().unwrap().add(&f, a, tag(a));
    let stop = Arc::new(AtomicBool::new(false));
    let (found, asked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (f, stop) = (f.clone(), stop.clone());
            let (found, asked) = (found.clone(), asked.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match decide(&f, a) {
                        Some(true) => found.fetch_add(1, Ordering::Relaxed),
                        Some(false) => asked.fetch_add(1, Ordering::Relaxed),
                        None => panic!("a counted namespace was turned away"),
                    };
                }
            })
        })
        .collect();
    // Writers, serialized by the lock: namespaces on every slot, b on a's
    // among them, are counted and removed over and over.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (f, counts) = (f.clone(), counts.clone());
            thread::spawn(move || {
                for round in 0..20_000u64 {
                    let x = if round % 7 == 0 {
                        b
                    } else {
                        net_addr(100 + w * 1000 + round % 500)
                    };
                    counts.lock().unwrap().add(&f, x, tag(x));
                    assert!(counts.lock().unwrap().remove(&f, x, tag(x)));
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
    // Found by its tag until b first shared its slot, asked after.
    assert!(found.load(Ordering::Relaxed) + asked.load(Ordering::Relaxed) > 1000);
    // Only a is left: every other slot is empty again.
    let mut counts = counts.lock().unwrap();
    assert!(counts.remove(&f, a, tag(a)));
    assert!((0..5000).map(net_addr).all(|x| f.word(x) == EMPTY));
}
