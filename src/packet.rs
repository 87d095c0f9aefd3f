// SPDX-License-Identifier: GPL-2.0

//! Packet identity: the key that finds the same packet at both ends of a
//! latency window, and the packet id shown to users.
//!
//! A probe copies the first bytes of a packet, from its IP header on, and
//! calls [`identify`]. The key must be the same for the packet as the
//! container's stack sends it and as the outer device transmits it after the
//! bridge and the masquerading NAT, and likewise for a reply. So it is built
//! only from fields that source NAT (masquerade) and its reverse leave alone:
//!
//! - the **remote** end's address and port: the destination on egress, the
//!   source on ingress (NAT rewrites the container's side only);
//! - the IP version, the transport protocol and the IP payload length;
//! - the IPv4 identification field (forwarding and NAT keep it);
//! - ICMP and ICMPv6 echo: type, code and sequence number, not the
//!   identifier (NAT and ping sockets rewrite it) nor the checksum;
//! - UDP: the length; TCP: sequence and acknowledgment numbers and flags;
//! - ICMP, ICMPv6 and UDP: up to [`PAYLOAD_KEY_BYTES`] bytes of the
//!   transport payload. Not TCP: its numbers already tell its segments
//!   apart (a retransmission, the one segment they do not, carries the same
//!   bytes), so its key needs only its headers, which are in the linear
//!   part of a socket buffer even when the payload is in page fragments
//!   ([`key_within`]).
//!
//! A received ICMP or ICMPv6 error (destination unreachable, time exceeded,
//! parameter problem; for ICMPv6 also packet too big) is identified by the
//! packet it quotes, as that packet left ([`quoted_by_error`]): its type and
//! code, the router that sent it (its source), its own length and IPv4
//! identification, and the quoted packet's key on the egress side, which
//! the reverse NAT of the quote (the container's address and port) leaves
//! alone. Its id is the quoted packet's, so that a traceroute's reply from
//! a router carries the id of its probe. A packet a container sends is
//! never identified as an error.
//!
//! Packets that cannot be identified (other protocols, other ICMP, errors
//! quoting a packet that is not identified, non-first fragments, truncated
//! headers) give `None` and are ignored. A
//! first fragment is identified and says so (a receiver gets the datagram
//! reassembled, under another identity). A GSO packet gets the identity of
//! its first segment, so that it is found whether a device segments it or
//! sends it whole.
//!
//! A TCP segment without payload is identified only if it is a probe or a
//! probe's answer: a SYN, a reset, or a segment without ACK (what `hping3
//! -S`, `traceroute -T` or `tcptraceroute` send through a raw socket), and
//! the SYN-ACK or reset that answers it. The bare ACKs, window updates and
//! FINs of a connection are not: no send syscall sent their bytes and no
//! receive syscall returns them, and a bare ACK that TCP sends while its
//! task is in a send syscall (for data that arrived meanwhile) must not be
//! taken for the data that syscall sent.
//!
//! The packet id ([`Identity::pktid`]) is the ICMP sequence number for ICMP,
//! the TCP sequence number for TCP (for a segment without payload, the end
//! of its sequence space less one: a SYN's or a FIN's sequence number, a
//! segment with neither the number before its own; for a received SYN-ACK
//! or reset without payload that acknowledges, the acknowledgment less one:
//! the id of the probe it answers), and the first four bytes of the UDP
//! payload read as a big-endian number for UDP (zero-padded when shorter), so
//! that a UDP tool that numbers its datagrams there sees its own numbers.
//!
//! The rule that tells which syscall a packet belongs to also lives here
//! ([`PacketId::carries_send_of`]), so that adding a protocol touches this
//! file only.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

/// Bytes of the packet a probe copies, from the start of the IP header.
///
/// Enough for an IPv6 header with two small extension headers, a TCP header
/// with options, and [`PAYLOAD_KEY_BYTES`] of payload.
pub const CAPTURE_BYTES: usize = 192;

/// Bytes of transport payload that go into the key.
pub const PAYLOAD_KEY_BYTES: usize = 32;

/// Most IPv6 extension headers skipped before giving up.
const MAX_EXT_HEADERS: usize = 8;

/// Which end of the connection is the remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The packet leaves the container: the remote end is the destination.
    Egress,
    /// The packet comes to the container: the remote end is the source.
    Ingress,
}

