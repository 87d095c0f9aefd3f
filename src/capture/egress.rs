// SPDX-License-Identifier: GPL-2.0

//! The egress path: from a send syscall to the outer device.
//!
//! ```text
//! send_entered (sys_enter)      task table: Task.send = now
//! xmit on the container's device, in the sender's context
//!   or later from a softirq     egress table: key -> Egress { start, ns }
//! xmit on the outer device      take the entry: egress latency
//! send_exited (sys_exit)        no packet left yet: remember the start
//!                               per socket (deferred table)
//! ```
//!
//! Which packet belongs to which syscall is decided by the protocol rules of
//! [`crate::packet`]: a packet that leaves inside a send on its own socket
//! carries that send's data (for TCP, only if it starts at a byte the send
//! wrote), and a datagram that leaves after its send returned belongs to
//! the oldest such send of its socket.

#![deny(unsafe_code)]

use super::{identify, record, Capture, LOOPBACK_IFINDEX};
use crate::counters::bump;
use crate::entry::{Deferred, Egress, SendCall, Task, Words, EGRESS_WORDS};
use crate::ffi::mono_ns;
use crate::ffi::net::with_current_net;
use crate::ffi::skb::{Dev, Skb};
use crate::ffi::task::{self, Regs};
use crate::ffi::tracepoint::ProbeCx;
use crate::netns::{NetState, NET_STATE};
use crate::packet::{Identity, Side};
use crate::record::Direction;
use crate::table::{Entry, Insert, Take};

impl Capture {
    /// `sys_enter`: a task of a capturing namespace may start sending.
    pub(crate) fn send_entered(&self, cx: &ProbeCx<'_>, regs: &Regs, nr: i64) {
        if !self.syscalls.sends(nr) {
            return;
        }
        with_current_net(|net| {
            if !NET_STATE.get(cx, net).is_some_and(NetState::enabled) {
                return;
            }
            // Every send syscall's first argument is a file descriptor; only
            // sockets matter (write(2) to a file does not).
            let fd = task::fd_sock(regs.arg0());
            if fd.sock == 0 {
                return;
            }
            let now = mono_ns();
            let (key, tid) = task::current_task();
            let t = Task::sending(
                tid,
                SendCall {
                    start: now,
                    sock: fd.sock,
                    tcp_write_seq: fd.tcp_write_seq,
                    sent: 0,
                },
            );
            // A leftover entry of this task (a syscall whose exit was not
            // seen) is replaced rather than counted as a collision.
            if let Insert::Evicted(_) = self.tasks.put(key, now, &t.to_words()) {
                bump(&self.counters.tasks_evicted);
            }
        });
    }

    /// The send syscall `t` was in returned `ret`: if it succeeded but its
    /// packet has not left yet, the packet will, from a softirq (see
    /// [`Self::xmit_deferred`]).
    pub(super) fn send_exited(&self, state: &NetState, t: &Task, ret: i64, now: u64) {
        let Some(send) = t.send else { return };
        if send.sent == 0 && ret > 0 && state.enabled() {
            self.defer(send.sock, send.start, now);
        }
    }

