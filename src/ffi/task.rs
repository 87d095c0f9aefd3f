// SPDX-License-Identifier: GPL-2.0

//! The current task: who it is, which syscall it is in, its sockets.
//!
//! Syscall numbers and arguments are read the arch-neutral way
//! (`syscall_get_nr`, `syscall_get_arguments`), and which syscalls send and
//! receive comes from one list, in `mace_helpers.c`.
//!
//! What every probe hit asks first (which task runs, its namespace, whether
//! it is in a compat syscall, whether the CPU runs a task at all, the
//! number of the syscall a tracepoint reports) is read inline on x86_64:
//! the current task pointer and the preempt count %gs-relative at the
//! per-CPU addresses C gives at load ([`init`]), as the kernel's
//! `this_cpu_read()` does, and the task's and registers' fields at the
//! offsets of `mace_offsets.c`; if what it reads at load is not what C
//! reads, the load fails. Other architectures ask C for the task pointer,
//! `in_task()`, the compat status and the syscall number.

use super::{offs, read_once, sys};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::types::Opaque;

/// The per-CPU address of the current task pointer (x86_64).
///
/// # Invariants
///
/// Set by [`init`], which every probe follows (the module's load fails
/// otherwise): the probes read it as a per-CPU address.
static PERCPU_CURRENT: AtomicUsize = AtomicUsize::new(0);

/// The per-CPU address of the preempt count, as [`PERCPU_CURRENT`].
static PERCPU_PREEMPT: AtomicUsize = AtomicUsize::new(0);

/// The address of the kernel's `socket_file_ops`, which a socket's file
/// has as its operations (x86_64; 0 elsewhere, or if [`init`] could not
/// learn it: then [`fd_sock`] asks C).
static SOCKET_FOPS: AtomicUsize = AtomicUsize::new(0);

/// Reads the 64-bit per-CPU variable at `addr`: this CPU's copy.
///
/// # Safety
///
/// `addr` is the per-CPU address of a 64-bit variable
/// (`mace_percpu_addrs()`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn percpu_read_u64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: %gs holds this CPU's per-CPU base, so the load reads this
    // CPU's copy of the variable at `addr` (the caller's promise), in one
    // instruction that preemption cannot split.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr gs:[{a}]",
            a = in(reg) addr,
            v = lateout(reg) v,
            options(nostack, readonly, preserves_flags),
        )
    };
    v
}

/// Reads the 32-bit per-CPU variable at `addr`: this CPU's copy.
///
/// # Safety
///
/// `addr` is the per-CPU address of a variable at least 32 bits wide whose
/// low 32 bits are wanted (`mace_percpu_addrs()`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn percpu_read_u32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: As in `percpu_read_u64`; x86_64 is little-endian, so the
    // first four bytes are the low 32 bits.
    unsafe {
        core::arch::asm!(
            "mov {v:e}, dword ptr gs:[{a}]",
            a = in(reg) addr,
            v = lateout(reg) v,
            options(nostack, readonly, preserves_flags),
        )
    };
    v
}

