// SPDX-License-Identifier: GPL-2.0

//! Probes on the kernel's tracepoints, and on one kernel function.
//!
//! A handler implements [`Hooks`], one method per hook, and a
//! [`ProbeRegistration`] attaches it: the handler is the probes' data
//! pointer, so every probe call reaches it without a global. Each hook gets
//! one small `extern "C"` probe, generic over the handler, whose type is the
//! one `mace_helpers.h` declares for that hook; the C side checks those
//! types against the tracepoints' `TP_PROTO` with the kernel's own
//! `check_trace_callback_type_<name>()` (and the hooked function's against
//! its declaration), so both sides are checked by a compiler. All probes
//! share one prologue, [`enter`].
//!
//! Most hooks are tracepoints; where no tracepoint sees what mace needs,
//! kernel functions are hooked through ftrace (`mace_helpers.h` says why,
//! hook by hook). A task's sends and its sockets' receives are followed on
//! the socket calls (the send syscalls' entry points and
//! `sock_write_iter()`, hooked through ftrace, and the `sock_recv_length`
//! tracepoint), or, with the `syscall_tracepoints` parameter or where the
//! kernel lacks those, on `sys_enter` and `sys_exit`: the handler says
//! which it wants ([`Hooks::wants`]), and both pairs call the same methods
//! ([`Hooks::sys_enter`], [`Hooks::sys_exit`]).
//!
//! Context: up to 6.12, tracepoints and ftrace callbacks run with
//! preemption disabled, which is an RCU read-side critical section. Later
//! kernels call syscall probes preemptible (faultable, under RCU tasks
//! trace) and others under SRCU: there, built with `--cfg
//! mace_tp_preemptible`, the prologue enters an RCU read-side critical
//! section itself. Either way a probe holds a [`ProbeCx`] that proves it
//! runs in one, and must not sleep.
//!
//! The tracepoints' pointer arguments (the registers, packets and devices)
//! are never null: every call site has used the pointer before, and the
//! kernel's own list of raw tracepoints whose pointer arguments may be
//! null, for BPF programs (`raw_tp_null_args` in `kernel/bpf/btf.c`), names
//! none of these. Their probes borrow them without a test (`from_nonnull`),
//! which every probe hit paid for (two to four instructions; profile). So
//! does `netif_receive_skb`'s with the packet's device, which its only
//! call site (`__netif_receive_skb_core()`) reads right after the
//! tracepoint (`skb->dev->ifindex`). The hooked functions' arguments are
//! tested.

