// SPDX-License-Identifier: GPL-2.0

//! The state mace keeps for each network namespace, and the registry of
//! namespaces that capture.
//!
//! The pernet operations (see `callbacks.rs`) give every namespace a
//! [`NetState`], those that exist when the module loads and those created
//! later; [`NET_STATE`] finds it again. A namespace's ring is allocated the
//! first time capture is switched on in it and kept, with whatever it holds,
//! until the namespace goes away, so that switching capture off does not
//! throw away unread lines.
//!
//! A packet on its way out carries no pointer to its namespace: the egress
//! table names the sender's namespace by a handle in the [`NsRegistry`], so
//! that a namespace that went away in between simply resolves to nothing.

#![deny(unsafe_code)]

use crate::counters::{bump, NetCounters};
use crate::ffi::mono_to_real_ns;
use crate::ffi::net::PernetKey;
use crate::ffi::sync::{OnceBox, RcuSlot, Retired};
use crate::ffi::tracepoint::ProbeCx;
use crate::parse::TapEnd;
use crate::record::{Direction, Record};
use crate::ring::{Ring, RingStats, Slot};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Where each namespace's [`NetState`] is found.
pub(crate) static NET_STATE: PernetKey<NetState> = PernetKey::new();

/// The ring of latency records of one namespace.
pub(crate) type RecordRing = Ring<KVVec<Slot>>;

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
    /// Whether packets only a packet socket reads end at the tap's stamp
    /// ([`TapEnd::Stamp`]) rather than at their reader's syscall return.
    tap_stamp: AtomicBool,
    /// The handle in the namespace registry; 0 before the first switch-on.
    handle: AtomicU64,
    /// The records, once capture was switched on.
    ring: OnceBox<RecordRing>,
    /// The counters.
    pub(crate) counters: NetCounters,
}

impl NetState {
    /// State of a new namespace: capture off, no ring.
    pub(crate) fn new(inum: u32) -> Result<Arc<Self>> {
        let state = Arc::new(
            Self {
                inum,
                enabled: AtomicBool::new(false),
                tap_stamp: AtomicBool::new(false),
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

    /// Where the windows of packets only a packet socket reads end.
    pub(crate) fn tap_end(&self) -> TapEnd {
        if self.tap_stamp.load(Ordering::Relaxed) {
            TapEnd::Stamp
        } else {
            TapEnd::Read
        }
    }

    /// Sets where the windows of packets only a packet socket reads end.
    pub(crate) fn set_tap_end(&self, end: TapEnd) {
        self.tap_stamp
            .store(end == TapEnd::Stamp, Ordering::Relaxed);
    }

    /// The handle in the namespace registry, 0 if none.
    pub(crate) fn handle(&self) -> u64 {
        self.handle.load(Ordering::Acquire)
    }

    /// The ring, if capture was ever on.
    pub(crate) fn ring(&self) -> Option<&RecordRing> {
        self.ring.get()
    }

    /// Allocates the ring of `ring_size` records if there is none yet.
    ///
    /// Called under the control mutex (`control.rs`), so at most one ring
    /// is ever allocated (and counted) per namespace.
    pub(crate) fn ensure_ring(&self, ring_size: u32) -> Result {
        self.ring.get_or_try_init(|| new_ring(ring_size))?;
        Ok(())
    }

    /// Records the latency of a window from `start` to `end` (both
    /// CLOCK_MONOTONIC), if capture is on: counts it as recorded and queues
    /// it with the wall-clock time of its end (a full ring counts the drop
    /// in the ring's stats). Returns whether it was recorded; if capture is
    /// off it is counted as such.
    pub(crate) fn report(&self, dir: Direction, start: u64, end: u64, pktid: u32) -> bool {
        let c = &self.counters;
        if !self.enabled() {
            bump(match dir {
                Direction::Egress => &c.egress_off,
                Direction::Ingress => &c.ingress_off,
            });
            return false;
        }
        bump(match dir {
            Direction::Egress => &c.egress,
            Direction::Ingress => &c.ingress,
        });
        let rec = Record {
            time_ns: mono_to_real_ns(end),
            latency_ns: end.saturating_sub(start),
            pktid,
            dir,
        };
        if let Some(ring) = self.ring() {
            // A failed push is counted by the ring itself.
            let _ = ring.push(&rec);
        }
        true
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

/// Most namespaces that can capture at once (since their last destruction).
pub(crate) const REGISTRY_SLOTS: usize = 4096;

/// The namespaces that ever captured, by handle.
///
/// A handle is a slot number plus a generation, never 0: a handle of a
/// namespace that is gone resolves to nothing, even once its slot is reused.
/// A namespace leaves the registry when it goes away (`pre_exit`); its
/// state is freed no earlier than an RCU grace period later, so probes that
/// resolved its handle before are done with it ([`RcuSlot`]).
pub(crate) struct NsRegistry {
    slots: KVVec<RcuSlot<NetState>>,
    generation: AtomicU32,
}

impl NsRegistry {
    /// An empty registry.
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVVec::with_capacity(REGISTRY_SLOTS, GFP_KERNEL)?;
        for _ in 0..REGISTRY_SLOTS {
            slots.push(RcuSlot::new(), GFP_KERNEL)?;
        }
        Ok(Self {
            slots,
            generation: AtomicU32::new(0),
        })
    }

    /// Gives `state` a handle (the one it has, or a new one); `ENOSPC` when
    /// every slot is taken.
    ///
    /// Called under the control mutex, so that a state is attached once.
    pub(crate) fn attach(&self, state: &Arc<NetState>) -> Result<u64> {
        let have = state.handle();
        if have != 0 {
            return Ok(have);
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.try_set(state.clone()).is_err() {
                continue;
            }
            let generation = self.generation.fetch_add(1, Ordering::Relaxed);
            let index = u64::try_from(i).map_err(|_| EINVAL)?.wrapping_add(1);
            let handle = u64::from(generation) << 32 | index;
            state.handle.store(handle, Ordering::Release);
            return Ok(handle);
        }
        Err(ENOSPC)
    }

    fn slot(&self, handle: u64) -> Option<&RcuSlot<NetState>> {
        let index = usize::try_from(handle & 0xffff_ffff).ok()?.checked_sub(1)?;
        self.slots.get(index)
    }

    /// Takes `state` out of the registry. Dropping the result waits for an
    /// RCU grace period (process context).
    pub(crate) fn detach(&self, state: &NetState) -> Option<Retired<NetState>> {
        self.slot(state.handle())?.clear_if(state)
    }

    /// The state of the namespace with `handle`, if it is still there.
    pub(crate) fn get<'a>(&'a self, cx: &'a ProbeCx<'_>, handle: u64) -> Option<&'a NetState> {
        let state = self.slot(handle)?.get(cx)?;
        (state.handle() == handle).then_some(state)
    }
}
