//! Tests of packet identification on crafted packets and their NAT twins.

use mace_core::packet::{
    fingerprint, fingerprint_id, identify, key_within, may_be_error, packet_id, quoted_by_error,
    Identity, PacketId, Proto, Side, CAPTURE_BYTES, PAYLOAD_KEY_BYTES,
};

const CONTAINER4: [u8; 4] = [198, 19, 0, 11];
const OUTER4: [u8; 4] = [198, 18, 0, 1];
const REMOTE4: [u8; 4] = [198, 18, 0, 2];
const CONTAINER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
];
const OUTER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const REMOTE6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0xab, 0xcd];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
    let payload = (ext.len() + l4.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&payload.to_be_bytes());
    p.push(next);
    p.push(64);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(ext);
    p.extend_from_slice(l4);
    p
}

fn icmp(ty: u8, id: u16, seq: u16, csum: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, 0];
    h.extend_from_slice(&csum.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn udp(sport: u16, dport: u16, csum: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&csum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn tcp(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    csum: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ack.to_be_bytes());
    h.push(8 << 4); // 32-byte header: 12 bytes of options
    h.push(flags);
    h.extend_from_slice(&[0xff, 0xff]);
    h.extend_from_slice(&csum.to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // nop nop timestamp
    h.extend_from_slice(payload);
    h
}

fn id(p: &[u8], side: Side) -> Identity {
    identify(p, side, 0).expect("identified")
}

const PING_PAYLOAD: &[u8] =
    b"\x12\x34\x56\x78\x9a\xbc\xde\xf0 0123456789abcdefghijklmnopqrstuvwxyz";

/// An echo request with sequence number `seq` as the container sends it,
/// and as masquerade makes it: a new source address, a new ICMP id, new
/// checksums.
fn echo_request_masqueraded(seq: u16) -> (Vec<u8>, Vec<u8>) {
    let inside = icmp(8, 0x1234, seq, 0x1111, PING_PAYLOAD);
    let outside = icmp(8, 0x9999, seq, 0x2222, PING_PAYLOAD);
    (
        ipv4(CONTAINER4, REMOTE4, 1, 0x4242, &inside),
        ipv4(OUTER4, REMOTE4, 1, 0x4242, &outside),
    )
}

#[test]
fn icmp_echo_request_survives_masquerade() {
    let (inside, outside) = echo_request_masqueraded(7);
    let a = id(&inside, Side::Egress);
    let b = id(&outside, Side::Egress);
    assert_eq!(a, b);
    assert_eq!((a.pktid, a.proto), (7, Proto::Icmp));
}

#[test]
fn icmp_echo_reply_survives_reverse_nat() {
    let outside = ipv4(
        REMOTE4,
        OUTER4,
        1,
        0x0777,
        &icmp(0, 0x9999, 7, 0x3333, PING_PAYLOAD),
    );
    let inside = ipv4(
        REMOTE4,
        CONTAINER4,
        1,
        0x0777,
        &icmp(0, 0x1234, 7, 0x4444, PING_PAYLOAD),
    );
    assert_eq!(id(&outside, Side::Ingress), id(&inside, Side::Ingress));
    assert_eq!(id(&inside, Side::Ingress).pktid, 7);
}

#[test]
fn icmp_keys_tell_packets_apart() {
    let base = id(
        &ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(8, 1, 7, 0, PING_PAYLOAD)),
        Side::Egress,
    );
    let others = [
        ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(8, 1, 8, 0, PING_PAYLOAD)), // seq
        ipv4(CONTAINER4, REMOTE4, 1, 2, &icmp(8, 1, 7, 0, PING_PAYLOAD)), // IP id
        ipv4(CONTAINER4, OUTER4, 1, 1, &icmp(8, 1, 7, 0, PING_PAYLOAD)),  // remote
        ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(0, 1, 7, 0, PING_PAYLOAD)), // type
        ipv4(
            CONTAINER4,
            REMOTE4,
            1,
            1,
            &icmp(
                8,
                1,
                7,
                0,
                b"\x12\x34\x56\x78\x9a\xbc\xde\xf1 0123456789abcdefghijklmnopqrstuvwxyz",
            ),
        ),
        ipv4(
            CONTAINER4,
            REMOTE4,
            1,
            1,
            &icmp(8, 1, 7, 0, &PING_PAYLOAD[..20]),
        ), // length
    ];
    for (i, p) in others.iter().enumerate() {
        assert_ne!(id(p, Side::Egress).key, base.key, "variant {i}");
    }
}

#[test]
fn every_keyed_byte_matters() {
    // The first PAYLOAD_KEY_BYTES of the payload, in a payload as long and
    // in a shorter one, and every byte of a remote IPv6 address.
    let long: Vec<u8> = (0..56u8).collect();
    for payload in [&long[..], &long[..PAYLOAD_KEY_BYTES], &long[..13]] {
        let key = |p: &[u8]| {
            id(
                &ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(8, 1, 7, 0, p)),
                Side::Egress,
            )
            .key
        };
        let base = key(payload);
        for i in 0..payload.len() {
            let mut p = payload.to_vec();
            p[i] ^= 0x40;
            if i < PAYLOAD_KEY_BYTES {
                assert_ne!(key(&p), base, "payload of {}, byte {i}", payload.len());
            } else {
                assert_eq!(key(&p), base, "payload of {}, byte {i}", payload.len());
            }
        }
    }
    let key6 = |remote: [u8; 16]| {
        id(
            &ipv6(
                CONTAINER6,
                remote,
                58,
                &[],
                &icmp(128, 1, 7, 0, PING_PAYLOAD),
            ),
            Side::Egress,
        )
        .key
    };
    let base = key6(REMOTE6);
    for i in 0..16 {
        let mut r = REMOTE6;
        r[i] ^= 0x40;
        assert_ne!(key6(r), base, "remote address byte {i}");
    }
}

#[test]
fn the_remote_end_decides_the_side() {
    let p = ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(8, 1, 7, 0, PING_PAYLOAD));
    assert_ne!(id(&p, Side::Egress).key, id(&p, Side::Ingress).key);
}

