// SPDX-License-Identifier: GPL-2.0

//! Packets, their sockets and network devices, as a probe sees them.
//!
//! A probe gets `&'a Skb`, `&'a Sock` and `&'a Dev` for the duration of its
//! call only (the hook's arguments are alive that long, no longer);
//! everything read from them is either copied out or borrowed for no longer
//! than `'a`.
//!
//! The fields a probe reads on every hit (a packet's device, socket, GSO
//! size and first bytes when they are in its linear part, a device's
//! ifindex and namespace, a socket's namespace) are read inline, at the
//! offsets of `mace_offsets.c` ([`super::offs`]); the rest calls C.

use super::net::Net;
use super::{offs, read_once, sys};
use core::mem::MaybeUninit;
use kernel::types::Opaque;

/// A socket buffer (`struct sk_buff`).
///
/// # Invariants
///
/// A `&'a Skb` is only made for a socket buffer that stays alive and is not
/// freed for `'a` (a tracepoint's argument, for the probe call).
#[repr(transparent)]
pub(crate) struct Skb(Opaque<sys::sk_buff>);

impl Skb {
    /// Borrows the socket buffer at `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// A non-null `ptr` points to a live `struct sk_buff` that stays alive for
    /// `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *const sys::sk_buff) -> Option<&'a Skb> {
        // SAFETY: `Skb` is a transparent wrapper of `struct sk_buff`;
        // liveness is the caller's promise.
        unsafe { ptr.cast::<Skb>().as_ref() }
    }

    /// Borrows the socket buffer at `ptr`, a tracepoint's argument that is
    /// never null: no test on the hot path.
    ///
    /// # Safety
    ///
    /// `ptr` is not null and points to a live `struct sk_buff` that stays
    /// alive for `'a`.
    #[inline(always)]
    pub(super) unsafe fn from_nonnull<'a>(ptr: *const sys::sk_buff) -> &'a Skb {
        // SAFETY: `Skb` is a transparent wrapper of `struct sk_buff`;
        // non-null and liveness are the caller's promise.
        unsafe { &*ptr.cast::<Skb>() }
    }

    fn as_ptr(&self) -> *const sys::sk_buff {
        self.0.get().cast_const()
    }

    /// Its address: the same socket buffer as long as it lives (the
    /// allocator may give it to another packet once it is freed).
    pub(crate) fn addr(&self) -> u64 {
        self.as_ptr() as usize as u64
    }

    /// The address of its data buffer: its clones share it (a raw or ping
    /// socket's copy of a received packet), a packet whose data is copied
    /// or reallocated gets another; the allocator may give it to another
    /// packet once it is freed.
    #[inline(always)]
    pub(crate) fn head(&self) -> u64 {
        self.head_ptr() as usize as u64
    }

    /// `skb->head`.
    #[inline(always)]
    fn head_ptr(&self) -> *const u8 {
        // SAFETY: The skb is alive (type invariants); `SKB_HEAD` is the
        // offset of its `head`, an `unsigned char *`.
        unsafe { read_once(self.as_ptr(), offs::SKB_HEAD) }
    }

    /// `skb->head + skb->field` of a `sk_buff_data_t` field (`tail`, `end`):
    /// an offset from `head` on 64-bit kernels, a pointer on others
    /// (`skb_tail_pointer()`, `skb_end_pointer()`).
    ///
    /// # Safety
    ///
    /// `off` is the offset of a `sk_buff_data_t` field of `struct sk_buff`
    /// ([`offs::SKB_TAIL`], [`offs::SKB_END`]), and `head` is the skb's
    /// `head`.
    #[inline(always)]
    unsafe fn data_ptr(&self, head: *const u8, off: usize) -> *const u8 {
        if offs::SKB_DATA_USES_OFFSET != 0 {
            // SAFETY: The skb is alive (type invariants); by the caller's
            // promise, `off` is the offset of a `sk_buff_data_t`, an
            // `unsigned int` here.
            let v: u32 = unsafe { read_once(self.as_ptr(), off) };
            // A `u32` fits a 64-bit kernel's `usize`.
            head.wrapping_add(v as usize)
        } else {
            // SAFETY: As above; a `sk_buff_data_t` is an `unsigned char *`
            // here.
            unsafe { read_once(self.as_ptr(), off) }
        }
    }

    /// The packet's first bytes from its network header on (from its data
    /// when `from_data`), up to `buf.len()` of them: borrowed from the skb
    /// when they are in its linear part, else copied into `buf`. Empty if
    /// the skb has no network header.
    ///
    /// What `mace_skb_net_bytes()` returns; the common case, bytes in the
    /// linear part, is computed here without calling C.
    #[inline(always)]
    pub(crate) fn net_bytes<'b>(
        &'b self,
        buf: &'b mut [MaybeUninit<u8>],
        from_data: bool,
    ) -> &'b [u8] {
        self.net_bytes_or_prefix(buf, from_data, |_| false)
    }

    /// [`Self::net_bytes`] where they lie in the linear part; `None` where
    /// reading them takes a copy (or C).
    #[inline(always)]
    pub(crate) fn net_bytes_in_place(&self, want: usize, from_data: bool) -> Option<&[u8]> {
        match self.linear_net_bytes(want, from_data) {
            Some((bytes, true)) => Some(bytes),
            _ => None,
        }
    }

    /// [`Self::net_bytes`], or the part of them in the linear part when
    /// they go on in page fragments and `enough` says that part will do
    /// (it is then not copied).
    #[inline(always)]
    pub(crate) fn net_bytes_or_prefix<'b>(
        &'b self,
        buf: &'b mut [MaybeUninit<u8>],
        from_data: bool,
        enough: impl FnOnce(&[u8]) -> bool,
    ) -> &'b [u8] {
        match self.linear_net_bytes(buf.len(), from_data) {
            Some((bytes, true)) => bytes,
            Some((prefix, false)) if enough(prefix) => prefix,
            _ => self.net_bytes_copy(buf, from_data),
        }
    }

    /// [`Self::net_bytes`] without a copy, as `mace_skb_net_bytes()`
    /// computes it: the bytes in place, or empty where it returns none,
    /// with `true`; where it would copy them (`skb_header_pointer()` out of
    /// the linear part), those of them in the linear part with `false`, or
    /// `None` if there are none.
    ///
    /// Computed from the linear part's end, `skb_tail_pointer()`, which is
    /// `data + skb_headlen(skb)` in every socket buffer (the helpers that
    /// move `data`, `tail` or `len` keep it so): the bytes from `start` on
    /// that `skb_header_pointer()` reads in place are those up to the tail,
    /// and the packet goes on past the tail only in page fragments
    /// (`data_len`). This reads neither `len` nor the network header's
    /// offset from `data`, which `skb_header_pointer()`'s own test takes.
    #[inline(always)]
    fn linear_net_bytes(&self, want: usize, from_data: bool) -> Option<(&[u8], bool)> {
        let skb = self.as_ptr();
        let head = self.head_ptr();
        // SAFETY: The skb is alive (type invariants); `SKB_TAIL` is the
        // offset of its `tail`, a `sk_buff_data_t`, and `head` is its `head`
        // (skb_tail_pointer()).
        let tail = unsafe { self.data_ptr(head, offs::SKB_TAIL) };
        let start = if from_data {
            // SAFETY: As above; `SKB_DATA` is the offset of its `data`, an
            // `unsigned char *`.
            unsafe { read_once::<*const u8, _>(skb, offs::SKB_DATA) }
        } else {
            // SAFETY: As above; `SKB_NETWORK_HEADER` is that of its
            // `network_header`, a `__u16`.
            let nh: u16 = unsafe { read_once(skb, offs::SKB_NETWORK_HEADER) };
            // skb_network_header(). A fresh skb's network header is 0 (the
            // head): not set.
            if nh == 0 {
                return Some((&[], true));
            }
            head.wrapping_add(usize::from(nh))
        };
        // The bytes from `start` to the tail (addresses by casts: `addr()`
        // is newer than 6.12's minimum Rust). None left there: the network
        // header is past the linear data, or the packet is empty.
        let room = (tail as usize).saturating_sub(start as usize);
        if room >= want {
            // The common case: a header in the linear part.
            // SAFETY: `start` is the skb's `data` or `head + network_header`,
            // at or after `head`, and `want <= room` bytes from it end at or
            // before its tail, inside its data buffer, which lives as long
            // as the skb (type invariants: at least as long as `&self`).
            return Some((unsafe { core::slice::from_raw_parts(start, want) }, true));
        }
        // SAFETY: As above; `SKB_DATA_LEN` is the offset of its `data_len`,
        // an `unsigned int`.
        let data_len: u32 = unsafe { read_once(skb, offs::SKB_DATA_LEN) };
        // Fewer than `want` bytes to the tail: the whole rest of the packet
        // if it has no page fragments, else the part of it in place.
        let all = data_len == 0;
        if room == 0 {
            // A network header at or past the tail is none (as C decides);
            // a packet all in page fragments is copied.
            return if all || !from_data {
                Some((&[], true))
            } else {
                None
            };
        }
        // SAFETY: As above, with `room` bytes, which end at the tail.
        Some((unsafe { core::slice::from_raw_parts(start, room) }, all))
    }

    /// [`Self::net_bytes`] by `mace_skb_net_bytes()`: bytes it copies into
    /// `buf` (those not in the linear part), or the rare cases
    /// [`Self::linear_net_bytes`] leaves to it.
    #[cold]
    #[inline(never)]
    fn net_bytes_copy<'b>(&'b self, buf: &'b mut [MaybeUninit<u8>], from_data: bool) -> &'b [u8] {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let mut n: u32 = 0;
        // SAFETY: The skb is alive (type invariants); `buf` is writable for
        // `len` bytes; the helper reads or copies at most `len` bytes.
        let p = unsafe {
            sys::mace_skb_net_bytes(
                self.as_ptr(),
                from_data,
                buf.as_mut_ptr().cast(),
                len,
                &mut n,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(buf.len());
        if p.is_null() || n == 0 {
            return &[];
        }
        // SAFETY: The helper returned either a pointer into the skb's linear
        // data, valid for `n` bytes while the skb lives (at least `'b`), or
        // `buf`, whose first `n` bytes it initialized.
        unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) }
    }

    /// `skb->sk`.
    #[inline(always)]
    fn sk(&self) -> *const sys::sock {
        // SAFETY: The skb is alive (type invariants); `SKB_SK` is the offset
        // of its `sk`, a `struct sock *`.
        unsafe { read_once(self.as_ptr(), offs::SKB_SK) }
    }

    /// The identity of the socket that owns the packet, 0 if none: the same
    /// number as [`super::task::FdSock::sock`] for that socket while it
    /// lives.
    #[inline(always)]
    pub(crate) fn sock(&self) -> u64 {
        self.sk() as usize as u64
    }

    /// The segment size of a GSO packet (one the stack hands over whole, to
    /// be cut into segments of this size), 0 for any other packet:
    /// `skb_shinfo(skb)->gso_size`.
    #[inline(always)]
    pub(crate) fn gso_size(&self) -> u16 {
        // SAFETY: `SKB_END` is the offset of its `end`, a `sk_buff_data_t`;
        // the second argument is its `head` (skb_end_pointer()).
        let shinfo = unsafe { self.data_ptr(self.head_ptr(), offs::SKB_END) };
        // SAFETY: A live skb's `struct skb_shared_info` is at its end
        // pointer, as long as its data; `SHINFO_GSO_SIZE` is the offset of
        // its `gso_size`, an `unsigned short`.
        unsafe { read_once(shinfo, offs::SHINFO_GSO_SIZE) }
    }

    /// The socket that owns the packet: the receiving socket of a packet
    /// queued to one, the sending socket of one on its way out.
    #[inline(always)]
    pub(crate) fn owner(&self) -> Option<&Sock> {
        // SAFETY: A packet holds a reference to its owner (or the owner
        // outlives it), so the socket lives at least as long as `&self`.
        unsafe { Sock::from_raw(self.sk()) }
    }

    /// `skb->dev`.
    #[inline(always)]
    fn dev_ptr(&self) -> *const sys::net_device {
        // SAFETY: The skb is alive (type invariants); `SKB_DEV` is the offset
        // of its `dev`, a `struct net_device *`.
        unsafe { read_once(self.as_ptr(), offs::SKB_DEV) }
    }

    /// The device the packet is on.
    #[inline(always)]
    pub(crate) fn dev(&self) -> Option<&Dev> {
        // SAFETY: An skb holds no reference on its device, but the device
        // cannot be freed while a packet on it is being processed: that
        // takes an RCU grace period, and every probe runs inside an RCU
        // read-side critical section, as long as its `&self`.
        unsafe { Dev::from_raw(self.dev_ptr()) }
    }

    /// Whether the packet was ever cloned: its data may be shared with
    /// another socket buffer (the `cloned` bit, which `skb_cloned()` reads
    /// with the data's reference count), so that whoever writes its headers
    /// may first move them to a data buffer of its own
    /// (`skb_ensure_writable()`, `skb_cow()`). A packet whose copy has
    /// gone keeps the bit.
    #[inline(always)]
    pub(crate) fn cloned(&self) -> bool {
        // SAFETY: The skb is alive (type invariants); `SKB_CLONED_OFFSET`
        // is the offset of the byte holding its `cloned` bit field
        // (`CLONED_OFFSET`, mace_offsets.c checks).
        let flags: u8 = unsafe { read_once(self.as_ptr(), offs::SKB_CLONED_OFFSET) };
        usize::from(flags) & offs::SKB_CLONED_MASK != 0
    }

    /// The device the packet is on, known not to be null.
    ///
    /// # Safety
    ///
    /// The packet's `dev` is not null: the caller's kernel code reads it.
    #[inline(always)]
    pub(super) unsafe fn dev_nonnull(&self) -> &Dev {
        // SAFETY: Not null (the caller's promise), alive as in `dev`.
        unsafe { Dev::from_nonnull(self.dev_ptr()) }
    }
}

