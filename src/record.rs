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
//! `: ` latency in nanoseconds. A read may stop in the middle of a line; the
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
}

/// One latency measurement of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time (CLOCK_REALTIME) of the measurement's end, in ns,
    /// taken when the record is written: a clock step before it is read
    /// does not move it.
    pub time_ns: u64,
    /// The latency, in ns.
    pub latency_ns: u64,
    /// The packet's id (ICMP sequence number, or the id documented for UDP
    /// and TCP in `Documentation/mace.rst`).
    pub pktid: u32,
    /// The window measured.
    pub dir: Direction,
}

impl Packed for Record {
    fn pack(&self) -> [u64; WORDS] {
        let dir = match self.dir {
            Direction::Egress => 0u64,
            Direction::Ingress => 1u64,
        };
        [
            self.time_ns,
            self.latency_ns,
            u64::from(self.pktid) | (dir << 32),
        ]
    }

    fn unpack(words: [u64; WORDS]) -> Self {
        let [time_ns, latency_ns, id_dir] = words;
        Record {
            time_ns,
            latency_ns,
            pktid: id_dir as u32,
            dir: if id_dir >> 32 == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
        }
    }
}

/// Longest line [`format_line`] can produce, newline included.
///
/// `[` 20 `.` 6 `] (` 10 `) ` `ingress` `: ` 20 `\n` is 73 bytes.
pub const MAX_LINE: usize = 80;

/// Formats `rec` (its time already wall-clock) as one `/dev/mace` line into
/// `out`; returns its length.
pub fn format_line(rec: &Record, out: &mut [u8; MAX_LINE]) -> usize {
    let mut line = TextBuf::new(out);
    let secs = rec.time_ns / 1_000_000_000;
    let usecs = rec.time_ns % 1_000_000_000 / 1_000;
    // Cannot fail: MAX_LINE bounds the longest possible line.
    let _ = writeln!(
        line,
        "[{secs}.{usecs:06}] ({}) {}: {}",
        rec.pktid,
        rec.dir.name(),
        rec.latency_ns
    );
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