/// Transport protocols mace identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// ICMP echo request or reply, or a received error.
    Icmp,
    /// ICMPv6 echo request or reply, or a received error.
    Icmp6,
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// What identifies a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The correlation key, never 0.
    pub key: u64,
    /// The id users see in `/dev/mace`.
    pub pktid: u32,
    /// The transport protocol.
    pub proto: Proto,
    /// Whether it is the first fragment of a fragmented IP packet (the only
    /// fragment with a transport header, and the only one identified).
    pub first_fragment: bool,
}

impl Identity {
    /// What this identity tells of the packet but its key.
    pub fn packet_id(&self) -> PacketId {
        PacketId {
            pktid: self.pktid,
            proto: self.proto,
            first_fragment: self.first_fragment,
        }
    }
}

/// [`PacketId::carries_send_of`] for a packet of `proto` with `pktid`.
fn carries_send_of(proto: Proto, pktid: u32, tcp_write_seq: Option<u32>) -> bool {
    match proto {
        Proto::Tcp => match tcp_write_seq {
            Some(start) => pktid.wrapping_sub(start) as i32 >= 0,
            None => raw_tcp_segment(),
        },
        Proto::Icmp | Proto::Icmp6 | Proto::Udp => true,
    }
}

/// [`carries_send_of`] of a TCP segment sent without a TCP socket's start:
/// a raw socket's, the bytes its send wrote, so true. Out of line, so that
/// the datagrams' way through `carries_send_of` stays a branch on the
/// protocol (inline, the compiler computed both ways for every packet).
#[cold]
#[inline(never)]
fn raw_tcp_segment() -> bool {
    true
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Whether a TCP segment without payload, with `flags`, is identified: a
/// SYN, a reset or a segment without ACK (a probe), or a SYN-ACK (an
/// answer); not a connection's bare ACK, window update or FIN.
#[inline(always)]
fn bare_tcp_identified(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_RST) != 0 || flags & TCP_ACK == 0
}

/// Whether a TCP segment `l4_len` bytes long from its header on, whose
/// header is `doff` bytes and whose flags are `flags`, is identified:
/// `Some(bare)`, with whether it is without payload, if it is; `None` for
/// a header shorter than its fixed part or than the segment says, and for a
/// connection's bare ACK, window update or FIN.
#[inline(always)]
fn tcp_identified(doff: usize, l4_len: usize, flags: u8) -> Option<bool> {
    let bare = l4_len == doff;
    let identified = doff >= 20 && l4_len >= doff && (!bare || bare_tcp_identified(flags));
    identified.then_some(bare)
}

/// The packet id of a TCP segment with sequence number `seq`,
/// acknowledgment `ack` and `flags`, seen from `side`, whose payload is
/// empty (`bare`) or not: its sequence number if it has payload; without,
/// the end of its sequence space less one (what an answer acknowledges,
/// less one), and for a received answer to a probe (a SYN-ACK, or a reset
/// that acknowledges) its acknowledgment less one, its probe's id.
///
/// A bare segment's sequence space is one number for each of SYN and FIN:
/// a SYN's or a FIN's id is its sequence number, a segment with neither
/// (`hping3`'s default probe) takes none, and its id is its sequence number
/// less one, because that is what the reset answering it acknowledges less
/// one.
#[inline(always)]
fn tcp_pktid(seq: u32, ack: u32, flags: u8, bare: bool, side: Side) -> u32 {
    if bare && side == Side::Ingress && flags & TCP_ACK != 0 {
        // An identified bare segment with ACK has SYN or RST.
        ack.wrapping_sub(1)
    } else if bare {
        bare_tcp_end(seq, flags)
    } else {
        seq
    }
}

