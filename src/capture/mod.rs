// SPDX-License-Identifier: GPL-2.0

//! The probes' logic: from tracepoint hits to latency records.
//!
//! Six kernel tracepoints and two kernel functions feed mace (`probes.rs`
//! dispatches them here):
//!
//! ```text
//!  egress   sys_enter (send family) ──> net_dev_queue (or the neighbour),
//!           [senders: task -> Sender]     the sender's first device
//!                                         [the CPU's note: skb -> Egress
//!                                          (or, moved out by the CPU's
//!                                          next hand-over, sent: skb ->
//!                                          Egress), or egress table:
//!                                          key -> Egress (GSO)]
//!                                   ──> net_dev_start_xmit, outer device
//!                                        latency = now - Egress.start
//!  ingress  netif_receive_skb, outer device
//!           [the CPU's note: data -> t_rx (or, moved out by the CPU's
//!            next such arrival, arrival stamps: data -> t_rx); arrival
//!            stamps: skb -> t_rx for a clone, or while the outer device
//!            has a packet tap]
//!                                   ──> (only for a stamp by skb, or a tap
//!                                        there) netif_receive_skb, a device
//!                                        of the capturing namespace
//!                                        [ingress table: data -> Ingress]
//!                                   ──> skb_copy_datagram_iovec, or
//!                                        skb_consume_udp(), in a receiving task
//!                                        [task table: Task.pending]
//!                                   ──> sys_exit: latency = now - t_rx
//! ```
//!
//! [`egress`] and [`ingress`] hold the two paths; this file holds what they
//! share: the tables, the outer devices, the syscall at whose exit both end
//! ([`Capture::syscall_exit`]). A packet is found again by its socket buffer
//! (sent) or its data buffer (received, which its readers' copies share),
//! checked by its fingerprint; where the socket buffer changes on its way
//! (GSO segmentation), by its key ([`crate::packet`]), the same on both
//! sides of the NAT. The table entries are the types of [`crate::entry`].
//! Only packets of namespaces with capture on are timed; packets of other
//! namespaces take no lock: an arrival stamp on an outer device, and a
//! lockless look into the egress table while a capturing namespace's packet
//! waits there. The probes are registered only while some namespace
//! captures, so an idle mace costs nothing.
//!
//! Every handler runs in atomic context: it never sleeps or allocates, its
//! loops are bounded by constants, and its arithmetic cannot overflow.

#![deny(unsafe_code)]

mod breakdown;
mod egress;
mod ingress;

pub(crate) use breakdown::WaypointStamps;

use crate::bufnote::{self, note_words, Hints};
use crate::counters::{add, bump, sub, HostCounters};
use crate::cpuslot::{self, NOTE_WORDS};
use crate::entry::{
    LatestPending, Task, Words, EGRESS_WORDS, INGRESS_WORDS, LATEST_PENDING_WORDS, SEND_WORDS,
    SENT_WORDS, TASK_WORDS,
};
use crate::ffi::net::Net;
use crate::ffi::percpu::PerCpuWords;
use crate::ffi::skb::Dev;
use crate::ffi::skb::Skb;
use crate::ffi::sync::{BucketGuard, BucketSpinLock, RcuSlot};
use crate::ffi::task::{self, Regs, Syscalls};
use crate::ffi::tracepoint::{ProbeCx, HOOKS};
use crate::ffi::{mono_ns, msecs_to_jiffies, netdev, SyscallHooks};
use crate::fifo::{fifo_slot, Fifo, FifoSlot};
use crate::netns::{NetState, NsRegistry, NET_STATE};
use crate::packet::{self, Identity, Side, CAPTURE_BYTES};
use crate::params::Params;
use crate::parse::{DevList, DevSpec, MAX_OUTER_DEVS};
use crate::peers::{Peers, PEER_SLOTS};
use crate::stamps::{empty_set, Set as StampSet, Stamps, WAYS};

use crate::table::{Bucket, BucketLock, Insert, Look, Table, Take};
use crate::tapread::ReaderEvent;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

impl BucketLock for BucketSpinLock {
    type Guard<'a> = BucketGuard<'a>;

    fn lock(&self) -> BucketGuard<'_> {
        BucketSpinLock::lock(self)
    }
}

