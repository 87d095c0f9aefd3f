// SPDX-License-Identifier: GPL-2.0

//! The sweep: work that probes defer to process context.
//!
//! A [`Sweep`] handler is registered once ([`SweepRegistration`]); a probe
//! asks for it to run a little later ([`schedule_sweep`]), and it runs on
//! the system workqueue, inside an RCU read-side critical section, for as
//! long as it asks to run again.

use super::sync::ProbeCx;
use super::{arc_data, sys, Claim};
use core::ffi::{c_uint, c_void};
use core::sync::atomic::AtomicBool;
use kernel::prelude::*;
use kernel::sync::Arc;

/// What the sweep does.
pub(crate) trait Sweep: Send + Sync + 'static {
    /// Runs in process context, inside an RCU read-side critical section
    /// (it must not sleep). Returns in how many milliseconds to run again,
    /// or 0 to wait for the next [`schedule_sweep`].
    fn sweep(&self, cx: &ProbeCx<'_>) -> u32;
}

/// Whether a [`SweepRegistration`] exists (the C side has one work item).
static SWEEP_BUSY: AtomicBool = AtomicBool::new(false);

/// The sweep, set up; dropping it stops the sweep and waits until it does
/// not run any more.
///
/// It must be dropped after every probe that schedules it is unregistered
/// (a later [`schedule_sweep`] would queue work nobody cancels): only probes
/// and the sweep itself can schedule it, since both need a [`ProbeCx`].
///
/// # Invariants
///
/// `_claim` holds `SWEEP_BUSY` while this value lives, and the C side calls
/// `T::sweep` with `handler` as data.
pub(crate) struct SweepRegistration<T: Sweep> {
    _handler: Arc<T>,
    _claim: Claim,
}

impl<T: Sweep> SweepRegistration<T> {
    const OPS: sys::mace_sweep_ops = sys::mace_sweep_ops {
        sweep: Some(sweep::<T>),
    };

    /// Sets the sweep up; fails with `EBUSY` while one exists.
    pub(crate) fn register(handler: Arc<T>) -> Result<Self> {
        let claim = Claim::take(&SWEEP_BUSY)?;
        // SAFETY: `OPS` is a static table whose callback matches the C type;
        // `handler` stays alive while `self` does, and dropping `self` waits
        // for the last run.
        let err = unsafe { sys::mace_sweep_register(&Self::OPS, arc_data(&handler)) };
        kernel::error::to_result(err)?;
        Ok(Self {
            _handler: handler,
            _claim: claim,
        })
    }
}

impl<T: Sweep> Drop for SweepRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered by `register`; process context.
        unsafe { sys::mace_sweep_unregister() };
    }
}

/// Runs the sweep in `ms` milliseconds, unless it is scheduled already.
///
/// Only a probe or the sweep itself (which hold a [`ProbeCx`]) schedule it,
/// so no schedule can follow the teardown of the probes.
pub(crate) fn schedule_sweep(_cx: &ProbeCx<'_>, ms: u32) {
    // SAFETY: Callable in any context; does nothing while no sweep is set up.
    unsafe { sys::mace_sweep_schedule(ms) };
}

/// # Safety
///
/// Called by the work item, in process context inside an RCU read-side
/// critical section, with the data `register` gave.
unsafe extern "C" fn sweep<T: Sweep>(data: *mut c_void) -> c_uint {
    // SAFETY: `data` is the `T` the registration keeps alive until the work
    // item is cancelled and done.
    let handler = unsafe { &*data.cast_const().cast::<T>() };
    // SAFETY: The C side holds `rcu_read_lock()` during the call.
    handler.sweep(&unsafe { ProbeCx::new() })
}