/// The end, less one, of the sequence space of a bare TCP segment with
/// sequence number `seq` and `flags`: [`tcp_pktid`]'s rare case, out of
/// line so that a data segment's way through it stays a branch.
#[cold]
#[inline(never)]
fn bare_tcp_end(seq: u32, flags: u8) -> u32 {
    let takes = u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
    seq.wrapping_add(takes).wrapping_sub(1)
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// The [`Proto`] of an ICMP or ICMPv6 message, by its IP protocol number
/// `proto`.
#[inline(always)]
fn icmp_proto(proto: u8) -> Proto {
    if proto == IPPROTO_ICMP {
        Proto::Icmp
    } else {
        Proto::Icmp6
    }
}

/// The packet quoted by the ICMP (`proto` [`IPPROTO_ICMP`]) or ICMPv6
/// message of type `ty` that starts at `l4`, a received one: its bytes from
/// its IP header on, as far as they are there. `None` for a message that is
/// not an error that quotes a packet.
#[inline(always)]
fn quote_of(proto: u8, ty: u8, l4: &[u8]) -> Option<&[u8]> {
    let error = match proto {
        // Destination unreachable, time exceeded, parameter problem.
        IPPROTO_ICMP => matches!(ty, 3 | 11 | 12),
        // Destination unreachable, packet too big, time exceeded,
        // parameter problem.
        _ => matches!(ty, 1..=4),
    };
    if !error {
        return None;
    }
    // After the type, code, checksum and the word that holds the
    // unreachable's next-hop MTU, the pointer or nothing.
    l4.get(8..)
}

/// The packet quoted by the ICMP or ICMPv6 error whose first bytes, from
/// its IP header on, are `l3`: the quoted packet's bytes from its IP header
/// on, as far as they are in `l3`. `None` for any other packet, or one cut
/// short before its ICMP header ends.
///
/// Used where the quoted packet's remote end matters: an error comes from a
/// router on the way, and it answers a packet sent to the quoted packet's
/// destination ([`crate::peers`]).
#[inline(always)]
pub fn quoted_by_error(l3: &[u8]) -> Option<&[u8]> {
    match *l3.first()? >> 4 {
        4 => {
            // The fast way out for what is not ICMP: one load.
            if *l3.get(9)? != IPPROTO_ICMP {
                return None;
            }
            let net = parse_ipv4(l3)?;
            let l4 = l3.get(net.l4_off..)?;
            quote_of(net.proto, *l4.first()?, l4)
        }
        6 => quoted_by_error6(l3),
        _ => None,
    }
}

/// Whether the packet whose first bytes, from its IP header on, are `l3` (a
/// fixed IPv6 header's worth or more) may be an ICMP or ICMPv6 error: a
/// quick test, before [`quoted_by_error`] reads further. True for every
/// packet whose first bytes `quoted_by_error` finds a quote in; false for
/// most others: an IPv4 packet that is not ICMP, or whose ICMP type is not
/// an error's, and an IPv6 packet whose first next header is neither
/// ICMPv6 nor an extension header.
#[inline(always)]
pub fn may_be_error(l3: &[u8]) -> bool {
    // IPv4 without options, most packets: the protocol and the type.
    if let Some(h) = l3.get(..21).and_then(|h| <&[u8; 21]>::try_from(h).ok()) {
        if h[0] == 0x45 {
            return h[9] == IPPROTO_ICMP && matches!(h[20], 3 | 11 | 12);
        }
    }
    may_be_error_else(l3)
}

/// [`may_be_error`] of a packet that is not IPv4 without options, or is cut
/// short: out of line.
#[cold]
#[inline(never)]
fn may_be_error_else(l3: &[u8]) -> bool {
    let Some(&v) = l3.first() else {
        return false;
    };
    match v >> 4 {
        4 => {
            if l3.get(9) != Some(&IPPROTO_ICMP) {
                return false;
            }
            // The type, unless IPv4 options push it past these bytes.
            match l3.get(usize::from(v & 0x0f) * 4) {
                Some(ty) => matches!(ty, 3 | 11 | 12),
                None => true,
            }
        }
        6 => matches!(l3.get(6), Some(&IPPROTO_ICMPV6 | 0 | 43 | 44 | 51 | 60)),
        _ => false,
    }
}

/// [`quoted_by_error`] of an IPv6 packet: out of line, past its extension
/// headers.
#[cold]
#[inline(never)]
fn quoted_by_error6(l3: &[u8]) -> Option<&[u8]> {
    let net = parse_ipv6(l3)?;
    if net.proto != IPPROTO_ICMPV6 {
        return None;
    }
    let l4 = l3.get(net.l4_off..)?;
    quote_of(net.proto, *l4.first()?, l4)
}

/// The `N` bytes of `b` at `at`, as an array (one bounds check).
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

/// A 64-bit hash that mixes words with multiply and rotate (FxHash-style
/// absorption, a murmur3 finalizer). Not cryptographic: mace needs only that
/// different packets get different keys with overwhelming probability.
struct Hasher(u64);

impl Hasher {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new() -> Self {
        Hasher(0x243f_6a88_85a3_08d3)
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    /// Absorbs an IPv4 (4 bytes) or IPv6 (16 bytes) address.
    fn addr(&mut self, a: &[u8]) {
        if let Ok(a) = <[u8; 4]>::try_from(a) {
            self.word(u64::from(u32::from_le_bytes(a)));
        } else if let Ok(a) = <&[u8; 16]>::try_from(a) {
            self.addr16(a);
        } else {
            self.bytes(a);
        }
    }

    /// Absorbs the 16 bytes of an IPv6 address as two words.
    fn addr16(&mut self, a: &[u8; 16]) {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *a;
        self.word(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]));
        self.word(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
    }

    /// Absorbs `b` and its length: whole 8-byte words, then what is left
    /// as one word.
    fn bytes(&mut self, b: &[u8]) {
        // Plain loads and shifts: no `copy_from_slice`, which the kernel
        // build turns into calls to `memcpy` on the probes' hot path.
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            if let Ok(w) = <[u8; 8]>::try_from(c) {
                self.word(u64::from_le_bytes(w));
            }
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let w = rest.iter().rev().fold(0u64, |w, &x| w << 8 | u64::from(x));
            self.word(w);
        }
        self.word(b.len() as u64);
    }

    /// Absorbs `b` as [`Self::bytes`] does, at once when it has exactly
    /// [`PAYLOAD_KEY_BYTES`] (the usual case: a payload longer than that).
    fn payload(&mut self, b: &[u8]) {
        let Ok(w) = <&[u8; PAYLOAD_KEY_BYTES]>::try_from(b) else {
            return self.bytes(b);
        };
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7, c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7] =
            *w;
        self.word(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]));
        self.word(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
        self.word(u64::from_le_bytes([c0, c1, c2, c3, c4, c5, c6, c7]));
        self.word(u64::from_le_bytes([d0, d1, d2, d3, d4, d5, d6, d7]));
        self.word(PAYLOAD_KEY_BYTES as u64);
    }

    /// The state as it is, never 0: for a digest that is only compared
    /// for equality, which the finalizer (a bijection) would not change.
    fn unfinished(self) -> u64 {
        if self.0 == 0 {
            1
        } else {
            self.0
        }
    }

    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        if h == 0 {
            1
        } else {
            h
        }
    }
}

