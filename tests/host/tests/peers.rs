//! Tests of the peers of capturing namespaces: which received packets an
//! outer device stamps.

use mace_core::packet::Side;
use mace_core::peers::{Peers, PEER_SLOTS};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Barrier};
use std::thread;

type P = Peers<Vec<AtomicU32>>;

/// Peers over `n` marks, each a peer for `window` jiffies.
fn peers_of(n: usize, window: u32) -> P {
    Peers::new((0..n).map(|_| AtomicU32::new(0)).collect(), window)
        .ok()
        .expect("power of two")
}

fn peers(window: u32) -> P {
    peers_of(PEER_SLOTS, window)
}

/// An IPv4 header from `src` to `dst`.
fn v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

/// An IPv6 header from `src` to `dst`.
fn v6(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0, 0, 64, 58, 64];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

/// 2001:db8::`last`.
fn doc6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

const CONTAINER: [u8; 4] = [198, 18, 0, 2];
const REMOTE: [u8; 4] = [198, 19, 0, 1];

#[test]
fn rejects_sizes_that_are_not_powers_of_two() {
    for n in [0, 1, 3, 12, 4095] {
        let v: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
        assert!(Peers::new(v, 10).is_err(), "{n}");
    }
    assert!(Peers::new((0..4096).map(|_| AtomicU32::new(0)).collect::<Vec<_>>(), 10).is_ok());
}

#[test]
fn nothing_is_a_peer_before_a_mark() {
    let p = peers(1000);
    for now in [0, 1, 5000, u32::MAX] {
        assert!(!p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, now));
        assert!(!p.admits(&v6(doc6(1), doc6(2)), Side::Ingress, now));
    }
}

#[test]
fn a_sent_packet_makes_its_destination_a_peer_of_its_replies() {
    let p = peers(1000);
    assert!(!p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 100));
    assert!(p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 100));
    assert!(p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 1100));
    // Not the container's own address, nor a packet from elsewhere.
    assert!(!p.admits(&v4(CONTAINER, REMOTE), Side::Ingress, 100));
    assert!(!p.admits(&v4([198, 19, 0, 9], CONTAINER), Side::Ingress, 100));

    let p = peers(1000);
    assert!(!p.touch(&v6(doc6(2), doc6(1)), Side::Egress, 7));
    assert!(p.admits(&v6(doc6(1), doc6(2)), Side::Ingress, 8));
    assert!(!p.admits(&v6(doc6(3), doc6(2)), Side::Ingress, 8));
    // An IPv4 remote is not the IPv6 one.
    assert!(!p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 8));
}

#[test]
fn a_received_packet_makes_its_source_a_peer() {
    let p = peers(1000);
    assert!(!p.touch(&v4(REMOTE, CONTAINER), Side::Ingress, 50));
    assert!(p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 51));
    // And says so the next time.
    assert!(p.touch(&v4(REMOTE, CONTAINER), Side::Ingress, 52));
}

#[test]
fn a_peer_lasts_the_window_and_no_longer() {
    let p = peers(1000);
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 10);
    let reply = v4(REMOTE, CONTAINER);
    assert!(p.admits(&reply, Side::Ingress, 1010));
    assert!(!p.admits(&reply, Side::Ingress, 1011));
    // A touch renews it.
    assert!(!p.touch(&reply, Side::Ingress, 1011));
    assert!(p.admits(&reply, Side::Ingress, 2000));
    // A CPU that saw the tick first marked it a jiffy ahead.
    assert!(p.admits(&reply, Side::Ingress, 1010));
}

#[test]
fn the_window_holds_across_the_wrap_of_jiffies() {
    let p = peers(100);
    let start = u32::MAX - 10;
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, start);
    let reply = v4(REMOTE, CONTAINER);
    assert!(p.admits(&reply, Side::Ingress, start.wrapping_add(100)));
    assert!(!p.admits(&reply, Side::Ingress, start.wrapping_add(101)));
    // Marked at jiffy 0: still a mark.
    let p = peers(100);
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 0);
    assert!(p.admits(&reply, Side::Ingress, 0));
    assert!(p.admits(&reply, Side::Ingress, 100));
}

#[test]
fn a_window_of_zero_admits_every_packet() {
    let p = peers(0);
    assert!(p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 5));
    assert!(p.admits(&v6(doc6(1), doc6(2)), Side::Ingress, 5));
    assert!(p.admits(&[0x00; 40], Side::Ingress, 5));
    assert!(p.touch(&v4(REMOTE, CONTAINER), Side::Ingress, 5));
}

