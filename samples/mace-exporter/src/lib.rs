// SPDX-License-Identifier: GPL-2.0

//! mace-exporter: mace's latency histograms and counters for Prometheus.
//!
//! Each scrape opens `/dev/mace-hist` once (one snapshot of every capturing
//! namespace, parsed with `mace_core::hist_parse`, the parser tested against
//! the module's writer), reads the host-wide lines of
//! `/sys/class/mace/stats`, looks up which container and Kubernetes pod each
//! namespace belongs to under `/proc`, and encodes the result with
//! `prometheus-client`: OpenMetrics for a scraper that asks for it, else the
//! Prometheus text format 0.0.4, which is also what `--textfile` writes
//! (node_exporter's textfile collector reads that).
//!
//! # Options
//!
//! - `--listen ADDR` (default `0.0.0.0:9470`): serve `GET /metrics` there.
//!   9470 was picked as a port next to other exporters' that looked free; it
//!   was not checked against Prometheus' list of default port allocations.
//! - `--textfile PATH`: instead of listening, write the exposition to PATH
//!   every `--interval` seconds (default 15), atomically (a temporary
//!   `.NAME.tmp` in the same directory, synced, renamed over PATH).
//! - `--once`: write once and exit: to `--textfile`'s PATH, or without it to
//!   standard output. Exit status 0 even when mace is absent (that is a
//!   metric); 1 only if the file could not be written.
//! - `--hist PATH` (default `/dev/mace-hist`), `--stats PATH` (default
//!   `/sys/class/mace/stats`), `--proc PATH` (default `/proc`): where to
//!   read, so that tests can use fixtures.
//! - `--max-namespaces N` (default 128): the cardinality bound, below.
//!
//! # Metrics
//!
//! Per namespace, with the labels `netns` (the inode number, as in
//! `readlink /proc/PID/ns/net`), `container_id` (64 hex digits) and
//! `pod_uid` (empty strings when unknown; see [`ident`]):
//!
//! - `mace_egress_latency_seconds`, `mace_ingress_latency_seconds`
//!   (histograms; `le` bounds are mace's buckets, 512 ns up to 2^34 ns by
//!   quarter octaves, in seconds, then `+Inf`);
//! - `mace_latency_segment_seconds{direction, segment}` (histograms, same
//!   buckets): the durations of each segment of the latencies recorded with
//!   known segments (`/dev/mace-hist`'s `seghist` lines), `segment` one of
//!   `Direction::segment_names` (`container`, `host`, `outer` egress;
//!   `host`, `container`, `socket` ingress); only for a namespace that has
//!   had `breakdown` on;
//! - `mace_packets_total{direction, outcome}`: `outcome` is `recorded`,
//!   `expired`, `collision`, `evicted` (egress only), `capture_off`,
//!   `unreported`, `task_lost` and `new_peer` (ingress only): the kernel's
//!   `egress`, `egress_expired`, ..., `ingress_task_lost`,
//!   `ingress_new_peers` counters;
//! - `mace_packets_tracked_total{direction}` (`egress_sent`,
//!   `ingress_taken`), `mace_packets_waiting{direction}` (gauge:
//!   `egress_in_table`, `ingress_pending`);
//! - `mace_ingress_latency_ends_total{end}` (`syscall`, `stamp`, `tap`,
//!   `tap_read`), `mace_compat_syscalls_skipped_total`;
//! - `mace_latency_segments_total{direction, segments}`: latencies recorded
//!   while the namespace's `breakdown` was on, with `segments` `known` (the
//!   line carried them: `egress_segments`, `ingress_segments`) or `unknown`
//!   (`egress_segments_unknown`, `ingress_segments_unknown`); both stay 0
//!   in a namespace that never switched `breakdown` on;
//! - `mace_ring_records_total{event}` (`pushed`, `popped`, `full`, `busy`,
//!   `discarded`).
//!
//! Host-wide, from `stats` (only readable in full from the initial
//! namespace): `mace_host_packets_total{event}` (the `host_` counters, named
//! as in `stats` without the prefix), `mace_host_table_packets{direction}`,
//! and the probes' self-cost `mace_probe_hits_total{hook}` and
//! `mace_probe_seconds_total{hook}` (zero unless mace was loaded with
//! `self_cost=1`). The lines of the exporter's own namespace in `stats`
//! (`netns`, `enabled`, `breakdown` and its counters) are not exported from
//! there: the counters come from `/dev/mace-hist`, and neither switch is a
//! metric (`mace_capturing_namespaces` counts the namespaces that capture).
//!
//! State, always present, so that a scrape never fails because of mace:
//! `mace_up` (1 if `/dev/mace-hist` was read and understood),
//! `mace_down_reason{reason}` (1 for the reason `mace_up` is 0: `not_loaded`,
//! `permission_denied`, `read_error`, `bad_format`; all 0 while up),
//! `mace_stats_up`, `mace_namespaces`, `mace_capturing_namespaces` (0 means
//! capture is off everywhere) and `mace_namespaces_folded`.
//!
//! # Cardinality
//!
//! Every label has a fixed set of values except the namespace's three, which
//! take one value set per namespace: a namespace costs about 240 series (2
//! histograms of 102 buckets, their sums and counts, 29 counters: 237), and
//! one that has had `breakdown` on 624 more (6 segment histograms of 104
//! series). At most `--max-namespaces` namespaces get their own series
//! (capturing ones first, then by inode number); the rest are summed into
//! one set labelled `netns="other"` with empty `container_id` and
//! `pod_uid` (with the segment histograms any of them has), and counted by
//! `mace_namespaces_folded`. The default, 128, covers Kubernetes' default of
//! 110 pods a node: about 30 000 series at most, about 110 000 if every
//! namespace has had `breakdown` on.
//!
//! # Why tiny_http
//!
//! The HTTP side is `tiny_http`: a small synchronous server, maintained,
//! that needs no async runtime for what is one request every few seconds.

#![forbid(unsafe_code)]

pub mod ident;
pub mod metrics;
pub mod source;
pub mod textfile;

#[cfg(test)]
mod testutil;

use std::path::PathBuf;

/// Where a scrape reads.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/dev/mace-hist`.
    pub hist: PathBuf,
    /// `/sys/class/mace/stats`.
    pub stats: PathBuf,
    /// `/proc`.
    pub proc: PathBuf,
}

/// Reads everything one scrape needs and builds its exposition; also says
/// why `/dev/mace-hist` gave nothing, if it did not.
pub fn collect(paths: &Paths, max_namespaces: usize) -> (metrics::Exposition, Option<String>) {
    let hist = source::read_hist(&paths.hist);
    let identities = match &hist {
        Ok(file) => ident::identify(&paths.proc, &metrics::Exposition::wanted(file)),
        Err(_) => Default::default(),
    };
    let stats = source::read_stats(&paths.stats).ok();
    let (hist, why) = match hist {
        Ok(file) => (Ok(file), None),
        Err((down, why)) => (Err(down), Some(why)),
    };
    (
        metrics::Exposition::build(hist, stats, &identities, max_namespaces),
        why,
    )
}