/// The network layer of a packet, as far as the key needs it.
struct Network<'a> {
    version: u8,
    /// Transport protocol number.
    proto: u8,
    /// Source and destination addresses (4 or 16 bytes each).
    src: &'a [u8],
    dst: &'a [u8],
    /// IPv4 identification (0 for IPv6).
    ip_id: u16,
    /// Bytes from the transport header to the end of the IP packet.
    l4_len: usize,
    /// Offset of the transport header in the captured bytes.
    l4_off: usize,
    /// Whether this is the first fragment of a fragmented packet.
    first_fragment: bool,
}

fn parse_ipv4(b: &[u8]) -> Option<Network<'_>> {
    // The fixed header at once: one bounds check.
    let h: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let frag = u16::from_be_bytes([h[6], h[7]]);
    if frag & 0x1fff != 0 {
        // Not the first fragment: no transport header.
        return None;
    }
    // More fragments follow.
    let first_fragment = frag & 0x2000 != 0;
    Some(Network {
        version: 4,
        proto: h[9],
        src: &h[12..16],
        dst: &h[16..20],
        ip_id: u16::from_be_bytes([h[4], h[5]]),
        l4_len: total.checked_sub(ihl)?,
        l4_off: ihl,
        first_fragment,
    })
}

fn parse_ipv6(b: &[u8]) -> Option<Network<'_>> {
    let payload = usize::from(be16(b, 4)?);
    let mut next = *b.get(6)?;
    let mut off = 40usize;
    let mut first_fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => (usize::from(*b.get(off.wrapping_add(1))?) + 1) * 8,
            // Fragment: only the first fragment has the transport header.
            44 => {
                let frag = be16(b, off.wrapping_add(2))?;
                if frag & 0xfff8 != 0 {
                    return None;
                }
                // The M flag: more fragments follow.
                first_fragment = frag & 1 != 0;
                8
            }
            // Authentication header.
            51 => (usize::from(*b.get(off.wrapping_add(1))?) + 2) * 4,
            _ => {
                return Some(Network {
                    version: 6,
                    proto: next,
                    src: b.get(8..24)?,
                    dst: b.get(24..40)?,
                    ip_id: 0,
                    l4_len: payload.wrapping_add(40).checked_sub(off)?,
                    l4_off: off,
                    first_fragment,
                });
            }
        };
        next = *b.get(off)?;
        off = off.checked_add(len)?;
    }
    None
}