#[test]
fn multicast_and_broadcast_destinations_make_no_peer() {
    // A container's IPv6 router solicitation (to ff02::2) once marked the
    // slot of a remote host's replies.
    let p = peers(1000);
    let mut all_routers = [0u8; 16];
    all_routers[..2].copy_from_slice(&[0xff, 0x02]);
    all_routers[15] = 2;
    assert!(!p.touch(&v6(doc6(5), all_routers), Side::Egress, 1));
    for dst in [[224, 0, 0, 22], [239, 1, 2, 3], [255, 255, 255, 255]] {
        assert!(!p.touch(&v4(CONTAINER, dst), Side::Egress, 1));
    }
    let n = (0..=255u8)
        .filter(|&i| p.admits(&v4([198, 18, 0, i], CONTAINER), Side::Ingress, 1))
        .count();
    assert_eq!(n, 0, "a multicast mark admitted a unicast remote");
    // A unicast destination still does.
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 1);
    assert!(p.admits(&v4(REMOTE, CONTAINER), Side::Ingress, 1));
}

/// `n` addresses that follow no pattern: the first bytes of an LCG's
/// states.
fn scattered(n: usize) -> impl Iterator<Item = [u8; 16]> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n).map(move |_| {
        let mut a = [0u8; 16];
        for chunk in a.chunks_mut(8) {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            chunk.copy_from_slice(&x.to_be_bytes()[..chunk.len()]);
        }
        a
    })
}

#[test]
fn the_hosts_of_a_prefix_leave_strangers_out() {
    // 1024 consecutive hosts marked in 4096 slots: about a quarter of the
    // slots. An unrelated address is admitted about that often, no more.
    let p = peers(1000);
    for i in 0..1024u32 {
        let [_, _, a, b] = i.to_be_bytes();
        p.touch(&v4(CONTAINER, [198, 18, a, b]), Side::Egress, 1);
    }
    let strangers = scattered(4096)
        .filter(|a| p.admits(&v4([a[0], a[1], a[2], a[3]], CONTAINER), Side::Ingress, 1))
        .count();
    assert!(strangers < 1400, "{strangers} of 4096 strangers admitted");
    let host = |n: u32| {
        let mut a = doc6(0);
        a[12..].copy_from_slice(&n.to_be_bytes());
        a
    };
    let p = peers(1000);
    for i in 0..1024 {
        p.touch(&v6(doc6(1), host(i)), Side::Egress, 1);
    }
    for i in 0..1024 {
        assert!(p.admits(&v6(host(i), doc6(1)), Side::Ingress, 1));
    }
    let strangers = scattered(4096)
        .filter(|&a| p.admits(&v6(a, doc6(1)), Side::Ingress, 1))
        .count();
    assert!(strangers < 1400, "{strangers} of 4096 strangers admitted");
}

#[test]
fn packets_without_an_address_are_never_peers() {
    let p = peers(1000);
    // Neither IPv4 nor IPv6, empty, or cut short before the address.
    let arp = [
        0x00u8, 0x01, 0x08, 0x00, 0x06, 0x04, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let short4 = &v4(REMOTE, CONTAINER)[..15];
    let short6 = &v6(doc6(1), doc6(2))[..23];
    for l3 in [&arp[..], &[], short4, short6] {
        assert!(!p.touch(l3, Side::Ingress, 1));
        assert!(!p.admits(l3, Side::Ingress, 1));
    }
    // A header cut after the source still has the remote of a reply.
    let cut = &v4(REMOTE, CONTAINER)[..16];
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 1);
    assert!(p.admits(cut, Side::Ingress, 1));
}

#[test]
fn addresses_that_share_a_slot_share_their_mark() {
    // Two marks: among a few addresses some share one.
    let p = peers_of(2, 1000);
    let others: Vec<[u8; 4]> = (1..=8).map(|i| [198, 19, 1, i]).collect();
    p.touch(&v4(CONTAINER, REMOTE), Side::Egress, 1);
    let shared = others
        .iter()
        .filter(|&&a| p.admits(&v4(a, CONTAINER), Side::Ingress, 1))
        .count();
    assert!(shared > 0 && shared < others.len(), "{shared}");
}

