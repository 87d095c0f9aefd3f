// SPDX-License-Identifier: GPL-2.0

//! The entries of mace's correlation tables, as types.
//!
//! A table ([`crate::table`]) stores a fixed number of `u64` words per entry.
//! Each kind of entry here is a struct with named fields that converts to and
//! from those words ([`Words`]), the way [`crate::record::Record`] packs into a
//! ring slot. The probes work on these types only; what each word means is
//! written once, in the conversions below, and the round trips are tested on
//! the host.
//!
//! | table    | key                 | entry             | one window end ...           |
//! |----------|---------------------|-------------------|------------------------------|
//! | egress   | socket buffer / key | [`Egress`]        | send syscall -> outer device |
//! | ingress  | packet data buffer  | [`Ingress`]       | outer device -> receive      |
//! | sends    | task                | [`Sender`]        | a task's send syscall        |
//! | tasks    | task                | [`Task`]          | a task's receive             |
//! | pending  | task                | [`LatestPending`] | a receive's latest packet    |
//!
//! The ingress entries, the egress entries keyed by socket buffer, the
//! senders and a receive's latest packet are kept in lockless arrays of
//! stamps ([`crate::stamps`]), whose tag holds the packet's fingerprint (a
//! task's: its thread id), not in tables.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

/// A table entry stored as `D` words.
pub trait Words<const D: usize>: Sized {
    /// The entry as words.
    fn to_words(&self) -> [u64; D];
    /// The entry that [`Words::to_words`] turned into `words`.
    ///
    /// Any words give some entry: a word that cannot be what `to_words`
    /// writes is read as the nearest valid value (e.g. a count beyond the
    /// capacity as the capacity), never as an error or a panic.
    fn from_words(words: &[u64; D]) -> Self;
}

/// A packet sent by a syscall of a capturing namespace, on its way to an
/// outer device.
///
/// Keyed by its socket buffer, or by its identity if it is a GSO packet,
/// which may be segmented into other socket buffers on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// When the send syscall started (monotonic ns).
    pub start: u64,
    /// The sending namespace's handle in the namespace registry (never 0).
    pub ns: u64,
    /// The packet's id.
    pub pktid: u32,
    /// Keyed by socket buffer: the packet's fingerprint
    /// ([`crate::packet::fingerprint`], never 0), which the packet leaving
    /// an outer device in that socket buffer must have (else the entry is
    /// the leftover of a packet that never got there, whose socket buffer
    /// this one got). Keyed by identity: 0.
    pub fp: u64,
}

/// Words of an [`Egress`] entry.
pub const EGRESS_WORDS: usize = 4;

impl Words<EGRESS_WORDS> for Egress {
    fn to_words(&self) -> [u64; EGRESS_WORDS] {
        [self.start, self.ns, u64::from(self.pktid), self.fp]
    }

    fn from_words(w: &[u64; EGRESS_WORDS]) -> Self {
        let [start, ns, pktid, fp] = *w;
        Self {
            start,
            ns,
            pktid: pktid as u32,
            fp,
        }
    }
}

/// Words of an [`Egress`] entry kept by socket buffer in an array of stamps
/// ([`crate::stamps`]), whose tag holds its fingerprint: all but that.
pub const SENT_WORDS: usize = 3;

impl Egress {
    /// The entry as the words of a stamp, without its fingerprint.
    pub fn to_sent_words(self) -> [u64; SENT_WORDS] {
        [self.start, self.ns, u64::from(self.pktid)]
    }

    /// The entry that [`Self::to_sent_words`] turned into `w`, with
    /// fingerprint `fp` (its stamp's).
    pub fn from_sent_words(w: &[u64; SENT_WORDS], fp: u64) -> Self {
        let [start, ns, pktid] = *w;
        Self {
            start,
            ns,
            pktid: pktid as u32,
            fp,
        }
    }

    /// Whether `other` is this very packet stored again by the same syscall
    /// (it crossed a second device of its namespace on its way out), not
    /// another packet with the same key.
    pub fn same_send(&self, other: &Egress) -> bool {
        self.start == other.start && self.ns == other.ns
    }
}