/// Finds the per-CPU addresses of the current task pointer and the preempt
/// count (x86_64), which the probes read inline, and checks that reading
/// them, and finding the current task's registers from its stack, gives what
/// C reads. Called at load, in process context, before any
/// probe is attached; an error fails the load.
pub(crate) fn init() -> Result {
    #[cfg(target_arch = "x86_64")]
    {
        let (mut current, mut preempt) = (0, 0);
        // SAFETY: Both pointers are valid for writes.
        unsafe { sys::mace_percpu_addrs(&mut current, &mut preempt) };
        let (Ok(current), Ok(preempt)) = (usize::try_from(current), usize::try_from(preempt))
        else {
            pr_err!("this kernel's per-CPU current task and preempt count are out of reach\n");
            return Err(EINVAL);
        };
        if current == 0 || preempt == 0 {
            pr_err!("this kernel's per-CPU current task and preempt count are not known\n");
            return Err(EINVAL);
        }
        // SAFETY: Both are per-CPU addresses from `mace_percpu_addrs()`,
        // of a pointer and of a count at least 32 bits wide.
        let (task, count) = unsafe { (percpu_read_u64(current), percpu_read_u32(preempt)) };
        // SAFETY: No preconditions.
        let (c_task, c_count) = unsafe { (sys::mace_current_task(), sys::mace_preempt_count()) };
        // The count's top bit is x86's "need resched", which preempt_count()
        // leaves out.
        if task != c_task || count & 0x7fff_ffff != c_count {
            pr_err!("the per-CPU current task or preempt count read inline is not what C reads\n");
            return Err(EINVAL);
        }
        PERCPU_CURRENT.store(current, Relaxed);
        PERCPU_PREEMPT.store(preempt, Relaxed);
        // The loading task is in a syscall (init_module), so its registers
        // are where the probes find a task's: the same place as C's.
        // SAFETY: No preconditions.
        let c_regs = unsafe { sys::mace_current_pt_regs() };
        if current_regs() as usize as u64 != c_regs {
            pr_err!("the current task's registers found inline are not where C finds them\n");
            return Err(EINVAL);
        }
        // SAFETY: Process context (the module's load), which the helper
        // needs.
        let fops = unsafe { sys::mace_socket_fops() };
        match usize::try_from(fops) {
            Ok(fops) if fops != 0 => SOCKET_FOPS.store(fops, Relaxed),
            _ => pr_info!("sockets' file operations are not known: C looks descriptors up\n"),
        }
    }
    Ok(())
}

/// The current task's `struct task_struct`.
#[inline(always)]
fn current_ptr() -> *const u8 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `init` set the per-CPU address of the current task pointer
    // before any probe or caller ran (type invariants of the static).
    unsafe {
        percpu_read_u64(PERCPU_CURRENT.load(Relaxed)) as usize as *const u8
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: No preconditions.
    unsafe {
        sys::mace_current_task() as usize as *const u8
    }
}

/// The current task's network namespace, null if it has none (it is
/// exiting): `current->nsproxy->net_ns`.
#[inline(always)]
pub(super) fn current_net_raw() -> *mut sys::net {
    let task = current_ptr();
    // SAFETY: `task` is the current task, alive while it runs (or is
    // interrupted here); its nsproxy is a `struct nsproxy *` at
    // TASK_NSPROXY (mace_offsets.c checks), which only the task itself
    // changes.
    let nsproxy: *const u8 = unsafe { read_once(task, offs::TASK_NSPROXY) };
    if nsproxy.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: A task's nsproxy lives while the task uses it; its net_ns
    // is a `struct net *` at NSPROXY_NET_NS (checked).
    unsafe { read_once(nsproxy, offs::NSPROXY_NET_NS) }
}

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
    /// Borrows the registers at `ptr`, a syscall tracepoint's argument that
    /// is never null: no test on the hot path.
    ///
    /// # Safety
    ///
    /// `ptr` is not null and points to the current task's registers, valid
    /// for `'a`.
    #[inline(always)]
    pub(super) unsafe fn from_nonnull<'a>(ptr: *mut sys::pt_regs) -> &'a Regs {
        // SAFETY: `Regs` is a transparent wrapper of `struct pt_regs`;
        // non-null and validity are the caller's promise.
        unsafe { &*ptr.cast::<Regs>() }
    }

    fn as_ptr(&self) -> *mut sys::pt_regs {
        self.0.get()
    }

    /// `orig_ax`: the syscall's number as the entry code saved it.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn orig_ax(&self) -> u64 {
        // SAFETY: The registers are the current task's (type invariants).
        unsafe { regs_orig_ax(self.as_ptr().cast::<u8>()) }
    }

    /// The number of the syscall the task enters or leaves.
    #[inline(always)]
    pub(crate) fn syscall_nr(&self) -> i64 {
        // syscall_get_nr() returns orig_ax as an int.
        #[cfg(target_arch = "x86_64")]
        {
            i64::from(self.orig_ax() as i32)
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: The registers are the current task's (type invariants).
        unsafe {
            sys::mace_syscall_nr(self.as_ptr())
        }
    }

    /// Whether the task is in a 32-bit compat syscall (whose numbers are
    /// another table's): in_compat_syscall(), for these registers.
    #[inline(always)]
    pub(crate) fn in_compat_syscall(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            // The number register is read only if the kernel has 32-bit
            // syscalls: a volatile read, which the compiler cannot drop
            // when the answer does not need it (a load every hit).
            compat_syscall(|| self.orig_ax())
        }
        #[cfg(not(target_arch = "x86_64"))]
        in_compat_syscall()
    }

    /// The first argument of the syscall, a native one: the caller ruled
    /// out a 32-bit compat syscall ([`Self::in_compat_syscall`]).
    #[inline(always)]
    pub(crate) fn native_arg0(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: The registers are the current task's (type
            // invariants).
            unsafe { regs_arg0(self.as_ptr().cast::<u8>()) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: The registers are the current task's (type invariants).
        unsafe {
            sys::mace_syscall_arg0(self.as_ptr())
        }
    }
}

