// SPDX-License-Identifier: GPL-2.0

//! The probes' logic: from tracepoint hits to latency records.
//!
//! Six kernel tracepoints feed mace (see [`crate::ffi::Probes`]):
//!
//! ```text
//!  egress   sys_enter (send family) ──> net_dev_start_xmit, container's device
//!           [task table: t_enter]        [egress table: key -> t_enter, netns]
//!                                   ──> net_dev_start_xmit, outer device
//!                                        latency = now - t_enter
//!  ingress  netif_receive_skb, outer device
//!           [ingress table: key -> t_rx]
//!                                   ──> skb_copy_datagram_iovec or consume_skb
//!                                        in a receiving task
//!                                        [task table: t_rx, pktid pending]
//!                                   ──> sys_exit: latency = now - t_rx
//! ```
//!
//! The key of a packet ([`crate::packet`]) is the same on both sides of the
//! NAT. Only packets of namespaces with capture on are timed; packets of
//! other namespaces cost at most one table lookup. The probes are registered
//! only while some namespace captures, so an idle mace costs nothing.
//!
//! Every handler runs in atomic context: it never sleeps or allocates, its
//! loops are bounded by constants, and its arithmetic cannot overflow.

use crate::ffi::{self, Dev, KSpin, NsRegistry, ProbeCx, Regs, Skb};
use crate::netns::NetState;
use crate::packet::{identify, Identity, Proto, Side, CAPTURE_BYTES};
use crate::parse::{DevList, DevSpec, MAX_OUTER_DEVS};
use crate::record::{Direction, Record};
use crate::table::{Bucket, Entry, Insert, Table, Take};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

/// A correlation table of mace in the kernel.
pub(crate) type KTable<const D: usize> = Table<KVVec<Bucket<KSpin, D>>, KSpin, D>;

/// Egress entry data: when the send syscall started, the namespace's handle
/// in the [`NsRegistry`] and the packet id.
const EGRESS_T: usize = 0;
const EGRESS_NS: usize = 1;
const EGRESS_ID: usize = 2;
const EGRESS_WORDS: usize = 3;

/// Ingress entry data: the packet id.
const INGRESS_ID: usize = 0;
const INGRESS_WORDS: usize = 1;

/// Task entry data: thread id, send syscall start (0: none), the socket it
/// sends on, for a TCP socket `1 << 32 | write_seq` at the start (else 0),
/// packets it sent so far, number of pending ingress packets, then
/// (t_rx, pktid) pairs.
const TASK_TID: usize = 0;
const TASK_SEND_T: usize = 1;
const TASK_SOCK: usize = 2;
const TASK_TCP_SEQ: usize = 3;
const TASK_SENT: usize = 4;
const TASK_PENDING: usize = 5;
const TASK_FIRST: usize = 6;
/// Deferred sends: for a socket, how many send syscalls returned without
/// their packet having left (it waits for neighbour resolution or in a
/// queue), then their start times, oldest first.
const DEFER_COUNT: usize = 0;
const DEFER_FIRST: usize = 1;
/// Deferred sends remembered per socket.
const MAX_DEFERRED: usize = 4;
const DEFER_WORDS: usize = DEFER_FIRST + MAX_DEFERRED;

/// Ingress packets one receiving syscall can report.
pub(crate) const MAX_PENDING: usize = 4;
const TASK_WORDS: usize = TASK_FIRST + 2 * MAX_PENDING;

/// The probes mace registers, for the self-cost counters.
#[derive(Clone, Copy)]
pub(crate) enum Hook {
    SysEnter = 0,
    SysExit = 1,
    Xmit = 2,
    Receive = 3,
    CopyDatagram = 4,
    Consume = 5,
}

/// Number of [`Hook`]s.
pub(crate) const HOOKS: usize = 6;

impl Hook {
    /// The counter name prefix in `stats`.
    pub(crate) const NAMES: [&'static str; HOOKS] = [
        "sys_enter",
        "sys_exit",
        "net_dev_start_xmit",
        "netif_receive_skb",
        "skb_copy_datagram_iovec",
        "consume_skb",
    ];
}

