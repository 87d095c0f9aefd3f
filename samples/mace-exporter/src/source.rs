// SPDX-License-Identifier: GPL-2.0

//! Reading `/dev/mace-hist` and `/sys/class/mace/stats` into plain data.
//!
//! The text of `/dev/mace-hist` is parsed line by line with
//! [`mace_core::hist_parse::parse_line`], the parser that is tested against
//! the kernel's writer; this module only groups the lines by namespace.

use mace_core::hist::Snapshot;
use mace_core::hist_parse::{parse_line, Line, ParseError};
use mace_core::record::Direction;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::Path;

/// The version of `/dev/mace-hist`'s text form this exporter reads.
pub const HIST_VERSION: u32 = 1;

/// One network namespace of a `/dev/mace-hist` snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetNs {
    /// Whether the namespace captures.
    pub capture: bool,
    /// Its counters, by name, in the order read.
    pub counters: Vec<(String, u64)>,
    /// Its egress latencies.
    pub egress: Snapshot,
    /// Its ingress latencies.
    pub ingress: Snapshot,
    /// Its egress segments' durations (`seghist` lines), in the order of
    /// [`Direction::segment_names`]; `None` where the snapshot had no line
    /// (every one, in a namespace that never had `breakdown` on).
    pub egress_segments: [Option<Snapshot>; 3],
    /// Its ingress segments' durations, likewise.
    pub ingress_segments: [Option<Snapshot>; 3],
}

impl NetNs {
    /// The segments' durations of direction `dir`.
    pub fn segments(&self, dir: Direction) -> &[Option<Snapshot>; 3] {
        match dir {
            Direction::Egress => &self.egress_segments,
            Direction::Ingress => &self.ingress_segments,
        }
    }

    /// The segments' durations of direction `dir`, to change.
    pub fn segments_mut(&mut self, dir: Direction) -> &mut [Option<Snapshot>; 3] {
        match dir {
            Direction::Egress => &mut self.egress_segments,
            Direction::Ingress => &mut self.ingress_segments,
        }
    }
}

/// A parsed `/dev/mace-hist` snapshot: its namespaces by inode number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistFile {
    /// The namespaces, by inode number.
    pub namespaces: BTreeMap<u32, NetNs>,
}

/// Why `/dev/mace-hist` gave no snapshot; each is a value of the `reason`
/// label of `mace_down_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// The file does not exist: mace is not loaded.
    NotLoaded,
    /// Opening it was refused (`EPERM`/`EACCES`): the exporter lacks
    /// CAP_NET_ADMIN over its network namespace.
    PermissionDenied,
    /// Another error opening or reading it.
    ReadError,
    /// Its text is not version 1 of the form, or not this build's buckets,
    /// or a line is malformed.
    BadFormat,
}

impl Down {
    /// Every reason, in the order they are exported.
    pub const ALL: [Down; 4] = [
        Down::NotLoaded,
        Down::PermissionDenied,
        Down::ReadError,
        Down::BadFormat,
    ];

    /// The reason's label value.
    pub fn name(self) -> &'static str {
        match self {
            Down::NotLoaded => "not_loaded",
            Down::PermissionDenied => "permission_denied",
            Down::ReadError => "read_error",
            Down::BadFormat => "bad_format",
        }
    }

    /// The reason for an I/O error opening or reading the file.
    pub fn of_io(e: &io::Error) -> Down {
        match e.kind() {
            ErrorKind::NotFound => Down::NotLoaded,
            ErrorKind::PermissionDenied => Down::PermissionDenied,
            _ => Down::ReadError,
        }
    }
}

/// Why a text is not a snapshot this exporter reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The line's number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for FormatError {}

