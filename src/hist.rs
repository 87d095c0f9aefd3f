// SPDX-License-Identifier: GPL-2.0

//! Latency histograms: exponential buckets, their atomic counts, and their
//! text form in `/dev/mace-hist`.
//!
//! A latency of `ns` nanoseconds falls in the first bucket whose upper bound
//! is at least `ns` (Prometheus' `le`, "less than or equal"). The bounds are
//! base 2 with [`SUB_BUCKETS`] sub-buckets per octave: 512 ns, then 640,
//! 768, 896, 1024, 1280, ... up to 2^34 ns (about 17.2 s), then one bucket
//! for everything above. A bound is at most 25 % above the one before it, so
//! a quantile read from the buckets is off by at most a quarter.
//!
//! A probe adds a latency with two relaxed atomic adds ([`Histogram::add`]):
//! its bucket's count and the sum. A reader's [`Histogram::snapshot`] sees
//! each count exactly; it may see the sum of a latency whose bucket it did not
//! see yet, or the other way round.
//!
//! The text form, version 1, one record per line, fields separated by one
//! space:
//!
//! ```text
//! mace-hist 1
//! le_ns 512 640 768 896 1024 1280 ... 17179869184
//! netns 4026532211 capture 1
//! counter 4026532211 egress 10
//! hist 4026532211 egress 10 2401837 9:2 10:8
//! hist 4026532211 ingress 10 3011290 10:7 11:3
//! ```
//!
//! A namespace that ever had `breakdown` on also has a `seghist` line for
//! each segment of each direction ([`crate::record::Direction::segment_names`]),
//! after its `hist` lines, in the same form with the segment's name after
//! the direction:
//!
//! ```text
//! seghist 4026532211 egress container 10 120345 3:10
//! ```
//!
//! `le_ns` lists the finite upper bounds; the bucket after the last is
//! `+Inf`. Then, for each namespace: a `netns` line (its inode number, as in
//! `/proc/<pid>/ns/net`, and whether it captures), a `counter` line for each
//! of its counters (the names of `/sys/class/mace/stats`), and a `hist` line
//! for each direction: the count, the sum in ns, and `index:count` for each
//! bucket that is not empty, indexes ascending, counts not cumulative. The
//! parser is in `hist_parse.rs`.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::record::Direction;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sub-buckets per octave, as a power of two.
const SUB_BITS: u32 = 2;
/// Sub-buckets per octave.
pub const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// The octave whose upper end is the first bound: 2^9 ns = 512 ns.
const FIRST_OCTAVE: u32 = 9;
/// The last octave with finite bounds: 2^33 .. 2^34 ns.
const LAST_OCTAVE: u32 = 33;
/// Octaves with finite sub-buckets.
const OCTAVES: usize = (LAST_OCTAVE - FIRST_OCTAVE + 1) as usize;
/// Buckets: one up to 512 ns, the sub-buckets, and one above 2^34 ns.
pub const BUCKETS: usize = 1 + OCTAVES * SUB_BUCKETS + 1;
/// The version of the text form written by [`write_header`].
pub const VERSION: u32 = 1;

/// The bucket of a latency of `ns` nanoseconds.
#[inline]
pub fn bucket(ns: u64) -> usize {
    if ns <= 1 << FIRST_OCTAVE {
        return 0;
    }
    // Buckets are (lower, upper]: index by `ns - 1`, which is at least 512.
    let w = ns.wrapping_sub(1);
    let octave = 63u32.wrapping_sub(w.leading_zeros());
    if octave > LAST_OCTAVE {
        return BUCKETS - 1;
    }
    let sub = (w >> octave.wrapping_sub(SUB_BITS)) as usize & (SUB_BUCKETS - 1);
    let first = (octave.wrapping_sub(FIRST_OCTAVE) as usize).wrapping_mul(SUB_BUCKETS);
    first.wrapping_add(sub).wrapping_add(1)
}

