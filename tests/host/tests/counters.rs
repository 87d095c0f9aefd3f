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
            "ingress_expired",
            "ingress_collisions",
            "ingress_unreported"
        ]
    );
    assert_eq!(seen[0], ("egress", 1));
    assert_eq!(seen[7], ("ingress_unreported", 2));
    assert!(seen[1..7].iter().all(|(_, v)| *v == 0));
}

#[test]
fn host_counters_names() {
    let mut names = Vec::new();
    HostCounters::default().for_each(|n, _| names.push(n));
    assert_eq!(
        names,
        [
            "ingress_stored",
            "ingress_expired",
            "ingress_evicted",
            "ingress_collisions",
            "egress_evicted",
            "tasks_evicted"
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
                    bump(&c.ingress_stored);
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