/// The syscalls mace follows: those that send and those that receive on
/// sockets (and files: `write`, `read` and their vector forms).
///
/// A byte of kinds per syscall number, as `mace_syscall_kinds()` fills
/// them: a probe's filter is one load and one test, and a send learns from
/// the same byte whether it may be on a file.
pub(crate) struct Syscalls([u8; SYSCALL_SLOTS]);

/// How many syscall numbers [`Syscalls`] knows (a number beyond is none of
/// its kinds).
const SYSCALL_SLOTS: usize = sys::MACE_SYSCALL_SLOTS as usize;

/// What mace does with a syscall: its byte of [`Syscalls`].
#[derive(Clone, Copy)]
pub(crate) struct SyscallKind(u8);

impl SyscallKind {
    const SEND: u8 = sys::MACE_SYSCALL_SEND as u8;
    const RECV: u8 = sys::MACE_SYSCALL_RECV as u8;
    const EXIT: u8 = sys::MACE_SYSCALL_EXIT as u8;
    const FILE: u8 = sys::MACE_SYSCALL_FILE as u8;

    /// Whether the syscall sends.
    #[inline(always)]
    pub(crate) fn sends(self) -> bool {
        self.0 & Self::SEND != 0
    }

    /// Whether the syscall receives.
    #[inline(always)]
    pub(crate) fn receives(self) -> bool {
        self.0 & Self::RECV != 0
    }

    /// Whether the syscall receives or waits for files to become readable
    /// (poll, select, epoll): where most syscalls' returns end.
    #[inline(always)]
    pub(crate) fn receives_or_waits(self) -> bool {
        self.0 & Self::EXIT != 0
    }

    /// Whether the syscall takes any file, not only a socket (`write`,
    /// `read` and their vector forms).
    #[inline(always)]
    pub(crate) fn takes_files(self) -> bool {
        self.0 & Self::FILE != 0
    }
}

impl Syscalls {
    /// This kernel's syscalls that send, receive and wait.
    pub(crate) fn new() -> Self {
        let mut kinds = [0; SYSCALL_SLOTS];
        // SAFETY: `kinds` is MACE_SYSCALL_SLOTS writable bytes.
        unsafe { sys::mace_syscall_kinds(kinds.as_mut_ptr()) };
        Self(kinds)
    }

    /// What mace does with syscall `nr`.
    #[inline(always)]
    pub(crate) fn kind(&self, nr: i64) -> SyscallKind {
        SyscallKind(
            usize::try_from(nr)
                .ok()
                .and_then(|nr| self.0.get(nr))
                .copied()
                .unwrap_or(0),
        )
    }