use super::arc_data;
use super::skb::{Dev, Skb, Sock};
pub(crate) use super::sync::ProbeCx;
#[cfg(mace_tp_preemptible)]
use super::sync::RcuReadLock;
use super::sys;
use super::task::Regs;
use core::ffi::{c_int, c_long, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The tracepoints and functions mace hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Hook {
    /// `sys_enter`: a task enters a syscall.
    SysEnter = sys::MACE_HOOK_SYS_ENTER,
    /// `sys_exit`: a task leaves a syscall.
    SysExit = sys::MACE_HOOK_SYS_EXIT,
    /// `net_dev_queue`: a packet is handed to a device, before its qdisc.
    NetDevQueue = sys::MACE_HOOK_NET_DEV_QUEUE,
    /// `net_dev_start_xmit`: a device starts transmitting a packet.
    NetDevStartXmit = sys::MACE_HOOK_NET_DEV_START_XMIT,
    /// `netif_receive_skb`: a device's packet enters the stack.
    NetifReceiveSkb = sys::MACE_HOOK_NETIF_RECEIVE_SKB,
    /// `skb_copy_datagram_iovec`: a packet is copied to a task.
    SkbCopyDatagramIovec = sys::MACE_HOOK_SKB_COPY_DATAGRAM_IOVEC,
    /// `skb_consume_udp()`: a UDP socket's reader is done with a datagram
    /// (a function, hooked through ftrace).
    SkbConsumeUdp = sys::MACE_HOOK_SKB_CONSUME_UDP,
    /// `__neigh_event_send()`: a packet waits for its neighbour to be
    /// resolved (a function, hooked through ftrace).
    NeighEventSend = sys::MACE_HOOK_NEIGH_EVENT_SEND,
    /// The function `packet_poll()`.
    PacketPoll = sys::MACE_HOOK_PACKET_POLL,
    /// The function `packet_recvmsg()`.
    PacketRecvmsg = sys::MACE_HOOK_PACKET_RECVMSG,
    /// `sk_data_ready`: a socket has something to read (the probe sees
    /// packet sockets only).
    SkDataReady = sys::MACE_HOOK_SK_DATA_READY,
    /// `__consume_stateless_skb()`: a UDP datagram is freed (a function,
    /// hooked through ftrace).
    ConsumeStatelessSkb = sys::MACE_HOOK_CONSUME_STATELESS_SKB,
    /// The send calls: a task enters a send syscall, or writes to a socket
    /// (functions, hooked through one ftrace_ops); in place of `sys_enter`.
    SendCalls = sys::MACE_HOOK_SEND_CALLS,
    /// `sock_recv_length`: a socket's receive returns to the task; in place
    /// of `sys_exit`.
    SockRecvLength = sys::MACE_HOOK_SOCK_RECV_LENGTH,
}

/// Number of [`Hook`]s.
pub(crate) const HOOKS: usize = sys::MACE_HOOKS as usize;

impl Hook {
    /// Every hook, in order.
    pub(crate) const ALL: [Hook; HOOKS] = [
        Hook::SysEnter,
        Hook::SysExit,
        Hook::NetDevQueue,
        Hook::NetDevStartXmit,
        Hook::NetifReceiveSkb,
        Hook::SkbCopyDatagramIovec,
        Hook::SkbConsumeUdp,
        Hook::NeighEventSend,
        Hook::PacketPoll,
        Hook::PacketRecvmsg,
        Hook::SkDataReady,
        Hook::ConsumeStatelessSkb,
        Hook::SendCalls,
        Hook::SockRecvLength,
    ];

    /// Whether mace works without this hook: without `packet_poll()`,
    /// `packet_recvmsg()` (a kernel with `CONFIG_PACKET=m`) or
    /// `sk_data_ready` (before 6.3) it does not see packet sockets' readers,
    /// and `tap_end` `read` works as `stamp`.
    pub(crate) fn optional(self) -> bool {
        matches!(
            self,
            Hook::PacketPoll | Hook::PacketRecvmsg | Hook::SkDataReady
        )
    }

    /// The hook's position in [`Hook::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The name of its tracepoint or function.
    pub(crate) fn name(self) -> &'static str {
        // SAFETY: Returns a pointer into a static table of string literals,
        // or null.
        let name = unsafe { sys::mace_hook_name(self as sys::mace_hook) };
        if name.is_null() {
            return "?";
        }
        // SAFETY: A non-null result is a static NUL-terminated string.
        unsafe { super::c_str(name) }.to_str().unwrap_or("?")
    }
}

