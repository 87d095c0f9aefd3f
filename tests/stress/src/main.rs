// SPDX-License-Identifier: GPL-2.0

//! `mace-stress`: the fault-injection tool of the VM stress suite
//! (`tests/vm/40-stress.sh`).
//!
//! ```text
//! mace-stress sysfs N SEED        N random and boundary writes to every file
//!                                 of /sys/class/mace, each checked against
//!                                 the module's own parsers (the oracle)
//! mace-stress reads LINES SEED    /dev/mace read torture: lseek, pread,
//!                                 0-byte reads, writes, reads into unmapped
//!                                 memory, reads of random sizes; exactly
//!                                 LINES well-formed lines must come out
//! mace-stress netns N PAR         N network namespaces, PAR at a time, each
//!                                 created, switched on, pinged (loopback),
//!                                 read and destroyed, some while on and
//!                                 with /dev/mace open
//! mace-stress churn KO CYCLES NS... CYCLES loads of KO (outer_dev=eth0),
//!                                 each switching capture on in the named
//!                                 namespaces (/run/netns/NS; half of them
//!                                 off again) and unloading, retrying while
//!                                 a reader holds /dev/mace open
//! mace-stress packets V4 V6 N     N rounds of malformed, truncated and
//!                                 fragmented IPv4 and IPv6 packets (with
//!                                 extension headers) sent to V4 and V6
//!                                 through raw sockets
//! ```
//!
//! Each prints one summary line on success; on the first violated
//! expectation it prints `mace-stress: MISMATCH ...` and exits with 1. A
//! usage error (arguments are parsed by clap) exits with 1 as well.
//!
//! The tool calls libc itself, on raw descriptors: its checks are of what
//! the kernel answers to calls safe wrappers would not make (reads into
//! unmapped memory, lseek and pread on `/dev/mace`, malformed packets).

use clap::Parser;
use mace_core::parse::{parse_dev_list, parse_switch, MAX_WRITE};
use mace_core::record_parse::parse_line;
use std::ffi::CString;
use std::io;
use std::mem::size_of_val;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

const ON: &str = "/sys/class/mace/on";
const OUTER: &str = "/sys/class/mace/outer_devs";
const STATS: &str = "/sys/class/mace/stats";
const DEV: &str = "/dev/mace";
/// sysfs hands a store at most one page.
const PAGE: usize = 4096;

/// A violated expectation.
struct Mismatch(String);

type Res<T> = Result<T, Mismatch>;

fn mismatch<T>(msg: String) -> Res<T> {
    Err(Mismatch(msg))
}

/// A small deterministic PRNG (xorshift64*), so that a failure repeats
/// with the same seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errname(e: i32) -> String {
    match e {
        libc::EINVAL => "EINVAL".into(),
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::ESPIPE => "ESPIPE".into(),
        libc::EBADF => "EBADF".into(),
        _ => format!("errno {e}"),
    }
}

fn open(path: &str, flags: i32) -> io::Result<i32> {
    let c = CString::new(path).expect("path without NUL");
    // SAFETY: `c` is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

fn close(fd: i32) {
    // SAFETY: `fd` is a descriptor this program opened and no longer uses.
    unsafe { libc::close(fd) };
}

/// Writes `data` to `path` in one write(2) on a fresh descriptor.
fn write_once(path: &str, data: &[u8]) -> Result<usize, i32> {
    let fd = open(path, libc::O_WRONLY).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    // SAFETY: `data` is valid for its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let e = errno();
    close(fd);
    if n < 0 {
        Err(e)
    } else {
        Ok(n as usize)
    }
}

fn read_text(path: &str) -> Res<String> {
    std::fs::read_to_string(path).or_else(|e| mismatch(format!("reading {path}: {e}")))
}

/// Pieces that the parsers treat specially.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"1",
    b"\n",
    b" ",
    b",",
    b"\t",
    b"eth0",
    b"lo",
    b"br0",
    b"-1",
    b"+1",
    b"0x1",
    b"4294967295",
    b"4294967296",
    b"00",
    b"007",
    b"on",
    b"\0",
    b"\xc3\xa9",
    b"/",
    b":",
    b"0123456789abcdef",
    b"0123456789abcdefg",
];