#[test]
fn icmpv6_echo_survives_masquerade_both_ways() {
    let inside = ipv6(
        CONTAINER6,
        REMOTE6,
        58,
        &[],
        &icmp(128, 0x1234, 300, 0x1, PING_PAYLOAD),
    );
    let outside = ipv6(
        OUTER6,
        REMOTE6,
        58,
        &[],
        &icmp(128, 0x5555, 300, 0x2, PING_PAYLOAD),
    );
    let e = id(&inside, Side::Egress);
    assert_eq!(e, id(&outside, Side::Egress));
    assert_eq!((e.pktid, e.proto), (300, Proto::Icmp6));
    let back_out = ipv6(
        REMOTE6,
        OUTER6,
        58,
        &[],
        &icmp(129, 0x5555, 300, 0x3, PING_PAYLOAD),
    );
    let back_in = ipv6(
        REMOTE6,
        CONTAINER6,
        58,
        &[],
        &icmp(129, 0x1234, 300, 0x4, PING_PAYLOAD),
    );
    assert_eq!(id(&back_out, Side::Ingress), id(&back_in, Side::Ingress));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let l4 = icmp(128, 1, 9, 0, PING_PAYLOAD);
    // Hop-by-hop (8 bytes) then destination options (16 bytes) then ICMPv6.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[58, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let with = ipv6(CONTAINER6, REMOTE6, 0, &ext, &l4);
    let i = id(&with, Side::Egress);
    assert_eq!((i.pktid, i.proto), (9, Proto::Icmp6));
    // A first fragment has the transport header; a later one does not.
    let first = ipv6(CONTAINER6, REMOTE6, 44, &[58, 0, 0, 1, 0, 0, 0, 42], &l4);
    assert_eq!(id(&first, Side::Egress).pktid, 9);
    let later = ipv6(
        CONTAINER6,
        REMOTE6,
        44,
        &[58, 0, 0x05, 0x01, 0, 0, 0, 42],
        &l4,
    );
    assert_eq!(identify(&later, Side::Egress, 0), None);
}

#[test]
fn ipv4_fragments() {
    let mut first = ipv4(CONTAINER4, REMOTE4, 1, 5, &icmp(8, 1, 3, 0, PING_PAYLOAD));
    first[6] = 0x20; // MF, offset 0
    assert_eq!(id(&first, Side::Egress).pktid, 3);
    assert!(id(&first, Side::Egress).first_fragment);
    let whole = ipv4(CONTAINER4, REMOTE4, 1, 5, &icmp(8, 1, 3, 0, PING_PAYLOAD));
    assert!(!id(&whole, Side::Egress).first_fragment);
    let mut later = first.clone();
    later[7] = 0xb9; // offset 185 * 8
    assert_eq!(identify(&later, Side::Egress, 0), None);
}

#[test]
fn udp_survives_port_and_address_rewrites() {
    let payload = b"\x00\x00\x01\x2crequest number three hundred";
    let inside = ipv4(
        CONTAINER4,
        REMOTE4,
        17,
        10,
        &udp(40000, 7777, 0xaaaa, payload),
    );
    let outside = ipv4(OUTER4, REMOTE4, 17, 10, &udp(61000, 7777, 0xbbbb, payload));
    let e = id(&inside, Side::Egress);
    assert_eq!(e, id(&outside, Side::Egress));
    assert_eq!((e.pktid, e.proto), (300, Proto::Udp));
    let back_out = ipv4(REMOTE4, OUTER4, 17, 11, &udp(7777, 61000, 1, payload));
    let back_in = ipv4(REMOTE4, CONTAINER4, 17, 11, &udp(7777, 40000, 2, payload));
    assert_eq!(id(&back_out, Side::Ingress), id(&back_in, Side::Ingress));
    // Another remote port is another flow.
    let other = ipv4(CONTAINER4, REMOTE4, 17, 10, &udp(40000, 7778, 0, payload));
    assert_ne!(id(&other, Side::Egress).key, e.key);
    // A short payload pads the id with zeros.
    let short = ipv4(CONTAINER4, REMOTE4, 17, 10, &udp(1, 2, 0, b"\x01\x02"));
    assert_eq!(id(&short, Side::Egress).pktid, 0x0102_0000);
    let empty = ipv4(CONTAINER4, REMOTE4, 17, 10, &udp(1, 2, 0, b""));
    assert_eq!(id(&empty, Side::Egress).pktid, 0);
}

#[test]
fn udp_over_ipv6() {
    let payload = b"\x00\x00\x00\x05hello";
    let inside = ipv6(CONTAINER6, REMOTE6, 17, &[], &udp(40000, 53, 1, payload));
    let outside = ipv6(OUTER6, REMOTE6, 17, &[], &udp(1024, 53, 2, payload));
    assert_eq!(id(&inside, Side::Egress), id(&outside, Side::Egress));
    assert_eq!(id(&inside, Side::Egress).pktid, 5);
}

