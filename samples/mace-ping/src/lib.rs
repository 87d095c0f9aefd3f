// SPDX-License-Identifier: GPL-2.0

//! The logic of `mace-ping` that needs no network or kernel: command-line
//! parsing (clap), joining replies with their latencies (the `/dev/mace`
//! lines parsed by `mace-core`, next to the module's formatter), statistics
//! and output formatting (JSON by serde_json). `main.rs` does the I/O.
//!
//! With `--breakdown`, each latency line's segments (where the host held the
//! packet, [`Direction::segment_names`]) are kept with the line when it is
//! joined with its reply, printed after the reply's latencies and summed up
//! per segment in the summary.

use clap::Parser;
use mace_core::record::{Direction, Record};
use mace_core::record_parse::parse_line;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::time::Duration;

/// Latency lines not yet joined with a reply.
#[derive(Default)]
pub struct Joiner {
    lines: Vec<Record>,
}

/// The most lines kept waiting for a reply (older ones are dropped).
const MAX_WAITING: usize = 4096;

impl Joiner {
    /// An empty joiner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every well-formed line of `text`; returns how many.
    pub fn add_text(&mut self, text: &str) -> usize {
        let before = self.lines.len();
        self.lines.extend(text.lines().filter_map(parse_line));
        if self.lines.len() > MAX_WAITING {
            let drop = self.lines.len() - MAX_WAITING;
            self.lines.drain(..drop);
        }
        self.lines.len().saturating_sub(before)
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is waiting.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Takes the line of direction `dir` for packet `pktid` whose window
    /// ended between `from_us` and `to_us` (wall-clock microseconds): the
    /// window of one ping, so that lines of other tools' packets with the
    /// same id are not taken. The line is returned whole, its segments
    /// included.
    pub fn take(&mut self, pktid: u32, dir: Direction, from_us: u64, to_us: u64) -> Option<Record> {
        let i = self.lines.iter().position(|l| {
            let wall_us = l.time_ns / 1_000;
            l.pktid == pktid && l.dir == dir && wall_us >= from_us && wall_us <= to_us
        })?;
        Some(self.lines.remove(i))
    }

    /// Takes every line, for annotation: pairs of egress and ingress lines
    /// of the same id in order, then the lines left alone.
    pub fn drain_pairs(&mut self) -> Vec<(u32, Option<u64>, Option<u64>)> {
        let mut out: Vec<(u32, Option<u64>, Option<u64>)> = Vec::new();
        for l in self.lines.drain(..) {
            let open = out.iter_mut().rev().find(|(id, e, i)| {
                *id == l.pktid
                    && match l.dir {
                        Direction::Egress => e.is_none(),
                        Direction::Ingress => i.is_none(),
                    }
            });
            let ns = l.latency_ns;
            match (open, l.dir) {
                (Some(p), Direction::Egress) => p.1 = Some(ns),
                (Some(p), Direction::Ingress) => p.2 = Some(ns),
                (None, Direction::Egress) => out.push((l.pktid, Some(ns), None)),
                (None, Direction::Ingress) => out.push((l.pktid, None, Some(ns))),
            }
        }
        out
    }
}

/// min/avg/max/mdev of a series, as ping prints them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Number of values.
    pub n: u64,
    sum: f64,
    sum_sq: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    /// Adds a value.
    pub fn add(&mut self, v: f64) {
        if self.n == 0 || v < self.min {
            self.min = v;
        }
        if self.n == 0 || v > self.max {
            self.max = v;
        }
        self.n += 1;
        self.sum += v;
        self.sum_sq += v * v;
    }

    /// The mean.
    pub fn avg(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// The mean deviation as ping computes it: sqrt(E[x^2] - E[x]^2).
    pub fn mdev(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let avg = self.avg();
        (self.sum_sq / self.n as f64 - avg * avg).max(0.0).sqrt()
    }

    /// `min/avg/max/mdev = a/b/c/d us` (values in ns, printed in us).
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what} min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} us",
            self.min / 1e3,
            self.avg() / 1e3,
            self.max / 1e3,
            self.mdev() / 1e3
        )
    }
}

/// The socket kind to ping with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockKind {
    /// A raw socket if permitted (CAP_NET_RAW), else a ping socket.
    Auto,
    /// A raw ICMP socket.
    Raw,
    /// An ICMP datagram ("ping") socket.
    Dgram,
}

/// Usage text, printed by `-h` and `--help`.
pub const USAGE: &str = "\
usage: mace-ping [-4|-6] [-c COUNT] [-i SECONDS] [-W SECONDS] [-s SIZE]
                 [--raw|--dgram] [--recvmsg] [--json] [-q] [--keep-on]
                 [--plain|--breakdown] TARGET
       mace-ping --annotate [--follow SECONDS] [--json]

Pings TARGET from this network namespace and corrects each round-trip time
for the latency the container host added (egress + ingress, read from mace's
/dev/mace). Turns capture on (needs CAP_NET_ADMIN) if it is off, and off
again at exit unless --keep-on. --breakdown also shows where the host held
each packet, the segments of each latency in us (egress: container, host,
outer; ingress: host, container, socket; ? if unknown), turning
/sys/class/mace/breakdown on as it does capture. --annotate only reads
/dev/mace and pairs the egress and ingress latencies of any tool's packets.
--plain does not use mace at all (RTTs in ns, e.g. to compare with mace
unloaded). --recvmsg reads each reply with recvmsg(2), as iputils ping
does, instead of recv(2).