    /// Whether syscall `nr` sends.
    pub(crate) fn sends(&self, nr: i64) -> bool {
        self.kind(nr).sends()
    }

    /// Whether syscall `nr` receives.
    pub(crate) fn receives(&self, nr: i64) -> bool {
        self.kind(nr).receives()
    }
}

/// The current task's identity (a number unique among live tasks) and its
/// thread id.
#[inline(always)]
pub(crate) fn current_task() -> (u64, u32) {
    let task = current_ptr();
    // SAFETY: The current task's pid (its thread id in the initial pid
    // namespace, task_pid_nr()) is a pid_t, an int, at TASK_PID (checked).
    let tid: i32 = unsafe { read_once(task, offs::TASK_PID) };
    (task as usize as u64, u32::try_from(tid).unwrap_or(0))
}

/// How many times the current task moved to another CPU
/// (`se.nr_migrations`): a per-CPU note it made is still its latest on
/// this CPU only while this count is the same.
#[inline(always)]
pub(crate) fn current_migrations() -> u64 {
    // SAFETY: The current task's `se.nr_migrations` is a u64 at
    // TASK_NR_MIGRATIONS (checked); only the scheduler writes it, while
    // the task is not running here, and a u64 load does not tear.
    unsafe { read_once(current_ptr(), offs::TASK_NR_MIGRATIONS) }
}

/// Whether the CPU cannot switch tasks now, but where the code sleeps: a
/// kernel without `CONFIG_PREEMPTION` never preempts kernel code; on one
/// with it, the preempt count says whether preemption is disabled, or an
/// interrupt or softirq runs.
#[inline(always)]
pub(super) fn preempt_disabled() -> bool {
    if offs::PREEMPTION == 0 {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `init` set the per-CPU address of the preempt count before
    // any probe or caller ran (type invariants of the static).
    let count = unsafe { percpu_read_u32(PERCPU_PREEMPT.load(Relaxed)) } as usize;
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: No preconditions.
    let count = unsafe { sys::mace_preempt_count() } as usize;
    count & offs::PINNED_PREEMPT_MASK != 0
}

/// Whether the current task is in a 32-bit compat syscall (whose numbers
/// are another table's).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn in_compat_syscall() -> bool {
    // SAFETY: No preconditions.
    unsafe { sys::mace_in_compat_syscall() }
}

/// Whether the CPU runs a task, not an interrupt or a softirq.
#[inline(always)]
pub(crate) fn in_task() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `init` set the per-CPU address of the preempt count
        // before any probe or caller ran (type invariants of the static).
        let count = unsafe { percpu_read_u32(PERCPU_PREEMPT.load(Relaxed)) } as usize;
        if count & offs::IN_TASK_PREEMPT_MASK != 0 {
            return false;
        }
        if offs::PREEMPT_RT == 0 {
            return true;
        }
        // PREEMPT_RT counts softirqs in the task.
        // SAFETY: Its softirq_disable_cnt is an int at
        // TASK_SOFTIRQ_DISABLE_CNT (checked under PREEMPT_RT).
        let cnt: i32 = unsafe { read_once(current_ptr(), offs::TASK_SOFTIRQ_DISABLE_CNT) };
        cnt as usize & offs::SOFTIRQ_OFFSET == 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: No preconditions.
    unsafe {
        sys::mace_in_task()
    }
}

/// Whether the current task, whose syscall number register `ax` reads, is
/// in a 32-bit compat syscall: in_compat_syscall().
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn compat_syscall(ax: impl FnOnce() -> u64) -> bool {
    if offs::TS_COMPAT_MASK == 0 && offs::X32_SYSCALL_MASK == 0 {
        // A kernel without 32-bit syscalls.
        return false;
    }
    // SAFETY: The current task's thread_info status is a u32 at
    // TASK_TI_STATUS (mace_offsets.c checks).
    let status: u32 = unsafe { read_once(current_ptr(), offs::TASK_TI_STATUS) };
    // A mask is 0 where the configuration lacks its kind of syscall (the
    // check above returned if both are).
    #[allow(clippy::bad_bit_mask)]
    let compat =
        status as usize & offs::TS_COMPAT_MASK != 0 || ax() as usize & offs::X32_SYSCALL_MASK != 0;
    compat
}

