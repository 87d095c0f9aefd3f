// SPDX-License-Identifier: GPL-2.0

//! The ingress path: from the outer device to the receiving syscall's
//! return.
//!
//! ```text
//! receive on the outer device   arrival stamp by data buffer, in this
//!                               CPU's note (its earlier one, if not
//!                               taken, moves to the arrival stamps); by
//!                               socket buffer for a clone, or while the
//!                               device has a packet tap, in the stamps
//! receive on a device of the    nothing, unless a tap there may be the
//!   capturing namespace           packet's reader (tap queue, below) or
//!                               stamps by socket buffer are about: then
//!                               ingress table: data buffer -> Ingress,
//!                               as stamped (lockless stamps)
//! the packet (or a copy sharing
//!   its data) reaches a task in
//!   a receiving syscall         take the stamp (or the table's entry) if
//!                               the fingerprint is the same; if its
//!                               socket reads a receive timestamp, its
//!                               latency (breakdown off); else the
//!                               syscall's latest packet (LatestPending):
//!                               this CPU's note for a datagram or raw
//!                               socket ([`crate::cpuslot`]), a stamp of
//!                               the task for a stream socket (lockless);
//!                               earlier ones: task table, Task.pending
//! recv_exited (sys_exit)        ingress latency of each pending packet,
//!                               the table's, then the note's or stamp's
//! ```
//!
//! From the outer device to its reader a received packet keeps its data
//! buffer, which the copy a raw or ping socket's reader gets shares: the
//! outer device's stamp is what the reader takes. NAT and forwarding write
//! the packet's header in place, unless another holder shares the buffer:
//! the packet is a clone (a local TCP sender's segments are clones of the
//! copies it keeps for retransmission), or a packet tap on the outer
//! device queues a copy (a packet socket that copies packets to its ring
//! lets them go at once), and the header then moves to a new data buffer.
//! For a cloned packet, or while the outer device has a tap, it stamps by
//! socket buffer, which the packet keeps to the capturing namespace's
//! device, and that device moves the stamp to the ingress table under the
//! data buffer the packet has by then.
//!
//! The window ends where the reader's clock stops: at the kernel's receive
//! timestamp if its socket reads one (SO_TIMESTAMP, SO_TIMESTAMPNS,
//! SO_TIMESTAMPING with software receive stamps: iputils `ping` by
//! default), known when the packet reaches its reader, else at the
//! syscall's return.
//!
//! NAT hides the receiving namespace until the packet reaches a task, so
//! every packet of an outer device is stamped (but a TCP segment without
//! payload, which no reader gets), and the namespace decides at delivery
//! whether it is reported.
//!
//! A tool that reads its replies through a packet socket (libpcap) never
//! makes a receiving syscall on an IP socket: a packet that a tap saw on a
//! capturing namespace's device and that no IP socket's reader takes
//! within a grace period is reported as the packet socket's. Its window
//! ends where the namespace's `tap_end` says ([`TapEnd`]): by default where
//! the tool gets it (`read`), or at the tap, the time the packet socket
//! stamps the packet with (`stamp`).
//!
//! The tool gets a packet once its packet socket has made it readable
//! (`sk_data_ready`: at once for a plain or TPACKET_V1/V2 socket, when its
//! block is closed for a TPACKET_V3 ring, as libpcap uses): when a read of
//! a packet socket of the namespace by the tool returns it, or, for a
//! libpcap reader, which takes packets from its ring without a syscall,
//! when it next enters a wait (`packet_poll()`), which it does only once it
//! has taken every readable packet. If it never does, where its last wait
//! returned with something to read; if it waits at all, and might take the
//! packet from its ring with no syscall seen after it became readable,
//! where it became readable ([`crate::tapread`]).
//!
//! ```text
//! receive on a tapped device    ingress entry taken, to the tap queue:
//!                               (key, namespace, t_tap, t_read, t_rx,
//!                               pktid), t_read not readable
//! IP socket's reader gets it     taken from the tap queue, as any other
//! sk_data_ready, packet socket  tap queue, namespace's packets: readable;
//!                               t_read = now, provisional, if the
//!                               namespace has a ring reader
//! packet_poll(), packet_recvmsg()
//!   in a syscall                task table: Task.tap_reader; entering a
//!                               poll: t_read = now for readable packets
//!                               (and provisional ones); the namespace
//!                               has a ring reader
//! poll's later pass, sys_exit   tap queue, readable packets: t_read = now
//!   with something to read      (a wait: provisional, until the next poll)
//! the sweep, after a grace      if no IP socket's reader took it: window
//!                               from the outer device to t_read (or t_tap)
//! ```

#![deny(unsafe_code)]

use super::{
    fingerprint, key_bytes, Capture, ERROR_QUOTE_BYTES, FINGERPRINT_BYTES, NOTE_WAITS, TAP_QUEUE,
    TAP_WORDS,
};
use crate::bufnote::{self, Noted, Stamp, Taken};
use crate::counters::{bump, sub};
use crate::cpuslot;
use crate::entry::{Ingress, LatestPending, Pending, Words};
use crate::ffi::net::{with_current_net, Net};
use crate::ffi::skb::{Dev, RxStamp, Skb, Sock};
use crate::ffi::task;
use crate::ffi::tracepoint::ProbeCx;
use crate::ffi::work::schedule_sweep;
use crate::ffi::{jiffies32, mono_ns, SyscallHooks};
use crate::netns::NetState;
use crate::packet::{self, PacketId, Side, CAPTURE_BYTES};
use crate::parse::TapEnd;
use crate::record::{Direction, Segments};
use crate::stamps::Put;
use crate::tapread::{self, ReaderEvent, TapRead};
use core::mem::MaybeUninit;
use core::sync::atomic::Ordering::Relaxed;

