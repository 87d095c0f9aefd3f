// SPDX-License-Identifier: GPL-2.0

//! The breakdown of a window into segments: where the host held a packet.
//!
//! With `breakdown` on in a namespace, each of its windows is cut at two
//! waypoints into three segments that add up to its latency exactly:
//!
//! ```text
//!  egress   send syscall ── container ──> net_dev_start_xmit on the
//!                                         namespace's device (its veth)
//!                        ── host ──────> net_dev_queue on the outer device
//!                                         (veth, bridge, routing,
//!                                         netfilter, NAT)
//!                        ── outer ─────> net_dev_start_xmit on the outer
//!                                         device (its qdisc, its driver)
//!  ingress  outer device ── host ──────> netif_receive_skb on the
//!                                         namespace's device
//!                        ── container ─> sk_data_ready of the IP socket
//!                                         (the namespace's stack)
//!                        ── socket ────> where the window ends (the
//!                                         syscall's return, or the
//!                                         reader's kernel timestamp)
//! ```
//!
//! The waypoints are stamped by probes of their own
//! ([`crate::ffi::tracepoint::Waypoints`]), registered only while some
//! namespace has `breakdown` on, into a stamp array of their own
//! ([`WaypointStamps`], the set-associative array of [`crate::stamps`]),
//! allocated with them. A stamp is keyed as the window's packet is found
//! again: a sent packet by its socket buffer and fingerprint, a received
//! one by its data buffer and fingerprint, each waypoint with its own tag
//! ([`Waypoint`]). The measuring probes are compiled as without breakdown:
//! where a window ends, one load of the namespace's flag sends it to the
//! out-of-line code here, which takes its waypoints' stamps.
//!
//! `sk_data_ready` names the socket, not the packet: the packet is the one
//! the namespace's device received last on this CPU, in the same softirq
//! (a per-CPU slot, [`CpuSlot`]), which holds while the stack delivers a
//! packet to its socket in the softirq that received it. A TCP segment
//! queued to a socket its owner holds waits in the backlog and is made
//! readable later, from the owner's context: its segments are unknown.
//!
//! Received packets are taken from the ingress table when their reader gets
//! them, and reported when its syscall returns: at the first point the
//! waypoints' stamps move to a key the pending packet still has (its
//! arrival time and packet id), at the second they are taken.
//!
//! A window with a waypoint missing, or out of order, is reported with its
//! segments unknown (counted): a GSO packet that its device segmented on
//! the way, a stamp pushed out by other traffic.

#![deny(unsafe_code)]

use super::{fingerprint, Capture, LOOPBACK_IFINDEX};
use crate::counters::bump;
use crate::entry::{Egress, Pending};
use crate::ffi::net::Net;
use crate::ffi::skb::{Dev, Skb, Sock};
use crate::ffi::sync::Retired;
use crate::ffi::tracepoint::{ProbeCx, Waypoints};
use crate::ffi::{cpu, mono_ns, nr_cpu_ids, task};
use crate::netns::NetState;
use crate::packet::Side;
use crate::record::{Direction, Segments};
use crate::stamps::{empty_set, Set as StampSet, Stamps, WAYS};
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The waypoints, each a tag mixed into the fingerprint of its stamps, so
/// that one packet's stamps at different waypoints never take each other's
/// place.
///
/// A stamp's tag keeps 32 bits of its fingerprint, the XOR of its two
/// halves ([`crate::stamps`]): the tags differ in their low half only, so
/// that they still differ there. (Tags with ASCII names in their high half
/// made two of them, `dlv1`/5 and `dlv2`/6, the same after that XOR, and
/// the second delivered waypoint took the first's slot.)
#[derive(Clone, Copy)]
#[repr(u64)]
enum Waypoint {
    /// Egress: the packet left the namespace's device.
    LeftDevice = 1,
    /// Egress: the packet was queued on the outer device.
    OuterQueued = 2,
    /// Ingress: the packet arrived on the namespace's device.
    ArrivedDevice = 3,
    /// Ingress: the packet joined its socket's queue.
    QueuedSocket = 4,
    /// Ingress: the first waypoint of a packet its reader got, by arrival
    /// time and packet id.
    Delivered1 = 5,
    /// Ingress: the second waypoint, as above.
    Delivered2 = 6,
}

impl Waypoint {
    /// The fingerprint of the stamp of the packet with fingerprint `fp` at
    /// this waypoint.
    fn tag(self, fp: u64) -> u64 {
        fp ^ self as u64
    }
}

/// The slots of the waypoints' stamps: a type of their own, so that the
/// arrival stamps' code is not shared with (and stays inlined in) the
/// probes that do not break down.
pub(crate) struct WaypointSlots(KVVec<StampSet>);

impl Deref for WaypointSlots {
    type Target = [StampSet];