#[test]
fn tcp_survives_masquerade_and_ids_by_sequence_number() {
    let inside = ipv4(
        CONTAINER4,
        REMOTE4,
        6,
        99,
        &tcp(
            40000,
            80,
            1_000_000,
            555,
            0x18,
            1,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    );
    let outside = ipv4(
        OUTER4,
        REMOTE4,
        6,
        99,
        &tcp(
            50000,
            80,
            1_000_000,
            555,
            0x18,
            2,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    );
    let e = id(&inside, Side::Egress);
    assert_eq!(e, id(&outside, Side::Egress));
    assert_eq!((e.pktid, e.proto), (1_000_000, Proto::Tcp));
    let back_out = ipv4(
        REMOTE4,
        OUTER4,
        6,
        7,
        &tcp(80, 50000, 555, 1_000_018, 0x18, 3, b"HTTP/1.0 200 OK\r\n"),
    );
    let back_in = ipv4(
        REMOTE4,
        CONTAINER4,
        6,
        7,
        &tcp(80, 40000, 555, 1_000_018, 0x18, 4, b"HTTP/1.0 200 OK\r\n"),
    );
    assert_eq!(id(&back_out, Side::Ingress), id(&back_in, Side::Ingress));
    // A connection's segment without payload (an ACK, a FIN, a window
    // update) is no syscall's data: not identified.
    for flags in [0x10, 0x11, 0x18, 0x19, 0x30] {
        let bare = ipv4(
            CONTAINER4,
            REMOTE4,
            6,
            99,
            &tcp(40000, 80, 1_000_000, 555, flags, 1, b""),
        );
        assert_eq!(identify(&bare, Side::Egress, 0), None, "flags {flags:#x}");
        let bare6 = ipv6(
            REMOTE6,
            CONTAINER6,
            6,
            &[],
            &tcp(80, 40000, 7, 8, flags, 1, b""),
        );
        assert_eq!(identify(&bare6, Side::Ingress, 0), None, "flags {flags:#x}");
    }
    // One byte of payload is enough. The payload is not in TCP's key: the
    // numbers tell segments apart, and a segment with the same numbers
    // (a retransmission) carries the same bytes.
    let one = ipv6(
        CONTAINER6,
        REMOTE6,
        6,
        &[],
        &tcp(40000, 80, 7, 8, 0x18, 1, b"a"),
    );
    let other = ipv6(
        CONTAINER6,
        REMOTE6,
        6,
        &[],
        &tcp(40000, 80, 7, 8, 0x18, 1, b"b"),
    );
    assert_eq!(id(&one, Side::Egress).pktid, 7);
    assert_eq!(id(&one, Side::Egress).key, id(&other, Side::Egress).key);
    let later = ipv6(
        CONTAINER6,
        REMOTE6,
        6,
        &[],
        &tcp(40000, 80, 8, 8, 0x18, 1, b"a"),
    );
    assert_ne!(id(&one, Side::Egress).key, id(&later, Side::Egress).key);
}

#[test]
fn unidentified_packets() {
    // ICMP that is not echo, other protocols, other IP versions, bad headers.
    let cases = [
        ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(3, 0, 0, 0, PING_PAYLOAD)),
        ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(11, 0, 0, 0, PING_PAYLOAD)),
        ipv6(
            CONTAINER6,
            REMOTE6,
            58,
            &[],
            &icmp(135, 0, 0, 0, PING_PAYLOAD),
        ),
        ipv4(CONTAINER4, REMOTE4, 47, 1, &[0; 40]),
        ipv6(CONTAINER6, REMOTE6, 50, &[], &[0; 40]),
        ipv6(CONTAINER6, REMOTE6, 59, &[], &[]),
        vec![0x55; 60],
        vec![0x41; 60], // IPv4 with IHL 1
        vec![],
    ];
    for (i, p) in cases.iter().enumerate() {
        assert_eq!(identify(p, Side::Egress, 0), None, "case {i}");
    }
    // TCP with a data offset below 5 words.
    let mut bad = ipv4(
        CONTAINER4,
        REMOTE4,
        6,
        1,
        &tcp(1, 2, 3, 4, 0x18, 0, b"data"),
    );
    bad[20 + 12] = 4 << 4;
    assert_eq!(identify(&bad, Side::Egress, 0), None);
}

#[test]
fn truncated_packets_never_panic_and_never_match_the_whole() {
    let whole = ipv4(
        CONTAINER4,
        REMOTE4,
        17,
        1,
        &udp(1, 2, 0, b"some payload bytes here"),
    );
    let full = id(&whole, Side::Egress);
    for n in 0..whole.len() {
        assert!(!key_within(&whole[..n]), "UDP's key reads its payload");
        if let Some(i) = identify(&whole[..n], Side::Egress, 0) {
            // Only cuts after the remote port are identified, and then the
            // key lacks payload bytes: it never equals the whole's.
            assert!(n >= 20 + 4, "identified with only {n} bytes");
            assert_ne!(i.key, full.key, "cut at {n}");
        }
    }
}

#[test]
fn a_tcp_segment_is_known_by_its_headers() {
    // A TCP sender's data is in page fragments: a probe reads the linear
    // part, the headers, in place, and key_within() says when that will do.
    let payload: Vec<u8> = (0..200u8).collect();
    let v4 = ipv4(
        CONTAINER4,
        REMOTE4,
        6,
        1,
        &tcp(1, 2, 3, 4, 0x18, 0, &payload),
    );
    let v6 = ipv6(
        CONTAINER6,
        REMOTE6,
        0,
        &[6, 0, 1, 4, 0, 0, 0, 0],
        &tcp(1, 2, 3, 4, 0x18, 0, &payload),
    );
    for (whole, l4) in [(&v4, 20), (&v6, 48)] {
        let full = identify(whole, Side::Egress, 0).unwrap();
        for n in 0..whole.len() {
            let prefix = &whole[..n];
            assert_eq!(key_within(prefix), n >= l4 + 14, "cut at {n}");
            if key_within(prefix) {
                assert_eq!(identify(prefix, Side::Egress, 0), Some(full), "cut at {n}");
                assert_eq!(
                    identify(prefix, Side::Egress, 1000),
                    identify(whole, Side::Egress, 1000)
                );
                for side in [Side::Egress, Side::Ingress] {
                    assert_eq!(
                        packet_id(prefix, side),
                        packet_id(whole, side),
                        "cut at {n}"
                    );
                    assert_eq!(
                        fingerprint(prefix, side),
                        fingerprint(whole, side),
                        "cut at {n}"
                    );
                }
            }
        }
    }
    // ICMP reads its payload; so do fragments and what is not IP.
    let ping = ipv4(CONTAINER4, REMOTE4, 1, 1, &icmp(8, 1, 7, 0, PING_PAYLOAD));
    assert!((0..=ping.len()).all(|n| !key_within(&ping[..n])));
    let mut frag = v4.clone();
    frag[6] = 0x00;
    frag[7] = 0x10;
    assert!(!key_within(&frag));
    assert!(!key_within(&[0x55; 60]));
}

#[test]
fn only_the_captured_prefix_matters() {
    // Bytes past CAPTURE_BYTES are not looked at.
    let big = vec![0x61u8; 1400];
    let p = ipv4(CONTAINER4, REMOTE4, 17, 1, &udp(1, 2, 0, &big));
    let mut q = p.clone();
    q[CAPTURE_BYTES + 10] ^= 0xff;
    assert_eq!(id(&p, Side::Egress), id(&q, Side::Egress));
}

#[test]
fn random_bytes_never_panic() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = [0u8; 256];
    for round in 0..200_000u32 {
        fill_random(&mut s, &mut buf);
        // Make most inputs look like IP so that deeper code runs.
        buf[0] = match round % 3 {
            0 => 0x45,
            1 => 0x60,
            _ => buf[0],
        };
        if round % 2 == 0 {
            buf[9] = [1, 6, 17, 58][(round / 2 % 4) as usize];
            buf[6] = [0, 43, 44, 58][(round / 8 % 4) as usize];
        }
        let len = (s % 257) as usize;
        let _ = identify(&buf[..len.min(256)], Side::Egress, 0);
        let _ = identify(&buf[..len.min(256)], Side::Ingress, 0);
        let _ = fingerprint(&buf[..len.min(256)], Side::Ingress);
    }
}

