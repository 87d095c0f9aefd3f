// SPDX-License-Identifier: GPL-2.0

//! `/dev/mace` and `/dev/mace-hist`: misc devices whose open files are
//! values of a [`FileOps`] type.
//!
//! The C side (`mace_helpers.c`) owns the `miscdevice`s and their
//! `file_operations` (open, read, release; a stream: no seek, no write);
//! each operation calls the matching method through the table built here.
//! The file operations' owner is the module, so an open file keeps the
//! module loaded.

use super::{arc_data, bytes_long, status_int, sys, Claim};
use core::ffi::{c_int, c_long, c_ulong, c_void};
use core::sync::atomic::AtomicBool;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The misc devices of mace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MiscDevice {
    /// `/dev/mace`: a namespace's latency records.
    Records,
    /// `/dev/mace-hist`: latency histograms.
    Hist,
}

impl MiscDevice {
    /// The C side's index of the device.
    fn index(self) -> u32 {
        match self {
            MiscDevice::Records => sys::MACE_MISC_RECORDS,
            MiscDevice::Hist => sys::MACE_MISC_HIST,
        }
    }
}

/// The open files of a misc device.
pub(crate) trait FileOps: Send + Sync + Sized + 'static {
    /// The device whose files these are.
    const DEVICE: MiscDevice;

    /// What every open gets, from the registration.
    type Data: Send + Sync + 'static;

    /// The device is opened (process context): the open file.
    fn open(data: &Self::Data) -> Result<Pin<KBox<Self>>>;

    /// `read(2)` of the open file into `out`: the bytes written, 0 at end
    /// of file.
    fn read(&self, out: &mut UserWriter) -> Result<usize>;
}

/// The user buffer of a `read(2)`, written front to back.
///
/// # Invariants
///
/// `ptr` is the user address of the next byte to write and `left` the bytes
/// that remain of the buffer; nothing about them is trusted, the copy checks
/// the address and handles faults.
pub(crate) struct UserWriter {
    ptr: *mut c_void,
    left: usize,
}

impl UserWriter {
    /// Bytes that still fit.
    pub(crate) fn space(&self) -> usize {
        self.left
    }

    /// Copies all of `bytes` to the user buffer: `EFAULT` if it is not
    /// writable (some of `bytes` may have been written; none counts),
    /// `EINVAL` if they do not fit.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result {
        if bytes.len() > self.left {
            return Err(EINVAL);
        }
        let len = c_ulong::try_from(bytes.len())?;
        // SAFETY: `bytes` is readable for `len` bytes; the user address is
        // checked by the copy itself (access_ok, fault handling).
        let not_copied = unsafe { sys::mace_copy_to_user(self.ptr, bytes.as_ptr().cast(), len) };
        if not_copied != 0 {
            return Err(EFAULT);
        }
        self.ptr = self.ptr.wrapping_byte_add(bytes.len());
        self.left = self.left.wrapping_sub(bytes.len());
        Ok(())
    }
}

/// Whether a [`MiscRegistration`] of each device exists (the C side has one
/// of each), by [`MiscDevice::index`].
static MISC_BUSY: [AtomicBool; sys::MACE_MISC_COUNT as usize] =
    [const { AtomicBool::new(false) }; sys::MACE_MISC_COUNT as usize];

/// A misc device, registered; dropping removes it (open files stay valid
/// and keep the module loaded).
///
/// # Invariants
///
/// `_claim` holds `T::DEVICE`'s `MISC_BUSY` flag while this value lives,
/// and the C side calls `T`'s methods with `data` as data.
pub(crate) struct MiscRegistration<T: FileOps> {
    _data: Arc<T::Data>,
    _claim: Claim,
}

impl<T: FileOps> MiscRegistration<T> {
    const OPS: sys::mace_file_ops = sys::mace_file_ops {
        open: Some(open::<T>),
        read: Some(read::<T>),
        release: Some(release::<T>),
    };

    /// Creates the device; fails with `EBUSY` while it exists.
    pub(crate) fn register(data: Arc<T::Data>) -> Result<Self> {
        let index = T::DEVICE.index();
        let busy = MISC_BUSY.get(usize::try_from(index)?).ok_or(EINVAL)?;
        let claim = Claim::take(busy)?;
        // SAFETY: `OPS` is a static table whose callbacks match the C types
        // (checked by the compiler); `data` stays valid while `self` lives,
        // and open files (which outlive the registration) get their own
        // state from `open`. `claim` excludes a second registration of
        // the same device.
        let err = unsafe { sys::mace_misc_register(index, &Self::OPS, arc_data(&data)) };
        to_result(err)?;
        // INVARIANT: Registered just above.
        Ok(Self {
            _data: data,
            _claim: claim,
        })
    }
}

impl<T: FileOps> Drop for MiscRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered by `register`; after this no open can start.
        unsafe { sys::mace_misc_deregister(T::DEVICE.index()) };
    }
}

/// # Safety
///
/// Called by `open` of the device with the registration's data and a place
/// for the open file's state.
unsafe extern "C" fn open<T: FileOps>(data: *mut c_void, priv_: *mut *mut c_void) -> c_int {
    // SAFETY: `data` is the registration's, alive while the device exists,
    // which it does during an open.
    let data = unsafe { &*data.cast_const().cast::<T::Data>() };
    status_int(T::open(data).map(|file| {
        // SAFETY: The value is handed back to `read` and dropped in place by
        // `release`; it never moves in between.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(file) });
        // SAFETY: `priv_` points to the C side's local variable.
        unsafe { priv_.write(raw.cast()) };
    }))
}

/// # Safety
///
/// Called by `read` of an open file with the state `open` stored and a user
/// buffer of `len` bytes.
unsafe extern "C" fn read<T: FileOps>(
    priv_: *mut c_void,
    ubuf: *mut c_void,
    len: c_ulong,
) -> c_long {
    // SAFETY: `priv_` is the pinned value stored by `open`, alive until
    // `release`, which the VFS calls only after every read returned.
    let file = unsafe { &*priv_.cast_const().cast::<T>() };
    let Ok(len) = usize::try_from(len) else {
        return bytes_long(Err(EINVAL));
    };
    bytes_long(file.read(&mut UserWriter {
        ptr: ubuf,
        left: len,
    }))
}

/// # Safety
///
/// Called by `release` of an open file with the state `open` stored, once,
/// after the last read.
unsafe extern "C" fn release<T: FileOps>(priv_: *mut c_void) {
    // SAFETY: `priv_` came from `KBox::into_raw` in `open`; it is pinned and
    // dropped in place here, never moved.
    drop(unsafe { Pin::new_unchecked(KBox::from_raw(priv_.cast::<T>())) });
}