/// One fuzz input: random bytes, token soup, valid values, or boundaries.
fn fuzz_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => {
            let n = rng.below(16);
            rng.bytes(n)
        }
        1 => {
            let n = rng.below(300);
            rng.bytes(n)
        }
        2 | 3 => {
            let mut v = Vec::new();
            for _ in 0..1 + rng.below(8) {
                v.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
            v
        }
        4 => [&b"0"[..], b"1", b"0\n", b"1\n", b"1\n\n", b" 1", b"1 "][rng.below(7)].to_vec(),
        5 => {
            // A plausible device list of 0..=10 names and indexes.
            let mut v = Vec::new();
            for i in 0..rng.below(11) {
                if i > 0 {
                    v.push(b',');
                }
                if rng.below(2) == 0 {
                    v.extend_from_slice(format!("{}", rng.below(100)).as_bytes());
                } else {
                    v.extend_from_slice(format!("eth{}", rng.below(20)).as_bytes());
                }
            }
            if rng.below(2) == 0 {
                v.push(b'\n');
            }
            v
        }
        6 => vec![b'a'; 14 + rng.below(4)],
        7 => {
            vec![b'1'; [MAX_WRITE, MAX_WRITE + 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE][rng.below(6)]]
        }
        _ => Vec::new(),
    }
}

/// What a write of `input` must do: `Ok(Some(v))` accepted with new state
/// `v`, `Ok(None)` accepted without a state change (a 0-byte write), or
/// `Err` with the errnos allowed.
type Expect = Result<Option<String>, &'static [i32]>;

fn expect_on(input: &[u8]) -> Expect {
    match parse_switch(input) {
        Ok(v) => Ok(Some(format!("{}\n", u8::from(v)))),
        Err(_) => Err(&[libc::EINVAL]),
    }
}

fn expect_outer(input: &[u8]) -> Expect {
    match parse_dev_list(input) {
        Ok(list) => Ok(Some(format!("{list}\n"))),
        Err(_) => Err(&[libc::EINVAL]),
    }
}

/// Outside the initial namespace a valid device list is refused.
fn expect_outer_elsewhere(input: &[u8]) -> Expect {
    match parse_dev_list(input) {
        Ok(_) => Err(&[libc::EPERM]),
        Err(_) => Err(&[libc::EINVAL]),
    }
}

fn expect_stats(_: &[u8]) -> Expect {
    // Root may open it for writing (EPERM from mace) or not (EACCES).
    Err(&[libc::EPERM, libc::EACCES])
}

/// Whether this process is in the initial network namespace.
fn in_init_net() -> Res<bool> {
    let ns = |p: &str| std::fs::read_link(p).or_else(|e| mismatch(format!("readlink {p}: {e}")));
    Ok(ns("/proc/self/ns/net")? == ns("/proc/1/ns/net")?)
}

/// `N` oracle-checked writes spread over the sysfs files; puts the
/// original values back whatever happens.
fn sysfs(n: usize, seed: u64) -> Res<String> {
    let orig_on = read_text(ON)?;
    let orig_outer = read_text(OUTER)?;
    let result = sysfs_writes(n, seed);
    for (path, orig) in [(ON, &orig_on), (OUTER, &orig_outer)] {
        if read_text(path)? != *orig {
            if let Err(e) = write_once(path, orig.as_bytes()) {
                return mismatch(format!("restoring {path} to {orig:?}: {}", errname(e)));
            }
        }
    }
    result
}

