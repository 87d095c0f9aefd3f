//! Tests of the arrays of stamps (arrival stamps, the ingress table, sent
//! packets, senders) and of the packet fingerprint they use.

use mace_core::packet::{fingerprint, Side};
use mace_core::stamps::{empty_set, Put, Set, Stamps, WAYS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

type S = Stamps<Vec<Set>>;

/// An array of `n` empty stamps (`n / WAYS` sets) of `V` words.
fn stamps_of<const V: usize>(n: usize) -> Stamps<Vec<Set<V>>, V> {
    Stamps::new((0..n / WAYS).map(|_| empty_set()).collect())
        .ok()
        .expect("power of two")
}

fn stamps(n: usize) -> S {
    stamps_of(n)
}

/// Stamps four buffers with `put` (address, index), each into an empty slot.
fn fill<const V: usize>(put: impl Fn(u64, u64) -> Put<V>) {
    for (i, addr) in [0x100u64, 0x200, 0x300, 0x400].into_iter().enumerate() {
        assert_eq!(put(addr, i as u64), Put::Empty);
    }
}

#[test]
fn rejects_numbers_of_sets_that_are_not_powers_of_two() {
    for n in [0, 3, 6, 12] {
        let v: Vec<Set> = (0..n).map(|_| empty_set()).collect();
        assert!(Stamps::new(v).is_err(), "{n}");
    }
    assert_eq!(WAYS, 4);
}

#[test]
fn capacity_is_the_number_of_slots() {
    assert_eq!(stamps(WAYS).capacity(), WAYS);
    assert_eq!(stamps(1024).capacity(), 1024);
}

#[test]
fn a_stamp_is_taken_once_with_its_value() {
    let s = stamps(1024);
    let t = 5_000_000_123_456u64;
    assert_eq!(s.put(0xffff_8880_1234_5600, 77, t), Put::Empty);
    // Another fingerprint (a new packet in a reused socket buffer): no.
    assert_eq!(s.take(0xffff_8880_1234_5600, 78), None);
    assert_eq!(s.take(0xffff_8880_1234_5600, 77), Some(t));
    assert_eq!(s.take(0xffff_8880_1234_5600, 77), None);
}

#[test]
fn another_address_in_the_same_set_does_not_take_it() {
    // One set: every address maps to it.
    let s = stamps(WAYS);
    assert_eq!(s.put(0x1000, 9, 10), Put::Empty);
    assert_eq!(s.take(0x2000, 9), None);
    assert_eq!(s.take(0x1000, 9), Some(10));
}

#[test]
fn a_set_keeps_four_stamps_and_replaces_the_oldest() {
    let s = stamps(WAYS);
    fill(|addr, i| s.put(addr, 1, 10 + i));
    // A fifth packet takes the oldest's slot, whatever order they came in.
    assert_eq!(s.put(0x500, 1, 14), Put::Replaced([10]));
    assert_eq!(s.take(0x100, 1), None);
    for (addr, t) in [(0x200, 11), (0x300, 12), (0x400, 13), (0x500, 14)] {
        assert_eq!(s.take(addr, 1), Some(t));
    }
    // Taken: the set is empty again.
    assert_eq!(s.put(0x100, 1, 20), Put::Empty);
    // The same packet stamped again keeps one slot.
    assert_eq!(s.put(0x100, 1, 21), Put::Replaced([20]));
    for addr in [0x200, 0x300, 0x400] {
        assert_eq!(s.put(addr, 1, 22), Put::Empty);
    }
    assert_eq!(s.take(0x100, 1), Some(21));
}

#[test]
fn a_buffer_stamped_again_as_its_sole_stamp_keeps_only_the_latest() {
    let s = stamps(1024);
    assert_eq!(s.put_sole(0x100, 1, 10), Put::Empty);
    // A new packet in the same socket buffer: the earlier one left it.
    assert_eq!(s.put_sole(0x100, 2, 11), Put::Superseded([10]));
    assert_eq!(s.take(0x100, 1), None);
    assert_eq!(s.take(0x100, 2), Some(11));
    // The same packet stamped again (a second outer device) keeps one slot.
    assert_eq!(s.put_sole(0x100, 3, 12), Put::Empty);
    assert_eq!(s.put_sole(0x100, 3, 13), Put::Superseded([12]));
    assert_eq!(s.take(0x100, 3), Some(13));
    assert_eq!(s.take(0x100, 3), None);
}

#[test]
fn a_full_set_gives_a_restamped_buffer_its_own_slot_not_the_oldest() {
    let s = stamps(WAYS);
    fill(|addr, i| s.put_sole(addr, 1, 10 + i));
    assert_eq!(s.put_sole(0x300, 2, 14), Put::Superseded([12]));
    // The other buffers' stamps, the oldest among them, are all there.
    for (addr, t) in [(0x100, 10), (0x200, 11), (0x400, 13)] {
        assert_eq!(s.take(addr, 1), Some(t));
    }
    assert_eq!(s.take(0x300, 1), None);
    assert_eq!(s.take(0x300, 2), Some(14));
    // Another buffer in a full set still takes the oldest's slot.
    fill(|addr, i| s.put_sole(addr, 1, 20 + i));
    assert_eq!(s.put_sole(0x500, 1, 24), Put::Replaced([20]));
    assert_eq!(s.take(0x100, 1), None);
    assert_eq!(s.take(0x500, 1), Some(24));
}

#[test]
fn put_keeps_several_stamps_of_one_buffer() {
    // The waypoints of a breakdown: one buffer, a tag per waypoint.
    let s = stamps(WAYS);
    assert_eq!(s.put(0x100, 1, 10), Put::Empty);
    assert_eq!(s.put(0x100, 2, 11), Put::Empty);
    assert_eq!(s.put(0x100, 1, 12), Put::Replaced([10]));
    assert_eq!(s.take(0x100, 2), Some(11));
    assert_eq!(s.take(0x100, 1), Some(12));
}

/// An array of stamps with a second word of value (a packet id).
type S2 = Stamps<Vec<Set<2>>, 2>;

fn stamps2(n: usize) -> S2 {
    stamps_of(n)
}

#[test]
fn a_stamp_of_two_words_is_taken_whole_once() {
    let s = stamps2(64);
    assert_eq!(s.put_sole_value(0x100, 7, &[10, 42]), Put::Empty);
    assert_eq!(s.take_value(0x100, 8), None);
    assert_eq!(s.take_value(0x100, 7), Some([10, 42]));
    assert_eq!(s.take_value(0x100, 7), None);
    // The oldest by the first word.
    let one = stamps2(WAYS);
    fill(|addr, i| one.put_sole_value(addr, 1, &[[13, 10, 12, 11][i as usize], addr]));
    assert_eq!(
        one.put_sole_value(0x500, 1, &[14, 5]),
        Put::Replaced([10, 0x200])
    );
    assert_eq!(one.take_value(0x200, 1), None);
    assert_eq!(
        one.put_sole_value(0x300, 2, &[15, 6]),
        Put::Superseded([12, 0x300])
    );
    assert_eq!(one.take_value(0x300, 2), Some([15, 6]));
    assert_eq!(one.take_value(0x100, 1), Some([13, 0x100]));
}

#[test]
fn put_sole_time_is_put_sole_value_saying_only_the_time() {
    // The same stamps put both ways into two arrays: the same slots end up
    // with the same words, and each put says the same but for the words
    // after the first.
    let (whole, time) = (stamps2(WAYS), stamps2(WAYS));
    let first = |p: Put<2>| match p {
        Put::Empty => Put::Empty,
        Put::Superseded([t, _]) => Put::Superseded([t]),
        Put::Replaced([t, _]) => Put::Replaced([t]),
        Put::Busy => Put::Busy,
    };
    let puts: &[(u64, u64, [u64; 2])] = &[
        (0x100, 1, [13, 1]),
        (0x200, 1, [10, 2]),
        (0x300, 1, [12, 3]),
        (0x400, 1, [11, 4]),
        // Over the oldest (another buffer's), then over a buffer's own.
        (0x500, 1, [14, 5]),
        (0x300, 2, [15, 6]),
        (0x300, 2, [16, 7]),
    ];
    let mut said = Vec::new();
    for &(addr, fp, value) in puts {
        let w = first(whole.put_sole_value(addr, fp, &value));
        let t = time.put_sole_time(addr, fp, &value);
        assert_eq!(w, t, "put of {addr:#x}");
        said.push(t);
    }
    assert_eq!(
        said,
        [
            Put::Empty,
            Put::Empty,
            Put::Empty,
            Put::Empty,
            Put::Replaced([10]),
            Put::Superseded([12]),
            Put::Superseded([15]),
        ]
    );
    for addr in [0x100, 0x200, 0x300, 0x400, 0x500] {
        for fp in [1, 2] {
            assert_eq!(whole.take_value(addr, fp), time.take_value(addr, fp));
        }
    }
}

#[test]
fn take_buffer_takes_the_packets_stamp_or_the_buffers_leftover() {
    let s = stamps2(WAYS);
    // No stamp of the buffer: no fingerprint asked.
    assert_eq!(s.take_buffer(0x100, || panic!("asked")), None);
    s.put_sole_value(0x100, 7, &[1, 2]);
    // No fingerprint: the stamp stays.
    assert_eq!(s.take_buffer(0x100, || None), None);
    assert_eq!(s.take_buffer(0x100, || Some(7)), Some(([1, 2], true)));
    assert_eq!(s.occupancy_of(0, WAYS), 0);
    // Another packet's leftover in the buffer: taken, and said so.
    s.put_sole_value(0x100, 8, &[3, 4]);
    assert_eq!(s.take_buffer(0x100, || Some(9)), Some(([3, 4], false)));
    assert_eq!(s.occupancy_of(0, WAYS), 0);
    // Two stamps of one buffer (an empty slot came first): the packet's own.
    s.put_sole_value(0x200, 1, &[5, 0]);
    s.put_sole_value(0x100, 8, &[6, 0]);
    assert_eq!(s.take_value(0x200, 1), Some([5, 0]));
    s.put_sole_value(0x100, 9, &[7, 0]);
    assert_eq!(s.occupancy_of(0, WAYS), 2);
    assert_eq!(s.take_buffer(0x100, || Some(8)), Some(([6, 0], true)));
    assert_eq!(s.take_buffer(0x100, || Some(8)), Some(([7, 0], false)));
    assert_eq!(s.occupancy_of(0, WAYS), 0);
}

#[test]
fn read_value_leaves_the_stamp_and_reads_only_its_packets() {
    let s = stamps2(WAYS);
    assert_eq!(s.read_value(0x100, 7), None);
    s.put_sole_value(0x100, 7, &[1, 2]);
    assert_eq!(s.read_value(0x100, 8), None);
    assert_eq!(s.read_value(0x100, 7), Some([1, 2]));
    assert_eq!(s.read_value(0x100, 7), Some([1, 2]));
    assert_eq!(s.take_value(0x100, 7), Some([1, 2]));
    assert_eq!(s.read_value(0x100, 7), None);
}

#[test]
fn concurrent_read_by_owner_never_returns_a_torn_stamp() {
    // As the senders' stamps are used: each key has one owner (a task, its
    // thread id the fingerprint), which stamps it and later reads it back,
    // never both at once. Four owners of four keys each share one set of
    // WAYS slots, so their stamps keep pushing each other's out and taking
    // their slots. An owner reads either nothing (pushed out) or exactly
    // what it last stamped: never words of another key's stamp that took
    // the slot meanwhile. They run until 1000 reads found their stamp gone
    // (the owners raced), at most 20 s.
    const V: usize = 6;
    let s = Arc::new(stamps_of::<V>(WAYS));
    let misses = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(4));
    let words = |key: u64, time: u64| -> [u64; V] {
        core::array::from_fn(|i| key.wrapping_mul(0x1000_0001) ^ time ^ (i as u64) << 56)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let owners: Vec<_> = (0..4u64)
        .map(|w| {
            let (s, misses, start) = (Arc::clone(&s), Arc::clone(&misses), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut hits = 0u64;
                let mut n = 0u64;
                while misses.load(Ordering::Relaxed) < 1_000
                    && (n % 1024 != 0 || std::time::Instant::now() < deadline)
                {
                    let key = w * 4 + n % 4 + 1;
                    s.put_sole_value(key << 8, key, &words(key, n));
                    match s.read_value(key << 8, key) {
                        Some(got) => {
                            assert_eq!(got, words(key, n), "torn stamp");
                            hits += 1;
                        }
                        None => {
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    n += 1;
                }
                hits
            })
        })
        .collect();
    let hits: u64 = owners.into_iter().map(|h| h.join().unwrap()).sum();
    let misses = misses.load(Ordering::Relaxed);
    assert!(hits > 0 && misses >= 1_000, "hits {hits}, misses {misses}");
}

#[test]
fn occupancy_counts_the_stamps_in_a_range_of_slots() {
    let s = stamps2(64);
    assert_eq!(s.occupancy_of(0, 64), 0);
    for addr in 1..=10u64 {
        s.put_sole_value(addr << 8, addr, &[addr, 0]);
    }
    assert_eq!(s.occupancy_of(0, 64), 10);
    // Chunks add up, and a range past the end counts what is there.
    let chunks: usize = (0..64).step_by(16).map(|f| s.occupancy_of(f, 16)).sum();
    assert_eq!(chunks, 10);
    assert_eq!(s.occupancy_of(32, 1000), s.occupancy_of(32, 32));
    assert_eq!(s.occupancy_of(64, 16), 0);
    assert_eq!(s.occupancy_of(usize::MAX, usize::MAX), 0);
    s.take_value(3 << 8, 3);
    assert_eq!(s.occupancy_of(0, 64), 9);
}

#[test]
fn occupancy_of_ranges_that_cut_through_sets() {
    let s = stamps(16);
    // Two buffers of one set, four of another: whichever sets they hash
    // to, single slots count each stamp once.
    for fp in 0..2u64 {
        s.put_value(0x100, fp, &[fp]);
    }
    for fp in 0..4u64 {
        s.put_value(0x200, fp, &[fp]);
    }
    let single: Vec<usize> = (0..16).map(|i| s.occupancy_of(i, 1)).collect();
    assert!(single.iter().all(|&n| n <= 1), "{single:?}");
    assert_eq!(single.iter().sum::<usize>(), s.occupancy_of(0, 16));
    assert_eq!(s.occupancy_of(0, 16), 6);
    // Any range counts the stamps of the slots in it, no more.
    for first in 0..=16 {
        for n in 0..=16 - first {
            let want: usize = single.get(first..first + n).unwrap().iter().sum();
            assert_eq!(s.occupancy_of(first, n), want, "{first} {n}");
        }
    }
}

#[test]
fn a_tag_keeps_the_xor_of_the_fingerprints_halves() {
    // What a caller that mixes constants into fingerprints must know (the
    // breakdown's waypoints): two fingerprints whose halves XOR alike are
    // one packet to the stamps; ones that differ in the low half only are
    // not.
    let s = stamps(WAYS);
    let fp = 0x646c_7631_0000_0005u64;
    let alike = 0x646c_7632_0000_0006u64;
    assert_eq!(s.put(0x100, fp, 1), Put::Empty);
    assert_eq!(s.put(0x100, alike, 2), Put::Replaced([1]));
    assert_eq!(s.take(0x100, fp), Some(2));
    // Four stamps of one buffer that differ in the low half: four slots.
    for w in 3..=6u64 {
        assert_eq!(s.put(0x200, 77 ^ w, w), Put::Empty, "waypoint {w}");
    }
    for w in 3..=6u64 {
        assert_eq!(s.take(0x200, 77 ^ w), Some(w), "waypoint {w}");
    }
}

#[test]
fn any_fingerprint_and_value_can_be_stamped() {
    let s = stamps(16);
    for fp in [0, 1, u64::MAX] {
        for v in [0, 7, u64::MAX] {
            s.put(0x300, fp, v);
            assert_eq!(s.take(0x300, fp), Some(v), "{fp} {v}");
        }
    }
}

#[test]
fn concurrent_stamps_and_takes_never_return_a_wrong_time() {
    race(S::put_value, |t| [t]);
}

#[test]
fn concurrent_sole_stamps_and_takes_never_return_a_wrong_time() {
    race(S::put_sole_value, |t| [t]);
}

#[test]
fn concurrent_two_word_stamps_are_never_torn() {
    race(S2::put_sole_value, |t| [t, !t]);
}

/// Writers stamp packets with `put`, whose fingerprint is their time and
/// whose words come from it (`words`); readers take them on other threads:
/// whatever they get, with the fingerprint they ask for, is what was
/// stamped with it, whole.
fn race<const V: usize>(
    put: fn(&Stamps<Vec<Set<V>>, V>, u64, u64, &[u64; V]) -> Put<V>,
    words: fn(u64) -> [u64; V],
) {
    let s = Arc::new(stamps_of::<V>(64));
    let taken = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|id| {
            let (s, taken) = (s.clone(), taken.clone());
            thread::spawn(move || {
                for i in 0..50_000u64 {
                    let t = (1 << 40) + i * 16 + id;
                    let addr = (i % 97) << 8;
                    // The fingerprint is the time: a value taken with
                    // another packet's fingerprint would show.
                    put(&s, addr, t, &words(t));
                    if let Some(got) = s.take_value(addr, t) {
                        assert_eq!(got, words(t));
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                    // Another thread's recent stamp, by its fingerprint.
                    let other = t.wrapping_sub(16);
                    if let Some(got) = s.take_value((i.wrapping_sub(1) % 97) << 8, other) {
                        assert_eq!(got, words(other));
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(taken.load(Ordering::Relaxed) > 0);
}

fn ipv4(tos: u8, len: u16, id: u16, ttl: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0x45, tos];
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x40, 0, ttl, 1, 0xab, 0xcd]);
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b
}

fn ipv6(tc: u8, flow: u32, len: u16, next: u8, hops: u8, src: u8, dst: u8) -> Vec<u8> {
    let w = 6u32 << 28 | u32::from(tc) << 20 | flow & 0xf_ffff;
    let mut b = w.to_be_bytes().to_vec();
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&[next, hops]);
    b.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src]);
    b.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, dst]);
    b
}