/// What `packet_id` must say of `p`: what `identify` says, on either side,
/// whatever the GSO size.
fn check_packet_id(p: &[u8], what: &str) {
    for side in [Side::Ingress, Side::Egress] {
        let want = identify(p, side, 0).map(|i| PacketId {
            pktid: i.pktid,
            proto: i.proto,
            first_fragment: i.first_fragment,
        });
        assert_eq!(packet_id(p, side), want, "{what}, {side:?}");
        // The two at once: exactly when the packet is identified, with
        // the fingerprint it has on its own (which it then always has).
        let both = want.map(|id| {
            let fp = fingerprint(p, side);
            assert!(fp.is_some(), "{what}, {side:?}: identified, no fingerprint");
            (fp.unwrap_or(0), id)
        });
        assert_eq!(fingerprint_id(p, side), both, "{what}, {side:?}");
        for gso in [1, 100, 1400] {
            let with_gso = identify(p, side, gso).map(|i| PacketId {
                pktid: i.pktid,
                proto: i.proto,
                first_fragment: i.first_fragment,
            });
            assert_eq!(with_gso, want, "{what}, {side:?}, gso {gso}");
        }
    }
}

/// Fills `buf` with bytes of the xorshift generator whose state is `s`.
fn fill_random(s: &mut u64, buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *b = *s as u8;
    }
}

#[test]
fn packet_id_is_identify_without_the_key() {
    let packets = [
        ipv4(REMOTE4, CONTAINER4, 1, 9, &icmp(0, 1, 7, 0, PING_PAYLOAD)),
        ipv4(REMOTE4, CONTAINER4, 1, 9, &icmp(3, 1, 7, 0, PING_PAYLOAD)),
        ipv4(
            REMOTE4,
            CONTAINER4,
            17,
            9,
            &udp(53, 4000, 0, b"\x01\x02\x03\x04more"),
        ),
        ipv4(REMOTE4, CONTAINER4, 17, 9, &udp(53, 4000, 0, b"\x01\x02")),
        ipv4(
            REMOTE4,
            CONTAINER4,
            6,
            9,
            &tcp(80, 4000, 0x1234_5678, 4, 0x18, 0, b"data"),
        ),
        ipv6(
            REMOTE6,
            CONTAINER6,
            58,
            &[],
            &icmp(129, 1, 7, 0, PING_PAYLOAD),
        ),
        ipv6(REMOTE6, CONTAINER6, 17, &[], &udp(53, 4000, 0, b"abcdefgh")),
        ipv4(
            ROUTER4,
            CONTAINER4,
            1,
            9,
            &icmp_error(11, 0, 0, &probe4(CONTAINER4, 1, 0, 4)),
        ),
        ipv4(
            ROUTER4,
            CONTAINER4,
            1,
            9,
            &icmp_error(
                3,
                3,
                0,
                &ipv4(CONTAINER4, REMOTE4, 1, 2, &icmp(8, 1, 7, 0, PING_PAYLOAD)),
            ),
        ),
        ipv6(
            ROUTER6,
            CONTAINER6,
            58,
            &[],
            &icmp_error(3, 0, 0, &probe6(CONTAINER6, 1, 0, 4)),
        ),
    ];
    for (i, p) in packets.iter().enumerate() {
        check_packet_id(p, &format!("packet {i}"));
        for n in 0..p.len() {
            check_packet_id(&p[..n], &format!("packet {i} cut at {n}"));
        }
    }
    // Random bytes that look like IP.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut buf = [0u8; 200];
    // Bare TCP segments of every flag combination, with and without a
    // header cut short.
    for flags in 0..=255u8 {
        let v4 = ipv4(
            REMOTE4,
            CONTAINER4,
            6,
            9,
            &tcp(80, 4000, 1, 2, flags, 0, b""),
        );
        let v6 = ipv6(
            REMOTE6,
            CONTAINER6,
            6,
            &[],
            &tcp(80, 4000, 1, 2, flags, 0, b""),
        );
        for p in [v4, v6] {
            for n in 0..=p.len() {
                check_packet_id(&p[..n], &format!("bare TCP, flags {flags:#x}, cut at {n}"));
            }
        }
    }
    for round in 0..50_000u32 {
        fill_random(&mut s, &mut buf);
        buf[0] = if round % 2 == 0 { 0x45 } else { 0x60 };
        buf[9] = [1, 6, 17, 58][(round / 2 % 4) as usize];
        buf[6] = [1, 6, 17, 58, 44, 0][(round / 8 % 6) as usize];
        let len = (s % 201) as usize;
        check_packet_id(&buf[..len], &format!("random round {round}"));
    }
}

/// A SYN probe (`hping3 -S`, `traceroute -T`) from `src`, source port
/// `sport`, with sequence number `seq`; `csum` stands for what NAT rewrites.
fn syn_probe4(src: [u8; 4], sport: u16, seq: u32, csum: u16) -> Vec<u8> {
    ipv4(
        src,
        REMOTE4,
        6,
        0x0101,
        &tcp(sport, 80, seq, 0, 0x02, csum, b""),
    )
}

