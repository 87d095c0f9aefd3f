// SPDX-License-Identifier: GPL-2.0

//! Synchronization primitives mace needs beyond the `kernel` crate's.
//!
//! - [`RcuReadLock`] and [`ProbeCx`], and [`Pinned`], which a probe holds
//!   while it uses a per-CPU variable;
//! - [`BucketSpinLock`]: the lock of a table bucket, a raw kernel spinlock
//!   taken with interrupts disabled, so that process, softirq and hardirq
//!   contexts can meet on one CPU, and so that it never sleeps, even on a
//!   PREEMPT_RT kernel, where a `spinlock_t` does (the `kernel` crate has no
//!   raw or irqsave spinlock in 6.12);
//! - [`RcuSlot`]: a slot holding an [`Arc`] that probes read without a
//!   reference count, whose old value is dropped only after a grace period.

use super::sys;
use core::ffi::c_ulong;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// An RCU read-side critical section, while the value lives.
pub(crate) struct RcuReadLock(PhantomData<*const ()>);

impl RcuReadLock {
    /// Enters one.
    pub(crate) fn new() -> Self {
        // SAFETY: No preconditions; paired with the unlock in `drop` on this
        // CPU and task (the type is neither `Send` nor `Sync`).
        unsafe { sys::mace_rcu_read_lock() };
        Self(PhantomData)
    }
}

impl Drop for RcuReadLock {
    fn drop(&mut self) {
        // SAFETY: Leaves the section `new` entered.
        unsafe { sys::mace_rcu_read_unlock() };
    }
}

/// Proof that the code runs inside a probe, in an RCU read-side critical
/// section that lasts at least `'a`.
///
/// Only the probes' prologue (`tracepoint.rs`) makes one; references that a
/// probe gets through it ([`RcuSlot::get`], `PernetKey::get`) live no
/// longer.
pub(crate) struct ProbeCx<'a>(PhantomData<*const &'a ()>);

impl ProbeCx<'_> {
    /// The proof.
    ///
    /// # Safety
    ///
    /// The caller is in an RCU read-side critical section for as long as the
    /// value lives, and does not sleep.
    pub(super) unsafe fn new() -> Self {
        Self(PhantomData)
    }

    /// Keeps the code on its CPU until the value is dropped: free where
    /// nothing could move it (a kernel that does not preempt kernel code)
    /// or preemption is disabled already (the preempt count says so: up to
    /// 6.12 every probe's caller disables it; ftrace callbacks and the send
    /// calls' direct call always do), else by disabling it (a call each
    /// way: tracepoint probes from 6.13 on).
    #[inline(always)]
    pub(crate) fn pin(&self) -> Pinned<'_> {
        let ours = !super::task::preempt_disabled();
        if ours {
            // SAFETY: No preconditions; undone by `Pinned::drop` on this
            // CPU (the value is neither `Send` nor `Sync`).
            unsafe { sys::mace_preempt_disable() };
        }
        Pinned {
            ours,
            _cx: PhantomData,
        }
    }
}

/// Proof that the code does not leave its CPU while the value lives
/// ([`ProbeCx::pin`]): what a per-CPU variable's access needs
/// ([`super::percpu::PerCpuWords`]).
pub(crate) struct Pinned<'a> {
    /// Whether [`ProbeCx::pin`] disabled preemption, to enable it again.
    ours: bool,
    _cx: PhantomData<*const &'a ()>,
}

impl Drop for Pinned<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.ours {
            // SAFETY: Enables what `ProbeCx::pin` disabled, on its CPU.
            unsafe { sys::mace_preempt_enable() };
        }
    }
}

/// A raw kernel spinlock taken with interrupts disabled
/// (`raw_spin_lock_irqsave`).
///
/// It spins on every preemption model, PREEMPT_RT included, so its holders
/// must be short and bounded: every section under it is a fixed number of
/// steps (a table bucket's [`WAYS`] slots, or at most the tap queue's
/// capacity). All bucket locks share one lockdep class; no code holds two at
/// once.
///
/// [`WAYS`]: crate::table::WAYS
///
/// # Invariants
///
/// The lock is initialized (by [`BucketSpinLock::new`]). A `raw_spinlock_t`
/// holds no pointer to itself, so an unlocked one may move; a held one
/// cannot, since its [`BucketGuard`] borrows it.
pub(crate) struct BucketSpinLock(Opaque<kernel::bindings::raw_spinlock_t>);

// SAFETY: A spinlock is meant to be shared between CPUs.
unsafe impl Send for BucketSpinLock {}
// SAFETY: As above.
unsafe impl Sync for BucketSpinLock {}

impl BucketSpinLock {
    /// An unlocked lock.
    pub(crate) fn new() -> Self {
        let lock = Self(Opaque::uninit());
        // SAFETY: Initializes the lock before anything else can use it.
        unsafe { sys::mace_raw_spin_init(lock.raw()) };
        // INVARIANT: Initialized just above.
        lock
    }

    fn raw(&self) -> *mut sys::raw_spinlock {
        self.0.get().cast()
    }

