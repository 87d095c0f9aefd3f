// SPDX-License-Identifier: GPL-2.0

//! The egress path: from a send syscall to the outer device.
//!
//! ```text
//! send_entered (sys_enter)       senders: task + tid -> Sender, start = now
//!                                  (it stays after the syscall, until the
//!                                  next send; lockless)
//! queued: the packet is handed   this CPU's note: skb + fingerprint ->
//!                                  Egress { start, ns, pktid } (lockless;
//!                                  the note's earlier packet, if it has
//!                                  not left, moves to the sent stamps);
//!                                  GSO: egress table: key -> Egress
//!   to its first device
//!   (net_dev_queue) or to its
//!   neighbour (__neigh_event_send),
//!   in the sender's context
//! ... any qdisc, neighbour resolution, bridge, NAT, outer qdisc ...
//! xmit on the outer device       take the entry (the same fingerprint):
//!                                  egress latency
//! ```
//!
//! A packet is tied to its send where its sender hands it over, before
//! anything can hold it back: whatever waits after that (a qdisc in the
//! container or on the outer device, a neighbour being resolved) lies inside
//! its window, and when it finally leaves, from whatever context, its entry
//! has its own start. Which packet belongs to which syscall is decided by
//! the protocol rules of [`crate::packet`]: a packet handed over inside a
//! send on its own socket carries that send's data (for TCP, only if it
//! starts at a byte the send wrote).

#![deny(unsafe_code)]

use super::{fingerprint, identify, key_bytes, Capture, LOOPBACK_IFINDEX, NOTE_WAITS};
use crate::bufnote::{self, Noted, Stamp, Taken};
use crate::counters::{bump, sub};
use crate::entry::{Egress, SendCall, Sender, Words, EGRESS_WORDS, SENT_WORDS};
use crate::ffi::net::{with_current_net, Net};
use crate::ffi::skb::{Dev, Skb};
use crate::ffi::task::{self, Regs};
use crate::ffi::tracepoint::ProbeCx;
use crate::ffi::{jiffies32, mono_ns};
use crate::netns::NetState;
use crate::packet::{self, PacketId, Side, CAPTURE_BYTES};
use crate::record::Direction;
use crate::stamps::Put;
use crate::table::{Entry, Insert, Take};
use core::mem::MaybeUninit;
use core::sync::atomic::Ordering::Relaxed;

impl Capture {
    /// `sys_enter`: a task of a capturing namespace may start sending.
    pub(crate) fn send_entered(&self, cx: &ProbeCx<'_>, regs: &Regs, nr: i64) {
        if regs.in_compat_syscall() {
            // Another syscall table: counted, never followed.
            with_current_net(|net| {
                if let Some(state) = self.state_of(cx, net).filter(|s| s.enabled()) {
                    bump(&state.counters.compat_syscalls);
                }
            });
            return;
        }
        let kind = self.syscalls.kind(nr);
        if !kind.sends() {
            return;
        }
        with_current_net(|net| {
            if !self.state_of(cx, net).is_some_and(NetState::enabled) {
                return;
            }
            self.send_started(regs, !kind.takes_files());
        });
    }