#[test]
fn a_syn_probe_and_its_answers_survive_nat_and_share_an_id() {
    // A bare segment from the remote host's port 80 to `dst`, port `dport`.
    let from_remote = |dst: [u8; 4], dport: u16, seq: u32, ack: u32, flags: u8, csum: u16| {
        ipv4(
            REMOTE4,
            dst,
            6,
            0,
            &tcp(80, dport, seq, ack, flags, csum, b""),
        )
    };
    // The probe, before and after masquerade (another source address and
    // port, another checksum).
    let inside = syn_probe4(CONTAINER4, 40000, 0xdead_beef, 1);
    let outside = syn_probe4(OUTER4, 51000, 0xdead_beef, 2);
    let e = id(&inside, Side::Egress);
    assert_eq!(e, id(&outside, Side::Egress));
    assert_eq!((e.pktid, e.proto), (0xdead_beef, Proto::Tcp));
    // Its answers, before and after the reverse NAT: a SYN-ACK from an open
    // port, a reset from a closed one. Each names the probe's sequence
    // number, which it acknowledges plus one; the two are told apart.
    let mut keys = Vec::new();
    for flags in [0x12, 0x14] {
        let out = id(
            &from_remote(OUTER4, 51000, 77, 0xdead_bef0, flags, 3),
            Side::Ingress,
        );
        let back = id(
            &from_remote(CONTAINER4, 40000, 77, 0xdead_bef0, flags, 4),
            Side::Ingress,
        );
        assert_eq!(out, back, "flags {flags:#x}");
        assert_eq!(
            (out.pktid, out.proto),
            (0xdead_beef, Proto::Tcp),
            "flags {flags:#x}"
        );
        keys.push(out.key);
    }
    assert_ne!(keys[0], keys[1]);
    // Across the wrap of the sequence space.
    let wrap = from_remote(CONTAINER4, 40000, 5, 0, 0x12, 0);
    assert_eq!(id(&wrap, Side::Ingress).pktid, u32::MAX);
    // A reset without ACK (the answer to a segment that acknowledges
    // something, `hping3 -A`) takes no sequence number: it names the number
    // before its own, which is what that segment acknowledged.
    let rst = from_remote(CONTAINER4, 40000, 1234, 0, 0x04, 0);
    assert_eq!(id(&rst, Side::Ingress).pktid, 1233);
    // Probes of other flags (`hping3`'s default without flags, SYN-FIN,
    // FIN and Xmas scans), and the reset that answers each (which
    // acknowledges the probe's sequence number plus one for each of SYN
    // and FIN), through the NAT both ways: one id for the two, the end of
    // the probe's sequence space less one.
    for (flags, offset) in [(0x00u8, -1), (0x08, -1), (0x03, 1), (0x01, 0), (0x29, 0)] {
        let takes = u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0);
        let probe = |src: [u8; 4], sport: u16, seq: u32, csum: u16| {
            ipv4(
                src,
                REMOTE4,
                6,
                0,
                &tcp(sport, 80, seq, 0, flags, csum, b""),
            )
        };
        for seq in [99u32, 0] {
            let want = seq.wrapping_add_signed(offset);
            let inside = id(&probe(CONTAINER4, 40000, seq, 1), Side::Egress);
            let outside = id(&probe(OUTER4, 51000, seq, 2), Side::Egress);
            assert_eq!(inside, outside, "flags {flags:#x}");
            assert_eq!(inside.pktid, want, "flags {flags:#x}, seq {seq}");
            let acked = seq.wrapping_add(takes);
            let out = from_remote(OUTER4, 51000, 0, acked, 0x14, 3);
            let back = from_remote(CONTAINER4, 40000, 0, acked, 0x14, 4);
            let answer = id(&out, Side::Ingress);
            assert_eq!(answer, id(&back, Side::Ingress), "flags {flags:#x}");
            assert_eq!(answer.pktid, inside.pktid, "flags {flags:#x}, seq {seq}");
        }
    }
    // Two probes of one run differ by their sequence numbers, or by their
    // ports (hping3 counts its probes in the source port, which NAT
    // rewrites; the key holds the destination port).
    let next = syn_probe4(CONTAINER4, 40000, 0xdead_bef0, 1);
    assert_ne!(e.key, id(&next, Side::Egress).key);
    let other_port = ipv4(
        CONTAINER4,
        REMOTE4,
        6,
        0x0101,
        &tcp(40000, 81, 0xdead_beef, 0, 0x02, 1, b""),
    );
    assert_ne!(e.key, id(&other_port, Side::Egress).key);
}

#[test]
fn an_icmp_error_quoting_a_syn_probe_names_it() {
    // `traceroute -T`: a router's time exceeded quotes the probe as it left
    // the host (masqueraded).
    let sent = id(&syn_probe4(CONTAINER4, 40000, 0x0102_0304, 1), Side::Egress);
    let error = |dst: [u8; 4], quote: &[u8]| ipv4(ROUTER4, dst, 1, 5, &icmp_error(11, 0, 0, quote));
    let out = error(OUTER4, &syn_probe4(OUTER4, 51000, 0x0102_0304, 2));
    let back = error(CONTAINER4, &syn_probe4(CONTAINER4, 40000, 0x0102_0304, 1));
    let e = id(&out, Side::Ingress);
    assert_eq!(e, id(&back, Side::Ingress));
    assert_eq!((e.pktid, e.proto), (sent.pktid, Proto::Icmp));
    assert_eq!(
        packet_id(&out, Side::Ingress).map(|p| p.pktid),
        Some(0x0102_0304)
    );
    // A quote of eight TCP bytes (ports and sequence number) lacks the
    // flags: not identified.
    let short = error(OUTER4, &syn_probe4(OUTER4, 51000, 0x0102_0304, 2)[..28]);
    assert_eq!(identify(&short, Side::Ingress, 0), None);
}

#[test]
fn a_tcp_segment_carries_a_send_only_from_its_first_byte_on() {
    let seg = |seq: u32| {
        id(
            &ipv4(
                CONTAINER4,
                REMOTE4,
                6,
                7,
                &tcp(40000, 80, seq, 1, 0x18, 0, b"data"),
            ),
            Side::Egress,
        )
        .packet_id()
    };
    // The syscall wrote from sequence number 1000 on.
    assert!(seg(1000).carries_send_of(Some(1000)));
    assert!(seg(5000).carries_send_of(Some(1000)));
    // Older data or a retransmission, sent from inside a later syscall.
    assert!(!seg(999).carries_send_of(Some(1000)));
    assert!(!seg(0).carries_send_of(Some(1000)));
    // Serial number arithmetic across the wrap of the sequence space.
    assert!(seg(5).carries_send_of(Some(u32::MAX - 5)));
    assert!(!seg(u32::MAX - 6).carries_send_of(Some(u32::MAX - 5)));
    // No TCP socket's start: a raw socket's segment, the bytes its send
    // wrote.
    assert!(seg(1000).carries_send_of(None));
    assert!(seg(0).carries_send_of(None));
}

#[test]
fn a_datagram_leaving_inside_its_send_is_that_send() {
    let ping = id(
        &ipv4(CONTAINER4, REMOTE4, 1, 7, &icmp(8, 1, 3, 0, PING_PAYLOAD)),
        Side::Egress,
    );
    let dgram = id(
        &ipv4(CONTAINER4, REMOTE4, 17, 7, &udp(5000, 53, 0, b"abcd")),
        Side::Egress,
    );
    for p in [ping.packet_id(), dgram.packet_id()] {
        assert!(p.carries_send_of(None));
        assert!(p.carries_send_of(Some(12)));
    }
}

/// The first `n` bytes of payload `i`, a TCP segment carrying bytes
/// `seq..seq + n` of a stream whose byte `k` is `k % 251`.
fn stream(seq: u32, n: usize) -> Vec<u8> {
    (0..n).map(|k| ((seq as usize + k) % 251) as u8).collect()
}

