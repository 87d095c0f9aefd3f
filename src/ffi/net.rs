// SPDX-License-Identifier: GPL-2.0

//! Network namespaces, and a state kept in each of them.
//!
//! [`Net`] is a namespace borrowed for as long as it is known to be alive.
//! [`PernetRegistration`] runs a [`PernetOps`] for every namespace, those
//! that exist when it registers and those created later: `init` makes the
//! namespace's state, `pre_exit` tells that the namespace goes away. Each
//! state is an [`Arc`], found again through a [`PernetKey`]: by a probe
//! without taking a reference (inside the RCU read-side critical section that
//! [`ProbeCx`] proves), or in process context as a counted reference.
//!
//! A state stays readable through the key until the namespace's `exit`; it
//! is released (its `Arc` reference dropped) only after an RCU grace period
//! that follows, so no probe can still be looking at it (`mace_helpers.c`
//! does this once per batch of dying namespaces).
//!
//! A probe finds a state without calling C: as `net_generic()` does, it
//! reads the namespace's array of generic pointers, the slot at mace's
//! pernet id (read once, at registration) and the state in it, at the
//! offsets of `mace_offsets.c` ([`super::offs`]).
//!
//! A key also holds the probes' first filter ([`crate::nsfilter`]): the
//! namespaces it counts, each with its state's address as its tag where it
//! is alone on its slot, so that a probe finds the state of a capturing
//! namespace with one load and a comparison ([`PernetKey::get_filtered`]).
//! A tag leaves the filter by the namespace's `pre_exit` at the latest
//! (the registration's own `pre_exit` takes out any left), so, like the
//! state reached through the generic pointers, it stays valid for a grace
//! period after it is gone.

use super::class::Opener;
use super::sync::{ProbeCx, RcuReadLock};
use super::sys;
use super::{arc_data, offs, read_once, status_int, Claim};
use crate::nsfilter::{NsCounts, NsFilter, EMPTY, SHARED};
use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};
use kernel::types::Opaque;

/// A network namespace (`struct net`).
///
/// # Invariants
///
/// A `&'a Net` is only made for a namespace that stays alive for `'a`: the
/// current task's (which cannot change its namespace while it runs), one a
/// [`NetRef`] holds, one a pernet callback is given, a device's (which
/// outlives the device), or the initial namespace (which lives forever).
#[repr(transparent)]
pub(crate) struct Net(Opaque<sys::net>);

impl Net {
    /// Borrows the namespace at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to a live `struct net` that stays alive for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *const sys::net) -> &'a Net {
        // SAFETY: `Net` is a transparent wrapper of `struct net`; liveness is
        // the caller's promise.
        unsafe { &*ptr.cast::<Net>() }
    }

    pub(super) fn as_ptr(&self) -> *mut sys::net {
        self.0.get()
    }

    /// The initial network namespace (`init_net`).
    #[inline(always)]
    pub(super) fn init() -> &'static Net {
        // SAFETY: `init_net` is a static of the kernel: alive forever. Its
        // address is resolved once, when the module is loaded.
        unsafe { Net::from_raw(core::ptr::addr_of!(sys::init_net)) }
    }

    /// The namespace's inode number (as in `/proc/PID/ns/net`).
    pub(crate) fn inum(&self) -> u32 {
        // SAFETY: By the type invariants, `self` is a live namespace.
        unsafe { sys::mace_net_inum(self.as_ptr()) }
    }

    /// Whether this is the initial network namespace.
    #[inline(always)]
    pub(crate) fn is_init(&self) -> bool {
        self.is(Net::init())
    }

    /// Whether `self` and `other` are the same namespace.
    #[inline(always)]
    pub(crate) fn is(&self, other: &Net) -> bool {
        core::ptr::eq(self, other)
    }

    /// The namespace's address: it identifies the namespace while it lives.
    #[inline(always)]
    pub(crate) fn addr(&self) -> u64 {
        self.as_ptr() as usize as u64
    }

    /// Whether the current task has CAP_NET_ADMIN over the user namespace
    /// that owns this network namespace (process context).
    pub(crate) fn capable(&self) -> bool {
        // SAFETY: `self` is a live namespace; `ns_capable` may log an audit
        // record, which is fine in the process context of every caller.
        unsafe { sys::mace_net_capable(self.as_ptr()) }
    }

    /// Whether whoever opened the file `opener` had CAP_NET_ADMIN over the
    /// user namespace that owns this network namespace (process context).
    pub(crate) fn opener_capable(&self, opener: &Opener<'_>) -> bool {
        // SAFETY: `self` is a live namespace and `opener` an open file (type
        // invariants of both); `file_ns_capable` may log an audit record.
        unsafe { sys::mace_net_opener_capable(self.as_ptr(), opener.as_ptr()) }
    }

    /// The user (uid in the initial user namespace) who created the
    /// outermost user namespace above the one owning this namespace; `None`
    /// when the initial user namespace owns it (the host's root made it).
    pub(crate) fn owner_uid(&self) -> Option<u32> {
        // SAFETY: By the type invariants, `self` is a live namespace, which
        // holds a reference to its user namespace and so to its ancestors.
        let uid = unsafe { sys::mace_net_owner_uid(self.as_ptr()) };
        u32::try_from(uid).ok()
    }
}