/// The `orig_ax` of the registers at `regs`: the syscall's number as the
/// entry code saved it (syscall_get_nr() returns it as an int).
///
/// # Safety
///
/// `regs` points to a task's `struct pt_regs`, live for the call.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn regs_orig_ax(regs: *const u8) -> u64 {
    // SAFETY: By the caller's promise, a `struct pt_regs`, whose orig_ax is
    // an unsigned long at PT_REGS_ORIG_AX (mace_offsets.c checks).
    unsafe { read_once(regs, offs::PT_REGS_ORIG_AX) }
}

/// The first argument of the native syscall whose registers are at `regs`
/// (syscall_get_arguments() outside a compat syscall).
///
/// # Safety
///
/// `regs` points to a task's `struct pt_regs`, live for the call.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn regs_arg0(regs: *const u8) -> u64 {
    // SAFETY: By the caller's promise, a `struct pt_regs`, whose di is an
    // unsigned long at PT_REGS_DI (mace_offsets.c checks).
    unsafe { read_once(regs, offs::PT_REGS_DI) }
}

/// The current task's registers as its entry into the kernel saved them,
/// for a probe whose hook passes none; `None` for a kernel thread or an
/// io_uring worker, which are in no syscall (elsewhere than on x86-64, where
/// C reads them, also for a task outside a syscall).
///
/// # Safety
///
/// The caller runs in the current task's context (not an interrupt's), and
/// uses the registers only until it returns.
#[inline(always)]
pub(super) unsafe fn current_task_regs<'a>() -> Option<&'a Regs> {
    #[cfg(target_arch = "x86_64")]
    let regs = current_regs().cast_mut().cast::<sys::pt_regs>();
    #[cfg(not(target_arch = "x86_64"))]
    let regs = if current_syscall_nr() < 0 {
        core::ptr::null_mut()
    } else {
        // SAFETY: No preconditions.
        unsafe { sys::mace_current_pt_regs() as *mut sys::pt_regs }
    };
    if regs.is_null() {
        return None;
    }
    // SAFETY: Not null: the current task's registers (the caller runs in its
    // context), which live as long as the task, beyond the caller's use.
    Some(unsafe { Regs::from_nonnull(regs) })
}

/// The current task's registers as its entry into the kernel saved them
/// (task_pt_regs(current)), or null for a kernel thread or an io_uring
/// worker, which are in no syscall.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn current_regs() -> *const u8 {
    let task = current_ptr();
    // SAFETY: `task` is the current task, alive while it runs (or is
    // interrupted here); its flags are an unsigned int at TASK_FLAGS
    // (mace_offsets.c checks), which the task itself sets.
    let flags: u32 = unsafe { read_once(task, offs::TASK_FLAGS) };
    if flags as usize & offs::TASK_NO_SYSCALL_FLAGS != 0 {
        return core::ptr::null();
    }
    // SAFETY: Its stack is a `void *` at TASK_STACK (checked), set before
    // the task first ran; the registers lie at its top, which `init`
    // checked against task_pt_regs().
    let stack: *const u8 = unsafe { read_once(task, offs::TASK_STACK) };
    stack.wrapping_add(offs::TASK_STACK_TO_PT_REGS)
}

/// The syscall the current task is in (-1 if none); meaningful only in task
/// context ([`in_task`]).
#[inline(always)]
pub(crate) fn current_syscall_nr() -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        let regs = current_regs();
        if regs.is_null() {
            return -1;
        }
        // SAFETY: The current task's registers, live while it runs (in an
        // interrupt, the interrupted task's, which is harmless).
        let ax = unsafe { regs_orig_ax(regs) };
        i64::from(ax as i32)
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: No preconditions; in an interrupt it reads the interrupted
    // task's registers, which is harmless.
    unsafe {
        sys::mace_current_syscall_nr()
    }
}

