// SPDX-License-Identifier: GPL-2.0

//! Latency records, their text form in `/dev/mace`, and the reader's cursor.
//!
//! A probe turns a matched packet into a [`Record`] and pushes it into its
//! namespace's ring. A reader of `/dev/mace` pops records and formats each as
//! one line, compatible with the original MACE:
//!
//! ```text
//! [1795313566.956168] (1) egress: 998575
//! [1795313566.957011] (1) ingress: 1201345
//! ```
//!
//! i.e. `[` wall-clock seconds `.` microseconds `] (` packet id `) ` direction
//! `: ` latency in nanoseconds. In a namespace with `breakdown` on, a line
//! whose segments are known goes on with them, three `name=ns` pairs that
//! add up to the latency exactly ([`Direction::segment_names`]):
//!
//! ```text
//! [1795313566.956168] (1) egress: 998575 container=12003 host=36512 outer=950060
//! [1795313566.957011] (1) ingress: 1201345 host=40211 container=31022 socket=1130112
//! ```
//!
//! A reader of the original format stops after the latency (`sscanf()`
//! with `"[%lu.%lu] (%u) %[a-z]: %lu"` does). A read may stop in the middle of a line; the
//! rest of the line is kept in the reader's [`LineCursor`] (one per open file)
//! and returned first by the next read.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::ring::{Packed, WORDS};
use crate::text::TextBuf;
use core::fmt::Write;

/// Which end-to-end window a latency covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the sending syscall to transmission on an outer device.
    Egress,
    /// From reception on an outer device to the receiving syscall's return.
    Ingress,
}

impl Direction {
    /// The word used in `/dev/mace` lines.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }

    /// The names of the window's three segments, in the packet's order.
    ///
    /// Egress: the container's stack and qdisc (up to its device's
    /// transmission), the host (veth, bridge, routing, netfilter, NAT: up to
    /// the outer device's queue), the outer device's qdisc and driver.
    /// Ingress: the host (outer device to the container's device), the
    /// container's stack up to the socket's queue, the wait in the socket
    /// until the window ends.
    pub fn segment_names(self) -> [&'static str; 3] {
        match self {
            Direction::Egress => ["container", "host", "outer"],
            Direction::Ingress => ["host", "container", "socket"],
        }
    }
}

/// The longest first or second segment a record keeps (32 bits of ns,
/// 4.29 s): a window with a longer one has its segments unknown.
pub const MAX_SEGMENT_NS: u64 = u32::MAX as u64;

/// The longest latency a record keeps (42 bits of ns, 73 minutes; a
/// window is at most a few times `max_age_ms`, at most 60 s): a longer one
/// is kept as this.
pub const MAX_LATENCY_NS: u64 = (1 << LATENCY_BITS) - 1;

/// Where a packet's latency was spent, if known.
///
/// Only the first two segments are kept: the third is the rest of the
/// latency, so the three add up to it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Segments {
    /// Not measured (breakdown off) or not known for this packet.
    #[default]
    Unknown,
    /// The first two segments, in ns; their sum is at most the latency.
    Known {
        /// The first segment ([`Direction::segment_names`]).
        first: u64,
        /// The second segment.
        second: u64,
    },
}

impl Segments {
    /// The segments of a window from `start` to `end` through the
    /// waypoints `w1` then `w2`, if they lie in order inside it and the
    /// first two are at most [`MAX_SEGMENT_NS`] each.
    pub fn of(start: u64, w1: u64, w2: u64, end: u64) -> Self {
        if !(start <= w1 && w1 <= w2 && w2 <= end) {
            return Segments::Unknown;
        }
        let (first, second) = (w1.wrapping_sub(start), w2.wrapping_sub(w1));
        if first > MAX_SEGMENT_NS || second > MAX_SEGMENT_NS {
            return Segments::Unknown;
        }
        Segments::Known { first, second }
    }

    /// As [`Segments::of`] for a window that may end before its waypoints
    /// (at the reader's kernel timestamp, taken on the way): a waypoint
    /// after `end` is moved to `end`, its segments are 0.
    pub fn ended_by(start: u64, w1: u64, w2: u64, end: u64) -> Self {
        Self::of(start, w1.min(end), w2.min(end), end)
    }

    /// The three segments of a latency of `latency_ns`, if known.
    pub fn split(self, latency_ns: u64) -> Option<[u64; 3]> {
        match self {
            Segments::Unknown => None,
            Segments::Known { first, second } => {
                let third = latency_ns.checked_sub(first)?.checked_sub(second)?;
                Some([first, second, third])
            }
        }
    }
}

/// One latency measurement of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time (CLOCK_REALTIME) of the measurement's end, in ns,
    /// taken when the record is written: a clock step before it is read
    /// does not move it. The ring keeps it to the microsecond, as the line
    /// shows it.
    pub time_ns: u64,
    /// The latency, in ns (the ring keeps at most [`MAX_LATENCY_NS`]).
    pub latency_ns: u64,
    /// The packet's id (ICMP sequence number, or the id documented for UDP
    /// and TCP in `Documentation/mace.rst`).
    pub pktid: u32,
    /// The window measured.
    pub dir: Direction,
    /// Its segments (with `breakdown` on).
    pub segments: Segments,
}

/// Bits of a packed record's latency.
const LATENCY_BITS: u32 = 42;

/// Bits of a packed record's time in microseconds (up to the year 2112).
const TIME_BITS: u32 = 52;

/// Bits of the packet id kept in the second word (the rest goes to the
/// first).
const PKTID_LOW_BITS: u32 = 64 - LATENCY_BITS;

/// The bit of the first word that says the direction is ingress.
const INGRESS: u64 = 1 << TIME_BITS;

