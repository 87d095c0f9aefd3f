// SPDX-License-Identifier: GPL-2.0

//! The state mace keeps for each network namespace, and the registry of
//! namespaces that capture.
//!
//! The pernet operations (see `callbacks.rs`) give every namespace a
//! [`NetState`], those that exist when the module loads and those created
//! later; [`NET_STATE`] finds it again. A namespace's ring is allocated when
//! capture is switched on in it, after its registry slot is taken, and both
//! are let go when capture is switched off (lines not read by then are
//! dropped) or the namespace goes away, after an RCU grace period. Every
//! allocation is charged to the memory cgroup of the task that causes it
//! (`GFP_KERNEL_ACCOUNT`): the namespace's creator for its state, whoever
//! switches capture on for the ring.
//!
//! A packet on its way out carries no pointer to its namespace: the egress
//! table names the sender's namespace by a handle in the [`NsRegistry`], so
//! that a namespace that went away in between simply resolves to nothing.

#![deny(unsafe_code)]

use crate::counters::{add, bump, NetCounters};
use crate::ffi::mono_to_real_ns;
use crate::ffi::net::{OfNet, PernetKey};
use crate::ffi::sync::{RcuSlot, Retired};
use crate::ffi::tracepoint::ProbeCx;
use crate::hist::{Histogram, SegmentHistograms};
use crate::parse::TapEnd;
use crate::record::{Direction, Record, Segments};
use crate::ring::{Ring, RingStats, Slot};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Where each namespace's [`NetState`] is found.
pub(crate) static NET_STATE: PernetKey<NetState> = PernetKey::new();

/// The ring of latency records of one namespace, and where its counters go
/// when it is freed.
pub(crate) struct RecordRing {
    ring: Ring<KVVec<Slot>>,
    totals: Arc<RingTotals>,
}

impl core::ops::Deref for RecordRing {
    type Target = Ring<KVVec<Slot>>;

    fn deref(&self) -> &Self::Target {
        &self.ring
    }
}

