// SPDX-License-Identifier: GPL-2.0

//! `/sys/class/mace`: a device class whose attribute files a [`ClassOps`]
//! shows and stores.
//!
//! The C side owns the class and its attributes (names and modes, in
//! `mace_helpers.c`); reading or writing one calls the matching method
//! through the table built here, with the file as a [`ClassAttr`]. The files
//! a write changes something through are binary attributes on the C side, so
//! that a write also gets the open file ([`Opener`]), whose opener's
//! credentials count.

use super::{arc_data, bytes_long, sys, Claim};
use core::ffi::{c_char, c_long, c_ulong, c_void};
use core::marker::PhantomData;
use core::sync::atomic::AtomicBool;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A file of the class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClassAttr {
    /// `on` (mode 0644).
    On,
    /// `outer_devs` (mode 0644).
    OuterDevs,
    /// `stats` (mode 0444).
    Stats,
    /// `tap_end` (mode 0644).
    TapEnd,
    /// `breakdown` (mode 0644).
    Breakdown,
}

impl ClassAttr {
    fn from_raw(raw: sys::mace_attr) -> Option<Self> {
        match raw {
            sys::MACE_ATTR_ON => Some(ClassAttr::On),
            sys::MACE_ATTR_OUTER_DEVS => Some(ClassAttr::OuterDevs),
            sys::MACE_ATTR_STATS => Some(ClassAttr::Stats),
            sys::MACE_ATTR_TAP_END => Some(ClassAttr::TapEnd),
            sys::MACE_ATTR_BREAKDOWN => Some(ClassAttr::Breakdown),
            _ => None,
        }
    }

    /// The file's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClassAttr::On => "on",
            ClassAttr::OuterDevs => "outer_devs",
            ClassAttr::Stats => "stats",
            ClassAttr::TapEnd => "tap_end",
            ClassAttr::Breakdown => "breakdown",
        }
    }
}

/// The open file a write to the class's files came through.
///
/// # Invariants
///
/// `file` points to a `struct file` that stays open for `'a`.
pub(crate) struct Opener<'a> {
    file: *const sys::file,
    _file: PhantomData<&'a sys::file>,
}

impl Opener<'_> {
    pub(super) fn as_ptr(&self) -> *const sys::file {
        self.file
    }
}

/// What reading and writing the class's files do (process context).
pub(crate) trait ClassOps: Send + Sync + 'static {
    /// Fills `out` (a page) with the contents of `attr`; the length.
    fn show(&self, attr: ClassAttr, out: &mut [u8]) -> Result<usize>;

    /// Applies a write of `input` to `attr` through the file `opener`.
    fn store(&self, attr: ClassAttr, opener: &Opener<'_>, input: &[u8]) -> Result;
}

/// Whether a [`ClassRegistration`] exists (the C side has one class).
static CLASS_BUSY: AtomicBool = AtomicBool::new(false);

/// The class and its files, registered; dropping removes them (and waits
/// for the reads and writes in progress).
///
/// # Invariants
///
/// `_claim` holds `CLASS_BUSY` while this value lives, and the C side
/// calls `T`'s methods with `ops` as data.
pub(crate) struct ClassRegistration<T: ClassOps> {
    _ops: Arc<T>,
    _claim: Claim,
}

impl<T: ClassOps> ClassRegistration<T> {
    const OPS: sys::mace_class_ops = sys::mace_class_ops {
        show: Some(show::<T>),
        store: Some(store::<T>),
    };

    /// Creates the class; fails with `EBUSY` while it exists.
    pub(crate) fn register(ops: Arc<T>) -> Result<Self> {
        let claim = Claim::take(&CLASS_BUSY)?;
        // SAFETY: `OPS` is a static table whose callbacks match the C types;
        // `ops` stays alive while `self` does, and unregistering waits for
        // every callback in progress.
        let err = unsafe { sys::mace_class_register(&Self::OPS, arc_data(&ops)) };
        to_result(err)?;
        // INVARIANT: Registered just above.
        Ok(Self {
            _ops: ops,
            _claim: claim,
        })
    }
}

impl<T: ClassOps> Drop for ClassRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered by `register`; returns when no callback runs.
        unsafe { sys::mace_class_unregister() };
    }
}

/// # Safety
///
/// Called by sysfs with the registration's data and a buffer of `size`
/// bytes (a page) to fill.
unsafe extern "C" fn show<T: ClassOps>(
    data: *mut c_void,
    raw: sys::mace_attr,
    buf: *mut c_char,
    size: c_ulong,
) -> c_long {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    let (Some(attr), Ok(size)) = (ClassAttr::from_raw(raw), usize::try_from(size)) else {
        return bytes_long(Err(EINVAL));
    };
    // SAFETY: sysfs passes a writable, exclusively owned page of `size` bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    bytes_long(ops.show(attr, out))
}

/// # Safety
///
/// Called by sysfs with the registration's data, the open file written to,
/// and the `len` bytes the user wrote.
unsafe extern "C" fn store<T: ClassOps>(
    data: *mut c_void,
    raw: sys::mace_attr,
    file: *const sys::file,
    buf: *const c_char,
    len: c_ulong,
) -> c_long {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    let (Some(attr), Ok(n)) = (ClassAttr::from_raw(raw), usize::try_from(len)) else {
        return bytes_long(Err(EINVAL));
    };
    // SAFETY: sysfs passes a kernel copy of the written bytes, `len` long.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), n) };
    // INVARIANT: The file stays open during the write that passes it.
    let opener = Opener {
        file,
        _file: PhantomData,
    };
    bytes_long(ops.store(attr, &opener, input).map(|()| n))
}