/// A socket (`struct sock`).
///
/// # Invariants
///
/// A `&'a Sock` is only made for a socket that stays alive for `'a` (a
/// hook's argument, or a packet's owner, for the probe call).
#[repr(transparent)]
pub(crate) struct Sock(Opaque<sys::sock>);

/// Where the reader of a packet gets its receive time from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxStamp {
    /// It takes none from the kernel: its clock is its own, after the
    /// receiving syscall returns.
    None,
    /// The kernel stamps the packet as the reader reads it.
    AtRead,
    /// The kernel stamped the packet at this CLOCK_MONOTONIC time (when it
    /// entered the reader's namespace), and the reader gets that stamp.
    Taken(u64),
}

impl Sock {
    /// Borrows the socket at `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// A non-null `ptr` points to a `struct sock` that stays alive for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *const sys::sock) -> Option<&'a Sock> {
        // SAFETY: `Sock` is a transparent wrapper of `struct sock`; liveness
        // is the caller's promise.
        unsafe { ptr.cast::<Sock>().as_ref() }
    }

    fn as_ptr(&self) -> *const sys::sock {
        self.0.get().cast_const()
    }

    /// Its network namespace: `sock_net()`.
    #[inline(always)]
    pub(crate) fn net(&self) -> &Net {
        if offs::NET_NS == 0 {
            return Net::init();
        }
        // SAFETY: The socket is alive (type invariants); with
        // CONFIG_NET_NS, `SOCK_NET` is the offset of its `sk_net`, a
        // `possible_net_t` whose first field is the `struct net *`.
        let net: *const sys::net = unsafe { read_once(self.as_ptr(), offs::SOCK_NET) };
        // SAFETY: A socket holds a reference to its namespace.
        unsafe { Net::from_raw(net) }
    }

    /// Whether it is a datagram or raw socket (`SOCK_DGRAM`, `SOCK_RAW`:
    /// ICMP, UDP, raw IP, packet sockets), whose receive takes one packet
    /// and returns without waiting after it took it.
    #[inline(always)]
    pub(crate) fn is_datagram(&self) -> bool {
        // SAFETY: The socket is alive (type invariants); its type is a u16
        // at SOCK_TYPE (checked).
        let ty: u16 = unsafe { read_once(self.as_ptr(), offs::SOCK_TYPE) };
        usize::from(ty) == offs::SOCK_DGRAM_TYPE || usize::from(ty) == offs::SOCK_RAW_TYPE
    }

    /// What the socket's reader gets as `skb`'s receive time. Whether it
    /// takes a software receive timestamp at all is read inline (most
    /// readers take none); the stamp itself, from C.
    #[inline(always)]
    pub(crate) fn rx_stamp(&self, skb: &Skb) -> RxStamp {
        if !self.takes_rx_stamps() {
            return RxStamp::None;
        }
        self.rx_stamp_c(skb)
    }

    /// Whether the socket's reader takes software receive timestamps, as
    /// `__sock_recv_timestamp()` decides: `SO_TIMESTAMP(NS)`, or
    /// `SO_TIMESTAMPING` with software stamps, for received packets (or
    /// without the receive filter).
    #[inline(always)]
    fn takes_rx_stamps(&self) -> bool {
        // SAFETY: The socket is alive (type invariants); its flags are an
        // unsigned long at SOCK_FLAGS, its timestamping flags a u32 at
        // SOCK_TSFLAGS (mace_offsets.c checks), read once each as the
        // kernel's test_bit() and READ_ONCE() read them.
        let (flags, ts): (usize, u32) = unsafe {
            (
                read_once(self.as_ptr(), offs::SOCK_FLAGS),
                read_once(self.as_ptr(), offs::SOCK_TSFLAGS),
            )
        };
        let ts = ts as usize;
        flags >> offs::SOCK_RCVTSTAMP_BIT & 1 != 0
            || ts & offs::SOF_SOFTWARE != 0
                && (ts & offs::SOF_RX_SOFTWARE != 0 || ts & offs::SOF_OPT_RX_FILTER == 0)
    }

    /// [`Self::rx_stamp`] in C, for a reader that takes stamps.
    #[inline(never)]
    fn rx_stamp_c(&self, skb: &Skb) -> RxStamp {
        let mut ns: u64 = 0;
        // SAFETY: Both are alive (type invariants); `ns` is writable.
        let r = unsafe { sys::mace_sock_rx_stamp(self.as_ptr(), skb.as_ptr(), &mut ns) };
        match r {
            sys::MACE_RX_STAMP_AT_READ => RxStamp::AtRead,
            sys::MACE_RX_STAMP_TAKEN => RxStamp::Taken(ns),
            _ => RxStamp::None,
        }
    }
}

