// SPDX-License-Identifier: GPL-2.0

//! mace's event counters, each declared once.
//!
//! A counter set is a struct of atomic counters declared with [`counters!`],
//! which also gives it [`for_each`](NetCounters::for_each): every counter's
//! name and value, in declaration order. `/sys/class/mace/stats` prints the
//! sets with that loop, so a counter added here shows up there (and in
//! `Documentation/mace.rst`'s table, by hand) without a second list.
//!
//! Probes bump counters with relaxed atomic adds: each counter is exact, but
//! a reader may see one counter of an event before another.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Declares a struct of `AtomicU64` counters and its `for_each`.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $doc:expr])* $field:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: AtomicU64, )*
        }

        impl $name {
            /// Calls `f` with each counter's name and value, in declaration
            /// order.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
                $( f(stringify!($field), self.$field.load(Relaxed)); )*
            }
        }
    };
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

counters! {
    /// Counters of one network namespace, in its `stats`.
    pub struct NetCounters {
        /// Egress latencies recorded.
        egress,
        /// Ingress latencies recorded.
        ingress,
        /// Packets sent by syscalls and stored to await an outer device.
        egress_sent,
        /// Sent packets found on an outer device too late (older than
        /// `max_age_ms`).
        egress_expired,
        /// Sent packets whose key another sent packet had.
        egress_collisions,
        /// Received packets found by a receiving syscall too late.
        ingress_expired,
        /// Received packets whose key another received packet had.
        ingress_collisions,
        /// Received packets not reported: the syscall failed, or it returned
        /// more than [`crate::entry::MAX_PENDING`] of them.
        ingress_unreported,
    }
}

counters! {
    /// Counters that belong to no namespace, in the initial namespace's
    /// `stats` with the prefix `host_`.
    pub struct HostCounters {
        /// Packets received on outer devices and stored for matching.
        ingress_stored,
        /// Stored received packets no receiving syscall took in time.
        ingress_expired,
        /// Stored received packets pushed out of a full bucket.
        ingress_evicted,
        /// Received packets whose key was already stored for another packet.
        ingress_collisions,
        /// Sent packets' entries pushed out of a full bucket.
        egress_evicted,
        /// Task entries pushed out of a full bucket.
        tasks_evicted,
    }
}