fn sysfs_writes(n: usize, seed: u64) -> Res<String> {
    let mut rng = Rng::new(seed);
    let outer_oracle: fn(&[u8]) -> Expect = if in_init_net()? {
        expect_outer
    } else {
        expect_outer_elsewhere
    };
    let mut accepted = 0usize;
    let mut rejected = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..n {
        let mut input = fuzz_input(&mut rng);
        let (path, oracle): (&str, fn(&[u8]) -> Expect) = match rng.below(5) {
            0 | 1 => (ON, expect_on),
            2 | 3 => (OUTER, outer_oracle),
            _ => (STATS, expect_stats),
        };
        if path == STATS && input.is_empty() {
            input.push(b'1');
        }
        let before = read_text(path)?;
        let want = if path == STATS {
            expect_stats(&input)
        } else if input.is_empty() {
            // sysfs does not call the store for 0 bytes.
            Ok(None)
        } else if input.len() > MAX_WRITE {
            // mace refuses anything longer (sysfs cuts a longer write to a
            // page first, still too long).
            Err(&[libc::E2BIG][..])
        } else {
            oracle(&input)
        };
        let got = write_once(path, &input);
        let after = read_text(path)?;
        let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
        match (&want, got) {
            (Ok(state), Ok(written)) => {
                if written != input.len() {
                    return mismatch(format!(
                        "write {i} of {:?} to {path}: {written} of {} bytes written",
                        shown,
                        input.len()
                    ));
                }
                let want_state = state.clone().unwrap_or_else(|| before.clone());
                if after != want_state {
                    return mismatch(format!(
                        "write {i} of {shown:?} to {path}: reads back {after:?}, want {want_state:?}"
                    ));
                }
                accepted += 1;
            }
            (Err(allowed), Err(e)) if allowed.contains(&e) => {
                if after != before {
                    return mismatch(format!(
                        "write {i} of {shown:?} to {path} failed with {} but changed {before:?} to {after:?}",
                        errname(e)
                    ));
                }
                *rejected.entry(errname(e)).or_default() += 1;
            }
            (want, got) => {
                return mismatch(format!(
                    "write {i} of {shown:?} ({} bytes) to {path}: got {}, want {}",
                    input.len(),
                    got.map_or_else(errname, |n| format!("{n} bytes written")),
                    match want {
                        Ok(_) => "success".into(),
                        Err(a) => a
                            .iter()
                            .map(|&e| errname(e))
                            .collect::<Vec<_>>()
                            .join(" or "),
                    }
                ));
            }
        }
    }
    let rej: Vec<String> = rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Ok(format!(
        "sysfs: {n} writes, {accepted} accepted, {} rejected ({}), state always as the parsers say",
        n - accepted,
        rej.join(", ")
    ))
}