/// A correlation table of mace in the kernel: `D` words per entry.
pub(crate) type KTable<const D: usize> = Table<KVVec<Bucket<BucketSpinLock, D>>, BucketSpinLock, D>;

/// A look into the task table that found a task's key ([`Table::look`]).
type TaskLook<'a> = Look<'a, BucketSpinLock, TASK_WORDS>;

/// Allocates a table of `buckets` buckets (a power of two) whose entries
/// expire after `max_age` ns.
fn new_table<const D: usize>(buckets: usize, max_age: u64) -> Result<KTable<D>> {
    if !BucketSpinLock::layout_matches() {
        pr_err!("spinlock_t size mismatch between C and Rust\n");
        return Err(EINVAL);
    }
    Table::new(
        filled(buckets, || Bucket::new(BucketSpinLock::new()))?,
        max_age,
    )
    .map_err(|_| EINVAL)
}

/// An array of stamps of `V` words in mace in the kernel.
pub(crate) type KStamps<const V: usize> = Stamps<KVVec<StampSet<V>>, V>;

/// Allocates an array of `n` stamps (a power of two, at least a set's) of
/// `V` words.
fn new_stamps<const V: usize>(n: usize) -> Result<KStamps<V>> {
    if n < WAYS {
        return Err(EINVAL);
    }
    Stamps::new(filled(n / WAYS, empty_set)?).map_err(|_| EINVAL)
}

/// A vector of `n` values that `make` gives, allocated at load.
fn filled<T>(n: usize, mut make: impl FnMut() -> T) -> Result<KVVec<T>> {
    let mut v = KVVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(make(), GFP_KERNEL)?;
    }
    Ok(v)
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
    /// The ifindexes of the slots below 64, as bits: one test for the
    /// common case, on every packet a device transmits or receives.
    low: AtomicU64,
}

impl OuterSet {
    fn new() -> Self {
        Self {
            slots: [const { AtomicI32::new(0) }; MAX_OUTER_DEVS],
            low: AtomicU64::new(0),
        }
    }

    /// Whether `ifindex` is an outer device.
    #[inline(always)]
    pub(crate) fn contains(&self, ifindex: i32) -> bool {
        match u32::try_from(ifindex) {
            Ok(i @ 1..=63) => self.low.load(Relaxed) & 1 << i != 0,
            Ok(64..) => self.slots.iter().any(|s| s.load(Relaxed) == ifindex),
            _ => false,
        }
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
        let low = out.iter().fold(0u64, |low, &i| match u32::try_from(i) {
            Ok(i @ 1..=63) => low | 1 << i,
            _ => low,
        });
        self.low.store(low, Relaxed);
        out
    }
}

/// Buckets counted at once by [`Capture::occupancy`].
const OCCUPANCY_CHUNK: usize = 4096;

/// The `ifindex` of every namespace's loopback device.
const LOOPBACK_IFINDEX: i32 = 1;

/// Packets a tap saw, taken from the ingress table, waiting to be looked at
/// by the sweep: (packet key (its data buffer), namespace handle (0: an IP
/// socket's reader took it since), when the tap saw it, when a reader of a
/// packet socket of the namespace got it ([`crate::tapread::TapRead`]),
/// when it arrived on the outer device, its packet id, its fingerprint).
type TapQueue = Fifo<KVVec<FifoSlot<TAP_WORDS>>, BucketSpinLock, TAP_WORDS>;

/// Words of a record of the tap queue.
const TAP_WORDS: usize = 7;

// The words `tapread` updates are where the queue's records keep them.
const _: () = assert!(
    crate::tapread::NS_WORD == 1 && crate::tapread::TAP_WORD == 2 && crate::tapread::READ_WORD == 3
);

/// How many packets a tap saw can wait for the sweep at once.
const TAP_QUEUE: usize = 1024;

/// How long a reply a tap saw waits for an IP socket's reader before it is
/// reported as a packet socket's (ns).
const TAP_GRACE_NS: u64 = 250_000_000;

/// Stamps per bucket of the packet tables (`table_size`): in the arrival
/// stamps of every packet an outer device receives, the ingress table and
/// the sent packets that are not GSO (per bucket of the tasks' tables, in
/// the senders').
const STAMPS_PER_BUCKET: usize = 4;

