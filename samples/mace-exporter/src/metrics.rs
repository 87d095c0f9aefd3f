// SPDX-License-Identifier: GPL-2.0

//! The exposition: what one scrape shows, built from a snapshot and encoded
//! with `prometheus-client` (OpenMetrics or the Prometheus text format).
//!
//! [`Exposition::build`] applies the cardinality bound: at most
//! `max_namespaces` namespaces get series of their own, capturing ones
//! first, then by ascending inode number; the others are summed into series
//! labelled `netns="other"` (empty `container_id` and `pod_uid`), and
//! `mace_namespaces_folded` says how many. Their segment histograms are
//! summed there too: `other` has one of a segment if any namespace folded
//! into it has. A namespace that moves between its own series and `other`
//! makes both look like counter resets to `rate()`, which is why the bound
//! is a safety net, not a sampling rule.

use crate::ident::Identity;
use crate::source::{Down, HistFile, HostStats, NetNs};
use mace_core::hist::{upper_bound_ns, Snapshot};
use mace_core::record::Direction;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// A metric family of the per-namespace counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Packets,
    Tracked,
    Waiting,
    IngressEnds,
    Compat,
    Segments,
    Ring,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::Packets,
        Family::Tracked,
        Family::Waiting,
        Family::IngressEnds,
        Family::Compat,
        Family::Segments,
        Family::Ring,
    ];

    /// Name (without `_total`, which the encoder adds to counters), help,
    /// and whether it is a counter (else a gauge).
    fn describe(self) -> (&'static str, &'static str, bool) {
        match self {
            Family::Packets => (
                "mace_packets",
                "Packets of the namespace by the end mace gave them: recorded (a latency), or lost to mace (expired, collision, evicted, capture_off, unreported, task_lost, new_peer: unstamped, from a remote that was no peer)",
                true,
            ),
            Family::Tracked => (
                "mace_packets_tracked",
                "Packets mace began to follow: handed over by a send syscall (egress), taken by a reader (ingress)",
                true,
            ),
            Family::Waiting => (
                "mace_packets_waiting",
                "Packets followed now and not ended yet: in the egress table, or awaiting their receiving syscall's return",
                false,
            ),
            Family::IngressEnds => (
                "mace_ingress_latency_ends",
                "Ingress latencies by where they end: syscall return, kernel receive stamp, packet-socket tap, or tap read",
                true,
            ),
            Family::Compat => (
                "mace_compat_syscalls_skipped",
                "32-bit compat syscalls of the namespace's tasks, not looked at",
                true,
            ),
            Family::Segments => (
                "mace_latency_segments",
                "Latencies recorded with breakdown on, by whether their segments (where the host held the packet) are known",
                true,
            ),
            Family::Ring => (
                "mace_ring_records",
                "Records of the namespace's ring: pushed, popped, lost because it was full or busy, discarded",
                true,
            ),
        }
    }
}

/// Label names and values fixed by a metric's definition.
type FixedLabels = &'static [(&'static str, &'static str)];

/// Each kernel counter of a namespace, its family and its labels; a counter
/// not listed here is not exported.
const NS_COUNTERS: &[(&str, Family, FixedLabels)] = &[
    (
        "egress",
        Family::Packets,
        &[("direction", "egress"), ("outcome", "recorded")],
    ),
    (
        "egress_expired",
        Family::Packets,
        &[("direction", "egress"), ("outcome", "expired")],
    ),
    (
        "egress_collisions",
        Family::Packets,
        &[("direction", "egress"), ("outcome", "collision")],
    ),
    (
        "egress_evicted",
        Family::Packets,
        &[("direction", "egress"), ("outcome", "evicted")],
    ),
    (
        "egress_off",
        Family::Packets,
        &[("direction", "egress"), ("outcome", "capture_off")],
    ),
    (
        "ingress",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "recorded")],
    ),
    (
        "ingress_expired",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "expired")],
    ),
    (
        "ingress_collisions",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "collision")],
    ),
    (
        "ingress_off",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "capture_off")],
    ),
    (
        "ingress_unreported",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "unreported")],
    ),
    (
        "ingress_task_lost",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "task_lost")],
    ),
    (
        "ingress_new_peers",
        Family::Packets,
        &[("direction", "ingress"), ("outcome", "new_peer")],
    ),
    ("egress_sent", Family::Tracked, &[("direction", "egress")]),
    (
        "ingress_taken",
        Family::Tracked,
        &[("direction", "ingress")],
    ),
    (
        "egress_in_table",
        Family::Waiting,
        &[("direction", "egress")],
    ),
    (
        "ingress_pending",
        Family::Waiting,
        &[("direction", "ingress")],
    ),
    (
        "ingress_end_syscall",
        Family::IngressEnds,
        &[("end", "syscall")],
    ),
    (
        "ingress_end_stamp",
        Family::IngressEnds,
        &[("end", "stamp")],
    ),
    ("ingress_end_tap", Family::IngressEnds, &[("end", "tap")]),
    (
        "ingress_end_tap_read",
        Family::IngressEnds,
        &[("end", "tap_read")],
    ),
    ("compat_syscalls", Family::Compat, &[]),
    (
        "egress_segments",
        Family::Segments,
        &[("direction", "egress"), ("segments", "known")],
    ),
    (
        "egress_segments_unknown",
        Family::Segments,
        &[("direction", "egress"), ("segments", "unknown")],
    ),
    (
        "ingress_segments",
        Family::Segments,
        &[("direction", "ingress"), ("segments", "known")],
    ),
    (
        "ingress_segments_unknown",
        Family::Segments,
        &[("direction", "ingress"), ("segments", "unknown")],
    ),
    ("ring_pushed", Family::Ring, &[("event", "pushed")]),
    ("ring_popped", Family::Ring, &[("event", "popped")]),
    ("ring_full", Family::Ring, &[("event", "full")]),
    ("ring_busy", Family::Ring, &[("event", "busy")]),
    ("ring_discarded", Family::Ring, &[("event", "discarded")]),
];

