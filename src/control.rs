// SPDX-License-Identifier: GPL-2.0

//! The control of capture: which namespaces capture, the probes that serve
//! them, and the outer devices.
//!
//! Switching a namespace's capture on or off, a namespace going away, and a
//! change of outer devices all go through here, serialized by mutexes. The
//! probes are registered when the first namespace switches capture on and
//! unregistered when the last one switches it off (or goes away), so that a
//! loaded but idle mace costs nothing. The waypoint probes of `breakdown`
//! likewise exist only while some namespace has it on, with the stamps
//! they write: without it, mace costs what it did before breakdown existed.

#![deny(unsafe_code)]

use crate::capture::Capture;
use crate::ffi::log_ratelimit;
use crate::ffi::net::Net;
use crate::ffi::sync::Retired;
use crate::ffi::tracepoint::{Hook, ProbeRegistration, WaypointRegistration};
use crate::ffi::work::SweepRegistration;
use crate::ffi::RealOffset;
use crate::netns::{NetState, RecordRing, NET_STATE, REGISTRY_SLOTS};
use crate::nsfilter::NsCounts;
use crate::params::Params;
use crate::parse::{DevList, MAX_OUTER_DEVS};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// The probes, the sweep they defer work to, and the timekeeper followed
/// for their records' wall-clock times.
///
/// Field order is drop order: the probes go first, since they schedule the
/// sweep; the timekeeper last, after everything that writes records (while
/// it is not followed, records are converted by C).
struct Probes {
    _probes: ProbeRegistration<Capture>,
    _sweep: SweepRegistration<Capture>,
    _real_offset: RealOffset,
}

impl Probes {
    fn register(capture: &Arc<Capture>) -> Result<Self> {
        let real_offset = RealOffset::register()?;
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
            _real_offset: real_offset,
        })
    }
}

/// Which namespaces capture, and the probes that serve them.
struct Switch {
    /// Namespaces with capture on.
    capturing: usize,
    /// The probes, registered while `capturing > 0`.
    probes: Option<Probes>,
    /// Namespaces with `breakdown` on.
    breaking_down: usize,
    /// The waypoint probes, registered while `breaking_down > 0`.
    waypoints: Option<WaypointRegistration<Capture>>,
    /// For each unprivileged user with namespaces that capture: the user
    /// (uid in the initial user namespace) and how many. An entry whose
    /// count fell to 0 is reused for the next user, so there are never more
    /// entries than users capturing at once (at most [`REGISTRY_SLOTS`]).
    users: KVVec<(u32, u32)>,
    /// The namespaces whose capture was ever on, counted on the slots of
    /// the probes' first filter (in [`NET_STATE`]): from just before their
    /// capture is first switched on until they go away.
    ns_counts: NsCounts,
}

impl Switch {
    /// How many namespaces capture that count against `uid`.
    fn user_count(&self, uid: u32) -> u32 {
        self.users
            .iter()
            .find(|(u, n)| *u == uid && *n > 0)
            .map_or(0, |(_, n)| *n)
    }

    /// Users with namespaces that capture.
    fn users(&self) -> usize {
        self.users.iter().filter(|(_, n)| *n > 0).count()
    }

    /// Counts one more namespace against `uid`.
    fn charge_user(&mut self, uid: u32) -> Result {
        let entry = match self.users.iter().position(|(u, n)| *u == uid && *n > 0) {
            Some(i) => self.users.get_mut(i),
            None => self.users.iter_mut().find(|(_, n)| *n == 0),
        };
        if let Some((u, n)) = entry {
            *u = uid;
            *n = n.saturating_add(1);
            return Ok(());
        }
        self.users.push((uid, 1), GFP_KERNEL)?;
        Ok(())
    }

    /// Counts one namespace less against `uid`.
    fn uncharge_user(&mut self, uid: u32) {
        if let Some((_, n)) = self.users.iter_mut().find(|(u, n)| *u == uid && *n > 0) {
            *n = n.saturating_sub(1);
        }
    }

    /// One namespace less captures: the probes go when none does.
    fn stopped(&mut self, state: &NetState) {
        if let Some(uid) = state.charged_uid() {
            self.uncharge_user(uid);
            state.set_charged_uid(None);
        }
        self.capturing = self.capturing.saturating_sub(1);
        if self.capturing == 0 {
            // Unregisters and waits for running probes.
            self.probes = None;
        }
    }
}