/// Hints of the CPU whose note holds a buffer's packet, of each kind of
/// note: a power of two, a few times the CPUs that note packets at once.
const NOTE_HINTS: usize = 1024;

/// How many looks a transmission or a reader gives another CPU's note that
/// its writer holds ([`bufnote::take_waiting`]).
const NOTE_WAITS: usize = 64;

/// Allocates a note of `N` words on every possible CPU, each marked with
/// its CPU's number ([`crate::bufnote`]).
fn new_notes<const N: usize>() -> Result<PerCpuWords<N>> {
    let notes = PerCpuWords::new()?;
    notes.for_each_possible(|cpu, note| bufnote::set_cpu(note, cpu));
    Ok(notes)
}

/// Words of a CPU's note of a sent packet ([`crate::bufnote`]).
const SENT_NOTE_WORDS: usize = note_words(SENT_WORDS);

/// Words of a CPU's note of an arrival: its time.
const ARRIVAL_NOTE_WORDS: usize = note_words(1);

/// Everything the probes share.
pub(crate) struct Capture {
    /// Sent packets of capturing namespaces keyed by identity (GSO
    /// packets), until an outer device transmits them.
    egress: KTable<EGRESS_WORDS>,
    /// Sent packets of capturing namespaces keyed by socket buffer, until
    /// an outer device transmits them; lockless ([`crate::stamps`]): those
    /// a CPU's next hand-over found still in its note.
    sent: KStamps<SENT_WORDS>,
    /// The packet each CPU last handed over (not GSO), until an outer
    /// device transmits it or the CPU's next hand-over moves it to `sent`
    /// ([`crate::bufnote`]).
    sent_notes: PerCpuWords<SENT_NOTE_WORDS>,
    /// Which CPU's note a socket buffer may be in, for a transmission on
    /// another CPU.
    sent_hints: Hints<KVVec<AtomicU64>, NOTE_HINTS>,
    /// The remote addresses capturing namespaces talk to: an outer device
    /// stamps only their packets ([`crate::peers`]).
    peers: Peers<KVVec<AtomicU32>>,
    /// Arrival times of the packets outer devices received, by data
    /// buffer until their reader takes them, or by socket buffer until a
    /// capturing namespace's device does (a clone, or while the outer
    /// device has a packet tap, [`Self::stamped_by_skb`]).
    arrivals: KStamps<1>,
    /// The arrival each CPU last stamped by data buffer, until its reader
    /// takes it or the CPU's next such stamp moves it to `arrivals`
    /// ([`crate::bufnote`]).
    arrival_notes: PerCpuWords<ARRIVAL_NOTE_WORDS>,
    /// Which CPU's note a data buffer's arrival may be in, for a reader on
    /// another CPU.
    arrival_hints: Hints<KVVec<AtomicU64>, NOTE_HINTS>,
    /// When an outer device last stamped a packet by socket buffer (0:
    /// not since the last look found that older than `max_age_ms`): while
    /// it is 0, a capturing namespace's device looks for no stamp.
    stamped_by_skb: AtomicU64,
    /// The ingress table: packets of capturing namespaces that arrived on
    /// an outer device, by data buffer, until their reader takes them;
    /// lockless ([`crate::stamps`]).
    received: KStamps<INGRESS_WORDS>,
    /// The waypoints' stamps (as many as `arrivals`), while some namespace
    /// breaks its latencies down (their probes are registered).
    waypoints: RcuSlot<WaypointStamps>,
    /// Entries of the egress table keyed by identity (GSO packets): while
    /// there are none, an outer device's transmission is looked up by its
    /// socket buffer only, never identified.
    egress_by_identity: AtomicU64,
    /// Tasks in a send syscall (their last send): stamps of the task, with
    /// its thread id for a fingerprint.
    sends: KStamps<SEND_WORDS>,
    /// Tasks in a receiving syscall (or a packet socket's wait): their
    /// packets before the latest, and packet sockets' readers.
    tasks: KTable<TASK_WORDS>,
    /// Entries in `tasks`: while there are none, a receive's return does not
    /// look there.
    task_entries_out: AtomicU64,
    /// The latest packet of a task's receiving syscall on a stream socket
    /// (TCP): stamps of the task, with its thread id for a fingerprint.
    latest_pending: KStamps<LATEST_PENDING_WORDS>,
    /// The latest packet a receiving syscall on a datagram or raw socket
    /// took on each CPU ([`crate::cpuslot`]).
    pending_notes: PerCpuWords<NOTE_WORDS>,
    /// Which CPU's note a task's latest packet may be in, for its return
    /// on another CPU if it moved.
    pending_hints: Hints<KVVec<AtomicU64>, NOTE_HINTS>,
    /// Packets in `latest_pending` and in `pending_notes`: while there are
    /// none, a receive's return looks only into the task table.
    latest_pending_out: AtomicU64,
    /// Packets in `latest_pending`: while there are none, a receive's
    /// return does not look there.
    latest_stamped_out: AtomicU64,
    syscalls: Syscalls,
    /// Handles of capturing namespaces, as stored in egress entries.
    pub(crate) registry: NsRegistry,
    /// The outer devices.
    pub(crate) outer: OuterSet,
    /// Packets a tap saw on their way to a reader, for the sweep.
    taps: TapQueue,
    /// How long after a tap saw a packet it is reported as a packet socket's,
    /// unless an IP socket's reader took it first (ns).
    tap_grace: u64,
    /// How long an entry of a table lives (ns).
    max_age: u64,
    /// Twice `max_age`: what [`Self::fresh`] compares with.
    max_age_span: u64,
    /// Whether the probes see packet sockets' readers (`packet_poll()` and
    /// `packet_recvmsg()` are hooked): else `tap_end` `read` works as
    /// `stamp`.
    sees_packet_readers: AtomicBool,
    /// Where the probes follow sends and receives.
    pub(crate) syscall_hooks: SyscallHooks,
    /// Whether probe hits are timed.
    pub(crate) self_cost: bool,
    /// Self-cost per hook.
    pub(crate) hooks: [HookCost; HOOKS],
    /// Counters of no namespace.
    pub(crate) counters: HostCounters,
}