/// The host-wide counters of `stats` (`host_<name>`) exported in
/// `mace_host_packets_total{event="<name>"}`.
const HOST_COUNTERS: &[&str] = &[
    "ingress_stamped",
    "ingress_stamps_taken",
    "ingress_stamps_lost",
    "ingress_received",
    "ingress_taken",
    "ingress_expired",
    "ingress_collisions",
    "ingress_evicted",
    "ingress_fragments",
    "egress_evicted",
    "tasks_evicted",
    "taps_overflow",
    "noted_elsewhere",
    "noted_moved",
];

/// The host-wide gauges of `stats` exported in
/// `mace_host_table_packets{direction}`.
const HOST_TABLES: &[(&str, &str)] = &[
    ("ingress_in_table", "ingress"),
    ("egress_in_table", "egress"),
];

/// The series of one namespace (or of the folded ones).
#[derive(Debug, Clone)]
struct Series {
    /// The `netns` label: the inode number, or `other`.
    netns: String,
    identity: Identity,
    ns: NetNs,
}

impl Series {
    fn labels(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut l = vec![
            ("netns".to_owned(), self.netns.clone()),
            (
                "container_id".to_owned(),
                self.identity.container_id.clone(),
            ),
            ("pod_uid".to_owned(), self.identity.pod_uid.clone()),
        ];
        l.extend(extra.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        l
    }
}

/// Everything one scrape shows.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// Why there is no snapshot, or `None` if there is one.
    down: Option<Down>,
    namespaces: usize,
    capturing: usize,
    folded: usize,
    series: Vec<Series>,
    stats: Option<HostStats>,
}

/// Adds `b`'s counts to `a`'s (wrapping, like the kernel's counters).
fn add_snapshot(a: &mut Snapshot, b: &Snapshot) {
    a.count = a.count.wrapping_add(b.count);
    a.sum_ns = a.sum_ns.wrapping_add(b.sum_ns);
    for (x, y) in a.counts.iter_mut().zip(b.counts.iter()) {
        *x = x.wrapping_add(*y);
    }
}

/// Adds namespace `b` into `a`: counters by name, histograms by bucket (a
/// segment histogram `a` lacks starts empty).
fn add_ns(a: &mut NetNs, b: &NetNs) {
    a.capture |= b.capture;
    for (name, value) in &b.counters {
        match a.counters.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = v.wrapping_add(*value),
            None => a.counters.push((name.clone(), *value)),
        }
    }
    add_snapshot(&mut a.egress, &b.egress);
    add_snapshot(&mut a.ingress, &b.ingress);
    for dir in [Direction::Egress, Direction::Ingress] {
        for (x, y) in a.segments_mut(dir).iter_mut().zip(b.segments(dir)) {
            if let Some(y) = y {
                add_snapshot(x.get_or_insert_with(Snapshot::default), y);
            }
        }
    }
}

/// The help of `mace_latency_segment_seconds`.
const SEGMENT_HELP: &str = "Time the host held a packet in one segment of its latency, with breakdown on (two waypoints cut a latency into three segments that add up to it): egress container (send syscall to the transmission on the namespace's device), host (to the hand-over to the outer device), outer (to the transmission there); ingress host (outer device to the receive on the namespace's device), container (to joining the socket's queue), socket (the wait there, to the latency's end)";