/// What a namespace let go of when its capture stopped: its registry slot
/// and its ring, freed when dropped, after a grace period (process context,
/// without the control's locks held).
#[must_use]
struct Released {
    _slot: Option<Retired<NetState>>,
    _ring: Option<Retired<RecordRing>>,
}

impl Released {
    /// Whether there is nothing to free.
    fn is_empty(&self) -> bool {
        self._slot.is_none() && self._ring.is_none()
    }
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
    retired: Mutex<KVVec<Released>>,
    /// The probes' tables and counters.
    pub(crate) capture: Arc<Capture>,
    /// The validated module parameters.
    pub(crate) params: Params,
}

impl Control {
    /// The control for `params`, with its outer devices resolved.
    pub(crate) fn new(params: Params) -> Result<Arc<Self>> {
        let capture = Arc::new(Capture::new(&params)?, GFP_KERNEL)?;
        let control = Arc::pin_init(
            pin_init!(Self {
                switch <- new_mutex!(
                    Switch {
                        capturing: 0,
                        probes: None,
                        breaking_down: 0,
                        waypoints: None,
                        users: KVVec::new(),
                        ns_counts: NsCounts::new(),
                    },
                    "mace_switch"
                ),
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

    /// Switches capture of the namespace `net` with `state` on or off;
    /// returns whether it was on.
    ///
    /// Switching on counts the namespace against the user who created its
    /// user namespaces (`EDQUOT` past `max_netns_per_user`), takes a
    /// registry slot (`ENOSPC` when all are taken), then allocates the ring,
    /// charged to the caller's memory cgroup; a failure at any step undoes
    /// the steps before it. Switching off lets go of slot and ring.
    pub(crate) fn set_capture(&self, net: &Net, state: &Arc<NetState>, on: bool) -> Result<bool> {
        let released;
        {
            let mut switch = self.switch.lock();
            if on == state.enabled() {
                return Ok(on);
            }
            if on {
                self.start(&mut switch, net, state)?;
                return Ok(false);
            }
            state.set_enabled(false);
            switch.stopped(state);
            released = self.release(state);
        }
        // Waits for a grace period, with no lock held.
        drop(released);
        Ok(true)
    }

    /// Sets whether the namespace with `state` breaks its latencies down;
    /// returns whether it did.
    ///
    /// The first namespace to switch it on allocates the waypoints' stamps
    /// and registers the waypoint probes (an error undoes both and leaves
    /// it off); the last to switch it off (or to go away) unregisters them,
    /// and the stamps are freed after a grace period.
    pub(crate) fn set_breakdown(&self, state: &NetState, on: bool) -> Result<bool> {
        let retired;
        {
            let mut switch = self.switch.lock();
            if on == state.breakdown() {
                return Ok(on);
            }
            if on {
                let first = switch.waypoints.is_none();
                if first {
                    self.capture.attach_waypoints()?;
                    match WaypointRegistration::register(self.capture.clone()) {
                        Ok(r) => switch.waypoints = Some(r),
                        Err(e) => {
                            drop(self.capture.detach_waypoints());
                            return Err(e);
                        }
                    }
                }
                // Then the namespace's segment histograms: if they cannot
                // be had, nothing stays changed.
                if let Err(e) = state.alloc_segment_hists() {
                    if first {
                        switch.waypoints = None;
                        drop(self.capture.detach_waypoints());
                    }
                    return Err(e);
                }
                switch.breaking_down = switch.breaking_down.saturating_add(1);
                state.set_breakdown(true);
                return Ok(false);
            }
            retired = self.breakdown_stopped(&mut switch, state);
        }
        // Waits for a grace period, with no lock held.
        drop(retired);
        Ok(true)
    }

    /// The namespace with `state` no longer breaks its latencies down: the
    /// waypoint probes go when none does, and their stamps are returned, to
    /// be dropped without the lock held.
    fn breakdown_stopped(
        &self,
        switch: &mut Switch,
        state: &NetState,
    ) -> Option<Retired<crate::capture::WaypointStamps>> {
        if !state.set_breakdown(false) {
            return None;
        }
        switch.breaking_down = switch.breaking_down.saturating_sub(1);
        if switch.breaking_down > 0 {
            return None;
        }
        // Unregisters and waits for running probes.
        switch.waypoints = None;
        self.capture.detach_waypoints()
    }

    /// Switches capture on in `net` with `state` (see [`Self::set_capture`]).
    fn start(&self, switch: &mut Switch, net: &Net, state: &Arc<NetState>) -> Result {
        let uid = net.owner_uid();
        if let Some(uid) = uid {
            let (max, count) = (self.params.max_netns_per_user, switch.user_count(uid));
            if count >= max {
                if log_ratelimit() {
                    pr_warn!(
                        "cannot capture in network namespace {}: user {} already captures in {} network namespaces (max_netns_per_user={})\n",
                        state.inum(),
                        uid,
                        count,
                        max
                    );
                }
                return Err(crate::ffi::edquot());
            }
        }
        self.capture.registry.attach(state).inspect_err(|_| {
            if log_ratelimit() {
                pr_err!(
                    "cannot capture in network namespace {}: {} namespaces already capture\n",
                    state.inum(),
                    REGISTRY_SLOTS
                );
            }
        })?;
        let started = state
            .install_ring(self.params.ring_size)
            .and_then(|()| {
                if switch.probes.is_none() {
                    switch.probes = Some(Probes::register(&self.capture)?);
                }
                Ok(())
            })
            .and_then(|()| uid.map_or(Ok(()), |uid| switch.charge_user(uid)));
        if let Err(e) = started {
            if log_ratelimit() {
                pr_err!(
                    "cannot capture in network namespace {}: error {}\n",
                    state.inum(),
                    e.to_errno()
                );
            }
            // Nothing is kept (dropping waits for a grace period).
            drop(self.release(state));
            if switch.capturing == 0 {
                switch.probes = None;
            }
            return Err(e);
        }
        state.set_charged_uid(uid);
        switch.capturing = switch.capturing.saturating_add(1);
        if !state.was_on() {
            // Before the switch: a probe that sees capture on passes the
            // first filter. Set as long as the namespace lives, since the
            // probes clean up after a capture that was on.
            NET_STATE.filter_add(&mut switch.ns_counts, net);
        }
        state.set_enabled(true);
        Ok(())
    }

    /// Takes the slot and the ring of `state`, whose capture is off.
    fn release(&self, state: &NetState) -> Released {
        Released {
            _slot: self.capture.registry.detach(state),
            _ring: state.take_ring(),
        }
    }

    /// The namespace `net` with `state` is going away: stop its capture,
    /// take it out of the registry (waiting for the probes that may still
    /// use it) and out of the probes' first filter.
    pub(crate) fn net_pre_exit(&self, net: &Net, state: &NetState) {
        let (released, waypoints) = {
            let mut switch = self.switch.lock();
            if state.set_enabled(false) {
                switch.stopped(state);
            }
            if state.was_on() && !NET_STATE.filter_remove(&mut switch.ns_counts, net, state) {
                pr_warn!(
                    "network namespace {} was not counted in the probes' filter\n",
                    state.inum()
                );
            }
            (
                self.release(state),
                self.breakdown_stopped(&mut switch, state),
            )
        };
        drop(waypoints);
        if released.is_empty() {
            return;
        }
        // Let go after the batch's grace period, not one for each namespace.
        // If the list cannot grow, `push` drops them at once, which waits.
        let _ = self.retired.lock().push(released, GFP_KERNEL);
    }

    /// A grace period elapsed since the last namespaces' `pre_exit`: let go
    /// of the states they left the registry with (no wait any more).
    pub(crate) fn net_exit_batch(&self) {
        // Swapped out so that the states are dropped without the lock held.
        let mut retired = KVVec::new();
        core::mem::swap(&mut retired, &mut *self.retired.lock());
        drop(retired);
    }

    /// Namespaces that capture, and unprivileged users with namespaces
    /// that capture.
    pub(crate) fn capturing(&self) -> (usize, usize) {
        let switch = self.switch.lock();
        (switch.capturing, switch.users())
    }

    /// Namespaces with `breakdown` on, and whether the waypoint probes are
    /// registered.
    pub(crate) fn breaking_down(&self) -> (usize, bool) {
        let switch = self.switch.lock();
        (switch.breaking_down, switch.waypoints.is_some())
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
    ///
    /// An outer device given by ifindex that goes away leaves the list:
    /// another device could take its ifindex later and must not become an
    /// outer device unasked. One given by name stays, and is whichever
    /// device has that name.
    pub(crate) fn outer_devs_changed(&self, gone: i32) {
        let mut devs = self.outer_devs.lock();
        if let Ok(index) = u32::try_from(gone) {
            let (kept, removed) = devs.without_index(index);
            if removed {
                pr_info!(
                    "outer device {}: unregistered, removed from outer_devs\n",
                    index
                );
                *devs = kept;
            }
        }
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