    /// A send syscall starts in a capturing namespace: its task's sender
    /// entry, if it sends on a socket (`on_socket`: the syscall takes only
    /// sockets). Out of line: the filters above are all that most syscalls
    /// see.
    #[inline(never)]
    fn send_started(&self, regs: &Regs, on_socket: bool) {
        // A socket's send syscall starts its window here, before the
        // descriptor is looked up: what mace does before its clock lies in
        // the sender's RTT and in no window. `write(2)` and `writev(2)`
        // mostly write to a terminal, a pipe or a file (a tool's output,
        // a line per reply): for those the clock is read once the
        // descriptor turned out to be a socket, which moves the start of
        // a socket's window by the look-up.
        let early = if on_socket { mono_ns() } else { 0 };
        // Every send syscall's first argument is a file descriptor; only
        // IP sockets matter (write(2) to a file or a pipe does not).
        // Not a compat syscall: send_entered() returned for those.
        let arg0 = regs.native_arg0();
        let fd = task::fd_sock(arg0);
        if fd.sock == 0 {
            // The task's last send's entry (its exit leaves it) stays: it
            // names another file descriptor than this syscall's.
            return;
        }
        let now = if on_socket { early } else { mono_ns() };
        let (key, tid) = task::current_task();
        let t = Sender {
            tid,
            // A file descriptor fits 32 bits (a larger number is no
            // socket, and fd_sock() found one).
            fd: arg0 as u32,
            call: SendCall {
                start: now,
                sock: fd.sock,
                tcp_write_seq: fd.tcp_write_seq,
            },
        };
        // The entry of this task's last send (or a dead task's under the
        // same key) is replaced; a full set loses its oldest sender, whose
        // packets (if it is still in its send) then leave unmatched.
        let evicted = match self.sends.put_sole_time(key, u64::from(tid), &t.to_words()) {
            Put::Empty | Put::Superseded(_) => false,
            Put::Replaced([start]) => self.fresh(start, now),
            Put::Busy => true,
        };
        if evicted {
            bump(&self.counters.tasks_evicted);
        }
    }

    /// `net_dev_queue` or `__neigh_event_send()`: a packet is handed to a
    /// device or to a neighbour. In its sender's context, inside a send of a
    /// capturing namespace, its egress window starts at that send.
    #[inline(always)]
    pub(crate) fn queued(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        // From a softirq (a qdisc's or a neighbour's queue let it go, a
        // bridge forwards it) the packet was handed over before.
        if !task::in_task() {
            return;
        }
        let Some(dev) = skb.dev() else { return };
        if dev.ifindex() == LOOPBACK_IFINDEX {
            return;
        }
        match skb.owner() {
            Some(sk) => self.queued_in(cx, sk.net(), skb, dev),
            None => {
                with_current_net(|net| self.queued_in(cx, net, skb, dev));
            }
        }
    }

    /// A packet of the namespace `net` (its socket's, or its sender's) is
    /// handed to `dev`.
    fn queued_in(&self, cx: &ProbeCx<'_>, net: &Net, skb: &Skb, dev: &Dev) {
        // A device of the packet's own namespace: the first one, or (host
        // processes of a capturing initial namespace) the outer device.
        if !dev.net().is(net) {
            return;
        }
        let Some(state) = self.state_of(cx, net) else {
            return;
        };
        if !state.enabled() {
            return;
        }
        self.queued_by_sender(cx, state, skb);
    }

    /// A packet of the capturing namespace with `state` is handed to its
    /// device in its sender's context: if it carries a send's data, its
    /// window starts at that send.
    #[inline(never)]
    fn queued_by_sender(&self, cx: &ProbeCx<'_>, state: &NetState, skb: &Skb) {
        // Not zeroed: usually the bytes are read in place, not copied here.
        let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
        let bytes = key_bytes(skb, &mut buf, false);
        // Its destination is a peer of the namespace: an outer device stamps
        // the packets it sends back.
        self.peers.touch(bytes, Side::Egress, jiffies32());
        let gso = skb.gso_size();
        // A packet is found again at an outer device by its socket buffer,
        // and told from a later packet in the same socket buffer by its
        // fingerprint; a GSO packet, which a device or qdisc on its way may
        // segment into other socket buffers, by its identity (fingerprint
        // 0), as its first segment.
        let (key, id, fp) = if gso == 0 {
            let Some((fp, id)) = packet::fingerprint_id(bytes, Side::Egress) else {
                return;
            };
            (skb.addr(), id, fp)
        } else {
            let Some(id) = packet::identify(bytes, Side::Egress, gso) else {
                return;
            };
            (id.key, id.packet_id(), 0)
        };
        if let Some(start) = self.send_start(state, skb.sock(), &id) {
            self.store_egress(cx, state, key, id.pktid, fp, start);
        }
    }

    /// `net_dev_start_xmit`: a packet starts transmission on `dev`; on an
    /// outer device that ends its egress window.
    pub(crate) fn xmit(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        // No sent packet waits (the gauge goes up before an entry is
        // stored): nothing to look up. This keeps the transmissions of
        // namespaces that do not capture cheap while no capturing one sends.
        if self.counters.egress_in_table.load(Relaxed) == 0 {
            return;
        }
        if !self.is_outer(dev) {
            return;
        }
        self.outer_xmit(cx, skb);
    }

