// SPDX-License-Identifier: GPL-2.0

//! Where a packet socket's reader got a packet that a tap saw.
//!
//! A tool that reads its replies through a packet socket (libpcap) gets a
//! packet once the socket has made it readable (`sk_data_ready`), and
//! mostly without a syscall of its own: it takes packets from its ring and
//! enters its next wait (`poll()`) only once it has taken every readable
//! one. So a packet's window ends at that wait's start, or, for a tool that
//! never waits again (hping3 exits after its last reply), where its last
//! wait returned with something to read, a time the next wait replaces.
//!
//! A libpcap reader takes a packet from its ring, though, whenever it finds
//! it readable there, and sometimes makes no syscall after that which a
//! probe sees:
//!
//! - The socket's probes see a wait's start at the entry of
//!   `packet_poll()`, before the socket's lock, and a packet made readable
//!   at `sk_data_ready`, under that lock: a wait can start before a packet
//!   is readable and still return with it at once, with no later pass (the
//!   block that holds it is closed on another CPU meanwhile, a window that
//!   `PREEMPT_RT` widens).
//! - A signal ends a wait (hping3 sends its probes from a signal handler),
//!   and libpcap looks at its ring again before it waits again: a packet
//!   made readable during the handler is taken with no syscall at all.
//!
//! So once a reader of the namespace has waited for a packet socket (a
//! ring reader), a packet made readable takes the time it became readable,
//! provisionally: the reader's wait's next pass replaces it, as the
//! reader's next wait does any provisional time.
//!
//! [`TapRead`] is the state of one packet, kept in one word of the tap
//! queue. This file uses only `core`; it is compiled into the module and
//! into the host test crate.

#![deny(unsafe_code)]

use crate::fifo::{Fifo, FifoSlot};
use crate::table::BucketLock;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The word of a tap queue's record that holds its namespace's handle.
pub const NS_WORD: usize = 1;

/// The word of a tap queue's record that holds when the tap saw it.
pub const TAP_WORD: usize = 2;

/// The word of a tap queue's record that holds its [`TapRead`].
pub const READ_WORD: usize = 3;

/// Not readable yet.
const NOT_READABLE: u64 = 0;

/// Readable, and no reader has got it yet. No monotonic time is this small.
const READABLE: u64 = 1;

/// A time taken where a reader's wait returned, which the reader's next
/// wait replaces. No monotonic time has this bit.
const PROVISIONAL: u64 = 1 << 63;

/// With [`PROVISIONAL`]: the time the packet became readable, which a
/// wait's next pass replaces too.
const AT_READABLE: u64 = 1 << 62;

/// The bits of a word that hold a time.
const TIME: u64 = !(PROVISIONAL | AT_READABLE);

/// What a reader of a packet socket of the namespace did, seen by a probe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReaderEvent {
    /// It entered a wait (`poll()`'s first pass), having taken every
    /// packet that was readable from its ring.
    WaitStarted,
    /// Its wait returned with something to read (a pass after a wakeup, or
    /// the wait's return): it takes the readable packets from its ring
    /// next.
    WaitReturned,
    /// A read returned with what was readable.
    Read,
}

/// How far a packet that a tap saw has come towards its packet socket's
/// reader: the word the tap queue keeps for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TapRead(u64);

impl TapRead {
    /// A packet the tap has just seen: not readable yet.
    pub const NEW: Self = Self(NOT_READABLE);

    /// The state stored as `word`.
    pub const fn from_word(word: u64) -> Self {
        Self(word)
    }

    /// The word that stores the state.
    pub const fn word(self) -> u64 {
        self.0
    }

    /// The state after the packet's socket made it readable at `now`
    /// (`sk_data_ready`), for a namespace that has a ring reader
    /// (`ring_reader`: it may take the packet at once) or not.
    #[must_use]
    pub const fn made_readable(self, now: u64, ring_reader: bool) -> Self {
        match (self.0, ring_reader) {
            (NOT_READABLE, false) => Self(READABLE),
            (NOT_READABLE, true) => Self((now & TIME) | PROVISIONAL | AT_READABLE),
            _ => self,
        }
    }

