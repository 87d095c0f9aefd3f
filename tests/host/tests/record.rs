//! Tests of `/dev/mace` line formatting and parsing, and of reads with small
//! buffers.

use mace_core::record::{format_line, Direction, LineCursor, Record, Segments, Sink, MAX_LINE};
use mace_core::record_parse::parse_line;

fn line(rec: &Record) -> String {
    let mut buf = [0u8; MAX_LINE];
    let n = format_line(rec, &mut buf);
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn line_format_matches_the_original_mace() {
    let rec = Record {
        time_ns: 1_795_313_566_956_168_123,
        latency_ns: 998_575,
        pktid: 1,
        dir: Direction::Egress,
        segments: Segments::Unknown,
    };
    assert_eq!(line(&rec), "[1795313566.956168] (1) egress: 998575\n");
    let rec = Record {
        time_ns: 5_000_042_999,
        latency_ns: 7,
        pktid: 65535,
        dir: Direction::Ingress,
        segments: Segments::Unknown,
    };
    assert_eq!(line(&rec), "[5.000042] (65535) ingress: 7\n");
}

#[test]
fn longest_line_fits() {
    let rec = Record {
        time_ns: u64::MAX,
        latency_ns: u64::MAX,
        pktid: u32::MAX,
        dir: Direction::Ingress,
        segments: Segments::Unknown,
    };
    let l = line(&rec);
    assert_eq!(
        l,
        "[18446744073.709551] (4294967295) ingress: 18446744073709551615\n"
    );
    assert!(l.len() <= MAX_LINE);
}

/// `rec` as its line gives it back: the time in whole microseconds.
fn to_the_microsecond(rec: &Record) -> Record {
    Record {
        time_ns: rec.time_ns / 1_000 * 1_000,
        ..*rec
    }
}

#[test]
fn formatted_lines_parse_back() {
    let extremes = [
        Record {
            time_ns: u64::MAX,
            latency_ns: u64::MAX,
            pktid: u32::MAX,
            dir: Direction::Ingress,
            segments: Segments::Unknown,
        },
        Record {
            time_ns: 0,
            latency_ns: 0,
            pktid: 0,
            dir: Direction::Egress,
            segments: Segments::Unknown,
        },
        Record {
            time_ns: 1_795_313_566_956_168_000,
            latency_ns: 998_575,
            pktid: 1,
            dir: Direction::Egress,
            segments: Segments::Unknown,
        },
    ];
    for rec in recs(50).iter().chain(&extremes) {
        let l = line(rec);
        let want = to_the_microsecond(rec);
        assert_eq!(parse_line(&l), Some(want), "{l:?}");
        assert_eq!(parse_line(l.trim_end()), Some(want), "{l:?}");
    }
    // A time already in whole microseconds comes back unchanged.
    assert_eq!(parse_line(&line(&extremes[2])), Some(extremes[2]));
}

#[test]
fn parsed_fields() {
    assert_eq!(
        parse_line("[1795318659.011044] (1) egress: 56003500"),
        Some(Record {
            time_ns: 1_795_318_659_011_044_000,
            latency_ns: 56_003_500,
            pktid: 1,
            dir: Direction::Egress,
            segments: Segments::Unknown,
        })
    );
    assert_eq!(
        parse_line("[5.000042] (65535) ingress: 7\n"),
        Some(Record {
            time_ns: 5_000_042_000,
            latency_ns: 7,
            pktid: 65535,
            dir: Direction::Ingress,
            segments: Segments::Unknown,
        })
    );
}

#[test]
fn malformed_lines_are_rejected() {
    for bad in [
        "",
        "\n",
        "garbage",
        "[1.1] (1) egress: 5",
        "[1.12345] (1) egress: 5",
        "[1.1234567] (1) egress: 5",
        "[1.000001] (1) sideways: 5",
        "[1.000001] (1) Egress: 5",
        "[1.000001] (x) egress: 5",
        "[1.000001] () egress: 5",
        "[1.000001] (-1) egress: 5",
        "[1.000001] (+1) egress: 5",
        "[1.000001] (1) egress: -5",
        "[1.000001] (1) egress: +5",
        "[1.000001] (1) egress: 5x",
        "[1.000001] (1) egress: ",
        "[1.000001] (1) egress:5",
        "[1.000001] (1) egress: 5 ",
        "[1.000001] (1) egress: 5\n\n",
        "[1.000001] (1) egress: 5\r",
        "[.000001] (1) egress: 5",
        "[1.+00001] (1) egress: 5",
        "[+1.000001] (1) egress: 5",
        "[1,000001] (1) egress: 5",
        "1.000001] (1) egress: 5",
        " [1.000001] (1) egress: 5",
        "[1.000001]  (1) egress: 5",
        // Out of range: the id of u32, the latency of u64, the time of u64
        // nanoseconds.
        "[1.000001] (4294967296) egress: 5",
        "[1.000001] (1) egress: 18446744073709551616",
        "[18446744073.709552] (1) egress: 5",
        "[99999999999999999999.000001] (1) egress: 5",
    ] {
        assert_eq!(parse_line(bad), None, "{bad:?}");
    }
}

/// A user buffer of a fixed size that can be told to fault.
struct Buf {
    data: Vec<u8>,
    cap: usize,
    fault_at: Option<usize>,
}

impl Sink for Buf {
    type Error = &'static str;
    fn space(&self) -> usize {
        self.cap - self.data.len()
    }
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        assert!(bytes.len() <= self.space());
        if let Some(at) = self.fault_at {
            if self.data.len() + bytes.len() > at {
                return Err("EFAULT");
            }
        }
        self.data.extend_from_slice(bytes);
        Ok(())
    }
}