    fn deref(&self) -> &[StampSet] {
        &self.0
    }
}

/// The packet a namespace's device received last on one CPU, for its
/// socket's `sk_data_ready` (0s: none).
#[derive(Default)]
struct CpuSlot {
    /// Its namespace's address.
    net: AtomicU64,
    /// Its data buffer.
    head: AtomicU64,
    /// Its fingerprint.
    fp: AtomicU64,
}

/// What the waypoint probes write, allocated with them.
pub(crate) struct WaypointStamps {
    stamps: Stamps<WaypointSlots>,
    cpus: KVVec<CpuSlot>,
}

impl WaypointStamps {
    /// Stamps for `n` slots (a power of two) and every possible CPU.
    fn new(n: usize) -> Result<Self> {
        if n < WAYS {
            return Err(EINVAL);
        }
        let slots = WaypointSlots(super::filled(n / WAYS, empty_set)?);
        Ok(Self {
            stamps: Stamps::new(slots).map_err(|_| EINVAL)?,
            cpus: super::filled(nr_cpu_ids(), CpuSlot::default)?,
        })
    }

    /// Stamps `at` the packet keyed by `key` and fingerprint `fp` with
    /// `time`.
    fn put(&self, at: Waypoint, key: u64, fp: u64, time: u64) {
        // A stamp pushed out only makes some window's segments unknown.
        let _ = self.stamps.put(key, at.tag(fp), time);
    }

    /// Takes the stamp `at` of the packet keyed by `key` and fingerprint
    /// `fp`.
    fn take(&self, at: Waypoint, key: u64, fp: u64) -> Option<u64> {
        self.stamps.take(key, at.tag(fp))
    }
}

impl Capture {
    /// Allocates the waypoints' stamps, before their probes are registered
    /// (process context; `EBUSY` if they exist).
    pub(crate) fn attach_waypoints(&self) -> Result {
        let stamps = WaypointStamps::new(self.arrivals.capacity())?;
        let stamps = Arc::new(stamps, GFP_KERNEL)?;
        self.waypoints.try_set(stamps).map_err(|_| EBUSY)
    }

    /// Takes the waypoints' stamps, after their probes are unregistered:
    /// freed when the result is dropped, after a grace period.
    pub(crate) fn detach_waypoints(&self) -> Option<Retired<WaypointStamps>> {
        self.waypoints.take()
    }

    /// Whether the namespace `net` captures and breaks its latencies down.
    fn breaks_down(&self, cx: &ProbeCx<'_>, net: &Net) -> bool {
        self.state_of(cx, net)
            .is_some_and(|s| s.breakdown() && s.enabled())
    }

    /// A packet of the namespace with `state` leaves an outer device at
    /// `now`, taken from the egress table as `entry`, in the socket buffer
    /// at `addr`: its latency with its segments.
    #[inline(never)]
    pub(super) fn egress_segmented(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        entry: &Egress,
        addr: u64,
        now: u64,
    ) {
        let segments = match self.waypoints.get(cx) {
            // A GSO packet (keyed by identity) may have left in other
            // socket buffers than the ones stamped.
            Some(w) if entry.fp != 0 => {
                let left = w.take(Waypoint::LeftDevice, addr, entry.fp);
                let queued = w.take(Waypoint::OuterQueued, addr, entry.fp);
                match (left, queued) {
                    (Some(left), Some(queued)) => Segments::of(entry.start, left, queued, now),
                    _ => Segments::Unknown,
                }
            }
            _ => Segments::Unknown,
        };
        self.report_segmented(
            cx,
            state,
            Direction::Egress,
            entry.start,
            now,
            entry.pktid,
            segments,
        );
    }

    /// A reader of the namespace with `state` got the packet with data
    /// buffer `key` and fingerprint `fp`, which arrived at `t_rx` as packet
    /// `pktid`: its waypoints' stamps move to a key its pending entry
    /// keeps.
    #[inline(never)]
    pub(super) fn delivered_waypoints(
        &self,
        cx: &ProbeCx<'_>,
        key: u64,
        fp: u64,
        t_rx: u64,
        pktid: u32,
    ) {
        let Some(w) = self.waypoints.get(cx) else {
            return;
        };
        let id = u64::from(pktid);
        if let Some(t) = w.take(Waypoint::ArrivedDevice, key, fp) {
            w.put(Waypoint::Delivered1, t_rx, id, t);
        }
        if let Some(t) = w.take(Waypoint::QueuedSocket, key, fp) {
            w.put(Waypoint::Delivered2, t_rx, id, t);
        }
    }