impl Capture {
    /// Allocates the tables of the module parameters `params`: `table_size`
    /// buckets for packets (a quarter for tasks), entries expiring after
    /// `max_age_ms`, peers for `peer_window_ms`.
    pub(crate) fn new(params: &Params) -> Result<Self> {
        let buckets = usize::try_from(params.table_size)?;
        let max_age = u64::from(params.max_age_ms).saturating_mul(1_000_000);
        let tap_slots = filled(TAP_QUEUE, fifo_slot)?;
        let n_stamps = buckets.checked_mul(STAMPS_PER_BUCKET).ok_or(EINVAL)?;
        // The tasks' table and stamps: a quarter of the buckets.
        let task_buckets = (buckets / 4).max(64);
        let n_task_stamps = task_buckets.saturating_mul(STAMPS_PER_BUCKET);
        Ok(Self {
            egress: new_table(buckets, max_age)?,
            sent: new_stamps(n_stamps)?,
            sent_notes: new_notes()?,
            sent_hints: Hints::new(filled(NOTE_HINTS, || AtomicU64::new(0))?)
                .map_err(|_| EINVAL)?,
            peers: Peers::new(
                filled(PEER_SLOTS, || AtomicU32::new(0))?,
                msecs_to_jiffies(params.peer_window_ms),
            )
            .map_err(|_| EINVAL)?,
            arrivals: new_stamps(n_stamps)?,
            arrival_notes: new_notes()?,
            arrival_hints: Hints::new(filled(NOTE_HINTS, || AtomicU64::new(0))?)
                .map_err(|_| EINVAL)?,
            received: new_stamps(n_stamps)?,
            waypoints: RcuSlot::new(),
            egress_by_identity: AtomicU64::new(0),
            stamped_by_skb: AtomicU64::new(0),
            sends: new_stamps(n_task_stamps)?,
            tasks: new_table(task_buckets, max_age)?,
            latest_pending: new_stamps(n_task_stamps)?,
            pending_notes: new_notes()?,
            pending_hints: Hints::new(filled(NOTE_HINTS, || AtomicU64::new(0))?)
                .map_err(|_| EINVAL)?,
            latest_pending_out: AtomicU64::new(0),
            latest_stamped_out: AtomicU64::new(0),
            task_entries_out: AtomicU64::new(0),
            syscalls: Syscalls::new(),
            registry: NsRegistry::new()?,
            outer: OuterSet::new(),
            taps: Fifo::new(tap_slots, BucketSpinLock::new()),
            // Well before the entry expires.
            tap_grace: (max_age / 2).min(TAP_GRACE_NS),
            max_age,
            max_age_span: max_age.saturating_mul(2),
            sees_packet_readers: AtomicBool::new(false),
            syscall_hooks: SyscallHooks::of_params(),
            self_cost: params.self_cost,
            hooks: Default::default(),
            counters: HostCounters::default(),
        })
    }