/// A packet received on an outer device, waiting for a receiving syscall.
///
/// Stamped under its data buffer, which the copies its readers get share,
/// and its fingerprint ([`crate::packet::fingerprint`]): a reader takes the
/// entry only if its packet has the same, so that the leftover of a packet
/// that never reached a reader is not taken for a later packet given the
/// same buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// When it arrived on the outer device (first: the stamps' time).
    pub t_rx: u64,
    /// The packet's id.
    pub pktid: u32,
}

/// Words of an [`Ingress`] entry.
pub const INGRESS_WORDS: usize = 2;

impl Words<INGRESS_WORDS> for Ingress {
    fn to_words(&self) -> [u64; INGRESS_WORDS] {
        [self.t_rx, u64::from(self.pktid)]
    }

    fn from_words(w: &[u64; INGRESS_WORDS]) -> Self {
        let [t_rx, pktid] = *w;
        Self {
            t_rx,
            pktid: pktid as u32,
        }
    }
}

/// The send syscall a task is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendCall {
    /// When it started (monotonic ns, never 0).
    pub start: u64,
    /// The socket it sends on (its identity, never 0).
    pub sock: u64,
    /// For a TCP socket, the sequence number of the first byte it writes.
    pub tcp_write_seq: Option<u32>,
}

/// A task in a send syscall of a capturing namespace.
///
/// Keyed by the task; the thread id tells a live task's entry from that of a
/// dead task that had the same key. Apart from [`Task`], so that the send
/// path, which every packet of a capturing namespace takes, moves four
/// words per table operation, not the eighteen of an entry that held both.
/// Only its task writes it (at its send's entry) and reads it (where the
/// send hands a packet over), so it is kept as a stamp of the task, with
/// the thread id for a fingerprint, and read without taking it
/// ([`crate::stamps::Stamps::read_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// The task's thread id.
    pub tid: u32,
    /// The file descriptor it sends on (the syscall's first argument).
    pub fd: u32,
    /// The send syscall it is in.
    pub call: SendCall,
}

/// Words of a [`Sender`] entry: start (first: the stamps' time), tid and fd
/// (`fd << 32 | tid`), socket, TCP sequence (`1 << 32 | seq`, or 0).
pub const SEND_WORDS: usize = 4;

impl Words<SEND_WORDS> for Sender {
    fn to_words(&self) -> [u64; SEND_WORDS] {
        let c = &self.call;
        [
            c.start,
            u64::from(self.fd) << 32 | u64::from(self.tid),
            c.sock,
            c.tcp_write_seq.map_or(0, |q| 1 << 32 | u64::from(q)),
        ]
    }

    fn from_words(w: &[u64; SEND_WORDS]) -> Self {
        let [start, tid_fd, sock, seq] = *w;
        Self {
            tid: tid_fd as u32,
            fd: (tid_fd >> 32) as u32,
            call: SendCall {
                start,
                sock,
                tcp_write_seq: (seq >> 32 == 1).then_some(seq as u32),
            },
        }
    }
}

/// Received packets one receiving syscall can report.
pub const MAX_PENDING: usize = 4;

/// A received packet handed to a task, to be reported when its receiving
/// syscall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// When it arrived on the outer device (monotonic ns).
    pub t_rx: u64,
    /// The packet's id.
    pub pktid: u32,
    /// Where its ingress window ends: the receive timestamp its reader gets
    /// (monotonic ns), or 0 for the syscall's return.
    pub end: u64,
}

/// The latest packet a receiving syscall took, kept as a stamp of its task
/// (the thread id its fingerprint) instead of in a [`Task`] entry: most
/// receives take one packet, which then costs no lock and no whole entry.
///
/// Its age is its packet's: the time it arrived on the outer device. The
/// delivery reads no clock for it; the syscall's return, which reads one
/// anyway, checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatestPending {
    /// The packet.
    pub packet: Pending,
    /// The handle of the namespace it belongs to (its socket's).
    pub ns: u64,
    /// The task's thread id: tells the task's own earlier packet, which a
    /// later one's stamp goes over, from a dead task's leftover under the
    /// same key.
    pub tid: u32,
}

