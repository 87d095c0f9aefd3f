//! Tests of the arrival stamps and the packet fingerprint they use.

use mace_core::packet::fingerprint;
use mace_core::stamps::{Stamped, Stamps, MAX_AGE_LIMIT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

type S = Stamps<Vec<AtomicU64>>;

fn stamps(n: usize) -> S {
    Stamps::new((0..n).map(|_| AtomicU64::new(0)).collect())
        .ok()
        .expect("power of two")
}

const MS: u64 = 1_000_000;

#[test]
fn rejects_sizes_that_are_not_powers_of_two() {
    let v: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
    assert!(Stamps::new(v).is_err());
}

#[test]
fn a_stamp_is_taken_once_with_its_time() {
    let s = stamps(1024);
    let t = 5_000_000_123_456u64;
    assert_eq!(
        s.stamp(0xffff_8880_1234_5600, 77, t, 1000 * MS),
        Stamped::Free
    );
    // Another fingerprint (a new packet in a reused socket buffer): no.
    assert_eq!(s.take(0xffff_8880_1234_5600, 78, t + MS, 1000 * MS), None);
    assert_eq!(
        s.take(0xffff_8880_1234_5600, 77, t + MS, 1000 * MS),
        Some(t)
    );
    assert_eq!(s.take(0xffff_8880_1234_5600, 77, t + MS, 1000 * MS), None);
}

#[test]
fn stale_stamps_are_never_taken() {
    let s = stamps(64);
    let t = 1u64 << 50; // past the 48 bits kept
    s.stamp(0x1000, 5, t, 100 * MS);
    assert_eq!(s.take(0x1000, 5, t + 100 * MS + 1, 100 * MS), None);
    // A stale stamp is free to be overwritten.
    assert_eq!(s.stamp(0x1000, 6, t + 300 * MS, 100 * MS), Stamped::Free);
    assert_eq!(
        s.take(0x1000, 6, t + 300 * MS, 100 * MS),
        Some(t + 300 * MS)
    );
}

#[test]
fn times_are_rebuilt_across_the_48_bit_wrap() {
    let s = stamps(64);
    let wrap = 1u64 << 48;
    for t in [wrap - 10, wrap - 1, wrap, 3 * wrap - 5] {
        s.stamp(0x2000, 9, t, 100 * MS);
        assert_eq!(s.take(0x2000, 9, t + 20, 100 * MS), Some(t), "{t}");
    }
    // Stamped by another CPU just after this one read its clock.
    s.stamp(0x2000, 9, wrap + 5, 100 * MS);
    assert_eq!(s.take(0x2000, 9, wrap - 5, 100 * MS), Some(wrap + 5));
    assert!(MAX_AGE_LIMIT > 60_000 * MS);
}

#[test]
fn a_fresh_stamp_overwritten_is_reported() {
    let s = stamps(1);
    assert_eq!(s.stamp(0x100, 1, 10 * MS, 100 * MS), Stamped::Free);
    assert_eq!(s.stamp(0x200, 2, 11 * MS, 100 * MS), Stamped::Overwrote);
    assert_eq!(s.take(0x100, 1, 12 * MS, 100 * MS), None);
    assert_eq!(s.take(0x200, 2, 12 * MS, 100 * MS), Some(11 * MS));
    // Taken: the slot is free again.
    assert_eq!(s.stamp(0x100, 1, 13 * MS, 100 * MS), Stamped::Free);
}

#[test]
fn zero_fingerprint_at_a_round_time_is_not_empty() {
    let s = stamps(16);
    let t = 1u64 << 48;
    s.stamp(0x300, 0, t, 100 * MS);
    assert_eq!(s.take(0x300, 0, t + 1, 100 * MS), Some(t + 1));
}

#[test]
fn concurrent_stamps_and_takes_never_return_a_wrong_time() {
    // Writers stamp packets whose fingerprint encodes their time; readers
    // take them on other threads: whatever they get, with the fingerprint
    // they ask for, is the time stamped with it, and each stamp is taken
    // at most once.
    let s = Arc::new(stamps(64));
    let taken = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|id| {
            let (s, taken) = (s.clone(), taken.clone());
            thread::spawn(move || {
                for i in 0..50_000u64 {
                    let t = (1 << 40) + i * 16 + id;
                    let addr = (i % 97) << 8;
                    let fp = (t & 0xffff) as u16;
                    s.stamp(addr, fp, t, 1 << 30);
                    if let Some(got) = s.take(addr, fp, t + 3, 1 << 30) {
                        assert_eq!(got & 0xffff, t & 0xffff);
                        assert!(got <= t + 3 && t + 3 - got < 1 << 30);
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                    // Another thread's recent stamp, by its fingerprint.
                    let other = t.wrapping_sub(16);
                    if let Some(got) = s.take(
                        (i.wrapping_sub(1) % 97) << 8,
                        (other & 0xffff) as u16,
                        t,
                        1 << 30,
                    ) {
                        assert_eq!(got & 0xffff, other & 0xffff);
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

fn ipv4(tos: u8, len: u16, id: u16, ttl: u8) -> Vec<u8> {
    let mut b = vec![0x45, tos];
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x40, 0, ttl, 1, 0xab, 0xcd]);
    b
}

fn ipv6(tc: u8, flow: u32, len: u16, next: u8, hops: u8) -> Vec<u8> {
    let w = 6u32 << 28 | u32::from(tc) << 20 | flow & 0xf_ffff;
    let mut b = w.to_be_bytes().to_vec();
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&[next, hops]);
    b
}

#[test]
fn fingerprints_ignore_what_forwarding_and_nat_change() {
    let a = fingerprint(&ipv4(0, 84, 0x1234, 64)).unwrap();
    assert_eq!(fingerprint(&ipv4(3, 84, 0x1234, 63)), Some(a), "ECN, TTL");
    assert_ne!(
        fingerprint(&ipv4(0, 84, 0x1235, 64)),
        Some(a),
        "identification"
    );
    assert_ne!(fingerprint(&ipv4(0, 85, 0x1234, 64)), Some(a), "length");
    let b = fingerprint(&ipv6(0, 0x12345, 64, 58, 64)).unwrap();
    assert_eq!(
        fingerprint(&ipv6(0xff, 0x12345, 64, 58, 1)),
        Some(b),
        "traffic class, hops"
    );
    assert_ne!(
        fingerprint(&ipv6(0, 0x12346, 64, 58, 64)),
        Some(b),
        "flow label"
    );
    assert_ne!(
        fingerprint(&ipv6(0, 0x12345, 65, 58, 64)),
        Some(b),
        "length"
    );
    assert_ne!(
        fingerprint(&ipv6(0, 0x12345, 64, 17, 64)),
        Some(b),
        "next header"
    );
    assert_eq!(fingerprint(&ipv4(0, 84, 1, 64)[..7]), None);
    assert_eq!(fingerprint(&[0x50; 8]), None);
}