    /// A packet starts transmission on an outer device: the end of its
    /// egress window if it is a capturing namespace's.
    #[inline(never)]
    fn outer_xmit(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        let now = mono_ns();
        let addr = skb.addr();
        // Where it was handed over, usually on this CPU: this CPU's note,
        // by its socket buffer, and its fingerprint only once the note has
        // the buffer (another packet's there never got here, and this one
        // got its socket buffer).
        let here = {
            let pin = cx.pin();
            let note = self.sent_notes.this_cpu(&pin);
            match bufnote::take(note, addr) {
                Taken::Got(e) => {
                    let fp = fingerprint(skb, false, Side::Egress);
                    return self.sent_taken(cx, sent_of(&e), fp, addr, now);
                }
                Taken::Writing | Taken::Miss => bufnote::cpu(note),
            }
        };
        self.xmit_elsewhere(cx, skb, here, now);
    }

    /// A packet that is not in its CPU's (`here`) note starts transmission
    /// on an outer device at `now`: the end of its egress window if a
    /// capturing namespace's packet waits for it in the sent stamps, in
    /// another CPU's note or in the egress table. Out of line: every other
    /// namespace's transmission comes here, a capturing namespace's rarely.
    #[inline(never)]
    fn xmit_elsewhere(&self, cx: &ProbeCx<'_>, skb: &Skb, here: Option<u32>, now: u64) {
        // By its socket buffer: its fingerprint only once the buffer is seen
        // to have an entry. Another packet's entry there never got here, and
        // this one got its socket buffer.
        let addr = skb.addr();
        let mut fp = None;
        let mut fp_of = || *fp.get_or_insert_with(|| fingerprint(skb, false, Side::Egress));
        // Handed over on another CPU, whose note may still hold it; then
        // the stamps, where a hand-over moves a note's packet before it
        // leaves the note (in this order, so that a move between the two
        // looks cannot hide it).
        if let Some(cpu) = self.sent_hints.get(addr).filter(|c| Some(*c) != here) {
            if self.sent_from_note_of(cx, cpu, addr, &mut fp_of, now) {
                return;
            }
        }
        if self.sent_from_stamps(cx, addr, &mut fp_of, now) {
            return;
        }
        // By its identity: a segment of a GSO packet.
        if self.egress_by_identity.load(Relaxed) == 0 {
            return;
        }
        let Some(id) = identify(skb, false, Side::Egress) else {
            return;
        };
        // An identity's entry (sent packets keyed by socket buffer are
        // stamps).
        let entry = |e: &Entry<EGRESS_WORDS>| Egress::from_words(&e.data);
        match self.egress.take(id.key, now) {
            Take::Hit(e) => self.egress_taken(cx, entry(&e), skb.addr(), now),
            Take::Expired(e) => self.egress_gone(cx, &entry(&e), Left::Expired),
            // Two live packets shared the identity: neither is reported.
            Take::Collided(e) => self.egress_gone(cx, &entry(&e), Left::Collided),
            Take::Miss => {}
        }
    }

    /// The packet noted as `e`, taken from a note, leaves an outer device
    /// at `now` in the socket buffer at `addr`, whose packet has fingerprint
    /// `fp` (`None`: none could be made): its latency if it is that packet,
    /// else the leftover of a packet that never got there, whose socket
    /// buffer this one got.
    #[inline(always)]
    fn sent_taken(&self, cx: &ProbeCx<'_>, e: Egress, fp: Option<u64>, addr: u64, now: u64) {
        if fp != Some(e.fp) {
            return self.egress_gone(cx, &e, Left::Expired);
        }
        if self.fresh(e.start, now) {
            return self.egress_taken(cx, e, addr, now);
        }
        self.egress_gone(cx, &e, Left::Expired);
    }