/// The native syscall the current task is in and its first argument;
/// `None` outside a syscall or in a 32-bit compat one (whose numbers are
/// another table's). Meaningful only in task context ([`in_task`]).
#[inline(always)]
pub(crate) fn current_syscall() -> Option<(i64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let regs = current_regs();
        if regs.is_null() {
            return None;
        }
        // SAFETY: As in `current_syscall_nr`.
        let ax = unsafe { regs_orig_ax(regs) };
        if compat_syscall(|| ax) {
            return None;
        }
        // SAFETY: The same registers.
        let arg0 = unsafe { regs_arg0(regs) };
        Some((i64::from(ax as i32), arg0))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut arg0 = 0;
        // SAFETY: `arg0` is writable; in an interrupt it reads the
        // interrupted task's registers, which is harmless.
        let nr = unsafe { sys::mace_current_syscall(&mut arg0) };
        (nr >= 0 && !in_compat_syscall()).then_some((nr, arg0))
    }
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
#[inline(always)]
pub(crate) fn fd_sock(fd: u64) -> FdSock {
    #[cfg(target_arch = "x86_64")]
    if let Some(found) = fd_sock_own_table(fd) {
        return found;
    }
    fd_sock_c(fd)
}

/// [`fd_sock`] read inline, as `fdget()` and `sock_from_file()` read it,
/// if the current task's file table is its own (no other task can close
/// `fd` meanwhile, so no reference is taken, as `fdget()` takes none);
/// `None` if it is shared, or if the sockets' file operations are not
/// known: then C looks it up, with a reference.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fd_sock_own_table(fd: u64) -> Option<FdSock> {
    const NONE: FdSock = FdSock {
        sock: 0,
        tcp_write_seq: None,
    };
    let fops = SOCKET_FOPS.load(Relaxed);
    if fops == 0 {
        return None;
    }
    let task = current_ptr();
    // SAFETY: `task` is the current task, alive while it runs; its file
    // table is a `struct files_struct *` at TASK_FILES (mace_offsets.c
    // checks), which only the task itself replaces.
    let files: *const u8 = unsafe { read_once(task, offs::TASK_FILES) };
    if files.is_null() {
        return None;
    }
    // SAFETY: The task holds a reference to its file table; its count is
    // an `atomic_t` (an int) at FILES_COUNT (checked).
    let count: i32 = unsafe { read_once(files, offs::FILES_COUNT) };
    // As fdget(): the table is the task's alone, so the descriptor's file
    // stays while the task is here. The acquire pairs with the release of
    // the decrement that made it so (another task's put_files_struct()).
    core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
    if count != 1 {
        return None;
    }
    // A descriptor beyond INT_MAX is none (fdget() takes an unsigned int).
    if fd > i32::MAX as u64 {
        return Some(NONE);
    }
    // SAFETY: The table's fdtable is a `struct fdtable *` at FILES_FDT
    // (checked), which only the task itself replaces (it owns the table).
    let fdt: *const u8 = unsafe { read_once(files, offs::FILES_FDT) };
    // SAFETY: `fdt` is the table's live fdtable; its size is an unsigned
    // int at FDT_MAX_FDS and its files a `struct file **` at FDT_FD
    // (checked).
    let (max, array): (u32, *const *const u8) = unsafe {
        (
            read_once(fdt, offs::FDT_MAX_FDS),
            read_once(fdt, offs::FDT_FD),
        )
    };
    // As files_lookup_fd_raw(): the index is masked without a branch, so
    // that a descriptor beyond the table is not read even speculatively.
    let mask = index_mask_nospec(fd, u64::from(max));
    // SAFETY: `fd & mask` is below `max` (or 0, which every table has):
    // an element of the table's array of `max` file pointers.
    let file: *const u8 = unsafe { array.add((fd & mask) as usize).read_volatile() };
    let file = (file as u64 & mask) as usize as *const u8;
    if file.is_null() {
        return Some(NONE);
    }
    // SAFETY: `file` is the descriptor's open file, which stays while the
    // task is here (above); its operations are a pointer at FILE_F_OP
    // (checked).
    let f_op: usize = unsafe { read_once(file, offs::FILE_F_OP) };
    // Not a socket (an O_PATH file has empty operations of its own, and
    // fdget() would not give it).
    if f_op != fops {
        return Some(NONE);
    }
    // SAFETY: A socket's file keeps its `struct socket` as private data
    // (sock_alloc_file()), at FILE_PRIVATE_DATA (checked), and the socket
    // lives as long as the file; its `struct sock *` is at SOCKET_SK
    // (checked).
    let sk: *const u8 = unsafe {
        let sock: *const u8 = read_once(file, offs::FILE_PRIVATE_DATA);
        read_once(sock, offs::SOCKET_SK)
    };
    if sk.is_null() {
        return Some(NONE);
    }
    // SAFETY: The socket holds its sock while the file is open; its family
    // is an unsigned short at SOCK_FAMILY (checked).
    let family: u16 = unsafe { read_once(sk, offs::SOCK_FAMILY) };
    // Only IP sockets send packets mace can follow.
    if usize::from(family) != offs::SOCK_AF_INET && usize::from(family) != offs::SOCK_AF_INET6 {
        return Some(NONE);
    }
    // SAFETY: As above; its type and protocol are u16 at SOCK_TYPE and
    // SOCK_PROTOCOL (checked).
    let (ty, proto): (u16, u16) = unsafe {
        (
            read_once(sk, offs::SOCK_TYPE),
            read_once(sk, offs::SOCK_PROTOCOL),
        )
    };
    // sk_is_tcp(), of an IP socket.
    let tcp_write_seq = if usize::from(ty) == offs::SOCK_STREAM_TYPE
        && usize::from(proto) == offs::SOCK_IPPROTO_TCP
    {
        // SAFETY: A TCP socket's sock is the start of its `struct
        // tcp_sock`, whose write_seq is a u32 at TCP_WRITE_SEQ (checked).
        Some(unsafe { read_once::<u32, u8>(sk, offs::TCP_WRITE_SEQ) })
    } else {
        None
    };
    Some(FdSock {
        sock: sk as usize as u64,
        tcp_write_seq,
    })
}

/// `array_index_mask_nospec(index, size)` (x86): all ones if `index <
/// size`, else 0, computed with a carry rather than a branch, so that the
/// CPU does not speculate past a bounds check with a user's index.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn index_mask_nospec(index: u64, size: u64) -> u64 {
    let mask: u64;
    // SAFETY: Arithmetic on registers only; the flags it changes are
    // declared clobbered (no `preserves_flags`).
    unsafe {
        core::arch::asm!(
            "cmp {i}, {s}",
            "sbb {m}, {m}",
            i = in(reg) index,
            s = in(reg) size,
            m = lateout(reg) mask,
            options(pure, nomem, nostack),
        )
    };
    mask
}

/// [`fd_sock`] in C, with a reference to the file while it reads it.
#[inline(never)]
fn fd_sock_c(fd: u64) -> FdSock {
    let mut tcp_seq: u64 = 0;
    // SAFETY: Looks the descriptor up without sleeping; any value of `fd` is
    // fine. `tcp_seq` is a valid place for the helper to write to.
    let sock = unsafe { sys::mace_fd_sock(fd, &mut tcp_seq) };
    FdSock {
        sock,
        tcp_write_seq: (tcp_seq >> 32 == 1).then_some(tcp_seq as u32),
    }
}