    /// `net_dev_start_xmit`: a packet starts transmission on `dev`.
    pub(crate) fn xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        let ifindex = dev.ifindex();
        if self.outer.contains(ifindex) && dev.net().is_init() {
            self.xmit_outer(cx, skb, dev);
        } else if ifindex != LOOPBACK_IFINDEX {
            // A container's packet usually leaves in its sender's context;
            // one that had to wait (for its neighbour) leaves from a softirq.
            if task::in_task() {
                self.xmit_inner(cx, skb, dev);
            } else {
                self.xmit_deferred(cx, skb, dev);
            }
        }
    }

    /// A packet leaves through an outer device: end of an egress window.
    fn xmit_outer(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        let Some(id) = identify(skb, false, Side::Egress) else {
            return;
        };
        let now = mono_ns();
        let owner = |e: &Entry<EGRESS_WORDS>| {
            let entry = Egress::from_words(&e.data);
            self.registry.get(cx, entry.ns).map(|state| (state, entry))
        };
        match self.egress.take(id.key, now) {
            Take::Hit(e) => {
                if let Some((state, entry)) = owner(&e) {
                    state.report(&record(Direction::Egress, entry.start, now, id.pktid));
                }
            }
            Take::Expired(e) => {
                if let Some((state, _)) = owner(&e) {
                    bump(&state.counters.egress_expired);
                }
            }
            Take::Collided(e) => {
                if let Some((state, _)) = owner(&e) {
                    bump(&state.counters.egress_collisions);
                }
            }
            // A host process of a capturing initial namespace sends straight
            // through the outer device: the window has no inner device.
            Take::Miss if task::in_task() => {
                with_current_net(|net| {
                    let Some(state) = NET_STATE.get(cx, net) else {
                        return;
                    };
                    if !state.enabled() || !dev.net().is(net) {
                        return;
                    }
                    if let Some(start) = self.send_start(now, skb.sock(), &id) {
                        state.report(&record(Direction::Egress, start, now, id.pktid));
                    }
                });
            }
            Take::Miss => {}
        }
    }

    /// A packet leaves a device of the sending task's own namespace: if the
    /// task is in a send syscall of a capturing namespace that sent it, its
    /// egress window starts at that syscall.
    fn xmit_inner(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        with_current_net(|net| {
            let Some(state) = NET_STATE.get(cx, net) else {
                return;
            };
            if !state.enabled() || !dev.net().is(net) {
                return;
            }
            let Some(id) = identify(skb, false, Side::Egress) else {
                return;
            };
            let now = mono_ns();
            if let Some(start) = self.send_start(now, skb.sock(), &id) {
                self.store_egress(state, &id, start, now);
            }
        });
    }

    /// A packet leaves a device of a capturing namespace from a softirq: if a
    /// send on its socket left it behind, its egress window starts at that
    /// send. The softirq may also run on the stack of the sending task,
    /// still in its send (e.g. when the neighbour's answer is processed at
    /// once): then the task's entry has the start.
    fn xmit_deferred(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        let sock = skb.sock();
        if sock == 0 {
            return;
        }
        let Some(state) = NET_STATE.get(cx, dev.net()) else {
            return;
        };
        if !state.enabled() {
            return;
        }
        let Some(id) = identify(skb, false, Side::Egress) else {
            return;
        };
        if !id.proto.leaves_after_its_send() {
            return;
        }
        let now = mono_ns();
        let start = self
            .undefer(sock, now)
            .or_else(|| self.send_start(now, sock, &id));
        if let Some(start) = start {
            self.store_egress(state, &id, start, now);
        }
    }

    /// The start of the current task's send syscall, if it is in one and
    /// the packet `id`, owned by socket `sock` (0: none), carries what it
    /// sent; counts a packet sent by it.
    fn send_start(&self, now: u64, sock: u64, id: &Identity) -> Option<u64> {
        let (key, tid) = task::current_task();
        self.tasks
            .update(key, now, |e| {
                let mut t = Task::from_words(&e.data);
                let send = t.send.as_mut().filter(|_| t.tid == tid)?;
                if sock != 0 && sock != send.sock {
                    return None;
                }
                if !id.carries_send_of(send.tcp_write_seq) {
                    return None;
                }
                send.sent = send.sent.wrapping_add(1);
                let start = send.start;
                e.data = t.to_words();
                Some(start)
            })
            .flatten()
    }

    /// Remembers that a send on `sock` that started at `start` left its
    /// packet behind.
    fn defer(&self, sock: u64, start: u64, now: u64) {
        let updated = self.deferred.update(sock, now, |e| {
            let mut d = Deferred::from_words(&e.data);
            // A fifth send in flight is not remembered (see mace.rst).
            let _ = d.push(start);
            e.data = d.to_words();
        });
        if updated.is_none() {
            let mut d = Deferred::default();
            let _ = d.push(start);
            self.deferred.insert(sock, now, &d.to_words(), |_| false);
        }
    }

    /// Takes the oldest deferred send start of `sock`.
    fn undefer(&self, sock: u64, now: u64) -> Option<u64> {
        self.deferred
            .update(sock, now, |e| {
                let mut d = Deferred::from_words(&e.data);
                let start = d.pop();
                e.data = d.to_words();
                start
            })
            .flatten()
    }

    /// Stores the packet `id` of the namespace with `state`, sent by a
    /// syscall that started at `start`, to await an outer device.
    fn store_egress(&self, state: &NetState, id: &Identity, start: u64, now: u64) {
        let ns = state.handle();
        if ns == 0 {
            return;
        }
        let entry = Egress {
            start,
            ns,
            pktid: id.pktid,
        };
        // The same packet again in the same syscall (another device of the
        // namespace on its way out) is not a collision.
        let same = |e: &Entry<EGRESS_WORDS>| Egress::from_words(&e.data).same_send(&entry);
        let c = &state.counters;
        match self.egress.insert(id.key, now, &entry.to_words(), same) {
            Insert::Stored | Insert::ReplacedExpired(_) => bump(&c.egress_sent),
            Insert::Same => {}
            Insert::Evicted(_) => {
                bump(&c.egress_sent);
                bump(&self.counters.egress_evicted);
            }
            Insert::Collision(_) => bump(&c.egress_collisions),
        }
    }
}