    /// Takes the packet in the socket buffer at `addr` (fingerprint by
    /// `fp_of`) from the stamps of sent packets, leaving an outer device at
    /// `now`; whether it was there. Another packet's leftover in that
    /// buffer is counted and dropped.
    fn sent_from_stamps(
        &self,
        cx: &ProbeCx<'_>,
        addr: u64,
        fp_of: &mut impl FnMut() -> Option<u64>,
        now: u64,
    ) -> bool {
        let Some((words, mine)) = self.sent.take_buffer(addr, &mut *fp_of) else {
            return false;
        };
        if mine {
            let fp = fp_of();
            let entry = Egress::from_sent_words(&words, fp.unwrap_or(UNKNOWN_FP));
            self.sent_taken(cx, entry, fp, addr, now);
            return true;
        }
        let leftover = Egress::from_sent_words(&words, UNKNOWN_FP);
        self.egress_gone(cx, &leftover, Left::Expired);
        false
    }

    /// Takes the packet in the socket buffer at `addr` from the note of CPU
    /// `cpu`, where a hint says a buffer with its hash was handed over,
    /// leaving an outer device at `now`; whether it was found there. Out of
    /// line: a transmission on the CPU of its hand-over never comes here.
    #[inline(never)]
    fn sent_from_note_of(
        &self,
        cx: &ProbeCx<'_>,
        cpu: u32,
        addr: u64,
        fp_of: &mut impl FnMut() -> Option<u64>,
        now: u64,
    ) -> bool {
        let Some(note) = self.sent_notes.on_cpu(cpu) else {
            return false;
        };
        // The writer, with preemption off, holds the note for a few dozen
        // instructions; what it moves meanwhile goes to the stamps.
        let Taken::Got(e) = bufnote::take_waiting(note, addr, NOTE_WAITS) else {
            return false;
        };
        bump(&self.counters.noted_elsewhere);
        self.sent_taken(cx, sent_of(&e), fp_of(), addr, now);
        true
    }

    /// The live packet of `entry`, taken from the egress table, leaves an
    /// outer device at `now` in the socket buffer at `addr`: its latency
    /// (with its segments, if its namespace breaks them down).
    #[inline(always)]
    fn egress_taken(&self, cx: &ProbeCx<'_>, entry: Egress, addr: u64, now: u64) {
        self.egress_out(&entry);
        let Some(state) = self.registry.get(cx, entry.ns) else {
            return;
        };
        sub(&state.counters.egress_in_table, 1);
        if state.breakdown() {
            self.egress_segmented(cx, state, &entry, addr, now);
        } else {
            state.report(cx, Direction::Egress, entry.start, now, entry.pktid);
        }
    }

    /// An entry left the egress table: the host's gauges go down.
    fn egress_out(&self, entry: &Egress) {
        sub(&self.counters.egress_in_table, 1);
        if entry.fp == 0 {
            sub(&self.egress_by_identity, 1);
        }
    }

    /// The start of the current task's send syscall, if it is in one, in
    /// the namespace with `state`, and the packet `id`, owned by socket
    /// `sock` (0: none), carries what it sent.
    fn send_start(&self, state: &NetState, sock: u64, id: &PacketId) -> Option<u64> {
        // The entry is the task's last send on a socket: it is the one the
        // task is in only while the task is in a send syscall on the same
        // file descriptor (each such send's entry replaces the one before),
        // and if that send started while capture was on (else its entry is
        // an earlier one's). Read without the lock: only this task writes
        // it, at its sends' entries.
        let (nr, arg0) = task::current_syscall()?;
        if !self.syscalls.sends(nr) {
            return None;
        }
        let (key, tid) = task::current_task();
        // This task's: the thread id is the stamp's fingerprint.
        let t = Sender::from_words(&self.sends.read_value(key, u64::from(tid))?);
        let send = &t.call;
        let ok = u64::from(t.fd) == arg0
            && (sock == 0 || sock == send.sock)
            && send.start.wrapping_sub(state.on_since()) as i64 >= 0
            && id.carries_send_of(send.tcp_write_seq);
        ok.then_some(send.start)
    }

