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
//! See `Documentation/mace.rst` for the interface and the design. The layers,
//! top down (no module imports one above it):
//!
//! ```text
//! mace_main                 the module: parameters, registrations
//! probes, callbacks         where C calls in: tracepoints; pernet, file,
//!                           sysfs and device callbacks
//! control, sysfs, chardev,  capture switch and outer devices; the files
//! histdev
//! capture/{egress,ingress}  the probes' logic, one path each
//! netns                     per-namespace state, registry of namespaces
//! ffi/                      the kernel layer: all unsafe, all version
//!                           differences, safe types over C objects
//! packet, entry, table,     core-only logic, also compiled and tested
//! fifo, ring, record, hist, on the host (tests/host)
//! counters, parse, params,
//! cpuslot, bufnote, text,
//! tapread
//! ```

#![deny(unsafe_code)]

// Where C calls in.
mod callbacks;
mod probes;

// The module's logic.
mod capture;
mod chardev;
mod control;
mod histdev;
mod netns;
mod sysfs;

// The kernel layer.
mod ffi;

// Core-only logic, compiled again by the host test crate (tests/host), for
// which its `pub` items are the public API.
#[allow(unreachable_pub)]
mod bufnote;
#[allow(unreachable_pub)]
mod counters;
#[allow(unreachable_pub)]
mod cpuslot;
#[allow(unreachable_pub)]
mod entry;
#[allow(unreachable_pub)]
mod fifo;
#[allow(unreachable_pub)]
mod hist;
#[allow(unreachable_pub)]
mod nsfilter;
#[allow(unreachable_pub)]
mod packet;
#[allow(unreachable_pub)]
mod params;
#[allow(unreachable_pub)]
mod parse;
#[allow(unreachable_pub)]
mod peers;
#[allow(unreachable_pub)]
mod record;
#[allow(unreachable_pub)]
mod ring;
#[allow(unreachable_pub)]
mod stamps;
#[allow(unreachable_pub)]
mod table;
#[allow(unreachable_pub)]
mod tapread;
#[allow(unreachable_pub)]
mod text;

use chardev::Reader;
use control::Control;
use ffi::class::ClassRegistration;
use ffi::file::MiscRegistration;
use ffi::net::PernetRegistration;
use ffi::netdev::NetdevRegistration;
use histdev::HistReader;
use kernel::prelude::*;
use kernel::sync::Arc;

// No `author`: 6.12 names one `author` and later kernels a list of
// `authors`; the field is optional in both.
module! {
    type: Mace,
    name: "mace",
    description: "Per-packet latency the host adds to container traffic",
    license: "GPL",
}

/// The loaded module: its registrations, in teardown order.
///
/// Fields drop in declaration order: first what lets users in (sysfs, the
/// devices), then the per-namespace states (whose `pre_exit` switches every
/// namespace's capture off, which unregisters the probes), then the device
/// notifier, last the control they all share.
struct Mace {
    _class: ClassRegistration<Control>,
    _misc: MiscRegistration<Reader>,
    _hist: MiscRegistration<HistReader>,
    _pernet: PernetRegistration<Control>,
    _netdev: NetdevRegistration<Control>,
    _control: Arc<Control>,
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
            raw.max_netns_per_user,
            raw.peer_window_ms,
        )
        .map_err(|e| {
            // `format_args!`: what `pr_*!` formats must be the `kernel`
            // crate's Display on newer kernels, core's on 6.12; both
            // take `Arguments`.
            pr_err!("{}\n", format_args!("{e}"));
            EINVAL
        })?;
        ffi::task::init()?;
        let control = Control::new(params)?;
        let netdev = NetdevRegistration::register(control.clone())?;
        let pernet = PernetRegistration::register(control.clone())?;
        let misc = MiscRegistration::register(Arc::new((), GFP_KERNEL)?)?;
        let hist = MiscRegistration::register(control.clone())?;
        let class = ClassRegistration::register(control.clone())?;
        pr_info!(
            "loaded: outer_dev={} table_size={} ring_size={} max_age_ms={} self_cost={} max_netns_per_user={} peer_window_ms={}\n",
            format_args!("{}", params.outer_devs),
            params.table_size,
            params.ring_size,
            params.max_age_ms,
            u8::from(params.self_cost),
            params.max_netns_per_user,
            params.peer_window_ms
        );
        // Where the probes follow sends and receives, as the capture chose.
        match control.capture.syscall_hooks {
            ffi::SyscallHooks::SocketCalls => {
                pr_info!("sends and receives are followed on the socket calls\n");
            }
            ffi::SyscallHooks::Tracepoints { asked: true } => {
                pr_info!("sends and receives are followed on sys_enter and sys_exit (syscall_tracepoints=1)\n");
            }
            ffi::SyscallHooks::Tracepoints { asked: false } => {
                pr_notice!("sends and receives are followed on sys_enter and sys_exit: this kernel lacks the socket calls' hooks (x86-64, the function tracer with arguments, sock_recv_length)\n");
            }
        }
        if cfg!(mace_no_hist) {
            pr_warn!(
                "built with MACE_NO_HIST=1: no latency is counted in /dev/mace-hist (benchmark)\n"
            );
        }
        if cfg!(mace_null_probes) {
            pr_warn!("built with MACE_NULL_PROBES=1: the probes do nothing (benchmark floor)\n");
        }
        Ok(Mace {
            _class: class,
            _misc: misc,
            _hist: hist,
            _pernet: pernet,
            _netdev: netdev,
            _control: control,
        })
    }
}
