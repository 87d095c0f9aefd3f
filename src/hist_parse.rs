// SPDX-License-Identifier: GPL-2.0

//! The parser of `/dev/mace-hist`'s text form, for userspace readers.
//!
//! The form is described, and written, in `hist.rs`; [`parse_line`] reads
//! one line of it. A reader checks the first line ([`Line::Header`]) for
//! the version it knows and the second ([`Line::Bounds`]) for the bounds it
//! was compiled with: [`Line::Bounds`] is only returned when every bound is
//! the one [`upper_bound_ns`] gives.
//!
//! `hist` and `seghist` lines share their tail (count, sum, `index:count`
//! pairs) and its rules: bucket indexes ascending and in range, no empty
//! bucket listed, and a count that is the sum of the buckets' counts.
//! A `seghist` line's segment must be one of its direction's
//! [`Direction::segment_names`]; [`Line::SegHist`] carries its index there.
//!
//! This file uses only `core`. The kernel module writes the form but never
//! reads it, so only the host crate (`mace-core`) compiles this file.

#![deny(unsafe_code)]

use crate::hist::{upper_bound_ns, Snapshot, BUCKETS};
use crate::record::Direction;
use crate::record_parse::{direction, number};
use core::fmt;

/// One line of the text form.
// A `Hist` or `SegHist` line carries its counts by value (about 0.8 KiB):
// a line is parsed and used at once, and this `no_std` crate has no
// allocator to box them in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// `mace-hist VERSION`.
    Header {
        /// The version of the form.
        version: u32,
    },
    /// `le_ns ...`: the bounds, which are this reader's.
    Bounds,
    /// `netns INUM capture 0|1`.
    NetNs {
        /// The namespace's inode number.
        inum: u32,
        /// Whether it captures.
        capture: bool,
    },
    /// `counter INUM NAME VALUE`.
    Counter {
        /// The namespace's inode number.
        inum: u32,
        /// The counter's name.
        name: &'a str,
        /// Its value.
        value: u64,
    },
    /// `hist INUM egress|ingress COUNT SUM_NS INDEX:COUNT...`.
    Hist {
        /// The namespace's inode number.
        inum: u32,
        /// The direction.
        dir: Direction,
        /// The counts.
        snapshot: Snapshot,
    },
    /// `seghist INUM egress|ingress SEGMENT COUNT SUM_NS INDEX:COUNT...`
    /// (only for a namespace that ever had `breakdown` on).
    SegHist {
        /// The namespace's inode number.
        inum: u32,
        /// The direction.
        dir: Direction,
        /// The segment: its index in `dir.segment_names()` (0, 1 or 2),
        /// whose entry is the name the line gave.
        segment: usize,
        /// The counts of the segment's durations.
        snapshot: Snapshot,
    },
}

/// Why a line is not of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The first word is no known record.
    UnknownRecord,
    /// A field is missing, extra, or not what its place requires.
    BadField,
    /// The bounds are not this reader's (another bucket layout).
    OtherBounds,
    /// A bucket index is past the last bucket, or not ascending.
    BadBucket,
    /// The count is not the sum of the buckets' counts.
    CountMismatch,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::UnknownRecord => "unknown record",
            ParseError::BadField => "malformed field",
            ParseError::OtherBounds => "bucket bounds differ from this reader's",
            ParseError::BadBucket => "bucket index out of range or out of order",
            ParseError::CountMismatch => "count is not the sum of the buckets",
        })
    }
}

/// A decimal number of digits only (no sign, no spaces) that fits `T`.
fn num<T: TryFrom<u64>>(s: Option<&str>) -> Result<T, ParseError> {
    s.and_then(number)
        .and_then(|n| T::try_from(n).ok())
        .ok_or(ParseError::BadField)
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Line<'_>, ParseError> {
    let mut f = line.split(' ');
    let line = match f.next() {
        Some("mace-hist") => Line::Header {
            version: num(f.next())?,
        },
        Some("le_ns") => {
            let mut i = 0;
            for b in f.by_ref() {
                if upper_bound_ns(i) != Some(num(Some(b))?) {
                    return Err(ParseError::OtherBounds);
                }
                i += 1;
            }
            if i != BUCKETS - 1 {
                return Err(ParseError::OtherBounds);
            }
            Line::Bounds
        }
        Some("netns") => {
            let inum = num(f.next())?;
            if f.next() != Some("capture") {
                return Err(ParseError::BadField);
            }
            let capture = match f.next() {
                Some("0") => false,
                Some("1") => true,
                _ => return Err(ParseError::BadField),
            };
            Line::NetNs { inum, capture }
        }
        Some("counter") => {
            let inum = num(f.next())?;
            let name = f
                .next()
                .filter(|n| valid_name(n))
                .ok_or(ParseError::BadField)?;
            Line::Counter {
                inum,
                name,
                value: num(f.next())?,
            }
        }
        Some("hist") => {
            let inum = num(f.next())?;
            let dir = f.next().and_then(direction).ok_or(ParseError::BadField)?;
            Line::Hist {
                inum,
                dir,
                snapshot: counts(&mut f)?,
            }
        }
        Some("seghist") => {
            let inum = num(f.next())?;
            let dir = f.next().and_then(direction).ok_or(ParseError::BadField)?;
            let segment = f
                .next()
                .and_then(|name| dir.segment_names().iter().position(|&n| n == name))
                .ok_or(ParseError::BadField)?;
            Line::SegHist {
                inum,
                dir,
                segment,
                snapshot: counts(&mut f)?,
            }
        }
        _ => return Err(ParseError::UnknownRecord),
    };
    if f.next().is_some() {
        return Err(ParseError::BadField);
    }
    Ok(line)
}

/// The tail of a `hist` or `seghist` line: `COUNT SUM_NS INDEX:COUNT...`,
/// to the end of the line.
fn counts<'a>(f: &mut impl Iterator<Item = &'a str>) -> Result<Snapshot, ParseError> {
    let mut snapshot = Snapshot {
        count: num(f.next())?,
        sum_ns: num(f.next())?,
        ..Snapshot::default()
    };
    let mut next = 0usize;
    let mut total = 0u64;
    for pair in f {
        let (i, n) = pair.split_once(':').ok_or(ParseError::BadField)?;
        let i: usize = num(Some(i))?;
        let n: u64 = num(Some(n))?;
        if i < next || n == 0 {
            return Err(ParseError::BadBucket);
        }
        *snapshot.counts.get_mut(i).ok_or(ParseError::BadBucket)? = n;
        total = total.checked_add(n).ok_or(ParseError::CountMismatch)?;
        next = i + 1;
    }
    if total != snapshot.count {
        return Err(ParseError::CountMismatch);
    }
    Ok(snapshot)
}

/// Whether `name` is a counter name: lowercase letters, digits and `_`,
/// starting with a letter.
fn valid_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