    /// Stores the packet `pktid` of the namespace with `state`, sent by a
    /// syscall that started at `start`, to await an outer device: under
    /// `key`, its socket buffer (then `fp` is its fingerprint, and the entry
    /// is a stamp of the buffer, [`Self::store_sent`]) or its identity (then
    /// `fp` is 0). No clock: the entry is stored as of its send's start,
    /// whose age is its age.
    fn store_egress(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        key: u64,
        pktid: u32,
        fp: u64,
        start: u64,
    ) {
        let ns = state.handle();
        if ns == 0 {
            return;
        }
        let entry = Egress {
            start,
            ns,
            pktid,
            fp,
        };
        if fp != 0 {
            return self.note_sent(cx, state, key, &entry);
        }
        // The same packet again in the same syscall (handed to its neighbour,
        // then to its device) is not another packet.
        let same = |e: &Entry<EGRESS_WORDS>| Egress::from_words(&e.data).same_send(&entry);
        let c = &state.counters;
        let host = &self.counters;
        // Up before the entry can be found ([`Self::xmit`] looks only while
        // they are above 0), down again unless the table holds one more
        // entry ([`Self::egress_out`] for what leaves).
        bump(&host.egress_in_table);
        bump(&self.egress_by_identity);
        // Two live packets with one identity: neither is reported.
        let placed = self.egress.insert(key, start, &entry.to_words(), same);
        if let Insert::Same | Insert::Collision(_) = placed {
            // Not stored.
            self.egress_out(&entry);
        }
        if let Insert::Same = placed {
            return;
        }
        bump(&c.egress_sent);
        match placed {
            Insert::Collision(_) => return bump(&c.egress_collisions),
            Insert::Stored | Insert::Same => {}
            // The entry it took the place of leaves the table.
            Insert::ReplacedExpired(old) => {
                self.egress_gone(cx, &Egress::from_words(&old.data), Left::Expired)
            }
            Insert::Evicted(old) => {
                bump(&host.egress_evicted);
                self.egress_gone(cx, &Egress::from_words(&old.data), Left::Evicted);
            }
        }
        bump(&c.egress_in_table);
    }

    /// Notes `entry`, a packet of the namespace with `state` in the socket
    /// buffer at `key`, on this CPU ([`crate::bufnote`]), where its outer
    /// device's transmission usually finds it; the packet the note held,
    /// if it has not left, moves to the stamps of sent packets.
    fn note_sent(&self, cx: &ProbeCx<'_>, state: &NetState, key: u64, entry: &Egress) {
        let c = &state.counters;
        let host = &self.counters;
        // Up before the entry can be found ([`Self::xmit`] looks only while
        // it is above 0).
        bump(&host.egress_in_table);
        let noted = {
            let pin = cx.pin();
            let note = self.sent_notes.this_cpu(&pin);
            let stamp = Stamp {
                fp: entry.fp,
                value: entry.to_sent_words(),
            };
            let noted = bufnote::write(note, key, &stamp, |addr, old| {
                self.spill_sent(cx, addr, &sent_of(old));
            });
            if noted.is_some() {
                self.sent_hints.set(key, note);
            }
            noted
        };
        match noted {
            Some(Noted::Empty | Noted::Spilled) => {}
            Some(Noted::Superseded(old)) => {
                let old = sent_of(&old);
                if old.same_send(entry) {
                    // This packet, handed over again by its syscall (to its
                    // neighbour, then to its device): counted once.
                    return self.egress_out(entry);
                }
                self.egress_gone(cx, &old, Left::Expired);
            }
            None => {
                // Not noted (the note was another writer's, which one
                // writer a CPU rules out): a stamp instead.
                self.egress_out(entry);
                return self.store_sent(cx, state, key, entry);
            }
        }
        bump(&c.egress_sent);
        bump(&c.egress_in_table);
    }