exit status: 0 replies received, 1 no reply, 2 usage or network error,
3 mace is not loaded (or has no breakdown), 4 capture (or breakdown) is off
and may not be switched on (or /dev/mace may not be read)";

/// The synopsis that clap's usage errors show.
const SYNOPSIS: &str = "\
mace-ping [-4|-6] [-c COUNT] [-i SECONDS] [-W SECONDS] [-s SIZE]
                 [--raw|--dgram] [--recvmsg] [--json] [-q] [--keep-on]
                 [--plain|--breakdown] TARGET
       mace-ping --annotate [--follow SECONDS] [--json]";

/// The exit status of a usage error.
pub const USAGE_EXIT: u8 = 2;

/// A number of seconds from 0 to 3600 (`-i`, `-W`, `--follow`).
fn secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !(0.0..=3600.0).contains(&v) || !v.is_finite() {
        return Err("out of range (0 to 3600 s)".into());
    }
    Ok(Duration::from_secs_f64(v))
}

/// A count of echo requests (`-c`).
fn count(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| "not a count".to_string())
}

/// A payload size (`-s`).
fn size(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|s| (16..=65000).contains(s))
        .ok_or_else(|| "not a size from 16 to 65000".to_string())
}

/// Options of `mace-ping`, parsed by clap.
///
/// Options take their value from the next argument whatever it looks like
/// (`-i -1` is an out-of-range interval), and a repeated option's last
/// value wins, as do the last of `-4`/`-6` and of `--raw`/`--dgram`.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "mace-ping",
    override_usage = SYNOPSIS,
    override_help = USAGE,
    args_override_self = true
)]
pub struct Options {
    /// Host to ping (None in annotate mode).
    #[arg(required_unless_present = "annotate", conflicts_with = "annotate")]
    pub target: Option<String>,
    /// Echo requests to send (0: until interrupted).
    #[arg(short = 'c', value_name = "COUNT", default_value = "0", value_parser = count, allow_hyphen_values = true)]
    pub count: u64,
    /// Time between requests.
    #[arg(short = 'i', value_name = "SECONDS", default_value = "1", value_parser = secs, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Time to wait for each reply.
    #[arg(short = 'W', value_name = "SECONDS", default_value = "2", value_parser = secs, allow_hyphen_values = true)]
    pub timeout: Duration,
    /// Payload bytes.
    #[arg(short = 's', value_name = "SIZE", default_value = "56", value_parser = size, allow_hyphen_values = true)]
    pub size: usize,
    /// Force IPv4.
    #[arg(short = '4', overrides_with = "ipv6")]
    pub ipv4: bool,
    /// Force IPv6.
    #[arg(short = '6', overrides_with = "ipv4")]
    pub ipv6: bool,
    /// A raw socket.
    #[arg(long, overrides_with = "dgram")]
    pub raw: bool,
    /// A ping socket.
    #[arg(long, overrides_with = "raw")]
    pub dgram: bool,
    /// Read replies with `recvmsg(2)`, as iputils ping does, instead of
    /// `recv(2)`.
    #[arg(long, conflicts_with = "annotate")]
    pub recvmsg: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only read and annotate `/dev/mace`.
    #[arg(long)]
    pub annotate: bool,
    /// With `annotate`: keep reading, this long (None: read once).
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "annotate",
        // Said outright, as the target's conflict with --annotate excuses
        // a missing --annotate.
        conflicts_with = "target",
        value_parser = secs,
        allow_hyphen_values = true
    )]
    pub follow: Option<Duration>,
    /// Leave capture on at exit if mace-ping switched it on.
    #[arg(long)]
    pub keep_on: bool,
    /// Print nothing per packet, only the summary.
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Do not use mace at all: a plain ping with nanosecond RTTs (for
    /// comparisons with mace unloaded).
    #[arg(long, conflicts_with = "annotate")]
    pub plain: bool,
    /// Show each latency's segments (where the host held the packet),
    /// switching mace's `breakdown` on if it is off.
    #[arg(long, conflicts_with_all = ["plain", "annotate"])]
    pub breakdown: bool,
}

impl Options {
    /// IPv4 (4), IPv6 (6) or either (0).
    pub fn family(&self) -> u8 {
        match (self.ipv4, self.ipv6) {
            (true, _) => 4,
            (_, true) => 6,
            _ => 0,
        }
    }

    /// The socket kind asked for.
    pub fn sock(&self) -> SockKind {
        match (self.raw, self.dgram) {
            (true, _) => SockKind::Raw,
            (_, true) => SockKind::Dgram,
            _ => SockKind::Auto,
        }
    }
}

/// Parses the command line (without the program name). An error is a usage
/// error, or the request for help (`-h`, `--help`: its kind is
/// [`clap::error::ErrorKind::DisplayHelp`] and its text [`USAGE`]).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Options, clap::Error> {
    Options::try_parse_from(std::iter::once("mace-ping").chain(args.iter().map(AsRef::as_ref)))
}

/// What was measured for one echo request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingResult {
    /// The ICMP sequence number.
    pub seq: u16,
    /// RTT as the container saw it (user space to user space), in ns.
    pub rtt_ns: u64,
    /// Egress latency, if its line was found.
    pub egress_ns: Option<u64>,
    /// Ingress latency, if its line was found.
    pub ingress_ns: Option<u64>,
    /// With `--breakdown`: the latencies' segments; `None` without it.
    pub breakdown: Option<Breakdown>,
}

