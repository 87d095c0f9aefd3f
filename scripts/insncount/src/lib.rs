// SPDX-License-Identifier: GPL-2.0

//! `insncount`: a QEMU TCG plugin that counts each guest kernel instruction's executions.
//!
//! Loaded by `qemu-system-x86_64 -plugin file=libinsncount.so,out=FILE[,mark=ADDR]`
//! (scripts/bench-profile). Every instruction at a kernel address
//! (`>= 0xffffffff80000000`) gets a 64-bit counter when QEMU translates it,
//! and an inline add of 1 to that counter in the translated code, so that
//! counting costs no call per instruction. A counter belongs to its address,
//! not to a translation: a block translated again (or code loaded again at
//! the same address) adds to the same counter.
//!
//! A string instruction with a `rep` prefix (`rep movsb` and the like)
//! runs under TCG as one execution per element it moves, compares or
//! stores, each counted as an instruction (as `-icount` counts them too):
//! copying a 4 KB page byte by byte counts 4096. Such instructions are
//! marked in the output (below), so that a report can tell their
//! iterations from the rest of the kernel's work.
//!
//! Arguments:
//!
//! - `out=FILE`: where the counts go, one line per address executed,
//!   `ADDR COUNT` (hex address without `0x`, decimal count), by address;
//!   `ADDR COUNT rep` for a string instruction with a `rep` prefix, whose
//!   COUNT is its iterations ([`rep_string`]).
//! - `mark=ADDR` (hex): the address of an instruction that splits the run
//!   into segments. Each time it executes, the counts since the previous
//!   mark (or the start) are written to `FILE.K` (K = 1, 2, ... in order)
//!   and every counter is set back to 0. bench-profile marks the entry of
//!   the kernel's `sync(2)` handler, so that a guest script delimits what it
//!   measures by calling `sync`.
//!
//! At QEMU's exit the counts since the last mark go to `FILE` itself.
//!
//! The counts are exact under single-threaded TCG (`-accel tcg,thread=single`,
//! as with `-icount`): the inline add is not atomic, so with several vCPU
//! threads two of them can lose an increment between them.
//!
//! The plugin is written against QEMU's plugin API version 1 (QEMU 7.2); the
//! few functions it calls are declared in `plugin.rs` from their documented
//! behaviour.

#[cfg(not(test))]
mod plugin;

/// Whether `insn`, the bytes of one x86-64 instruction, is a string
/// instruction (`movs`, `cmps`, `stos`, `lods`, `scas`, `ins`, `outs`) with
/// a `rep`, `repe` or `repne` prefix: one that TCG runs, and counts, once
/// per element.
pub fn rep_string(insn: &[u8]) -> bool {
    let mut rep = false;
    for &b in insn {
        match b {
            0xf2 | 0xf3 => rep = true,
            // lock, segment overrides, operand and address size, REX.
            0xf0 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 | 0x67 | 0x40..=0x4f => {}
            0x6c..=0x6f | 0xa4..=0xa7 | 0xaa..=0xaf => return rep,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::rep_string;

    #[test]
    fn rep_string_instructions() {
        // rep movsb, rep stosq (REX.W), repe cmpsb, repne scasb, rep movsl
        // with an operand size and a segment prefix, rep insb.
        for insn in [
            &[0xf3, 0xa4][..],
            &[0xf3, 0x48, 0xab],
            &[0xf3, 0xa6],
            &[0xf2, 0xae],
            &[0x66, 0xf3, 0x2e, 0xa5],
            &[0xf3, 0x6c],
        ] {
            assert!(rep_string(insn), "{insn:x?}");
        }
    }

    #[test]
    fn other_instructions() {
        // movsb without rep; pause (f3 90); rep ret (f3 c3); popcnt
        // (f3 0f b8 ..); a mov whose ModRM byte is a4; lock cmpxchg; none.
        for insn in [
            &[0xa4][..],
            &[0xf3, 0x90],
            &[0xf3, 0xc3],
            &[0xf3, 0x48, 0x0f, 0xb8, 0xc0],
            &[0x48, 0x89, 0xa4, 0x24, 0x00, 0x01, 0x00, 0x00],
            &[0xf0, 0x48, 0x0f, 0xb1, 0x17],
            &[],
        ] {
            assert!(!rep_string(insn), "{insn:x?}");
        }
    }
}