/// Parses the text of a `/dev/mace-hist` snapshot.
///
/// The first line must be the header of version [`HIST_VERSION`], the
/// second the bounds of this build's buckets. Lines of a record this
/// exporter does not know are skipped (a later kernel may add some without a
/// new version); any other malformed line fails the whole snapshot. A
/// `counter`, `hist` or `seghist` line of a namespace without a `netns`
/// line adds that namespace, not capturing.
pub fn parse_hist(text: &str) -> Result<HistFile, FormatError> {
    let mut file = HistFile::default();
    let mut lines = 0;
    for (i, raw) in text.lines().enumerate() {
        let err = |what: String| FormatError { line: i + 1, what };
        let line = match parse_line(raw) {
            Ok(line) => line,
            Err(ParseError::UnknownRecord) if i >= 2 => continue,
            Err(e) => return Err(err(e.to_string())),
        };
        lines = i + 1;
        match (i, line) {
            (0, Line::Header { version }) if version == HIST_VERSION => {}
            (0, Line::Header { version }) => {
                return Err(err(format!(
                    "version {version}, this exporter reads {HIST_VERSION}"
                )))
            }
            (0, _) => return Err(err("not a mace-hist header".into())),
            (1, Line::Bounds) => {}
            (1, _) => return Err(err("not the le_ns line".into())),
            (_, Line::Header { .. } | Line::Bounds) => {
                return Err(err("header or bounds repeated".into()))
            }
            (_, Line::NetNs { inum, capture }) => {
                file.namespaces.entry(inum).or_default().capture = capture;
            }
            (_, Line::Counter { inum, name, value }) => {
                let ns = file.namespaces.entry(inum).or_default();
                ns.counters.push((name.to_owned(), value));
            }
            (
                _,
                Line::Hist {
                    inum,
                    dir,
                    snapshot,
                },
            ) => {
                let ns = file.namespaces.entry(inum).or_default();
                match dir {
                    Direction::Egress => ns.egress = snapshot,
                    Direction::Ingress => ns.ingress = snapshot,
                }
            }
            (
                _,
                Line::SegHist {
                    inum,
                    dir,
                    segment,
                    snapshot,
                },
            ) => {
                let ns = file.namespaces.entry(inum).or_default();
                if let Some(slot) = ns.segments_mut(dir).get_mut(segment) {
                    *slot = Some(snapshot);
                }
            }
        }
    }
    if lines < 2 {
        return Err(FormatError {
            line: lines + 1,
            what: "header or bounds missing".into(),
        });
    }
    Ok(file)
}

/// Reads and parses the snapshot at `path` (one `open`, one snapshot).
pub fn read_hist(path: &Path) -> Result<HistFile, (Down, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| (Down::of_io(&e), format!("{}: {e}", path.display())))?;
    parse_hist(&text).map_err(|e| (Down::BadFormat, format!("{}: {e}", path.display())))
}

/// The host-wide lines of the initial namespace's `/sys/class/mace/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// `host_<name> <value>` lines of one number, without the prefix.
    pub host: Vec<(String, u64)>,
    /// `pert_<hook> <hits> <ns>` lines: hook, hits, ns.
    pub probes: Vec<(String, u64, u64)>,
}

/// Parses a `stats` text, keeping only its `host_` lines of one number and
/// its `pert_` lines (a namespace's own lines come from `/dev/mace-hist`).
pub fn parse_stats(text: &str) -> HostStats {
    let mut stats = HostStats::default();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        let nums: Vec<u64> = f.map_while(|w| w.parse().ok()).collect();
        if line.split_ascii_whitespace().count() != nums.len() + 1 {
            continue;
        }
        if let Some(name) = key.strip_prefix("host_") {
            if let [value] = nums[..] {
                stats.host.push((name.to_owned(), value));
            }
        } else if let Some(hook) = key.strip_prefix("pert_") {
            if let [hits, ns] = nums[..] {
                stats.probes.push((hook.to_owned(), hits, ns));
            }
        }
    }
    stats
}