/// What runs on the waypoints of `breakdown`: second probes on three of the
/// tracepoints [`Hooks`] sees, and one on `sk_data_ready` of IP sockets,
/// registered only while some namespace breaks its latencies down
/// ([`WaypointRegistration`]).
///
/// The same rules as for [`Hooks`]: atomic context, every hit of the
/// tracepoint on the machine, no sleeping, no allocation, bounded loops.
pub(crate) trait Waypoints: Send + Sync + 'static {
    /// `net_dev_queue`: `skb` is handed to its device, before its qdisc.
    fn waypoint_queue(&self, cx: &ProbeCx<'_>, skb: &Skb);
    /// `net_dev_start_xmit`: `dev` starts transmitting `skb`.
    fn waypoint_xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev);
    /// `netif_receive_skb`: `skb` enters the stack from its device.
    fn waypoint_receive(&self, cx: &ProbeCx<'_>, skb: &Skb);
    /// `sk_data_ready` of an IP socket `sk`: it has something new to read.
    fn waypoint_ready(&self, cx: &ProbeCx<'_>, sk: &Sock);
}

/// What runs on each tracepoint mace hooks.
///
/// Every method runs in atomic context, on any CPU, for every hit of its
/// tracepoint on the machine while registered: it must not sleep, allocate
/// (with a sleeping allocation) or loop without bound.
pub(crate) trait Hooks: Send + Sync + 'static {
    /// `sys_enter`: the current task enters syscall `nr`.
    fn sys_enter(&self, cx: &ProbeCx<'_>, regs: &Regs, nr: i64);
    /// `sys_exit`: the current task leaves a syscall, which returns `ret`.
    fn sys_exit(&self, cx: &ProbeCx<'_>, regs: &Regs, ret: i64);
    /// `net_dev_queue`: `skb` is handed to its device (`skb.dev()`), before
    /// the device's qdisc.
    fn net_dev_queue(&self, cx: &ProbeCx<'_>, skb: &Skb);
    /// `net_dev_start_xmit`: `dev` starts transmitting `skb`.
    fn net_dev_start_xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev);
    /// `netif_receive_skb`: `skb` enters the stack from its device `dev`.
    fn netif_receive_skb(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev);
    /// `skb_copy_datagram_iovec`: `len` bytes of `skb` are copied to a task.
    fn skb_copy_datagram_iovec(&self, cx: &ProbeCx<'_>, skb: &Skb, len: i32);
    /// `skb_consume_udp()`: the reader of UDP socket `sk` is done with
    /// `skb`, which it received (or peeked at).
    fn skb_consume_udp(&self, cx: &ProbeCx<'_>, sk: &Sock, skb: &Skb);
    /// `__neigh_event_send()`: `skb`, on its way out through `skb.dev()`,
    /// waits for its neighbour to be resolved.
    fn neigh_event_send(&self, cx: &ProbeCx<'_>, skb: &Skb);
    /// `packet_recvmsg()` (`hook`): the current task, in a syscall, reads
    /// packet socket `sk`; `sk_data_ready`: packet socket `sk` has
    /// something to read.
    fn packet_read(&self, cx: &ProbeCx<'_>, hook: Hook, sk: &Sock);
    /// `packet_poll()`: the current task, in a syscall, waits for packet
    /// socket `sk`, in the first pass of a `poll()` or `select()` over its
    /// files (`first`: its wait's start) or after a wakeup.
    fn packet_poll(&self, cx: &ProbeCx<'_>, sk: &Sock, first: bool);
    /// Whether the handler's probe is to be attached to `hook`; asked once
    /// per hook, at registration.
    fn wants(&self, hook: Hook) -> bool;
    /// `__consume_stateless_skb()`: `skb`, a UDP datagram, is freed.
    fn consume_stateless_skb(&self, cx: &ProbeCx<'_>, skb: &Skb);
    /// Whether every hit is to be timed ([`Hooks::account`]); asked once, at
    /// registration, which attaches timed probes or probes without a clock.
    fn timed(&self) -> bool;
    /// A timed hit of `hook` took `ns` nanoseconds.
    fn account(&self, hook: Hook, ns: u64);
}

/// The one prologue of every probe: the handler from the probe's data, and
/// the proof of an RCU read-side critical section, for `f`, the hit of
/// `hook`; timed if `TIMED`.
///
/// Without a clock, `f` is the last thing the probe does: the handler's
/// filters, inlined here, return at once for what they turn away, and the
/// work they call is a tail call, so that a hit that is turned away saves
/// no registers and keeps no frame.
///
/// # Safety
///
/// `data` is the handler of a live [`ProbeRegistration<T>`] and the call
/// comes from one of the hooks it registered on.
#[inline(always)]
unsafe fn enter<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    hook: Hook,
    f: impl FnOnce(&T, &ProbeCx<'_>),
) {
    // SAFETY: `data` is the `T` the registration keeps alive until no probe
    // runs any more (its `drop` unregisters and synchronizes first).
    let handler = unsafe { &*data.cast_const().cast::<T>() };
    // Kernels that call probes outside an RCU read-side critical section;
    // up to 6.12, the tracepoint disabled preemption, which is one already.
    #[cfg(mace_tp_preemptible)]
    let _rcu = RcuReadLock::new();
    // SAFETY: Inside an RCU read-side critical section until `f` returns:
    // the tracepoint's, or `_rcu`.
    let cx = unsafe { ProbeCx::new() };
    if TIMED {
        let start = super::mono_ns();
        f(handler, &cx);
        handler.account(hook, super::mono_ns().wrapping_sub(start));
    } else {
        f(handler, &cx);
    }
}

/// The prologue of the waypoint probes: as [`enter`], never timed.
///
/// # Safety
///
/// `data` is the handler of a live [`WaypointRegistration<T>`] and the call
/// comes from one of the hooks it registered on.
#[inline(always)]
unsafe fn enter_waypoint<T: Waypoints>(data: *mut c_void, f: impl FnOnce(&T, &ProbeCx<'_>)) {
    // SAFETY: `data` is the `T` the registration keeps alive until no probe
    // runs any more (its `drop` unregisters and synchronizes first).
    let handler = unsafe { &*data.cast_const().cast::<T>() };
    #[cfg(mace_tp_preemptible)]
    let _rcu = RcuReadLock::new();
    // SAFETY: Inside an RCU read-side critical section until `f` returns:
    // the tracepoint's, or `_rcu`.
    let cx = unsafe { ProbeCx::new() };
    f(handler, &cx);
}

/// # Safety
///
/// Called by the `net_dev_queue` tracepoint, with data from
/// [`WaypointRegistration::register`].
unsafe extern "C" fn waypoint_queue<T: Waypoints>(data: *mut c_void, skb: *mut sys::sk_buff) {
    // SAFETY: See above; the packet is alive during the call, and not
    // null (module documentation).
    unsafe {
        enter_waypoint::<T>(data, |h, cx| {
            h.waypoint_queue(cx, Skb::from_nonnull(skb));
        })
    }
}

/// # Safety
///
/// Called by the `net_dev_start_xmit` tracepoint, with data from
/// [`WaypointRegistration::register`].
unsafe extern "C" fn waypoint_xmit<T: Waypoints>(
    data: *mut c_void,
    skb: *const sys::sk_buff,
    dev: *const sys::net_device,
) {
    // SAFETY: See above; the packet and the device are alive during the
    // call, and not null (module documentation).
    unsafe {
        enter_waypoint::<T>(data, |h, cx| {
            h.waypoint_xmit(cx, Skb::from_nonnull(skb), Dev::from_nonnull(dev));
        })
    }
}

/// # Safety
///
/// Called by the `netif_receive_skb` tracepoint, with data from
/// [`WaypointRegistration::register`].
unsafe extern "C" fn waypoint_receive<T: Waypoints>(data: *mut c_void, skb: *mut sys::sk_buff) {
    // SAFETY: See above; the packet is alive during the call, and not
    // null (module documentation).
    unsafe {
        enter_waypoint::<T>(data, |h, cx| {
            h.waypoint_receive(cx, Skb::from_nonnull(skb));
        })
    }
}

/// # Safety
///
/// Called by the C filter of `sk_data_ready` for IP sockets, with data
/// from [`WaypointRegistration::register`] and the socket.
unsafe extern "C" fn waypoint_ready<T: Waypoints>(data: *mut c_void, sk: *mut sys::sock) {
    // SAFETY: See above; the socket is alive during the call.
    unsafe {
        enter_waypoint::<T>(data, |h, cx| {
            if let Some(sk) = Sock::from_raw(sk) {
                h.waypoint_ready(cx, sk);
            }
        })
    }
}

/// The waypoint probes on tracepoints, typed by `mace_helpers.h` (so the
/// compiler checks each against its tracepoint), then untyped.
fn waypoint_probes<T: Waypoints>() -> [(Hook, *mut c_void); 3] {
    let queue: sys::mace_net_dev_queue_probe = Some(waypoint_queue::<T>);
    let xmit: sys::mace_net_dev_start_xmit_probe = Some(waypoint_xmit::<T>);
    let receive: sys::mace_netif_receive_skb_probe = Some(waypoint_receive::<T>);
    let null = core::ptr::null_mut;
    [
        (
            Hook::NetDevQueue,
            queue.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::NetDevStartXmit,
            xmit.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::NetifReceiveSkb,
            receive.map_or(null(), |f| f as *mut c_void),
        ),
    ]
}

/// A handler's waypoint probes, attached to `net_dev_queue`,
/// `net_dev_start_xmit`, `netif_receive_skb` and (IP sockets)
/// `sk_data_ready`; dropping detaches them and waits until none runs any
/// more, then drops the registration's reference to the handler.
///
/// # Invariants
///
/// Every probe of [`waypoint_probes::<T>`] is registered with `handler` as
/// data, and [`waypoint_ready::<T>`] through `mace_ready_ip_register()`.
pub(crate) struct WaypointRegistration<T: Waypoints> {
    handler: Arc<T>,
}

impl<T: Waypoints> WaypointRegistration<T> {
    /// Attaches `handler`'s waypoint probes, all or none. A second
    /// registration while one exists fails (`EBUSY` from the C filter of
    /// `sk_data_ready`, which exists once) and attaches nothing.
    pub(crate) fn register(handler: Arc<T>) -> Result<Self> {
        let data = arc_data(&handler);
        let ready: sys::mace_packet_read_probe = Some(waypoint_ready::<T>);
        // SAFETY: `ready` has the filter's probe type, and `data` stays
        // valid until `drop` has unregistered it and synchronized.
        let err = unsafe { sys::mace_ready_ip_register(ready, data) };
        if err != 0 {
            pr_err!(
                "cannot attach the waypoint to sk_data_ready: error {}\n",
                err
            );
            return Err(Error::from_errno(err));
        }
        let probes = waypoint_probes::<T>();
        for (i, &(hook, probe)) in probes.iter().enumerate() {
            // SAFETY: `probe` has the type the tracepoint of `hook` calls
            // (checked on both sides), and `data` stays valid until `drop`
            // (or the error path below) has unregistered it and
            // synchronized.
            let err = unsafe { sys::mace_hook_register(hook as sys::mace_hook, probe, data) };
            if err == 0 {
                continue;
            }
            pr_err!(
                "cannot attach a waypoint to tracepoint {}: error {}\n",
                hook.name(),
                err
            );
            for &(done, probe) in probes.iter().take(i) {
                // SAFETY: Registered just above.
                unsafe { sys::mace_hook_unregister(done as sys::mace_hook, probe, data) };
            }
            // SAFETY: Registered above; then process context.
            unsafe {
                sys::mace_ready_ip_unregister();
                sys::mace_tp_sync();
            }
            return Err(Error::from_errno(err));
        }
        // INVARIANT: every probe was registered with `handler`'s data.
        Ok(Self { handler })
    }
}

impl<T: Waypoints> Drop for WaypointRegistration<T> {
    fn drop(&mut self) {
        let data = arc_data(&self.handler);
        for (hook, probe) in waypoint_probes::<T>() {
            // SAFETY: Registered by `register` (type invariants).
            unsafe { sys::mace_hook_unregister(hook as sys::mace_hook, probe, data) };
        }
        // SAFETY: Registered by `register`; then process context:
        // afterwards no probe of ours runs, so the handler may go.
        unsafe {
            sys::mace_ready_ip_unregister();
            sys::mace_tp_sync();
        }
    }
}

/// # Safety
///
/// Called by the `sys_enter` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn sys_enter<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    regs: *mut sys::pt_regs,
    id: c_long,
) {
    // SAFETY: See above; the tracepoint passes the current task's
    // registers, never null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::SysEnter, |h, cx| {
            h.sys_enter(cx, Regs::from_nonnull(regs), id);
        })
    }
}

/// # Safety
///
/// Called by the function hook of the send calls, with data from
/// [`ProbeRegistration::register`], the current task's registers and its
/// syscall's number.
unsafe extern "C" fn send_calls<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    regs: *mut sys::pt_regs,
    id: c_long,
) {
    // SAFETY: See above; the hook passes the current task's registers
    // (task_pt_regs()), never null.
    unsafe {
        enter::<T, TIMED>(data, Hook::SendCalls, |h, cx| {
            h.sys_enter(cx, Regs::from_nonnull(regs), id);
        })
    }
}

/// # Safety
///
/// Called by the `sock_recv_length` tracepoint, with data from
/// [`ProbeRegistration::register`], in the context of the task whose
/// receive returns `ret` (`sock_recvmsg()`'s caller).
unsafe extern "C" fn sock_recv_length<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    _sk: *mut sys::sock,
    ret: c_int,
    _flags: c_int,
) {
    // SAFETY: The tracepoint runs in the receiving task's context, and the
    // registers are used during this call only.
    let Some(regs) = (unsafe { super::task::current_task_regs() }) else {
        // A kernel thread's or an io_uring worker's receive: no syscall.
        return;
    };
    // SAFETY: See above.
    unsafe {
        enter::<T, TIMED>(data, Hook::SockRecvLength, |h, cx| {
            h.sys_exit(cx, regs, c_long::from(ret));
        })
    }
}

/// # Safety
///
/// Called by the `sys_exit` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn sys_exit<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    regs: *mut sys::pt_regs,
    ret: c_long,
) {
    // SAFETY: See above; the tracepoint passes the current task's
    // registers, never null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::SysExit, |h, cx| {
            h.sys_exit(cx, Regs::from_nonnull(regs), ret);
        })
    }
}