impl Capture {
    /// `netif_receive_skb`: a packet arrives. On an outer device it starts
    /// an ingress window; on a device of a capturing namespace, the packet
    /// is stored for its reader (and the tap may be its only reader).
    #[inline(always)]
    pub(crate) fn receive(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        let net = dev.net();
        if self.is_outer(dev) {
            return self.outer_received(cx, skb, dev, net);
        }
        let Some(state) = self.state_of(cx, net) else {
            return;
        };
        if !state.enabled() {
            return;
        }
        self.received_in(cx, state, skb, dev);
    }

    /// A packet arrives on `dev`, a device of the capturing namespace with
    /// `state`. Its reader takes the outer device's stamp itself: the
    /// device has work only for a stamp by socket buffer, or for a tap
    /// there. Out of line, as the test of the device's taps, a call, would
    /// give the probe a frame for every packet.
    #[inline(never)]
    fn received_in(&self, cx: &ProbeCx<'_>, state: &NetState, skb: &Skb, dev: &Dev) {
        let taps = dev.has_taps();
        if !taps && self.stamped_by_skb.load(Relaxed) == 0 {
            return;
        }
        self.received_stamped(cx, state, skb, taps);
    }

    /// A packet `skb` arrives on a device of the capturing namespace with
    /// `state`, while an outer device may have stamped it by socket buffer
    /// or while a tap there (`taps`) may be its reader: the stamp is moved
    /// to the ingress table, as arrived then, under the data buffer, and
    /// from there to the tap queue if the device has a tap.
    #[inline(never)]
    fn received_stamped(&self, cx: &ProbeCx<'_>, state: &NetState, skb: &Skb, taps: bool) {
        // The network header is not set yet: the packet starts at its data.
        // Not zeroed: usually the bytes are read in place, not copied here.
        let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
        let bytes = key_bytes(skb, &mut buf, true);
        // The fingerprint first, the packet's id only for a stamped one:
        // loopback and container-to-container traffic cost little.
        let Some(fp) = packet::fingerprint(bytes, Side::Ingress) else {
            return;
        };
        // No clock but for the gate: a stamp is stored as of its arrival,
        // and a stale one (its packet never reached a capturing namespace,
        // and a later one with the same fingerprint got its buffer) is
        // found expired by its reader, which reads the clock anyway.
        let by_skb = if self.by_skb_open() {
            self.arrivals.take(skb.addr(), fp)
        } else {
            None
        };
        // A tap may be the reader: the stamp by data buffer moves too.
        let stamp = by_skb.or_else(|| {
            if taps {
                self.take_stamp(cx, skb.head(), fp)
            } else {
                None
            }
        });
        if let Some(t_rx) = stamp {
            if let Some(id) = packet::packet_id(bytes, Side::Ingress) {
                self.store_received(skb.head(), fp, id, t_rx);
            }
        }
        if taps {
            self.tapped(cx, state, skb.head(), fp, mono_ns());
        }
    }

    /// Whether an outer device stamped a packet by socket buffer less than
    /// `max_age_ms` ago ([`Self::stamped_by_skb`]); if it did longer ago,
    /// the time is cleared, so that the next device does not read the
    /// clock again.
    fn by_skb_open(&self) -> bool {
        let t = self.stamped_by_skb.load(Relaxed);
        if t == 0 {
            return false;
        }
        if self.fresh(t, mono_ns()) {
            return true;
        }
        // An outer device that stamps by socket buffer meanwhile stored a
        // later time: it stays.
        let _ = self.stamped_by_skb.compare_exchange(t, 0, Relaxed, Relaxed);
        false
    }

    /// A packet arrives on the outer device `dev` of the initial namespace
    /// `net`: stamped if it is a capturing namespace's peer's
    /// ([`crate::peers`]), or while the initial namespace captures, whose
    /// processes read straight from the outer device. Out of line and
    /// without a frame: most packets end in the look at the peers, which
    /// reads their bytes in place.
    #[inline(never)]
    fn outer_received(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev, net: &Net) {
        if self.state_of(cx, net).is_some_and(NetState::enabled) {
            return self.outer_received_init(skb);
        }
        // The network header is not set yet: the packet starts at its
        // data. Bytes that are not in place (rare) are copied by the stamp,
        // which is made without asking.
        let bytes = skb.net_bytes_in_place(FINGERPRINT_BYTES, true);
        if let Some(bytes) = bytes {
            if !self.peers.admits(bytes, Side::Ingress, jiffies32()) {
                return self.outer_not_peer(cx, skb, dev, bytes);
            }
        }
        self.outer_stamp(skb, dev, bytes, cx);
    }

    /// A packet whose first bytes are `in_place` arrives on the outer device
    /// `dev` from an address that is no peer of a capturing namespace:
    /// stamped only if it is an ICMP or ICMPv6 error a router sent about a
    /// packet to a peer (a traceroute's reply;
    /// [`crate::peers::Peers::admits_error`]). Out of line, reached by a
    /// tail call: a peer's packet never comes here, and
    /// [`Self::outer_received`] keeps no frame for it.
    #[inline(never)]
    fn outer_not_peer(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev, in_place: &[u8]) {
        if packet::may_be_error(in_place) {
            self.outer_error(cx, skb, dev);
        }
    }

