// SPDX-License-Identifier: GPL-2.0

//! The ingress path: from the outer device to the receiving syscall's
//! return.
//!
//! ```text
//! receive on the outer device   ingress table: key -> Ingress, stamped now
//! the packet reaches a task in
//!   a receiving syscall         take the entry; task table: Task.pending
//! recv_exited (sys_exit)        ingress latency of each pending packet
//! ```
//!
//! NAT hides the receiving namespace until the packet reaches a task, so
//! every packet of an outer device is stored, and the namespace decides at
//! delivery whether it is reported.

#![deny(unsafe_code)]

use super::{identify, record, Capture};
use crate::counters::bump;
use crate::entry::{Ingress, Pending, Task, Words};
use crate::ffi::mono_ns;
use crate::ffi::net::with_current_net;
use crate::ffi::skb::Skb;
use crate::ffi::task;
use crate::ffi::tracepoint::ProbeCx;
use crate::netns::{NetState, NET_STATE};
use crate::packet::Side;
use crate::record::Direction;
use crate::table::{Insert, Take};

impl Capture {
    /// `netif_receive_skb`: a packet arrives; on an outer device it starts
    /// an ingress window.
    pub(crate) fn receive(&self, skb: &Skb) {
        let Some(dev) = skb.dev() else { return };
        if !self.outer.contains(dev.ifindex()) || !dev.net().is_init() {
            return;
        }
        // The network header is not set yet: the packet starts at its data.
        let Some(id) = identify(skb, true, Side::Ingress) else {
            return;
        };
        let now = mono_ns();
        let c = &self.counters;
        let entry = Ingress { pktid: id.pktid };
        match self
            .ingress
            .insert(id.key, now, &entry.to_words(), |_| false)
        {
            Insert::Stored | Insert::Same => bump(&c.ingress_stored),
            Insert::ReplacedExpired(_) => {
                bump(&c.ingress_stored);
                bump(&c.ingress_expired);
            }
            Insert::Evicted(_) => {
                bump(&c.ingress_stored);
                bump(&c.ingress_evicted);
            }
            Insert::Collision(_) => bump(&c.ingress_collisions),
        }
    }

    /// `skb_copy_datagram_iovec`: a receiving syscall hands a packet to the
    /// task (TCP, raw and ping sockets, large UDP datagrams).
    pub(crate) fn copied(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        self.deliver(cx, skb);
    }

    /// `skb_consume_udp()`: a UDP socket's reader is done with a datagram
    /// (UDP copies small datagrams without `skb_copy_datagram_iovec`).
    pub(crate) fn consumed_udp(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        self.deliver(cx, skb);
    }

    /// A packet reaches a task: if it came in through an outer device and
    /// the task is in a receiving syscall of a capturing namespace, remember
    /// when it arrived, to report at the syscall's exit.
    fn deliver(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        if !task::in_task() || !self.syscalls.receives(task::current_syscall_nr()) {
            return;
        }
        with_current_net(|net| {
            let Some(state) = NET_STATE.get(cx, net) else {
                return;
            };
            if !state.enabled() {
                return;
            }
            let Some(id) = identify(skb, false, Side::Ingress) else {
                return;
            };
            let now = mono_ns();
            let e = match self.ingress.take(id.key, now) {
                Take::Hit(e) => e,
                Take::Expired(_) => return bump(&state.counters.ingress_expired),
                Take::Collided(_) => return bump(&state.counters.ingress_collisions),
                Take::Miss => return,
            };
            let pending = Pending {
                t_rx: e.time,
                pktid: Ingress::from_words(&e.data).pktid,
            };
            self.add_pending(state, now, pending);
        });
    }

    /// Adds a received packet to the current task's pending list.
    fn add_pending(&self, state: &NetState, now: u64, p: Pending) {
        let (key, tid) = task::current_task();
        let fresh = Task::new(tid);
        let (added, placed) = self.tasks.upsert(key, now, &fresh.to_words(), |data| {
            let mut t = Task::from_words(data);
            if t.tid != tid {
                // A dead task's leftover: start over.
                t = fresh;
            }
            let added = t.push_pending(p);
            *data = t.to_words();
            added
        });
        if added == Some(false) {
            bump(&state.counters.ingress_unreported);
        }
        if let Insert::Evicted(_) = placed {
            bump(&self.counters.tasks_evicted);
        }
    }

    /// The receiving syscall `t` was in returned `ret`: each packet it took
    /// gets its ingress latency, or is counted as unreported if it failed.
    pub(super) fn recv_exited(&self, state: &NetState, t: &Task, ret: i64, now: u64) {
        for p in t.pending() {
            if ret > 0 {
                state.report(&record(Direction::Ingress, p.t_rx, now, p.pktid));
            } else {
                bump(&state.counters.ingress_unreported);
            }
        }
    }
}