/// A network device (`struct net_device`).
///
/// # Invariants
///
/// A `&'a Dev` is only made for a device that stays registered or at least
/// not freed for `'a` (a tracepoint's argument, for the probe call).
#[repr(transparent)]
pub(crate) struct Dev(Opaque<sys::net_device>);

impl Dev {
    /// Borrows the device at `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// A non-null `ptr` points to a `struct net_device` that is not freed
    /// for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *const sys::net_device) -> Option<&'a Dev> {
        // SAFETY: `Dev` is a transparent wrapper of `struct net_device`;
        // liveness is the caller's promise.
        unsafe { ptr.cast::<Dev>().as_ref() }
    }

    /// Borrows the device at `ptr`, a tracepoint's argument that is never
    /// null: no test on the hot path.
    ///
    /// # Safety
    ///
    /// `ptr` is not null and points to a `struct net_device` that is not
    /// freed for `'a`.
    #[inline(always)]
    pub(super) unsafe fn from_nonnull<'a>(ptr: *const sys::net_device) -> &'a Dev {
        // SAFETY: `Dev` is a transparent wrapper of `struct net_device`;
        // non-null and liveness are the caller's promise.
        unsafe { &*ptr.cast::<Dev>() }
    }

    fn as_ptr(&self) -> *const sys::net_device {
        self.0.get().cast_const()
    }

    /// Its ifindex.
    #[inline(always)]
    pub(crate) fn ifindex(&self) -> i32 {
        // SAFETY: The device is alive (type invariants); `DEV_IFINDEX` is
        // the offset of its `ifindex`, an `int`.
        unsafe { read_once(self.as_ptr(), offs::DEV_IFINDEX) }
    }

    /// Whether packet taps (packet sockets: tcpdump, libpcap) see its
    /// packets: `dev_nit_active()`, inline.
    ///
    /// Its two lists: the taps on every device (the kernel's, or from 6.15
    /// the device's namespace's) and the device's own.
    #[inline(always)]
    pub(crate) fn has_taps(&self) -> bool {
        let every: *const sys::list_head = if offs::NET_TAPS != 0 {
            // SAFETY: The namespace is alive while its device is (type
            // invariants); from 6.15, `NET_PTYPE_ALL` is the offset of its
            // `ptype_all`, inside it.
            unsafe {
                self.net()
                    .as_ptr()
                    .cast::<u8>()
                    .add(offs::NET_PTYPE_ALL)
                    .cast()
            }
        } else {
            // SAFETY: A constant of the module, set when it is built (up to
            // 6.14: the kernel's list, a static, never null).
            unsafe { sys::mace_global_taps }
        };
        // SAFETY: The device is alive (type invariants); `DEV_PTYPE_ALL` is
        // the offset of its `ptype_all`, inside it.
        let own = unsafe { self.as_ptr().cast::<u8>().add(offs::DEV_PTYPE_ALL).cast() };
        // SAFETY: Both are the heads of live lists, which the probe's RCU
        // read-side critical section lets it read, as `dev_nit_active()`.
        unsafe { !list_empty(every) || !list_empty(own) }
    }

    /// Its network namespace: `dev_net()`.
    #[inline(always)]
    pub(crate) fn net(&self) -> &Net {
        if offs::NET_NS == 0 {
            return Net::init();
        }
        // SAFETY: The device is alive (type invariants); with
        // CONFIG_NET_NS, `DEV_ND_NET` is the offset of its `nd_net`, a
        // `possible_net_t` whose first field is the `struct net *`.
        let net: *const sys::net = unsafe { read_once(self.as_ptr(), offs::DEV_ND_NET) };
        // SAFETY: A device's namespace outlives the device.
        unsafe { Net::from_raw(net) }
    }
}

/// Whether the list with head `head` is empty, as `list_empty()`: its
/// head's `next`, read once, is the head itself.
///
/// # Safety
///
/// `head` points to a live `struct list_head`.
#[inline(always)]
unsafe fn list_empty(head: *const sys::list_head) -> bool {
    // SAFETY: `LIST_HEAD_NEXT` is the offset of the head's `next`, a
    // pointer, in the live head the caller promises.
    let next: *const sys::list_head = unsafe { read_once(head, offs::LIST_HEAD_NEXT) };
    core::ptr::eq(next, head)
}