fn recs(n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            time_ns: 1_000_000_000 * u64::from(i) + 123_456_789,
            latency_ns: 1000 + u64::from(i) * 37,
            pktid: i,
            dir: if i % 2 == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            // Every third with segments: lines of both lengths.
            segments: if i % 3 == 0 {
                Segments::Known {
                    first: u64::from(i),
                    second: 500,
                }
            } else {
                Segments::Unknown
            },
        })
        .collect()
}

fn expected(recs: &[Record]) -> String {
    recs.iter().map(line).collect()
}

/// Reads everything with reads of `size` bytes; returns the text and the
/// number of reads that returned data.
fn read_all(recs: &[Record], size: usize) -> (String, usize) {
    let mut it = recs.iter().copied();
    let mut cursor = LineCursor::new();
    let mut out = Vec::new();
    let mut reads = 0;
    loop {
        let mut buf = Buf {
            data: Vec::new(),
            cap: size,
            fault_at: None,
        };
        let n = cursor.read(&mut buf, || it.next()).unwrap();
        assert_eq!(n, buf.data.len());
        if n == 0 {
            break;
        }
        reads += 1;
        out.extend_from_slice(&buf.data);
    }
    (String::from_utf8(out).unwrap(), reads)
}

#[test]
fn every_read_size_returns_the_same_text() {
    let rs = recs(25);
    let want = expected(&rs);
    for size in [1, 2, 3, 7, 13, 38, 39, 40, 79, 80, 81, 4096, 65536] {
        let (got, reads) = read_all(&rs, size);
        assert_eq!(got, want, "read size {size}");
        assert_eq!(reads, want.len().div_ceil(size), "read size {size}");
    }
}

#[test]
fn empty_ring_reads_as_end_of_file() {
    let (got, reads) = read_all(&[], 100);
    assert_eq!((got.as_str(), reads), ("", 0));
}

#[test]
fn zero_byte_read_consumes_nothing() {
    let rs = recs(1);
    let mut it = rs.iter().copied();
    let mut cursor = LineCursor::new();
    let mut buf = Buf {
        data: Vec::new(),
        cap: 0,
        fault_at: None,
    };
    assert_eq!(cursor.read(&mut buf, || it.next()), Ok(0));
    // The record was not taken from the queue.
    assert_eq!(it.next(), Some(rs[0]));
}