#[test]
fn fingerprints_ignore_what_forwarding_and_nat_change() {
    use Side::{Egress, Ingress};
    let (remote, host, c1, c2) = (
        [198, 18, 0, 2],
        [198, 18, 0, 1],
        [198, 19, 0, 11],
        [198, 19, 0, 12],
    );
    // A reply as the outer device and as the container's device see it:
    // NAT rewrote the destination, forwarding the TTL, a queue the ECN bits.
    let a = fingerprint(&ipv4(0, 84, 0x1234, 64, remote, host), Ingress).unwrap();
    assert_eq!(
        fingerprint(&ipv4(3, 84, 0x1234, 63, remote, c1), Ingress),
        Some(a)
    );
    // Another packet: identification, length, source.
    assert_ne!(
        fingerprint(&ipv4(0, 84, 0x1235, 64, remote, c1), Ingress),
        Some(a)
    );
    assert_ne!(
        fingerprint(&ipv4(0, 85, 0x1234, 64, remote, c1), Ingress),
        Some(a)
    );
    assert_ne!(
        fingerprint(&ipv4(0, 84, 0x1234, 64, c2, c1), Ingress),
        Some(a),
        "container to container"
    );
    // The protocol and the fragment field are read too, and the checksum,
    // which NAT and forwarding rewrite, is not.
    let with = |at: usize, v: u8| {
        let mut p = ipv4(0, 84, 0x1234, 64, remote, host);
        p[at] = v;
        fingerprint(&p, Ingress)
    };
    assert_ne!(with(9, 17), Some(a), "protocol");
    assert_ne!(with(6, 0x20), Some(a), "more fragments");
    assert_ne!(with(7, 1), Some(a), "fragment offset");
    assert_eq!(with(10, 0x12), Some(a), "checksum");
    assert_eq!(with(11, 0x34), Some(a), "checksum");
    // A request: NAT rewrote the source.
    let e = fingerprint(&ipv4(0, 84, 7, 64, c1, remote), Egress).unwrap();
    assert_eq!(
        fingerprint(&ipv4(0, 84, 7, 63, host, remote), Egress),
        Some(e)
    );
    let b = fingerprint(&ipv6(0, 0x12345, 64, 58, 64, 2, 11), Ingress).unwrap();
    assert_eq!(
        fingerprint(&ipv6(0xff, 0x12345, 64, 58, 1, 2, 12), Ingress),
        Some(b),
        "traffic class, hops, NAT"
    );
    for (other, what) in [
        (ipv6(0, 0x12346, 64, 58, 64, 2, 11), "flow label"),
        (ipv6(0, 0x12345, 65, 58, 64, 2, 11), "length"),
        (ipv6(0, 0x12345, 64, 17, 64, 2, 11), "next header"),
        (ipv6(0, 0x12345, 64, 58, 64, 12, 11), "source"),
        (
            ipv6(0, 0x92345, 64, 58, 64, 2, 11),
            "flow label's first bits",
        ),
    ] {
        assert_ne!(fingerprint(&other, Ingress), Some(b), "{what}");
    }
    assert_eq!(
        fingerprint(&ipv4(0, 84, 1, 64, remote, host)[..19], Ingress),
        None
    );
    assert_eq!(
        fingerprint(&ipv6(0, 1, 64, 58, 64, 2, 11)[..39], Ingress),
        None
    );
    assert_eq!(fingerprint(&[0x50; 40], Ingress), None);
}
