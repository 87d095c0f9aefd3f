// SPDX-License-Identifier: GPL-2.0

//! The logic of `mace-ping` that needs no network or kernel: command-line
//! parsing, joining replies with their latencies (the `/dev/mace` lines
//! parsed by `mace-core`, next to the module's formatter), statistics and
//! output formatting. `main.rs` does the I/O.

use mace_core::record::{Direction, Record};
use mace_core::record_parse::parse_line;
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
    /// same id are not taken.
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

/// Options of `mace-ping`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Host to ping (None in annotate mode).
    pub target: Option<String>,
    /// Echo requests to send (0: until interrupted).
    pub count: u64,
    /// Time between requests.
    pub interval: Duration,
    /// Time to wait for each reply.
    pub timeout: Duration,
    /// Payload bytes.
    pub size: usize,
    /// Force IPv4 (4), IPv6 (6) or neither (0).
    pub family: u8,
    /// Socket kind.
    pub sock: SockKind,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Only read and annotate `/dev/mace`.
    pub annotate: bool,
    /// With `annotate`: keep reading, this long (None: read once).
    pub follow: Option<Duration>,
    /// Leave capture on at exit if mace-ping switched it on.
    pub keep_on: bool,
    /// Print nothing per packet, only the summary.
    pub quiet: bool,
    /// Do not use mace at all: a plain ping with nanosecond RTTs (for
    /// comparisons with mace unloaded).
    pub plain: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            count: 0,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 56,
            family: 0,
            sock: SockKind::Auto,
            json: false,
            annotate: false,
            follow: None,
            keep_on: false,
            quiet: false,
            plain: false,
        }
    }
}

/// Usage text.
pub const USAGE: &str = "\
usage: mace-ping [-4|-6] [-c COUNT] [-i SECONDS] [-W SECONDS] [-s SIZE]
                 [--raw|--dgram] [--json] [-q] [--keep-on] [--plain] TARGET
       mace-ping --annotate [--follow SECONDS] [--json]

Pings TARGET from this network namespace and corrects each round-trip time
for the latency the container host added (egress + ingress, read from mace's
/dev/mace). Turns capture on (needs CAP_NET_ADMIN) if it is off, and off
again at exit unless --keep-on. --annotate only reads /dev/mace and pairs the
egress and ingress latencies of any tool's packets. --plain does not use
mace at all (RTTs in ns, e.g. to compare with mace unloaded).

exit status: 0 replies received, 1 no reply, 2 usage or network error,
3 mace is not loaded, 4 capture is off and may not be switched on (or
/dev/mace may not be read)";

fn secs(s: &str, what: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{what}: not a number of seconds: {s}"))?;
    if !(0.0..=3600.0).contains(&v) || !v.is_finite() {
        return Err(format!("{what}: out of range (0 to 3600 s): {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses the command line (without the program name).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a {
            "-c" => {
                let v = val("-c")?;
                o.count = v.parse().map_err(|_| format!("-c: not a count: {v}"))?;
            }
            "-i" => o.interval = secs(val("-i")?, "-i")?,
            "-W" => o.timeout = secs(val("-W")?, "-W")?,
            "-s" => {
                let v = val("-s")?;
                o.size = v
                    .parse()
                    .ok()
                    .filter(|s| (16..=65000).contains(s))
                    .ok_or(format!("-s: not a size from 16 to 65000: {v}"))?;
            }
            "-4" => o.family = 4,
            "-6" => o.family = 6,
            "--raw" => o.sock = SockKind::Raw,
            "--dgram" => o.sock = SockKind::Dgram,
            "--json" => o.json = true,
            "-q" => o.quiet = true,
            "--keep-on" => o.keep_on = true,
            "--plain" => o.plain = true,
            "--annotate" => o.annotate = true,
            "--follow" => o.follow = Some(secs(val("--follow")?, "--follow")?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                if o.target.replace(s.to_string()).is_some() {
                    return Err("more than one target".into());
                }
            }
        }
    }
    if o.annotate {
        if o.target.is_some() {
            return Err("--annotate takes no target".into());
        }
    } else if o.target.is_none() {
        return Err("no target".into());
    }
    if o.follow.is_some() && !o.annotate {
        return Err("--follow needs --annotate".into());
    }
    if o.plain && o.annotate {
        return Err("--plain and --annotate exclude each other".into());
    }
    Ok(o)
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
}

impl PingResult {
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

fn json_opt(ns: Option<impl std::fmt::Display>) -> String {
    ns.map_or_else(|| "null".into(), |v| v.to_string())
}

/// The per-packet text line.
pub fn packet_line(bytes: usize, from: &str, r: &PingResult) -> String {
    format!(
        "{bytes} bytes from {from}: icmp_seq={} rtt={} us egress={} us ingress={} us corrected={} us",
        r.seq,
        us(r.rtt_ns),
        us_opt(r.egress_ns),
        us_opt(r.ingress_ns),
        r.corrected_ns()
            .map_or_else(|| "?".into(), |c| format!("{:.3}", c as f64 / 1e3)),
    )
}

/// The per-packet JSON object.
pub fn packet_json(r: &PingResult) -> String {
    format!(
        "{{\"type\":\"packet\",\"seq\":{},\"rtt_ns\":{},\"egress_ns\":{},\"ingress_ns\":{},\"corrected_ns\":{},\"matched\":{}}}",
        r.seq,
        r.rtt_ns,
        json_opt(r.egress_ns),
        json_opt(r.ingress_ns),
        json_opt(r.corrected_ns()),
        r.matched()
    )
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
}

impl Summary {
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
        s
    }

    /// The summary as one JSON object.
    pub fn json(&self, target: &str) -> String {
        let st = |s: &Stats| {
            if s.n == 0 {
                "null".to_string()
            } else {
                format!(
                    "{{\"min_ns\":{:.0},\"avg_ns\":{:.0},\"max_ns\":{:.0},\"mdev_ns\":{:.0}}}",
                    s.min,
                    s.avg(),
                    s.max,
                    s.mdev()
                )
            }
        };
        format!(
            "{{\"type\":\"summary\",\"target\":\"{}\",\"sent\":{},\"received\":{},\"matched\":{},\"matched_share\":{:.4},\"rtt\":{},\"egress\":{},\"ingress\":{},\"corrected\":{}}}",
            target.replace(['"', '\\'], ""),
            self.sent,
            self.received,
            self.matched,
            Self::pct(self.matched, self.received) / 100.0,
            st(&self.rtt),
            st(&self.egress),
            st(&self.ingress),
            st(&self.corrected)
        )
    }
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
        assert_eq!((o.family, o.sock, o.json), (6, SockKind::Dgram, true));
        assert_eq!(o.target.as_deref(), Some("2001:db8::2"));
        assert!(parse_args(&["--annotate"]).unwrap().annotate);
        for bad in [
            &["-c"][..],
            &["-c", "x", "h"],
            &["-i", "-1", "h"],
            &["-s", "5", "h"],
            &["--bogus", "h"],
            &["a", "b"],
            &[],
            &["--annotate", "h"],
            &["--follow", "3", "h"],
            &["--plain", "--annotate"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
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