impl Exposition {
    /// Builds the exposition of a snapshot (or of why there is none), the
    /// host-wide `stats` (if they could be read), and the namespaces'
    /// identities, keeping at most `max_namespaces` namespaces' own series.
    pub fn build(
        hist: Result<HistFile, Down>,
        stats: Option<HostStats>,
        identities: &BTreeMap<u32, Identity>,
        max_namespaces: usize,
    ) -> Exposition {
        let (down, file) = match hist {
            Ok(file) => (None, file),
            Err(down) => (Some(down), HistFile::default()),
        };
        let namespaces = file.namespaces.len();
        let capturing = file.namespaces.values().filter(|n| n.capture).count();
        let mut order: Vec<(u32, NetNs)> = file.namespaces.into_iter().collect();
        // Capturing first, then by inode number (the map's order; stable).
        order.sort_by_key(|(inum, ns)| (!ns.capture, *inum));
        let mut series = Vec::new();
        let mut other: Option<NetNs> = None;
        let mut folded = 0;
        for (i, (inum, ns)) in order.into_iter().enumerate() {
            if i < max_namespaces {
                series.push(Series {
                    netns: inum.to_string(),
                    identity: identities.get(&inum).cloned().unwrap_or_default(),
                    ns,
                });
            } else {
                folded += 1;
                add_ns(other.get_or_insert_with(NetNs::default), &ns);
            }
        }
        if let Some(ns) = other {
            series.push(Series {
                netns: "other".to_owned(),
                identity: Identity::default(),
                ns,
            });
        }
        Exposition {
            down,
            namespaces,
            capturing,
            folded,
            series,
            stats,
        }
    }

    /// The inode numbers of every namespace of a snapshot, to look up with
    /// [`crate::ident::identify`].
    pub fn wanted(file: &HistFile) -> std::collections::BTreeSet<u32> {
        file.namespaces.keys().copied().collect()
    }

    /// The registry that encodes this exposition.
    fn registry(self) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(self));
        r
    }

    /// The exposition in the Prometheus text format, version 0.0.4 (what
    /// node_exporter's textfile collector and `promtool check metrics`
    /// read).
    pub fn to_prometheus_text(self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry())
            .expect("writing to a String does not fail");
        s
    }

    /// The exposition in the OpenMetrics text format (ends with `# EOF`).
    pub fn to_openmetrics(self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry())
            .expect("writing to a String does not fail");
        s
    }
}

/// Writes a gauge without labels.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes a gauge family of labelled values.
fn gauges<L: prometheus_client::encoding::EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(L, i64)],
) -> Result<(), std::fmt::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes a counter family (`name` without `_total`).
fn counters<L: prometheus_client::encoding::EncodeLabelSet, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(L, V)],
) -> Result<(), std::fmt::Error>
where
    V: prometheus_client::encoding::EncodeCounterValue + Copy + std::fmt::Debug,
    ConstCounter<V>: EncodeMetric,
{
    if values.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// Encodes the histogram `snap` with `labels` into the family `m`.
fn encode_hist(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &[(String, String)],
    snap: &Snapshot,
) -> std::fmt::Result {
    m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
        snap.sum_ns as f64 / 1e9,
        snap.count,
        &buckets_seconds(snap),
        None,
    )
}