/// The bit of the first word that says the segments are known.
const KNOWN: u64 = 1 << (TIME_BITS + 1);

/// Where the first word keeps the packet id's high bits.
const PKTID_HIGH_SHIFT: u32 = TIME_BITS + 2;

/// Masks of `n` low bits.
const fn low_bits(n: u32) -> u64 {
    (1 << n) - 1
}

// A record fits three words, as it did before it had segments, so that a
// ring slot stays 32 bytes (a power of two: a ring of any size takes what
// it needs, not the next power of two of it):
//
//   word 0: time in us (52 bits) | ingress (1) | segments known (1) |
//           packet id's high 10 bits
//   word 1: latency in ns (42 bits) | packet id's low 22 bits
//   word 2: first segment (32 bits) | second segment (32 bits)
impl Packed for Record {
    #[inline(always)]
    fn pack(&self) -> [u64; WORDS] {
        let time_us = (self.time_ns / 1_000).min(low_bits(TIME_BITS));
        let dir = match self.dir {
            Direction::Egress => 0,
            Direction::Ingress => INGRESS,
        };
        let pktid = u64::from(self.pktid);
        let high = (pktid >> PKTID_LOW_BITS) << PKTID_HIGH_SHIFT;
        let low = (pktid & low_bits(PKTID_LOW_BITS)) << LATENCY_BITS;
        let latency = self.latency_ns.min(MAX_LATENCY_NS);
        let (known, segments) = match self.segments {
            Segments::Known { first, second }
                if first <= MAX_SEGMENT_NS && second <= MAX_SEGMENT_NS =>
            {
                (KNOWN, first | second << 32)
            }
            _ => (0, 0),
        };
        [time_us | dir | known | high, latency | low, segments]
    }

    fn unpack(words: [u64; WORDS]) -> Self {
        let [w0, w1, w2] = words;
        let high = (w0 >> PKTID_HIGH_SHIFT) << PKTID_LOW_BITS;
        let low = w1 >> LATENCY_BITS;
        Record {
            time_ns: (w0 & low_bits(TIME_BITS)).wrapping_mul(1_000),
            latency_ns: w1 & MAX_LATENCY_NS,
            // At most 32 bits: 10 high and 22 low.
            pktid: (high | low) as u32,
            dir: if w0 & INGRESS == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            segments: if w0 & KNOWN == 0 {
                Segments::Unknown
            } else {
                Segments::Known {
                    first: w2 & low_bits(32),
                    second: w2 >> 32,
                }
            },
        }
    }
}

/// Longest line [`format_line`] can produce, newline included.
///
/// `[` 20 `.` 6 `] (` 10 `) ` `ingress` `: ` 20, then ` container=` 20
/// ` container=` 20 ` container=` 20 (the longest name three times) and
/// `\n`: 166 bytes.
pub const MAX_LINE: usize = 168;

/// Formats `rec` (its time already wall-clock) as one `/dev/mace` line into
/// `out`; returns its length.
pub fn format_line(rec: &Record, out: &mut [u8; MAX_LINE]) -> usize {
    let mut line = TextBuf::new(out);
    let secs = rec.time_ns / 1_000_000_000;
    let usecs = rec.time_ns % 1_000_000_000 / 1_000;
    // Cannot fail: MAX_LINE bounds the longest possible line.
    let _ = write!(
        line,
        "[{secs}.{usecs:06}] ({}) {}: {}",
        rec.pktid,
        rec.dir.name(),
        rec.latency_ns
    );
    if let Some(parts) = rec.segments.split(rec.latency_ns) {
        for (name, ns) in rec.dir.segment_names().iter().zip(parts) {
            let _ = write!(line, " {name}={ns}");
        }
    }
    let _ = writeln!(line);
    line.len()
}

/// Where a read copies its bytes to (a user buffer in the kernel).
pub trait Sink {
    /// The error of a failed copy (e.g. `EFAULT`).
    type Error;
    /// Bytes that still fit.
    fn space(&self) -> usize;
    /// Copies all of `bytes`; `bytes.len() <= self.space()`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// The unread rest of the line a reader is in the middle of.
pub struct LineCursor {
    line: [u8; MAX_LINE],
    pos: usize,
    len: usize,
}

impl Default for LineCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineCursor {
    /// A cursor with nothing pending.
    pub const fn new() -> Self {
        Self {
            line: [0; MAX_LINE],
            pos: 0,
            len: 0,
        }
    }

    /// The bytes of the current line not yet returned.
    pub fn pending(&self) -> &[u8] {
        self.line.get(self.pos..self.len).unwrap_or(&[])
    }

    /// Fills `sink` with the pending bytes, then with lines of the records
    /// `next` yields, until `sink` is full or `next` returns `None`.
    ///
    /// Returns the number of bytes copied. A line that does not fit is
    /// continued by the next call. When a copy fails, nothing is lost: the
    /// bytes not copied stay pending, and the error is returned only if
    /// nothing was copied by this call.
    pub fn read<S: Sink>(
        &mut self,
        sink: &mut S,
        mut next: impl FnMut() -> Option<Record>,
    ) -> Result<usize, S::Error> {
        let mut copied = 0usize;
        while sink.space() > 0 {
            if self.pending().is_empty() {
                let Some(rec) = next() else { break };
                self.len = format_line(&rec, &mut self.line);
                self.pos = 0;
            }
            let pending = self.pending();
            let n = pending.len().min(sink.space());
            let chunk = pending.get(..n).unwrap_or(&[]);
            if let Err(e) = sink.put(chunk) {
                return if copied > 0 { Ok(copied) } else { Err(e) };
            }
            self.pos = self.pos.saturating_add(n).min(self.len);
            copied = copied.saturating_add(n);
        }
        Ok(copied)
    }
}