/// Hits and time of one hook.
#[derive(Default)]
pub(crate) struct HookCost {
    /// Probe invocations (counted only with `self_cost=1`).
    pub(crate) hits: AtomicU64,
    /// Total time spent in them, in ns (only with `self_cost=1`).
    pub(crate) ns: AtomicU64,
}

/// Counters that belong to no namespace, shown to the initial namespace.
#[derive(Default)]
pub(crate) struct GlobalCounters {
    /// Packets received on outer devices and stored for matching.
    pub(crate) ingress_stored: AtomicU64,
    /// Stored received packets no receiving syscall took in time.
    pub(crate) ingress_expired: AtomicU64,
    /// Stored received packets pushed out of a full bucket.
    pub(crate) ingress_evicted: AtomicU64,
    /// Received packets whose key was already stored for another packet.
    pub(crate) ingress_collisions: AtomicU64,
    /// Task entries pushed out of a full bucket.
    pub(crate) tasks_evicted: AtomicU64,
    /// Sent packets' entries pushed out of a full bucket.
    pub(crate) egress_evicted: AtomicU64,
}

/// Which syscall numbers send and receive.
struct SyscallSet {
    send: [u64; 8],
    recv: [u64; 8],
}

fn set_bit(bits: &mut [u64; 8], nr: i64) {
    if let Ok(nr) = usize::try_from(nr) {
        if let Some(w) = bits.get_mut(nr / 64) {
            *w |= 1u64 << (nr % 64);
        }
    }
}

fn has_bit(bits: &[u64; 8], nr: i64) -> bool {
    match usize::try_from(nr) {
        Ok(nr) => bits
            .get(nr / 64)
            .is_some_and(|w| w & (1u64 << (nr % 64)) != 0),
        Err(_) => false,
    }
}

impl SyscallSet {
    fn new() -> Self {
        let nrs = ffi::syscall_numbers();
        let mut set = SyscallSet {
            send: [0; 8],
            recv: [0; 8],
        };
        for nr in [nrs.sendto, nrs.sendmsg, nrs.sendmmsg, nrs.write, nrs.writev] {
            set_bit(&mut set.send, nr);
        }
        for nr in [nrs.recvfrom, nrs.recvmsg, nrs.recvmmsg, nrs.read, nrs.readv] {
            set_bit(&mut set.recv, nr);
        }
        set
    }
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
                Some(spec) => spec.name().map_or(0, ffi::init_net_ifindex),
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

/// Everything the probes share.
pub(crate) struct Capture {
    egress: KTable<EGRESS_WORDS>,
    ingress: KTable<INGRESS_WORDS>,
    tasks: KTable<TASK_WORDS>,
    deferred: KTable<DEFER_WORDS>,
    syscalls: SyscallSet,
    /// Handles of capturing namespaces, as stored in egress entries.
    pub(crate) registry: NsRegistry,
    /// The outer devices.
    pub(crate) outer: OuterSet,
    /// Whether probe hits are timed.
    self_cost: bool,
    /// Self-cost per hook.
    pub(crate) hooks: [HookCost; HOOKS],
    /// Counters of no namespace.
    pub(crate) counters: GlobalCounters,
}

/// Times a probe hit when self-cost accounting is on.
struct HookTimer<'a> {
    cost: Option<(&'a HookCost, u64)>,
}

impl Drop for HookTimer<'_> {
    fn drop(&mut self) {
        if let Some((cost, start)) = self.cost {
            cost.hits.fetch_add(1, Relaxed);
            cost.ns
                .fetch_add(ffi::mono_ns().wrapping_sub(start), Relaxed);
        }
    }
}

/// Bumps a counter.
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Sets `words[i] = v` for each pair.
fn fill<const D: usize>(pairs: &[(usize, u64)]) -> [u64; D] {
    let mut words = [0u64; D];
    for &(i, v) in pairs {
        if let Some(w) = words.get_mut(i) {
            *w = v;
        }
    }
    words
}

