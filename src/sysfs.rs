// SPDX-License-Identifier: GPL-2.0

//! The files of `/sys/class/mace/`.
//!
//! - `on` (0644): `1` or `0` switches capture of the writer's network
//!   namespace on or off; reading shows the reader's namespace's state.
//!   Writing needs CAP_NET_ADMIN over the user namespace owning the network
//!   namespace, held by whoever opened the file.
//! - `outer_devs` (0644): the outer devices, comma-separated names or
//!   ifindexes; writable only from the initial network namespace with
//!   CAP_NET_ADMIN.
//! - `tap_end` (0644): `read` or `stamp`, where the ingress window of a
//!   packet that only a packet socket reads (libpcap) ends in the writer's
//!   network namespace ([`crate::parse::TapEnd`]); reading shows the
//!   reader's namespace's. Writing needs what writing `on` needs.
//! - `breakdown` (0644): `1` or `0`, whether the writer's network
//!   namespace's latencies carry their segments (where the packet spent
//!   its time on the host); reading shows the reader's namespace's. It may
//!   be set before or while capture is on. Writing needs what writing `on`
//!   needs.
//! - `stats` (0444): counters of the reader's network namespace, one
//!   `name value` pair per line; the initial namespace also sees the
//!   host-wide counters (`host_*`) and the probes' self-cost (`pert_*`:
//!   hits and total ns per hook, counted with `self_cost=1`).
//!
//! Malformed input is rejected with `EINVAL`, a write longer than
//! [`MAX_WRITE`] bytes with `E2BIG`; either changes nothing. A missing right
//! is `EPERM`. All are logged (rate limited).

#![deny(unsafe_code)]

use crate::control::Control;
use crate::ffi::class::{ClassAttr, Opener};
use crate::ffi::log_ratelimit;
use crate::ffi::net::{with_current_net, Net};
use crate::ffi::tracepoint::Hook;
use crate::netns::{NetState, NET_STATE};
use crate::parse::{parse_dev_list, parse_switch, parse_tap_end, ParseError, MAX_WRITE};
use crate::text::TextBuf;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Logs and returns the error for malformed input.
fn invalid(attr: ClassAttr, e: ParseError) -> Error {
    if log_ratelimit() {
        pr_err!(
            "write to /sys/class/mace/{} rejected: {}; nothing changed\n",
            attr.name(),
            format_args!("{e}")
        );
    }
    EINVAL
}

/// Logs and returns the error for an input that is too long.
fn too_long(attr: ClassAttr, len: usize) -> Error {
    if log_ratelimit() {
        pr_err!(
            "write to /sys/class/mace/{} rejected: {} bytes or more, at most {} accepted; nothing changed\n",
            attr.name(),
            len,
            MAX_WRITE
        );
    }
    E2BIG
}

/// Logs and returns the error for a missing right.
fn denied(attr: ClassAttr, why: &str) -> Error {
    if log_ratelimit() {
        pr_warn!("write to /sys/class/mace/{} denied: {}\n", attr.name(), why);
    }
    EPERM
}

/// The state of the caller's namespace; `ENOENT` if it has none (the
/// caller is exiting, or its namespace is).
fn current_state(net: &Net) -> Result<Arc<NetState>> {
    NET_STATE.get_arc(net).ok_or(ENOENT)
}

/// Fills `out` with the contents of `attr`; returns the length.
pub(crate) fn show(control: &Control, attr: ClassAttr, out: &mut [u8]) -> Result<usize> {
    let mut text = TextBuf::new(out);
    let r = match attr {
        ClassAttr::On => with_current_net(|net| -> Result<core::fmt::Result> {
            let state = current_state(net)?;
            Ok(writeln!(text, "{}", u8::from(state.enabled())))
        })
        .ok_or(ENOENT)??,
        ClassAttr::OuterDevs => writeln!(text, "{}", control.outer_devs()),
        ClassAttr::TapEnd => with_current_net(|net| -> Result<core::fmt::Result> {
            let state = current_state(net)?;
            Ok(writeln!(text, "{}", state.tap_end().name()))
        })
        .ok_or(ENOENT)??,
        ClassAttr::Breakdown => with_current_net(|net| -> Result<core::fmt::Result> {
            let state = current_state(net)?;
            Ok(writeln!(text, "{}", u8::from(state.breakdown())))
        })
        .ok_or(ENOENT)??,
        ClassAttr::Stats => with_current_net(|net| -> Result<core::fmt::Result> {
            let state = current_state(net)?;
            Ok(write_stats(&mut text, control, net, &state))
        })
        .ok_or(ENOENT)??,
    };
    r.map_err(|_| ENOSPC)?;
    Ok(text.len())
}