fn read_raw(fd: i32, buf: *mut u8, len: usize) -> Result<usize, i32> {
    // SAFETY: read(2) checks the user buffer itself; bad addresses give
    // EFAULT, which is what some callers test.
    let n = unsafe { libc::read(fd, buf.cast(), len) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// The /dev/mace read torture; `lines` lines must be queued.
fn reads(lines: usize, seed: u64) -> Res<String> {
    let mut rng = Rng::new(seed);
    let fd = open(DEV, libc::O_RDONLY).or_else(|e| mismatch(format!("open {DEV}: {e}")))?;
    let checks = std::cell::Cell::new(0usize);
    let expect_errno = |what: &str, r: Result<usize, i32>, want: &[i32]| -> Res<()> {
        checks.set(checks.get() + 1);
        match r {
            Err(e) if want.contains(&e) => Ok(()),
            r => mismatch(format!(
                "{what}: got {}, want {}",
                r.map_or_else(errname, |n| format!("{n} bytes")),
                want.iter()
                    .map(|&e| errname(e))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    };
    // SAFETY: lseek on our descriptor.
    let off = unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    expect_errno(
        "lseek",
        if off < 0 {
            Err(errno())
        } else {
            Ok(off as usize)
        },
        &[libc::ESPIPE],
    )?;
    let mut one = [0u8; 16];
    // SAFETY: `one` is writable for its length.
    let n = unsafe { libc::pread(fd, one.as_mut_ptr().cast(), one.len(), 0) };
    expect_errno(
        "pread",
        if n < 0 { Err(errno()) } else { Ok(n as usize) },
        &[libc::ESPIPE],
    )?;
    // SAFETY: `one` is readable for its length.
    let n = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    expect_errno(
        "write to a read-only descriptor",
        if n < 0 { Err(errno()) } else { Ok(n as usize) },
        &[libc::EBADF],
    )?;
    if let Ok(wfd) = open(DEV, libc::O_WRONLY) {
        // SAFETY: as above.
        let n = unsafe { libc::write(wfd, one.as_ptr().cast(), one.len()) };
        let e = errno();
        close(wfd);
        expect_errno(
            "write to /dev/mace",
            if n < 0 { Err(e) } else { Ok(n as usize) },
            &[libc::EINVAL, libc::EPERM, libc::EACCES],
        )?;
    }
    match read_raw(fd, one.as_mut_ptr(), 0) {
        Ok(0) => checks.set(checks.get() + 1),
        r => return mismatch(format!("0-byte read: got {r:?}, want 0")),
    }
    // A buffer that is not mapped, and one whose end is not.
    // SAFETY: An anonymous private mapping of two pages.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return mismatch(format!("mmap: {}", io::Error::last_os_error()));
    }
    // SAFETY: Unmaps the second page of our own mapping.
    unsafe { libc::munmap(map.cast::<u8>().add(PAGE).cast(), PAGE) };
    // SAFETY: Computes an address inside the (now unmapped) second page.
    let unmapped = unsafe { map.cast::<u8>().add(PAGE) };
    expect_errno(
        "read into unmapped memory",
        read_raw(fd, unmapped, 100),
        &[libc::EFAULT],
    )?;
    let mut text = Vec::new();
    // SAFETY: 10 bytes before the end of the mapped first page.
    let edge = unsafe { map.cast::<u8>().add(PAGE - 10) };
    match read_raw(fd, edge, 100) {
        // The copy may stop at the page end; what was counted is ours.
        Ok(n) if n <= 10 => {
            // SAFETY: `n` bytes at `edge` are mapped and were written.
            text.extend_from_slice(unsafe { std::slice::from_raw_parts(edge, n) });
            checks.set(checks.get() + 1);
        }
        Err(libc::EFAULT) => checks.set(checks.get() + 1),
        r => return mismatch(format!("read across the end of a mapping: {r:?}")),
    }
    // SAFETY: Unmaps the first page of our own mapping.
    unsafe { libc::munmap(map, PAGE) };
    // Reads of random sizes until end of file.
    let mut buf = vec![0u8; 8192];
    let mut nreads = 0;
    loop {
        let size = match rng.below(10) {
            0 => 1,
            1 => 4096,
            _ => 1 + rng.below(200),
        };
        let n = read_raw(fd, buf.as_mut_ptr(), size)
            .or_else(|e| mismatch(format!("read of {size}: {}", errname(e))))?;
        nreads += 1;
        if n == 0 {
            break;
        }
        if n > size {
            return mismatch(format!("read of {size} returned {n}"));
        }
        text.extend_from_slice(&buf[..n]);
    }
    match read_raw(fd, buf.as_mut_ptr(), 100) {
        Ok(0) => {}
        r => return mismatch(format!("read after end of file: {r:?}, want 0")),
    }
    close(fd);
    let text = String::from_utf8(text).or_else(|_| mismatch("lines are not UTF-8".into()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return mismatch(format!("the text ends in the middle of a line: {text:?}"));
    }
    let got: Vec<&str> = text.split_terminator('\n').collect();
    if let Some(bad) = got.iter().find(|l| parse_line(l).is_none()) {
        return mismatch(format!("malformed line {bad:?}"));
    }
    if got.len() != lines {
        return mismatch(format!("{} lines read, {lines} were queued", got.len()));
    }
    Ok(format!(
        "reads: {lines} well-formed lines in {nreads} reads of random sizes; {} error-path checks as expected",
        checks.get()
    ))
}

/// Internet checksum.
fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (the kernel fills in source, length, id and checksum).
fn ipv4(proto: u8, ihl: u8, frag: u16, dst: Ipv4Addr, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x40 | ihl, 0, 0, 0, 0, 0];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&dst.octets());
    // Options (NOPs) up to ihl words, then the rest.
    p.resize(usize::from(ihl) * 4, 1);
    p.extend_from_slice(rest);
    p
}

fn echo4(seq: u16, payload: usize) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.resize(8 + payload, 0xa5);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The malformed IPv4 packets of one round.
fn bad_v4(dst: Ipv4Addr, seq: u16) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("ip header only", ipv4(1, 5, 0, dst, &[])),
        ("truncated icmp", ipv4(1, 5, 0, dst, &echo4(seq, 0)[..4])),
        ("icmp without payload", ipv4(1, 5, 0, dst, &echo4(seq, 0))),
        ("ip options", ipv4(1, 7, 0, dst, &echo4(seq, 16))),
        ("max ip options", ipv4(1, 15, 0, dst, &echo4(seq, 4))),
        ("first fragment", ipv4(1, 5, 0x2000, dst, &echo4(seq, 64))),
        ("later fragment", ipv4(1, 5, 13, dst, &[0xee; 40])),
        ("truncated udp", ipv4(17, 5, 0, dst, &[0x30, 0x39, 0x30])),
        (
            "udp length lies",
            ipv4(
                17,
                5,
                0,
                dst,
                &[0x30, 0x39, 0x30, 0x39, 0xff, 0xff, 0, 0, 1, 2],
            ),
        ),
        (
            "truncated tcp",
            ipv4(6, 5, 0, dst, &[0x30, 0x39, 0, 80, 0, 0, 0, 1]),
        ),
        (
            "tcp doff 15",
            ipv4(6, 5, 0, dst, &{
                let mut t = vec![0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x02];
                t.resize(20, 0);
                t
            }),
        ),
        (
            "tcp doff 2",
            ipv4(6, 5, 0, dst, &{
                let mut t = vec![0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0x02];
                t.resize(20, 0);
                t
            }),
        ),
        ("unknown protocol", ipv4(253, 5, 0, dst, &[0; 10])),
    ]
}

/// An IPv6 packet: header, then `rest` (extension headers and payload).
fn ipv6(next: u8, dst: Ipv6Addr, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(rest);
    p
}

fn echo6(seq: u16) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.resize(24, 0x5a);
    m
}