/// # Safety
///
/// Called by the `net_dev_queue` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn net_dev_queue<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *mut sys::sk_buff,
) {
    // SAFETY: See above; the packet is alive during the call, and not
    // null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::NetDevQueue, |h, cx| {
            h.net_dev_queue(cx, Skb::from_nonnull(skb));
        })
    }
}

/// # Safety
///
/// Called by the `net_dev_start_xmit` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn net_dev_start_xmit<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *const sys::sk_buff,
    dev: *const sys::net_device,
) {
    // SAFETY: See above; the packet and the device are alive during the
    // call, and not null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::NetDevStartXmit, |h, cx| {
            h.net_dev_start_xmit(cx, Skb::from_nonnull(skb), Dev::from_nonnull(dev));
        })
    }
}

/// # Safety
///
/// Called by the `netif_receive_skb` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn netif_receive_skb<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *mut sys::sk_buff,
) {
    // SAFETY: See above; the packet and its device are alive during the
    // call, and not null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::NetifReceiveSkb, |h, cx| {
            let skb = Skb::from_nonnull(skb);
            h.netif_receive_skb(cx, skb, skb.dev_nonnull());
        })
    }
}

/// # Safety
///
/// Called by the `skb_copy_datagram_iovec` tracepoint, with data from
/// [`ProbeRegistration::register`].
unsafe extern "C" fn skb_copy_datagram_iovec<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *const sys::sk_buff,
    len: c_int,
) {
    // SAFETY: See above; the packet is alive during the call, and not
    // null (module documentation).
    unsafe {
        enter::<T, TIMED>(data, Hook::SkbCopyDatagramIovec, |h, cx| {
            h.skb_copy_datagram_iovec(cx, Skb::from_nonnull(skb), len);
        })
    }
}