/// Bytes of a TCP header that [`identify`], [`packet_id`] and
/// [`fingerprint`] read: up to the flags.
const TCP_KEY_BYTES: usize = 14;

/// Whether `prefix`, the first bytes of a packet from its IP header on, cut
/// short of the packet's end and of [`CAPTURE_BYTES`], holds every byte that
/// [`identify`], [`packet_id`] and [`fingerprint`] read of the packet: they
/// then give the same answers on `prefix` as on the whole.
///
/// True for a TCP segment (not a later fragment) whose header, as far as
/// they read it, is within `prefix`: its key reads no payload. False for
/// anything else, whose key reads payload bytes (or which they do not
/// identify). A probe reads such a prefix in place where the payload is in
/// page fragments (a TCP sender's data, GSO packets), instead of copying
/// [`CAPTURE_BYTES`].
pub fn key_within(prefix: &[u8]) -> bool {
    let net = match prefix.first().map(|v| v >> 4) {
        Some(4) => parse_ipv4(prefix),
        Some(6) => parse_ipv6(prefix),
        _ => None,
    };
    net.is_some_and(|n| {
        n.proto == IPPROTO_TCP
            && n.l4_off
                .checked_add(TCP_KEY_BYTES)
                .is_some_and(|end| end <= prefix.len())
    })
}

/// TCP flags that only the last segment of a GSO packet keeps.
const TCP_FIN_PSH: u8 = TCP_FIN | 0x08;

/// Identifies the packet whose first bytes, from the IP header on, are
/// `bytes` (at most [`CAPTURE_BYTES`] are looked at).
///
/// `gso_size` is the segment size of a GSO packet (0 for any other): such a
/// packet (TCP or UDP) gets the identity of its first segment, which is what
/// a device that cannot send it whole transmits first, and it keeps that
/// identity whether it is segmented on its way or not.
pub fn identify(bytes: &[u8], side: Side, gso_size: u16) -> Option<Identity> {
    let b = bytes.get(..bytes.len().min(CAPTURE_BYTES))?;
    let net = match *b.first()? >> 4 {
        4 => parse_ipv4(b)?,
        6 => parse_ipv6(b)?,
        _ => return None,
    };
    let l4 = b.get(net.l4_off..)?;
    let (remote_addr, port_at) = match side {
        Side::Egress => (net.dst, 2),
        Side::Ingress => (net.src, 0),
    };
    let gso = usize::from(gso_size);

    let mut h = Hasher::new();
    h.word(u64::from(net.version) << 8 | u64::from(net.proto));
    h.addr(remote_addr);

    // The length of the packet (of its first segment, for GSO) from the
    // transport header on, and what the protocol adds to the key; where
    // the payload that goes into the key starts (none for TCP).
    let (proto, pktid, payload_at, l4_len) = match net.proto {
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let [ty, code] = array(l4, 0)?;
            let echo = match net.proto {
                IPPROTO_ICMP => ty == 8 || ty == 0,
                _ => ty == 128 || ty == 129,
            };
            if !echo {
                return match side {
                    Side::Ingress => error_identity(h, &net, l4, [ty, code]),
                    Side::Egress => None,
                };
            }
            let seq = be16(l4, 6)?;
            h.word(u64::from(ty) << 24 | u64::from(code) << 16 | u64::from(seq));
            (icmp_proto(net.proto), u32::from(seq), Some(8), net.l4_len)
        }
        IPPROTO_UDP => {
            let port = be16(l4, port_at)?;
            let mut l4_len = net.l4_len;
            if gso > 0 && l4_len > 8 + gso {
                l4_len = 8 + gso;
            }
            let len = u16::try_from(l4_len).ok()?;
            h.word(u64::from(port) << 16 | u64::from(len));
            let payload = l4.get(8..).unwrap_or(&[]);
            let pktid = (0..4).fold(0u32, |id, i| {
                id << 8 | u32::from(payload.get(i).copied().unwrap_or(0))
            });
            (Proto::Udp, pktid, Some(8), l4_len)
        }
        IPPROTO_TCP => {
            let port = be16(l4, port_at)?;
            let seq = be32(l4, 4)?;
            let ack = be32(l4, 8)?;
            let doff = usize::from(*l4.get(12)? >> 4) * 4;
            let mut flags = *l4.get(13)?;
            let mut l4_len = net.l4_len;
            let bare = tcp_identified(doff, l4_len, flags)?;
            if gso > 0 && l4_len > doff + gso {
                l4_len = doff + gso;
                flags &= !TCP_FIN_PSH;
            }
            h.word(u64::from(port) << 8 | u64::from(flags));
            h.word(u64::from(seq) << 32 | u64::from(ack));
            let pktid = tcp_pktid(seq, ack, flags, bare, side);
            (Proto::Tcp, pktid, None, l4_len)
        }
        _ => return None,
    };
    h.word((l4_len as u64) << 16 | u64::from(net.ip_id));

    // The payload as far as it was captured and belongs to this packet.
    if let Some(at) = payload_at {
        let payload_len = l4_len.saturating_sub(at).min(PAYLOAD_KEY_BYTES);
        let payload = l4.get(at..).unwrap_or(&[]);
        let payload = payload.get(..payload_len.min(payload.len())).unwrap_or(&[]);
        h.payload(payload);
    }

    Some(Identity {
        key: h.finish(),
        pktid,
        proto,
        first_fragment: net.first_fragment,
    })
}