    /// The state of namespace `net` if its capture was ever on: `None` for
    /// most namespaces after one load and a comparison, and the state
    /// itself after one more for a namespace alone on its slot of the
    /// probes' filter ([`crate::nsfilter`]); else through the chain of
    /// loads that finds a state ([`NET_STATE`]). Its caller still asks the
    /// state whether it captures.
    #[inline(always)]
    pub(crate) fn state_of<'a>(
        &'a self,
        cx: &'a ProbeCx<'_>,
        net: &'a Net,
    ) -> Option<&'a NetState> {
        NET_STATE.get_filtered(cx, net)
    }

    /// Whether a stamp or entry dated `t` is no older than `max_age_ms` at
    /// `now`; signed: one dated on another CPU just after this one read its
    /// clock is a little younger than 0.
    fn fresh(&self, t: u64, now: u64) -> bool {
        // |now - t| <= max_age, as one comparison: the difference moved up
        // by max_age lies in 0..=2 * max_age exactly then (max_age is at
        // most 60 s in ns, far from wrapping).
        now.wrapping_sub(t).wrapping_add(self.max_age) <= self.max_age_span
    }

    /// Whether `dev` is an outer device: a configured one of the initial
    /// namespace.
    #[inline(always)]
    pub(crate) fn is_outer(&self, dev: &Dev) -> bool {
        self.outer.contains(dev.ifindex()) && dev.net().is_init()
    }

    /// Sets whether the probes see packet sockets' readers.
    pub(crate) fn set_sees_packet_readers(&self, yes: bool) {
        self.sees_packet_readers.store(yes, Relaxed);
    }

    /// Where the windows of packets only a packet socket of the namespace
    /// with `state` read end: its `tap_end`, if the probes can see it.
    pub(crate) fn tap_end(&self, state: &NetState) -> crate::parse::TapEnd {
        match state.tap_end() {
            crate::parse::TapEnd::Read if self.sees_packet_readers.load(Relaxed) => {
                crate::parse::TapEnd::Read
            }
            _ => crate::parse::TapEnd::Stamp,
        }
    }

    /// Packets waiting in the tap queue, for `stats`.
    pub(crate) fn tap_queued(&self) -> usize {
        self.taps.len()
    }

    /// Table occupancy (egress, ingress, tasks in receives, tasks in
    /// sends), for `stats` (process context).
    ///
    /// Counted without locks, [`OCCUPANCY_CHUNK`] buckets (or as many
    /// entries' worth of received packets' stamps) at a time with a
    /// chance to reschedule between chunks: however large the tables, a
    /// reader neither holds up the probes nor keeps its CPU.
    pub(crate) fn occupancy(&self) -> [usize; 4] {
        // `len` places (buckets, or stamps' slots) counted `chunk` at a
        // time by `occupancy_of(first, n)`.
        fn chunked(
            len: usize,
            chunk: usize,
            occupancy_of: impl Fn(usize, usize) -> usize,
        ) -> usize {
            let mut n = 0usize;
            let mut first = 0usize;
            while first < len {
                n = n.wrapping_add(occupancy_of(first, chunk));
                first = first.saturating_add(chunk);
                crate::ffi::cond_resched();
            }
            n
        }
        fn count<const D: usize>(table: &KTable<D>) -> usize {
            chunked(table.buckets(), OCCUPANCY_CHUNK, |f, n| {
                table.occupancy_of(f, n)
            })
        }
        fn count_stamps<const V: usize>(stamps: &KStamps<V>) -> usize {
            let chunk = OCCUPANCY_CHUNK.saturating_mul(STAMPS_PER_BUCKET);
            chunked(stamps.capacity(), chunk, |f, n| stamps.occupancy_of(f, n))
        }
        [
            count(&self.egress)
                .wrapping_add(count_stamps(&self.sent))
                .wrapping_add(self.noted_sent()),
            count_stamps(&self.received),
            count(&self.tasks).wrapping_add(count_stamps(&self.latest_pending)),
            count_stamps(&self.sends),
        ]
    }

    /// Packets in the CPUs' notes of sent packets, read without taking
    /// them. Process context.
    fn noted_sent(&self) -> usize {
        let mut n = 0usize;
        self.sent_notes.for_each_possible(|_, note| {
            if bufnote::occupied(note) {
                n = n.wrapping_add(1);
            }
        });
        n
    }

    /// `sys_exit`: a send ends, a receive returns its packets
    /// ([`Self::recv_exited`]), or a reader of a packet socket returns
    /// ([`Self::tap_read`]), in a namespace that captures or did.
    #[inline(always)]
    pub(crate) fn syscall_exit(&self, cx: &ProbeCx<'_>, regs: &Regs, ret: i64) {
        let nr = regs.syscall_nr();
        // The number first: most syscalls are none of these. A send's exit
        // has nothing to do: its entry stays until the task's next send
        // replaces it (or it expires), and only a packet handed over inside
        // a send syscall looks at it ([`Self::send_start`]).
        if !self.syscalls.kind(nr).receives_or_waits() || regs.in_compat_syscall() {
            return;
        }
        crate::ffi::net::with_current_net(|net| self.exit_in(cx, net, nr, ret));
    }

    /// A receiving or waiting syscall `nr` of a task of the namespace `net`
    /// returns `ret`: the filters that most such syscalls end in, inline in
    /// the probe. Kept small: with a sixth argument to [`Self::exited_in`],
    /// or with the look into the task table here, the compiler called them
    /// out of line, a frame for every such exit and more instructions for
    /// every exit of another namespace (profile).
    #[inline(always)]
    fn exit_in(&self, cx: &ProbeCx<'_>, net: &Net, nr: i64, ret: i64) {
        let Some(state) = self.state_of(cx, net) else {
            return;
        };
        // Once capture was on, clean up even if it is off now.
        if !state.was_on() {
            return;
        }
        // Most waits (a select() or poll() on anything) and many
        // receives (a non-blocking socket's EAGAIN: a tool that polls
        // makes one after every packet, iputils ping at short intervals
        // hundreds per ping) have nothing pending: whether any task entry
        // is out and whether any latest packet is stamped, inline, before
        // the work's frame and saved registers. A task's own entry or
        // stamp counts before its return: it stored it.
        if self.task_entries_out.load(Relaxed) == 0 && self.latest_pending_out.load(Relaxed) == 0 {
            return;
        }
        self.exited_in(cx, state, nr, ret);
    }

    /// A receiving or waiting syscall `nr` of a task of the namespace with
    /// `state` (which captures or did) returns `ret`, while task entries or
    /// stamps are out. Out of line: the filters above are all that most
    /// syscalls see.
    #[inline(never)]
    fn exited_in(&self, cx: &ProbeCx<'_>, state: &NetState, nr: i64, ret: i64) {
        let (key, tid) = task::current_task();
        let look = match self.task_entries_out.load(Relaxed) {
            0 => None,
            _ => self.tasks.look(key),
        };
        // The clock is read once an entry is found: a window that ends at
        // the syscall's return ends after mace's look for it, so that what
        // the reader's RTT holds beyond the windows is as little as can be.
        // The task's entry first: it holds the syscall's earlier packets,
        // the stamp its latest.
        let read = look.and_then(|look| self.entry_exited(cx, state, look, tid, nr, ret));
        if self.latest_pending_out.load(Relaxed) == 0 {
            return;
        }
        // The syscall's latest packet: this CPU's note for a datagram
        // receive, the task's stamp for a stream receive, the note of the
        // CPU it left for a datagram receive whose task moved. Each source
        // ends the window itself: merged into one value first, the note's
        // words were copied through the stack twice (profile, 16
        // instructions a ping).
        if let Some(f) = self.noted_latest(cx, key, tid) {
            return self.latest_exited(cx, state, &f, true, ret, read);
        }
        if self.latest_stamped_out.load(Relaxed) != 0 {
            if let Some((words, mine)) = self
                .latest_pending
                .take_buffer(key, || Some(u64::from(tid)))
            {
                sub(&self.latest_stamped_out, 1);
                let f = LatestPending::from_words(&words);
                return self.latest_exited(cx, state, &f, mine, ret, read);
            }
        }
        if let Some(f) = self.noted_before_move(key, tid) {
            self.latest_exited(cx, state, &f, true, ret, read);
        }
    }

    /// The latest packet a datagram receive of the current task (at `key`,
    /// thread `tid`) took, from this CPU's note, which it empties; `None` if
    /// the note is another task's, or empty. The task's own also if it moved
    /// away and back since (preempted twice between its packet and its
    /// return): its note is its packet here as on the CPU it left
    /// ([`Self::noted_before_move`]), so the task's migrations are not read.
    #[inline(always)]
    fn noted_latest(&self, cx: &ProbeCx<'_>, key: u64, tid: u32) -> Option<LatestPending> {
        let pin = cx.pin();
        let note = self.pending_notes.this_cpu(&pin);
        let noted = cpuslot::found(note, key, tid)?;
        cpuslot::clear(note);
        Some(noted)
    }

    /// The latest packet a datagram receive of the current task (at `key`,
    /// thread `tid`) took on another CPU, before the task moved here
    /// (preempted between its packet and its return): taken from the note
    /// of the CPU the hint names, if that note still holds it
    /// ([`cpuslot::take_moved`]). Out of line: a receive's return comes
    /// here only when its CPU's note and the stamps had nothing of its
    /// task's while packets are out.
    #[inline(never)]
    fn noted_before_move(&self, key: u64, tid: u32) -> Option<LatestPending> {
        let note = self
            .pending_hints
            .get(key)
            .and_then(|cpu| self.pending_notes.on_cpu(cpu))?;
        let f = cpuslot::take_moved(note, key, tid, task::current_migrations())?;
        bump(&self.counters.noted_moved);
        Some(f)
    }

    /// The receiving or waiting syscall `nr` of the current task (thread
    /// `tid`, of the namespace with `state`) returns `ret`, and `look` found
    /// a slot with its key in the task table: its entry is taken and its
    /// pending packets reported. Returns when the clock was read, if it was
    /// (an entry had the key).
    #[inline(always)]
    fn entry_exited(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        look: TaskLook<'_>,
        tid: u32,
        nr: i64,
        ret: i64,
    ) -> Option<u64> {
        let (taken, now) = look.take_timed(mono_ns);
        if !matches!(taken, Take::Miss) {
            sub(&self.task_entries_out, 1);
        }
        let e = match taken {
            Take::Hit(e) => e,
            Take::Expired(e) | Take::Collided(e) => {
                self.task_lost(cx, &Task::from_words(&e.data));
                return Some(now);
            }
            Take::Miss => return None,
        };
        let t = Task::from_words(&e.data);
        if t.tid != tid {
            // A dead task's leftover under a reused key.
            self.task_lost(cx, &t);
            return Some(now);
        }
        if let Some(owner) = self.pending_owner(cx, state, t.ns) {
            self.recv_exited(cx, owner, t.pending(), ret, now);
            if t.tap_reader && ret > 0 {
                // A read is where the reader got them; a wait returned
                // before the reader took them from its ring.
                let event = if self.syscalls.receives(nr) {
                    ReaderEvent::Read
                } else {
                    ReaderEvent::WaitReturned
                };
                self.tap_read(cx, owner, now, event);
            }
        }
        Some(now)
    }

    /// Updates the current task's entry with `f`: a new entry for namespace
    /// handle `ns` if it has none, or if its entry is a dead task's leftover
    /// (whose pending packets are lost); accounts for an entry the update
    /// pushes out. Returns what `f` returned, `None` if the entry could not
    /// be placed.
    fn update_task<R>(
        &self,
        cx: &ProbeCx<'_>,
        ns: u64,
        now: u64,
        f: impl FnOnce(&mut Task) -> R,
    ) -> Option<R> {
        let (key, tid) = task::current_task();
        let mut fresh = Task::new(tid);
        fresh.ns = ns;
        let mut leftover = None;
        let (r, placed) = self.tasks.upsert(key, now, &fresh.to_words(), |data| {
            let mut t = Task::from_words(data);
            if t.tid != tid {
                leftover = Some(t);
                t = fresh;
            }
            let r = f(&mut t);
            *data = t.to_words();
            r
        });
        if let Some(old) = leftover {
            self.task_lost(cx, &old);
        }
        self.task_placed(cx, placed);
        r
    }

    /// A task entry was placed: counted if it is one more; one it took the
    /// place of (another task's pushed out of a full bucket, or this task's
    /// leftover) loses its pending packets.
    fn task_placed(&self, cx: &ProbeCx<'_>, placed: Insert<TASK_WORDS>) {
        match placed {
            Insert::Evicted(old) => {
                bump(&self.counters.tasks_evicted);
                self.task_lost(cx, &Task::from_words(&old.data));
            }
            Insert::ReplacedExpired(old) => {
                self.task_lost(cx, &Task::from_words(&old.data));
            }
            // One more entry: the others took a slot's place, or none.
            Insert::Stored => bump(&self.task_entries_out),
            Insert::Same | Insert::Collision(_) => {}
        }
    }

    /// The state of the namespace with handle `ns`, that of the sockets a
    /// task read, which the task (of the namespace with `state`) may have
    /// left since (setns()); `state` for 0 or for its own handle (the usual
    /// case, without a look in the registry).
    #[inline(always)]
    pub(super) fn pending_owner<'a>(
        &'a self,
        cx: &'a ProbeCx<'_>,
        state: &'a NetState,
        ns: u64,
    ) -> Option<&'a NetState> {
        if ns == 0 || ns == state.handle() {
            return Some(state);
        }
        self.registry.get(cx, ns)
    }

    /// Task `t`'s entry is gone before its receiving syscall returned: its
    /// pending packets are lost, counted for their namespace.
    fn task_lost(&self, cx: &ProbeCx<'_>, t: &Task) {
        self.pending_lost(cx, t.ns, t.pending().len() as u64);
    }

    /// `n` pending packets of the namespace with handle `ns` are gone before
    /// their receiving syscall returned: counted as lost.
    pub(super) fn pending_lost(&self, cx: &ProbeCx<'_>, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(state) = self.registry.get(cx, ns) {
            sub(&state.counters.ingress_pending, n);
            add(&state.counters.ingress_task_lost, n);
        }
    }
}

