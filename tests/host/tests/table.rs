//! Tests of the bucket-locked correlation table, including concurrent use.

use mace_core::table::{Bucket, BucketLock, Entry, Insert, Table, Take, WAYS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// A spinning test lock that also detects two holders at once.
#[derive(Default)]
struct Spin(AtomicBool);

struct SpinGuard<'a>(&'a AtomicBool);

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        assert!(
            self.0.swap(false, Ordering::Release),
            "unlock of a free lock"
        );
    }
}

impl BucketLock for Spin {
    type Guard<'a> = SpinGuard<'a>;
    fn lock(&self) -> SpinGuard<'_> {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        SpinGuard(&self.0)
    }
}

type T<const D: usize> = Table<Vec<Bucket<Spin, D>>, Spin, D>;

fn table<const D: usize>(buckets: usize, max_age: u64) -> T<D> {
    let v = (0..buckets).map(|_| Bucket::new(Spin::default())).collect();
    Table::new(v, max_age).ok().expect("power of two")
}

/// Stores `data` under `key` at `now`, over a live entry with the key (whose
/// time stays).
fn put<const D: usize>(t: &T<D>, key: u64, now: u64, data: &[u64; D]) -> Insert<D> {
    t.upsert(key, now, data, |d| *d = *data).1
}

/// Takes `key` as the task probe does: a look without the lock, then the
/// take from the bucket it found.
fn take_timed<S, L, const D: usize>(
    t: &Table<S, L, D>,
    key: u64,
    clock: impl FnOnce() -> u64,
) -> (Take<D>, u64)
where
    S: std::ops::Deref<Target = [Bucket<L, D>]>,
    L: BucketLock,
{
    t.look(key)
        .map_or((Take::Miss, 0), |look| look.take_timed(clock))
}

#[test]
fn rejects_bucket_counts_that_are_not_powers_of_two() {
    let v: Vec<Bucket<Spin, 1>> = (0..3).map(|_| Bucket::new(Spin::default())).collect();
    assert!(Table::new(v, 10).is_err());
}

#[test]
fn store_then_take() {
    let t = table::<2>(16, 100);
    assert_eq!(t.insert(0x1234, 10, &[7, 8], |_| false), Insert::Stored);
    assert_eq!(t.take(0x9999, 20), Take::Miss);
    assert_eq!(
        t.take(0x1234, 20),
        Take::Hit(Entry {
            key: 0x1234,
            time: 10,
            data: [7, 8]
        })
    );
    assert_eq!(t.take(0x1234, 20), Take::Miss, "taken twice");
    assert_eq!(t.occupancy_of(0, t.buckets()), 0);
}

#[test]
fn look_is_none_only_where_a_lookup_misses() {
    let t = table::<1>(16, 100);
    assert!(t.look(0x1234).is_none(), "empty table");
    t.insert(0x1234, 10, &[1], |_| false);
    assert!(t.look(0x1234).is_some());
    assert!(t.look(0x9999).is_none());
    // An expired entry is still there until a lookup drops it.
    assert!(t.look(0x1234).is_some());
    assert!(matches!(t.take(0x1234, 500), Take::Expired(_)));
    assert!(t.look(0x1234).is_none(), "taken");
    // Whenever it says no, a take misses.
    for k in 1..2000u64 {
        t.insert(k * 0x9e37_79b9, k, &[k], |_| false);
    }
    for k in 1..4000u64 {
        let key = k * 0x9e37_79b9;
        if t.look(key).is_none() {
            assert_eq!(t.take(key, 2000), Take::Miss, "key {key:#x}");
        }
    }
}

#[test]
fn expired_entries_are_never_returned() {
    let t = table::<1>(16, 100);
    t.insert(5, 1000, &[1], |_| false);
    assert!(matches!(t.take(5, 1101), Take::Expired(_)));
    assert_eq!(t.take(5, 1101), Take::Miss, "expired entry was removed");
    // At exactly max_age the entry is still live.
    t.insert(5, 1000, &[1], |_| false);
    assert!(matches!(t.take(5, 1100), Take::Hit(_)));
}