/// [`identify`] of the received ICMP or ICMPv6 message of type and code
/// `ty_code` that starts at `l4` in the packet `net`, with `h` holding the
/// packet's protocol and remote address: an error that quotes an
/// identified packet. Out of line: no echo comes here.
#[cold]
#[inline(never)]
fn error_identity(
    mut h: Hasher,
    net: &Network<'_>,
    l4: &[u8],
    ty_code: [u8; 2],
) -> Option<Identity> {
    let [ty, code] = ty_code;
    let quote = quote_of(net.proto, ty, l4)?;
    // The quoted packet as it left: the egress side, where no error is
    // identified, so that this goes one level deep at most.
    let quoted = identify(quote, Side::Egress, 0)?;
    h.word(u64::from(ty) << 24 | u64::from(code) << 16);
    h.word(quoted.key);
    h.word((net.l4_len as u64) << 16 | u64::from(net.ip_id));
    Some(Identity {
        key: h.finish(),
        pktid: quoted.pktid,
        proto: icmp_proto(net.proto),
        first_fragment: net.first_fragment,
    })
}

/// What [`identify`] tells of a packet but its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketId {
    /// The id users see in `/dev/mace`: [`Identity::pktid`].
    pub pktid: u32,
    /// [`Identity::proto`].
    pub proto: Proto,
    /// [`Identity::first_fragment`].
    pub first_fragment: bool,
}

impl PacketId {
    /// Whether this packet, leaving while its socket's task is inside a send
    /// syscall, carries that syscall's data.
    ///
    /// `tcp_write_seq` is, for a TCP socket, the sequence number of the next
    /// byte to be written when the syscall started (`None` for any other
    /// socket). A TCP socket's segment is the syscall's only if its first
    /// byte is one the syscall wrote, at or after that number in serial
    /// number arithmetic (RFC 1982): TCP also sends older data and
    /// retransmissions from inside a later send, when it processes what
    /// arrived meanwhile. A datagram, or a TCP segment that a raw socket
    /// sends, that leaves inside its socket's send syscall is always that
    /// send's: it is the bytes the send wrote.
    pub fn carries_send_of(&self, tcp_write_seq: Option<u32>) -> bool {
        carries_send_of(self.proto, self.pktid, tcp_write_seq)
    }
}