    /// Takes the lock, with interrupts disabled on this CPU until the guard
    /// is dropped.
    pub(crate) fn lock(&self) -> BucketGuard<'_> {
        // SAFETY: The lock is initialized (type invariants).
        let flags = unsafe { sys::mace_raw_spin_lock_irqsave(self.raw()) };
        BucketGuard { lock: self, flags }
    }

    /// Whether C and Rust agree on the size of a `raw_spinlock_t`.
    pub(crate) fn layout_matches() -> bool {
        // SAFETY: Returns a constant.
        let c_size = unsafe { sys::mace_raw_spinlock_size() };
        usize::try_from(c_size).ok()
            == Some(core::mem::size_of::<kernel::bindings::raw_spinlock_t>())
    }
}

/// Proof that a [`BucketSpinLock`] is held; unlocks when dropped.
pub(crate) struct BucketGuard<'a> {
    lock: &'a BucketSpinLock,
    flags: c_ulong,
}

impl Drop for BucketGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: The guard exists only while this CPU holds the lock, with
        // the flags that `lock` saved.
        unsafe { sys::mace_raw_spin_unlock_irqrestore(self.lock.raw(), self.flags) };
    }
}

/// A slot that holds an [`Arc`] or nothing; probes borrow its value without
/// touching the reference count.
///
/// # Invariants
///
/// `ptr` is null or comes from `Arc::into_raw` and holds one reference; a
/// value removed from the slot is dropped only after an RCU grace period
/// (see [`Retired`]).
pub(crate) struct RcuSlot<T: Send + Sync> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Arc<T>>,
}

impl<T: Send + Sync> RcuSlot<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The value, for a probe.
    pub(crate) fn get<'a>(&'a self, _cx: &'a ProbeCx<'_>) -> Option<&'a T> {
        let raw = self.ptr.load(Ordering::Acquire);
        // SAFETY: A non-null pointer holds a reference (type invariants),
        // dropped at the earliest a grace period after it left the slot; `cx`
        // proves this runs inside an RCU read-side critical section, which
        // that grace period waits for.
        unsafe { raw.as_ref() }
    }

    /// A counted reference to the value, in process or any other context.
    pub(crate) fn get_arc(&self) -> Option<Arc<T>> {
        let _rcu = RcuReadLock::new();
        let raw = self.ptr.load(Ordering::Acquire);
        if raw.is_null() {
            return None;
        }
        // SAFETY: The slot's reference to `raw` is dropped at the earliest a
        // grace period after it left the slot, and this runs inside a
        // read-side critical section, so the count is at least one while it
        // is raised here; a value in the slot is shared, never a `UniqueArc`.
        let borrowed = unsafe { kernel::sync::ArcBorrow::from_raw(raw) };
        Some(borrowed.into())
    }

    /// Puts `value` in the slot if it is empty; gives it back otherwise.
    pub(crate) fn try_set(&self, value: Arc<T>) -> Result<(), Arc<T>> {
        let raw = Arc::into_raw(value).cast_mut();
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Relaxed)
        {
            // INVARIANT: The slot now holds the reference `raw` carries.
            Ok(_) => Ok(()),
            // SAFETY: `raw` came from `Arc::into_raw` just above and was not
            // stored.
            Err(_) => Err(unsafe { Arc::from_raw(raw) }),
        }
    }

    /// Empties the slot; returns what it held.
    pub(crate) fn take(&self) -> Option<Retired<T>> {
        let raw = self.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        if raw.is_null() {
            return None;
        }
        // SAFETY: `raw` was in the slot and left it just now.
        Some(unsafe { Retired::new(raw) })
    }

    /// Empties the slot if it holds `value`; returns what it held.
    pub(crate) fn clear_if(&self, value: &T) -> Option<Retired<T>> {
        let want = ptr::from_ref(value).cast_mut();
        self.ptr
            .compare_exchange(want, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            // SAFETY: `raw` was in the slot and left it just now.
            .map(|raw| unsafe { Retired::new(raw) })
    }
}

impl<T: Send + Sync> Drop for RcuSlot<T> {
    fn drop(&mut self) {
        let raw = *self.ptr.get_mut();
        if !raw.is_null() {
            // With `&mut self`, no probe borrows from the slot: whoever owns
            // it stopped every probe first.
            // SAFETY: The slot held this reference (type invariants).
            drop(unsafe { Arc::from_raw(raw) });
        }
    }
}

/// A value taken out of an [`RcuSlot`], which probes may still be reading.
///
/// It remembers the grace period that started when it left the slot;
/// dropping it waits until that grace period is over (at once if it is:
/// keep it until some grace period has passed anyway, and dropping it costs
/// nothing). Process context only, since it may sleep.
pub(crate) struct Retired<T: Send + Sync> {
    value: Option<Arc<T>>,
    cookie: core::ffi::c_ulong,
}

impl<T: Send + Sync> Retired<T> {
    /// The value `raw` that just left an [`RcuSlot`], from now on.
    ///
    /// # Safety
    ///
    /// `raw` was in a slot, which no longer holds it; the reference it
    /// carried passes to the result.
    unsafe fn new(raw: *mut T) -> Self {
        Self {
            // SAFETY: The slot's reference came from `Arc::into_raw` (the
            // slot's invariants) and now passes here (the caller's promise).
            value: Some(unsafe { Arc::from_raw(raw) }),
            // SAFETY: No preconditions.
            cookie: unsafe { sys::mace_rcu_cookie() },
        }
    }
}

impl<T: Send + Sync> Drop for Retired<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            // A reader that saw the value entered its critical section
            // before the slot was cleared: wait for it, if still needed.
            // SAFETY: Process context (the type's contract).
            unsafe { sys::mace_rcu_cond_sync(self.cookie) };
            drop(value);
        }
    }
}
