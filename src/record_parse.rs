// SPDX-License-Identifier: GPL-2.0

//! The parser of `/dev/mace` lines, the inverse of [`format_line`].
//!
//! Tools that read `/dev/mace` (`mace-ping`, `mace-stress`) turn each line
//! back into the [`Record`] it was formatted from, so that the line format
//! is written once and read once, side by side. The line carries the time
//! in microseconds only: a parsed record's `time_ns` is the formatted one
//! rounded down to a whole microsecond.
//!
//! This file uses only `core`. The host crate compiles it for the tools and
//! the tests; the module does not, as it never reads its own lines.
//!
//! [`format_line`]: crate::record::format_line

#![deny(unsafe_code)]

use crate::record::{Direction, Record, Segments};

/// Parses a non-empty run of ASCII digits (no sign, no spaces).
pub(crate) fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The direction named `name` in a line.
pub(crate) fn direction(name: &str) -> Option<Direction> {
    [Direction::Egress, Direction::Ingress]
        .into_iter()
        .find(|d| d.name() == name)
}

/// Parses one `/dev/mace` line, with or without its newline.
///
/// Returns `None` unless the line is exactly `[SECS.USECS] (PKTID) DIR: NS`,
/// optionally followed by the direction's three segments ` NAME=NS` in
/// their order, as [`format_line`](crate::record::format_line) writes it:
/// decimal digits only, six of them for the microseconds, `egress` or
/// `ingress`, every number in range of its field, and segments that add up
/// to the latency exactly.
pub fn parse_line(line: &str) -> Option<Record> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("] (")?;
    let (secs, usecs) = stamp.split_once('.')?;
    let (pktid, rest) = rest.split_once(") ")?;
    let (dir, rest) = rest.split_once(": ")?;
    if usecs.len() != 6 {
        return None;
    }
    let time_ns = number(secs)?
        .checked_mul(1_000_000_000)?
        .checked_add(number(usecs)?.checked_mul(1_000)?)?;
    let dir = direction(dir)?;
    let (latency, segments) = match rest.split_once(' ') {
        None => (rest, Segments::Unknown),
        Some((latency, parts)) => (latency, segments(dir, parts, number(latency)?)?),
    };
    Some(Record {
        time_ns,
        latency_ns: number(latency)?,
        pktid: u32::try_from(number(pktid)?).ok()?,
        dir,
        segments,
    })
}

/// Parses the segments `parts` of a line of direction `dir` whose latency
/// is `latency`: `NAME=NS NAME=NS NAME=NS`, the names of
/// [`Direction::segment_names`] in order, the values adding up to
/// `latency`.
fn segments(dir: Direction, parts: &str, latency: u64) -> Option<Segments> {
    let mut values = [0u64; 3];
    let mut words = parts.split(' ');
    for (name, value) in dir.segment_names().iter().zip(values.iter_mut()) {
        let (n, v) = words.next()?.split_once('=')?;
        if n != *name {
            return None;
        }
        *value = number(v)?;
    }
    if words.next().is_some() {
        return None;
    }
    let [first, second, third] = values;
    if first.checked_add(second)?.checked_add(third)? != latency {
        return None;
    }
    Some(Segments::Known { first, second })
}