/// Runs `f` with the current task's network namespace; `None` if the task
/// has none (it is exiting).
///
/// Meaningful in task context; in an interrupt or softirq the current task
/// is just the one that was interrupted.
#[inline(always)]
pub(crate) fn with_current_net<R>(f: impl FnOnce(&Net) -> R) -> Option<R> {
    let raw = super::task::current_net_raw();
    if raw.is_null() {
        return None;
    }
    // SAFETY: The task's namespace cannot go away while the task runs or is
    // interrupted on this CPU: only the task itself changes its nsproxy, and
    // the borrow ends with `f`.
    Some(f(unsafe { Net::from_raw(raw) }))
}

/// A counted reference to a network namespace; dropping it puts it.
///
/// # Invariants
///
/// `self.0` points to a namespace on which this value holds a reference.
pub(crate) struct NetRef(NonNull<Net>);

// SAFETY: A namespace reference may be taken and dropped on any CPU.
unsafe impl Send for NetRef {}
// SAFETY: `&NetRef` only gives `&Net`, which is safe to share.
unsafe impl Sync for NetRef {}

impl NetRef {
    /// A reference to `net`.
    pub(crate) fn new(net: &Net) -> Self {
        // SAFETY: `net` is alive (type invariants of `Net`), so a reference
        // can be taken.
        unsafe { sys::mace_net_get(net.as_ptr()) };
        // INVARIANT: A reference was taken just above.
        Self(NonNull::from(net))
    }

    /// A reference to the current task's namespace, if it has one.
    pub(crate) fn current() -> Option<Self> {
        with_current_net(Self::new)
    }
}

impl core::ops::Deref for NetRef {
    type Target = Net;

    fn deref(&self) -> &Net {
        // SAFETY: The reference this value holds keeps the namespace alive
        // as long as `self` (type invariants).
        unsafe { self.0.as_ref() }
    }
}

impl Drop for NetRef {
    fn drop(&mut self) {
        // SAFETY: Puts the reference taken in `new` (type invariants).
        unsafe { sys::mace_net_put(self.0.as_ref().as_ptr()) };
    }
}

/// What a [`PernetRegistration`] does for every network namespace.
pub(crate) trait PernetOps: Send + Sync + 'static {
    /// The state kept in each namespace.
    type State: Send + Sync + 'static;

    /// A namespace is created, or exists when the operations register: its
    /// state. An error fails the namespace's creation (or the registration).
    fn init(&self, net: &Net) -> Result<Arc<Self::State>>;

    /// `net` is going away (or the operations unregister). Its state stays
    /// readable through the key until the namespace's exit.
    fn pre_exit(&self, net: &Net, state: &Self::State);

    /// A batch of namespaces exited; an RCU grace period has elapsed since
    /// their `pre_exit` (process context).
    fn exit_batch(&self) {}

    /// The key through which the states are found.
    fn key() -> &'static PernetKey<Self::State>;
}