/// The segments of one reply's two latencies, in ns (`--breakdown`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// The egress latency's container, host and outer segments, if its
    /// line was found and carried them.
    pub egress: Option<[u64; 3]>,
    /// The ingress latency's host, container and socket segments, if its
    /// line was found and carried them.
    pub ingress: Option<[u64; 3]>,
}

impl Breakdown {
    /// The segments of the lines found for a reply, as they give them.
    pub fn of(egress: Option<&Record>, ingress: Option<&Record>) -> Self {
        let split = |r: Option<&Record>| r.and_then(|r| r.segments.split(r.latency_ns));
        Breakdown {
            egress: split(egress),
            ingress: split(ingress),
        }
    }

    /// The segments of direction `dir`, if known.
    pub fn get(&self, dir: Direction) -> Option<[u64; 3]> {
        match dir {
            Direction::Egress => self.egress,
            Direction::Ingress => self.ingress,
        }
    }
}

impl PingResult {
    /// The result of the echo request `seq`, joined with the lines found
    /// for it; their segments are kept if `breakdown` is set.
    pub fn joined(
        seq: u16,
        rtt_ns: u64,
        egress: Option<&Record>,
        ingress: Option<&Record>,
        breakdown: bool,
    ) -> Self {
        PingResult {
            seq,
            rtt_ns,
            egress_ns: egress.map(|r| r.latency_ns),
            ingress_ns: ingress.map(|r| r.latency_ns),
            breakdown: breakdown.then(|| Breakdown::of(egress, ingress)),
        }
    }

    /// RTT minus egress and ingress, if both were found.
    pub fn corrected_ns(&self) -> Option<i64> {
        let (e, i) = (self.egress_ns?, self.ingress_ns?);
        Some(self.rtt_ns as i64 - e as i64 - i as i64)
    }

    /// Whether both latencies were found.
    pub fn matched(&self) -> bool {
        self.corrected_ns().is_some()
    }
}

fn us(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e3)
}

fn us_opt(ns: Option<u64>) -> String {
    ns.map_or_else(|| "?".into(), us)
}

/// One JSON object as text.
fn json(value: &impl Serialize) -> String {
    // Cannot fail: the objects here have string keys and plain values.
    serde_json::to_string(value).expect("JSON of plain values")
}

/// The per-packet text line, with the segments (see [`segments_text`])
/// after the latencies if the result has them.
pub fn packet_line(bytes: usize, from: &str, r: &PingResult) -> String {
    let mut line = format!(
        "{bytes} bytes from {from}: icmp_seq={} rtt={} us egress={} us ingress={} us corrected={} us",
        r.seq,
        us(r.rtt_ns),
        us_opt(r.egress_ns),
        us_opt(r.ingress_ns),
        r.corrected_ns()
            .map_or_else(|| "?".into(), |c| format!("{:.3}", c as f64 / 1e3)),
    );
    if let Some(b) = &r.breakdown {
        line.push_str(&segments_text(b));
    }
    line
}

/// The segments of a reply's latencies as its text line ends.
///
/// The form is ` | egress container=12.0 host=36.5 outer=950.1 | ingress
/// host=40.2 container=31.0 socket=1130.1 us`: microseconds with one
/// decimal, and `?` instead of a direction's segments when they are
/// unknown (` | egress ? | ingress ... us`).
pub fn segments_text(b: &Breakdown) -> String {
    let mut s = String::new();
    for dir in [Direction::Egress, Direction::Ingress] {
        let _ = write!(s, " | {}", dir.name());
        match b.get(dir) {
            Some(parts) => {
                for (name, ns) in dir.segment_names().iter().zip(parts) {
                    let _ = write!(s, " {name}={:.1}", ns as f64 / 1e3);
                }
            }
            None => s.push_str(" ?"),
        }
    }
    s.push_str(" us");
    s
}

/// A direction's three segments as a JSON object keyed by their names, in
/// the packet's order.
struct SegmentsJson {
    dir: Direction,
    ns: [u64; 3],
}

impl Serialize for SegmentsJson {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(3))?;
        for (name, ns) in self.dir.segment_names().iter().zip(self.ns) {
            m.serialize_entry(name, &ns)?;
        }
        m.end()
    }
}

/// The per-packet JSON object (a missing latency is `null`).
#[derive(Serialize)]
struct PacketJson {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u16,
    rtt_ns: u64,
    egress_ns: Option<u64>,
    ingress_ns: Option<u64>,
    corrected_ns: Option<i64>,
    matched: bool,
    /// With `--breakdown` only; `null` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    egress_segments_ns: Option<Option<SegmentsJson>>,
    /// With `--breakdown` only; `null` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingress_segments_ns: Option<Option<SegmentsJson>>,
}

/// The per-packet JSON object; with `--breakdown` it ends with
/// `egress_segments_ns` and `ingress_segments_ns`, objects of the segments
/// by name (`null` when unknown).
pub fn packet_json(r: &PingResult) -> String {
    let segments = |dir| {
        r.breakdown
            .map(|b| b.get(dir).map(|ns| SegmentsJson { dir, ns }))
    };
    json(&PacketJson {
        kind: "packet",
        seq: r.seq,
        rtt_ns: r.rtt_ns,
        egress_ns: r.egress_ns,
        ingress_ns: r.ingress_ns,
        corrected_ns: r.corrected_ns(),
        matched: r.matched(),
        egress_segments_ns: segments(Direction::Egress),
        ingress_segments_ns: segments(Direction::Ingress),
    })
}

