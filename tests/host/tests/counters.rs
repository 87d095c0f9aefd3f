//! Tests of the counter sets: one declaration gives the fields, the names
//! and the loop `stats` prints with.

use mace_core::counters::{bump, HostCounters, NetCounters};
use std::sync::Arc;

#[test]
fn for_each_lists_every_counter_in_declaration_order() {
    let c = NetCounters::default();
    bump(&c.egress);
    bump(&c.ingress_unreported);
    bump(&c.ingress_unreported);
    let mut seen = Vec::new();
    c.for_each(|name, v| seen.push((name, v)));
    let names: Vec<_> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "egress",
            "ingress",
            "egress_sent",
            "egress_expired",
            "egress_collisions",
            "egress_evicted",
            "egress_off",
            "egress_in_table",
            "ingress_taken",
            "ingress_expired",
            "ingress_collisions",
            "ingress_unreported",
            "ingress_task_lost",
            "ingress_off",
            "ingress_pending",
            "ingress_end_syscall",
            "ingress_end_stamp",
            "ingress_end_tap",
            "ingress_end_tap_read",
            "compat_syscalls",
            "ingress_new_peers",
            "egress_segments",
            "egress_segments_unknown",
            "ingress_segments",
            "ingress_segments_unknown"
        ]
    );
    for (name, v) in seen {
        let want = match name {
            "egress" => 1,
            "ingress_unreported" => 2,
            _ => 0,
        };
        assert_eq!(v, want, "{name}");
    }
}

#[test]
fn host_counters_names() {
    let mut names = Vec::new();
    HostCounters::default().for_each(|n, _| names.push(n));
    assert_eq!(
        names,
        [
            "ingress_stamped",
            "ingress_stamps_taken",
            "ingress_stamps_lost",
            "ingress_received",
            "ingress_taken",
            "ingress_expired",
            "ingress_collisions",
            "ingress_evicted",
            "ingress_in_table",
            "ingress_fragments",
            "egress_evicted",
            "egress_in_table",
            "tasks_evicted",
            "taps_overflow",
            "noted_elsewhere",
            "noted_moved"
        ]
    );
}

#[test]
fn concurrent_bumps_are_all_counted() {
    let c = Arc::new(HostCounters::default());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    bump(&c.ingress_received);
                    bump(&c.tasks_evicted);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut total = 0;
    c.for_each(|_, v| total += v);
    assert_eq!(total, 800_000);
}