    /// [`Self::outer_not_peer`] of a packet that may be an error. Out of
    /// line: the test before it keeps no frame.
    #[cold]
    #[inline(never)]
    fn outer_error(&self, cx: &ProbeCx<'_>, skb: &Skb, dev: &Dev) {
        // As far as the quoted packet's destination (or the whole packet,
        // if it is shorter). Not copied: an error whose headers are not in
        // place is not stamped.
        let Some(bytes) = skb.net_bytes_in_place(ERROR_QUOTE_BYTES, true) else {
            return;
        };
        if self.peers.admits_error(bytes, jiffies32()) {
            self.outer_stamp(skb, dev, Some(bytes), cx);
        }
    }

    /// A packet arrives on an outer device while the initial namespace
    /// captures: it is stored at once, for its reader to take.
    #[inline(never)]
    fn outer_received_init(&self, skb: &Skb) {
        // The window starts here, before anything else of mace's: what
        // runs before its clock is neither in it nor in the wire's time.
        let now = mono_ns();
        // Not zeroed: usually the bytes are read in place, not copied here.
        let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
        let bytes = key_bytes(skb, &mut buf, true);
        let fp = packet::fingerprint(bytes, Side::Ingress);
        if let (Some(fp), Some(id)) = (fp, packet::packet_id(bytes, Side::Ingress)) {
            self.store_received(skb.head(), fp, id, now);
        }
    }

    /// A capturing namespace's peer's packet `skb`, whose first bytes are
    /// `in_place` unless they are not in its linear part, arrives on the
    /// outer device `dev`: its arrival is stamped by data buffer, for its
    /// reader to take ([`Self::deliver_in`]), or by socket buffer if it is
    /// a clone or the device has a packet tap, for a capturing namespace's
    /// device to take ([`Self::received_in`]).
    #[inline(never)]
    fn outer_stamp(&self, skb: &Skb, dev: &Dev, in_place: Option<&[u8]>, cx: &ProbeCx<'_>) {
        // The window starts here: the look at the peers before it is in no
        // window.
        let now = mono_ns();
        let c = &self.counters;
        let fp = match in_place {
            Some(bytes) => packet::fingerprint(bytes, Side::Ingress),
            None => fingerprint(skb, true, Side::Ingress),
        };
        let Some(fp) = fp else {
            return;
        };
        bump(&c.ingress_stamped);
        // Its data may move to a new buffer where NAT or forwarding writes
        // its header: while the buffer is shared with a copy, the
        // packet's own (TCP keeps its segments for retransmission, so a
        // local sender's reach the outer device as copies), or a tap's.
        let lost = if skb.cloned() || dev.has_taps() {
            self.stamped_by_skb.store(now, Relaxed);
            self.put_arrival(skb.addr(), fp, now)
        } else {
            self.note_arrival(cx, skb.head(), fp, now)
        };
        if lost {
            bump(&c.ingress_stamps_lost);
        }
    }

    /// Stamps the arrival at `now` of the packet with fingerprint `fp` in
    /// the buffer at `key` in the arrival stamps: whether a fresh stamp of
    /// another packet was lost to it.
    fn put_arrival(&self, key: u64, fp: u64, now: u64) -> bool {
        match self.arrivals.put_sole(key, fp, now) {
            // The buffer's earlier packet left it without reaching a
            // capturing namespace's device.
            Put::Empty | Put::Superseded(_) => false,
            // Another packet's stamp, fresh: it loses its ingress window.
            Put::Replaced([t]) => self.fresh(t, now),
            Put::Busy => true,
        }
    }

    /// Notes the arrival at `now` of the packet with fingerprint `fp` in the
    /// data buffer at `key` on this CPU ([`crate::bufnote`]), where its
    /// reader, usually woken on this CPU, takes it; the stamp the note held,
    /// if its reader has not taken it, moves to the arrival stamps. Whether
    /// a fresh stamp was lost.
    fn note_arrival(&self, cx: &ProbeCx<'_>, key: u64, fp: u64, now: u64) -> bool {
        let mut lost = false;
        let noted = {
            let pin = cx.pin();
            let note = self.arrival_notes.this_cpu(&pin);
            let stamp = Stamp { fp, value: [now] };
            let noted = bufnote::write(note, key, &stamp, |addr, old| {
                let [t] = old.value;
                lost = self.put_arrival(addr, old.fp, t);
            });
            if noted.is_some() {
                self.arrival_hints.set(key, note);
            }
            noted
        };
        match noted {
            // The buffer's earlier stamp: its packet left the buffer
            // without reaching a capturing namespace's device.
            Some(Noted::Empty | Noted::Spilled | Noted::Superseded(_)) => lost,
            // Not noted (another writer held the note, which one writer a
            // CPU rules out): a stamp instead.
            None => self.put_arrival(key, fp, now),
        }
    }

    /// Takes the arrival stamp of the packet with fingerprint `fp` in the
    /// data buffer at `key`, if there is one: from this CPU's note, the
    /// arrival stamps, or the note of the CPU that a hint names. Its time.
    #[inline(always)]
    fn take_stamp(&self, cx: &ProbeCx<'_>, key: u64, fp: u64) -> Option<u64> {
        let here = {
            let pin = cx.pin();
            let note = self.arrival_notes.this_cpu(&pin);
            match bufnote::take(note, key) {
                // Another packet's stamp in that buffer never reached a
                // reader: it goes as a stamp gone over would.
                Taken::Got(Stamp { fp: f, value: [t] }) => return (f == fp).then_some(t),
                Taken::Writing | Taken::Miss => bufnote::cpu(note),
            }
        };
        self.take_stamp_elsewhere(key, fp, here)
    }