/// A state that knows the address of its namespace ([`Net::addr`]): what a
/// tag of the probes' filter is checked against.
pub(crate) trait OfNet {
    /// The address of the namespace whose state this is.
    fn net_addr(&self) -> u64;
}

/// The way to a state of type `S` that a [`PernetRegistration`] keeps in
/// every namespace; a `static` of the module.
///
/// # Invariants
///
/// While `live` is true, a [`PernetRegistration`] made with this key is
/// registered with pernet id `id` (stored before `live`), every live
/// namespace's generic pointer `id` (`net->gen->ptr[id]`) is null or points
/// to its `struct mace_net_slot` (null only while the namespace is being set
/// up, before mace's `init`), and the slot's state is null or comes from
/// `Arc::<S>::into_raw` and stays valid until an RCU grace period after it
/// was hidden (set to null).
///
/// Every tag in `filter` (a word other than [`EMPTY`] and [`SHARED`]) is the
/// state of a live namespace that a registration made with this key gave it
/// ([`Self::filter_add`]), and leaves `filter` before that namespace's
/// `pre_exit` returns (the registration's own `pre_exit` takes it out if
/// the operations did not), before its state is hidden: it stays valid
/// until an RCU grace period after it left.
pub(crate) struct PernetKey<S> {
    live: AtomicBool,
    id: AtomicU32,
    filter: NsFilter,
    _state: PhantomData<fn() -> S>,
}