/// # Safety
///
/// Called by the function hook of `skb_consume_udp()`, with data from
/// [`ProbeRegistration::register`] and the function's first two arguments.
unsafe extern "C" fn skb_consume_udp<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    sk: *mut sys::sock,
    skb: *mut sys::sk_buff,
) {
    // SAFETY: See above; the datagram is alive during the call (the
    // function frees it after the hook), and so is the socket its reader
    // reads it from.
    unsafe {
        enter::<T, TIMED>(data, Hook::SkbConsumeUdp, |h, cx| {
            if let (Some(sk), Some(skb)) = (Sock::from_raw(sk), Skb::from_raw(skb)) {
                h.skb_consume_udp(cx, sk, skb);
            }
        })
    }
}

/// # Safety
///
/// Called by the function hook of `__neigh_event_send()`, with data from
/// [`ProbeRegistration::register`] and the function's packet.
unsafe extern "C" fn neigh_event_send<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *mut sys::sk_buff,
) {
    // SAFETY: See above; the packet is alive during the call (the function
    // queues or frees it after the hook).
    unsafe {
        enter::<T, TIMED>(data, Hook::NeighEventSend, |h, cx| {
            if let Some(skb) = Skb::from_raw(skb) {
                h.neigh_event_send(cx, skb);
            }
        })
    }
}