    /// [`Self::take_stamp`] past this CPU's (`here`) note. Out of line: a
    /// reader woken where its packet arrived, and every other namespace's,
    /// never comes here.
    #[inline(never)]
    fn take_stamp_elsewhere(&self, key: u64, fp: u64, here: Option<u32>) -> Option<u64> {
        // The note of the CPU a hint names, then the stamps, where an
        // arrival moves a note's stamp before it leaves the note (in this
        // order, so that a move between the two looks cannot hide it).
        let hinted = self.arrival_hints.get(key).filter(|c| Some(*c) != here);
        if let Some(note) = hinted.and_then(|cpu| self.arrival_notes.on_cpu(cpu)) {
            // The writer, with preemption off, holds the note for a few
            // dozen instructions; what it moves meanwhile goes to the
            // stamps.
            if let Taken::Got(Stamp { fp: f, value: [t] }) =
                bufnote::take_waiting(note, key, NOTE_WAITS)
            {
                bump(&self.counters.noted_elsewhere);
                return (f == fp).then_some(t);
            }
        }
        self.arrivals.take(key, fp)
    }

    /// Stores the received packet `id` with fingerprint `fp`, arrived at
    /// `t_rx` on an outer device, for its reader: under `key`, its data
    /// buffer, which the copies readers get share. Without a lock: a stamp
    /// of the data buffer ([`crate::stamps`]).
    fn store_received(&self, key: u64, fp: u64, id: PacketId, t_rx: u64) {
        let c = &self.counters;
        if id.first_fragment {
            // Its reader gets the datagram reassembled, another packet: it
            // could never be found again.
            return bump(&c.ingress_fragments);
        }
        let entry = Ingress {
            t_rx,
            pktid: id.pktid,
        };
        bump(&c.ingress_received);
        // Up before a reader can take it (and count it down).
        bump(&c.ingress_in_table);
        let gone = match self.received.put_sole_time(key, fp, &entry.to_words()) {
            Put::Empty => return,
            // The leftover of a packet that never reached a reader, in the
            // buffer this one got.
            Put::Superseded(_) => &c.ingress_expired,
            // Another buffer's packet, pushed out of a full set.
            Put::Replaced([t]) if self.fresh(t, t_rx) => &c.ingress_evicted,
            Put::Replaced(_) => &c.ingress_expired,
            // This one: other CPUs kept the slot busy.
            Put::Busy => &c.ingress_evicted,
        };
        sub(&c.ingress_in_table, 1);
        bump(gone);
    }

    /// Takes the arrival of the packet with data buffer `key`, fingerprint
    /// `fp` and first bytes `bytes`, which reaches a reader of the namespace
    /// with `state`: the outer device's stamp, usually; the ingress table's
    /// entry where the stamp was moved there (a tap, a stamp by socket
    /// buffer, the initial namespace capturing); the tap queue's. Its
    /// arrival time, its packet id and where it was found, not yet counted
    /// ([`Self::arrival_left`]).
    #[inline(always)]
    fn take_arrival(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        key: u64,
        fp: u64,
        bytes: &[u8],
    ) -> Option<(u64, u32, Found)> {
        if let Some(t_rx) = self.take_stamp(cx, key, fp) {
            // A packet with a fingerprint and without an id (not an echo,
            // say) gives its stamp up unreported, as before a capturing
            // namespace's device stored only what had an id.
            let id = packet::packet_id(bytes, Side::Ingress)?;
            return Some((t_rx, id.pktid, Found::Stamp));
        }
        if let Some(entry) = self.take_entry(key, fp) {
            return Some((entry.t_rx, entry.pktid, Found::Table));
        }
        let (t_rx, pktid) = self.take_tapped(state, key, fp)?;
        Some((t_rx, pktid, Found::Tap))
    }

    /// Counts how the arrival of a packet for a reader of the namespace with
    /// `state`, found as `found` and arrived at `t_rx`, left: taken if it is
    /// fresh at `now` (`None`: not known yet; the syscall's return checks
    /// it), else expired. Whether it is fresh. The tap queue's packets were
    /// counted when they entered it, and its sweep keeps them fresh.
    fn arrival_left(&self, state: &NetState, found: Found, t_rx: u64, now: Option<u64>) -> bool {
        let fresh = match now {
            Some(now) => self.fresh(t_rx, now),
            None => true,
        };
        let (host, c) = (&self.counters, &state.counters);
        bump(match (found, fresh) {
            (Found::Tap, _) => return true,
            (Found::Stamp, true) => &host.ingress_stamps_taken,
            (Found::Stamp, false) => &host.ingress_stamps_lost,
            (Found::Table, true) => &host.ingress_taken,
            (Found::Table, false) => &host.ingress_expired,
        });
        bump(if fresh {
            &c.ingress_taken
        } else {
            &c.ingress_expired
        });
        fresh
    }

    /// Takes the ingress entry with `key` of a packet with fingerprint `fp`,
    /// if it is there: uncounted but for the host's gauge.
    fn take_entry(&self, key: u64, fp: u64) -> Option<Ingress> {
        // Only this packet's: another packet's leftover in the data buffer,
        // which never reached a reader, has another fingerprint, and stays
        // until a later packet's entry in the buffer goes over it or a full
        // set pushes it out ([`Self::store_received`] counts it then).
        let entry = Ingress::from_words(&self.received.take_value(key, fp)?);
        sub(&self.counters.ingress_in_table, 1);
        Some(entry)
    }

