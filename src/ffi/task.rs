// SPDX-License-Identifier: GPL-2.0

//! The current task: who it is, which syscall it is in, its sockets.
//!
//! Syscall numbers and arguments are read the arch-neutral way
//! (`syscall_get_nr`, `syscall_get_arguments`), and which syscalls send and
//! receive comes from one list, in `mace_helpers.c`.

use super::sys;
use kernel::types::Opaque;

/// The registers of a task entering or leaving a syscall (`struct
/// pt_regs`).
///
/// # Invariants
///
/// A `&'a Regs` is only made for the current task's registers, passed by a
/// syscall tracepoint, for the probe call.
#[repr(transparent)]
pub(crate) struct Regs(Opaque<sys::pt_regs>);

impl Regs {
    /// Borrows the registers at `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// A non-null `ptr` points to the current task's registers, valid for
    /// `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut sys::pt_regs) -> Option<&'a Regs> {
        // SAFETY: `Regs` is a transparent wrapper of `struct pt_regs`;
        // validity is the caller's promise.
        unsafe { ptr.cast::<Regs>().as_ref() }
    }

    fn as_ptr(&self) -> *mut sys::pt_regs {
        self.0.get()
    }

    /// The number of the syscall the task enters or leaves.
    pub(crate) fn syscall_nr(&self) -> i64 {
        // SAFETY: The registers are the current task's (type invariants).
        unsafe { sys::mace_syscall_nr(self.as_ptr()) }
    }

    /// The syscall's first argument.
    pub(crate) fn arg0(&self) -> u64 {
        // SAFETY: The registers are the current task's (type invariants).
        unsafe { sys::mace_syscall_arg0(self.as_ptr()) }
    }
}

/// The syscalls mace follows: those that send and those that receive on
/// sockets (and files: `write`, `read` and their vector forms).
pub(crate) struct Syscalls(sys::mace_syscall_sets);

impl Syscalls {
    /// This kernel's syscalls that send, receive and wait.
    pub(crate) fn new() -> Self {
        let mut sets = sys::mace_syscall_sets {
            send: [0; sys::MACE_SYSCALL_WORDS as usize],
            recv: [0; sys::MACE_SYSCALL_WORDS as usize],
            wait: [0; sys::MACE_SYSCALL_WORDS as usize],
        };
        // SAFETY: `sets` is a valid, writable `struct mace_syscall_sets`.
        unsafe { sys::mace_syscall_sets(&mut sets) };
        Self(sets)
    }

    fn has(set: &[u64], nr: i64) -> bool {
        let Ok(nr) = usize::try_from(nr) else {
            return false;
        };
        set.get(nr / 64)
            .is_some_and(|w| w & (1u64 << (nr % 64)) != 0)
    }

    /// Whether syscall `nr` sends.
    pub(crate) fn sends(&self, nr: i64) -> bool {
        Self::has(&self.0.send, nr)
    }

    /// Whether syscall `nr` receives.
    pub(crate) fn receives(&self, nr: i64) -> bool {
        Self::has(&self.0.recv, nr)
    }

    /// Whether syscall `nr` waits for files to become readable (poll,
    /// select, epoll).
    pub(crate) fn waits(&self, nr: i64) -> bool {
        Self::has(&self.0.wait, nr)
    }
}

/// The current task's identity (a number unique among live tasks) and its
/// thread id.
pub(crate) fn current_task() -> (u64, u32) {
    // SAFETY: No preconditions.
    let task = unsafe { sys::mace_current_task() };
    // SAFETY: No preconditions.
    let tid = unsafe { sys::mace_current_tid() };
    (task, u32::try_from(tid).unwrap_or(0))
}

/// Whether the current task is in a 32-bit compat syscall (whose numbers
/// are another table's).
pub(crate) fn in_compat_syscall() -> bool {
    // SAFETY: No preconditions.
    unsafe { sys::mace_in_compat_syscall() }
}

/// Whether the CPU runs a task, not an interrupt or a softirq.
pub(crate) fn in_task() -> bool {
    // SAFETY: No preconditions.
    unsafe { sys::mace_in_task() }
}

/// The syscall the current task is in (-1 if none); meaningful only in task
/// context ([`in_task`]).
pub(crate) fn current_syscall_nr() -> i64 {
    // SAFETY: No preconditions; in an interrupt it reads the interrupted
    // task's registers, which is harmless.
    unsafe { sys::mace_current_syscall_nr() }
}

/// The syscall the current task is in (-1 if none) and its first argument;
/// meaningful only in task context ([`in_task`]).
pub(crate) fn current_syscall() -> (i64, u64) {
    let mut arg0 = 0;
    // SAFETY: `arg0` is writable; in an interrupt it reads the interrupted
    // task's registers, which is harmless.
    let nr = unsafe { sys::mace_current_syscall(&mut arg0) };
    (nr, arg0)
}

/// The socket behind one of the current task's file descriptors.
pub(crate) struct FdSock {
    /// Its identity, 0 if the descriptor is not a socket. The same socket
    /// gives the same number as [`super::skb::Skb::sock`] while it lives.
    pub(crate) sock: u64,
    /// For a TCP socket, the sequence number of the next byte written to it.
    pub(crate) tcp_write_seq: Option<u32>,
}

/// Looks up the socket behind the current task's file descriptor `fd`.
pub(crate) fn fd_sock(fd: u64) -> FdSock {
    let mut tcp_seq: u64 = 0;
    // SAFETY: Looks the descriptor up without sleeping; any value of `fd` is
    // fine. `tcp_seq` is a valid place for the helper to write to.
    let sock = unsafe { sys::mace_fd_sock(fd, &mut tcp_seq) };
    FdSock {
        sock,
        tcp_write_seq: (tcp_seq >> 32 == 1).then_some(tcp_seq as u32),
    }
}