/// The bucket bounds of a snapshot in seconds with per-bucket counts (the
/// encoder makes them cumulative), the last bound `+Inf`.
pub fn buckets_seconds(s: &Snapshot) -> Vec<(f64, u64)> {
    s.counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let le = upper_bound_ns(i).map_or(f64::INFINITY, |ns| ns as f64 / 1e9);
            (le, n)
        })
        .collect()
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = i64::from(self.down.is_none());
        gauge(
            &mut enc,
            "mace_up",
            "1 if /dev/mace-hist was read and understood, 0 if not (see mace_down_reason)",
            up,
        )?;
        let reasons: Vec<_> = Down::ALL
            .iter()
            .map(|&d| ([("reason", d.name())], i64::from(self.down == Some(d))))
            .collect();
        gauges(
            &mut enc,
            "mace_down_reason",
            "1 for the reason mace_up is 0: not_loaded (no /dev/mace-hist), permission_denied, read_error, bad_format",
            &reasons,
        )?;
        gauge(
            &mut enc,
            "mace_namespaces",
            "Network namespaces in the snapshot",
            self.namespaces as i64,
        )?;
        gauge(
            &mut enc,
            "mace_capturing_namespaces",
            "Network namespaces that capture (0: capture is off everywhere, or mace is down)",
            self.capturing as i64,
        )?;
        gauge(
            &mut enc,
            "mace_namespaces_folded",
            "Namespaces beyond --max-namespaces, summed into the series with netns=\"other\"",
            self.folded as i64,
        )?;

        for (name, help, egress) in [
            (
                "mace_egress_latency_seconds",
                "Time the host held a packet a container sent: from the send syscall to the outer device",
                true,
            ),
            (
                "mace_ingress_latency_seconds",
                "Time the host held a packet a container received: from the outer device to the receiving syscall's return",
                false,
            ),
        ] {
            if self.series.is_empty() {
                continue;
            }
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for s in &self.series {
                let snap = if egress { &s.ns.egress } else { &s.ns.ingress };
                encode_hist(&mut m, &s.labels(&[]), snap)?;
            }
        }

        // Segments: only the namespaces (and `other`) that have them.
        let segments: Vec<_> = self
            .series
            .iter()
            .flat_map(|s| {
                [Direction::Egress, Direction::Ingress]
                    .into_iter()
                    .flat_map(move |dir| {
                        dir.segment_names()
                            .into_iter()
                            .zip(s.ns.segments(dir))
                            .filter_map(move |(name, snap)| {
                                let labels = [("direction", dir.name()), ("segment", name)];
                                snap.as_ref().map(|snap| (s.labels(&labels), snap))
                            })
                    })
            })
            .collect();
        if !segments.is_empty() {
            let mut m = enc.encode_descriptor(
                "mace_latency_segment_seconds",
                SEGMENT_HELP,
                None,
                MetricType::Histogram,
            )?;
            for (labels, snap) in segments {
                encode_hist(&mut m, &labels, snap)?;
            }
        }

        for family in Family::ALL {
            let (name, help, is_counter) = family.describe();
            let values: Vec<(Vec<(String, String)>, u64)> = self
                .series
                .iter()
                .flat_map(|s| {
                    NS_COUNTERS
                        .iter()
                        .filter(move |(_, f, _)| *f == family)
                        .filter_map(move |(kname, _, extra)| {
                            let v = s.ns.counters.iter().find(|(n, _)| n == kname)?.1;
                            Some((s.labels(extra), v))
                        })
                })
                .collect();
            if is_counter {
                counters(&mut enc, name, help, &values)?;
            } else {
                let values: Vec<_> = values
                    .into_iter()
                    .map(|(l, v)| (l, i64::try_from(v).unwrap_or(i64::MAX)))
                    .collect();
                gauges(&mut enc, name, help, &values)?;
            }
        }

        gauge(
            &mut enc,
            "mace_stats_up",
            "1 if /sys/class/mace/stats was read (host-wide and probe metrics need the initial namespace)",
            i64::from(self.stats.is_some()),
        )?;
        let Some(stats) = &self.stats else {
            return Ok(());
        };
        let host = |name: &str| stats.host.iter().find(|(n, _)| n == name).map(|p| p.1);
        let events: Vec<_> = HOST_COUNTERS
            .iter()
            .filter_map(|&n| Some(([("event", n)], host(n)?)))
            .collect();
        counters(
            &mut enc,
            "mace_host_packets",
            "Host-wide packet events of stats' host_<event> counters (received packets before a namespace is known, table evictions)",
            &events,
        )?;
        let tables: Vec<_> = HOST_TABLES
            .iter()
            .filter_map(|&(n, dir)| {
                Some((
                    [("direction", dir)],
                    i64::try_from(host(n)?).unwrap_or(i64::MAX),
                ))
            })
            .collect();
        gauges(
            &mut enc,
            "mace_host_table_packets",
            "Packets waiting in mace's host-wide egress and ingress tables",
            &tables,
        )?;
        let hits: Vec<_> = stats
            .probes
            .iter()
            .map(|(hook, hits, _)| ([("hook", hook.as_str())], *hits))
            .collect();
        counters(
            &mut enc,
            "mace_probe_hits",
            "Calls of each probe (counted only when mace was loaded with self_cost=1)",
            &hits,
        )?;
        let secs: Vec<_> = stats
            .probes
            .iter()
            .map(|(hook, _, ns)| ([("hook", hook.as_str())], *ns as f64 / 1e9))
            .collect();
        counters(
            &mut enc,
            "mace_probe_seconds",
            "Time spent in each probe (counted only when mace was loaded with self_cost=1)",
            &secs,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{parse_hist, parse_stats};
    use std::collections::BTreeMap;

    const HIST: &str = include_str!("../tests/fixtures/mace-hist.txt");
    const STATS: &str = include_str!("../tests/fixtures/stats.txt");
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5f3a1c2e-7b9d-4e21-a0f4-9c8b7a6d5e4f";

    /// One sample line: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, String);

    /// The samples of a text exposition (label values without `,` or `"`).
    fn samples(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.to_owned())
            })
            .collect()
    }

    /// The value of the one sample of `name` whose labels include `want`.
    fn value(s: &[Sample], name: &str, want: &[(&str, &str)]) -> String {
        let found: Vec<_> = s
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
        found[0].2.clone()
    }

    fn fixture(max: usize) -> Exposition {
        let ids = BTreeMap::from([(
            4026532211,
            Identity {
                container_id: ID.to_owned(),
                pod_uid: UID.to_owned(),
            },
        )]);
        let hist = parse_hist(HIST).map_err(|_| Down::BadFormat);
        Exposition::build(hist, Some(parse_stats(STATS)), &ids, max)
    }

    #[test]
    fn histograms_are_cumulative_in_seconds_and_end_in_inf() {
        let s = samples(&fixture(128).to_prometheus_text());
        for name in [
            "mace_egress_latency_seconds",
            "mace_ingress_latency_seconds",
        ] {
            for netns in ["4026531840", "4026532211", "4026532300"] {
                let sel = [("netns", netns)];
                let buckets: Vec<_> = s
                    .iter()
                    .filter(|(n, l, _)| *n == format!("{name}_bucket") && l["netns"] == netns)
                    .collect();
                assert_eq!(buckets.len(), mace_core::hist::BUCKETS);
                assert_eq!(buckets[0].1["le"], "5.12e-07");
                assert_eq!(buckets[4].1["le"], "1.024e-06");
                assert_eq!(buckets[100].1["le"], "17.179869184");
                let last = buckets.last().unwrap();
                assert_eq!(last.1["le"], "+Inf");
                let counts: Vec<u64> = buckets.iter().map(|b| b.2.parse().unwrap()).collect();
                assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
                assert_eq!(last.2, value(&s, &format!("{name}_count"), &sel));
            }
        }
        let c = [("netns", "4026532211")];
        assert_eq!(
            value(&s, "mace_egress_latency_seconds_sum", &c),
            "0.002401837"
        );
        assert_eq!(value(&s, "mace_egress_latency_seconds_count", &c), "10");
        // Buckets 9 and 10 ((2048, 2560] and (2560, 3072] ns) hold 2 and 8.
        let b = |le| {
            value(
                &s,
                "mace_egress_latency_seconds_bucket",
                &[c[0], ("le", le)],
            )
        };
        assert_eq!(
            (b("2.048e-06"), b("2.56e-06"), b("3.072e-06")),
            ("0".into(), "2".into(), "10".into())
        );
        let inf = |le| {
            value(
                &s,
                "mace_ingress_latency_seconds_bucket",
                &[c[0], ("le", le)],
            )
        };
        assert_eq!(
            (inf("17.179869184"), inf("+Inf")),
            ("9".into(), "10".into())
        );
    }

    #[test]
    fn segment_histograms_of_the_namespace_with_breakdown() {
        let text = fixture(128).to_prometheus_text();
        let s = samples(&text);
        assert!(
            text.contains("# TYPE mace_latency_segment_seconds histogram\n"),
            "{text}"
        );
        let name = "mace_latency_segment_seconds";
        let c = [
            ("netns", "4026532211"),
            ("container_id", ID),
            ("pod_uid", UID),
        ];
        let mut series = Vec::new();
        for dir in [Direction::Egress, Direction::Ingress] {
            // Each segment counts the latencies with known segments.
            let known = value(
                &s,
                "mace_latency_segments_total",
                &[c[0], ("direction", dir.name()), ("segments", "known")],
            );
            for seg in dir.segment_names() {
                let sel = [
                    c[0],
                    c[1],
                    c[2],
                    ("direction", dir.name()),
                    ("segment", seg),
                ];
                assert_eq!(value(&s, &format!("{name}_count"), &sel), known, "{seg}");
                let buckets: Vec<_> = s
                    .iter()
                    .filter(|(n, l, _)| {
                        *n == format!("{name}_bucket") && sel.iter().all(|(k, v)| l[*k] == *v)
                    })
                    .collect();
                assert_eq!(buckets.len(), mace_core::hist::BUCKETS);
                assert_eq!(buckets[0].1["le"], "5.12e-07");
                assert_eq!(buckets.last().unwrap().1["le"], "+Inf");
                assert_eq!(buckets.last().unwrap().2, known);
                series.push((dir.name(), seg));
            }
        }
        assert_eq!(
            series,
            [
                ("egress", "container"),
                ("egress", "host"),
                ("egress", "outer"),
                ("ingress", "host"),
                ("ingress", "container"),
                ("ingress", "socket"),
            ]
        );
        let seg = |d, g, suffix: &str, le: Option<&str>| {
            let mut sel = vec![c[0], ("direction", d), ("segment", g)];
            sel.extend(le.map(|le| ("le", le)));
            value(&s, &format!("{name}{suffix}"), &sel)
        };
        assert_eq!(seg("egress", "host", "_sum", None), "0.00001034");
        // Egress host: 3 in (1024, 1280] ns, 5 in (1280, 1536] ns.
        assert_eq!(
            (
                seg("egress", "host", "_bucket", Some("1.024e-06")),
                seg("egress", "host", "_bucket", Some("1.28e-06")),
                seg("egress", "host", "_bucket", Some("1.536e-06")),
            ),
            ("0".into(), "3".into(), "8".into())
        );
        // One reader waited above 2^34 ns in its socket.
        assert_eq!(
            (
                seg("ingress", "socket", "_bucket", Some("17.179869184")),
                seg("ingress", "socket", "_bucket", Some("+Inf")),
                seg("ingress", "socket", "_sum", None),
            ),
            ("8".into(), "9".into(), "17.1800107".into())
        );
        // Namespaces that never had breakdown on have no segment series.
        let netns: std::collections::BTreeSet<_> = s
            .iter()
            .filter(|(n, _, _)| n.starts_with(name))
            .map(|(_, l, _)| l["netns"].as_str())
            .collect();
        assert_eq!(netns, ["4026532211"].into());
        assert_eq!(
            s.iter().filter(|(n, _, _)| n.starts_with(name)).count(),
            6 * (mace_core::hist::BUCKETS + 2)
        );
    }

    #[test]
    fn no_segment_family_without_segments() {
        let plain: String = HIST
            .lines()
            .filter(|l| !l.starts_with("seghist "))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = Exposition::build(
            parse_hist(&plain).map_err(|_| Down::BadFormat),
            None,
            &BTreeMap::new(),
            128,
        );
        let text = e.to_prometheus_text();
        assert!(text.contains("mace_egress_latency_seconds_count"), "{text}");
        assert!(!text.contains("mace_latency_segment_seconds"), "{text}");
    }

    #[test]
    fn labels_counters_and_state() {
        let text = fixture(128).to_prometheus_text();
        let s = samples(&text);
        let c = [
            ("netns", "4026532211"),
            ("container_id", ID),
            ("pod_uid", UID),
        ];
        assert_eq!(value(&s, "mace_egress_latency_seconds_count", &c), "10");
        let host = [
            ("netns", "4026531840"),
            ("container_id", ""),
            ("pod_uid", ""),
        ];
        assert_eq!(value(&s, "mace_egress_latency_seconds_count", &host), "3");
        let pk = |d, o| {
            value(
                &s,
                "mace_packets_total",
                &[c[0], ("direction", d), ("outcome", o)],
            )
        };
        assert_eq!(pk("egress", "recorded"), "10");
        assert_eq!(pk("egress", "expired"), "1");
        assert_eq!(pk("ingress", "unreported"), "1");
        assert_eq!(
            value(
                &s,
                "mace_packets_tracked_total",
                &[c[0], ("direction", "egress")]
            ),
            "12"
        );
        assert_eq!(
            value(&s, "mace_packets_waiting", &[c[0], ("direction", "egress")]),
            "1"
        );
        assert_eq!(
            value(
                &s,
                "mace_ingress_latency_ends_total",
                &[c[0], ("end", "stamp")]
            ),
            "1"
        );
        assert_eq!(value(&s, "mace_compat_syscalls_skipped_total", &c), "0");
        let seg = |d, k| {
            value(
                &s,
                "mace_latency_segments_total",
                &[c[0], ("direction", d), ("segments", k)],
            )
        };
        assert_eq!(
            [
                seg("egress", "known"),
                seg("egress", "unknown"),
                seg("ingress", "known"),
                seg("ingress", "unknown")
            ],
            ["8", "2", "9", "1"]
        );
        assert!(
            text.contains("# TYPE mace_latency_segments_total counter\n"),
            "{text}"
        );
        // The namespace's breakdown switch in stats is not a metric (its
        // capture switch is not either: mace_capturing_namespaces counts
        // /dev/mace-hist's).
        assert!(!text.contains("mace_breakdown"), "{text}");
        let ring = [("netns", "4026532300"), ("event", "full")];
        assert_eq!(value(&s, "mace_ring_records_total", &ring), "1");
        assert_eq!(value(&s, "mace_up", &[]), "1");
        for r in Down::ALL {
            assert_eq!(value(&s, "mace_down_reason", &[("reason", r.name())]), "0");
        }
        assert_eq!(value(&s, "mace_namespaces", &[]), "3");
        assert_eq!(value(&s, "mace_capturing_namespaces", &[]), "2");
        assert_eq!(value(&s, "mace_namespaces_folded", &[]), "0");
        assert_eq!(value(&s, "mace_stats_up", &[]), "1");
        let ev = |e| value(&s, "mace_host_packets_total", &[("event", e)]);
        assert_eq!(
            (
                ev("ingress_stamped"),
                ev("ingress_stamps_taken"),
                ev("ingress_stamps_lost")
            ),
            ("40".into(), "7".into(), "1".into())
        );
        assert_eq!(
            value(&s, "mace_host_table_packets", &[("direction", "ingress")]),
            "3"
        );
        assert_eq!(
            value(&s, "mace_probe_hits_total", &[("hook", "sys_enter")]),
            "100"
        );
        assert_eq!(
            value(&s, "mace_probe_seconds_total", &[("hook", "net_dev_queue")]),
            "0.00075"
        );
        // Prometheus text format: the counter's TYPE names the _total series.
        assert!(
            text.contains("# TYPE mace_packets_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE mace_egress_latency_seconds histogram\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_form() {
        let text = fixture(128).to_openmetrics();
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE mace_packets counter\n"), "{text}");
        let s = samples(&text);
        let c = [
            ("netns", "4026532211"),
            ("direction", "egress"),
            ("outcome", "recorded"),
        ];
        assert_eq!(value(&s, "mace_packets_total", &c), "10");
        let inf = [("netns", "4026532211"), ("le", "+Inf")];
        assert_eq!(value(&s, "mace_ingress_latency_seconds_bucket", &inf), "10");
        assert!(text.contains("# TYPE mace_latency_segment_seconds histogram\n"));
        let seg = [
            ("netns", "4026532211"),
            ("direction", "ingress"),
            ("segment", "socket"),
            ("le", "+Inf"),
        ];
        assert_eq!(value(&s, "mace_latency_segment_seconds_bucket", &seg), "9");
    }

    #[test]
    fn cardinality_bound_folds_into_other() {
        let s = samples(&fixture(1).to_prometheus_text());
        assert_eq!(value(&s, "mace_namespaces_folded", &[]), "2");
        assert_eq!(value(&s, "mace_namespaces", &[]), "3");
        let netns: std::collections::BTreeSet<_> = s
            .iter()
            .filter(|(n, _, _)| n == "mace_egress_latency_seconds_count")
            .map(|(_, l, _)| l["netns"].clone())
            .collect();
        // The capturing namespace of lowest inode keeps its own series.
        assert_eq!(netns, ["4026531840".to_owned(), "other".to_owned()].into());
        let other = [("netns", "other"), ("container_id", ""), ("pod_uid", "")];
        assert_eq!(value(&s, "mace_egress_latency_seconds_count", &other), "12");
        assert_eq!(
            value(&s, "mace_egress_latency_seconds_sum", &other),
            "0.003901837"
        );
        let eo = [
            other[0],
            ("direction", "egress"),
            ("outcome", "capture_off"),
        ];
        assert_eq!(value(&s, "mace_packets_total", &eo), "5");
        let inf = [other[0], ("le", "+Inf")];
        assert_eq!(value(&s, "mace_ingress_latency_seconds_bucket", &inf), "10");
        // The segments of the folded namespace with breakdown are other's.
        let seg = |s: &[Sample], g, suffix: &str| {
            let sel = [
                other[0],
                other[1],
                other[2],
                ("direction", "egress"),
                ("segment", g),
            ];
            value(s, &format!("mace_latency_segment_seconds{suffix}"), &sel)
        };
        assert_eq!(seg(&s, "container", "_count"), "8");
        assert_eq!(seg(&s, "container", "_sum"), "0.00000635");
        let segment_netns: std::collections::BTreeSet<_> = s
            .iter()
            .filter(|(n, _, _)| n.starts_with("mace_latency_segment_seconds"))
            .map(|(_, l, _)| l["netns"].as_str())
            .collect();
        assert_eq!(segment_netns, ["other"].into());

        let s = samples(&fixture(0).to_prometheus_text());
        assert_eq!(value(&s, "mace_namespaces_folded", &[]), "3");
        let all = [("netns", "other")];
        assert_eq!(value(&s, "mace_egress_latency_seconds_count", &all), "15");

        // Two namespaces with segments fold bucket by bucket; a segment
        // only one of them has is that one's.
        let more = format!(
            "{HIST}seghist 4026532300 egress container 2 1000 0:2\n\
             seghist 4026532300 egress host 1 700 2:1\n"
        );
        let e = Exposition::build(
            parse_hist(&more).map_err(|_| Down::BadFormat),
            None,
            &BTreeMap::new(),
            1,
        );
        let s = samples(&e.to_prometheus_text());
        assert_eq!(seg(&s, "container", "_count"), "10");
        assert_eq!(seg(&s, "container", "_sum"), "0.00000735");
        let le = |g, le| {
            let sel = [
                other[0],
                ("direction", "egress"),
                ("segment", g),
                ("le", le),
            ];
            value(&s, "mace_latency_segment_seconds_bucket", &sel)
        };
        // Container: 2 + 0 at 512 ns, 2 + 1 at 640 ns; host: 1 + 0 at 768 ns.
        assert_eq!(
            (le("container", "5.12e-07"), le("container", "6.4e-07")),
            ("2".into(), "3".into())
        );
        assert_eq!(
            (le("host", "7.68e-07"), le("host", "+Inf")),
            ("1".into(), "9".into())
        );
        assert_eq!(seg(&s, "outer", "_count"), "8");
    }

    #[test]
    fn mace_absent_is_metrics_not_an_error() {
        let e = Exposition::build(Err(Down::NotLoaded), None, &BTreeMap::new(), 128);
        let text = e.to_prometheus_text();
        let s = samples(&text);
        assert_eq!(value(&s, "mace_up", &[]), "0");
        assert_eq!(
            value(&s, "mace_down_reason", &[("reason", "not_loaded")]),
            "1"
        );
        assert_eq!(
            value(&s, "mace_down_reason", &[("reason", "bad_format")]),
            "0"
        );
        assert_eq!(value(&s, "mace_capturing_namespaces", &[]), "0");
        assert_eq!(value(&s, "mace_stats_up", &[]), "0");
        assert!(!text.contains("latency_seconds"), "{text}");
        assert!(!text.contains("segment_seconds"), "{text}");

        // Through the files: nothing there at all.
        let dir = crate::testutil::TempDir::new("absent");
        let paths = crate::Paths {
            hist: dir.path().join("mace-hist"),
            stats: dir.path().join("stats"),
            proc: dir.path().join("proc"),
        };
        let (e, why) = crate::collect(&paths, 128);
        assert!(why.unwrap().contains("mace-hist"));
        let s = samples(&e.to_prometheus_text());
        assert_eq!(
            value(&s, "mace_down_reason", &[("reason", "not_loaded")]),
            "1"
        );
    }

    #[test]
    fn capture_off_everywhere() {
        let text = "mace-hist 1\n".to_owned() + HIST.lines().nth(1).unwrap() + "\n";
        let e = Exposition::build(
            parse_hist(&text).map_err(|_| Down::BadFormat),
            None,
            &BTreeMap::new(),
            128,
        );
        let s = samples(&e.to_prometheus_text());
        assert_eq!(value(&s, "mace_up", &[]), "1");
        assert_eq!(value(&s, "mace_capturing_namespaces", &[]), "0");
        assert_eq!(value(&s, "mace_namespaces", &[]), "0");
    }

    #[test]
    fn collect_names_namespaces_from_a_fake_proc() {
        let dir = crate::testutil::TempDir::new("collect");
        let hist = dir.path().join("mace-hist");
        std::fs::write(&hist, HIST).unwrap();
        let proc = dir.path().join("proc");
        let cg = format!("0::/kubepods/besteffort/pod{UID}/{ID}\n");
        crate::testutil::fake_process(&proc, 4242, 4026532211, &cg);
        let paths = crate::Paths {
            hist,
            stats: dir.path().join("no-stats"),
            proc,
        };
        let (e, why) = crate::collect(&paths, 128);
        assert_eq!(why, None);
        let s = samples(&e.to_prometheus_text());
        let c = [
            ("netns", "4026532211"),
            ("container_id", ID),
            ("pod_uid", UID),
        ];
        assert_eq!(value(&s, "mace_ingress_latency_seconds_count", &c), "10");
        assert_eq!(value(&s, "mace_stats_up", &[]), "0");
    }

    #[test]
    fn every_kernel_counter_is_mapped() {
        let mut names = Vec::new();
        mace_core::counters::NetCounters::default().for_each(|n, _| names.push(n));
        names.extend([
            "ring_pushed",
            "ring_popped",
            "ring_full",
            "ring_busy",
            "ring_discarded",
        ]);
        for n in &names {
            assert!(NS_COUNTERS.iter().any(|(k, _, _)| k == n), "{n} not mapped");
        }
        assert_eq!(NS_COUNTERS.len(), names.len());
        let mut host = Vec::new();
        mace_core::counters::HostCounters::default().for_each(|n, _| host.push(n));
        for n in &host {
            let mapped = HOST_COUNTERS.contains(n) || HOST_TABLES.iter().any(|(k, _)| k == n);
            assert!(mapped, "host_{n} not mapped");
        }
        assert_eq!(HOST_COUNTERS.len() + HOST_TABLES.len(), host.len());
    }
}