    /// Takes the ingress entry with `key` for a reader of the namespace with
    /// `state` (a tap's, through the sweep) of a packet with fingerprint
    /// `fp`, counting how it left the table; its arrival time and packet id
    /// if it is there and fresh at `now`.
    fn take_ingress(&self, state: &NetState, key: u64, fp: u64, now: u64) -> Option<(u64, u32)> {
        let entry = self.take_entry(key, fp)?;
        self.arrival_left(state, Found::Table, entry.t_rx, Some(now))
            .then_some((entry.t_rx, entry.pktid))
    }

    /// The packet `id` arrives at `now` on a device of the capturing
    /// namespace with `state` that packet taps see (tcpdump, libpcap).
    ///
    /// A tool that reads its replies through a packet socket (hping3, nping,
    /// scapy) makes no receiving syscall on an IP socket. Whether an IP
    /// socket's reader also takes the packet is known only later, so the
    /// packet leaves the ingress table (where other traffic could push it
    /// out meanwhile) for the tap queue, where such a reader finds it
    /// ([`Self::take_tapped`]); the sweep reports it as the packet socket's
    /// if nobody took it ([`Capture::sweep_taps`]).
    fn tapped(&self, cx: &ProbeCx<'_>, state: &NetState, key: u64, fp: u64, now: u64) {
        let ns = state.handle();
        if ns == 0 {
            return;
        }
        // Not from an outer device, or counted as expired or collided.
        let Some((t_rx, pktid)) = self.take_ingress(state, key, fp, now) else {
            return;
        };
        if !self.taps.push(&[
            key,
            ns,
            now,
            TapRead::NEW.word(),
            t_rx,
            u64::from(pktid),
            fp,
        ]) {
            bump(&self.counters.taps_overflow);
            return bump(&state.counters.ingress_unreported);
        }
        bump(&state.counters.ingress_pending);
        schedule_sweep(cx, ns_to_ms(self.tap_grace));
    }

    /// A reader of an IP socket of the namespace with `state` gets the
    /// packet with `key` and fingerprint `fp`, which a tap saw first: takes
    /// it from the tap queue. Bounded: at most what the queue holds, and
    /// nothing when it is empty (no tap in any capturing namespace).
    fn take_tapped(&self, state: &NetState, key: u64, fp: u64) -> Option<(u64, u32)> {
        if self.taps.len() == 0 {
            return None;
        }
        let ns = state.handle();
        if ns == 0 {
            return None;
        }
        let mut found = None;
        self.taps.update_each(|rec| {
            if found.is_none() && rec[0] == key && rec[1] == ns && rec[6] == fp {
                found = u32::try_from(rec[5]).ok().map(|pktid| (rec[4], pktid));
                // Taken: the sweep drops it.
                rec[1] = 0;
            }
        });
        if found.is_some() {
            sub(&state.counters.ingress_pending, 1);
        }
        found
    }

    /// `packet_poll()`: the current task, in a syscall, waits for packet
    /// socket `sk`, in the first pass over its files (`first`: the wait's
    /// start) or after a wakeup.
    ///
    /// On the syscall tracepoints, the wait's start is its first call here
    /// since its task's last receiving or waiting syscall returned, and its
    /// return is seen ([`Self::packet_read`]). On the socket calls no wait's
    /// return is seen: `poll()` and `select()` pass a queueing function in
    /// their first pass only, which marks the wait's start, and a later
    /// pass, after a wakeup, finds the packets that became readable, with
    /// which the wait returns. `epoll` waits make no first pass (their
    /// packets end where the wait returned, as for a reader that never waits
    /// again), nor does a wait with a zero timeout.
    pub(crate) fn packet_polled(&self, cx: &ProbeCx<'_>, sk: &Sock, first: bool) {
        if self.syscall_hooks != SyscallHooks::SocketCalls {
            return self.packet_read(cx, sk, true);
        }
        if !task::in_task() {
            return;
        }
        let Some(state) = self.reading_state(cx, sk) else {
            return;
        };
        let event = if first {
            ReaderEvent::WaitStarted
        } else {
            ReaderEvent::WaitReturned
        };
        self.tap_read(cx, state, mono_ns(), event);
    }

    /// `packet_poll()` (`poll`), `packet_recvmsg()`: the current task, in
    /// a syscall, waits for or reads packet socket `sk`. If the syscall
    /// returns with something to read, the packets of the socket's
    /// namespace that were readable have reached the tool
    /// ([`Self::tap_read`]); if the task enters a wait, those it took from
    /// its ring since its last syscall have.
    pub(crate) fn packet_read(&self, cx: &ProbeCx<'_>, sk: &Sock, poll: bool) {
        if !task::in_task() {
            return;
        }
        let Some(state) = self.reading_state(cx, sk) else {
            return;
        };
        let ns = state.handle();
        let now = mono_ns();
        let entering = self.update_task(cx, ns, now, |t| {
            // Packets it took from an IP socket of another namespace keep
            // their namespace (a syscall that does both is not known).
            if t.pending().is_empty() || t.ns == ns {
                t.ns = ns;
                let first = !t.tap_reader;
                t.tap_reader = true;
                first
            } else {
                false
            }
        });
        // packet_poll() runs at a poll's start and after each wakeup: only
        // the start is the tool's next wait.
        if poll && entering == Some(true) {
            self.tap_read(cx, state, now, ReaderEvent::WaitStarted);
        }
    }