#[test]
fn clock_wrap_does_not_make_entries_young() {
    let t = table::<1>(16, 100);
    t.insert(5, u64::MAX - 10, &[1], |_| false);
    assert!(
        matches!(t.take(5, 50), Take::Hit(_)),
        "61 units later across the wrap"
    );
    t.insert(5, u64::MAX - 10, &[1], |_| false);
    assert!(matches!(t.take(5, 200), Take::Expired(_)));
}

#[test]
fn an_entry_from_a_later_clock_reading_is_live() {
    // Another CPU stored it after this one read its clock.
    let t = table::<1>(16, 100);
    t.insert(5, 1000, &[1], |_| false);
    assert!(matches!(t.take(5, 990), Take::Hit(_)));
}

#[test]
fn collisions_are_never_reported() {
    let t = table::<1>(16, 1000);
    assert_eq!(t.insert(42, 10, &[1], |_| false), Insert::Stored);
    // The same packet seen again (caller says so): nothing changes.
    assert_eq!(t.insert(42, 12, &[1], |e| e.data == [1]), Insert::Same);
    // Another packet with the same key: a collision.
    assert!(matches!(
        t.insert(42, 15, &[2], |e| e.data == [2]),
        Insert::Collision(_)
    ));
    // Neither is reported.
    assert!(matches!(t.take(42, 20), Take::Collided(_)));
    assert_eq!(t.take(42, 20), Take::Miss);
}

#[test]
fn a_full_bucket_evicts_its_oldest_entry() {
    let t = table::<1>(1, 1000);
    // One bucket: every key lands there.
    for k in 1..=WAYS as u64 {
        assert_eq!(t.insert(k, 100 + k, &[k], |_| false), Insert::Stored);
    }
    match t.insert(99, 200, &[99], |_| false) {
        Insert::Evicted(e) => assert_eq!((e.key, e.data), (1, [1])),
        other => panic!("expected eviction, got {other:?}"),
    }
    assert_eq!(t.take(1, 201), Take::Miss);
    assert!(matches!(t.take(99, 201), Take::Hit(_)));
    // An expired entry is reused before a live one is evicted.
    let t = table::<1>(1, 50);
    for k in 1..=WAYS as u64 {
        t.insert(k, if k == 3 { 0 } else { 100 }, &[k], |_| false);
    }
    match t.insert(77, 120, &[77], |_| false) {
        Insert::ReplacedExpired(e) => assert_eq!(e.key, 3),
        other => panic!("expected the expired entry to go, got {other:?}"),
    }
}

#[test]
fn keys_that_differ_only_in_high_bits_spread_over_the_buckets() {
    // Task and socket pointers are keys too: objects of one slab cache are
    // aligned, so their low bits are all alike. 128 such keys in 64 buckets
    // of WAYS slots: with the low bits as index all would share one bucket
    // and 124 would be evicted; hashed, almost all fit.
    let t = table::<1>(64, 1000);
    let evicted = (1..=128u64)
        .filter(|i| {
            let key = 0xffff_8880_0000_0000 | i << 14;
            matches!(t.insert(key, 1, &[*i], |_| false), Insert::Evicted(_))
        })
        .count();
    assert!(evicted <= 16, "{evicted} of 128 evicted");
    // Sequential small keys spread as well.
    let t = table::<1>(64, 1000);
    let evicted = (1..=128u64)
        .filter(|&k| matches!(t.insert(k, 1, &[k], |_| false), Insert::Evicted(_)))
        .count();
    assert!(evicted <= 16, "{evicted} of 128 evicted");
}