    /// The pending packet `p` of the namespace with `state` gets its
    /// ingress latency, ending at `end`, with its segments.
    #[inline(never)]
    pub(super) fn delivered_segmented(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        p: &Pending,
        end: u64,
    ) -> bool {
        let segments = self.waypoints.get(cx).map_or(Segments::Unknown, |w| {
            let id = u64::from(p.pktid);
            let arrived = w.take(Waypoint::Delivered1, p.t_rx, id);
            let queued = w.take(Waypoint::Delivered2, p.t_rx, id);
            match (arrived, queued) {
                // The window may end at the reader's timestamp, taken on the
                // way: segments after it are 0.
                (Some(a), Some(q)) => Segments::ended_by(p.t_rx, a, q, end),
                _ => Segments::Unknown,
            }
        });
        self.report_segmented(
            cx,
            state,
            Direction::Ingress,
            p.t_rx,
            end,
            p.pktid,
            segments,
        )
    }

    /// Reports the window of direction `dir` from `start` to `end` of
    /// packet `pktid` of the namespace with `state`, with `segments`, and
    /// counts them as known or unknown; whether it was recorded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report_segmented(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        dir: Direction,
        start: u64,
        end: u64,
        pktid: u32,
        segments: Segments,
    ) -> bool {
        let c = &state.counters;
        let reported = state.report_segments(cx, dir, start, end, pktid, segments);
        if reported {
            bump(match (dir, segments) {
                (Direction::Egress, Segments::Known { .. }) => &c.egress_segments,
                (Direction::Egress, Segments::Unknown) => &c.egress_segments_unknown,
                (Direction::Ingress, Segments::Known { .. }) => &c.ingress_segments,
                (Direction::Ingress, Segments::Unknown) => &c.ingress_segments_unknown,
            });
        }
        reported
    }
}

impl Waypoints for Capture {
    /// On an outer device: the end of the host segment of a capturing
    /// namespace's packet (every packet is stamped while one waits there:
    /// NAT hides whose it is).
    fn waypoint_queue(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        if self.counters.egress_in_table.load(Relaxed) == 0 {
            return;
        }
        let Some(dev) = skb.dev() else { return };
        if !self.is_outer(dev) {
            return;
        }
        let Some(w) = self.waypoints.get(cx) else {
            return;
        };
        let Some(fp) = fingerprint(skb, false, Side::Egress) else {
            return;
        };
        w.put(Waypoint::OuterQueued, skb.addr(), fp, mono_ns());
    }

    /// On a device of a namespace that breaks down: the end of its
    /// packet's container segment.
    fn waypoint_xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        if dev.ifindex() == LOOPBACK_IFINDEX || self.is_outer(dev) {
            return;
        }
        if !self.breaks_down(cx, dev.net()) {
            return;
        }
        let Some(w) = self.waypoints.get(cx) else {
            return;
        };
        let Some(fp) = fingerprint(skb, false, Side::Egress) else {
            return;
        };
        w.put(Waypoint::LeftDevice, skb.addr(), fp, mono_ns());
    }

    /// On a device of a namespace that breaks down: the end of its
    /// packet's host segment; and the packet its socket's `sk_data_ready`
    /// will be about, if this is a softirq.
    fn waypoint_receive(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        let Some(dev) = skb.dev() else { return };
        if self.is_outer(dev) {
            return;
        }
        let net = dev.net();
        if !self.breaks_down(cx, net) {
            return;
        }
        let Some(w) = self.waypoints.get(cx) else {
            return;
        };
        // The network header is not set yet: the packet starts at its data.
        let Some(fp) = fingerprint(skb, true, Side::Ingress) else {
            return;
        };
        let now = mono_ns();
        let head = skb.head();
        w.put(Waypoint::ArrivedDevice, head, fp, now);
        // In a task the packet's socket may be reached on another CPU.
        if task::in_task() {
            return;
        }
        if let Some(slot) = w.cpus.get(cpu()) {
            slot.net.store(net.addr(), Relaxed);
            slot.head.store(head, Relaxed);
            slot.fp.store(fp, Relaxed);
        }
    }

    /// An IP socket has something new to read: if its namespace's device
    /// just received a packet on this CPU, in this softirq, the packet
    /// joined the socket's queue (the end of its container segment).
    fn waypoint_ready(&self, cx: &ProbeCx<'_>, sk: &Sock) {
        if task::in_task() {
            return;
        }
        let Some(w) = self.waypoints.get(cx) else {
            return;
        };
        let Some(slot) = w.cpus.get(cpu()) else {
            return;
        };
        if slot.net.load(Relaxed) != sk.net().addr() {
            return;
        }
        // Taken: another socket's readiness is not this packet's.
        slot.net.store(0, Relaxed);
        let (head, fp) = (slot.head.load(Relaxed), slot.fp.load(Relaxed));
        w.put(Waypoint::QueuedSocket, head, fp, mono_ns());
    }
}