    /// The state of packet socket `sk`'s namespace, if it captures and its
    /// windows end where the reader gets a packet (`tap_end` `read`).
    fn reading_state<'a>(&'a self, cx: &'a ProbeCx<'_>, sk: &'a Sock) -> Option<&'a NetState> {
        let state = self.state_of(cx, sk.net())?;
        (state.enabled() && state.handle() != 0 && self.tap_end(state) == TapEnd::Read)
            .then_some(state)
    }

    /// `sk_data_ready` for packet socket `sk`: the packets a tap saw in the
    /// socket's namespace until now are readable, and may reach a tool that
    /// takes them from its ring at once ([`TapRead::made_readable`]).
    pub(crate) fn packet_ready(&self, cx: &ProbeCx<'_>, sk: &Sock) {
        let Some(state) = self.reading_state(cx, sk) else {
            return;
        };
        let ns = state.handle();
        if tapread::made_readable(&self.taps, state.ring_reader(), ns, mono_ns()) {
            schedule_sweep(cx, ns_to_ms(self.tap_grace));
        }
    }

    /// A task reading or waiting for a packet socket of the namespace with
    /// `state` did `event` at `now`: the readable packets a tap saw there
    /// have reached the tool, or will once it takes them from its ring
    /// ([`TapRead::on`]).
    pub(super) fn tap_read(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        now: u64,
        event: ReaderEvent,
    ) {
        if tapread::reader_did(&self.taps, state.ring_reader(), state.handle(), event, now) {
            schedule_sweep(cx, ns_to_ms(self.tap_grace));
        }
    }

    /// The sweep: reports the packets a tap saw that no IP socket's reader
    /// took within the grace period, as their packet socket's; returns in
    /// how many milliseconds to sweep again (0: the tap queue is empty).
    ///
    /// A packet waits until its namespace's tap end is known: the tap with
    /// `tap_end` `stamp`, else its reader's return, for at most
    /// `max_age_ms`; one that no reader got by then is counted as
    /// unreported.
    pub(crate) fn sweep_taps(&self, cx: &ProbeCx<'_>) -> u32 {
        let now = mono_ns();
        let (grace, max_age) = (self.tap_grace, self.max_age);
        let age = |rec: &[u64; TAP_WORDS]| now.wrapping_sub(rec[2]) as i64;
        let stamp = |ns: u64| {
            self.registry
                .get(cx, ns)
                .map_or(TapEnd::Stamp, |s| self.tap_end(s))
                == TapEnd::Stamp
        };
        let read = |rec: &[u64; TAP_WORDS]| TapRead::from_word(rec[tapread::READ_WORD]).got();
        let due = |rec: &[u64; TAP_WORDS]| {
            age(rec) > max_age as i64 || age(rec) >= grace as i64 && (read(rec) || stamp(rec[1]))
        };
        // Bounded: at most what the queue holds.
        for _ in 0..TAP_QUEUE {
            let Some([_, ns, t_tap, t_read, t_rx, pktid, _]) = self.taps.pop_if(due) else {
                break;
            };
            // Taken by an IP socket's reader (0), or the namespace is gone.
            let Some(state) = self.registry.get(cx, ns).filter(|_| ns != 0) else {
                continue;
            };
            let c = &state.counters;
            sub(&c.ingress_pending, 1);
            let (end, counter) = match (self.tap_end(state), TapRead::from_word(t_read).end()) {
                (TapEnd::Stamp, _) => (t_tap, &c.ingress_end_tap),
                (TapEnd::Read, Some(t_read)) => (t_read, &c.ingress_end_tap_read),
                // No reader got it within `max_age_ms`.
                (TapEnd::Read, None) => {
                    bump(&c.ingress_unreported);
                    continue;
                }
            };
            let pktid = u32::try_from(pktid).unwrap_or(0);
            let reported = if state.breakdown() {
                // The tap saw it on the namespace's device: the host
                // segment ends there, and the rest is the packet socket's.
                let segments = Segments::ended_by(t_rx, t_tap, t_tap, end);
                self.report_segmented(cx, state, Direction::Ingress, t_rx, end, pktid, segments)
            } else {
                state.report(cx, Direction::Ingress, t_rx, end, pktid)
            };
            if reported {
                bump(counter);
            }
        }
        match self.taps.front() {
            Some(rec) => {
                let wait = if read(&rec) || stamp(rec[1]) {
                    grace
                } else {
                    max_age.saturating_add(1)
                };
                let left = wait.saturating_sub(age(&rec).max(0) as u64);
                ns_to_ms(left.min(grace)).max(1)
            }
            None => 0,
        }
    }

    /// `skb_copy_datagram_iovec`: a receiving syscall hands a packet to the
    /// task (TCP, raw and ping sockets, large UDP datagrams), from the
    /// socket that owns it; `__consume_stateless_skb()`: a UDP datagram
    /// whose reader is done with it is freed (where `skb_consume_udp()` is
    /// inlined: the task's namespace, and the syscall's return).
    #[inline(always)]
    pub(crate) fn copied(&self, cx: &ProbeCx<'_>, skb: &Skb) {
        self.deliver(cx, skb, skb.owner());
    }

    /// `skb_consume_udp()`: a UDP socket's reader is done with a datagram
    /// (UDP copies small datagrams without `skb_copy_datagram_iovec`).
    pub(crate) fn consumed_udp(&self, cx: &ProbeCx<'_>, sk: &Sock, skb: &Skb) {
        self.deliver(cx, skb, Some(sk));
    }

