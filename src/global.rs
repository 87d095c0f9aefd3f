// SPDX-License-Identifier: GPL-2.0

//! The module's global state, and the control of capture.
//!
//! Switching a namespace's capture on or off, a namespace going away, and a
//! change of outer devices all go through here, serialized by mutexes. The
//! probes are registered when the first namespace switches capture on and
//! unregistered when the last one switches it off (or goes away), so that a
//! loaded but idle mace costs nothing.

use crate::capture::Capture;
use crate::ffi::{self, Net, Probes};
use crate::params::Params;
use crate::parse::{DevList, MAX_OUTER_DEVS};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Which namespaces capture, and the probes that serve them.
struct Control {
    /// Namespaces with capture on.
    capturing: usize,
    /// The probes, registered while `capturing > 0`.
    probes: Option<Probes>,
}

/// State shared by all namespaces, alive from load to unload.
///
/// Field order is drop order: the probes go before the tables they use.
#[pin_data]
pub(crate) struct Global {
    /// Capture control.
    #[pin]
    control: Mutex<Control>,
    /// The outer devices as configured (parameter, then sysfs writes).
    #[pin]
    outer_devs: Mutex<DevList>,
    /// The probes' tables and counters.
    pub(crate) capture: Capture,
    /// The validated module parameters.
    pub(crate) params: Params,
}

impl Global {
    /// The global state for `params`.
    pub(crate) fn new(params: Params) -> Result<Pin<KBox<Self>>> {
        let capture = Capture::new(params.table_size, params.max_age_ms, params.self_cost)?;
        KBox::pin_init(
            pin_init!(Self {
                control <- new_mutex!(Control { capturing: 0, probes: None }, "mace_control"),
                outer_devs <- new_mutex!(params.outer_devs, "mace_outer_devs"),
                capture,
                params,
            }),
            GFP_KERNEL,
        )
    }

    /// Switches capture of `net` on or off; returns whether it was on.
    pub(crate) fn set_capture(&self, net: &Net, on: bool) -> Result<bool> {
        let state = net.state();
        let mut control = self.control.lock();
        if on == state.enabled() {
            return Ok(on);
        }
        if on {
            state.ensure_ring(self.params.ring_size)?;
            self.capture.registry.attach(net).inspect_err(|_| {
                pr_err!(
                    "cannot capture in network namespace {}: {} namespaces already capture\n",
                    state.inum(),
                    ffi::REGISTRY_SLOTS
                );
            })?;
            if control.probes.is_none() {
                control.probes = Some(Probes::register()?);
            }
            control.capturing = control.capturing.saturating_add(1);
        } else {
            control.capturing = control.capturing.saturating_sub(1);
            if control.capturing == 0 {
                // Unregisters and waits for running probes.
                control.probes = None;
            }
        }
        Ok(state.set_enabled(on))
    }

    /// `net` is going away: stop its capture.
    pub(crate) fn net_pre_exit(&self, net: &Net) {
        if net.state().enabled() {
            // Switching off cannot fail.
            let _ = self.set_capture(net, false);
        }
    }

    /// The configured outer devices.
    pub(crate) fn outer_devs(&self) -> DevList {
        *self.outer_devs.lock()
    }

    /// Configures the outer devices and resolves them.
    pub(crate) fn set_outer_devs(&self, devs: DevList) {
        let mut cur = self.outer_devs.lock();
        *cur = devs;
        let resolved = self.capture.outer.resolve(&devs, 0);
        log_outer(&devs, &resolved);
    }

    /// A device of the initial namespace appeared, was renamed, or (when
    /// `gone` is its ifindex) is going away: resolve the names again.
    pub(crate) fn outer_devs_changed(&self, gone: i32) {
        let devs = self.outer_devs.lock();
        let before = self.capture.outer.snapshot();
        let after = self.capture.outer.resolve(&devs, gone);
        if before != after {
            log_outer(&devs, &after);
        }
    }
}

/// Logs the outer devices and what they resolved to.
fn log_outer(devs: &DevList, resolved: &[i32; MAX_OUTER_DEVS]) {
    for (dev, ifindex) in devs.as_slice().iter().zip(resolved.iter()) {
        if *ifindex == 0 {
            pr_info!("outer device {}: not present\n", dev);
        } else {
            pr_info!("outer device {}: ifindex {}\n", dev, ifindex);
        }
    }
    if devs.is_empty() {
        pr_info!("no outer devices\n");
    }
}