/// The id of the packet whose first bytes, from the IP header on, are
/// `bytes`, seen from `side`: `Some` exactly when [`identify`] identifies
/// it (with any GSO size), with the same `pktid`, `proto` and
/// `first_fragment`, without the work of its key. For packets found by
/// their socket buffer or data buffer (`capture/`), not by their key.
#[inline(always)]
pub fn packet_id(bytes: &[u8], side: Side) -> Option<PacketId> {
    // The same first lines as `identify`'s, on purpose: a helper that both
    // called cost each call 10 to 35 instructions more (instruction
    // profile), whether inlined or not.
    let b = bytes.get(..bytes.len().min(CAPTURE_BYTES))?;
    let net = match *b.first()? >> 4 {
        4 => parse_ipv4(b)?,
        6 => parse_ipv6(b)?,
        _ => return None,
    };
    let l4 = b.get(net.l4_off..)?;
    let port_at = match side {
        Side::Egress => 2,
        Side::Ingress => 0,
    };
    let (proto, pktid) = match net.proto {
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let [ty, _code, _, _, _, _, s0, s1] = array(l4, 0)?;
            let echo = match net.proto {
                IPPROTO_ICMP => ty == 8 || ty == 0,
                _ => ty == 128 || ty == 129,
            };
            if !echo {
                // Out of line, from the bytes alone: no echo pays for the
                // values an error needs, and a packet a container sends is
                // never one.
                return match side {
                    Side::Ingress => error_id(b),
                    Side::Egress => None,
                };
            }
            (
                icmp_proto(net.proto),
                u32::from(u16::from_be_bytes([s0, s1])),
            )
        }
        IPPROTO_UDP => {
            // The bounds `identify` checks: the remote port, a length that
            // fits in 16 bits.
            be16(l4, port_at)?;
            u16::try_from(net.l4_len).ok()?;
            let payload = l4.get(8..).unwrap_or(&[]);
            let pktid = (0..4).fold(0u32, |id, i| {
                id << 8 | u32::from(payload.get(i).copied().unwrap_or(0))
            });
            (Proto::Udp, pktid)
        }
        IPPROTO_TCP => {
            let [_, _, _, _, q0, q1, q2, q3, a0, a1, a2, a3, off, flags] = array(l4, 0)?;
            let doff = usize::from(off >> 4) * 4;
            let bare = tcp_identified(doff, net.l4_len, flags)?;
            let seq = u32::from_be_bytes([q0, q1, q2, q3]);
            let ack = u32::from_be_bytes([a0, a1, a2, a3]);
            (Proto::Tcp, tcp_pktid(seq, ack, flags, bare, side))
        }
        _ => return None,
    };
    Some(PacketId {
        pktid,
        proto,
        first_fragment: net.first_fragment,
    })
}

/// [`packet_id`] of the received packet whose first bytes, from its IP
/// header on, are `b`, an ICMP or ICMPv6 message that is not an echo: the
/// quoted packet's id, for an error that quotes an identified packet
/// ([`error_identity`]). Out of line: no echo comes here.
#[cold]
#[inline(never)]
fn error_id(b: &[u8]) -> Option<PacketId> {
    let net = match *b.first()? >> 4 {
        4 => parse_ipv4(b)?,
        _ => parse_ipv6(b)?,
    };
    let l4 = b.get(net.l4_off..)?;
    let quote = quote_of(net.proto, *l4.first()?, l4)?;
    // The packet's own ICMP header is whole: the quote starts after it.
    let quoted = packet_id(quote, Side::Egress)?;
    Some(PacketId {
        pktid: quoted.pktid,
        proto: icmp_proto(net.proto),
        first_fragment: net.first_fragment,
    })
}

/// Whether the TCP segment at `l4` in `l3`, `l4_len` bytes long by its
/// network header, is all header and not identified for all that (a
/// connection's bare ACK, window update or FIN); false if its header is cut
/// short.
fn tcp_bare_unidentified(l3: &[u8], l4: usize, l4_len: usize) -> bool {
    l4.checked_add(12)
        .and_then(|at| array::<2>(l3, at))
        .is_some_and(|[off, flags]| {
            usize::from(off >> 4) * 4 == l4_len && !bare_tcp_identified(flags)
        })
}