/// The annotation JSON object of one packet id.
#[derive(Serialize)]
struct AnnotationJson {
    #[serde(rename = "type")]
    kind: &'static str,
    pktid: u32,
    egress_ns: Option<u64>,
    ingress_ns: Option<u64>,
}

/// The annotation of packet `pktid`'s egress and ingress latencies (in ns),
/// as a text line.
pub fn annotation_line(pktid: u32, egress_ns: Option<u64>, ingress_ns: Option<u64>) -> String {
    let added = match (egress_ns, ingress_ns) {
        (Some(e), Some(i)) => us(e + i),
        _ => "?".into(),
    };
    format!(
        "pktid={pktid} egress={} us ingress={} us added={added} us",
        us_opt(egress_ns),
        us_opt(ingress_ns)
    )
}

/// The annotation of packet `pktid`'s egress and ingress latencies (in ns),
/// as a JSON object.
pub fn annotation_json(pktid: u32, egress_ns: Option<u64>, ingress_ns: Option<u64>) -> String {
    json(&AnnotationJson {
        kind: "annotation",
        pktid,
        egress_ns,
        ingress_ns,
    })
}

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Replies with both latencies.
    pub matched: u64,
    /// RTT as seen.
    pub rtt: Stats,
    /// Egress latencies.
    pub egress: Stats,
    /// Ingress latencies.
    pub ingress: Stats,
    /// Corrected RTTs.
    pub corrected: Stats,
    /// With `--breakdown`: the segments' statistics.
    pub segments: Option<SegmentSummary>,
}

/// Statistics of the segments of a run's latencies (`--breakdown`), in ns.
///
/// Each direction counts the replies whose latency of that direction had
/// its segments, whether or not the other direction's was found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SegmentSummary {
    /// The egress segments: container, host, outer.
    pub egress: [Stats; 3],
    /// The ingress segments: host, container, socket.
    pub ingress: [Stats; 3],
}

impl SegmentSummary {
    /// The statistics of direction `dir`'s segments.
    pub fn get(&self, dir: Direction) -> &[Stats; 3] {
        match dir {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }

    /// Replies whose latency of direction `dir` had its segments.
    pub fn known(&self, dir: Direction) -> u64 {
        self.get(dir)[0].n
    }

    /// Accounts one reply's segments.
    pub fn add(&mut self, b: &Breakdown) {
        for (stats, parts) in [(&mut self.egress, b.egress), (&mut self.ingress, b.ingress)] {
            if let Some(parts) = parts {
                for (s, ns) in stats.iter_mut().zip(parts) {
                    s.add(ns as f64);
                }
            }
        }
    }
}

impl Summary {
    /// An empty summary; with the segments' statistics if `breakdown`.
    pub fn new(breakdown: bool) -> Self {
        Summary {
            segments: breakdown.then(SegmentSummary::default),
            ..Summary::default()
        }
    }

    /// Accounts one reply.
    pub fn add(&mut self, r: &PingResult) {
        self.received += 1;
        self.rtt.add(r.rtt_ns as f64);
        if let (Some(e), Some(i), Some(c)) = (r.egress_ns, r.ingress_ns, r.corrected_ns()) {
            self.matched += 1;
            self.egress.add(e as f64);
            self.ingress.add(i as f64);
            self.corrected.add(c as f64);
        }
        if let (Some(seg), Some(b)) = (&mut self.segments, &r.breakdown) {
            seg.add(b);
        }
    }

    fn pct(part: u64, whole: u64) -> f64 {
        if whole == 0 {
            0.0
        } else {
            100.0 * part as f64 / whole as f64
        }
    }

    /// The summary in ping's style.
    pub fn text(&self, target: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- {target} mace-ping statistics ---");
        let _ = writeln!(
            s,
            "{} packets transmitted, {} received, {:.0}% packet loss",
            self.sent,
            self.received,
            100.0 - Self::pct(self.received, self.sent)
        );
        let _ = writeln!(
            s,
            "{} of {} replies matched with their egress and ingress latencies ({:.1}%)",
            self.matched,
            self.received,
            Self::pct(self.matched, self.received)
        );
        if self.received > 0 {
            let _ = writeln!(s, "{}", self.rtt.line("rtt"));
        }
        if self.matched > 0 {
            let _ = writeln!(s, "{}", self.egress.line("egress"));
            let _ = writeln!(s, "{}", self.ingress.line("ingress"));
            let _ = writeln!(s, "{}", self.corrected.line("corrected rtt"));
        }
        if let Some(seg) = &self.segments {
            let _ = writeln!(
                s,
                "{} of {} replies with their egress segments, {} with their ingress segments",
                seg.known(Direction::Egress),
                self.received,
                seg.known(Direction::Ingress)
            );
            for dir in [Direction::Egress, Direction::Ingress] {
                let stats = seg.get(dir);
                if stats[0].n == 0 {
                    continue;
                }
                for (name, st) in dir.segment_names().iter().zip(stats) {
                    let _ = writeln!(s, "{}", st.line(&format!("{} {name}", dir.name())));
                }
            }
        }
        s
    }