impl<S: Send + Sync + 'static> PernetKey<S> {
    /// A key no registration uses yet.
    pub(crate) const fn new() -> Self {
        Self {
            live: AtomicBool::new(false),
            id: AtomicU32::new(0),
            filter: NsFilter::new(),
            _state: PhantomData,
        }
    }

    /// `net_generic(net, id)->state`, or null. The caller is in an RCU
    /// read-side critical section, which keeps the array of generic
    /// pointers and a non-null state alive.
    #[inline(always)]
    fn state_ptr(&self, net: &Net) -> *const S {
        if !self.live.load(Ordering::Acquire) {
            return core::ptr::null();
        }
        // Stored before `live`, whose Acquire load above orders this one.
        // A `u32` fits a 64-bit kernel's `usize`.
        let id = self.id.load(Ordering::Relaxed) as usize;
        // SAFETY: `net` is alive (type invariants of `Net`); `NET_GEN` is the
        // offset of its `gen`, a `struct net_generic *` that RCU publishes:
        // read once, as `rcu_dereference()` does, in the caller's read-side
        // critical section.
        let generic: *const u8 = unsafe { read_once(net.as_ptr(), offs::NET_GEN) };
        let off = offs::NET_GENERIC_PTR + id * core::mem::size_of::<*mut c_void>();
        // SAFETY: The array has a pointer at index `id`, mace's pernet id,
        // in every namespace while the registration is (type invariants):
        // registering gave every namespace one; `NET_GENERIC_PTR` is the
        // offset of the array's `ptr`, of `void *`.
        let slot: *const sys::mace_net_slot = unsafe { read_once(generic, off) };
        if slot.is_null() {
            return core::ptr::null();
        }
        let off = core::mem::offset_of!(sys::mace_net_slot, state);
        // SAFETY: A non-null generic pointer `id` is the namespace's slot
        // (type invariants), allocated as long as the namespace; its `state`
        // is written with `WRITE_ONCE()`.
        let state: *mut c_void = unsafe { read_once(slot, off) };
        state.cast_const().cast::<S>()
    }

    /// `net`'s state, for a probe; `None` while it has none.
    #[inline(always)]
    pub(crate) fn get<'a>(&self, _cx: &'a ProbeCx<'_>, net: &'a Net) -> Option<&'a S> {
        let p = self.state_ptr(net);
        // SAFETY: A non-null pointer is a live `Arc<S>`'s (type invariants)
        // and stays valid until a grace period after it is hidden; `cx`
        // proves that this runs in an RCU read-side critical section, which
        // lasts as long as `'a`.
        unsafe { p.as_ref() }
    }

    /// Counts `net`, whose state is known to the key, in the probes' filter
    /// (`counts` serializes its writers): its state's address is its tag
    /// while it is alone on its slot. Process context.
    pub(crate) fn filter_add(&self, counts: &mut NsCounts, net: &Net) {
        let _rcu = RcuReadLock::new();
        let p = self.state_ptr(net);
        // INVARIANT: The tag is `net`'s state, of this key; it leaves the
        // filter by `net`'s `pre_exit` (`filter_remove`, or `net_pre_exit`).
        // Without a state, the slot is only ever `SHARED`.
        let tag = if p.is_null() { SHARED } else { p as usize };
        counts.add(&self.filter, net.addr(), tag);
    }

    /// Uncounts `net`, whose state is `state`, from the probes' filter;
    /// `false` (and nothing changed) if it was not counted. Process context.
    pub(crate) fn filter_remove(&self, counts: &mut NsCounts, net: &Net, state: &S) -> bool {
        counts.remove(
            &self.filter,
            net.addr(),
            core::ptr::from_ref(state) as usize,
        )
    }

    /// `net`'s state, for a probe, if `net` is counted in the probes'
    /// filter; `None` at once for most namespaces (one load, a comparison),
    /// and, with one more, for the state of the namespace counted alone on
    /// the slot, without the chain of [`Self::get`].
    #[inline(always)]
    pub(crate) fn get_filtered<'a>(&'a self, cx: &'a ProbeCx<'_>, net: &'a Net) -> Option<&'a S>
    where
        S: OfNet,
    {
        let addr = net.addr();
        match self.filter.word(addr) {
            EMPTY => None,
            SHARED => self.get(cx, net),
            tag => {
                // SAFETY: A tag is a live state of this key, valid until a
                // grace period after it leaves the filter (type invariants);
                // `cx` proves that this runs in an RCU read-side critical
                // section, which lasts as long as `'a`.
                let state = unsafe { &*(tag as *const S) };
                // Its own namespace's, or another's on the same slot.
                (state.net_addr() == addr).then_some(state)
            }
        }
    }

    /// Takes `state`'s tag out of the probes' filter if it is still there
    /// as `net` goes away (its operations did not uncount it): the slot
    /// then decides nothing ([`SHARED`]), which is always right.
    fn filter_retire(&self, net: &Net, state: *const S) {
        if self.filter.retire(net.addr(), state as usize) {
            pr_warn!("a namespace going away was still in the probes' filter\n");
        }
    }

    /// A counted reference to `net`'s state; `None` while it has none.
    pub(crate) fn get_arc(&self, net: &Net) -> Option<Arc<S>> {
        let _rcu = RcuReadLock::new();
        let p = self.state_ptr(net);
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `Arc::into_raw` and, inside the read-side
        // critical section of `_rcu`, stays valid (type invariants): the
        // borrow lasts until the clone is made, just below.
        let borrow = unsafe { ArcBorrow::from_raw(p) };
        Some(borrow.into())
    }
}

/// Whether a [`PernetRegistration`] exists (the C side has one set of
/// pernet operations).
static PERNET_BUSY: AtomicBool = AtomicBool::new(false);

/// [`PernetOps`] registered for every namespace; dropping unregisters them
/// (their `pre_exit` runs for every namespace) and releases every state.
///
/// # Invariants
///
/// `_claim` holds `PERNET_BUSY` while this value lives, and the C side's
/// pernet operations call `T`'s methods with `ops` as data.
pub(crate) struct PernetRegistration<T: PernetOps> {
    key: &'static PernetKey<T::State>,
    _ops: Arc<T>,
    _claim: Claim,
}

