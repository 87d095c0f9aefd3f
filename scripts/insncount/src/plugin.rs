// SPDX-License-Identifier: GPL-2.0

//! The plugin proper: QEMU's callbacks, the counters and their output.
//!
//! Compiled into the shared object only: its `qemu_plugin_*` calls resolve
//! against the qemu binary when qemu loads it, so a test binary could not
//! link them.

use crate::rep_string;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The first address counted: the x86-64 kernel's text and its modules lie above it.
const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// The plugin API version this plugin was written for; QEMU reads it before it calls `qemu_plugin_install`.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static qemu_plugin_version: c_int = 1;

/// The id QEMU gives a loaded plugin (`qemu_plugin_id_t`).
type PluginId = u64;

/// A translation block as QEMU hands it to the translation callback (opaque).
#[repr(C)]
struct Tb {
    _opaque: [u8; 0],
}

/// One guest instruction of a translation block (opaque).
#[repr(C)]
struct Insn {
    _opaque: [u8; 0],
}

/// Called when QEMU has translated a block, before it first runs.
type TbTransCb = extern "C" fn(PluginId, *mut Tb);
/// Called on a vCPU thread each time an instruction executes.
type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
/// Called once with the plugin's id and a pointer of ours (at exit).
type UdataCb = extern "C" fn(PluginId, *mut c_void);

/// `enum qemu_plugin_op`: add an immediate to a 64-bit word in memory.
const OP_INLINE_ADD_U64: c_int = 0;
/// `enum qemu_plugin_cb_flags`: the callback reads no guest register.
const CB_NO_REGS: c_int = 0;

extern "C" {
    /// Have `cb` called for each block QEMU translates.
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: TbTransCb);
    /// The number of instructions in a block (during the translation callback).
    fn qemu_plugin_tb_n_insns(tb: *const Tb) -> usize;
    /// The `idx`-th instruction of a block (during the translation callback).
    fn qemu_plugin_tb_get_insn(tb: *const Tb, idx: usize) -> *mut Insn;
    /// The guest virtual address of an instruction.
    fn qemu_plugin_insn_vaddr(insn: *const Insn) -> u64;
    /// The bytes of an instruction (during the translation callback).
    fn qemu_plugin_insn_data(insn: *const Insn) -> *const c_void;
    /// The number of bytes of an instruction.
    fn qemu_plugin_insn_size(insn: *const Insn) -> usize;
    /// Have the translated code apply `op` with `imm` to `*ptr` each time the instruction executes.
    fn qemu_plugin_register_vcpu_insn_exec_inline(
        insn: *mut Insn,
        op: c_int,
        ptr: *mut c_void,
        imm: u64,
    );
    /// Have `cb` called each time the instruction executes.
    fn qemu_plugin_register_vcpu_insn_exec_cb(
        insn: *mut Insn,
        cb: VcpuUdataCb,
        flags: c_int,
        udata: *mut c_void,
    );
    /// Have `cb` called when QEMU exits.
    fn qemu_plugin_register_atexit_cb(id: PluginId, cb: UdataCb, udata: *mut c_void);
    /// Print a message on QEMU's log (stderr unless redirected).
    fn qemu_plugin_outs(msg: *const c_char);
}

/// What the plugin keeps between callbacks.
struct State {
    /// The output file's path (`out=`).
    out: String,
    /// The mark instruction's address (`mark=`), if any.
    mark: Option<u64>,
    /// One counter per instruction address. Each counter is boxed: the
    /// translated code holds its address, which must not move when the map
    /// grows; counters are never freed.
    counters: HashMap<u64, Box<AtomicU64>>,
    /// The addresses of string instructions with a `rep` prefix.
    rep: HashSet<u64>,
    /// How many marks have executed so far.
    marks: u32,
}

/// The plugin's state; `None` until `qemu_plugin_install` succeeds.
static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Locks the state, also after a panic elsewhere (the counters stay usable).
fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints `msg` through QEMU.
fn outs(msg: &str) {
    if let Ok(c) = CString::new(msg) {
        // SAFETY: `c` is a NUL-terminated string that outlives the call.
        unsafe { qemu_plugin_outs(c.as_ptr()) };
    }
}

impl State {
    /// Writes the non-zero counters to `path`, by address, and sets them back to 0 if `reset`.
    fn dump(&self, path: &str, reset: bool) -> io::Result<usize> {
        let mut rows: Vec<(u64, u64)> = self
            .counters
            .iter()
            .filter_map(|(&pc, c)| {
                let n = if reset {
                    c.swap(0, Ordering::Relaxed)
                } else {
                    c.load(Ordering::Relaxed)
                };
                (n != 0).then_some((pc, n))
            })
            .collect();
        rows.sort_unstable();
        let mut f = BufWriter::new(File::create(path)?);
        for (pc, n) in &rows {
            if self.rep.contains(pc) {
                writeln!(f, "{pc:x} {n} rep")?;
            } else {
                writeln!(f, "{pc:x} {n}")?;
            }
        }
        f.flush()?;
        Ok(rows.len())
    }
}