    /// The state after a reader of the namespace did `event` at `now`.
    #[must_use]
    pub const fn on(self, event: ReaderEvent, now: u64) -> Self {
        let now = now & TIME;
        match (event, self.0) {
            (ReaderEvent::WaitStarted | ReaderEvent::Read, READABLE) => Self(now),
            (ReaderEvent::WaitStarted | ReaderEvent::Read, w) if w & PROVISIONAL != 0 => Self(now),
            (ReaderEvent::WaitReturned, READABLE) => Self(now | PROVISIONAL),
            (ReaderEvent::WaitReturned, w) if w & AT_READABLE != 0 => Self(now | PROVISIONAL),
            _ => self,
        }
    }

    /// Whether a reader got the packet (for good, or provisionally).
    pub const fn got(self) -> bool {
        self.0 > READABLE
    }

    /// Where the packet's window ends, if a reader got it.
    pub const fn end(self) -> Option<u64> {
        if self.got() {
            Some(self.0 & TIME)
        } else {
            None
        }
    }
}

/// Packet socket `sk_data_ready` in the namespace with handle `ns` at `now`:
/// the packets of `queue` that a tap saw there until `now` are readable;
/// `ring_reader` says whether the namespace has a ring reader, read under
/// the queue's lock, which [`reader_did`] sets before taking it. Whether a
/// reader got one of them by this (provisionally).
pub fn made_readable<S, L, const W: usize>(
    queue: &Fifo<S, L, W>,
    ring_reader: &AtomicBool,
    ns: u64,
    now: u64,
) -> bool
where
    S: Deref<Target = [FifoSlot<W>]>,
    L: BucketLock,
{
    let mut got = false;
    update_ns(queue, ns, |t_tap, read| {
        // A packet the tap saw after the socket's call is not in its block.
        if (now.wrapping_sub(t_tap) as i64) < 0 {
            return read;
        }
        let read = read.made_readable(now, ring_reader.load(Relaxed));
        got |= read.got();
        read
    });
    got
}

/// A reader of a packet socket of the namespace with handle `ns` did
/// `event` at `now`: updates the packets of `queue` that a tap saw there,
/// and `ring_reader`, whether the namespace has a ring reader (one that
/// waits; one that reads instead does not take packets from a ring).
/// Whether a reader got one of them by this, for good or provisionally.
pub fn reader_did<S, L, const W: usize>(
    queue: &Fifo<S, L, W>,
    ring_reader: &AtomicBool,
    ns: u64,
    event: ReaderEvent,
    now: u64,
) -> bool
where
    S: Deref<Target = [FifoSlot<W>]>,
    L: BucketLock,
{
    // Before the queue's lock: a packet made readable after the reader's
    // update finds it.
    let ring = match event {
        ReaderEvent::WaitStarted => Some(true),
        ReaderEvent::Read => Some(false),
        ReaderEvent::WaitReturned => None,
    };
    if let Some(ring) = ring {
        if ring_reader.load(Relaxed) != ring {
            ring_reader.store(ring, Relaxed);
        }
    }
    let mut marked = false;
    update_ns(queue, ns, |_, was| {
        let read = was.on(event, now);
        marked |= read != was && read.got();
        read
    });
    marked
}

/// Replaces the state of each packet of `queue` that a tap saw in the
/// namespace with handle `ns` with what `f` returns, given when the tap saw
/// it and its state.
fn update_ns<S, L, const W: usize>(
    queue: &Fifo<S, L, W>,
    ns: u64,
    mut f: impl FnMut(u64, TapRead) -> TapRead,
) where
    S: Deref<Target = [FifoSlot<W>]>,
    L: BucketLock,
{
    queue.update_each(|rec| {
        let (Some(&rec_ns), Some(&t_tap)) = (rec.get(NS_WORD), rec.get(TAP_WORD)) else {
            return;
        };
        if rec_ns != ns {
            return;
        }
        if let Some(word) = rec.get_mut(READ_WORD) {
            *word = f(t_tap, TapRead::from_word(*word)).word();
        }
    });
}