/// An extension header of 8 bytes (`next`, length 0, padding).
fn ext(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

/// The malformed IPv6 packets of one round.
fn bad_v6(dst: Ipv6Addr, seq: u16) -> Vec<(&'static str, Vec<u8>)> {
    let chain = [ext(60), ext(58), echo6(seq)].concat();
    let mut long_chain = Vec::new();
    for _ in 0..12 {
        long_chain.extend_from_slice(&ext(60));
    }
    long_chain.extend_from_slice(&ext(58));
    long_chain.extend_from_slice(&echo6(seq));
    let frag = [vec![58, 0, 0, 1, 0, 0, 0, 7], echo6(seq)].concat();
    vec![
        ("hop-by-hop and destination options", ipv6(0, dst, &chain)),
        ("14 extension headers", ipv6(60, dst, &long_chain)),
        ("truncated extension header", ipv6(0, dst, &[60, 10, 1, 0])),
        (
            "extension length past the end",
            ipv6(0, dst, &[58, 200, 1, 4, 0, 0, 0, 0]),
        ),
        ("first fragment", ipv6(44, dst, &frag)),
        ("truncated icmpv6", ipv6(58, dst, &echo6(seq)[..3])),
        ("no next header", ipv6(59, dst, &[])),
    ]
}

fn raw_socket(af: i32) -> Res<i32> {
    // SAFETY: Plain socket(2) call.
    let fd = unsafe { libc::socket(af, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return mismatch(format!("raw socket: {}", io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Sends `pkt` on raw socket `fd` to the address in `sa`; false if refused.
fn send_raw(fd: i32, pkt: &[u8], sa: *const libc::sockaddr, len: usize) -> bool {
    // SAFETY: `pkt` and `sa` are valid for their lengths.
    let n = unsafe { libc::sendto(fd, pkt.as_ptr().cast(), pkt.len(), 0, sa, len as u32) };
    n >= 0
}

/// `rounds` rounds of every malformed packet, IPv4 and IPv6.
fn packets(v4: Ipv4Addr, v6: Ipv6Addr, rounds: u16) -> Res<String> {
    let (fd4, fd6) = (raw_socket(libc::AF_INET)?, raw_socket(libc::AF_INET6)?);
    // SAFETY: All-zero socket addresses are valid; the fields are set below.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
    // SAFETY: As above.
    let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_addr.s6_addr = v6.octets();
    let (mut sent, mut refused) = (0usize, 0usize);
    let mut kinds = 0;
    for seq in 1..=rounds {
        let p4 = bad_v4(v4, seq);
        let p6 = bad_v6(v6, seq);
        kinds = p4.len() + p6.len();
        let sends = p4
            .iter()
            .map(|(_, p)| {
                (
                    fd4,
                    p,
                    (&sin as *const libc::sockaddr_in).cast(),
                    size_of_val(&sin),
                )
            })
            .chain(p6.iter().map(|(_, p)| {
                let sa = (&sin6 as *const libc::sockaddr_in6).cast();
                (fd6, p, sa, size_of_val(&sin6))
            }));
        for (fd, p, sa, len) in sends {
            if send_raw(fd, p, sa, len) {
                sent += 1;
            } else {
                refused += 1;
            }
        }
    }
    close(fd4);
    close(fd6);
    Ok(format!(
        "packets: {rounds} rounds of {kinds} malformed kinds: {sent} sent, {refused} refused by the kernel"
    ))
}

/// The life of one namespace, in a forked child; returns what went wrong.
fn netns_child(i: usize) -> Result<(), String> {
    let fail = |what: &str| format!("namespace {i}: {what}: {}", io::Error::last_os_error());
    // SAFETY: unshare(2) of the network namespace for this process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(fail("unshare"));
    }
    // Bring lo up.
    // SAFETY: Plain socket(2) call.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: An all-zero ifreq is valid; name and flags are set below.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &c) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *d = c as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as i16;
    // SAFETY: SIOCSIFFLAGS with a valid ifreq.
    if s < 0 || unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) } != 0 {
        return Err(fail("bringing lo up"));
    }
    close(s);
    write_once(ON, b"1\n").map_err(|e| format!("namespace {i}: switching on: {}", errname(e)))?;
    let dev = open(DEV, libc::O_RDONLY).map_err(|e| format!("namespace {i}: open {DEV}: {e}"))?;
    // SAFETY: Plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(fail("raw socket"));
    }
    // SAFETY: An all-zero sockaddr_in is valid; the fields are set below.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO with a valid timeval.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of_val(&tv) as u32,
        )
    };
    let mut buf = [0u8; 256];
    for seq in 1..=3u16 {
        if !send_raw(
            fd,
            &echo4(seq, 16),
            (&sin as *const libc::sockaddr_in).cast(),
            size_of_val(&sin),
        ) {
            return Err(fail("sendto"));
        }
        // Our request and the reply both come back on a raw socket.
        for _ in 0..2 {
            if read_raw(fd, buf.as_mut_ptr(), buf.len()).is_err() {
                return Err(fail("recv"));
            }
        }
    }
    // Loopback is no outer device: nothing may be reported.
    match read_raw(dev, buf.as_mut_ptr(), buf.len()) {
        Ok(0) => {}
        r => {
            return Err(format!(
                "namespace {i}: /dev/mace gave {r:?} for loopback traffic"
            ))
        }
    }
    // Some namespaces go away while on, some with /dev/mace still open.
    if i % 3 == 0 {
        write_once(ON, b"0")
            .map_err(|e| format!("namespace {i}: switching off: {}", errname(e)))?;
    }
    if i % 2 == 0 {
        close(dev);
    }
    Ok(())
}