impl Drop for RecordRing {
    fn drop(&mut self) {
        // The last reference: no probe or reader uses the ring any more, so
        // its counters are final.
        self.totals.add(&self.ring.stats(), self.ring.len());
        LIVE_RINGS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The counters of the rings a namespace had and let go of, so that its
/// `ring_*` counters add up over every switch on and off.
#[derive(Default)]
pub(crate) struct RingTotals {
    pushed: AtomicU64,
    popped: AtomicU64,
    full: AtomicU64,
    busy: AtomicU64,
    /// Records still queued when their ring was freed.
    discarded: AtomicU64,
}

impl RingTotals {
    fn add(&self, s: &RingStats, queued: usize) {
        add(&self.pushed, s.pushed);
        add(&self.popped, s.popped);
        add(&self.full, s.full);
        add(&self.busy, s.busy);
        add(&self.discarded, queued as u64);
    }
}

/// The ring counters of a namespace: those of its rings so far.
#[derive(Default, Clone, Copy)]
pub(crate) struct RingCounters {
    /// Records pushed, popped, dropped (full, busy).
    pub(crate) stats: RingStats,
    /// Records still queued when their ring was freed (capture off).
    pub(crate) discarded: u64,
    /// Capacity of the ring now (0: none).
    pub(crate) size: usize,
    /// Records queued now.
    pub(crate) queued: usize,
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
    /// The address of the namespace ([`crate::ffi::net::Net::addr`]).
    net: u64,
    /// Whether capture is on.
    enabled: AtomicBool,
    /// Whether packets only a packet socket reads end at the tap's stamp
    /// ([`TapEnd::Stamp`]) rather than at their reader's syscall return.
    tap_stamp: AtomicBool,
    /// Whether it has a ring reader ([`Self::ring_reader`]).
    ring_reader: AtomicBool,
    /// Whether capture was ever on, so that the probes clean up after it.
    was_on: AtomicBool,
    /// When capture was last switched on (monotonic ns): a send that
    /// started before is not followed ([`Self::on_since`]).
    on_since: AtomicU64,
    /// Whether its latencies are broken down into segments (`breakdown`).
    breakdown: AtomicBool,
    /// The handle in the namespace registry while capture is on; 0 if none.
    handle: AtomicU64,
    /// The user this namespace's capture counts against
    /// (`max_netns_per_user`) while it is on; `NO_USER` if none.
    charged_uid: AtomicU64,
    /// The records, while capture is on.
    ring: RcuSlot<RecordRing>,
    /// The counters of the rings let go of.
    ring_totals: Arc<RingTotals>,
    /// The counters.
    pub(crate) counters: NetCounters,
    /// The egress latencies recorded, in buckets.
    egress_hist: Histogram,
    /// The ingress latencies recorded, in buckets.
    ingress_hist: Histogram,
    /// The segments of the latencies recorded with `breakdown` on, in
    /// buckets: allocated when the namespace first switches it on, kept as
    /// long as the namespace.
    segment_hists: RcuSlot<SegmentHistograms>,
}

impl OfNet for NetState {
    #[inline(always)]
    fn net_addr(&self) -> u64 {
        self.net
    }
}

impl NetState {
    /// State of a new namespace (number `inum`, at `net`): capture off,
    /// no ring.
    pub(crate) fn new(inum: u32, net: u64) -> Result<Arc<Self>> {
        let state = Arc::new(
            Self {
                inum,
                net,
                enabled: AtomicBool::new(false),
                tap_stamp: AtomicBool::new(false),
                ring_reader: AtomicBool::new(false),
                was_on: AtomicBool::new(false),
                on_since: AtomicU64::new(0),
                breakdown: AtomicBool::new(false),
                handle: AtomicU64::new(0),
                charged_uid: AtomicU64::new(NO_USER),
                ring: RcuSlot::new(),
                ring_totals: Arc::new(RingTotals::default(), GFP_KERNEL_ACCOUNT)?,
                counters: NetCounters::default(),
                egress_hist: Histogram::new(),
                ingress_hist: Histogram::new(),
                segment_hists: RcuSlot::new(),
            },
            // Charged to the namespace's creator.
            GFP_KERNEL_ACCOUNT,
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
    /// exist before capture is switched on ([`Self::install_ring`]).
    pub(crate) fn set_enabled(&self, on: bool) -> bool {
        if on {
            self.was_on.store(true, Ordering::Relaxed);
            // Before the flag: a probe that sees capture on sees this time.
            self.on_since
                .store(crate::ffi::mono_ns(), Ordering::Relaxed);
        }
        self.enabled.swap(on, Ordering::AcqRel)
    }

    /// When capture was last switched on (monotonic ns; read after
    /// [`Self::enabled`] said it is on). A send syscall's entry that started
    /// before is left from an earlier time capture was on: the send that
    /// hands a packet over now started while it was off.
    pub(crate) fn on_since(&self) -> u64 {
        self.on_since.load(Ordering::Relaxed)
    }

    /// Whether capture was ever on in this namespace.
    pub(crate) fn was_on(&self) -> bool {
        self.was_on.load(Ordering::Relaxed)
    }

    /// The user this namespace's capture counts against while it is on.
    pub(crate) fn charged_uid(&self) -> Option<u32> {
        u32::try_from(self.charged_uid.load(Ordering::Relaxed)).ok()
    }

    /// Sets the user this namespace's capture counts against.
    pub(crate) fn set_charged_uid(&self, uid: Option<u32>) {
        self.charged_uid
            .store(uid.map_or(NO_USER, u64::from), Ordering::Relaxed);
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

    /// Whether one of its packet sockets has a reader that waits for it,
    /// and so may take packets from a ring without a syscall (libpcap);
    /// [`crate::tapread`] reads and sets it.
    pub(crate) fn ring_reader(&self) -> &AtomicBool {
        &self.ring_reader
    }

    /// The handle in the namespace registry, 0 if none.
    pub(crate) fn handle(&self) -> u64 {
        self.handle.load(Ordering::Acquire)
    }

    /// The ring, for a probe, while capture is on.
    pub(crate) fn ring<'a>(&'a self, cx: &'a ProbeCx<'_>) -> Option<&'a RecordRing> {
        self.ring.get(cx)
    }

    /// The ring, counted, for a reader, while capture is on.
    pub(crate) fn ring_arc(&self) -> Option<Arc<RecordRing>> {
        self.ring.get_arc()
    }

    /// Allocates a ring of `ring_size` records, charged to the current
    /// task's memory cgroup, for a namespace whose capture is off.
    ///
    /// Called under the control mutex (`control.rs`), so at most one ring
    /// is allocated (and counted) per namespace at a time.
    pub(crate) fn install_ring(&self, ring_size: u32) -> Result {
        // A ring exists exactly while capture is on, and the mutex excludes
        // a racing install: the slot is empty.
        let ring = new_ring(ring_size, self.ring_totals.clone())?;
        self.ring.try_set(ring).map_err(|_| EBUSY)
    }

    /// Takes the ring out; it is freed when the result is dropped, after a
    /// grace period (process context).
    pub(crate) fn take_ring(&self) -> Option<Retired<RecordRing>> {
        self.ring.take()
    }

    /// The histogram of a direction's latencies.
    pub(crate) fn hist(&self, dir: Direction) -> &Histogram {
        match dir {
            Direction::Egress => &self.egress_hist,
            Direction::Ingress => &self.ingress_hist,
        }
    }

    /// Whether its latencies are broken down into segments.
    #[inline(always)]
    pub(crate) fn breakdown(&self) -> bool {
        self.breakdown.load(Ordering::Relaxed)
    }

    /// Sets whether its latencies are broken down; returns whether they
    /// were (only [`crate::control::Control`] calls it, under its lock,
    /// after [`Self::alloc_segment_hists`]).
    pub(crate) fn set_breakdown(&self, on: bool) -> bool {
        self.breakdown.swap(on, Ordering::Relaxed)
    }

    /// Allocates the histograms of its segments, if it has none yet
    /// (process context; charged to the caller's memory cgroup).
    pub(crate) fn alloc_segment_hists(&self) -> Result {
        if self.segment_hists.get_arc().is_none() {
            let hists = Arc::new(SegmentHistograms::new(), GFP_KERNEL_ACCOUNT)?;
            // Another caller's set first is as good.
            let _ = self.segment_hists.try_set(hists);
        }
        Ok(())
    }

    /// The histograms of its segments, if it ever broke its latencies
    /// down.
    pub(crate) fn segment_hists(&self) -> Option<Arc<SegmentHistograms>> {
        self.segment_hists.get_arc()
    }

    /// Records the latency of a window from `start` to `end` (both
    /// CLOCK_MONOTONIC), if capture is on: counts it as recorded and in its
    /// histogram, and queues it with the wall-clock time of its end (a full
    /// ring counts the drop in the ring's stats). Returns whether it was
    /// recorded; if capture is off it is counted as such.
    #[inline(always)]
    pub(crate) fn report(
        &self,
        cx: &ProbeCx<'_>,
        dir: Direction,
        start: u64,
        end: u64,
        pktid: u32,
    ) -> bool {
        self.record(cx, dir, start, end, pktid, Segments::Unknown)
    }

    /// As [`Self::report`], with the window's segments (`breakdown` on).
    /// Out of line: the windows of namespaces without breakdown never come
    /// here.
    #[inline(never)]
    pub(crate) fn report_segments(
        &self,
        cx: &ProbeCx<'_>,
        dir: Direction,
        start: u64,
        end: u64,
        pktid: u32,
        segments: Segments,
    ) -> bool {
        let recorded = self.record(cx, dir, start, end, pktid, segments);
        if recorded && !cfg!(mace_no_hist) {
            let parts = segments.split(end.saturating_sub(start));
            if let (Some(parts), Some(hists)) = (parts, self.segment_hists.get(cx)) {
                hists.add(dir, parts);
            }
        }
        recorded
    }

    /// The body of [`Self::report`] and [`Self::report_segments`].
    #[inline(always)]
    fn record(
        &self,
        cx: &ProbeCx<'_>,
        dir: Direction,
        start: u64,
        end: u64,
        pktid: u32,
        segments: Segments,
    ) -> bool {
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
        let latency_ns = end.saturating_sub(start);
        if !cfg!(mace_no_hist) {
            self.hist(dir).add(latency_ns);
        }
        let rec = Record {
            time_ns: mono_to_real_ns(end),
            latency_ns,
            pktid,
            dir,
            segments,
        };
        if let Some(ring) = self.ring(cx) {
            // A failed push is counted by the ring itself.
            let _ = ring.push(&rec);
        }
        true
    }

    /// Calls `f` with the name and value of each of the namespace's
    /// counters and its rings' (those of `stats`, but `netns` and
    /// `enabled`).
    pub(crate) fn for_each_counter(&self, mut f: impl FnMut(&'static str, u64)) {
        self.counters.for_each(&mut f);
        let ring = self.ring_counters();
        f("ring_size", ring.size as u64);
        f("ring_queued", ring.queued as u64);
        f("ring_pushed", ring.stats.pushed);
        f("ring_popped", ring.stats.popped);
        f("ring_full", ring.stats.full);
        f("ring_busy", ring.stats.busy);
        f("ring_discarded", ring.discarded);
    }

    /// The counters of the namespace's rings, the current one's included.
    pub(crate) fn ring_counters(&self) -> RingCounters {
        let t = &*self.ring_totals;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut c = RingCounters {
            stats: RingStats {
                pushed: load(&t.pushed),
                popped: load(&t.popped),
                full: load(&t.full),
                busy: load(&t.busy),
            },
            discarded: load(&t.discarded),
            size: 0,
            queued: 0,
        };
        if let Some(ring) = self.ring_arc() {
            c.stats = c.stats.plus(&ring.stats());
            c.size = ring.capacity();
            c.queued = ring.len();
        }
        c
    }
}

/// `charged_uid` of a namespace that counts against no user.
const NO_USER: u64 = u64::MAX;

/// Allocates a ring of `size` records (a power of two), charged to the
/// current task's memory cgroup.
fn new_ring(size: u32, totals: Arc<RingTotals>) -> Result<Arc<RecordRing>> {
    let size = usize::try_from(size)?;
    let mut slots = KVVec::with_capacity(size, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..size {
        slots.push(Slot::new(), GFP_KERNEL_ACCOUNT)?;
    }
    let ring = Ring::new(slots).map_err(|_| EINVAL)?;
    LIVE_RINGS.fetch_add(1, Ordering::Relaxed);
    // Counted from here: dropping the `RecordRing` uncounts it.
    Ok(Arc::new(RecordRing { ring, totals }, GFP_KERNEL_ACCOUNT)?)
}

impl Drop for NetState {
    fn drop(&mut self) {
        LIVE_STATES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most namespaces that can capture at once.
pub(crate) const REGISTRY_SLOTS: usize = 4096;

/// The namespaces that capture, by handle.
///
/// A handle is a slot number plus a generation, never 0: a handle of a
/// namespace that is gone resolves to nothing, even once its slot is reused.
/// A namespace leaves the registry when its capture is switched off or it
/// goes away (`pre_exit`); its state is freed no earlier than an RCU grace
/// period later, so probes that resolved its handle before are done with it
/// ([`RcuSlot`]).
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

    /// Takes `state` out of the registry: its handle is 0 again, and what
    /// carries the old one resolves to nothing. Dropping the result waits
    /// for an RCU grace period (process context).
    pub(crate) fn detach(&self, state: &NetState) -> Option<Retired<NetState>> {
        let handle = state.handle.swap(0, Ordering::AcqRel);
        self.slot(handle)?.clear_if(state)
    }

    /// Calls `f` with the state of each namespace in the registry
    /// (process context).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&NetState)) {
        for slot in self.slots.iter() {
            if let Some(state) = slot.get_arc() {
                f(&state);
            }
        }
    }

    /// The state of the namespace with `handle`, if it is still there.
    pub(crate) fn get<'a>(&'a self, cx: &'a ProbeCx<'_>, handle: u64) -> Option<&'a NetState> {
        let state = self.slot(handle)?.get(cx)?;
        (state.handle() == handle).then_some(state)
    }
}
