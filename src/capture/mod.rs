// SPDX-License-Identifier: GPL-2.0

//! The probes' logic: from tracepoint hits to latency records.
//!
//! Five kernel tracepoints and one kernel function feed mace (`probes.rs`
//! dispatches them here):
//!
//! ```text
//!  egress   sys_enter (send family) ──> net_dev_start_xmit, container's device
//!           [task table: Task.send]      [egress table: key -> Egress]
//!                                   ──> net_dev_start_xmit, outer device
//!                                        latency = now - Egress.start
//!  ingress  netif_receive_skb, outer device
//!           [ingress table: key -> Ingress]
//!                                   ──> skb_copy_datagram_iovec, or
//!                                        skb_consume_udp(), in a receiving task
//!                                        [task table: Task.pending]
//!                                   ──> sys_exit: latency = now - t_rx
//! ```
//!
//! [`egress`] and [`ingress`] hold the two paths; this file holds what they
//! share: the tables, the outer devices, the syscall at whose exit both end
//! ([`Capture::syscall_exit`]). The key of a packet ([`crate::packet`]) is
//! the same on both sides of the NAT; the table entries are the types of
//! [`crate::entry`]. Only packets of namespaces with capture on are timed;
//! packets of other namespaces cost at most one table lookup. The probes are
//! registered only while some namespace captures, so an idle mace costs
//! nothing.
//!
//! Every handler runs in atomic context: it never sleeps or allocates, its
//! loops are bounded by constants, and its arithmetic cannot overflow.

#![deny(unsafe_code)]

mod egress;
mod ingress;

use crate::counters::HostCounters;
use crate::entry::{Task, Words, DEFERRED_WORDS, EGRESS_WORDS, INGRESS_WORDS, TASK_WORDS};
use crate::ffi::skb::Skb;
use crate::ffi::sync::{BucketGuard, BucketSpinLock};
use crate::ffi::task::{self, Regs, Syscalls};
use crate::ffi::tracepoint::{ProbeCx, HOOKS};
use crate::ffi::{mono_ns, netdev};
use crate::netns::{NsRegistry, NET_STATE};
use crate::packet::{self, Identity, Side, CAPTURE_BYTES};
use crate::parse::{DevList, DevSpec, MAX_OUTER_DEVS};
use crate::record::{Direction, Record};
use crate::table::{Bucket, BucketLock, Table, Take};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

impl BucketLock for BucketSpinLock {
    type Guard<'a> = BucketGuard<'a>;

    fn lock(&self) -> BucketGuard<'_> {
        BucketSpinLock::lock(self)
    }
}

/// A correlation table of mace in the kernel: `D` words per entry.
pub(crate) type KTable<const D: usize> = Table<KVVec<Bucket<BucketSpinLock, D>>, BucketSpinLock, D>;

/// Allocates a table of `buckets` buckets (a power of two) whose entries
/// expire after `max_age` ns.
fn new_table<const D: usize>(buckets: usize, max_age: u64) -> Result<KTable<D>> {
    if !BucketSpinLock::layout_matches() {
        pr_err!("spinlock_t size mismatch between C and Rust\n");
        return Err(EINVAL);
    }
    let mut v = KVVec::with_capacity(buckets, GFP_KERNEL)?;
    for _ in 0..buckets {
        v.push(Bucket::new(BucketSpinLock::new()), GFP_KERNEL)?;
    }
    Table::new(v, max_age).map_err(|_| EINVAL)
}

/// Hits and time of one hook, for the `pert_*` lines of `stats`.
#[derive(Default)]
pub(crate) struct HookCost {
    /// Probe invocations (counted only with `self_cost=1`).
    pub(crate) hits: AtomicU64,
    /// Total time spent in them, in ns (only with `self_cost=1`).
    pub(crate) ns: AtomicU64,
}

/// Outer devices resolved to ifindexes of the initial namespace.
pub(crate) struct OuterSet {
    /// Ifindexes, 0 for an unused or unresolved slot.
    slots: [AtomicI32; MAX_OUTER_DEVS],
}

impl OuterSet {
    fn new() -> Self {
        Self {
            slots: [const { AtomicI32::new(0) }; MAX_OUTER_DEVS],
        }
    }

    /// Whether `ifindex` is an outer device.
    pub(crate) fn contains(&self, ifindex: i32) -> bool {
        ifindex > 0 && self.slots.iter().any(|s| s.load(Relaxed) == ifindex)
    }

    /// The ifindexes in the slots now.
    pub(crate) fn snapshot(&self) -> [i32; MAX_OUTER_DEVS] {
        let mut out = [0i32; MAX_OUTER_DEVS];
        for (o, s) in out.iter_mut().zip(self.slots.iter()) {
            *o = s.load(Relaxed);
        }
        out
    }

