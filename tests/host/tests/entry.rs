//! Tests of the typed table entries: round trips through words, and the
//! bounded lists inside task and deferred entries.

use mace_core::entry::{
    Deferred, Egress, Ingress, Pending, SendCall, Task, Words, DEFERRED_WORDS, EGRESS_WORDS,
    INGRESS_WORDS, MAX_DEFERRED, MAX_PENDING, TASK_WORDS,
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
    });
    round_trip(Egress {
        start: u64::MAX,
        ns: u64::MAX,
        pktid: u32::MAX,
    });
    assert_eq!(EGRESS_WORDS, 3);
}

#[test]
fn egress_same_send_compares_syscall_and_namespace() {
    let a = Egress {
        start: 10,
        ns: 1 << 32 | 1,
        pktid: 1,
    };
    assert!(a.same_send(&Egress { pktid: 2, ..a }));
    assert!(!a.same_send(&Egress { start: 11, ..a }));
    assert!(!a.same_send(&Egress { ns: 2, ..a }));
}

#[test]
fn ingress_round_trip() {
    for pktid in [0, 1, 0xffff, u32::MAX] {
        round_trip(Ingress { pktid });
    }
    assert_eq!(INGRESS_WORDS, 1);
}

#[test]
fn task_round_trip() {
    round_trip(Task::new(0));
    round_trip(Task::new(u32::MAX));
    for tcp_write_seq in [None, Some(0), Some(7), Some(u32::MAX)] {
        round_trip(Task::sending(
            42,
            SendCall {
                start: 123,
                sock: 0xffff_8880_0000_1000,
                tcp_write_seq,
                sent: 5,
            },
        ));
    }
    let mut t = Task::new(9);
    for i in 0..MAX_PENDING {
        assert!(t.push_pending(Pending {
            t_rx: 100 + i as u64,
            pktid: i as u32,
        }));
        round_trip(t);
    }
    assert_eq!(TASK_WORDS, 6 + 2 * MAX_PENDING);
}

#[test]
fn a_task_without_send_has_no_send_after_a_round_trip() {
    let w = Task::new(3).to_words();
    assert_eq!(w[1], 0, "no send is a start of 0");
    assert_eq!(Task::from_words(&w).send, None);
}

#[test]
fn pending_list_is_bounded_and_ordered() {
    let mut t = Task::new(1);
    for i in 0..MAX_PENDING {
        assert!(t.push_pending(Pending {
            t_rx: i as u64,
            pktid: i as u32 * 10,
        }));
    }
    let full = t;
    assert!(!t.push_pending(Pending { t_rx: 99, pktid: 99 }));
    assert_eq!(t, full, "a push into a full list changes nothing");
    let ids: Vec<u32> = t.pending().iter().map(|p| p.pktid).collect();
    assert_eq!(ids, (0..MAX_PENDING as u32).map(|i| i * 10).collect::<Vec<_>>());
}

#[test]
fn corrupt_counts_are_clamped_never_panic() {
    let mut w = Task::new(1).to_words();
    w[5] = u64::MAX;
    assert_eq!(Task::from_words(&w).pending().len(), MAX_PENDING);
    let mut d = [0u64; DEFERRED_WORDS];
    d[0] = 1000;
    let mut d = Deferred::from_words(&d);
    assert_eq!(d.to_words()[0], MAX_DEFERRED as u64);
    let mut n = 0;
    while d.pop().is_some() {
        n += 1;
    }
    assert_eq!(n, MAX_DEFERRED);
}

#[test]
fn deferred_is_a_bounded_fifo() {
    let mut d = Deferred::default();
    assert_eq!(d.pop(), None);
    for t in 1..=MAX_DEFERRED as u64 {
        assert!(d.push(t));
        round_trip(d);
    }
    let full = d;
    assert!(!d.push(99), "full");
    assert_eq!(d, full, "a push into a full list changes nothing");
    assert_eq!(d.pop(), Some(1));
    assert!(d.push(5));
    let mut out = Vec::new();
    while let Some(t) = d.pop() {
        out.push(t);
        round_trip(d);
    }
    assert_eq!(out, vec![2, 3, 4, 5]);
    assert_eq!(d, Deferred::default());
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
        let mut d = [0u64; DEFERRED_WORDS];
        d.iter_mut().for_each(|v| *v = next() % 8);
        let mut d = Deferred::from_words(&d);
        while d.pop().is_some() {}
    }
}