#[test]
fn peers_spread_over_the_slots() {
    // 256 distinct remotes marked: a stranger is a peer only through a
    // shared slot, which 256 of 4096 marks make rare.
    let p = peers(1000);
    for i in 0..=255u8 {
        p.touch(&v4(CONTAINER, [198, 19, 2, i]), Side::Egress, 1);
    }
    let strangers = (0..=255u8)
        .filter(|&i| p.admits(&v4([198, 19, 3, i], CONTAINER), Side::Ingress, 1))
        .count();
    assert!(strangers < 48, "{strangers} of 256 strangers admitted");
}

#[test]
fn concurrent_marks_and_looks_keep_every_peer() {
    let p = Arc::new(peers(1_000_000));
    let threads = 4;
    let start = Arc::new(Barrier::new(threads * 2));
    let mut handles = Vec::new();
    for t in 0..threads as u8 {
        let (pw, sw) = (p.clone(), start.clone());
        handles.push(thread::spawn(move || {
            sw.wait();
            for round in 0..2000u32 {
                for i in 0..32u8 {
                    pw.touch(&v4(CONTAINER, [198, 18, 10 + t, i]), Side::Egress, round);
                }
            }
        }));
        let (pr, sr) = (p.clone(), start.clone());
        handles.push(thread::spawn(move || {
            sr.wait();
            // A peer once seen stays one: a mark is never torn or undone
            // by another CPU's.
            let mut seen = [false; 32];
            for _ in 0..2000 {
                for (i, was) in (0..32u8).zip(seen.iter_mut()) {
                    let now = pr.admits(&v4([198, 18, 10 + t, i], CONTAINER), Side::Ingress, 1000);
                    assert!(
                        now || !*was,
                        "thread {t}, address {i}: a peer lost its mark"
                    );
                    *was |= now;
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("no panic");
    }
    for t in 0..threads as u8 {
        for i in 0..32u8 {
            assert!(p.admits(&v4([198, 18, 10 + t, i], CONTAINER), Side::Ingress, 2000));
        }
    }
}

/// An ICMP error from `router` to `to`, quoting `quote`.
fn icmp_error_v4(router: [u8; 4], to: [u8; 4], ty: u8, quote: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, 1, 0, 0];
    p[2..4].copy_from_slice(&((28 + quote.len()) as u16).to_be_bytes());
    p.extend_from_slice(&router);
    p.extend_from_slice(&to);
    p.extend_from_slice(&[ty, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quote);
    p
}

#[test]
fn an_icmp_error_is_admitted_for_the_peer_its_quote_was_sent_to() {
    let p = peers(100);
    let router = [198, 19, 0, 254];
    let probe = v4(CONTAINER, REMOTE);
    // Before the probe: nobody's peer.
    let err = icmp_error_v4(router, CONTAINER, 11, &probe);
    assert!(!p.admits_error(&err, 10));
    p.touch(&probe, Side::Egress, 10);
    // The router is not a peer, the error is admitted for the remote.
    assert!(!p.admits(&err, Side::Ingress, 11));
    assert!(p.admits_error(&err, 11));
    // Not once the window has passed.
    assert!(!p.admits_error(&err, 10 + 101));
    // Quoting a packet to another host, or not an error (an echo reply,
    // a UDP datagram with the same bytes after its header), or cut short.
    let other = icmp_error_v4(router, CONTAINER, 11, &v4(CONTAINER, [198, 19, 0, 7]));
    assert!(!p.admits_error(&other, 11));
    let echo = icmp_error_v4(router, CONTAINER, 0, &probe);
    assert!(!p.admits_error(&echo, 11));
    let mut udp = err.clone();
    udp[9] = 17;
    assert!(!p.admits_error(&udp, 11));
    for n in 0..err.len() {
        assert!(!p.admits_error(&err[..n], 11) || n >= 28 + 20, "cut at {n}");
    }
    // IPv6: time exceeded from a router, quoting a packet to a peer.
    let probe6 = v6(doc6(0x11), doc6(2));
    p.touch(&probe6, Side::Egress, 20);
    let mut err6 = v6(doc6(0xfe), doc6(0x11));
    err6.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
    err6.extend_from_slice(&probe6);
    assert!(p.admits_error(&err6, 21));
    let mut other6 = v6(doc6(0xfe), doc6(0x11));
    other6.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
    other6.extend_from_slice(&v6(doc6(0x11), doc6(9)));
    assert!(!p.admits_error(&other6, 21));
}
