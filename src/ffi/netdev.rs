// SPDX-License-Identifier: GPL-2.0

//! Network devices of the initial namespace: their events, and their names.

use super::{arc_data, sys, Claim};
use core::ffi::{c_int, c_ulong, c_void};
use core::sync::atomic::AtomicBool;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::Arc;

/// An event of a device of the initial network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetdevEvent {
    /// The device was registered (or existed when the notifier registered).
    Register,
    /// The device is being unregistered.
    Unregister,
    /// The device was renamed.
    ChangeName,
}

/// What follows device events (process context, RTNL held).
pub(crate) trait NetdevOps: Send + Sync + 'static {
    /// Device `ifindex` had `event`.
    fn event(&self, event: NetdevEvent, ifindex: i32);
}

/// Whether a [`NetdevRegistration`] exists (the C side has one notifier).
static NETDEV_BUSY: AtomicBool = AtomicBool::new(false);

/// A netdevice notifier, registered; dropping unregisters it.
///
/// # Invariants
///
/// `_claim` holds `NETDEV_BUSY` while this value lives, and the C side
/// calls `T`'s methods with `ops` as data.
pub(crate) struct NetdevRegistration<T: NetdevOps> {
    _ops: Arc<T>,
    _claim: Claim,
}

impl<T: NetdevOps> NetdevRegistration<T> {
    const OPS: sys::mace_netdev_ops = sys::mace_netdev_ops {
        event: Some(event::<T>),
    };

    /// Follows the devices of the initial namespace (`event` runs for every
    /// existing one first); fails with `EBUSY` while already registered.
    pub(crate) fn register(ops: Arc<T>) -> Result<Self> {
        let claim = Claim::take(&NETDEV_BUSY)?;
        // SAFETY: `OPS` is a static table whose callbacks match the C types;
        // `ops` stays alive while `self` does, and unregistering returns
        // after the last call.
        let err = unsafe { sys::mace_netdev_notifier_register(&Self::OPS, arc_data(&ops)) };
        to_result(err)?;
        // INVARIANT: Registered just above.
        Ok(Self {
            _ops: ops,
            _claim: claim,
        })
    }
}

impl<T: NetdevOps> Drop for NetdevRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered by `register`.
        unsafe { sys::mace_netdev_notifier_unregister() };
    }
}

/// # Safety
///
/// Called by the notifier with the registration's data, RTNL held.
unsafe extern "C" fn event<T: NetdevOps>(
    data: *mut c_void,
    raw: sys::mace_netdev_event,
    ifindex: c_int,
) {
    // SAFETY: `data` is the `T` the registration keeps alive.
    let ops = unsafe { &*data.cast_const().cast::<T>() };
    let event = match raw {
        sys::MACE_NETDEV_REGISTER => NetdevEvent::Register,
        sys::MACE_NETDEV_UNREGISTER => NetdevEvent::Unregister,
        sys::MACE_NETDEV_CHANGENAME => NetdevEvent::ChangeName,
        _ => return,
    };
    ops.event(event, ifindex);
}

/// The ifindex of the device called `name` in the initial namespace, or 0.
pub(crate) fn init_net_ifindex(name: &[u8]) -> i32 {
    let len = c_ulong::try_from(name.len()).unwrap_or(c_ulong::MAX);
    // SAFETY: `name` is readable for `len` bytes; the helper copies at most
    // IFNAMSIZ of them and looks the name up under RCU.
    unsafe { sys::mace_init_net_ifindex(name.as_ptr().cast(), len) }
}
