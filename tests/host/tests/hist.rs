//! Tests of the latency histograms: bucket bounds, concurrent counting, and
//! the text form of `/dev/mace-hist` (`hist` and `seghist` lines) written
//! and parsed back.

use mace_core::hist::{
    bucket, upper_bound_ns, write_counter, write_header, write_hist, write_netns, write_seghist,
    Histogram, SegmentHistograms, Snapshot, BUCKETS, SUB_BUCKETS, VERSION,
};
use mace_core::hist_parse::{parse_line, Line, ParseError};
use mace_core::record::Direction;
use std::sync::Arc;

fn bounds() -> Vec<u64> {
    (0..BUCKETS).map_while(upper_bound_ns).collect()
}

#[test]
fn bounds_span_a_microsecond_to_ten_seconds_in_steps_of_at_most_a_quarter() {
    let b = bounds();
    assert_eq!(b.len(), BUCKETS - 1);
    assert_eq!(b[0], 512);
    assert_eq!(&b[1..5], &[640, 768, 896, 1024]);
    assert_eq!(*b.last().unwrap(), 1 << 34);
    assert!(*b.last().unwrap() > 10_000_000_000);
    for w in b.windows(2) {
        assert!(w[1] > w[0], "{w:?} not ascending");
        assert!(w[1] * 4 <= w[0] * 5, "{w:?} more than 25 % apart");
    }
    assert_eq!(upper_bound_ns(BUCKETS - 1), None);
    assert_eq!(upper_bound_ns(usize::MAX), None);
    assert_eq!(SUB_BUCKETS, 4);
}

/// The bucket of `ns` by the definition: the first whose bound is >= `ns`.
fn bucket_by_search(b: &[u64], ns: u64) -> usize {
    b.iter().position(|&u| ns <= u).unwrap_or(BUCKETS - 1)
}

#[test]
fn every_latency_falls_in_the_first_bucket_whose_bound_is_not_below_it() {
    let b = bounds();
    for ns in 0..200_000 {
        assert_eq!(bucket(ns), bucket_by_search(&b, ns), "{ns}");
    }
    for &u in &b {
        for ns in [u - 1, u, u + 1] {
            assert_eq!(bucket(ns), bucket_by_search(&b, ns), "{ns}");
        }
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ns = x >> (x % 64);
        assert_eq!(bucket(ns), bucket_by_search(&b, ns), "{ns}");
    }
    assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    assert_eq!(bucket((1 << 34) + 1), BUCKETS - 1);
}

#[test]
fn a_snapshot_counts_each_latency_once_and_sums_them() {
    let h = Histogram::new();
    for ns in [1, 512, 513, 1000, 1000, 5_000_000, u64::MAX / 2] {
        h.add(ns);
    }
    let s = h.snapshot();
    assert_eq!(s.count, 7);
    assert_eq!(s.counts.iter().sum::<u64>(), 7);
    assert_eq!(s.counts[0], 2);
    assert_eq!(s.counts[bucket(1000)], 2);
    assert_eq!(s.counts[BUCKETS - 1], 1);
    assert_eq!(s.sum_ns, 1 + 512 + 513 + 2000 + 5_000_000 + u64::MAX / 2);
    // The sum wraps rather than panicking.
    h.add(u64::MAX);
    assert_eq!(h.snapshot().counts[BUCKETS - 1], 2);
}

