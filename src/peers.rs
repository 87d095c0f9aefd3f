// SPDX-License-Identifier: GPL-2.0

//! The remote hosts capturing namespaces talk to: which received packets an
//! outer device stamps.
//!
//! NAT hides, on an outer device, which namespace a received packet is
//! for. Stamping every packet there made every container of the host pay
//! for one namespace's capture: a fingerprint, a clock read and a stamp per
//! packet it received. An outer device now stamps a packet only if its
//! remote address (its source) is a peer of a capturing namespace: one that
//! the namespace's tasks sent a packet to within the peer window
//! (`peer_window_ms`), or whose unstamped packet a reader there got
//! ([`Peers::touch`]). Replies to what a namespace sends are stamped; the
//! first packet of a remote the namespace has not sent to within the window
//! is not, and makes the remote a peer. A namespace that only receives from
//! a remote (a UDP sink) loses one packet each time the remote's mark
//! expires: a stamped packet does not renew it, which would cost every
//! received packet a look.
//!
//! A peer is a mark in a direct-mapped array of times, in jiffies (32 bits),
//! indexed by a hash of the remote address. Two addresses that share a slot
//! share a mark: a packet of the other one is stamped too, which costs a
//! stamp nobody takes and loses nothing. Marking is a load and, at most
//! once a jiffy per slot, a store; looking is a load. Without a lock:
//! a mark is one word, and a look that misses a mark being stored misses
//! only what a look just before it would have.
//!
//! An ICMP or ICMPv6 error comes from a router on the way, not from the
//! remote it answers for: it is stamped if the packet it quotes was sent to
//! a peer ([`Peers::admits_error`]), so that a traceroute's replies from
//! every hop are.
//!
//! With a window of 0, every received packet is a peer's (the outer devices
//! stamp them all, as before the window existed).
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::packet::Side;
use core::ops::Deref;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Marks in the array the module allocates: 16 KiB.
pub const PEER_SLOTS: usize = 4096;

/// A slot that was never marked.
const NEVER: u32 = 0;

/// The remote address of the packet whose network header starts `l3`, seen
/// from `side` ([`Side::Egress`]: its destination; [`Side::Ingress`]: its
/// source), folded into a word: `None` for a packet that is neither IPv4
/// nor IPv6, or whose header is cut short, and for one sent to a multicast
/// or broadcast address, which no reply comes from.
#[inline(always)]
fn remote(l3: &[u8], side: Side) -> Option<u64> {
    match *l3.first()? >> 4 {
        4 => {
            let at = match side {
                Side::Ingress => 12,
                Side::Egress => 16,
            };
            let a: [u8; 4] = l3.get(at..at + 4)?.try_into().ok()?;
            // Multicast, reserved and the limited broadcast: 224/3.
            if side == Side::Egress && a[0] >= 0xe0 {
                return None;
            }
            Some(u64::from(u32::from_le_bytes(a)))
        }
        6 => {
            let at = match side {
                Side::Ingress => 8,
                Side::Egress => 24,
            };
            let hi = u64::from_le_bytes(l3.get(at..at + 8)?.try_into().ok()?);
            let lo = u64::from_le_bytes(l3.get(at + 8..at + 16)?.try_into().ok()?);
            // Multicast: ff00::/8, the first byte, the lowest of `hi`.
            if side == Side::Egress && hi & 0xff == 0xff {
                return None;
            }
            // Halves swapped: the bits that vary between the hosts of a
            // prefix (the last bytes) land in the middle of the word, where
            // the multiplication carries them to the index.
            Some(hi ^ lo.rotate_left(32))
        }
        _ => None,
    }
}

/// The peers of the capturing namespaces: a mark per slot of `S`, the time
/// in jiffies an address of that slot was last made a peer
/// ([`Self::touch`]).
///
/// # Invariants
///
/// `marks.len()` is a power of two from 2 to 2^32; `shift` is 64 less
/// its base-2 logarithm (32 to 63).
pub struct Peers<S>
where
    S: Deref<Target = [AtomicU32]>,
{
    marks: S,
    shift: u32,
    /// How long a mark makes its addresses peers, in jiffies; 0: every
    /// address is a peer.
    window: u32,
}

impl<S> Peers<S>
where
    S: Deref<Target = [AtomicU32]>,
{
    /// Peers over `marks` (a power of two of them from 2 to 2^32, all
    /// [`NEVER`] marked, or they are given back), each a peer for `window`
    /// jiffies after it was last marked; with a `window` of 0, every
    /// address is always a peer.
    pub fn new(marks: S, window: u32) -> Result<Self, S> {
        let n = marks.len() as u64;
        if !n.is_power_of_two() || !(2..=1 << 32).contains(&n) {
            return Err(marks);
        }
        // INVARIANT: checked just above.
        Ok(Self {
            shift: 64 - n.trailing_zeros(),
            marks,
            window,
        })
    }

    /// The slot of the packet's remote address, if it has one.
    #[inline(always)]
    fn slot(&self, l3: &[u8], side: Side) -> Option<&AtomicU32> {
        // 2^64 / the golden ratio: every bit of the address reaches the
        // product's top bits, the index. The shift is below 64.
        let h = remote(l3, side)?.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.marks
            .get(usize::try_from(h.wrapping_shr(self.shift)).ok()?)
    }

    /// Whether `mark` is a peer's at `now`: marked, no more than the window
    /// ago (or a little after `now`, on a CPU that saw the tick first).
    #[inline(always)]
    fn recent(&self, mark: u32, now: u32) -> bool {
        mark != NEVER && (now.wrapping_sub(mark) as i32).unsigned_abs() <= self.window
    }

    /// Whether the packet whose network header starts `l3`, seen from
    /// `side`, is a peer's at `now` (jiffies): whether an outer device
    /// stamps it. Always with a window of 0; never for a packet that is
    /// neither IPv4 nor IPv6, which no reader identifies.
    #[inline(always)]
    pub fn admits(&self, l3: &[u8], side: Side, now: u32) -> bool {
        if self.window == 0 {
            return true;
        }
        self.slot(l3, side)
            .is_some_and(|s| self.recent(s.load(Relaxed), now))
    }

    /// Whether the packet whose network header starts `l3`, received at
    /// `now` (jiffies), is an ICMP or ICMPv6 error that answers a packet
    /// sent to a peer: a router on the way to it sent it (a traceroute's
    /// reply, say), from an address nobody sent to. Asked of a packet
    /// [`Self::admits`] turned away and that
    /// [`crate::packet::may_be_error`].
    #[inline(always)]
    pub fn admits_error(&self, l3: &[u8], now: u32) -> bool {
        crate::packet::quoted_by_error(l3).is_some_and(|q| self.admits(q, Side::Egress, now))
    }

    /// Makes the remote address of the packet whose network header starts
    /// `l3`, seen from `side`, a peer as of `now` (jiffies); says whether
    /// it was one already.
    #[inline(always)]
    pub fn touch(&self, l3: &[u8], side: Side, now: u32) -> bool {
        let Some(slot) = self.slot(l3, side) else {
            return false;
        };
        // Never NEVER: a mark made at jiffy 0 is one a jiffy later.
        let now = if now == NEVER { 1 } else { now };
        let mark = slot.load(Relaxed);
        // Stored at most once a jiffy: most packets find their own mark.
        if mark != now {
            slot.store(now, Relaxed);
        }
        self.window == 0 || self.recent(mark, now)
    }
}
