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

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// Takes `n` off a gauge (wrapping: an accounting error shows as a huge
/// value, never as a panic).
pub fn sub(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Relaxed);
}

counters! {
    /// Counters of one network namespace, in its `stats`.
    ///
    /// Each packet of the namespace ends in exactly one of them, or waits
    /// in one of the gauges (`*_in_table`, `ingress_pending`):
    ///
    /// - `egress_sent = egress + egress_off + egress_expired +
    ///   egress_collisions + egress_evicted + egress_in_table`;
    /// - `ingress_taken = ingress + ingress_off + ingress_unreported +
    ///   ingress_task_lost + ingress_pending`;
    /// - `ingress = ingress_end_syscall + ingress_end_stamp + ingress_end_tap +
    ///   ingress_end_tap_read`;
    /// - `egress + ingress = ring_pushed + ring_full + ring_busy` (the ring's
    ///   counters, in `stats` too);
    /// - with `breakdown` on all the while, `egress = egress_segments +
    ///   egress_segments_unknown` and `ingress = ingress_segments +
    ///   ingress_segments_unknown`.
    pub struct NetCounters {
        /// Egress latencies recorded (queued, or dropped by a full ring).
        egress,
        /// Ingress latencies recorded (queued, or dropped by a full ring).
        ingress,
        /// Packets a send syscall handed over, to await an outer device.
        egress_sent,
        /// Sent packets found on an outer device too late (older than
        /// `max_age_ms`), or pushed out of the table once that old.
        egress_expired,
        /// Sent packets whose key another sent packet had (both counted).
        egress_collisions,
        /// Sent packets pushed out of a full bucket of the egress table.
        egress_evicted,
        /// Sent packets that reached an outer device after capture was
        /// switched off (not recorded).
        egress_off,
        /// Sent packets in the egress table now (a gauge: they await an
        /// outer device, or never reach one, as in the CC and CH
        /// topologies, until they are pushed out).
        egress_in_table,
        /// Received packets a reader of this namespace took: their outer
        /// device's stamp, or their entry of the ingress table.
        ingress_taken,
        /// Received packets a reader found too late (older than
        /// `max_age_ms`).
        ingress_expired,
        /// Received packets whose key another received packet had.
        ingress_collisions,
        /// Taken packets not reported: the syscall failed, or it took more
        /// than [`crate::entry::MAX_PENDING`] and its latest (the fifth and
        /// later ones but the last).
        ingress_unreported,
        /// Taken packets lost with their task's entry (or the stamp of its
        /// receive's latest packet), which expired or was pushed out before
        /// the receiving syscall returned.
        ingress_task_lost,
        /// Taken packets whose window ended after capture was switched off
        /// (not recorded).
        ingress_off,
        /// Taken packets waiting for their receiving syscall to return (a
        /// gauge).
        ingress_pending,
        /// Ingress latencies that end at the receiving syscall's return (the
        /// reader takes no kernel timestamp).
        ingress_end_syscall,
        /// Ingress latencies that end at the kernel's receive timestamp,
        /// which the reader gets (SO_TIMESTAMP and the like).
        ingress_end_stamp,
        /// Ingress latencies of packets only a packet socket read (libpcap),
        /// that end where the tap saw the packet (`tap_end` `stamp`).
        ingress_end_tap,
        /// Ingress latencies of packets only a packet socket read, that end
        /// when a syscall of a task waiting for or reading a packet socket of
        /// the namespace returned with something to read (`tap_end` `read`).
        ingress_end_tap_read,
        /// 32-bit compat syscalls of this namespace's tasks, skipped (their
        /// numbers are another table's).
        compat_syscalls,
        /// Packets its readers got unstamped from a remote address that was
        /// no peer of a capturing namespace (`peer_window_ms`): an outer
        /// device did not stamp them. The remote is a peer from then on.
        /// Loopback's and a neighbour container's packets, which no outer
        /// device stamps, count here once per window.
        ingress_new_peers,
        /// Egress latencies recorded with their segments (`breakdown` on).
        egress_segments,
        /// Egress latencies recorded with `breakdown` on whose segments are
        /// not known (a waypoint was missed: a GSO packet segmented on its
        /// way, a stamp pushed out, a host process's packet).
        egress_segments_unknown,
        /// Ingress latencies recorded with their segments.
        ingress_segments,
        /// Ingress latencies recorded with `breakdown` on whose segments
        /// are not known (a TCP segment queued while its socket was busy, a
        /// stamp pushed out).
        ingress_segments_unknown,
    }
}

counters! {
    /// Counters that belong to no namespace, in the initial namespace's
    /// `stats` with the prefix `host_`: received packets before a reader
    /// tells whose they are.
    ///
    /// `ingress_received = ingress_taken + ingress_expired +
    /// ingress_collisions + ingress_evicted + ingress_in_table`.
    pub struct HostCounters {
        /// Packets received on outer devices from a capturing namespace's
        /// peer and stamped (while the initial namespace does not capture;
        /// [`crate::peers`]): by data buffer, for their readers
        /// to take, or by socket buffer (a clone, or while the device has
        /// a packet tap), for a capturing namespace's device to take.
        ingress_stamped,
        /// Stamps of received packets a reader of a capturing namespace
        /// took in time, straight from the outer device's stamps.
        ingress_stamps_taken,
        /// Stamps of received packets lost before a reader or a capturing
        /// namespace's device took them: overwritten by another packet's
        /// while fresh (most are packets of namespaces that do not
        /// capture), or not made because other writers held the slot; and
        /// stamps their reader found too late (older than `max_age_ms`).
        ingress_stamps_lost,
        /// Received packets stored for matching (or refused as colliding):
        /// on a capturing namespace's device, with the stamp its outer
        /// device gave it, or on the outer device while the initial
        /// namespace captures.
        ingress_received,
        /// Received packets a reader of a capturing namespace took.
        ingress_taken,
        /// Received packets no reader took in time: found too late, or
        /// pushed out of the table once that old, or by a later packet in
        /// their data buffer.
        ingress_expired,
        /// Received packets whose key another received packet had (both
        /// counted).
        ingress_collisions,
        /// Received packets pushed out of a full set of the table, or not
        /// stored because other CPUs kept their slot busy.
        ingress_evicted,
        /// Received packets in the ingress table now (a gauge).
        ingress_in_table,
        /// First fragments received, not stored: their readers get the
        /// datagram reassembled.
        ingress_fragments,
        /// Sent packets pushed out of a full bucket (any namespace's).
        egress_evicted,
        /// Sent packets of any namespace in the egress table now (a gauge:
        /// while it is 0, an outer device's transmissions are not looked
        /// at).
        egress_in_table,
        /// Task entries pushed out of a full bucket, and tasks' stamps (a
        /// send's, a stream receive's latest packet's) out of a full set.
        tasks_evicted,
        /// Packets a tap saw that found the tap queue full (they expire in
        /// the ingress table instead, counted there).
        taps_overflow,
        /// Sent packets and arrivals taken from the note of another CPU than
        /// the taker's ([`crate::bufnote`]): transmitted, or read, on
        /// another CPU than the one that handed them over, or received
        /// them, while that CPU still held them.
        noted_elsewhere,
        /// Packets datagram receives took whose task moved to another CPU
        /// before the receive returned (preempted in between), taken at
        /// the return from the note of the CPU it left
        /// ([`crate::cpuslot`]).
        noted_moved,
    }
}