/// Reads and parses the `stats` file at `path`.
pub fn read_stats(path: &Path) -> io::Result<HostStats> {
    std::fs::read_to_string(path).map(|t| parse_stats(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture of `/dev/mace-hist` the tests and tests/host-scripts.sh use.
    pub const HIST: &str = include_str!("../tests/fixtures/mace-hist.txt");
    /// The fixture of the initial namespace's `/sys/class/mace/stats`.
    pub const STATS: &str = include_str!("../tests/fixtures/stats.txt");

    #[test]
    fn fixture_has_this_builds_header() {
        let mut header = String::new();
        mace_core::hist::write_header(&mut header).unwrap();
        assert!(HIST.starts_with(&header));
    }

    #[test]
    fn parses_the_fixture() {
        let f = parse_hist(HIST).unwrap();
        assert_eq!(
            f.namespaces.keys().copied().collect::<Vec<_>>(),
            [4026531840, 4026532211, 4026532300]
        );
        let c = &f.namespaces[&4026532211];
        assert!(c.capture);
        assert!(!f.namespaces[&4026532300].capture);
        assert_eq!(c.counters.len(), 30);
        assert!(c
            .counters
            .contains(&("ingress_segments_unknown".to_owned(), 1)));
        assert!(c.counters.contains(&("egress_expired".to_owned(), 1)));
        assert_eq!((c.egress.count, c.egress.sum_ns), (10, 2401837));
        assert_eq!((c.egress.counts[9], c.egress.counts[10]), (2, 8));
        assert_eq!(c.ingress.counts[mace_core::hist::BUCKETS - 1], 1);
        // Its segments: each as many as the latencies with known segments.
        for (dir, counter) in [
            (Direction::Egress, "egress_segments"),
            (Direction::Ingress, "ingress_segments"),
        ] {
            let known = c.counters.iter().find(|(n, _)| n == counter).unwrap().1;
            for seg in c.segments(dir) {
                assert_eq!(seg.as_ref().unwrap().count, known, "{dir:?}");
            }
        }
        let host = c.egress_segments[1].as_ref().unwrap();
        assert_eq!((host.sum_ns, host.counts[5], host.counts[6]), (10340, 3, 5));
        let socket = c.ingress_segments[2].as_ref().unwrap();
        assert_eq!(socket.counts[mace_core::hist::BUCKETS - 1], 1);
        // The others never had breakdown on.
        for inum in [4026531840, 4026532300] {
            let ns = &f.namespaces[&inum];
            assert_eq!(ns.egress_segments, [None, None, None]);
            assert_eq!(ns.ingress_segments, [None, None, None]);
        }
    }

    #[test]
    fn refuses_other_versions_bounds_and_malformed_lines() {
        let body = HIST.split_once('\n').unwrap().1;
        let e = parse_hist(&format!("mace-hist 2\n{body}")).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.what.contains("version 2"), "{e}");
        assert_eq!(parse_hist(body).unwrap_err().line, 1);
        assert_eq!(parse_hist("mace-hist 1\n").unwrap_err().line, 2);
        assert_eq!(parse_hist("").unwrap_err().line, 1);
        assert!(parse_hist("mace-hist 1\nle_ns 512 640\n").is_err());
        let bad = format!("{HIST}hist 1 egress 3 10 4:1\n");
        assert!(parse_hist(&bad).unwrap_err().what.contains("count"));
        let bad = format!("{HIST}counter 1 egress x\n");
        assert!(parse_hist(&bad).is_err());
        let bad = format!("{HIST}seghist 4026532211 egress socket 0 0\n");
        let e = parse_hist(&bad).unwrap_err();
        assert_eq!(e.line, HIST.lines().count() + 1);
        assert!(e.what.contains("malformed"), "{e}");
        let bad = format!("{HIST}seghist 4026532211 ingress socket 2 10 4:1\n");
        assert!(parse_hist(&bad).unwrap_err().what.contains("count"));
    }

    #[test]
    fn skips_unknown_records() {
        let more = format!("{HIST}future 4026532211 something 1\n");
        assert_eq!(parse_hist(&more).unwrap(), parse_hist(HIST).unwrap());
    }

    #[test]
    fn reasons_of_read_failures() {
        let dir = crate::testutil::TempDir::new("source");
        let (down, why) = read_hist(&dir.path().join("mace-hist")).unwrap_err();
        assert_eq!(down, Down::NotLoaded);
        assert!(why.contains("mace-hist"), "{why}");
        assert_eq!(read_hist(dir.path()).unwrap_err().0, Down::ReadError);
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello\n").unwrap();
        assert_eq!(read_hist(&junk).unwrap_err().0, Down::BadFormat);
        let denied = io::Error::from(ErrorKind::PermissionDenied);
        assert_eq!(Down::of_io(&denied), Down::PermissionDenied);
        let f = dir.path().join("hist");
        std::fs::write(&f, HIST).unwrap();
        assert_eq!(read_hist(&f).unwrap().namespaces.len(), 3);
    }

    #[test]
    fn parses_host_and_probe_lines_of_stats() {
        let s = parse_stats(STATS);
        assert!(s.host.contains(&("ingress_stamped".to_owned(), 40)));
        assert!(s.host.contains(&("capturing".to_owned(), 2)));
        // Lists and several numbers are not single values.
        assert!(!s
            .host
            .iter()
            .any(|(n, _)| n == "outer_ifindexes" || n == "table_entries"));
        // The namespace's own lines are left out.
        assert!(!s.host.iter().any(|(n, _)| n == "egress" || n == "netns"));
        assert_eq!(s.probes.len(), 12);
        assert_eq!(s.probes[0], ("sys_enter".to_owned(), 100, 250000));
        assert!(!s.host.iter().any(|(n, _)| n == "breakdown"));
        assert_eq!(
            parse_stats("netns 1\nenabled 0\nbreakdown 1\n"),
            HostStats::default()
        );
    }
}