/// The body of the probes of `packet_recvmsg()` and `sk_data_ready`.
///
/// # Safety
///
/// `data` is from [`ProbeRegistration::register`]; `sk` is null or the
/// packet socket the hooked function or tracepoint was called for.
unsafe fn packet_read<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    hook: Hook,
    sk: *mut sys::sock,
) {
    // SAFETY: the caller's contract; `sk` is valid during the hooked call.
    unsafe {
        enter::<T, TIMED>(data, hook, |h, cx| {
            if let Some(sk) = Sock::from_raw(sk) {
                h.packet_read(cx, hook, sk);
            }
        })
    }
}

/// # Safety
///
/// Called by the function hook of `packet_poll()`, with data from
/// [`ProbeRegistration::register`] and the packet socket.
unsafe extern "C" fn packet_poll<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    sk: *mut sys::sock,
    first: bool,
) {
    // SAFETY: the caller's contract; `sk` is valid during the hooked call.
    unsafe {
        enter::<T, TIMED>(data, Hook::PacketPoll, |h, cx| {
            if let Some(sk) = Sock::from_raw(sk) {
                h.packet_poll(cx, sk, first);
            }
        })
    }
}

/// # Safety
///
/// Called by the function hook of `packet_recvmsg()`, with data from
/// [`ProbeRegistration::register`] and the packet socket.
unsafe extern "C" fn packet_recvmsg<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    sk: *mut sys::sock,
) {
    // SAFETY: the caller's contract.
    unsafe { packet_read::<T, TIMED>(data, Hook::PacketRecvmsg, sk) }
}