/// Identifies the packet in `skb`, reading its bytes from its network header
/// on (from its data when `from_data`: a received packet whose network
/// header is not set yet).
fn identify(skb: &Skb, from_data: bool, side: Side) -> Option<Identity> {
    // Not zeroed: usually the bytes are read in place, not copied here.
    let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
    packet::identify(key_bytes(skb, &mut buf, from_data), side, skb.gso_size())
}

/// The first bytes of the packet in `skb` that its identity, id and
/// fingerprint read ([`Skb::net_bytes`], from its data when `from_data`):
/// in place when they are in its linear part, and so are a TCP segment's
/// whose payload is in page fragments ([`packet::key_within`]); else
/// copied into `buf`.
#[inline(always)]
fn key_bytes<'b>(
    skb: &'b Skb,
    buf: &'b mut [MaybeUninit<u8>; CAPTURE_BYTES],
    from_data: bool,
) -> &'b [u8] {
    skb.net_bytes_or_prefix(buf, from_data, packet::key_within)
}

/// Bytes of a packet's network header its fingerprint needs (an IPv6
/// header).
pub(super) const FINGERPRINT_BYTES: usize = 40;

/// Bytes of an ICMP or ICMPv6 error from its IP header to the end of the
/// quoted packet's destination address, without extension headers: the
/// error's IPv6 header, its ICMPv6 header and the quoted IPv6 header.
pub(super) const ERROR_QUOTE_BYTES: usize = 40 + 8 + 40;

/// The fingerprint of the packet in `skb`, seen from `side` (read from its
/// data when `from_data`: a received packet's network header is not set
/// yet). Inlined: its callers are the probes' hot paths, and a call costs
/// each of them more than the few instructions it saves in size.
#[inline(always)]
fn fingerprint(skb: &Skb, from_data: bool, side: Side) -> Option<u64> {
    let mut buf = [MaybeUninit::<u8>::uninit(); FINGERPRINT_BYTES];
    packet::fingerprint(skb.net_bytes(&mut buf, from_data), side)
}