/// An IPv4 packet with `l4` as its transport header and payload, but an IP
/// total length that says `total_l4` bytes follow the IP header: what a
/// probe sees of a GSO packet, whose payload it reads only the start of.
fn ipv4_claiming(l4: &[u8], proto: u8, id: u16, total_l4: usize) -> Vec<u8> {
    let mut p = ipv4(CONTAINER4, REMOTE4, proto, id, l4);
    let total = (20 + total_l4) as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p
}

#[test]
fn a_tcp_gso_packet_is_its_first_segment() {
    let mss = 1448usize;
    // A GSO packet of three segments, with PSH set (only its last segment
    // will keep it), seen with its first 100 bytes of payload.
    let gso = ipv4_claiming(
        &tcp(40000, 80, 5000, 9, 0x18, 0, &stream(5000, 100)),
        6,
        77,
        32 + 3 * mss,
    );
    // Its first segment on the wire: one MSS, ACK only.
    let first = ipv4_claiming(
        &tcp(40000, 80, 5000, 9, 0x10, 0, &stream(5000, 100)),
        6,
        77,
        32 + mss,
    );
    let g = identify(&gso, Side::Egress, mss as u16).unwrap();
    let f = identify(&first, Side::Egress, 0).unwrap();
    assert_eq!(g.key, f.key, "the GSO packet and its first segment");
    assert_eq!(g.pktid, 5000);
    // Unsegmented identity differs (other length and flags).
    assert_ne!(identify(&gso, Side::Egress, 0).unwrap().key, f.key);
    // A packet that fits one segment is itself, GSO or not.
    let small = ipv4_claiming(
        &tcp(40000, 80, 5000, 9, 0x18, 0, &stream(5000, 100)),
        6,
        77,
        32 + 100,
    );
    assert_eq!(
        identify(&small, Side::Egress, mss as u16).unwrap().key,
        identify(&small, Side::Egress, 0).unwrap().key
    );
    // The second segment is another packet.
    let second = ipv4_claiming(
        &tcp(
            40000,
            80,
            5000 + mss as u32,
            9,
            0x10,
            0,
            &stream(5000 + mss as u32, 100),
        ),
        6,
        78,
        32 + mss,
    );
    assert_ne!(identify(&second, Side::Egress, 0).unwrap().key, f.key);
}

#[test]
fn a_udp_gso_packet_is_its_first_datagram() {
    let size = 1200usize;
    let payload = b"\x00\x00\x00\x07first datagram of a UDP_SEGMENT send";
    // udp(): the UDP length field says what the slice holds; the segments'
    // headers say their own length.
    let mut gso_l4 = udp(5000, 53, 0, payload);
    gso_l4[4..6].copy_from_slice(&((8 + 4 * size) as u16).to_be_bytes());
    let gso = ipv4_claiming(&gso_l4, 17, 5, 8 + 4 * size);
    let mut first_l4 = udp(5000, 53, 0, payload);
    first_l4[4..6].copy_from_slice(&((8 + size) as u16).to_be_bytes());
    let first = ipv4_claiming(&first_l4, 17, 5, 8 + size);
    let g = identify(&gso, Side::Egress, size as u16).unwrap();
    let f = identify(&first, Side::Egress, 0).unwrap();
    assert_eq!(g.key, f.key);
    assert_eq!(g.pktid, 7);
    assert_ne!(identify(&gso, Side::Egress, 0).unwrap().key, f.key);
}

#[test]
fn tcp_segments_without_payload_have_no_fingerprint() {
    use Side::{Egress, Ingress};
    let ack = tcp(80, 4000, 0x1234_5678, 4, 0x10, 0, b"");
    // A probe, or a probe's answer: both.
    for flags in [0x02, 0x12, 0x04, 0x14, 0x00, 0x01, 0x29] {
        let bare = tcp(80, 4000, 0x1234_5678, 4, flags, 0, b"");
        for p in [
            ipv4(REMOTE4, CONTAINER4, 6, 9, &bare),
            ipv6(REMOTE6, CONTAINER6, 6, &[], &bare),
        ] {
            for side in [Ingress, Egress] {
                assert!(packet_id(&p, side).is_some(), "flags {flags:#x}");
                assert!(fingerprint(&p, side).is_some(), "flags {flags:#x}");
            }
        }
    }
    let data = tcp(80, 4000, 0x1234_5678, 4, 0x18, 0, b"d");
    let v4 = |l4: &[u8]| ipv4(REMOTE4, CONTAINER4, 6, 9, l4);
    let v6 = |l4: &[u8]| ipv6(REMOTE6, CONTAINER6, 6, &[], l4);
    for side in [Ingress, Egress] {
        // No byte a reader could get: no identity, and no fingerprint.
        for p in [v4(&ack), v6(&ack)] {
            assert_eq!(packet_id(&p, side), None);
            assert_eq!(fingerprint(&p, side), None, "{side:?}");
        }
        // One byte of payload is enough for both.
        for p in [v4(&data), v6(&data)] {
            assert!(packet_id(&p, side).is_some());
            assert!(fingerprint(&p, side).is_some(), "{side:?}");
        }
        // IPv4 options before the segment.
        let mut opts = v4(&ack);
        opts[0] = 0x46;
        opts.splice(20..20, [1, 1, 1, 0]);
        let total = opts.len() as u16;
        opts[2..4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(fingerprint(&opts, side), None, "IPv4 options");
        // A fragment, or a header cut short, is fingerprinted as before.
        let mut frag = v4(&ack);
        frag[6] = 0x20;
        assert!(fingerprint(&frag, side).is_some(), "first fragment");
        assert!(fingerprint(&v4(&ack)[..30], side).is_some(), "cut short");
        // An extension header before the segment: not looked into.
        let hop = [6, 0, 0, 0, 0, 0, 0, 0];
        let ext = ipv6(REMOTE6, CONTAINER6, 0, &hop, &ack);
        assert!(fingerprint(&ext, side).is_some(), "extension header");
    }
}

/// A router on the way to the remote host, which sends errors.
const ROUTER4: [u8; 4] = [198, 18, 0, 254];
const ROUTER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe,
];

/// An ICMP or ICMPv6 error of type `ty` and code `code` quoting `quote`.
fn icmp_error(ty: u8, code: u8, csum: u16, quote: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, code];
    h.extend_from_slice(&csum.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(quote);
    h
}

