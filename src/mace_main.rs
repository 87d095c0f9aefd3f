// SPDX-License-Identifier: GPL-2.0

//! mace: Measure the Added Container Expense.
//!
//! Measures the latency a container host's network stack adds to every packet
//! a container sends or receives, so that measurements taken inside the
//! container can be corrected. On the host:
//!
//! ```text
//! insmod mace.ko outer_dev=eth0
//! ```
//!
//! Inside a container (a network namespace):
//!
//! ```text
//! echo 1 > /sys/class/mace/on
//! ping -c 10 198.18.0.1
//! cat /dev/mace
//! ```
//!
//! See `Documentation/mace.rst` for the interface and the design.

// The kernel side.
mod capture;
mod chardev;
mod ffi;
mod global;
mod netns;
mod sysfs;

// Core-only logic, compiled again by the host test crate (tests/host), for
// which its `pub` items are the public API.
#[allow(unreachable_pub)]
mod packet;
#[allow(unreachable_pub)]
mod params;
#[allow(unreachable_pub)]
mod parse;
#[allow(unreachable_pub)]
mod record;
#[allow(unreachable_pub)]
mod ring;
#[allow(unreachable_pub)]
mod table;
#[allow(unreachable_pub)]
mod text;

use kernel::prelude::*;

module! {
    type: Mace,
    name: "mace",
    author: "The mace developers",
    description: "Per-packet latency the host adds to container traffic",
    license: "GPL",
}

/// The loaded module: its registrations, in teardown order.
///
/// Fields drop in declaration order: first what lets users in (sysfs, the
/// device), then the per-namespace state, last the global state they all use.
struct Mace {
    _class: ffi::ClassRegistration,
    _misc: ffi::MiscRegistration,
    _pernet: ffi::PernetRegistration,
    _netdev: ffi::NetdevRegistration,
    _global: ffi::GlobalGuard,
}

impl kernel::Module for Mace {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let raw = ffi::raw_params();
        let params = params::Params::validate(
            raw.outer_dev,
            raw.table_size,
            raw.ring_size,
            raw.max_age_ms,
            raw.self_cost,
        )
        .map_err(|e| {
            pr_err!("{}\n", e);
            EINVAL
        })?;
        let global = ffi::GlobalGuard::install(global::Global::new(params)?)?;
        ffi::global().set_outer_devs(params.outer_devs);
        let netdev = ffi::NetdevRegistration::register()?;
        let pernet = ffi::PernetRegistration::register()?;
        let misc = ffi::MiscRegistration::register()?;
        let class = ffi::ClassRegistration::register()?;
        pr_info!(
            "loaded: outer_dev={} table_size={} ring_size={} max_age_ms={} self_cost={}\n",
            params.outer_devs,
            params.table_size,
            params.ring_size,
            params.max_age_ms,
            u8::from(params.self_cost)
        );
        if cfg!(mace_null_probes) {
            pr_warn!("built with MACE_NULL_PROBES=1: the probes do nothing (benchmark floor)\n");
        }
        Ok(Mace {
            _class: class,
            _misc: misc,
            _pernet: pernet,
            _netdev: netdev,
            _global: global,
        })
    }
}
