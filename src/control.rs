// SPDX-License-Identifier: GPL-2.0

//! The control of capture: which namespaces capture, the probes that serve
//! them, and the outer devices.
//!
//! Switching a namespace's capture on or off, a namespace going away, and a
//! change of outer devices all go through here, serialized by mutexes. The
//! probes are registered when the first namespace switches capture on and
//! unregistered when the last one switches it off (or goes away), so that a
//! loaded but idle mace costs nothing.

#![deny(unsafe_code)]

use crate::capture::Capture;
use crate::ffi::sync::Retired;
use crate::ffi::tracepoint::{Hook, ProbeRegistration};
use crate::ffi::work::SweepRegistration;
use crate::netns::{NetState, REGISTRY_SLOTS};
use crate::params::Params;
use crate::parse::{DevList, MAX_OUTER_DEVS};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// The probes and the sweep they defer work to.
///
/// Field order is drop order: the probes go first, since they schedule the
/// sweep.
struct Probes {
    _probes: ProbeRegistration<Capture>,
    _sweep: SweepRegistration<Capture>,
}

impl Probes {
    fn register(capture: &Arc<Capture>) -> Result<Self> {
        let sweep = SweepRegistration::register(capture.clone())?;
        let probes = ProbeRegistration::register(capture.clone())?;
        capture.set_sees_packet_readers(
            probes.attached(Hook::PacketPoll)
                && probes.attached(Hook::PacketRecvmsg)
                && probes.attached(Hook::SkDataReady),
        );
        Ok(Self {
            _probes: probes,
            _sweep: sweep,
        })
    }
}

/// Which namespaces capture, and the probes that serve them.
struct Switch {
    /// Namespaces with capture on.
    capturing: usize,
    /// The probes, registered while `capturing > 0`.
    probes: Option<Probes>,
}

/// State shared by all namespaces, alive from load to unload.
#[pin_data]
pub(crate) struct Control {
    /// Capture switches and the probes.
    #[pin]
    switch: Mutex<Switch>,
    /// The outer devices as configured (parameter, then sysfs writes).
    #[pin]
    outer_devs: Mutex<DevList>,
    /// States of namespaces that left the registry in their `pre_exit`, let
    /// go after the grace period of their batch (so that a dying namespace
    /// does not wait for one of its own).
    #[pin]
    retired: Mutex<KVVec<Retired<NetState>>>,
    /// The probes' tables and counters.
    pub(crate) capture: Arc<Capture>,
    /// The validated module parameters.
    pub(crate) params: Params,
}

impl Control {
    /// The control for `params`, with its outer devices resolved.
    pub(crate) fn new(params: Params) -> Result<Arc<Self>> {
        let capture = Arc::new(
            Capture::new(params.table_size, params.max_age_ms, params.self_cost)?,
            GFP_KERNEL,
        )?;
        let control = Arc::pin_init(
            pin_init!(Self {
                switch <- new_mutex!(Switch { capturing: 0, probes: None }, "mace_switch"),
                outer_devs <- new_mutex!(params.outer_devs, "mace_outer_devs"),
                retired <- new_mutex!(KVVec::new(), "mace_retired"),
                capture,
                params,
            }),
            GFP_KERNEL,
        )?;
        control.set_outer_devs(params.outer_devs);
        Ok(control)
    }

    /// Switches capture of the namespace with `state` on or off; returns
    /// whether it was on.
    pub(crate) fn set_capture(&self, state: &Arc<NetState>, on: bool) -> Result<bool> {
        let mut switch = self.switch.lock();
        if on == state.enabled() {
            return Ok(on);
        }
        if on {
            state.ensure_ring(self.params.ring_size)?;
            self.capture.registry.attach(state).inspect_err(|_| {
                pr_err!(
                    "cannot capture in network namespace {}: {} namespaces already capture\n",
                    state.inum(),
                    REGISTRY_SLOTS
                );
            })?;
            if switch.probes.is_none() {
                switch.probes = Some(Probes::register(&self.capture)?);
            }
            switch.capturing = switch.capturing.saturating_add(1);
        } else {
            switch.capturing = switch.capturing.saturating_sub(1);
            if switch.capturing == 0 {
                // Unregisters and waits for running probes.
                switch.probes = None;
            }
        }
        Ok(state.set_enabled(on))
    }

    /// The namespace with `state` is going away: stop its capture and take
    /// it out of the registry (waiting for the probes that may still use
    /// it).
    pub(crate) fn net_pre_exit(&self, state: &NetState) {
        {
            let mut switch = self.switch.lock();
            if state.set_enabled(false) {
                switch.capturing = switch.capturing.saturating_sub(1);
                if switch.capturing == 0 {
                    switch.probes = None;
                }
            }
        }
        if let Some(retired) = self.capture.registry.detach(state) {
            // Let go after the batch's grace period. If the list cannot grow,
            // `push` drops it at once, which waits for a grace period.
            let _ = self.retired.lock().push(retired, GFP_KERNEL);
        }
    }

    /// A grace period elapsed since the last namespaces' `pre_exit`: let go
    /// of the states they left the registry with (no wait any more).
    pub(crate) fn net_exit_batch(&self) {
        // Swapped out so that the states are dropped without the lock held.
        let mut retired = KVVec::new();
        core::mem::swap(&mut retired, &mut *self.retired.lock());
        drop(retired);
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
            pr_info!("outer device {}: not present\n", format_args!("{dev}"));
        } else {
            pr_info!(
                "outer device {}: ifindex {}\n",
                format_args!("{dev}"),
                ifindex
            );
        }
    }
    if devs.is_empty() {
        pr_info!("no outer devices\n");
    }
}
