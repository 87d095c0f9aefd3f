//! Tests of the typed table entries: round trips through words, and the
//! bounded list inside task entries.

use mace_core::entry::{
    Egress, Ingress, LatestPending, Pending, SendCall, Sender, Task, Words, EGRESS_WORDS,
    INGRESS_WORDS, LATEST_PENDING_WORDS, MAX_PENDING, SEND_WORDS, SENT_WORDS, TASK_WORDS,
};

fn round_trip<const D: usize, T: Words<D> + PartialEq + std::fmt::Debug>(v: T) {
    let w = v.to_words();
    assert_eq!(T::from_words(&w), v);
    // And words that came from an entry come back unchanged.
    assert_eq!(T::from_words(&w).to_words(), w);
}

#[test]
fn egress_round_trip() {
    round_trip(Egress {
        start: 1,
        ns: 2,
        pktid: 3,
        fp: 4,
    });
    round_trip(Egress {
        start: u64::MAX,
        ns: u64::MAX,
        pktid: u32::MAX,
        fp: u64::MAX,
    });
    assert_eq!(EGRESS_WORDS, 4);
}

#[test]
fn egress_round_trip_as_a_stamp_keeps_all_but_the_fingerprint() {
    for e in [
        Egress {
            start: 1,
            ns: 2,
            pktid: 3,
            fp: 4,
        },
        Egress {
            start: u64::MAX,
            ns: u64::MAX,
            pktid: u32::MAX,
            fp: u64::MAX,
        },
    ] {
        let w = e.to_sent_words();
        // The stamps' victim choice reads the time from the first word.
        assert_eq!(w[0], e.start);
        assert_eq!(Egress::from_sent_words(&w, e.fp), e);
    }
    assert_eq!(SENT_WORDS, 3);
}

#[test]
fn egress_same_send_compares_syscall_and_namespace() {
    let a = Egress {
        start: 10,
        ns: 1 << 32 | 1,
        pktid: 1,
        fp: 7,
    };
    assert!(a.same_send(&Egress { pktid: 2, ..a }));
    assert!(!a.same_send(&Egress { start: 11, ..a }));
    assert!(!a.same_send(&Egress { ns: 2, ..a }));
}

#[test]
fn ingress_round_trip() {
    for pktid in [0, 1, 0xffff, u32::MAX] {
        for t_rx in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            round_trip(Ingress { t_rx, pktid });
        }
    }
    assert_eq!(INGRESS_WORDS, 2);
    // The stamps' victim choice reads the time from the first word.
    let w = Ingress { t_rx: 7, pktid: 9 }.to_words();
    assert_eq!(w[0], 7);
}

#[test]
fn latest_pending_round_trip_starts_with_its_time() {
    let f = LatestPending {
        packet: Pending {
            t_rx: 7,
            pktid: u32::MAX,
            end: 9,
        },
        ns: 1 << 32 | 3,
        tid: u32::MAX - 1,
    };
    round_trip(f);
    round_trip(LatestPending::default());
    // The thread id and the packet id share a word, each whole.
    let back = LatestPending::from_words(&f.to_words());
    assert_eq!((back.tid, back.packet.pktid), (u32::MAX - 1, u32::MAX));
    // The stamps' time is the first word, the packet's arrival: a full set
    // loses the stamp of the packet that arrived longest ago.
    assert_eq!(f.to_words()[0], 7);
    assert_eq!(LATEST_PENDING_WORDS, 4);
}

#[test]
fn task_round_trip() {
    round_trip(Task::new(0));
    round_trip(Task::new(u32::MAX));
    let mut t = Task::new(9);
    for i in 0..MAX_PENDING {
        assert!(t.push_pending(Pending {
            t_rx: 100 + i as u64,
            pktid: i as u32,
            end: if i % 2 == 0 { 0 } else { 200 + i as u64 },
        }));
        round_trip(t);
    }
    let mut with_ns = t;
    with_ns.ns = 1 << 32 | 7;
    round_trip(with_ns);
    let mut reader = with_ns;
    reader.tap_reader = true;
    round_trip(reader);
    let mut idle_reader = Task::new(4);
    idle_reader.tap_reader = true;
    round_trip(idle_reader);
    assert_eq!(TASK_WORDS, 3 + 3 * MAX_PENDING);
}

#[test]
fn sender_round_trip() {
    for tcp_write_seq in [None, Some(0), Some(7), Some(u32::MAX)] {
        for (tid, fd) in [(0, 0), (42, 3), (u32::MAX, u32::MAX)] {
            round_trip(Sender {
                tid,
                fd,
                call: SendCall {
                    start: 123,
                    sock: 0xffff_8880_0000_1000,
                    tcp_write_seq,
                },
            });
        }
    }
    assert_eq!(SEND_WORDS, 4);
    // A sequence word that is neither 0 nor 1 << 32 | seq is no sequence.
    let w = [1, 2, 3, 2 << 32 | 9];
    assert_eq!(Sender::from_words(&w).call.tcp_write_seq, None);
}

#[test]
fn pending_list_is_bounded_and_ordered() {
    let mut t = Task::new(1);
    for i in 0..MAX_PENDING {
        assert!(t.push_pending(Pending {
            t_rx: i as u64,
            pktid: i as u32 * 10,
            end: 0,
        }));
    }
    let full = t;
    assert!(!t.push_pending(Pending {
        t_rx: 99,
        pktid: 99,
        end: 0,
    }));
    assert_eq!(t, full, "a push into a full list changes nothing");
    let ids: Vec<u32> = t.pending().iter().map(|p| p.pktid).collect();
    assert_eq!(
        ids,
        (0..MAX_PENDING as u32).map(|i| i * 10).collect::<Vec<_>>()
    );
}

#[test]
fn corrupt_counts_are_clamped_never_panic() {
    let mut w = Task::new(1).to_words();
    w[2] = u64::MAX;
    assert_eq!(Task::from_words(&w).pending().len(), MAX_PENDING);
    w[2] = 0xffff_ffff;
    let t = Task::from_words(&w);
    assert_eq!(t.pending().len(), MAX_PENDING);
    assert!(!t.tap_reader, "the count's bits are not the flag");
}

#[test]
fn random_words_never_panic() {
    // A small xorshift: any words must decode to some entry and re-encode.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..10_000 {
        let mut w = [0u64; TASK_WORDS];
        w.iter_mut().for_each(|v| *v = next());
        let t = Task::from_words(&w);
        assert!(t.pending().len() <= MAX_PENDING);
        let _ = t.to_words();
    }
}