    /// A packet reaches a task: if it came in through an outer device and
    /// the task is in a receiving syscall, remember when it arrived and
    /// where its window ends, to report at the syscall's exit. The packet
    /// belongs to its socket's namespace (the task's, if the socket is not
    /// known). Inline, with its filters, in the probes: a call of its own
    /// cost another namespace's reply 16 instructions (profile).
    #[inline(always)]
    fn deliver(&self, cx: &ProbeCx<'_>, skb: &Skb, sk: Option<&Sock>) {
        if !task::in_task() {
            return;
        }
        match sk {
            Some(sk) => self.deliver_in(cx, sk.net(), skb, Some(sk)),
            None => {
                with_current_net(|net| self.deliver_in(cx, net, skb, None));
            }
        }
    }

    /// A packet of the namespace `net` (its socket's, or the task's)
    /// reaches the current task: taken from the ingress table if the
    /// namespace captures and the task is in a receiving syscall. The
    /// filters inline, in the probe: most packets are other namespaces',
    /// which then pay for no frame.
    #[inline(always)]
    fn deliver_in(&self, cx: &ProbeCx<'_>, net: &Net, skb: &Skb, sk: Option<&Sock>) {
        let Some(state) = self.state_of(cx, net) else {
            return;
        };
        // The namespace first: it is read inline, the syscall through C.
        if !state.enabled() || !self.syscalls.receives(task::current_syscall_nr()) {
            return;
        }
        self.delivered(cx, state, skb, sk);
    }

    /// A packet of the capturing namespace with `state` reaches the current
    /// task in a receiving syscall: its stamp is taken, and its window
    /// reported or left pending for the syscall's return.
    #[inline(never)]
    fn delivered(&self, cx: &ProbeCx<'_>, state: &NetState, skb: &Skb, sk: Option<&Sock>) {
        // Found by its data buffer (a raw or ping socket's reader gets a
        // copy that shares it) and its fingerprint.
        // Not zeroed: usually the bytes are read in place, not copied here.
        let mut buf = [MaybeUninit::<u8>::uninit(); CAPTURE_BYTES];
        let bytes = key_bytes(skb, &mut buf, false);
        let Some(fp) = packet::fingerprint(bytes, Side::Ingress) else {
            return;
        };
        let key = skb.head();
        let Some((t_rx, pktid, found)) = self.take_arrival(cx, state, key, fp, bytes) else {
            // Its sender is a peer from now on, if it was not (an outer
            // device then stamped none of its packets): the next ones are
            // stamped. A stamped packet's sender is a peer already.
            if !self.peers.touch(bytes, Side::Ingress, jiffies32()) {
                bump(&state.counters.ingress_new_peers);
            }
            return;
        };
        // The reader's clock stops where it takes its receive time: the
        // kernel's stamp if it reads one, else the syscall's return.
        let end = match sk.map(|sk| sk.rx_stamp(skb)) {
            Some(RxStamp::Taken(t)) => t,
            Some(RxStamp::AtRead) => mono_ns(),
            Some(RxStamp::None) | None => 0,
        };
        // No clock of its own: the arrival's age is checked at the window's
        // end, the kernel's stamp, or the syscall's return, which reads the
        // clock anyway ([`Self::recv_exited`]).
        let now = if end != 0 { Some(end) } else { None };
        if !self.arrival_left(state, found, t_rx, now) {
            return;
        }
        if state.breakdown() {
            self.delivered_waypoints(cx, key, fp, t_rx, pktid);
        }
        if end != 0 && !state.breakdown() {
            // Its window is known now: reported at once, without a task
            // entry to carry it to the syscall's return (iputils ping's
            // replies, in its default mode).
            if state.report(cx, Direction::Ingress, t_rx, end, pktid) {
                bump(&state.counters.ingress_end_stamp);
            }
            return;
        }
        let datagram = sk.is_some_and(Sock::is_datagram);
        self.add_pending(cx, state, Pending { t_rx, pktid, end }, datagram);
    }

    /// Adds a received packet of the namespace with `state` to the current
    /// task's pending packets: as the latest packet of its receiving
    /// syscall, which this CPU's note holds for a datagram or raw socket's
    /// receive (`datagram`) and the stamp of the task for another's; an
    /// earlier one the note or stamp held goes to the task's entry, which
    /// the syscall's return reports first.
    fn add_pending(&self, cx: &ProbeCx<'_>, state: &NetState, p: Pending, datagram: bool) {
        let (key, tid) = task::current_task();
        let f = LatestPending {
            packet: p,
            ns: state.handle(),
            tid,
        };
        let c = &state.counters;
        // Up before the packet can be taken (and counted down).
        bump(&c.ingress_pending);
        if datagram {
            return self.note_pending(cx, key, &f);
        }
        bump(&self.latest_pending_out);
        bump(&self.latest_stamped_out);
        // No look first: most receiving syscalls take one packet, and the
        // put says what the slot held.
        let put = self
            .latest_pending
            .put_sole_value(key, u64::from(tid), &f.to_words());
        // Stored over another stamp, which leaves, or not stored: as many
        // stamps as before.
        if put != Put::Empty {
            sub(&self.latest_pending_out, 1);
            sub(&self.latest_stamped_out, 1);
        }
        match put {
            Put::Empty => {}
            Put::Superseded(old) => {
                let old = LatestPending::from_words(&old);
                // Ages by arrival: the delivery reads no clock.
                if old.tid == tid && self.fresh(old.packet.t_rx, p.t_rx) {
                    // This syscall's earlier packet: to the task's entry.
                    self.pend_in_entry(cx, &old);
                } else {
                    // A dead task's, under the same key, or this task's
                    // from a receive whose return it never saw.
                    self.pending_lost(cx, old.ns, 1);
                }
            }
            // Another task's, pushed out of a full set.
            Put::Replaced(old) => {
                let old = LatestPending::from_words(&old);
                if self.fresh(old.packet.t_rx, p.t_rx) {
                    bump(&self.counters.tasks_evicted);
                }
                self.pending_lost(cx, old.ns, 1);
            }
            // Other CPUs kept the slot busy.
            Put::Busy => {
                sub(&c.ingress_pending, 1);
                bump(&c.ingress_unreported);
            }
        }
    }