/// # Safety
///
/// Called by the C filter of the `sk_data_ready` tracepoint, with data from
/// [`ProbeRegistration::register`] and a packet socket.
unsafe extern "C" fn sk_data_ready<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    sk: *mut sys::sock,
) {
    // SAFETY: the caller's contract.
    unsafe { packet_read::<T, TIMED>(data, Hook::SkDataReady, sk) }
}

/// # Safety
///
/// Called by the function hook of `__consume_stateless_skb()`, with data
/// from [`ProbeRegistration::register`] and the function's packet.
unsafe extern "C" fn consume_stateless_skb<T: Hooks, const TIMED: bool>(
    data: *mut c_void,
    skb: *mut sys::sk_buff,
) {
    // SAFETY: See above; the packet is alive during the call (the function
    // frees it after the hook).
    unsafe {
        enter::<T, TIMED>(data, Hook::ConsumeStatelessSkb, |h, cx| {
            if let Some(skb) = Skb::from_raw(skb) {
                h.consume_stateless_skb(cx, skb);
            }
        })
    }
}

/// `T`'s probe for each hook, typed by `mace_helpers.h` (so the compiler
/// checks each against its tracepoint), then untyped for registration.
fn probes<T: Hooks, const TIMED: bool>() -> [(Hook, *mut c_void); HOOKS] {
    let sys_enter: sys::mace_sys_enter_probe = Some(sys_enter::<T, TIMED>);
    let sys_exit: sys::mace_sys_exit_probe = Some(sys_exit::<T, TIMED>);
    let queue: sys::mace_net_dev_queue_probe = Some(net_dev_queue::<T, TIMED>);
    let xmit: sys::mace_net_dev_start_xmit_probe = Some(net_dev_start_xmit::<T, TIMED>);
    let receive: sys::mace_netif_receive_skb_probe = Some(netif_receive_skb::<T, TIMED>);
    let copy: sys::mace_skb_copy_datagram_iovec_probe = Some(skb_copy_datagram_iovec::<T, TIMED>);
    let udp: sys::mace_skb_consume_udp_probe = Some(skb_consume_udp::<T, TIMED>);
    let neigh: sys::mace_neigh_event_send_probe = Some(neigh_event_send::<T, TIMED>);
    let poll: sys::mace_packet_poll_probe = Some(packet_poll::<T, TIMED>);
    let recvmsg: sys::mace_packet_read_probe = Some(packet_recvmsg::<T, TIMED>);
    let ready: sys::mace_packet_read_probe = Some(sk_data_ready::<T, TIMED>);
    let stateless: sys::mace_consume_stateless_skb_probe = Some(consume_stateless_skb::<T, TIMED>);
    let send_calls: sys::mace_sys_enter_probe = Some(send_calls::<T, TIMED>);
    let recv_length: sys::mace_sock_recv_length_probe = Some(sock_recv_length::<T, TIMED>);
    let null = core::ptr::null_mut;
    [
        (
            Hook::SysEnter,
            sys_enter.map_or(null(), |f| f as *mut c_void),
        ),
        (Hook::SysExit, sys_exit.map_or(null(), |f| f as *mut c_void)),
        (
            Hook::NetDevQueue,
            queue.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::NetDevStartXmit,
            xmit.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::NetifReceiveSkb,
            receive.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::SkbCopyDatagramIovec,
            copy.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::SkbConsumeUdp,
            udp.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::NeighEventSend,
            neigh.map_or(null(), |f| f as *mut c_void),
        ),
        (Hook::PacketPoll, poll.map_or(null(), |f| f as *mut c_void)),
        (
            Hook::PacketRecvmsg,
            recvmsg.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::SkDataReady,
            ready.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::ConsumeStatelessSkb,
            stateless.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::SendCalls,
            send_calls.map_or(null(), |f| f as *mut c_void),
        ),
        (
            Hook::SockRecvLength,
            recv_length.map_or(null(), |f| f as *mut c_void),
        ),
    ]
}