/// A digest of a packet's network header that stays the same from an outer
/// device to the container's device (on `side` [`Side::Ingress`], a
/// received packet) or from the container's device to the outer device
/// ([`Side::Egress`]), for the arrival stamps of [`crate::stamps`]; `None`
/// for a packet that is neither IPv4 nor IPv6, or whose header is cut
/// short.
///
/// Forwarding changes the TTL or hop limit, NAT the container's address,
/// ports and checksums, a congested queue the ECN bits: none of these is
/// read. IPv4: total length, identification, fragment field, protocol and
/// the remote address; IPv6: flow label, payload length, next header and
/// the remote address. A packet of another host, or of a container on the
/// same bridge, has another remote address.
///
/// A TCP segment without payload that is no probe and no probe's answer
/// (a connection's bare ACK, window update or FIN: no byte a reader could
/// get, so no identity, [`packet_id`]) has none either: no table holds it,
/// so neither side spends a stamp or a lookup on it.
#[inline(always)]
pub fn fingerprint(l3: &[u8], side: Side) -> Option<u64> {
    let mut h = Hasher::new();
    match *l3.first()? >> 4 {
        4 => {
            let b: &[u8; 20] = l3.get(..20)?.try_into().ok()?;
            let [v, _, l0, l1, _, _, f0, f1, _, proto, ..] = *b;
            // Not a fragment (no more fragments, offset 0).
            if proto == IPPROTO_TCP && f0 & 0x3f == 0 && f1 == 0 {
                let l4 = usize::from(v & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([l0, l1]));
                if tcp_bare_unidentified(l3, l4, total.wrapping_sub(l4)) {
                    return None;
                }
            }
            ipv4_digest(&mut h, b, side)?;
        }
        6 => {
            let b: &[u8; 40] = l3.get(..40)?.try_into().ok()?;
            let [_, _, _, _, l0, l1, next, ..] = *b;
            // TCP right after the fixed header (no extension header).
            if next == IPPROTO_TCP
                && tcp_bare_unidentified(l3, 40, usize::from(u16::from_be_bytes([l0, l1])))
            {
                return None;
            }
            ipv6_digest(&mut h, b, side)?;
        }
        _ => return None,
    }
    // Only ever compared for equality (and with a socket buffer's hash
    // mixed in, [`crate::stamps`]): the finalizer, a bijection, would
    // change no comparison.
    Some(h.unfinished())
}

/// Absorbs what [`fingerprint`] reads of the fixed IPv4 header `b` into `h`.
#[inline(always)]
fn ipv4_digest(h: &mut Hasher, b: &[u8; 20], side: Side) -> Option<()> {
    // The header's first eight bytes as they lie (version and header
    // length, total length, identification, fragment field), the protocol
    // over the type of service (whose ECN bits a queue may set); the
    // remote address likewise. No byte is moved: an order only has to be
    // the same on both sides.
    let first = u64::from_le_bytes(array(b, 0)?);
    h.word(first & !0xff00 | u64::from(b[9]) << 8);
    let at = match side {
        Side::Ingress => 12,
        Side::Egress => 16,
    };
    h.word(u64::from(u32::from_le_bytes(array(b, at)?)));
    Some(())
}

/// Absorbs what [`fingerprint`] reads of the fixed IPv6 header `b` into `h`.
#[inline(always)]
fn ipv6_digest(h: &mut Hasher, b: &[u8; 40], side: Side) -> Option<()> {
    // The first eight bytes as they lie but the version, the traffic class
    // (ECN) and the hop limit: the flow label, the payload length and the
    // next header.
    let first = u64::from_le_bytes(array(b, 0)?);
    h.word(first & 0x00ff_ffff_ffff_0f00);
    let at = match side {
        Side::Ingress => 8,
        Side::Egress => 24,
    };
    h.addr16(&array(b, at)?);
    Some(())
}

/// The [`fingerprint`] and the [`packet_id`] of the packet whose first
/// bytes, from the IP header on, are `l3`, seen from `side`: `Some` exactly
/// when `packet_id` is, which implies that `fingerprint` is.
///
/// One reading of the headers where both are needed at once (the hand-over
/// of a sent packet; the delivery keeps its two calls, whose id it needs
/// only after the stamp's take): an identified packet has its whole fixed
/// header in `l3` (`packet_id` reads its addresses), and an identified TCP
/// segment has payload or is a probe or its answer, which `fingerprint`
/// would check.
#[inline(always)]
pub fn fingerprint_id(l3: &[u8], side: Side) -> Option<(u64, PacketId)> {
    let id = packet_id(l3, side)?;
    let mut h = Hasher::new();
    match *l3.first()? >> 4 {
        4 => ipv4_digest(&mut h, l3.get(..20)?.try_into().ok()?, side)?,
        _ => ipv6_digest(&mut h, l3.get(..40)?.try_into().ok()?, side)?,
    }
    Some((h.unfinished(), id))
}