#[test]
fn a_fault_loses_nothing() {
    let rs = recs(3);
    let want = expected(&rs);
    let mut it = rs.iter().copied();
    let mut cursor = LineCursor::new();

    // A read that faults before copying anything returns the error...
    let mut buf = Buf {
        data: Vec::new(),
        cap: 1000,
        fault_at: Some(0),
    };
    assert_eq!(cursor.read(&mut buf, || it.next()), Err("EFAULT"));
    // ...one that faults midway returns what it copied...
    let mut buf = Buf {
        data: Vec::new(),
        cap: 1000,
        fault_at: Some(100),
    };
    let n = cursor.read(&mut buf, || it.next()).unwrap();
    assert!(n > 0 && n <= 100);
    let mut out = buf.data;
    // ...and the next read continues exactly where the copy stopped.
    let mut buf = Buf {
        data: Vec::new(),
        cap: 1000,
        fault_at: None,
    };
    cursor.read(&mut buf, || it.next()).unwrap();
    out.extend_from_slice(&buf.data);
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn cursors_are_independent() {
    // Two open files, each in the middle of its own line.
    let rs = recs(2);
    let mut a = LineCursor::new();
    let mut b = LineCursor::new();
    let mut ba = Buf {
        data: Vec::new(),
        cap: 5,
        fault_at: None,
    };
    let mut bb = Buf {
        data: Vec::new(),
        cap: 9,
        fault_at: None,
    };
    a.read(&mut ba, || Some(rs[0])).unwrap();
    b.read(&mut bb, || Some(rs[1])).unwrap();
    let la = line(&rs[0]);
    let lb = line(&rs[1]);
    assert_eq!(a.pending(), &la.as_bytes()[5..]);
    assert_eq!(b.pending(), &lb.as_bytes()[9..]);
}

fn seg(dir: Direction, latency_ns: u64, first: u64, second: u64) -> Record {
    Record {
        time_ns: 1_795_313_566_956_168_000,
        latency_ns,
        pktid: 1,
        dir,
        segments: Segments::Known { first, second },
    }
}

#[test]
fn segments_follow_the_latency_and_add_up_to_it() {
    assert_eq!(
        line(&seg(Direction::Egress, 998_575, 12_003, 36_512)),
        "[1795313566.956168] (1) egress: 998575 container=12003 host=36512 outer=950060\n"
    );
    assert_eq!(
        line(&seg(Direction::Ingress, 1_201_345, 40_211, 31_022)),
        "[1795313566.956168] (1) ingress: 1201345 host=40211 container=31022 socket=1130112\n"
    );
    // Segments that would not add up are not printed: the line is as
    // without them.
    assert_eq!(
        line(&seg(Direction::Egress, 10, 6, 5)),
        "[1795313566.956168] (1) egress: 10\n"
    );
}

#[test]
fn longest_line_with_segments_fits() {
    let rec = Record {
        time_ns: u64::MAX,
        latency_ns: u64::MAX,
        pktid: u32::MAX,
        dir: Direction::Ingress,
        segments: Segments::Known {
            first: 0,
            second: 0,
        },
    };
    let l = line(&rec);
    assert!(l.ends_with(" host=0 container=0 socket=18446744073709551615\n"));
    assert!(l.len() <= MAX_LINE, "{}", l.len());
    // The worst case: the longest name, 20 digits each (not a sum that
    // fits, but the bound must hold for any split), and the newline.
    let worst = "[18446744073.709551] (4294967295) ingress: 18446744073709551615".len()
        + 3 * " container=18446744073709551615".len()
        + "\n".len();
    assert!(worst <= MAX_LINE, "{worst}");
}

#[test]
fn segments_parse_back() {
    for rec in [
        seg(Direction::Egress, 998_575, 12_003, 36_512),
        seg(Direction::Ingress, 1_201_345, 40_211, 31_022),
        seg(Direction::Ingress, 5, 0, 0),
        seg(Direction::Egress, 5, 5, 0),
    ] {
        let l = line(&rec);
        assert_eq!(parse_line(&l), Some(rec), "{l:?}");
    }
    // A reader of the original format reads the same prefix.
    let l = line(&seg(Direction::Egress, 998_575, 12_003, 36_512));
    let plain = l.split(" container=").next().unwrap();
    assert_eq!(
        parse_line(plain),
        Some(Record {
            segments: Segments::Unknown,
            ..seg(Direction::Egress, 998_575, 0, 0)
        })
    );
}

#[test]
fn malformed_segments_are_rejected() {
    for bad in [
        // Do not add up.
        "[1.000001] (1) egress: 10 container=1 host=2 outer=3",
        // Another direction's names, or out of order.
        "[1.000001] (1) egress: 6 host=1 container=2 socket=3",
        "[1.000001] (1) ingress: 6 container=2 host=1 socket=3",
        // Missing, extra, or empty.
        "[1.000001] (1) egress: 3 container=1 host=2",
        "[1.000001] (1) egress: 6 container=1 host=2 outer=3 extra=0",
        "[1.000001] (1) egress: 6 container=1 host=2 outer=",
        "[1.000001] (1) egress: 6 container=1 host=2 outer=3 ",
        "[1.000001] (1) egress: 6 container=1  host=2 outer=3",
        "[1.000001] (1) egress: 6 container=-1 host=5 outer=2",
        "[1.000001] (1) egress: 6 container=1 host=2 outer=18446744073709551615",
        "[1.000001] (1) egress: 6 ",
    ] {
        assert_eq!(parse_line(bad), None, "{bad:?}");
    }
}

#[test]
fn segments_of_waypoints() {
    assert_eq!(
        Segments::of(10, 15, 30, 100),
        Segments::Known {
            first: 5,
            second: 15
        }
    );
    assert_eq!(Segments::of(10, 10, 10, 10).split(0), Some([0, 0, 0]));
    // Out of order, or outside the window: unknown.
    assert_eq!(Segments::of(10, 30, 15, 100), Segments::Unknown);
    assert_eq!(Segments::of(10, 5, 15, 100), Segments::Unknown);
    assert_eq!(Segments::of(10, 15, 130, 100), Segments::Unknown);
    // A window that ends before its waypoints (at the reader's
    // timestamp): the later segments are 0.
    assert_eq!(
        Segments::ended_by(10, 40, 130, 100).split(90),
        Some([30, 60, 0])
    );
    assert_eq!(
        Segments::ended_by(10, 140, 150, 100).split(90),
        Some([90, 0, 0])
    );
    assert_eq!(Segments::ended_by(10, 5, 150, 100), Segments::Unknown);
    assert_eq!(Segments::Unknown.split(5), None);
}