/// A handler's probes, attached to every hook it wants (the optional ones
/// where the kernel has them); dropping detaches them and waits until none runs
/// any more, then drops the registration's reference to the handler.
///
/// # Invariants
///
/// Each probe of [`probes::<T, TIMED>`] (`TIMED` is `timed`) whose hook
/// `attached` marks is registered with `handler` as data; every hook that
/// the handler wants and that is not [`Hook::optional`] is.
pub(crate) struct ProbeRegistration<T: Hooks> {
    handler: Arc<T>,
    timed: bool,
    attached: [bool; HOOKS],
}

/// `T`'s probes, timed or not.
fn probes_of<T: Hooks>(timed: bool) -> [(Hook, *mut c_void); HOOKS] {
    if timed {
        probes::<T, true>()
    } else {
        probes::<T, false>()
    }
}

impl<T: Hooks> ProbeRegistration<T> {
    /// Attaches `handler` to every hook it wants ([`Hooks::wants`]), or to
    /// none, with timed probes if it asks for them ([`Hooks::timed`]); an
    /// optional hook the kernel lacks is left out and logged.
    ///
    /// A second registration while one exists fails and attaches nothing:
    /// with the same handler, the tracepoint code refuses the same probe and
    /// data twice (`EEXIST`); with another, the function hooks, which exist
    /// once, are busy (`EBUSY`). The required hooks come first, so the
    /// optional ones are never reached then.
    pub(crate) fn register(handler: Arc<T>) -> Result<Self> {
        let data = arc_data(&handler);
        let timed = handler.timed();
        let probes = probes_of::<T>(timed);
        let mut attached = [false; HOOKS];
        for (i, &(hook, probe)) in probes.iter().enumerate() {
            if !handler.wants(hook) {
                continue;
            }
            // SAFETY: `probe` has the type the tracepoint of `hook` calls
            // (checked on both sides), and `data` stays valid until `drop`
            // has unregistered it and synchronized.
            let err = unsafe { sys::mace_hook_register(hook as sys::mace_hook, probe, data) };
            if err == 0 {
                if let Some(a) = attached.get_mut(i) {
                    *a = true;
                }
                continue;
            }
            if hook.optional() {
                pr_notice!(
                    "cannot hook {} (error {}): packet sockets' readers are not seen, tap_end read works as stamp\n",
                    hook.name(),
                    err
                );
                continue;
            }
            pr_err!("cannot attach to hook {}: error {}\n", hook.name(), err);
            for (&(done, probe), _) in probes.iter().zip(attached).filter(|(_, a)| *a) {
                // SAFETY: Registered just above.
                unsafe { sys::mace_hook_unregister(done as sys::mace_hook, probe, data) };
            }
            // SAFETY: Process context.
            unsafe { sys::mace_tp_sync() };
            return Err(Error::from_errno(err));
        }
        // INVARIANT: `attached` marks the hooks registered with `handler`;
        // a required hook that failed returned above.
        Ok(Self {
            handler,
            timed,
            attached,
        })
    }

    /// Whether a probe is attached to `hook`.
    pub(crate) fn attached(&self, hook: Hook) -> bool {
        self.attached.get(hook.index()).copied().unwrap_or(false)
    }
}

impl<T: Hooks> Drop for ProbeRegistration<T> {
    fn drop(&mut self) {
        let data = arc_data(&self.handler);
        for ((hook, probe), _) in probes_of::<T>(self.timed)
            .into_iter()
            .zip(self.attached)
            .filter(|(_, a)| *a)
        {
            // SAFETY: Registered by `register` (type invariants).
            unsafe { sys::mace_hook_unregister(hook as sys::mace_hook, probe, data) };
        }
        // SAFETY: Process context; afterwards no probe of ours runs, so the
        // handler may go.
        unsafe { sys::mace_tp_sync() };
    }
}