impl<T: PernetOps> PernetRegistration<T> {
    const OPS: sys::mace_pernet_ops = sys::mace_pernet_ops {
        init: Some(net_init::<T>),
        pre_exit: Some(net_pre_exit::<T>),
        release: Some(net_release::<T::State>),
        exit_batch: Some(net_exit_batch::<T>),
    };

    /// Registers `ops`; its states are found through its key
    /// ([`PernetOps::key`]).
    ///
    /// Fails with `EBUSY` while another registration exists.
    pub(crate) fn register(ops: Arc<T>) -> Result<Self> {
        let key = T::key();
        let claim = Claim::take(&PERNET_BUSY)?;
        let mut id: c_uint = 0;
        // SAFETY: `OPS` is a static table of callbacks that match the C
        // types (checked by the compiler against the generated bindings);
        // the data pointer stays valid while `self` holds `ops`; `id` is
        // writable.
        let err = unsafe { sys::mace_pernet_register(&Self::OPS, arc_data(&ops), &mut id) };
        to_result(err)?;
        // INVARIANT: Registered just above with pernet id `id`, stored
        // before `live`; every state was made by `init`.
        key.id.store(id, Ordering::Relaxed);
        key.live.store(true, Ordering::Release);
        Ok(Self {
            key,
            _ops: ops,
            _claim: claim,
        })
    }
}

impl<T: PernetOps> Drop for PernetRegistration<T> {
    fn drop(&mut self) {
        self.key.live.store(false, Ordering::Release);
        // SAFETY: Registered by `register`; process context. It runs
        // `pre_exit`, waits for a grace period, hides and releases every
        // state before it returns.
        unsafe { sys::mace_pernet_unregister() };
    }
}

/// # Safety
///
/// Called by the pernet core with the data `register` gave, a live
/// namespace and a place for its state.
unsafe extern "C" fn net_init<T: PernetOps>(
    data: *mut c_void,
    net: *mut sys::net,
    state: *mut *mut c_void,
) -> c_int {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    // SAFETY: The namespace is being initialized and alive during the call.
    let net = unsafe { Net::from_raw(net) };
    status_int(ops.init(net).map(|s| {
        // SAFETY: `state` is writable; `net_release` takes the reference
        // back.
        unsafe { state.write(Arc::into_raw(s).cast_mut().cast()) };
    }))
}

/// # Safety
///
/// Called by the pernet core with the data `register` gave, a dying
/// namespace and the state `net_init` stored for it.
unsafe extern "C" fn net_pre_exit<T: PernetOps>(
    data: *mut c_void,
    net: *mut sys::net,
    state: *mut c_void,
) {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    // SAFETY: The namespace is alive until its exit, after this call.
    let net = unsafe { Net::from_raw(net) };
    // SAFETY: `state` is null or the `Arc` `net_init` stored, released only
    // after the namespace's exit.
    if let Some(state) = unsafe { state.cast_const().cast::<T::State>().as_ref() } {
        ops.pre_exit(net, state);
        // INVARIANT: No tag of the state is left in the filter.
        T::key().filter_retire(net, state);
    }
}

/// # Safety
///
/// Called by the pernet core with the data `register` gave, after a batch of
/// namespaces exited.
unsafe extern "C" fn net_exit_batch<T: PernetOps>(data: *mut c_void) {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    ops.exit_batch();
}

/// # Safety
///
/// Called once per state `net_init` stored, after a grace period since it
/// was hidden.
unsafe extern "C" fn net_release<S>(state: *mut c_void) {
    // SAFETY: `state` came from `Arc::into_raw` in `net_init`; no reader can
    // still see it.
    drop(unsafe { Arc::from_raw(state.cast_const().cast::<S>()) });
}