    /// Moves `old`, the packet in the socket buffer at `addr` that this
    /// CPU's note held and that has not left yet, to the stamps of sent
    /// packets, where any CPU's transmission finds it. It stays counted as
    /// it was; only what its stamp goes over is counted out.
    fn spill_sent(&self, cx: &ProbeCx<'_>, addr: u64, old: &Egress) {
        match self.sent.put_sole_value(addr, old.fp, &old.to_sent_words()) {
            Put::Empty => {}
            Put::Superseded(was) => {
                // The buffer's earlier packet, stamped there before this one
                // was noted.
                let was = Egress::from_sent_words(&was, UNKNOWN_FP);
                self.egress_gone(cx, &was, Left::Expired);
            }
            Put::Replaced(was) => self.sent_replaced(cx, &was, old.start),
            Put::Busy => {
                // Not moved: other CPUs kept the slot busy.
                bump(&self.counters.egress_evicted);
                self.egress_gone(cx, old, Left::Evicted);
            }
        }
    }

    /// Stores `entry`, a packet of the namespace with `state` in the socket
    /// buffer at `key`, as a stamp of that buffer: without a lock, over the
    /// buffer's earlier entry, whose packet never reached an outer device
    /// (or which is this packet's, stored again by the same syscall).
    fn store_sent(&self, cx: &ProbeCx<'_>, state: &NetState, key: u64, entry: &Egress) {
        let c = &state.counters;
        let host = &self.counters;
        // Up before the entry can be found ([`Self::xmit`] looks only while
        // it is above 0).
        bump(&host.egress_in_table);
        match self
            .sent
            .put_sole_value(key, entry.fp, &entry.to_sent_words())
        {
            Put::Empty => {}
            Put::Superseded(old) => {
                let old = Egress::from_sent_words(&old, UNKNOWN_FP);
                if old.same_send(entry) {
                    // This packet, handed over again by its syscall (to its
                    // neighbour, then to its device): counted once.
                    return self.egress_out(entry);
                }
                self.egress_gone(cx, &old, Left::Expired);
            }
            Put::Replaced(old) => self.sent_replaced(cx, &old, entry.start),
            Put::Busy => {
                // Not stored: other CPUs kept the slot busy.
                self.egress_out(entry);
                bump(&c.egress_sent);
                bump(&host.egress_evicted);
                return bump(&c.egress_evicted);
            }
        }
        bump(&c.egress_sent);
        bump(&c.egress_in_table);
    }

    /// Another socket buffer's packet, `was`, was pushed out of a full set
    /// of the sent stamps by a packet sent at `start`: evicted if it was
    /// fresh then, else expired.
    fn sent_replaced(&self, cx: &ProbeCx<'_>, was: &[u64; SENT_WORDS], start: u64) {
        let was = Egress::from_sent_words(was, UNKNOWN_FP);
        if self.fresh(was.start, start) {
            bump(&self.counters.egress_evicted);
            self.egress_gone(cx, &was, Left::Evicted);
        } else {
            self.egress_gone(cx, &was, Left::Expired);
        }
    }

    /// The entry `entry` left the egress table without a latency (pushed out
    /// by another, taken by a packet it is not, or collided): the host's
    /// gauges, and its namespace's counters.
    fn egress_gone(&self, cx: &ProbeCx<'_>, entry: &Egress, why: Left) {
        self.egress_out(entry);
        let Some(state) = self.registry.get(cx, entry.ns) else {
            return;
        };
        let c = &state.counters;
        sub(&c.egress_in_table, 1);
        bump(match why {
            Left::Expired => &c.egress_expired,
            Left::Evicted => &c.egress_evicted,
            Left::Collided => &c.egress_collisions,
        });
    }
}

/// The fingerprint of an entry kept by socket buffer whose fingerprint is not
/// known (another packet's, pushed out or left over): any but 0, which marks
/// an entry keyed by identity ([`Capture::egress_out`]).
const UNKNOWN_FP: u64 = u64::MAX;

/// The sent packet a note's stamp holds.
fn sent_of(s: &Stamp<SENT_WORDS>) -> Egress {
    Egress::from_sent_words(&s.value, s.fp)
}

/// Why an entry left its table without a latency.
pub(super) enum Left {
    /// It was older than the table's maximum age (or another packet's).
    Expired,
    /// It was the oldest of a full bucket.
    Evicted,
    /// A GSO packet's identity was another live packet's too.
    Collided,
}