/// A traceroute's UDP probe to the remote host, numbered `n` in the first
/// bytes of its payload, from `src` and source port `sport`, as the
/// container sends it or (masqueraded) as the outer device does.
fn probe4(src: [u8; 4], sport: u16, csum: u16, n: u8) -> Vec<u8> {
    let payload = [n, 2, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45];
    ipv4(
        src,
        REMOTE4,
        17,
        0x0500 | u16::from(n),
        &udp(sport, 33434 + u16::from(n), csum, &payload),
    )
}

fn probe6(src: [u8; 16], sport: u16, csum: u16, n: u8) -> Vec<u8> {
    let payload = [n, 2, 0, 0, 0x40, 0x41, 0x42, 0x43];
    ipv6(
        src,
        REMOTE6,
        17,
        &[],
        &udp(sport, 33434 + u16::from(n), csum, &payload),
    )
}

#[test]
fn an_icmp_error_is_known_by_the_packet_it_quotes() {
    let (inside, outside) = (
        probe4(CONTAINER4, 40000, 0x1111, 5),
        probe4(OUTER4, 61000, 0x2222, 5),
    );
    // Time exceeded, from a router: at the outer device it quotes the
    // masqueraded probe; the reverse NAT rewrites the quote back.
    let at_outer = ipv4(
        ROUTER4,
        OUTER4,
        1,
        0x0999,
        &icmp_error(11, 0, 0x3333, &outside),
    );
    let at_container = ipv4(
        ROUTER4,
        CONTAINER4,
        1,
        0x0999,
        &icmp_error(11, 0, 0x4444, &inside),
    );
    let a = id(&at_outer, Side::Ingress);
    assert_eq!(a, id(&at_container, Side::Ingress));
    // Its id is the probe's, as the probe's egress line shows it.
    assert_eq!(a.pktid, id(&inside, Side::Egress).pktid);
    assert_eq!((a.pktid, a.proto), (0x0502_0000, Proto::Icmp));
    // And it is not the probe's key, nor that of another probe's error.
    assert_ne!(a.key, id(&inside, Side::Egress).key);
    let other = ipv4(
        ROUTER4,
        OUTER4,
        1,
        0x0999,
        &icmp_error(11, 0, 0x3333, &probe4(OUTER4, 61000, 0x2222, 6)),
    );
    assert_ne!(a.key, id(&other, Side::Ingress).key);
    // What tells errors apart: the type, the code, the router, the error's
    // own IPv4 id, the quoted packet's destination.
    let keys = [
        ipv4(ROUTER4, OUTER4, 1, 0x0999, &icmp_error(3, 3, 0, &outside)),
        ipv4(ROUTER4, OUTER4, 1, 0x0999, &icmp_error(11, 1, 0, &outside)),
        ipv4(REMOTE4, OUTER4, 1, 0x0999, &icmp_error(11, 0, 0, &outside)),
        ipv4(ROUTER4, OUTER4, 1, 0x0998, &icmp_error(11, 0, 0, &outside)),
        ipv4(
            ROUTER4,
            OUTER4,
            1,
            0x0999,
            &icmp_error(11, 0, 0, &{
                let mut p = outside.clone();
                p[16..20].copy_from_slice(&ROUTER4);
                p
            }),
        ),
    ];
    for (i, p) in keys.iter().enumerate() {
        assert_ne!(id(p, Side::Ingress).key, a.key, "variant {i}");
    }
    // A container never sends an error that is identified.
    assert_eq!(identify(&at_container, Side::Egress, 0), None);
    assert_eq!(packet_id(&at_container, Side::Egress), None);
}

#[test]
fn an_icmp_error_quoting_eight_bytes_still_names_its_probe() {
    // RFC 792 routers quote the IP header and 8 bytes: the UDP header, no
    // payload, so the id is 0 (the payload's bytes, zero-padded).
    let (inside, outside) = (
        probe4(CONTAINER4, 40000, 0x1111, 7),
        probe4(OUTER4, 61000, 0x2222, 7),
    );
    let at_outer = ipv4(ROUTER4, OUTER4, 1, 7, &icmp_error(11, 0, 1, &outside[..28]));
    let at_container = ipv4(
        ROUTER4,
        CONTAINER4,
        1,
        7,
        &icmp_error(11, 0, 2, &inside[..28]),
    );
    let a = id(&at_outer, Side::Ingress);
    assert_eq!(a, id(&at_container, Side::Ingress));
    assert_eq!(a.pktid, 0);
    // Quoting less than the probe's destination port: nothing identifies
    // it.
    let short = ipv4(ROUTER4, OUTER4, 1, 7, &icmp_error(11, 0, 1, &outside[..23]));
    assert_eq!(identify(&short, Side::Ingress, 0), None);
}

#[test]
fn an_icmp_error_quoting_an_echo_request_carries_its_sequence_number() {
    let (request, masqueraded) = echo_request_masqueraded(9);
    let at_outer = ipv4(ROUTER4, OUTER4, 1, 3, &icmp_error(11, 0, 1, &masqueraded));
    let at_container = ipv4(ROUTER4, CONTAINER4, 1, 3, &icmp_error(11, 0, 2, &request));
    let a = id(&at_outer, Side::Ingress);
    assert_eq!(a, id(&at_container, Side::Ingress));
    assert_eq!((a.pktid, a.proto), (9, Proto::Icmp));
}

#[test]
fn icmpv6_errors_are_known_by_the_packet_they_quote() {
    let (inside, outside) = (probe6(CONTAINER6, 40000, 1, 3), probe6(OUTER6, 61000, 2, 3));
    for ty in [1, 2, 3, 4] {
        let at_outer = ipv6(ROUTER6, OUTER6, 58, &[], &icmp_error(ty, 0, 5, &outside));
        let at_container = ipv6(ROUTER6, CONTAINER6, 58, &[], &icmp_error(ty, 0, 6, &inside));
        let a = id(&at_outer, Side::Ingress);
        assert_eq!(a, id(&at_container, Side::Ingress), "type {ty}");
        assert_eq!((a.pktid, a.proto), (0x0302_0000, Proto::Icmp6), "type {ty}");
    }
    // Behind a destination options header.
    let opts = [58, 0, 1, 4, 0, 0, 0, 0];
    let with_ext = ipv6(ROUTER6, OUTER6, 60, &opts, &icmp_error(3, 0, 5, &outside));
    assert_eq!(id(&with_ext, Side::Ingress).pktid, 0x0302_0000);
    // Not an error: neighbour discovery, a redirect.
    for ty in [133, 135, 137] {
        let p = ipv6(ROUTER6, OUTER6, 58, &[], &icmp_error(ty, 0, 5, &outside));
        assert_eq!(identify(&p, Side::Ingress, 0), None, "type {ty}");
    }
}