/// The `stats` file: the reader's namespace's counters, and for the initial
/// namespace also the global ones.
fn write_stats(
    out: &mut TextBuf<'_>,
    control: &Control,
    net: &Net,
    state: &NetState,
) -> core::fmt::Result {
    let mut result = Ok(());
    let mut line = |name: &str, value: u64| {
        if result.is_ok() {
            result = writeln!(out, "{name} {value}");
        }
    };
    line("netns", u64::from(state.inum()));
    line("enabled", u64::from(state.enabled()));
    line("breakdown", u64::from(state.breakdown()));
    state.for_each_counter(&mut line);
    result?;
    if !net.is_init() {
        return Ok(());
    }
    // Host-wide counters: only the initial namespace sees them.
    let capture = &control.capture;
    writeln!(out, "host_outer_ifindexes {:?}", capture.outer.snapshot())?;
    let mut result = Ok(());
    capture.counters.for_each(|name, value| {
        if result.is_ok() {
            result = writeln!(out, "host_{name} {value}");
        }
    });
    result?;
    let [egress, ingress, tasks, sends] = capture.occupancy();
    writeln!(out, "host_table_entries {egress} {ingress} {tasks} {sends}")?;
    writeln!(out, "host_tap_queued {}", capture.tap_queued())?;
    let (states, rings) = crate::netns::live_counts();
    writeln!(out, "host_netns_states {states}")?;
    writeln!(out, "host_rings {rings}")?;
    let (capturing, users) = control.capturing();
    writeln!(out, "host_capturing {capturing}")?;
    writeln!(out, "host_capturing_users {users}")?;
    let (breaking_down, waypoints) = control.breaking_down();
    writeln!(out, "host_breakdown_netns {breaking_down}")?;
    writeln!(out, "host_waypoints {}", u8::from(waypoints))?;
    for (hook, cost) in Hook::ALL.iter().zip(capture.hooks.iter()) {
        writeln!(
            out,
            "pert_{} {} {}",
            hook.name(),
            cost.hits.load(Relaxed),
            cost.ns.load(Relaxed)
        )?;
    }
    Ok(())
}

/// Runs `f` with the state of the writer's namespace, if the file's opener
/// had CAP_NET_ADMIN over the user namespace owning it (`EPERM` otherwise).
fn with_own_state(
    attr: ClassAttr,
    opener: &Opener<'_>,
    f: impl FnOnce(&Net, &Arc<NetState>) -> Result,
) -> Result {
    with_current_net(|net| {
        if !net.opener_capable(opener) {
            return Err(denied(
                attr,
                "CAP_NET_ADMIN over the namespace's owning user namespace is required",
            ));
        }
        f(net, &current_state(net)?)
    })
    .ok_or(ENOENT)?
}

/// Applies a write of `1` or `0` (`input`) to `attr`, the switch `what` of
/// the writer's namespace, with `set`, which returns whether it was on; a
/// change is logged.
fn store_switch(
    attr: ClassAttr,
    opener: &Opener<'_>,
    input: &[u8],
    what: &str,
    set: impl FnOnce(&Net, &Arc<NetState>, bool) -> Result<bool>,
) -> Result {
    let on = parse_switch(input).map_err(|e| invalid(attr, e))?;
    with_own_state(attr, opener, |net, state| {
        let was = set(net, state, on)?;
        if was != on && log_ratelimit() {
            pr_info!(
                "{} {} in network namespace {}\n",
                what,
                if on { "on" } else { "off" },
                net.inum()
            );
        }
        Ok(())
    })
}

/// Applies a write of `input` to `attr` through the file `opener`.
pub(crate) fn store(
    control: &Control,
    attr: ClassAttr,
    opener: &Opener<'_>,
    input: &[u8],
) -> Result {
    if input.len() > MAX_WRITE {
        return Err(too_long(attr, input.len()));
    }
    match attr {
        ClassAttr::On => store_switch(attr, opener, input, "capture", |net, state, on| {
            control.set_capture(net, state, on)
        }),
        ClassAttr::OuterDevs => {
            let devs = parse_dev_list(input).map_err(|e| invalid(attr, e))?;
            with_current_net(|net| {
                if !net.is_init() || !net.opener_capable(opener) {
                    return Err(denied(
                        attr,
                        "only CAP_NET_ADMIN in the initial network namespace may set it",
                    ));
                }
                control.set_outer_devs(devs);
                Ok(())
            })
            .ok_or(ENOENT)?
        }
        ClassAttr::TapEnd => {
            let end = parse_tap_end(input).map_err(|e| invalid(attr, e))?;
            with_own_state(attr, opener, |net, state| {
                if state.tap_end() != end && log_ratelimit() {
                    pr_info!(
                        "tap_end {} in network namespace {}\n",
                        end.name(),
                        net.inum()
                    );
                }
                state.set_tap_end(end);
                Ok(())
            })
        }
        ClassAttr::Breakdown => store_switch(attr, opener, input, "breakdown", |_, state, on| {
            control.set_breakdown(state, on)
        }),
        ClassAttr::Stats => Err(EPERM),
    }
}
