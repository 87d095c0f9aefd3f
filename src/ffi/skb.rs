// SPDX-License-Identifier: GPL-2.0

//! Packets and network devices, as a probe sees them.
//!
//! A probe gets `&'a Skb` and `&'a Dev` for the duration of its call only
//! (the tracepoint's arguments are alive that long, no longer); everything
//! read from them is either copied out or borrowed for no longer than `'a`.

use super::net::Net;
use super::sys;
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

    fn as_ptr(&self) -> *const sys::sk_buff {
        self.0.get().cast_const()
    }

    /// The packet's first bytes from its network header on (from its data
    /// when `from_data`), up to `buf.len()` of them: borrowed from the skb
    /// when they are in its linear part, else copied into `buf`. Empty if
    /// the skb has no network header.
    pub(crate) fn net_bytes<'b>(
        &'b self,
        buf: &'b mut [MaybeUninit<u8>],
        from_data: bool,
    ) -> &'b [u8] {
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

    /// The identity of the socket that owns the packet, 0 if none: the same
    /// number as [`super::task::FdSock::sock`] for that socket while it
    /// lives.
    pub(crate) fn sock(&self) -> u64 {
        // SAFETY: The skb is alive (type invariants).
        unsafe { sys::mace_skb_sock(self.as_ptr()) }
    }

    /// The device the packet is on.
    pub(crate) fn dev(&self) -> Option<&Dev> {
        // SAFETY: The skb is alive (type invariants).
        let dev = unsafe { sys::mace_skb_dev(self.as_ptr()) };
        // SAFETY: An skb holds no reference on its device, but the device
        // cannot be freed while a packet on it is being processed: that
        // takes an RCU grace period, and every probe runs inside an RCU
        // read-side critical section, as long as its `&self`.
        unsafe { Dev::from_raw(dev) }
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

    fn as_ptr(&self) -> *const sys::net_device {
        self.0.get().cast_const()
    }

    /// Its ifindex.
    pub(crate) fn ifindex(&self) -> i32 {
        // SAFETY: The device is alive (type invariants).
        unsafe { sys::mace_dev_ifindex(self.as_ptr()) }
    }

    /// Its network namespace.
    pub(crate) fn net(&self) -> &Net {
        // SAFETY: The device is alive (type invariants).
        let net = unsafe { sys::mace_dev_net(self.as_ptr()) };
        // SAFETY: A device's namespace outlives the device.
        unsafe { Net::from_raw(net) }
    }
}