#[test]
fn icmp_errors_that_are_not_identified() {
    let outside = probe4(OUTER4, 61000, 0x2222, 5);
    let cases = [
        // ICMP that is not an error (a redirect, a timestamp reply).
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(5, 0, 0, &outside)),
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(14, 0, 0, &outside)),
        // Quoting a packet mace does not identify: a bare TCP ACK, GRE,
        // garbage.
        ipv4(
            ROUTER4,
            OUTER4,
            1,
            1,
            &icmp_error(
                11,
                0,
                0,
                &ipv4(OUTER4, REMOTE4, 6, 1, &tcp(1, 2, 3, 4, 0x10, 0, b"")),
            ),
        ),
        ipv4(
            ROUTER4,
            OUTER4,
            1,
            1,
            &icmp_error(11, 0, 0, &ipv4(OUTER4, REMOTE4, 47, 1, &[0; 16])),
        ),
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(11, 0, 0, PING_PAYLOAD)),
        // An error quoting an error: the quote is seen as it left, where
        // no error is identified.
        ipv4(
            ROUTER4,
            OUTER4,
            1,
            1,
            &icmp_error(
                11,
                0,
                0,
                &ipv4(OUTER4, REMOTE4, 1, 1, &icmp_error(3, 3, 0, &outside)),
            ),
        ),
    ];
    for (i, p) in cases.iter().enumerate() {
        assert_eq!(identify(p, Side::Ingress, 0), None, "case {i}");
        check_packet_id(p, &format!("case {i}"));
    }
}

#[test]
fn quoted_by_error_finds_the_quote() {
    let outside = probe4(OUTER4, 61000, 0x2222, 5);
    let err = ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(11, 0, 0, &outside));
    assert_eq!(quoted_by_error(&err), Some(&outside[..]));
    let outside6 = probe6(OUTER6, 61000, 2, 3);
    let err6 = ipv6(ROUTER6, OUTER6, 58, &[], &icmp_error(3, 0, 0, &outside6));
    assert_eq!(quoted_by_error(&err6), Some(&outside6[..]));
    let opts = [58, 0, 1, 4, 0, 0, 0, 0];
    let err6_ext = ipv6(ROUTER6, OUTER6, 60, &opts, &icmp_error(1, 4, 0, &outside6));
    assert_eq!(quoted_by_error(&err6_ext), Some(&outside6[..]));
    for p in [
        ipv4(REMOTE4, OUTER4, 1, 1, &icmp(0, 1, 2, 0, PING_PAYLOAD)),
        ipv6(REMOTE6, OUTER6, 58, &[], &icmp(129, 1, 2, 0, PING_PAYLOAD)),
        outside.clone(),
        err[..27].to_vec(),
        vec![],
        vec![0x45],
    ] {
        assert_eq!(quoted_by_error(&p), None, "{p:?}");
    }
    // Cut anywhere: never a panic, and a quote only once the ICMP header
    // is whole.
    for n in 0..err.len() {
        assert_eq!(quoted_by_error(&err[..n]).is_some(), n >= 28, "cut at {n}");
    }
}

/// `may_be_error` on the first 40 bytes of `p`, as the outer device reads
/// them, is true wherever `quoted_by_error` finds a quote in `p`.
fn check_may_be_error(p: &[u8], what: &str) {
    if quoted_by_error(p).is_some() {
        assert!(may_be_error(&p[..p.len().min(40)]), "{what}");
    }
}

#[test]
fn may_be_error_lets_every_error_through_and_little_else() {
    let outside = probe4(OUTER4, 61000, 0x2222, 5);
    let outside6 = probe6(OUTER6, 61000, 2, 3);
    let opts = [58, 0, 1, 4, 0, 0, 0, 0];
    let mut with_options = ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(11, 0, 0, &outside));
    // 24 bytes of IPv4 options: the ICMP type lies past the first 40.
    with_options[0] = 0x4b;
    with_options.splice(20..20, [1u8; 24]);
    let errors = [
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(11, 0, 0, &outside)),
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(3, 3, 0, &outside)),
        ipv4(ROUTER4, OUTER4, 1, 1, &icmp_error(12, 0, 0, &outside)),
        with_options,
        ipv6(ROUTER6, OUTER6, 58, &[], &icmp_error(3, 0, 0, &outside6)),
        ipv6(ROUTER6, OUTER6, 60, &opts, &icmp_error(1, 4, 0, &outside6)),
    ];
    for (i, p) in errors.iter().enumerate() {
        assert!(quoted_by_error(p).is_some(), "error {i}");
        assert!(may_be_error(&p[..40]), "error {i}");
    }
    let others = [
        ipv4(REMOTE4, OUTER4, 1, 1, &icmp(0, 1, 2, 0, PING_PAYLOAD)),
        ipv4(REMOTE4, OUTER4, 17, 1, &udp(53, 4000, 0, b"abcdefgh")),
        ipv4(
            REMOTE4,
            OUTER4,
            6,
            1,
            &tcp(80, 4000, 1, 2, 0x18, 0, b"data"),
        ),
        ipv6(REMOTE6, OUTER6, 17, &[], &udp(53, 4000, 0, b"abcdefgh")),
        vec![],
        vec![0x55; 60],
    ];
    for (i, p) in others.iter().enumerate() {
        assert!(!may_be_error(&p[..p.len().min(40)]), "other {i}");
    }
    for (i, p) in errors.iter().chain(others.iter()).enumerate() {
        for n in 0..=p.len() {
            check_may_be_error(&p[..n], &format!("packet {i} cut at {n}"));
        }
    }
    // Random bytes that look like IP, ICMP most of the time.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = [0u8; 120];
    for round in 0..50_000u32 {
        fill_random(&mut s, &mut buf);
        if round % 2 == 0 {
            buf[0] = 0x45 + (round / 2 % 3) as u8;
            buf[9] = 1;
        } else {
            buf[0] = 0x60;
            buf[6] = [58, 0, 60, 17][(round / 2 % 4) as usize];
        }
        buf[20] = [3, 11, 0, 8][(round / 8 % 4) as usize];
        buf[40] = [1, 3, 128, 2][(round / 8 % 4) as usize];
        let len = (s % 121) as usize;
        check_may_be_error(&buf[..len], &format!("random round {round}"));
    }
}