#[test]
fn an_expired_entry_never_hides_a_newer_one_with_its_key() {
    // One bucket with a free slot before the expired entry with the key.
    let t = table::<1>(1, 50);
    t.insert(1, 0, &[1], |_| false);
    t.insert(7, 0, &[70], |_| false);
    assert_eq!(
        t.take(1, 0),
        Take::Hit(Entry {
            key: 1,
            time: 0,
            data: [1]
        })
    );
    // Key 7 again after its entry expired: stored over it, in its place.
    match t.insert(7, 100, &[71], |_| false) {
        Insert::ReplacedExpired(e) => assert_eq!(e.data, [70]),
        other => panic!("expected the expired entry to be replaced, got {other:?}"),
    }
    assert_eq!(
        t.take(7, 101),
        Take::Hit(Entry {
            key: 7,
            time: 100,
            data: [71]
        })
    );
    assert_eq!(t.take(7, 101), Take::Miss);
}

#[test]
fn upsert_updates_a_live_entry_or_starts_one() {
    let t = table::<2>(16, 100);
    let push = |d: &mut [u64; 2]| {
        d[1] += 1;
        d[1]
    };
    assert_eq!(t.upsert(9, 10, &[42, 0], push), (Some(1), Insert::Stored));
    assert_eq!(t.upsert(9, 20, &[42, 0], push), (Some(2), Insert::Same));
    // The entry keeps the time it was first stored at.
    assert_eq!(
        t.take(9, 30),
        Take::Hit(Entry {
            key: 9,
            time: 10,
            data: [42, 2]
        })
    );
    // An expired entry is not updated: a new one starts over it.
    t.upsert(9, 0, &[42, 0], push);
    match t.upsert(9, 200, &[43, 0], push) {
        (Some(1), Insert::ReplacedExpired(e)) => assert_eq!(e.data, [42, 1]),
        other => panic!("expected a fresh entry over the expired one, got {other:?}"),
    }
    assert_eq!(
        t.take(9, 201),
        Take::Hit(Entry {
            key: 9,
            time: 200,
            data: [43, 1]
        })
    );
}

#[test]
fn take_with_runs_under_the_lock_only_for_live_entries() {
    let t = table::<1>(16, 100);
    t.insert(1, 0, &[5], |_| false);
    let mut seen = None;
    assert!(matches!(
        t.take_with(1, 10, |e| seen = Some(e.data)),
        Take::Hit(_)
    ));
    assert_eq!(seen, Some([5]));
    t.insert(2, 0, &[6], |_| false);
    let mut called = false;
    assert!(matches!(
        t.take_with(2, 1000, |_| called = true),
        Take::Expired(_)
    ));
    assert!(!called);
}

#[test]
fn concurrent_inserts_and_takes_stay_consistent() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 40_000;
    let t = Arc::new(table::<2>(64, 1 << 40));
    let start = Arc::new(Barrier::new(THREADS as usize * 2));
    let stored = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for th in 0..THREADS {
        let (t, start, stored, lost) = (t.clone(), start.clone(), stored.clone(), lost.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            for i in 0..PER_THREAD {
                let key = (th << 32 | i) + 1;
                match t.insert(key, i, &[key ^ 0xdead_beef, th], |_| false) {
                    Insert::Stored => {}
                    Insert::ReplacedExpired(e) | Insert::Evicted(e) => {
                        assert_eq!(e.data[0], e.key ^ 0xdead_beef);
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected {other:?}"),
                }
                stored.fetch_add(1, Ordering::Relaxed);
            }
            Vec::<u64>::new()
        }));
    }
    for th in 0..THREADS {
        let (t, start) = (t.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            let mut taken = Vec::new();
            for round in 0..3 {
                for i in 0..PER_THREAD {
                    let key = (th << 32 | i) + 1;
                    if let Take::Hit(e) = t.take(key, i + round) {
                        assert_eq!(e.key, key);
                        assert_eq!(e.data, [key ^ 0xdead_beef, th], "torn entry");
                        taken.push(key);
                    }
                }
            }
            taken
        }));
    }
    let mut taken: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n_taken = taken.len() as u64;
    taken.sort_unstable();
    taken.dedup();
    assert_eq!(taken.len() as u64, n_taken, "an entry was taken twice");
    let left = t.occupancy_of(0, t.buckets()) as u64;
    let n = stored.load(Ordering::Relaxed);
    assert_eq!(n, THREADS * PER_THREAD);
    assert_eq!(
        n_taken + left + lost.load(Ordering::Relaxed),
        n,
        "inserts unaccounted for"
    );
}