/// The upper bound of bucket `index`, in ns (inclusive); `None` for the last
/// bucket (`+Inf`) and for indexes past it.
pub fn upper_bound_ns(index: usize) -> Option<u64> {
    if index == 0 {
        return Some(1 << FIRST_OCTAVE);
    }
    if index >= BUCKETS - 1 {
        return None;
    }
    let i = index - 1;
    let octave = FIRST_OCTAVE + (i / SUB_BUCKETS) as u32;
    let sub = (i % SUB_BUCKETS) as u64;
    Some((1u64 << octave) + ((sub + 1) << (octave - SUB_BITS)))
}

/// The counts of one direction's latencies of one namespace.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts a latency of `ns` nanoseconds (the sum wraps, never panics).
    #[inline]
    pub fn add(&self, ns: u64) {
        if let Some(c) = self.counts.get(bucket(ns)) {
            c.fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (dst, src) in s.counts.iter_mut().zip(self.counts.iter()) {
            *dst = src.load(Relaxed);
            s.count = s.count.wrapping_add(*dst);
        }
        s.sum_ns = self.sum_ns.load(Relaxed);
        s
    }
}

/// The counts of a histogram at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Latencies counted: the sum of `counts`.
    pub count: u64,
    /// Their sum, in ns.
    pub sum_ns: u64,
    /// Latencies in each bucket (not cumulative).
    pub counts: [u64; BUCKETS],
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            count: 0,
            sum_ns: 0,
            counts: [0; BUCKETS],
        }
    }
}

/// Writes the header: the version line and the bounds line.
pub fn write_header(out: &mut impl Write) -> fmt::Result {
    writeln!(out, "mace-hist {VERSION}")?;
    out.write_str("le_ns")?;
    let mut i = 0;
    while let Some(b) = upper_bound_ns(i) {
        write!(out, " {b}")?;
        i += 1;
    }
    out.write_char('\n')
}

/// Writes the `netns` line of namespace `inum`.
pub fn write_netns(out: &mut impl Write, inum: u32, capture: bool) -> fmt::Result {
    writeln!(out, "netns {inum} capture {}", u8::from(capture))
}

/// Writes a `counter` line of namespace `inum`.
pub fn write_counter(out: &mut impl Write, inum: u32, name: &str, value: u64) -> fmt::Result {
    writeln!(out, "counter {inum} {name} {value}")
}

/// Writes the `hist` line of direction `dir` of namespace `inum`.
pub fn write_hist(out: &mut impl Write, inum: u32, dir: Direction, s: &Snapshot) -> fmt::Result {
    write!(out, "hist {inum} {}", dir.name())?;
    write_counts(out, s)
}

/// Writes the `seghist` line of segment `segment` (one of
/// [`Direction::segment_names`]) of direction `dir` of namespace `inum`.
pub fn write_seghist(
    out: &mut impl Write,
    inum: u32,
    dir: Direction,
    segment: &str,
    s: &Snapshot,
) -> fmt::Result {
    write!(out, "seghist {inum} {} {segment}", dir.name())?;
    write_counts(out, s)
}

/// Writes the rest of a `hist` or `seghist` line: count, sum and the
/// buckets that are not empty.
fn write_counts(out: &mut impl Write, s: &Snapshot) -> fmt::Result {
    write!(out, " {} {}", s.count, s.sum_ns)?;
    for (i, &n) in s.counts.iter().enumerate() {
        if n != 0 {
            write!(out, " {i}:{n}")?;
        }
    }
    out.write_char('\n')
}

/// The histograms of a namespace's segments (`breakdown`): for each
/// direction, one per segment, in the order of
/// [`Direction::segment_names`].
pub struct SegmentHistograms {
    egress: [Histogram; 3],
    ingress: [Histogram; 3],
}

impl Default for SegmentHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentHistograms {
    /// Empty histograms.
    pub const fn new() -> Self {
        Self {
            egress: [const { Histogram::new() }; 3],
            ingress: [const { Histogram::new() }; 3],
        }
    }

    /// The histograms of direction `dir`'s segments.
    pub fn of(&self, dir: Direction) -> &[Histogram; 3] {
        match dir {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }

    /// Counts the segments `parts` of a latency of direction `dir`.
    pub fn add(&self, dir: Direction, parts: [u64; 3]) {
        for (h, ns) in self.of(dir).iter().zip(parts) {
            h.add(ns);
        }
    }
}
