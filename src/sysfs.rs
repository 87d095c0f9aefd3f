// SPDX-License-Identifier: GPL-2.0

//! The files of `/sys/class/mace/`.
//!
//! - `on` (0644): `1` or `0` switches capture of the writer's network
//!   namespace on or off; reading shows the reader's namespace's state.
//!   Writing needs CAP_NET_ADMIN over the user namespace owning the network
//!   namespace.
//! - `outer_devs` (0644): the outer devices, comma-separated names or
//!   ifindexes; writable only from the initial network namespace with
//!   CAP_NET_ADMIN.
//! - `stats` (0444): counters of the reader's network namespace, one
//!   `name value` pair per line; the initial namespace also sees the
//!   host-wide counters (`host_*`) and the probes' self-cost (`pert_*`:
//!   hits and total ns per hook, counted with `self_cost=1`).
//!
//! Malformed input is rejected with `EINVAL` and changes nothing; a missing
//! right is `EPERM`. Both are logged (rate limited).

use crate::capture::Hook;
use crate::ffi::{log_ratelimit, with_current_net, Net};
use crate::global::Global;
use crate::parse::{parse_dev_list, parse_switch, ParseError};
use crate::text::TextBuf;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

/// A file in `/sys/class/mace/`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    /// `on`.
    On,
    /// `outer_devs`.
    OuterDevs,
    /// `stats`.
    Stats,
}

impl Attr {
    fn name(self) -> &'static str {
        match self {
            Attr::On => "on",
            Attr::OuterDevs => "outer_devs",
            Attr::Stats => "stats",
        }
    }
}

/// Logs and returns the error for malformed input.
fn invalid(attr: Attr, e: ParseError) -> Error {
    if log_ratelimit() {
        pr_err!(
            "write to /sys/class/mace/{} rejected: {}; nothing changed\n",
            attr.name(),
            e
        );
    }
    EINVAL
}

/// Logs and returns the error for a missing right.
fn denied(attr: Attr, why: &str) -> Error {
    if log_ratelimit() {
        pr_warn!("write to /sys/class/mace/{} denied: {}\n", attr.name(), why);
    }
    EPERM
}

/// Fills `out` with the contents of `attr`; returns the length.
pub(crate) fn show(global: &Global, attr: Attr, out: &mut [u8]) -> Result<usize> {
    let mut text = TextBuf::new(out);
    let r = match attr {
        Attr::On => with_current_net(|net| writeln!(text, "{}", u8::from(net.state().enabled())))
            .ok_or(ENOENT)?,
        Attr::OuterDevs => writeln!(text, "{}", global.outer_devs()),
        Attr::Stats => with_current_net(|net| write_stats(&mut text, global, net)).ok_or(ENOENT)?,
    };
    r.map_err(|_| ENOSPC)?;
    Ok(text.len())
}

/// The `stats` file: the reader's namespace's counters, and for the initial
/// namespace also the global ones.
fn write_stats(out: &mut TextBuf<'_>, global: &Global, net: &Net) -> core::fmt::Result {
    let state = net.state();
    let c = &state.counters;
    let ring = state.ring_stats();
    let get = |a: &AtomicU64| a.load(Relaxed);
    writeln!(out, "netns {}", state.inum())?;
    writeln!(out, "enabled {}", u8::from(state.enabled()))?;
    writeln!(out, "egress {}", get(&c.egress))?;
    writeln!(out, "ingress {}", get(&c.ingress))?;
    writeln!(out, "egress_sent {}", get(&c.egress_sent))?;
    writeln!(out, "egress_expired {}", get(&c.egress_expired))?;
    writeln!(out, "egress_collisions {}", get(&c.egress_collisions))?;
    writeln!(out, "ingress_expired {}", get(&c.ingress_expired))?;
    writeln!(out, "ingress_collisions {}", get(&c.ingress_collisions))?;
    writeln!(out, "ingress_unreported {}", get(&c.ingress_unreported))?;
    writeln!(
        out,
        "ring_size {}",
        state.ring().map_or(0, |r| r.capacity())
    )?;
    writeln!(out, "ring_queued {}", state.ring().map_or(0, |r| r.len()))?;
    writeln!(out, "ring_pushed {}", ring.pushed)?;
    writeln!(out, "ring_popped {}", ring.popped)?;
    writeln!(out, "ring_full {}", ring.full)?;
    writeln!(out, "ring_busy {}", ring.busy)?;
    if !net.is_init() {
        return Ok(());
    }
    // Host-wide counters: only the initial namespace sees them.
    let g = &global.capture.counters;
    let [egress, ingress, tasks, deferred] = global.capture.occupancy();
    writeln!(
        out,
        "host_outer_ifindexes {:?}",
        global.capture.outer.snapshot()
    )?;
    writeln!(out, "host_ingress_stored {}", get(&g.ingress_stored))?;
    writeln!(out, "host_ingress_expired {}", get(&g.ingress_expired))?;
    writeln!(out, "host_ingress_evicted {}", get(&g.ingress_evicted))?;
    writeln!(
        out,
        "host_ingress_collisions {}",
        get(&g.ingress_collisions)
    )?;
    writeln!(out, "host_egress_evicted {}", get(&g.egress_evicted))?;
    writeln!(out, "host_tasks_evicted {}", get(&g.tasks_evicted))?;
    writeln!(
        out,
        "host_table_entries {egress} {ingress} {tasks} {deferred}"
    )?;
    let (states, rings) = crate::netns::live_counts();
    writeln!(out, "host_netns_states {states}")?;
    writeln!(out, "host_rings {rings}")?;
    for (name, cost) in Hook::NAMES.iter().zip(global.capture.hooks.iter()) {
        writeln!(out, "pert_{name} {} {}", get(&cost.hits), get(&cost.ns))?;
    }
    Ok(())
}

/// Applies a write of `input` to `attr`.
pub(crate) fn store(global: &Global, attr: Attr, input: &[u8]) -> Result {
    match attr {
        Attr::On => {
            let on = parse_switch(input).map_err(|e| invalid(attr, e))?;
            with_current_net(|net| {
                if !net.capable() {
                    return Err(denied(
                        attr,
                        "CAP_NET_ADMIN over the namespace's owning user namespace is required",
                    ));
                }
                let was = global.set_capture(net, on)?;
                if was != on && log_ratelimit() {
                    pr_info!(
                        "capture {} in network namespace {}\n",
                        if on { "on" } else { "off" },
                        net.inum()
                    );
                }
                Ok(())
            })
            .ok_or(ENOENT)?
        }
        Attr::OuterDevs => {
            let devs = parse_dev_list(input).map_err(|e| invalid(attr, e))?;
            with_current_net(|net| {
                if !net.is_init() || !net.capable() {
                    return Err(denied(
                        attr,
                        "only CAP_NET_ADMIN in the initial network namespace may set it",
                    ));
                }
                global.set_outer_devs(devs);
                Ok(())
            })
            .ok_or(ENOENT)?
        }
        Attr::Stats => Err(EPERM),
    }
}
