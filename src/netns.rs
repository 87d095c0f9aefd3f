// SPDX-License-Identifier: GPL-2.0

//! The state mace keeps for each network namespace.
//!
//! The pernet operations (see [`crate::ffi::PernetRegistration`]) create a
//! [`NetState`] for every namespace, those that exist when the module loads
//! and those created later, and free it when the namespace is destroyed or the
//! module unloads. A namespace's ring is allocated the first time capture is
//! switched on in it and kept, with whatever it holds, until the namespace
//! goes away, so that switching capture off does not throw away unread lines.
//!
//! Switching capture on and off goes through [`crate::global::Global`], which
//! also registers the probes while at least one namespace captures.

use crate::ffi::OnceBox;
use crate::record::Record;
use crate::ring::{Ring, RingStats, Slot};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;

/// The ring of latency records of one namespace.
pub(crate) type RecordRing = Ring<KVVec<Slot>>;

/// Counters of one namespace, shown in its `/sys/class/mace/stats`.
#[derive(Default)]
pub(crate) struct NetCounters {
    /// Egress latencies recorded.
    pub(crate) egress: AtomicU64,
    /// Ingress latencies recorded.
    pub(crate) ingress: AtomicU64,
    /// Packets sent by syscalls and stored to await an outer device.
    pub(crate) egress_sent: AtomicU64,
    /// Sent packets found on an outer device too late (older than max_age).
    pub(crate) egress_expired: AtomicU64,
    /// Sent packets whose key another sent packet had.
    pub(crate) egress_collisions: AtomicU64,
    /// Received packets found by a receiving syscall too late.
    pub(crate) ingress_expired: AtomicU64,
    /// Received packets whose key another received packet had.
    pub(crate) ingress_collisions: AtomicU64,
    /// Received packets not reported: the syscall failed, or it returned
    /// more than `MAX_PENDING` of them.
    pub(crate) ingress_unreported: AtomicU64,
}

/// Per-namespace states alive, shown as `host_netns_states`.
static LIVE_STATES: AtomicUsize = AtomicUsize::new(0);
/// Rings allocated, shown as `host_rings`.
static LIVE_RINGS: AtomicUsize = AtomicUsize::new(0);

/// The number of per-namespace states and of rings alive, so that tests can
/// see that namespaces that went away took their memory with them.
pub(crate) fn live_counts() -> (usize, usize) {
    (
        LIVE_STATES.load(Ordering::Relaxed),
        LIVE_RINGS.load(Ordering::Relaxed),
    )
}

/// Per-network-namespace state.
pub(crate) struct NetState {
    /// The namespace's inode number, for log messages.
    inum: u32,
    /// Whether capture is on.
    enabled: AtomicBool,
    /// The handle in the namespace registry; 0 before the first switch-on.
    handle: AtomicU64,
    /// The records, once capture was switched on.
    ring: OnceBox<RecordRing>,
    /// The counters.
    pub(crate) counters: NetCounters,
}

impl NetState {
    /// State of a new namespace: capture off, no ring.
    pub(crate) fn new(inum: u32) -> Result<KBox<Self>> {
        let state = KBox::new(
            Self {
                inum,
                enabled: AtomicBool::new(false),
                handle: AtomicU64::new(0),
                ring: OnceBox::new(),
                counters: NetCounters::default(),
            },
            GFP_KERNEL,
        )?;
        LIVE_STATES.fetch_add(1, Ordering::Relaxed);
        Ok(state)
    }

    /// The namespace's inode number.
    pub(crate) fn inum(&self) -> u32 {
        self.inum
    }

    /// Whether capture is on.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Sets the capture flag; returns the previous value. The ring must
    /// exist before capture is switched on ([`Self::ensure_ring`]).
    pub(crate) fn set_enabled(&self, on: bool) -> bool {
        self.enabled.swap(on, Ordering::AcqRel)
    }

    /// The handle in the namespace registry, 0 if none.
    pub(crate) fn handle(&self) -> u64 {
        self.handle.load(Ordering::Acquire)
    }

    /// Sets the registry handle if there is none yet; otherwise returns the
    /// one there is.
    pub(crate) fn claim_handle(&self, handle: u64) -> Result<(), u64> {
        self.handle
            .compare_exchange(0, handle, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// The ring, if capture was ever on.
    pub(crate) fn ring(&self) -> Option<&RecordRing> {
        self.ring.get()
    }

    /// Allocates the ring of `ring_size` records if there is none yet.
    ///
    /// Called under the control mutex of [`crate::global::Global`], so at most
    /// one ring is ever allocated (and counted) per namespace.
    pub(crate) fn ensure_ring(&self, ring_size: u32) -> Result {
        self.ring.get_or_try_init(|| new_ring(ring_size))?;
        Ok(())
    }

    /// Queues a record; a full ring counts the drop in the ring's stats.
    pub(crate) fn record(&self, rec: &Record) {
        if let Some(ring) = self.ring() {
            // A failed push is counted by the ring itself.
            let _ = ring.push(rec);
        }
    }

    /// Counters of the ring (all zero before the first switch-on).
    pub(crate) fn ring_stats(&self) -> RingStats {
        self.ring().map(Ring::stats).unwrap_or_default()
    }
}

/// Allocates a ring of `size` records (a power of two).
fn new_ring(size: u32) -> Result<KBox<RecordRing>> {
    let size = usize::try_from(size)?;
    let mut slots = KVVec::with_capacity(size, GFP_KERNEL)?;
    for _ in 0..size {
        slots.push(Slot::new(), GFP_KERNEL)?;
    }
    let ring = Ring::new(slots).map_err(|_| EINVAL)?;
    let ring = KBox::new(ring, GFP_KERNEL)?;
    LIVE_RINGS.fetch_add(1, Ordering::Relaxed);
    Ok(ring)
}

impl Drop for NetState {
    fn drop(&mut self) {
        LIVE_STATES.fetch_sub(1, Ordering::Relaxed);
        if self.ring().is_some() {
            LIVE_RINGS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