/// Words of a [`LatestPending`]: arrival time (first: the stamps' time),
/// end, packet id with the thread id, namespace.
pub const LATEST_PENDING_WORDS: usize = 4;

impl Words<LATEST_PENDING_WORDS> for LatestPending {
    fn to_words(&self) -> [u64; LATEST_PENDING_WORDS] {
        let p = &self.packet;
        let ids = u64::from(self.tid) << 32 | u64::from(p.pktid);
        [p.t_rx, p.end, ids, self.ns]
    }

    fn from_words(w: &[u64; LATEST_PENDING_WORDS]) -> Self {
        let [t_rx, end, ids, ns] = *w;
        Self {
            packet: Pending {
                t_rx,
                pktid: ids as u32,
                end,
            },
            ns,
            tid: (ids >> 32) as u32,
        }
    }
}

/// What mace knows about a task of a capturing namespace in a receiving
/// syscall (or a wait for a packet socket).
///
/// Keyed by the task; the thread id tells a live task's entry from that of a
/// dead task that had the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// The task's thread id.
    pub tid: u32,
    /// The handle of the namespace its pending packets belong to, or whose
    /// packet socket it reads (0 while there are none).
    pub ns: u64,
    /// Whether its syscall waits for or reads a packet socket of namespace
    /// `ns` (libpcap): when it returns, the packets a tap saw there are
    /// where the tool gets them.
    pub tap_reader: bool,
    /// Packets its receiving syscall took, oldest first.
    pending: [Pending; MAX_PENDING],
    /// How many of `pending` are used.
    pending_len: usize,
}

/// Words of a [`Task`] entry: tid, namespace, pending count (with
/// `tap_reader` as bit 32), then (t_rx, pktid, end) triples.
pub const TASK_WORDS: usize = 3 + 3 * MAX_PENDING;

/// The first word of the (t_rx, pktid, end) triples of a [`Task`] entry.
const PENDING_AT: usize = 3;

impl Task {
    /// A task with nothing going on.
    pub const fn new(tid: u32) -> Self {
        Self {
            tid,
            ns: 0,
            tap_reader: false,
            pending: [Pending {
                t_rx: 0,
                pktid: 0,
                end: 0,
            }; MAX_PENDING],
            pending_len: 0,
        }
    }

    /// Adds a received packet; false (and nothing changes) when
    /// [`MAX_PENDING`] are pending already.
    pub fn push_pending(&mut self, p: Pending) -> bool {
        match self.pending.get_mut(self.pending_len) {
            Some(slot) => {
                *slot = p;
                self.pending_len = self.pending_len.wrapping_add(1);
                true
            }
            None => false,
        }
    }

    /// The received packets, oldest first.
    pub fn pending(&self) -> &[Pending] {
        self.pending.get(..self.pending_len).unwrap_or(&[])
    }
}

impl Words<TASK_WORDS> for Task {
    fn to_words(&self) -> [u64; TASK_WORDS] {
        let mut w = [0u64; TASK_WORDS];
        w[0] = u64::from(self.tid);
        w[1] = self.ns;
        w[2] = self.pending_len as u64 | u64::from(self.tap_reader) << 32;
        for (i, p) in self.pending.iter().enumerate() {
            let at = PENDING_AT + 3 * i;
            if let Some([t, id, end]) = w.get_mut(at..at + 3) {
                *t = p.t_rx;
                *id = u64::from(p.pktid);
                *end = p.end;
            }
        }
        w
    }

    fn from_words(w: &[u64; TASK_WORDS]) -> Self {
        let mut t = Self::new(w[0] as u32);
        t.ns = w[1];
        t.pending_len =
            usize::try_from(w[2] & 0xffff_ffff).map_or(MAX_PENDING, |n| n.min(MAX_PENDING));
        t.tap_reader = w[2] >> 32 & 1 == 1;
        for (i, p) in t.pending.iter_mut().enumerate() {
            let at = PENDING_AT + 3 * i;
            if let Some(&[t_rx, pktid, end]) = w.get(at..at + 3) {
                *p = Pending {
                    t_rx,
                    pktid: pktid as u32,
                    end,
                };
            }
        }
        t
    }
}