    /// The summary as one JSON object; with `--breakdown` it ends with
    /// `segments`: per direction, `known` (replies whose latency had its
    /// segments) and each segment's statistics by name (`null` if none).
    pub fn json(&self, target: &str) -> String {
        let st = StatsJson::of;
        let share = Self::pct(self.matched, self.received) / 100.0;
        // Four decimals, always (a share of 1 is 1.0000).
        let matched_share =
            RawValue::from_string(format!("{share:.4}")).expect("a finite number is a JSON number");
        json(&SummaryJson {
            kind: "summary",
            target,
            sent: self.sent,
            received: self.received,
            matched: self.matched,
            matched_share,
            rtt: st(&self.rtt),
            egress: st(&self.egress),
            ingress: st(&self.ingress),
            corrected: st(&self.corrected),
            segments: self.segments.as_ref().map(|seg| SegmentSummaryJson {
                egress: DirSegmentsJson::of(seg, Direction::Egress),
                ingress: DirSegmentsJson::of(seg, Direction::Ingress),
            }),
        })
    }
}

/// A statistic in whole nanoseconds, rounded half to even (as `{:.0}`
/// formats it).
fn whole_ns(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// min/avg/max/mdev in the summary JSON object.
#[derive(Serialize)]
struct StatsJson {
    min_ns: i64,
    avg_ns: i64,
    max_ns: i64,
    mdev_ns: i64,
}

impl StatsJson {
    /// The statistics of `s`, or `None` (`null`) if it has no value.
    fn of(s: &Stats) -> Option<StatsJson> {
        (s.n > 0).then(|| StatsJson {
            min_ns: whole_ns(s.min),
            avg_ns: whole_ns(s.avg()),
            max_ns: whole_ns(s.max),
            mdev_ns: whole_ns(s.mdev()),
        })
    }
}

/// The `segments` object of the summary JSON object.
#[derive(Serialize)]
struct SegmentSummaryJson {
    egress: DirSegmentsJson,
    ingress: DirSegmentsJson,
}

/// One direction of `segments`: `known`, then each segment's statistics
/// by name, in the packet's order.
struct DirSegmentsJson {
    dir: Direction,
    known: u64,
    stats: [Option<StatsJson>; 3],
}

impl DirSegmentsJson {
    /// Direction `dir` of a run's segment statistics.
    fn of(seg: &SegmentSummary, dir: Direction) -> Self {
        DirSegmentsJson {
            dir,
            known: seg.known(dir),
            stats: seg.get(dir).each_ref().map(StatsJson::of),
        }
    }
}

impl Serialize for DirSegmentsJson {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("known", &self.known)?;
        for (name, st) in self.dir.segment_names().iter().zip(&self.stats) {
            m.serialize_entry(name, st)?;
        }
        m.end()
    }
}

/// The summary JSON object (a series without values is `null`).
#[derive(Serialize)]
struct SummaryJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    target: &'a str,
    sent: u64,
    received: u64,
    matched: u64,
    matched_share: Box<RawValue>,
    rtt: Option<StatsJson>,
    egress: Option<StatsJson>,
    ingress: Option<StatsJson>,
    corrected: Option<StatsJson>,
    /// With `--breakdown` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<SegmentSummaryJson>,
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an echo request: ICMP (`v6` false, checksum filled) or ICMPv6
/// (checksum left to the kernel), with `size` payload bytes starting with
/// `tag` (unique per request, so that mace's keys differ).
pub fn echo_request(v6: bool, id: u16, seq: u16, size: usize, tag: u64) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    let mut payload: Vec<u8> = (0..size).map(|i| (i % 256) as u8).collect();
    let n = payload.len().min(8);
    payload[..n].copy_from_slice(&tag.to_be_bytes()[..n]);
    p.extend_from_slice(&payload);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// If `icmp` (an ICMP message, no IP header) is an echo reply, its id and
/// sequence number.
pub fn echo_reply(v6: bool, icmp: &[u8]) -> Option<(u16, u16)> {
    let ty = *icmp.first()?;
    if ty != if v6 { 129 } else { 0 } || icmp.len() < 8 {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// The ICMP message of an IPv4 packet read from a raw socket (after its IP
/// header).
pub fn strip_ipv4(packet: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.first()? >> 4 != 4 || ihl < 20 {
        return None;
    }
    packet.get(ihl..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_by_id_direction_and_time_window() {
        let mut j = Joiner::new();
        let n = j.add_text(
            "[10.000100] (7) egress: 100\n\
             [10.000300] (7) ingress: 200\n\
             garbage\n\
             [20.000100] (7) egress: 999\n",
        );
        assert_eq!(n, 3);
        // Our ping of seq 7 ran from 10.000000 to 10.000400.
        let e = j
            .take(7, Direction::Egress, 10_000_000, 10_000_400)
            .unwrap();
        let i = j
            .take(7, Direction::Ingress, 10_000_000, 10_000_400)
            .unwrap();
        assert_eq!((e.latency_ns, i.latency_ns), (100, 200));
        // Another tool's packet with the same id, later: not ours.
        assert_eq!(j.take(7, Direction::Egress, 10_000_000, 10_000_400), None);
        assert_eq!(j.len(), 1);
    }

    /// The lines of the brief's example: both directions with segments.
    const SEGMENT_LINES: &str = "\
[10.000100] (7) egress: 998575 container=12003 host=36512 outer=950060
[10.000300] (7) ingress: 1201345 host=40211 container=31022 socket=1130112
[10.000200] (8) egress: 5000
[10.000350] (8) ingress: 600 host=100 container=200 socket=300
";

    /// The reply to seq `seq` joined with its lines of [`SEGMENT_LINES`].
    fn joined(seq: u16, breakdown: bool) -> PingResult {
        let mut j = Joiner::new();
        assert_eq!(j.add_text(SEGMENT_LINES), 4);
        let id = u32::from(seq);
        let e = j.take(id, Direction::Egress, 10_000_000, 10_000_400);
        let i = j.take(id, Direction::Ingress, 10_000_000, 10_000_400);
        PingResult::joined(seq, 3_000_000, e.as_ref(), i.as_ref(), breakdown)
    }

    #[test]
    fn joined_replies_keep_their_segments() {
        let r = joined(7, true);
        assert_eq!(
            (r.egress_ns, r.ingress_ns),
            (Some(998_575), Some(1_201_345))
        );
        assert_eq!(
            r.breakdown,
            Some(Breakdown {
                egress: Some([12_003, 36_512, 950_060]),
                ingress: Some([40_211, 31_022, 1_130_112]),
            })
        );
        // A line without segments: that direction's are unknown.
        let r = joined(8, true);
        assert_eq!(
            r.breakdown,
            Some(Breakdown {
                egress: None,
                ingress: Some([100, 200, 300]),
            })
        );
        // No line at all: unknown too; and none kept without --breakdown.
        let r = joined(9, true);
        assert_eq!(r.breakdown, Some(Breakdown::default()));
        assert_eq!(joined(7, false).breakdown, None);
        assert_eq!(joined(7, false).egress_ns, Some(998_575));
    }

    #[test]
    fn packet_lines_with_segments() {
        let r = joined(7, true);
        assert_eq!(
            packet_line(64, "198.18.0.2", &r),
            "64 bytes from 198.18.0.2: icmp_seq=7 rtt=3000.000 us egress=998.575 us \
             ingress=1201.345 us corrected=800.080 us | egress container=12.0 host=36.5 \
             outer=950.1 | ingress host=40.2 container=31.0 socket=1130.1 us"
        );
        assert!(
            packet_line(64, "x", &joined(8, true)).ends_with(
                "corrected=2994.400 us | egress ? | ingress host=0.1 container=0.2 socket=0.3 us"
            ),
            "{}",
            packet_line(64, "x", &joined(8, true))
        );
        assert!(packet_line(64, "x", &joined(9, true))
            .ends_with("corrected=? us | egress ? | ingress ? us"));
        // Without --breakdown the line is as before.
        assert!(packet_line(64, "x", &joined(7, false)).ends_with("corrected=800.080 us"));
    }

    #[test]
    fn packet_json_with_segments() {
        assert_eq!(
            packet_json(&joined(7, true)),
            r#"{"type":"packet","seq":7,"rtt_ns":3000000,"egress_ns":998575,"ingress_ns":1201345,"corrected_ns":800080,"matched":true,"egress_segments_ns":{"container":12003,"host":36512,"outer":950060},"ingress_segments_ns":{"host":40211,"container":31022,"socket":1130112}}"#
        );
        assert!(packet_json(&joined(8, true)).ends_with(
            r#""matched":true,"egress_segments_ns":null,"ingress_segments_ns":{"host":100,"container":200,"socket":300}}"#
        ));
        assert!(packet_json(&joined(7, false)).ends_with(r#""matched":true}"#));
    }

    #[test]
    fn summary_of_segments() {
        let mut s = Summary::new(true);
        s.sent = 4;
        s.add(&joined(7, true));
        s.add(&joined(8, true));
        s.add(&joined(9, true));
        let t = s.text("x");
        assert!(
            t.contains(
                "1 of 3 replies with their egress segments, 2 with their ingress segments\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("egress container min/avg/max/mdev = 12.003/12.003/12.003/0.000 us\n"),
            "{t}"
        );
        assert!(t.contains("egress outer min/avg/max/mdev = 950.060/950.060/950.060/0.000 us\n"));
        // The ingress socket segment: 1130112 and 300 ns.
        assert!(
            t.contains("ingress socket min/avg/max/mdev = 0.300/565.206/1130.112/564.906 us\n"),
            "{t}"
        );
        assert_eq!(t.matches(" min/avg/max/mdev = ").count(), 4 + 6, "{t}");
        let j = s.json("x");
        assert!(
            j.ends_with(
                r#","segments":{"egress":{"known":1,"container":{"min_ns":12003,"avg_ns":12003,"max_ns":12003,"mdev_ns":0},"host":{"min_ns":36512,"avg_ns":36512,"max_ns":36512,"mdev_ns":0},"outer":{"min_ns":950060,"avg_ns":950060,"max_ns":950060,"mdev_ns":0}},"ingress":{"known":2,"host":{"min_ns":100,"avg_ns":20156,"max_ns":40211,"mdev_ns":20056},"container":{"min_ns":200,"avg_ns":15611,"max_ns":31022,"mdev_ns":15411},"socket":{"min_ns":300,"avg_ns":565206,"max_ns":1130112,"mdev_ns":564906}}}}"#
            ),
            "{j}"
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["segments"]["ingress"]["known"], 2);

        // Nothing known: the count line, no statistics, nulls in JSON.
        let mut none = Summary::new(true);
        none.sent = 1;
        none.add(&joined(9, true));
        let t = none.text("x");
        assert!(t.contains(
            "0 of 1 replies with their egress segments, 0 with their ingress segments\n"
        ));
        assert!(!t.contains("egress container"), "{t}");
        assert!(none.json("x").ends_with(
            r#","segments":{"egress":{"known":0,"container":null,"host":null,"outer":null},"ingress":{"known":0,"host":null,"container":null,"socket":null}}}"#
        ));
        // Without --breakdown: no segments at all.
        let mut off = Summary::new(false);
        off.add(&joined(7, false));
        assert!(!off.text("x").contains("segments"));
        assert!(!off.json("x").contains("segments"));
    }

    #[test]
    fn annotation_pairs_lines() {
        let mut j = Joiner::new();
        j.add_text(
            "[1.000001] (1) egress: 10\n[1.000002] (2) egress: 20\n\
             [1.000003] (1) ingress: 11\n[1.000004] (3) ingress: 30\n",
        );
        assert_eq!(
            j.drain_pairs(),
            vec![
                (1, Some(10), Some(11)),
                (2, Some(20), None),
                (3, None, Some(30))
            ]
        );
        assert!(j.is_empty());
    }

    #[test]
    fn stats_like_ping() {
        let mut s = Stats::default();
        for v in [1.0, 2.0, 3.0, 4.0] {
            s.add(v);
        }
        assert_eq!((s.n, s.min, s.max), (4, 1.0, 4.0));
        assert!((s.avg() - 2.5).abs() < 1e-12);
        assert!((s.mdev() - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(Stats::default().mdev(), 0.0);
    }

    #[test]
    fn corrected_rtt_and_output() {
        let r = PingResult {
            seq: 3,
            rtt_ns: 30_000,
            egress_ns: Some(8_000),
            ingress_ns: Some(12_000),
            breakdown: None,
        };
        assert_eq!(r.corrected_ns(), Some(10_000));
        assert_eq!(
            packet_line(64, "198.18.0.2", &r),
            "64 bytes from 198.18.0.2: icmp_seq=3 rtt=30.000 us egress=8.000 us ingress=12.000 us corrected=10.000 us"
        );
        assert_eq!(
            packet_json(&r),
            "{\"type\":\"packet\",\"seq\":3,\"rtt_ns\":30000,\"egress_ns\":8000,\"ingress_ns\":12000,\"corrected_ns\":10000,\"matched\":true}"
        );
        let u = PingResult {
            egress_ns: None,
            ..r
        };
        assert!(!u.matched());
        assert!(packet_json(&u).contains("\"egress_ns\":null,"));
        assert!(packet_line(64, "x", &u).ends_with("corrected=? us"));
        let mut s = Summary {
            sent: 3,
            ..Summary::default()
        };
        s.add(&r);
        s.add(&u);
        let t = s.text("x");
        assert!(
            t.contains("3 packets transmitted, 2 received, 33% packet loss"),
            "{t}"
        );
        assert!(
            t.contains("1 of 2 replies matched with their egress and ingress latencies (50.0%)")
        );
        assert!(t.contains("corrected rtt min/avg/max/mdev = 10.000/10.000/10.000/0.000 us"));
        assert!(s
            .json("x")
            .contains("\"matched\":1,\"matched_share\":0.5000"));
    }

    #[test]
    fn args() {
        let o = parse_args(&[
            "-c",
            "5",
            "-i",
            "0.2",
            "-6",
            "--dgram",
            "--json",
            "2001:db8::2",
        ])
        .unwrap();
        assert_eq!(o.count, 5);
        assert_eq!(o.interval, Duration::from_millis(200));
        assert_eq!((o.family(), o.sock(), o.json), (6, SockKind::Dgram, true));
        assert_eq!(o.target.as_deref(), Some("2001:db8::2"));
        assert!(parse_args(&["--annotate"]).unwrap().annotate);
        for bad in [
            &["-c"][..],
            &["-c", "x", "h"],
            &["-c", "-1", "h"],
            &["-i", "-1", "h"],
            &["-i", "3601", "h"],
            &["-W", "x", "h"],
            &["-s", "5", "h"],
            &["-s", "65001", "h"],
            &["--follow", "-1", "--annotate"],
            &["--bogus", "h"],
            &["-x", "h"],
            &["--count", "1", "h"],
            &["a", "b"],
            &[],
            &["--annotate", "h"],
            &["--follow", "3", "h"],
            &["--follow", "3"],
            &["--plain", "--annotate"],
            &["--plain", "--annotate", "h"],
            &["--breakdown", "--plain", "h"],
            &["--plain", "--breakdown", "h"],
            &["--breakdown", "--annotate"],
            &["--annotate", "--breakdown", "--follow", "1"],
            &["--breakdown"],
            &["--recvmsg", "--annotate"],
            &["--recvmsg=1", "h"],
        ] {
            let e = parse_args(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?} is a usage error");
            assert_eq!(e.exit_code(), i32::from(USAGE_EXIT), "{bad:?}");
        }
    }

    #[test]
    fn arg_defaults_and_last_one_wins() {
        let o = parse_args(&["h"]).unwrap();
        assert_eq!(o.target.as_deref(), Some("h"));
        assert_eq!(o.count, 0);
        assert_eq!(o.interval, Duration::from_secs(1));
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert_eq!(o.size, 56);
        assert_eq!((o.family(), o.sock()), (0, SockKind::Auto));
        assert!(!(o.json || o.annotate || o.keep_on || o.quiet || o.plain || o.breakdown));
        assert!(!o.recvmsg);
        assert_eq!(o.follow, None);
        let o = parse_args(&[
            "-c",
            "1",
            "-c",
            "2",
            "-6",
            "-4",
            "--dgram",
            "--raw",
            "-s",
            "16",
            "-s",
            "65000",
            "-W",
            "0",
            "-q",
            "--keep-on",
            "--plain",
            "h",
        ])
        .unwrap();
        assert_eq!((o.count, o.size, o.timeout), (2, 65000, Duration::ZERO));
        assert_eq!((o.family(), o.sock()), (4, SockKind::Raw));
        assert!(o.quiet && o.keep_on && o.plain);
        let o = parse_args(&["--breakdown", "--json", "-q", "--keep-on", "h"]).unwrap();
        assert!(o.breakdown && o.json && o.quiet && o.keep_on && !o.plain);
        let o = parse_args(&["--raw", "--recvmsg", "--plain", "h"]).unwrap();
        assert!(o.recvmsg && o.plain && o.sock() == SockKind::Raw);
        let o = parse_args(&["-4", "-6", "--raw", "--dgram", "h"]).unwrap();
        assert_eq!((o.family(), o.sock()), (6, SockKind::Dgram));
        let o = parse_args(&["--annotate", "--follow", "1.5", "--json"]).unwrap();
        assert_eq!(o.follow, Some(Duration::from_millis(1500)));
        assert!(o.annotate && o.json && o.target.is_none());
    }

    #[test]
    fn help_is_the_usage_text() {
        for h in ["-h", "--help"] {
            let e = parse_args(&[h, "x"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
            assert!(!e.use_stderr());
            assert_eq!(e.exit_code(), 0);
            assert_eq!(e.to_string(), format!("{USAGE}\n"));
        }
    }

    /// The JSON objects, byte for byte as the hand-written formatter of
    /// earlier versions wrote them.
    #[test]
    fn json_as_before() {
        let a = PingResult {
            seq: 1,
            rtt_ns: 1000,
            egress_ns: Some(300),
            ingress_ns: Some(200),
            breakdown: None,
        };
        let b = PingResult {
            seq: 2,
            rtt_ns: 1001,
            egress_ns: Some(301),
            ingress_ns: Some(1200),
            breakdown: None,
        };
        let c = PingResult {
            seq: 65535,
            rtt_ns: 7,
            egress_ns: None,
            ingress_ns: None,
            breakdown: None,
        };
        assert_eq!(
            packet_json(&b),
            r#"{"type":"packet","seq":2,"rtt_ns":1001,"egress_ns":301,"ingress_ns":1200,"corrected_ns":-500,"matched":true}"#
        );
        assert_eq!(
            packet_json(&c),
            r#"{"type":"packet","seq":65535,"rtt_ns":7,"egress_ns":null,"ingress_ns":null,"corrected_ns":null,"matched":false}"#
        );
        assert_eq!(
            Summary::default().json("h"),
            r#"{"type":"summary","target":"h","sent":0,"received":0,"matched":0,"matched_share":0.0000,"rtt":null,"egress":null,"ingress":null,"corrected":null}"#
        );
        let mut s = Summary {
            sent: 4,
            ..Summary::default()
        };
        s.add(&a);
        s.add(&b);
        s.add(&c);
        // The egress mean, 300.5, rounds to even as before.
        assert_eq!(
            s.json("198.18.0.2"),
            r#"{"type":"summary","target":"198.18.0.2","sent":4,"received":3,"matched":2,"matched_share":0.6667,"rtt":{"min_ns":7,"avg_ns":669,"max_ns":1001,"mdev_ns":468},"egress":{"min_ns":300,"avg_ns":300,"max_ns":301,"mdev_ns":0},"ingress":{"min_ns":200,"avg_ns":700,"max_ns":1200,"mdev_ns":500},"corrected":{"min_ns":-500,"avg_ns":0,"max_ns":500,"mdev_ns":500}}"#
        );
        let mut all = Summary {
            sent: 1,
            ..Summary::default()
        };
        all.add(&a);
        assert!(all
            .json("h")
            .contains(r#""matched":1,"matched_share":1.0000,"#));
        assert_eq!(
            annotation_json(7, Some(10), None),
            r#"{"type":"annotation","pktid":7,"egress_ns":10,"ingress_ns":null}"#
        );
        assert_eq!(
            annotation_json(4294967295, None, Some(u64::MAX)),
            r#"{"type":"annotation","pktid":4294967295,"egress_ns":null,"ingress_ns":18446744073709551615}"#
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        let j = Summary::default().json("we\"ird\\host\n");
        assert!(j.contains(r#""target":"we\"ird\\host\n","#), "{j}");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["target"], "we\"ird\\host\n");
    }

    #[test]
    fn annotation_lines() {
        assert_eq!(
            annotation_line(1, Some(10_000), Some(1_500)),
            "pktid=1 egress=10.000 us ingress=1.500 us added=11.500 us"
        );
        assert_eq!(
            annotation_line(2, Some(20), None),
            "pktid=2 egress=0.020 us ingress=? us added=? us"
        );
        assert_eq!(
            annotation_line(3, None, Some(30)),
            "pktid=3 egress=? us ingress=0.030 us added=? us"
        );
    }

    #[test]
    fn icmp_messages() {
        let p = echo_request(false, 0x1234, 9, 56, 0xdead_beef);
        assert_eq!(p.len(), 64);
        assert_eq!(checksum(&p), 0, "a correct checksum sums to zero");
        let mut reply = p.clone();
        reply[0] = 0;
        assert_eq!(echo_reply(false, &reply), Some((0x1234, 9)));
        assert_eq!(echo_reply(false, &p), None);
        let p6 = echo_request(true, 1, 2, 16, 3);
        assert_eq!((p6[0], p6[2], p6[3]), (128, 0, 0));
        let mut ip = vec![0x45u8; 20];
        ip.extend_from_slice(&reply);
        assert_eq!(strip_ipv4(&ip).map(|m| m.len()), Some(64));
        assert_eq!(strip_ipv4(&[0x65; 30]), None);
    }
}