    /// Notes `f`, the packet a datagram or raw socket's receive of the
    /// current task (at `key`) takes, on this CPU ([`crate::cpuslot`]),
    /// where its receive's return takes it (or, if the task moved to
    /// another CPU meanwhile, takes it from there through the hint); an
    /// earlier packet of the same receive there goes to the task's entry,
    /// another's leftover (its task moved and did not take it) is lost.
    fn note_pending(&self, cx: &ProbeCx<'_>, key: u64, f: &LatestPending) {
        let old = {
            let pin = cx.pin();
            let note = self.pending_notes.this_cpu(&pin);
            let old = cpuslot::write(note, key, task::current_migrations(), f);
            self.pending_hints.set(key, note);
            old
        };
        match old {
            // One more packet out.
            None => bump(&self.latest_pending_out),
            // This syscall's earlier packet (the same task, which has not
            // left the CPU since): to the task's entry. Ages by arrival:
            // the delivery reads no clock.
            Some((old, true)) if self.fresh(old.packet.t_rx, f.packet.t_rx) => {
                self.pend_in_entry(cx, &old)
            }
            Some((old, _)) => self.pending_lost(cx, old.ns, 1),
        }
    }

    /// Moves `old`, a packet the current task's receiving syscall took
    /// before, from the task's stamp to the task's entry (a
    /// [`crate::entry::Task`], up to four pending packets), after the
    /// packets it holds; counted as unreported if it does not fit. The
    /// entry ages from now: a syscall that takes two packets or more reads
    /// the clock here.
    fn pend_in_entry(&self, cx: &ProbeCx<'_>, old: &LatestPending) {
        let ns = old.ns;
        let added = self.update_task(cx, ns, mono_ns(), |t| {
            t.ns = ns;
            t.push_pending(old.packet)
        });
        if added != Some(true) {
            if let Some(state) = self.registry.get(cx, ns) {
                sub(&state.counters.ingress_pending, 1);
                bump(&state.counters.ingress_unreported);
            }
        }
    }

    /// The receiving syscall of the current task, of the namespace with
    /// `state`, returned `ret`, and `f` was the latest packet it took, now
    /// taken from where it waited: the task's own if `mine` (its ingress
    /// latency, [`Self::recv_exited`], which checks its age; its window
    /// ends at `read`, when the syscall's return read the clock, or now),
    /// else a dead task's leftover (lost). Inline at each of its callers,
    /// one for each place the packet waits: out of line, or with the
    /// places merged into one value first, the packet was copied through
    /// memory (profile).
    #[inline(always)]
    pub(super) fn latest_exited(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        f: &LatestPending,
        mine: bool,
        ret: i64,
        read: Option<u64>,
    ) {
        sub(&self.latest_pending_out, 1);
        if !mine {
            return self.pending_lost(cx, f.ns, 1);
        }
        let now = read.unwrap_or_else(mono_ns);
        if let Some(owner) = self.pending_owner(cx, state, f.ns) {
            self.pending_exited(cx, owner, f.packet, ret, now);
        }
    }

    /// The receiving syscall that took `pending` returned `ret` at `now`:
    /// each packet gets its ingress latency, or is counted as unreported if
    /// the syscall failed or if its window ends here and its arrival is
    /// older than `max_age_ms` (its delivery read no clock to check it).
    #[inline(always)]
    pub(super) fn recv_exited(
        &self,
        cx: &ProbeCx<'_>,
        state: &NetState,
        pending: &[Pending],
        ret: i64,
        now: u64,
    ) {
        for p in pending {
            self.pending_exited(cx, state, *p, ret, now);
        }
    }

    /// [`Self::recv_exited`] for one packet `p`, taken by value: the
    /// syscall's latest packet, a stamp's words, is not written to the
    /// stack to be read back as a slice.
    #[inline(always)]
    fn pending_exited(&self, cx: &ProbeCx<'_>, state: &NetState, p: Pending, ret: i64, now: u64) {
        let c = &state.counters;
        sub(&c.ingress_pending, 1);
        if ret <= 0 || p.end == 0 && !self.fresh(p.t_rx, now) {
            return bump(&c.ingress_unreported);
        }
        // The window ends at the reader's kernel timestamp, or now.
        let (end, counter) = match p.end {
            0 => (now, &c.ingress_end_syscall),
            end => (end, &c.ingress_end_stamp),
        };
        let reported = if state.breakdown() {
            self.delivered_segmented(cx, state, &p, end)
        } else {
            state.report(cx, Direction::Ingress, p.t_rx, end, p.pktid)
        };
        if reported {
            bump(counter);
        }
    }
}

/// `ns` in milliseconds, rounded up, at most `u32::MAX`.
fn ns_to_ms(ns: u64) -> u32 {
    u32::try_from(ns.div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

/// Where the arrival of a packet that reached its reader was found.
#[derive(Clone, Copy)]
enum Found {
    /// The outer device's stamp, by data buffer.
    Stamp,
    /// The ingress table, where the stamp was moved.
    Table,
    /// The tap queue.
    Tap,
}
