// SPDX-License-Identifier: GPL-2.0

//! Per-CPU variables the module allocates.
//!
//! [`PerCpuWords`] is an array of words on every CPU, allocated with
//! `__alloc_percpu()` and freed when the value is dropped. A probe reaches
//! its CPU's copy while it holds a [`Pinned`] (it cannot move to another
//! CPU meanwhile), as `this_cpu_ptr()` does: on x86_64 by adding this
//! CPU's offset (`this_cpu_off`, one `%gs`-relative load) to the per-CPU
//! address, elsewhere through C. The words are atomics, read and written
//! whole: another context on the same CPU (an interrupt) could see a mix of
//! two writers' words but never a torn word; what the words mean, and which
//! contexts write them, is their user's business.

use super::sync::Pinned;
use super::sys;
use core::ffi::c_ulong;
use core::sync::atomic::AtomicU64;
use kernel::prelude::*;

/// `N` words on every possible CPU, zeroed when allocated.
///
/// # Invariants
///
/// `addr` is the per-CPU address `__alloc_percpu()` returned for `N` words
/// aligned to 8 bytes, freed only by `drop`; on x86_64, `off` is the
/// per-CPU address of `this_cpu_off`.
pub(crate) struct PerCpuWords<const N: usize> {
    addr: usize,
    #[cfg(target_arch = "x86_64")]
    off: usize,
}

// SAFETY: The allocation is not tied to the allocating task, and its words
// are atomics.
unsafe impl<const N: usize> Send for PerCpuWords<N> {}
// SAFETY: As above: shared references reach the current CPU's words, which
// are atomics.
unsafe impl<const N: usize> Sync for PerCpuWords<N> {}

impl<const N: usize> PerCpuWords<N> {
    /// Allocates the words, zeroed, on every possible CPU. Process context.
    pub(crate) fn new() -> Result<Self> {
        let size = N.checked_mul(8).ok_or(EINVAL)?;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: No preconditions.
        let off = unsafe { sys::mace_this_cpu_off_addr() } as usize;
        #[cfg(target_arch = "x86_64")]
        if off == 0 {
            return Err(EINVAL);
        }
        let size = c_ulong::try_from(size).map_err(|_| EINVAL)?;
        // SAFETY: No preconditions (process context, the caller's).
        let addr = unsafe { sys::mace_alloc_percpu(size) } as usize;
        if addr == 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: Just allocated, `N` words, 8-byte aligned; `off` from
        // C.
        Ok(Self {
            addr,
            #[cfg(target_arch = "x86_64")]
            off,
        })
    }

    /// This CPU's words, while `_pin` keeps the code on this CPU.
    #[inline(always)]
    pub(crate) fn this_cpu<'p>(&'p self, _pin: &'p Pinned<'_>) -> &'p [AtomicU64; N] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `off` is the per-CPU address of `this_cpu_off` (type
        // invariants), an unsigned long.
        let p = self
            .addr
            .wrapping_add(unsafe { super::task::percpu_read_u64(self.off) } as usize);
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: `addr` is a live per-CPU allocation (type invariants).
        let p = unsafe { sys::mace_this_cpu_ptr(self.addr as c_ulong) } as usize;
        if p == 0 {
            // SAFETY: A CPU's copy of a live per-CPU allocation is never at
            // address 0: saying so spares every user a test of the
            // reference for null.
            unsafe { core::hint::unreachable_unchecked() }
        }
        // SAFETY: `p` is this CPU's copy of the allocation, `N` words
        // aligned to 8 bytes, zeroed at first (valid atomics), alive as
        // long as `self`; `_pin` keeps the caller on this CPU, whose copy
        // it stays, for the reference's lifetime.
        unsafe { &*(p as *const [AtomicU64; N]) }
    }

    /// CPU `cpu`'s words, if it is a possible CPU. Any context, any CPU:
    /// the words are atomics, and what another CPU's words mean while that
    /// CPU writes them is their user's business.
    pub(crate) fn on_cpu(&self, cpu: u32) -> Option<&[AtomicU64; N]> {
        // SAFETY: `addr` is a live per-CPU allocation (type invariants);
        // the helper checks `cpu`.
        let p = unsafe { sys::mace_per_cpu_ptr(self.addr as c_ulong, cpu) };
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is CPU `cpu`'s copy of the allocation, `N` words
        // aligned to 8 bytes, zeroed at first (valid atomics), alive as
        // long as `self`.
        Some(unsafe { &*(p as *const [AtomicU64; N]) })
    }

    /// Calls `f` with the number and the words of each possible CPU.
    pub(crate) fn for_each_possible(&self, mut f: impl FnMut(u32, &[AtomicU64; N])) {
        // SAFETY: No preconditions.
        let nr = unsafe { sys::mace_nr_cpu_ids() };
        let mut prev: i32 = -1;
        // Bounded: the CPUs grow strictly, below `nr`.
        while let Ok(next) = i32::try_from(
            // SAFETY: No preconditions.
            unsafe { sys::mace_next_possible_cpu(prev) },
        ) {
            let Ok(cpu) = u32::try_from(next) else { break };
            if cpu >= nr || next <= prev {
                break;
            }
            if let Some(words) = self.on_cpu(cpu) {
                f(cpu, words);
            }
            prev = next;
        }
    }
}

impl<const N: usize> Drop for PerCpuWords<N> {
    fn drop(&mut self) {
        // SAFETY: Allocated by `new` (type invariants) and freed once; the
        // module's probes, which use it, are unregistered before the
        // capture state that owns it is dropped.
        unsafe { sys::mace_free_percpu(self.addr as c_ulong) };
    }
}