#[test]
fn concurrent_adds_are_all_counted() {
    let h = Arc::new(Histogram::new());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..50_000u64 {
                    h.add(500 + (i * 7 + t) % 3000);
                }
            })
        })
        .collect();
    // A reader meanwhile never sees a count that is not the buckets' sum.
    for _ in 0..1000 {
        let s = h.snapshot();
        assert_eq!(s.count, s.counts.iter().sum::<u64>());
    }
    for t in threads {
        t.join().unwrap();
    }
    let s = h.snapshot();
    assert_eq!(s.count, 200_000);
    let want: u64 = (0..4u64)
        .map(|t| {
            (0..50_000u64)
                .map(|i| 500 + (i * 7 + t) % 3000)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(s.sum_ns, want);
}

fn text(f: impl FnOnce(&mut String) -> std::fmt::Result) -> String {
    let mut s = String::new();
    f(&mut s).unwrap();
    s
}

#[test]
fn the_text_form_parses_back_to_what_was_written() {
    let eg = Histogram::new();
    for ns in [700, 700, 900, 40_000, 20_000_000_000] {
        eg.add(ns);
    }
    let eg = eg.snapshot();
    let ing = Snapshot::default();
    let out = text(|o| {
        write_header(o)?;
        write_netns(o, 4026532211, true)?;
        write_counter(o, 4026532211, "egress_expired", 3)?;
        write_hist(o, 4026532211, Direction::Egress, &eg)?;
        write_hist(o, 4026532211, Direction::Ingress, &ing)
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], "mace-hist 1");
    assert!(lines[1].starts_with("le_ns 512 640 768 896 1024 1280 "));
    assert!(lines[1].ends_with(" 17179869184"));
    assert_eq!(lines[2], "netns 4026532211 capture 1");
    assert_eq!(lines[3], "counter 4026532211 egress_expired 3");
    assert_eq!(
        lines[4],
        format!(
            "hist 4026532211 egress 5 20000042300 2:2 4:1 {}:1 101:1",
            bucket(40_000)
        )
    );
    assert_eq!(lines[5], "hist 4026532211 ingress 0 0");

    let parsed: Vec<Line> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
    assert_eq!(parsed[0], Line::Header { version: VERSION });
    assert_eq!(parsed[1], Line::Bounds);
    assert_eq!(
        parsed[2],
        Line::NetNs {
            inum: 4026532211,
            capture: true
        }
    );
    assert_eq!(
        parsed[3],
        Line::Counter {
            inum: 4026532211,
            name: "egress_expired",
            value: 3
        }
    );
    assert_eq!(
        parsed[4],
        Line::Hist {
            inum: 4026532211,
            dir: Direction::Egress,
            snapshot: eg
        }
    );
    assert_eq!(
        parsed[5],
        Line::Hist {
            inum: 4026532211,
            dir: Direction::Ingress,
            snapshot: ing
        }
    );
}

#[test]
fn malformed_lines_are_rejected_with_a_reason() {
    let cases: &[(&str, ParseError)] = &[
        ("", ParseError::UnknownRecord),
        ("histo 1 egress 0 0", ParseError::UnknownRecord),
        ("mace-hist", ParseError::BadField),
        ("mace-hist 1 2", ParseError::BadField),
        ("mace-hist -1", ParseError::BadField),
        ("le_ns 512 640", ParseError::OtherBounds),
        ("le_ns 500", ParseError::OtherBounds),
        ("netns 1 capture 2", ParseError::BadField),
        ("netns 1 on 1", ParseError::BadField),
        ("netns 99999999999 capture 1", ParseError::BadField),
        ("counter 1 Egress 3", ParseError::BadField),
        ("counter 1 egress", ParseError::BadField),
        ("counter 1 egress 3 4", ParseError::BadField),
        ("counter 1 egress +3", ParseError::BadField),
        ("hist 1 sideways 0 0", ParseError::BadField),
        ("hist 1 egress 1 5 0:2", ParseError::CountMismatch),
        ("hist 1 egress 2 5 3:1 2:1", ParseError::BadBucket),
        ("hist 1 egress 2 5 3:1 3:1", ParseError::BadBucket),
        ("hist 1 egress 1 5 102:1", ParseError::BadBucket),
        ("hist 1 egress 0 0 4:0", ParseError::BadBucket),
        ("hist 1 egress 1 5 4-1", ParseError::BadField),
        ("hist 1 egress 1 5  4:1", ParseError::BadField),
        ("hist 1 egress container 1 5 4:1", ParseError::BadField),
        ("seghist", ParseError::BadField),
        ("seghist 1 egress", ParseError::BadField),
        ("seghist 1 egress container", ParseError::BadField),
        ("seghist 1 egress container 0", ParseError::BadField),
        ("seghist 1 egress 0 0", ParseError::BadField),
        ("seghist 1 sideways host 0 0", ParseError::BadField),
        // Each direction's own names only, exactly.
        ("seghist 1 egress socket 0 0", ParseError::BadField),
        ("seghist 1 ingress outer 0 0", ParseError::BadField),
        ("seghist 1 egress Container 0 0", ParseError::BadField),
        ("seghist 1 egress container= 0 0", ParseError::BadField),
        ("seghist x egress container 0 0", ParseError::BadField),
        ("seghist 1 egress container 0 -1", ParseError::BadField),
        (
            "seghist 1 egress container 1 5 0:2",
            ParseError::CountMismatch,
        ),
        ("seghist 1 egress host 2 5 3:1", ParseError::CountMismatch),
        (
            "seghist 1 ingress socket 2 5 3:1 2:1",
            ParseError::BadBucket,
        ),
        (
            "seghist 1 ingress socket 2 5 3:1 3:1",
            ParseError::BadBucket,
        ),
        ("seghist 1 ingress host 1 5 102:1", ParseError::BadBucket),
        ("seghist 1 ingress host 0 0 4:0", ParseError::BadBucket),
        ("seghist 1 egress outer 1 5 4-1", ParseError::BadField),
        ("seghist 1 egress outer 1 5  4:1", ParseError::BadField),
        ("seghist 1 egress outer 1 5 4:1 ", ParseError::BadField),
        ("seghist 1 egress outer 0 0 extra", ParseError::BadField),
        ("seghist  1 egress outer 0 0", ParseError::BadField),
    ];
    for (line, want) in cases {
        assert_eq!(parse_line(line), Err(*want), "{line:?}");
    }
    // The bounds line with one bound changed is another reader's.
    let mut b = text(write_header).lines().nth(1).unwrap().to_owned();
    b = b.replacen(" 640 ", " 641 ", 1);
    assert_eq!(parse_line(&b), Err(ParseError::OtherBounds));
}

#[test]
fn segment_histograms_are_written_after_the_hist_lines_and_parse_back() {
    let segs = SegmentHistograms::new();
    // Egress latencies of 2 and 3 us; ingress ones of 1.5 ms and above 2^34 ns.
    segs.add(Direction::Egress, [700, 1100, 200]);
    segs.add(Direction::Egress, [800, 1200, 1000]);
    segs.add(Direction::Ingress, [40_000, 30_000, 1_430_000]);
    segs.add(Direction::Ingress, [50_000, 20_000, 20_000_000_000]);
    let lat = Histogram::new();
    for ns in [2000, 3000] {
        lat.add(ns);
    }
    let inum = 4026532211;
    let out = text(|o| {
        write_header(o)?;
        write_netns(o, inum, true)?;
        write_hist(o, inum, Direction::Egress, &lat.snapshot())?;
        write_hist(o, inum, Direction::Ingress, &Snapshot::default())?;
        for dir in [Direction::Egress, Direction::Ingress] {
            for (name, h) in dir.segment_names().iter().zip(segs.of(dir)) {
                write_seghist(o, inum, dir, name, &h.snapshot())?;
            }
        }
        Ok(())
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 11);
    assert_eq!(
        &lines[5..],
        &[
            format!("seghist {inum} egress container 2 1500 2:1 3:1"),
            format!("seghist {inum} egress host 2 2300 5:2"),
            format!("seghist {inum} egress outer 2 1200 0:1 4:1"),
            format!(
                "seghist {inum} ingress host 2 90000 {}:1 {}:1",
                bucket(40_000),
                bucket(50_000)
            ),
            format!(
                "seghist {inum} ingress container 2 50000 {}:1 {}:1",
                bucket(20_000),
                bucket(30_000)
            ),
            format!(
                "seghist {inum} ingress socket 2 20001430000 {}:1 101:1",
                bucket(1_430_000)
            ),
        ]
    );
    let mut seen = Vec::new();
    for l in &lines[5..] {
        match parse_line(l).unwrap() {
            Line::SegHist {
                inum: i,
                dir,
                segment,
                snapshot,
            } => {
                assert_eq!(i, inum);
                assert_eq!(snapshot, segs.of(dir)[segment].snapshot(), "{l}");
                assert!(l.contains(&format!(" {} ", dir.segment_names()[segment])));
                seen.push((dir, segment));
            }
            other => panic!("{l}: {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            (Direction::Egress, 0),
            (Direction::Egress, 1),
            (Direction::Egress, 2),
            (Direction::Ingress, 0),
            (Direction::Ingress, 1),
            (Direction::Ingress, 2),
        ]
    );
    // Empty segment histograms (breakdown on, nothing measured yet).
    let empty = text(|o| write_seghist(o, 7, Direction::Ingress, "socket", &Snapshot::default()));
    assert_eq!(empty, "seghist 7 ingress socket 0 0\n");
    assert_eq!(
        parse_line(empty.trim_end()),
        Ok(Line::SegHist {
            inum: 7,
            dir: Direction::Ingress,
            segment: 2,
            snapshot: Snapshot::default()
        })
    );
}