#[test]
fn concurrent_upserts_lose_no_update() {
    // 4 threads add 1 to the counters of 8 keys, 2000 times each, through
    // upsert; the bucket lock makes every read-modify-write whole.
    let t = Arc::new(table::<1>(4, 1 << 40));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = Arc::clone(&t);
            thread::spawn(move || {
                for i in 0..2000u64 {
                    let key = i % 8 + 1;
                    t.upsert(key, 1, &[0], |d| d[0] += 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total: u64 = (1..=8)
        .map(|k| match t.take(k, 2) {
            Take::Hit(e) => e.data[0],
            other => panic!("key {k}: {other:?}"),
        })
        .sum();
    assert_eq!(total, 4 * 2000);
}

#[test]
fn occupancy_counts_any_range_of_buckets() {
    let t = table::<1>(64, 1_000_000);
    for key in 1..=100u64 {
        put(&t, key, 1, &[key]);
    }
    let all = t.occupancy_of(0, t.buckets());
    assert!(all > 0 && all <= 100);
    // Chunks of any size add up to the whole, and ranges past the end are
    // cut, never a panic.
    for chunk in [1, 3, 7, 64, 1000] {
        let mut sum = 0;
        let mut first = 0;
        while first < t.buckets() {
            sum += t.occupancy_of(first, chunk);
            first += chunk;
        }
        assert_eq!(sum, all, "chunk {chunk}");
    }
    assert_eq!(t.occupancy_of(64, 10), 0);
    assert_eq!(t.occupancy_of(usize::MAX, usize::MAX), 0);
    assert_eq!(t.occupancy_of(60, usize::MAX), t.occupancy_of(60, 4));
}

#[test]
fn occupancy_takes_no_lock_while_others_use_the_table() {
    // Counting takes no lock: while another thread stores and takes keys, a
    // count sees every entry that stays (key 1) and never more than the
    // entries that were there at some moment of the count: the writer's one
    // key at the start plus each key it stored meanwhile (the writer's
    // next key, stored in a bucket not yet counted after its previous one
    // was counted, makes 3: the first version of this test missed that).
    let t = Arc::new(table::<1>(16, 1_000_000));
    put(&t, 1, 1, &[1]);
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicU64::new(0));
    let writer = {
        let (t, stop, stored) = (t.clone(), stop.clone(), stored.clone());
        thread::spawn(move || {
            let mut key = 2u64;
            while !stop.load(Ordering::Relaxed) {
                // Counted before the store: a count that saw no change of
                // `stored` overlapped no store that had not started.
                stored.fetch_add(1, Ordering::SeqCst);
                put(&t, key, 1, &[key]);
                let _ = t.take(key, 1);
                key = key.wrapping_add(1).max(2);
            }
        })
    };
    let mut overlapped = 0;
    for _ in 0..10_000 {
        let before = stored.load(Ordering::SeqCst);
        let n = t.occupancy_of(0, t.buckets());
        let during = stored.load(Ordering::SeqCst) - before;
        assert!(n >= 1, "key 1 not counted");
        // Key 1, the writer's key of the start, one more per store.
        let most = 2 + during;
        assert!(n as u64 <= most, "{n} > {most}");
        if during == 0 {
            // Nothing stored meanwhile: key 1 and at most the writer's key.
            assert!((1..=2).contains(&n), "{n}");
        } else {
            overlapped += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(t.occupancy_of(0, t.buckets()), 1);
    println!("{overlapped} of 10000 counts overlapped a store");
}

/// Times a [`Counting`] lock was taken (only `misses_take_no_lock` uses it).
static LOCKS: AtomicU64 = AtomicU64::new(0);

/// A lock that only counts how often it is taken (the test using it has one
/// thread).
struct Counting;

impl BucketLock for Counting {
    type Guard<'a> = ();
    fn lock(&self) {
        LOCKS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn misses_take_no_lock() {
    let v = (0..16).map(|_| Bucket::new(Counting)).collect();
    let t: Table<Vec<Bucket<Counting, 1>>, Counting, 1> =
        Table::new(v, 100).ok().expect("power of two");
    for k in 1..=20u64 {
        assert_eq!(t.upsert(k, 1, &[k], |_| {}).1, Insert::Stored);
    }
    assert_eq!(LOCKS.load(Ordering::Relaxed), 20, "a store locks");
    // Keys that are not there, in full and empty buckets: no lock.
    for k in 1000..2000u64 {
        assert_eq!(t.take(k, 2), Take::Miss);
        assert_eq!(take_timed(&t, k, || 2), (Take::Miss, 0));
    }
    assert_eq!(LOCKS.load(Ordering::Relaxed), 20, "a miss takes no lock");
    // A key that is there is taken under the lock, once.
    assert!(matches!(t.take(7, 2), Take::Hit(_)));
    assert!(matches!(take_timed(&t, 6, || 2), (Take::Hit(_), 2)));
    assert_eq!(LOCKS.load(Ordering::Relaxed), 22);
    // An expired entry is still found (and dropped) under the lock.
    assert!(matches!(t.take(8, 500), Take::Expired(_)));
    assert_eq!(t.take(8, 500), Take::Miss);
    assert_eq!(LOCKS.load(Ordering::Relaxed), 23);
}

#[test]
fn take_timed_reads_its_clock_only_for_its_key_and_judges_age_by_it() {
    let t = table::<1>(4, 100);
    let reads = std::cell::Cell::new(0);
    let clock = |now: u64| {
        let reads = &reads;
        move || {
            reads.set(reads.get() + 1);
            now
        }
    };
    // No slot has the key: no clock.
    assert_eq!(take_timed(&t, 5, clock(50)), (Take::Miss, 0));
    assert_eq!(reads.get(), 0);
    put(&t, 5, 10, &[7]);
    let (taken, now) = take_timed(&t, 5, clock(60));
    assert_eq!((reads.get(), now), (1, 60));
    assert!(matches!(taken, Take::Hit(e) if e.data == [7]));
    // The age is the clock's: 10 stored, 111 is past a max age of 100.
    put(&t, 5, 10, &[8]);
    let (taken, now) = take_timed(&t, 5, clock(111));
    assert_eq!((reads.get(), now), (2, 111));
    assert!(matches!(taken, Take::Expired(_)));
    assert_eq!(take_timed(&t, 5, clock(120)), (Take::Miss, 0));
    assert_eq!(reads.get(), 2);
}

#[test]
fn a_look_whose_entry_left_before_the_take_misses_without_a_clock() {
    let t = table::<1>(4, 100);
    let reads = std::cell::Cell::new(0);
    put(&t, 5, 10, &[7]);
    put(&t, 9, 10, &[9]);
    let look = t.look(5).expect("5 is there");
    // Taken by someone else between the look and the take.
    assert!(matches!(t.take(5, 20), Take::Hit(_)));
    let taken = look.take_timed(|| {
        reads.set(reads.get() + 1);
        30
    });
    assert_eq!((taken, reads.get()), ((Take::Miss, 0), 0));
    // Replaced by another key of the bucket meanwhile: that one stays.
    put(&t, 5, 10, &[8]);
    let look = t.look(5).expect("5 is there again");
    assert!(matches!(t.take(5, 20), Take::Hit(_)));
    put(&t, 13, 10, &[13]);
    assert_eq!(look.take_timed(|| 40), (Take::Miss, 0));
    assert!(matches!(t.take(9, 20), Take::Hit(e) if e.data == [9]));
    assert!(matches!(t.take(13, 20), Take::Hit(_)));
}
