// SPDX-License-Identifier: GPL-2.0

//! The probes' entry points: each hook (tracepoint or function), and where
//! its hits go.
//!
//! The kernel layer calls these with the [`Capture`] the probes were
//! registered with (`control.rs` registers them while a namespace captures)
//! and a proof that they run in an RCU read-side critical section. Every hit
//! asks [`Capture::handles_hits`], where the benchmark's floor module
//! (`MACE_NULL_PROBES=1`) returns at once. With `self_cost=1` the probes
//! are timed ones, which count and time each hit ([`Hooks::account`]).
//!
//! | hook                      | path    | handler                      |
//! |---------------------------|---------|------------------------------|
//! | the send calls            | egress  | [`Capture::send_entered`]    |
//! | (or `sys_enter`)          | egress  | [`Capture::send_entered`]    |
//! | `net_dev_queue`           | egress  | [`Capture::queued`]          |
//! | `__neigh_event_send()`    | egress  | [`Capture::queued`]          |
//! | `net_dev_start_xmit`      | egress  | [`Capture::xmit`]            |
//! | `netif_receive_skb`       | ingress | [`Capture::receive`]         |
//! | `skb_copy_datagram_iovec` | ingress | [`Capture::copied`]          |
//! | `skb_consume_udp()`       | ingress | [`Capture::consumed_udp`]    |
//! | `__consume_stateless_skb()` | ingress | [`Capture::copied`]        |
//! | `packet_poll()`           | ingress | [`Capture::packet_polled`]   |
//! | `packet_recvmsg()`        | ingress | [`Capture::packet_read`]     |
//! | `sk_data_ready`           | ingress | [`Capture::packet_ready`]    |
//! | (the sweep, deferred)     | ingress | [`Capture::sweep_taps`]      |
//! | `sock_recv_length`        | ingress | [`Capture::syscall_exit`]    |
//! | (or `sys_exit`)           | ingress | [`Capture::syscall_exit`]    |
//!
//! The send calls and `sock_recv_length` are hooked unless the
//! `syscall_tracepoints` parameter asks for `sys_enter` and `sys_exit`, or
//! the kernel lacks them ([`SyscallHooks`]); both pairs reach the same
//! handlers, with the task's registers.

#![deny(unsafe_code)]

use crate::capture::Capture;
use crate::ffi::skb::{Dev, Skb, Sock};
use crate::ffi::task::Regs;
use crate::ffi::tracepoint::{Hook, Hooks, ProbeCx};
use crate::ffi::work::Sweep;
use crate::ffi::SyscallHooks;
use core::sync::atomic::Ordering::Relaxed;

impl Capture {
    /// Whether hits go to their handlers: not in the benchmark's floor
    /// module, whose probes return at once. A test, not a function taking
    /// the handler as a closure: a closure the compiler declines to inline
    /// costs the hit a call of its own.
    #[inline(always)]
    const fn handles_hits() -> bool {
        !cfg!(mace_null_probes)
    }
}

impl Hooks for Capture {
    fn sys_enter(&self, cx: &ProbeCx<'_>, regs: &Regs, nr: i64) {
        if Self::handles_hits() {
            self.send_entered(cx, regs, nr);
        }
    }

    // Inlined into the probe: most hits end in its first checks, and a
    // call of its own cost each of them five instructions (profile).
    #[inline(always)]
    fn sys_exit(&self, cx: &ProbeCx<'_>, regs: &Regs, ret: i64) {
        if Self::handles_hits() {
            self.syscall_exit(cx, regs, ret);
        }
    }

    // Inlined, with their filters, into the probes: most hits end there,
    // and a tail call into a function of their own cost each hit of these
    // two, which see every packet, three to five instructions (profile).
    #[inline(always)]
    fn net_dev_queue(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        if Self::handles_hits() {
            self.queued(cx, skb);
        }
    }

    fn net_dev_start_xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        if Self::handles_hits() {
            self.xmit(cx, skb, dev);
        }
    }

    #[inline(always)]
    fn netif_receive_skb(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        if Self::handles_hits() {
            self.receive(cx, skb, dev);
        }
    }

    // Inlined, with the delivery's filters, into the probe: most copies are
    // other namespaces' (profile).
    #[inline(always)]
    fn skb_copy_datagram_iovec(&self, cx: &ProbeCx<'_>, skb: &Skb, _len: i32) {
        if Self::handles_hits() {
            self.copied(cx, skb);
        }
    }

    fn skb_consume_udp(&self, cx: &ProbeCx<'_>, sk: &Sock, skb: &Skb) {
        if Self::handles_hits() {
            self.consumed_udp(cx, sk, skb);
        }
    }

    fn neigh_event_send(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        if Self::handles_hits() {
            self.queued(cx, skb);
        }
    }

    fn consume_stateless_skb(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        if Self::handles_hits() {
            self.copied(cx, skb);
        }
    }

    fn timed(&self) -> bool {
        self.self_cost
    }

    fn account(&self, hook: Hook, ns: u64) {
        if let Some(cost) = self.hooks.get(hook.index()) {
            cost.hits.fetch_add(1, Relaxed);
            cost.ns.fetch_add(ns, Relaxed);
        }
    }

    fn packet_read(&self, cx: &ProbeCx<'_>, hook: Hook, sk: &Sock) {
        if !Self::handles_hits() {
            return;
        }
        match hook {
            Hook::SkDataReady => self.packet_ready(cx, sk),
            _ => self.packet_read(cx, sk, false),
        }
    }

    fn packet_poll(&self, cx: &ProbeCx<'_>, sk: &Sock, first: bool) {
        if Self::handles_hits() {
            self.packet_polled(cx, sk, first);
        }
    }

    fn wants(&self, hook: Hook) -> bool {
        let socket_calls = self.syscall_hooks == SyscallHooks::SocketCalls;
        match hook {
            Hook::SysEnter | Hook::SysExit => !socket_calls,
            Hook::SendCalls | Hook::SockRecvLength => socket_calls,
            _ => true,
        }
    }
}

/// The sweep of the packets taps saw, deferred from the probes.
impl Sweep for Capture {
    fn sweep(&self, cx: &ProbeCx<'_>) -> u32 {
        if cfg!(mace_null_probes) {
            return 0;
        }
        self.sweep_taps(cx)
    }
}