    /// Resolves `devs` (names through the initial namespace) into the slots,
    /// skipping `gone` (a device being unregistered). Returns the ifindexes.
    pub(crate) fn resolve(&self, devs: &DevList, gone: i32) -> [i32; MAX_OUTER_DEVS] {
        let mut out = [0i32; MAX_OUTER_DEVS];
        for (i, slot) in self.slots.iter().enumerate() {
            let ifindex = match devs.as_slice().get(i) {
                Some(DevSpec::Index(n)) => i32::try_from(*n).unwrap_or(0),
                Some(spec) => spec.name().map_or(0, netdev::init_net_ifindex),
                None => 0,
            };
            let ifindex = if ifindex == gone { 0 } else { ifindex };
            slot.store(ifindex, Relaxed);
            if let Some(o) = out.get_mut(i) {
                *o = ifindex;
            }
        }
        out
    }
}

/// The `ifindex` of every namespace's loopback device.
const LOOPBACK_IFINDEX: i32 = 1;

/// Everything the probes share.
pub(crate) struct Capture {
    egress: KTable<EGRESS_WORDS>,
    ingress: KTable<INGRESS_WORDS>,
    tasks: KTable<TASK_WORDS>,
    deferred: KTable<DEFERRED_WORDS>,
    syscalls: Syscalls,
    /// Handles of capturing namespaces, as stored in egress entries.
    pub(crate) registry: NsRegistry,
    /// The outer devices.
    pub(crate) outer: OuterSet,
    /// Whether probe hits are timed.
    pub(crate) self_cost: bool,
    /// Self-cost per hook.
    pub(crate) hooks: [HookCost; HOOKS],
    /// Counters of no namespace.
    pub(crate) counters: HostCounters,
}

impl Capture {
    /// Allocates the tables: `table_size` buckets for packets (a quarter for
    /// tasks and deferred sends), entries expiring after `max_age_ms`.
    pub(crate) fn new(table_size: u32, max_age_ms: u32, self_cost: bool) -> Result<Self> {
        let buckets = usize::try_from(table_size)?;
        let max_age = u64::from(max_age_ms).saturating_mul(1_000_000);
        Ok(Self {
            egress: new_table(buckets, max_age)?,
            ingress: new_table(buckets, max_age)?,
            tasks: new_table((buckets / 4).max(64), max_age)?,
            deferred: new_table((buckets / 4).max(64), max_age)?,
            syscalls: Syscalls::new(),
            registry: NsRegistry::new()?,
            outer: OuterSet::new(),
            self_cost,
            hooks: Default::default(),
            counters: HostCounters::default(),
        })
    }

    /// Table occupancy (egress, ingress, tasks, deferred), for `stats`.
    pub(crate) fn occupancy(&self) -> [usize; 4] {
        [
            self.egress.occupancy(),
            self.ingress.occupancy(),
            self.tasks.occupancy(),
            self.deferred.occupancy(),
        ]
    }

    /// `sys_exit`: a send ends ([`Self::send_exited`]) or a receive returns
    /// its packets ([`Self::recv_exited`]), in a namespace that captures or
    /// did.
    pub(crate) fn syscall_exit(&self, cx: &ProbeCx<'_>, regs: &Regs, ret: i64) {
        let nr = regs.syscall_nr();
        if !self.syscalls.sends(nr) && !self.syscalls.receives(nr) {
            return;
        }
        crate::ffi::net::with_current_net(|net| {
            let Some(state) = NET_STATE.get(cx, net) else {
                return;
            };
            // Once capture was on, clean up even if it is off now.
            if state.ring().is_none() {
                return;
            }
            let now = mono_ns();
            let (key, tid) = task::current_task();
            let Take::Hit(e) = self.tasks.take(key, now) else {
                return;
            };
            let t = Task::from_words(&e.data);
            if t.tid != tid {
                return;
            }
            self.send_exited(state, &t, ret, now);
            self.recv_exited(state, &t, ret, now);
        });
    }
}

/// Identifies the packet in `skb`, reading its bytes from its network header
/// on (from its data when `from_data`: a received packet whose network
/// header is not set yet).
fn identify(skb: &Skb, from_data: bool, side: Side) -> Option<Identity> {
    // Not zeroed: usually the bytes are read in place, not copied here.
    let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
    packet::identify(skb.net_bytes(&mut buf, from_data), side)
}

/// The latency record of a window from `start` to `now`.
fn record(dir: Direction, start: u64, now: u64, pktid: u32) -> Record {
    Record {
        time_ns: now,
        latency_ns: now.saturating_sub(start),
        pktid,
        dir,
    }
}