impl Capture {
    /// Allocates the tables: `table_size` buckets for packets (a quarter for
    /// tasks), entries expiring after `max_age_ms`.
    pub(crate) fn new(table_size: u32, max_age_ms: u32, self_cost: bool) -> Result<Self> {
        let buckets = usize::try_from(table_size)?;
        let max_age = u64::from(max_age_ms).saturating_mul(1_000_000);
        Ok(Self {
            egress: ffi::new_table(buckets, max_age)?,
            ingress: ffi::new_table(buckets, max_age)?,
            tasks: ffi::new_table((buckets / 4).max(64), max_age)?,
            deferred: ffi::new_table((buckets / 4).max(64), max_age)?,
            syscalls: SyscallSet::new(),
            registry: NsRegistry::new()?,
            outer: OuterSet::new(),
            self_cost,
            hooks: Default::default(),
            counters: GlobalCounters::default(),
        })
    }

    fn timer(&self, hook: Hook) -> HookTimer<'_> {
        HookTimer {
            cost: if self.self_cost {
                self.hooks.get(hook as usize).map(|c| (c, ffi::mono_ns()))
            } else {
                None
            },
        }
    }

    /// Pushes a record into `state`'s ring if it still captures.
    fn report(state: &NetState, dir: Direction, start: u64, now: u64, pktid: u32) {
        if !state.enabled() {
            return;
        }
        let counter = match dir {
            Direction::Egress => &state.counters.egress,
            Direction::Ingress => &state.counters.ingress,
        };
        bump(counter);
        state.record(&Record {
            time_ns: now,
            latency_ns: now.saturating_sub(start),
            pktid,
            dir,
        });
    }

    /// `sys_enter`: a task of a capturing namespace starts sending.
    pub(crate) fn sys_enter(&self, _cx: &ProbeCx<'_>, regs: Regs<'_>, nr: i64) {
        if !has_bit(&self.syscalls.send, nr) {
            return;
        }
        let _t = self.timer(Hook::SysEnter);
        ffi::with_current_net(|net| {
            if !net.state().enabled() {
                return;
            }
            // Every send syscall's first argument is a file descriptor; only
            // sockets matter (write(2) to a file does not).
            let fd = ffi::fd_sock(regs.arg0());
            if fd.sock == 0 {
                return;
            }
            let now = ffi::mono_ns();
            let (task, tid) = ffi::current_task();
            let tcp_seq = fd.tcp_write_seq.map_or(0, |s| 1 << 32 | u64::from(s));
            let data = fill::<TASK_WORDS>(&[
                (TASK_TID, u64::from(tid)),
                (TASK_SEND_T, now),
                (TASK_SOCK, fd.sock),
                (TASK_TCP_SEQ, tcp_seq),
            ]);
            // A leftover entry of this task (a syscall whose exit was not
            // seen) is replaced rather than counted as a collision.
            if let Insert::Evicted(_) = self.tasks.put(task, now, &data) {
                bump(&self.counters.tasks_evicted);
            }
        });
    }

    /// `sys_exit`: a send ends, or a receive returns its packets.
    pub(crate) fn sys_exit(&self, _cx: &ProbeCx<'_>, regs: Regs<'_>, ret: i64) {
        let nr = regs.syscall_nr();
        if !has_bit(&self.syscalls.send, nr) && !has_bit(&self.syscalls.recv, nr) {
            return;
        }
        let _t = self.timer(Hook::SysExit);
        ffi::with_current_net(|net| {
            let state = net.state();
            // Once capture was on, clean up even if it is off now.
            if state.ring().is_none() {
                return;
            }
            let now = ffi::mono_ns();
            let (task, tid) = ffi::current_task();
            let Take::Hit(e) = self.tasks.take(task, now) else {
                return;
            };
            if e.data.get(TASK_TID).copied() != Some(u64::from(tid)) {
                return;
            }
            let word = |i: usize| e.data.get(i).copied().unwrap_or(0);
            if word(TASK_SEND_T) != 0 && word(TASK_SENT) == 0 && ret > 0 && state.enabled() {
                // The send succeeded but its packet has not left yet: it
                // will, from a softirq (see `xmit_deferred`).
                self.defer(word(TASK_SOCK), word(TASK_SEND_T), now);
            }
            let pending = e.data.get(TASK_PENDING).copied().unwrap_or(0);
            let pending = usize::try_from(pending).unwrap_or(0).min(MAX_PENDING);
            for i in 0..pending {
                let at = TASK_FIRST + 2 * i;
                let (Some(&t_rx), Some(&id)) = (e.data.get(at), e.data.get(at + 1)) else {
                    break;
                };
                if ret > 0 {
                    Self::report(state, Direction::Ingress, t_rx, now, id as u32);
                } else {
                    bump(&state.counters.ingress_unreported);
                }
            }
        });
    }

    /// Identifies the packet in `skb`.
    fn identify(skb: Skb<'_>, from_data: bool, side: Side) -> Option<Identity> {
        // Not zeroed: usually the bytes are read in place, not copied here.
        let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
        identify(skb.net_bytes(&mut buf, from_data), side)
    }

    /// `net_dev_start_xmit`: a packet starts transmission on `dev`.
    pub(crate) fn xmit(&self, cx: &ProbeCx<'_>, skb: Skb<'_>, dev: Dev<'_>) {
        let _t = self.timer(Hook::Xmit);
        let ifindex = dev.ifindex();
        if self.outer.contains(ifindex) && dev.in_init_net() {
            self.xmit_outer(cx, skb, dev);
        } else if ifindex != ffi::LOOPBACK_IFINDEX {
            // A container's packet usually leaves in its sender's context;
            // one that had to wait (for its neighbour) leaves from a softirq.
            if ffi::in_task() {
                self.xmit_inner(skb, dev);
            } else {
                self.xmit_deferred(skb, dev);
            }
        }
    }

    /// A packet leaves through an outer device: end of an egress window.
    fn xmit_outer(&self, cx: &ProbeCx<'_>, skb: Skb<'_>, dev: Dev<'_>) {
        let Some(id) = Self::identify(skb, false, Side::Egress) else {
            return;
        };
        let now = ffi::mono_ns();
        let owner = |e: &Entry<EGRESS_WORDS>| {
            let handle = e.data.get(EGRESS_NS).copied().unwrap_or(0);
            self.registry.get(cx, handle)
        };
        match self.egress.take(id.key, now) {
            Take::Hit(e) => {
                if let (Some(state), Some(&t)) = (owner(&e), e.data.get(EGRESS_T)) {
                    Self::report(state, Direction::Egress, t, now, id.pktid);
                }
            }
            Take::Expired(e) => {
                if let Some(state) = owner(&e) {
                    bump(&state.counters.egress_expired);
                }
            }
            Take::Collided(e) => {
                if let Some(state) = owner(&e) {
                    bump(&state.counters.egress_collisions);
                }
            }
            // A host process of a capturing initial namespace sends straight
            // through the outer device: the window has no inner device.
            Take::Miss if ffi::in_task() => {
                ffi::with_current_net(|net| {
                    if net.state().enabled() && dev.in_net(net) {
                        if let Some(t) = self.send_start(now, skb.sock(), &id) {
                            Self::report(net.state(), Direction::Egress, t, now, id.pktid);
                        }
                    }
                });
            }
            Take::Miss => {}
        }
    }

    /// The start of the current task's send syscall, if it is in one and
    /// the packet `id`, owned by socket `sock` (0: none), is what it sent;
    /// counts a packet sent by it.
    ///
    /// A TCP segment is that syscall's only if it carries the bytes the
    /// syscall wrote: TCP also sends older data and retransmissions from
    /// inside a later send (when it processes what arrived meanwhile).
    fn send_start(&self, now: u64, sock: u64, id: &Identity) -> Option<u64> {
        let (task, tid) = ffi::current_task();
        self.tasks
            .update(task, now, |e| {
                let word = |i: usize| e.data.get(i).copied().unwrap_or(0);
                let t = word(TASK_SEND_T);
                if word(TASK_TID) != u64::from(tid) || t == 0 {
                    return None;
                }
                if sock != 0 && sock != word(TASK_SOCK) {
                    return None;
                }
                if id.proto == Proto::Tcp {
                    let start = word(TASK_TCP_SEQ);
                    // Serial number arithmetic (RFC 1982): the segment
                    // starts at or after the syscall's first byte.
                    let ahead = id.pktid.wrapping_sub(start as u32) as i32;
                    if start >> 32 != 1 || ahead < 0 {
                        return None;
                    }
                }
                if let Some(sent) = e.data.get_mut(TASK_SENT) {
                    *sent = sent.wrapping_add(1);
                }
                Some(t)
            })
            .flatten()
    }

    /// Remembers that a send on `sock` that started at `t` left its packet
    /// behind.
    fn defer(&self, sock: u64, t: u64, now: u64) {
        let pushed = self.deferred.update(sock, now, |e| {
            let n = e.data.get(DEFER_COUNT).copied().unwrap_or(u64::MAX);
            let Some(slot) = usize::try_from(n).ok().and_then(|n| {
                (n < MAX_DEFERRED)
                    .then(|| e.data.get_mut(DEFER_FIRST + n))
                    .flatten()
            }) else {
                return;
            };
            *slot = t;
            if let Some(c) = e.data.get_mut(DEFER_COUNT) {
                *c = n.wrapping_add(1);
            }
        });
        if pushed.is_none() {
            let data = fill::<DEFER_WORDS>(&[(DEFER_COUNT, 1), (DEFER_FIRST, t)]);
            self.deferred.insert(sock, now, &data, |_| false);
        }
    }

    /// Takes the oldest deferred send start of `sock`.
    fn undefer(&self, sock: u64, now: u64) -> Option<u64> {
        self.deferred
            .update(sock, now, |e| {
                let n = e.data.get(DEFER_COUNT).copied().unwrap_or(0);
                if n == 0 || n > MAX_DEFERRED as u64 {
                    return None;
                }
                let first = e.data.get(DEFER_FIRST).copied();
                // Shift the rest down (by hand: `rotate_left` has a panic path).
                for i in DEFER_FIRST..DEFER_WORDS - 1 {
                    let next = e.data.get(i.wrapping_add(1)).copied().unwrap_or(0);
                    if let Some(w) = e.data.get_mut(i) {
                        *w = next;
                    }
                }
                if let Some(c) = e.data.get_mut(DEFER_COUNT) {
                    *c = n - 1;
                }
                first
            })
            .flatten()
    }

    /// A packet leaves a device of a capturing namespace from a softirq: if
    /// a datagram socket's send left it behind, its egress window starts at
    /// that send. The softirq may also run on the stack of the sending task,
    /// still in its send (e.g. when the neighbour's answer is processed at
    /// once): then the task's entry for that socket has the start. (TCP is
    /// not followed here: a segment sent later by TCP itself, e.g. a
    /// retransmission, belongs to no particular send.)
    fn xmit_deferred(&self, skb: Skb<'_>, dev: Dev<'_>) {
        let sock = skb.sock();
        if sock == 0 {
            return;
        }
        dev.with_net(|net| {
            let state = net.state();
            if !state.enabled() {
                return;
            }
            let Some(id) = Self::identify(skb, false, Side::Egress) else {
                return;
            };
            if id.proto == Proto::Tcp {
                return;
            }
            let now = ffi::mono_ns();
            let t = self
                .undefer(sock, now)
                .or_else(|| self.send_start(now, sock, &id));
            if let Some(t) = t {
                self.store_egress(state, &id, t, now);
            }
        });
    }

    /// A packet leaves a device of the sending task's own namespace: if the
    /// task is in a send syscall of a capturing namespace, the packet's
    /// egress window starts at that syscall.
    fn xmit_inner(&self, skb: Skb<'_>, dev: Dev<'_>) {
        ffi::with_current_net(|net| {
            let state = net.state();
            if !state.enabled() || !dev.in_net(net) {
                return;
            }
            let Some(id) = Self::identify(skb, false, Side::Egress) else {
                return;
            };
            let now = ffi::mono_ns();
            let Some(t) = self.send_start(now, skb.sock(), &id) else {
                return;
            };
            self.store_egress(state, &id, t, now);
        });
    }

    /// Stores the packet `id` of the namespace with `state`, sent by a
    /// syscall that started at `t`, to await an outer device.
    fn store_egress(&self, state: &NetState, id: &Identity, t: u64, now: u64) {
        let handle = state.handle();
        if handle == 0 {
            return;
        }
        {
            let data = fill::<EGRESS_WORDS>(&[
                (EGRESS_T, t),
                (EGRESS_NS, handle),
                (EGRESS_ID, u64::from(id.pktid)),
            ]);
            // The same packet again in the same syscall (another device of
            // the namespace on its way out) is not a collision.
            let same = |e: &Entry<EGRESS_WORDS>| {
                e.data.get(EGRESS_T) == Some(&t) && e.data.get(EGRESS_NS) == Some(&handle)
            };
            let c = &state.counters;
            match self.egress.insert(id.key, now, &data, same) {
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

    /// `netif_receive_skb`: a packet arrives; on an outer device it starts an
    /// ingress window.
    pub(crate) fn receive(&self, _cx: &ProbeCx<'_>, skb: Skb<'_>) {
        let Some(dev) = skb.dev() else { return };
        if !self.outer.contains(dev.ifindex()) || !dev.in_init_net() {
            return;
        }
        let _t = self.timer(Hook::Receive);
        let Some(id) = Self::identify(skb, true, Side::Ingress) else {
            return;
        };
        let now = ffi::mono_ns();
        let c = &self.counters;
        match self
            .ingress
            .insert(id.key, now, &[u64::from(id.pktid)], |_| false)
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
    pub(crate) fn copy_datagram(&self, _cx: &ProbeCx<'_>, skb: Skb<'_>) {
        let _t = self.timer(Hook::CopyDatagram);
        self.deliver(skb);
    }

    /// `consume_skb`: a packet is freed after use. In a task, that is a
    /// receiving syscall done with it; UDP copies small datagrams without
    /// `skb_copy_datagram_iovec`, so this is where they are seen.
    pub(crate) fn consume(&self, _cx: &ProbeCx<'_>, skb: Skb<'_>) {
        let _t = self.timer(Hook::Consume);
        // Raw, ping and TCP sockets own the packets they queue and hand them
        // out through `skb_copy_datagram_iovec`; a UDP socket's queued
        // packets have no owner (`skb_steal_sock`). Only those matter here.
        if skb.sock() != 0 {
            return;
        }
        self.deliver(skb);
    }

    /// A packet reaches a task: if it came in through an outer device and
    /// the task is in a receiving syscall, remember when, to report at the
    /// syscall's exit.
    fn deliver(&self, skb: Skb<'_>) {
        if !ffi::in_task() || !has_bit(&self.syscalls.recv, ffi::current_syscall_nr()) {
            return;
        }
        ffi::with_current_net(|net| {
            let state = net.state();
            if !state.enabled() {
                return;
            }
            let Some(id) = Self::identify(skb, false, Side::Ingress) else {
                return;
            };
            let now = ffi::mono_ns();
            let e = match self.ingress.take(id.key, now) {
                Take::Hit(e) => e,
                Take::Expired(_) => return bump(&state.counters.ingress_expired),
                Take::Collided(_) => return bump(&state.counters.ingress_collisions),
                Take::Miss => return,
            };
            let pktid = e.data.get(INGRESS_ID).copied().unwrap_or(0);
            self.add_pending(state, now, e.time, pktid);
        });
    }

    /// Adds a received packet to the current task's pending list.
    fn add_pending(&self, state: &NetState, now: u64, t_rx: u64, pktid: u64) {
        let (task, tid) = ffi::current_task();
        let fresh = fill::<TASK_WORDS>(&[(TASK_TID, u64::from(tid))]);
        let (added, placed) = self.tasks.upsert(task, now, &fresh, |data| {
            if data.get(TASK_TID).copied() != Some(u64::from(tid)) {
                // A dead task's leftover: start over.
                *data = fresh;
            }
            push_pending(data, t_rx, pktid)
        });
        if added == Some(false) {
            bump(&state.counters.ingress_unreported);
        }
        if let Insert::Evicted(_) = placed {
            bump(&self.counters.tasks_evicted);
        }
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
}

/// Appends (t_rx, pktid) to a task entry's pending list; false when full.
fn push_pending(data: &mut [u64; TASK_WORDS], t_rx: u64, pktid: u64) -> bool {
    let n = data.get(TASK_PENDING).copied().unwrap_or(u64::MAX);
    let Ok(i) = usize::try_from(n) else {
        return false;
    };
    if i >= MAX_PENDING {
        return false;
    }
    let at = TASK_FIRST + 2 * i;
    let Some([t, id]) = data.get_mut(at..at + 2) else {
        return false;
    };
    *t = t_rx;
    *id = pktid;
    if let Some(p) = data.get_mut(TASK_PENDING) {
        *p = n.wrapping_add(1);
    }
    true
}