/// `n` namespaces through their whole life, `par` at a time.
fn netns(n: usize, par: usize) -> Res<String> {
    let mut running = 0;
    let mut failed = 0;
    let wait_one = |failed: &mut usize| {
        let mut status = 0;
        // SAFETY: Waits for any child of ours.
        unsafe { libc::wait(&mut status) };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            *failed += 1;
        }
    };
    for i in 0..n {
        if running == par.max(1) {
            wait_one(&mut failed);
            running -= 1;
        }
        // SAFETY: The child only runs `netns_child` and exits.
        match unsafe { libc::fork() } {
            -1 => return mismatch(format!("fork: {}", io::Error::last_os_error())),
            0 => {
                let code = match netns_child(i) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("mace-stress: MISMATCH {e}");
                        1
                    }
                };
                // SAFETY: Ends the child without running the parent's
                // destructors twice.
                unsafe { libc::_exit(code) };
            }
            _ => running += 1,
        }
    }
    while running > 0 {
        wait_one(&mut failed);
        running -= 1;
    }
    if failed > 0 {
        return mismatch(format!("{failed} of {n} namespaces failed (see above)"));
    }
    Ok(format!(
        "netns: {n} namespaces created, switched on, pinged, read and destroyed, {par} at a time"
    ))
}

/// Opens a network namespace file and returns the descriptor.
fn ns_fd(path: &str) -> Res<i32> {
    open(path, libc::O_RDONLY).or_else(|e| mismatch(format!("open {path}: {e}")))
}