/// Gives each kernel instruction of a new block its counter, and the mark its callback.
extern "C" fn on_translate(_id: PluginId, tb: *mut Tb) {
    let mut guard = state();
    let Some(st) = guard.as_mut() else { return };
    // SAFETY: QEMU passes a block valid for the duration of this callback.
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    for i in 0..n {
        // SAFETY: `i` is below the block's instruction count.
        let insn = unsafe { qemu_plugin_tb_get_insn(tb, i) };
        // SAFETY: `insn` is an instruction of the block being translated.
        let pc = unsafe { qemu_plugin_insn_vaddr(insn) };
        if pc < KERNEL_BASE {
            continue;
        }
        // SAFETY: `insn` is an instruction of the block being translated;
        // QEMU keeps its `size` bytes at `data` during this callback.
        let bytes = unsafe {
            let data = qemu_plugin_insn_data(insn).cast::<u8>();
            let size = qemu_plugin_insn_size(insn);
            if data.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(data, size)
            }
        };
        if rep_string(bytes) {
            st.rep.insert(pc);
        }
        let counter = st.counters.entry(pc).or_default();
        let ptr = &**counter as *const AtomicU64 as *mut c_void;
        // SAFETY: the counter is a u64-sized atomic in a box that is never
        // freed or moved, so the translated code may add to it at any time.
        unsafe { qemu_plugin_register_vcpu_insn_exec_inline(insn, OP_INLINE_ADD_U64, ptr, 1) };
        if st.mark == Some(pc) {
            // SAFETY: as above; the callback takes no user data.
            unsafe {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    on_mark,
                    CB_NO_REGS,
                    std::ptr::null_mut(),
                )
            };
        }
    }
}

/// Closes a segment at the mark: writes `FILE.K` and resets the counters.
extern "C" fn on_mark(_vcpu: c_uint, _udata: *mut c_void) {
    let mut guard = state();
    let Some(st) = guard.as_mut() else { return };
    st.marks += 1;
    let path = format!("{}.{}", st.out, st.marks);
    if let Err(e) = st.dump(&path, true) {
        outs(&format!("insncount: cannot write {path}: {e}\n"));
    }
}

/// Writes the counts since the last mark to `FILE` at QEMU's exit.
extern "C" fn on_exit(_id: PluginId, _udata: *mut c_void) {
    let guard = state();
    let Some(st) = guard.as_ref() else { return };
    match st.dump(&st.out, false) {
        Ok(_) => outs(&format!(
            "insncount: {} kernel instruction addresses, {} marks, counts in {}[.K]\n",
            st.counters.len(),
            st.marks,
            st.out
        )),
        Err(e) => outs(&format!("insncount: cannot write {}: {e}\n", st.out)),
    }
}

/// Parses the plugin's `key=value` arguments into a fresh state.
fn parse_args(args: &[&str]) -> Result<State, String> {
    let mut out = None;
    let mut mark = None;
    for arg in args {
        match arg.split_once('=') {
            Some(("out", v)) if !v.is_empty() => out = Some(v.to_string()),
            Some(("mark", v)) => {
                let hex = v.trim_start_matches("0x");
                let pc = u64::from_str_radix(hex, 16)
                    .map_err(|_| format!("mark={v}: not a hex address"))?;
                mark = Some(pc);
            }
            _ => {
                return Err(format!(
                    "unknown argument {arg} (expected out=FILE, mark=ADDR)"
                ))
            }
        }
    }
    Ok(State {
        out: out.ok_or("out=FILE is required")?,
        mark,
        counters: HashMap::new(),
        rep: HashSet::new(),
        marks: 0,
    })
}

/// QEMU's entry point: reads the arguments and registers the callbacks; non-zero refuses the load.
///
/// # Safety
///
/// QEMU calls it once, with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let mut args = Vec::new();
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: QEMU passes `argc` NUL-terminated strings.
        let s = unsafe { CStr::from_ptr(*argv.add(i)) };
        match s.to_str() {
            Ok(s) => args.push(s),
            Err(_) => {
                eprintln!("insncount: argument {i} is not UTF-8");
                return -1;
            }
        }
    }
    let st = match parse_args(&args) {
        Ok(st) => st,
        Err(e) => {
            eprintln!("insncount: {e}");
            return -1;
        }
    };
    *state() = Some(st);
    // SAFETY: registering our own callbacks with the id QEMU gave us.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
        qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}