/// Runs `f` inside the network namespace `fd`, then returns to `home`.
fn in_ns<T>(fd: i32, home: i32, f: impl FnOnce() -> T) -> Res<T> {
    // SAFETY: setns(2) with namespace descriptors this program opened.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return mismatch(format!("setns: {}", io::Error::last_os_error()));
    }
    let r = f();
    // SAFETY: As above.
    if unsafe { libc::setns(home, libc::CLONE_NEWNET) } != 0 {
        return mismatch(format!("setns back: {}", io::Error::last_os_error()));
    }
    Ok(r)
}

/// Load / switch on / unload cycles of the module at `ko`.
fn churn(ko: &str, cycles: usize, names: &[String]) -> Res<String> {
    let home = ns_fd("/proc/self/ns/net")?;
    let nss: Vec<i32> = names
        .iter()
        .map(|n| ns_fd(&format!("/run/netns/{n}")))
        .collect::<Res<_>>()?;
    let params = CString::new("outer_dev=eth0").expect("no NUL");
    let name = CString::new("mace").expect("no NUL");
    let (mut busy, mut enabled) = (0usize, 0usize);
    for cycle in 0..cycles {
        let fd = open(ko, libc::O_RDONLY).or_else(|e| mismatch(format!("open {ko}: {e}")))?;
        // SAFETY: finit_module(2) with an open module file and a C string.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, fd, params.as_ptr(), 0) };
        let e = errno();
        close(fd);
        if r != 0 {
            return mismatch(format!("cycle {cycle}: load: {}", errname(e)));
        }
        for (k, &ns) in nss.iter().enumerate() {
            // Rotate which namespaces capture, and which stop again.
            if (cycle + k) % 4 == 3 {
                continue;
            }
            let w = in_ns(ns, home, || write_once(ON, b"1"))?;
            w.or_else(|e| mismatch(format!("cycle {cycle}: on in {}: {}", names[k], errname(e))))?;
            enabled += 1;
            if (cycle + k) % 2 == 0 {
                let w = in_ns(ns, home, || write_once(ON, b"0"))?;
                w.or_else(|e| {
                    mismatch(format!(
                        "cycle {cycle}: off in {}: {}",
                        names[k],
                        errname(e)
                    ))
                })?;
            }
        }
        // Let the traffic meet the probes for a moment on odd cycles.
        if cycle % 2 == 1 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // A reader may hold /dev/mace open: the module is busy then.
        let mut tries = 0;
        loop {
            // SAFETY: delete_module(2) with a C string.
            let r =
                unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
            if r == 0 {
                break;
            }
            let e = errno();
            tries += 1;
            if !(e == libc::EBUSY || e == libc::EAGAIN) || tries > 1000 {
                return mismatch(format!(
                    "cycle {cycle}: unload: {} after {tries} tries",
                    errname(e)
                ));
            }
            busy += 1;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if std::path::Path::new("/sys/module/mace").exists() {
            return mismatch(format!(
                "cycle {cycle}: /sys/module/mace remains after unload"
            ));
        }
    }
    for fd in nss {
        close(fd);
    }
    close(home);
    Ok(format!(
        "churn: {cycles} load/unload cycles, {enabled} switch-ons, {busy} unload attempts found the module busy"
    ))
}

/// The fault-injection tool of mace's stress suite.
#[derive(Debug, PartialEq, Parser)]
#[command(name = "mace-stress")]
enum Cli {
    /// Random and boundary writes to every file of /sys/class/mace, each
    /// checked against the module's own parsers.
    Sysfs {
        /// Writes.
        #[arg(value_name = "N")]
        n: usize,
        /// Seed of the random writes.
        #[arg(value_name = "SEED")]
        seed: u64,
    },
    /// /dev/mace read torture; exactly LINES well-formed lines must come out.
    Reads {
        /// Lines queued.
        #[arg(value_name = "LINES")]
        lines: usize,
        /// Seed of the random read sizes.
        #[arg(value_name = "SEED")]
        seed: u64,
    },
    /// Network namespaces through their whole life, PAR at a time.
    Netns {
        /// Namespaces.
        #[arg(value_name = "N")]
        n: usize,
        /// Namespaces at a time.
        #[arg(value_name = "PAR")]
        par: usize,
    },
    /// Loads and unloads of KO, switching capture on in the namespaces NS.
    Churn {
        /// The module file.
        #[arg(value_name = "KO")]
        ko: String,
        /// Load/unload cycles.
        #[arg(value_name = "CYCLES")]
        cycles: usize,
        /// Names of namespaces in /run/netns.
        #[arg(value_name = "NS")]
        names: Vec<String>,
    },
    /// Malformed, truncated and fragmented IPv4 and IPv6 packets to V4 and
    /// V6 through raw sockets.
    Packets {
        /// IPv4 destination.
        #[arg(value_name = "V4")]
        v4: Ipv4Addr,
        /// IPv6 destination.
        #[arg(value_name = "V6")]
        v6: Ipv6Addr,
        /// Rounds.
        #[arg(value_name = "ROUNDS")]
        rounds: u16,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help goes to stdout and exits 0; usage errors exit 1, as
            // every failure of this tool.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let r = match cli {
        Cli::Sysfs { n, seed } => sysfs(n, seed),
        Cli::Reads { lines, seed } => reads(lines, seed),
        Cli::Netns { n, par } => netns(n, par),
        Cli::Churn { ko, cycles, names } => churn(&ko, cycles, &names),
        Cli::Packets { v4, v6, rounds } => packets(v4, v6, rounds),
    };
    match r {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(Mismatch(m)) => {
            eprintln!("mace-stress: MISMATCH {m}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mace-stress").chain(args.iter().copied()))
    }

    #[test]
    fn arguments() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert_eq!(
            cli(&["sysfs", "200", "42"]).unwrap(),
            Cli::Sysfs { n: 200, seed: 42 }
        );
        assert_eq!(
            cli(&["churn", "/lib/mace/mace.ko", "3", "c1", "c2"]).unwrap(),
            Cli::Churn {
                ko: "/lib/mace/mace.ko".into(),
                cycles: 3,
                names: vec!["c1".into(), "c2".into()]
            }
        );
        assert_eq!(
            cli(&["packets", "198.18.0.2", "2001:db8::2", "5"]).unwrap(),
            Cli::Packets {
                v4: Ipv4Addr::new(198, 18, 0, 2),
                v6: "2001:db8::2".parse().unwrap(),
                rounds: 5
            }
        );
        for bad in [
            &[][..],
            &["sysfs", "200"],
            &["reads", "x", "7"],
            &["netns", "3", "-1"],
            &["packets", "2001:db8::2", "198.18.0.2", "5"],
            &["fuzz", "1", "2"],
        ] {
            assert!(cli(bad).unwrap_err().use_stderr(), "{bad:?}");
        }
    }

    #[test]
    fn oracle_matches_parsers() {
        assert_eq!(expect_on(b"1\n"), Ok(Some("1\n".into())));
        assert_eq!(expect_on(b"2"), Err(&[libc::EINVAL][..]));
        assert_eq!(expect_outer(b"eth0,3\n"), Ok(Some("eth0,3\n".into())));
        assert!(expect_outer(b"eth0,eth0").is_err());
    }

    #[test]
    fn checksum_and_packets() {
        // A valid echo request checksums to zero.
        assert_eq!(csum(&echo4(1, 8)), 0);
        let dst = Ipv4Addr::new(198, 18, 0, 2);
        for (name, p) in bad_v4(dst, 1) {
            assert_eq!(p[0] >> 4, 4, "{name}");
            assert!(usize::from(p[0] & 15) * 4 <= p.len(), "{name}");
            assert_eq!(&p[16..20], &dst.octets(), "{name}");
        }
        let dst6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        for (name, p) in bad_v6(dst6, 1) {
            assert_eq!(
                usize::from(u16::from_be_bytes([p[4], p[5]])),
                p.len() - 40,
                "{name}"
            );
        }
        let mut r = Rng::new(1);
        let a: Vec<u64> = (0..4).map(|_| r.next()).collect();
        let mut r = Rng::new(1);
        assert_eq!(a, (0..4).map(|_| r.next()).collect::<Vec<_>>());
    }
}
