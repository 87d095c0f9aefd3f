// SPDX-License-Identifier: GPL-2.0

//! `mace-ping`: ping from inside a container, corrected for the latency the
//! container host adds, as measured by the mace kernel module.
//!
//! It stamps CLOCK_MONOTONIC right before each `sendto` and right after the
//! `recvfrom` that returns the reply, so that its RTT spans exactly mace's
//! two windows (send syscall entry to outer NIC, outer NIC to receive syscall
//! return) plus what lies beyond the outer NIC. See `--help` and
//! Documentation/mace.rst.

use mace_core::record::Direction;
use mace_ping::{
    echo_reply, echo_request, packet_json, packet_line, parse_args, strip_ipv4, Joiner, Options,
    PingResult, SockKind, Summary, USAGE,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ON: &str = "/sys/class/mace/on";
const DEV: &str = "/dev/mace";
/// Slack around a ping's time window when joining lines (clock conversion).
const SLACK_US: u64 = 2_000;

/// A fatal error: exit status and message.
struct Fatal(u8, String);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn clock(id: libc::clockid_t) -> u64 {
    // SAFETY: `ts` is a valid timespec to fill.
    let mut ts: libc::timespec = unsafe { zeroed() };
    // SAFETY: As above; the clock ids used are always available.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn mono_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

fn wall_us() -> u64 {
    clock(libc::CLOCK_REALTIME) / 1_000
}

/// Makes sure capture is on in this namespace; returns whether we switched
/// it on.
fn ensure_capture() -> Result<bool, Fatal> {
    if std::fs::metadata(DEV).is_err() {
        return Err(Fatal(
            3,
            format!("mace is not loaded: {DEV} does not exist (in a container: --device {DEV})"),
        ));
    }
    let state = std::fs::read_to_string(ON).map_err(|e| {
        Fatal(
            3,
            format!("cannot read {ON}: {e} (in a container: -v /sys/class/mace:/sys/class/mace)"),
        )
    })?;
    if state.trim() == "1" {
        return Ok(false);
    }
    set_capture(true).map_err(|e| {
        Fatal(
            4,
            format!(
                "capture is off in this network namespace and switching it on was refused ({e}): \
                 it needs CAP_NET_ADMIN (docker run --cap-add NET_ADMIN)"
            ),
        )
    })?;
    Ok(true)
}

fn set_capture(on: bool) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(ON)?
        .write_all(if on { b"1\n" } else { b"0\n" })
}

fn open_dev() -> Result<File, Fatal> {
    File::open(DEV).map_err(|e| {
        Fatal(
            4,
            format!(
                "cannot open {DEV}: {e} (reading needs CAP_NET_ADMIN over this network namespace)"
            ),
        )
    })
}

/// Reads everything queued in /dev/mace into `joiner`.
fn read_dev(dev: &mut File, joiner: &mut Joiner) -> Result<(), Fatal> {
    let mut text = String::new();
    dev.read_to_string(&mut text)
        .map_err(|e| Fatal(2, format!("reading {DEV}: {e}")))?;
    joiner.add_text(&text);
    Ok(())
}

/// An ICMP socket and what it needs to send and receive.
struct Pinger {
    fd: OwnedFd,
    v6: bool,
    raw: bool,
    id: u16,
    dest: SocketAddr,
    /// The receive buffer, allocated once: clearing 64 KiB per ping would
    /// sit inside the measured RTT.
    buf: Vec<u8>,
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: An all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: As above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

impl Pinger {
    fn open(dest: SocketAddr, kind: SockKind) -> Result<Self, Fatal> {
        let v6 = dest.is_ipv6();
        let (af, proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        let try_open = |ty| {
            // SAFETY: Plain socket(2) call.
            let fd = unsafe { libc::socket(af, ty | libc::SOCK_CLOEXEC, proto) };
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: `fd` is a new descriptor we own.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        };
        let (fd, raw) = match kind {
            SockKind::Raw => (try_open(libc::SOCK_RAW), true),
            SockKind::Dgram => (try_open(libc::SOCK_DGRAM), false),
            SockKind::Auto => match try_open(libc::SOCK_RAW) {
                Ok(fd) => (Ok(fd), true),
                Err(_) => (try_open(libc::SOCK_DGRAM), false),
            },
        };
        let fd = fd.map_err(|e| {
            Fatal(
                2,
                format!(
                    "cannot open an ICMP socket: {e} (raw sockets need CAP_NET_RAW; ping sockets \
                     need net.ipv4.ping_group_range to include your group)"
                ),
            )
        })?;
        let mut p = Pinger {
            fd,
            v6,
            raw,
            id: (std::process::id() & 0xffff) as u16,
            dest,
            buf: vec![0; 65536],
        };
        if !raw {
            // A ping socket's id is its local port: bind to learn it.
            let any: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
            let (ss, len) = sockaddr(&any);
            // SAFETY: `ss` is a valid address of `len` bytes.
            if unsafe { libc::bind(p.fd.as_raw_fd(), &ss as *const _ as *const _, len) } == 0 {
                // SAFETY: `ss2` is writable for `len2` bytes.
                let mut ss2: libc::sockaddr_storage = unsafe { zeroed() };
                let mut len2 = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: As above.
                unsafe {
                    libc::getsockname(p.fd.as_raw_fd(), &mut ss2 as *mut _ as *mut _, &mut len2)
                };
                // Both sockaddr_in and sockaddr_in6 have the port at offset 2.
                // SAFETY: reading the port field of the filled address.
                let port = unsafe { *((&ss2 as *const _ as *const u8).add(2) as *const u16) };
                p.id = u16::from_be(port);
            }
        }
        Ok(p)
    }

    fn send(&self, pkt: &[u8]) -> io::Result<()> {
        let (ss, len) = sockaddr(&self.dest);
        // SAFETY: `pkt` and `ss` are valid for their lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                &ss as *const _ as *const _,
                len,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits for the reply to `seq` until `deadline`; returns the monotonic
    /// time right after the receive syscall returned it, or None on timeout.
    fn recv_reply(&mut self, seq: u16, deadline: Instant) -> io::Result<Option<u64>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || INTERRUPTED.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let tv = libc::timeval {
                tv_sec: left.as_secs() as libc::time_t,
                tv_usec: left.subsec_micros().max(1) as libc::suseconds_t,
            };
            // SAFETY: `tv` is a valid timeval.
            unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const _,
                    size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            let t = mono_ns();
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            let data = &self.buf[..n as usize];
            let icmp = if self.raw && !self.v6 {
                match strip_ipv4(data) {
                    Some(m) => m,
                    None => continue,
                }
            } else {
                data
            };
            match echo_reply(self.v6, icmp) {
                Some((id, s)) if s == seq && (id == self.id || !self.raw) => return Ok(Some(t)),
                _ => continue,
            }
        }
    }
}

fn resolve(target: &str, family: u8) -> Result<SocketAddr, Fatal> {
    let addrs = (target, 0)
        .to_socket_addrs()
        .map_err(|e| Fatal(2, format!("{target}: {e}")))?;
    addrs
        .into_iter()
        .find(|a| match family {
            4 => a.is_ipv4(),
            6 => a.is_ipv6(),
            _ => true,
        })
        .ok_or_else(|| Fatal(2, format!("{target}: no IPv{family} address")))
}

fn ping(o: &Options, mut dev: Option<&mut File>) -> Result<ExitCode, Fatal> {
    let target = o.target.clone().unwrap_or_default();
    let dest = resolve(&target, o.family)?;
    let mut pinger = Pinger::open(dest, o.sock)?;
    let from = match dest.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a.to_string(),
    };
    if !o.json && !o.quiet {
        println!(
            "MACE-PING {target} ({from}) {} data bytes, {} socket",
            o.size,
            if pinger.raw { "raw" } else { "ping" }
        );
    }
    let mut joiner = Joiner::new();
    // Lines queued before this run are not ours.
    if let Some(dev) = dev.as_deref_mut() {
        read_dev(dev, &mut Joiner::new())?;
    }
    let mut summary = Summary::default();
    let nonce = (u64::from(std::process::id()) << 32) ^ mono_ns();
    let mut seq: u16 = 0;
    while o.count == 0 || summary.sent < o.count {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        seq = seq.wrapping_add(1);
        let start = Instant::now();
        let pkt = echo_request(pinger.v6, pinger.id, seq, o.size, nonce ^ u64::from(seq));
        let w0 = wall_us();
        let t0 = mono_ns();
        pinger
            .send(&pkt)
            .map_err(|e| Fatal(2, format!("{target}: {e}")))?;
        summary.sent += 1;
        let reply = pinger
            .recv_reply(seq, start + o.timeout)
            .map_err(|e| Fatal(2, format!("{target}: {e}")))?;
        if let Some(t1) = reply {
            let w1 = wall_us();
            if let Some(dev) = dev.as_deref_mut() {
                read_dev(dev, &mut joiner)?;
            }
            let (lo, hi) = (w0.saturating_sub(SLACK_US), w1 + SLACK_US);
            let pktid = u32::from(seq);
            let r = PingResult {
                seq,
                rtt_ns: t1.saturating_sub(t0),
                egress_ns: joiner
                    .take(pktid, Direction::Egress, lo, hi)
                    .map(|l| l.latency_ns),
                ingress_ns: joiner
                    .take(pktid, Direction::Ingress, lo, hi)
                    .map(|l| l.latency_ns),
            };
            summary.add(&r);
            if o.json {
                println!("{}", packet_json(&r));
            } else if !o.quiet {
                println!("{}", packet_line(pkt.len(), &from, &r));
            }
        } else if !o.json && !o.quiet {
            println!(
                "no reply to icmp_seq={seq} within {:.1} s",
                o.timeout.as_secs_f64()
            );
        }
        if o.count != 0 && summary.sent >= o.count {
            break;
        }
        let spent = start.elapsed();
        if spent < o.interval {
            std::thread::sleep(o.interval - spent);
        }
    }
    if o.json {
        println!("{}", summary.json(&target));
    } else {
        print!("\n{}", summary.text(&target));
    }
    Ok(if summary.received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn annotate(o: &Options, dev: &mut File) -> Result<ExitCode, Fatal> {
    let end = o.follow.map(|d| Instant::now() + d);
    let mut joiner = Joiner::new();
    loop {
        read_dev(dev, &mut joiner)?;
        for (id, e, i) in joiner.drain_pairs() {
            if o.json {
                let v = |x: Option<u64>| x.map_or_else(|| "null".into(), |n| n.to_string());
                println!(
                    "{{\"type\":\"annotation\",\"pktid\":{id},\"egress_ns\":{},\"ingress_ns\":{}}}",
                    v(e),
                    v(i)
                );
            } else {
                let v = |x: Option<u64>| {
                    x.map_or_else(|| "?".into(), |n| format!("{:.3}", n as f64 / 1e3))
                };
                let total = match (e, i) {
                    (Some(e), Some(i)) => format!("{:.3}", (e + i) as f64 / 1e3),
                    _ => "?".into(),
                };
                println!(
                    "pktid={id} egress={} us ingress={} us added={total} us",
                    v(e),
                    v(i)
                );
            }
        }
        match end {
            Some(end) if Instant::now() < end && !INTERRUPTED.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn run(o: &Options) -> Result<ExitCode, Fatal> {
    if o.plain {
        return ping(o, None);
    }
    let switched_on = ensure_capture()?;
    let result = open_dev().and_then(|mut dev| {
        if o.annotate {
            annotate(o, &mut dev)
        } else {
            ping(o, Some(&mut dev))
        }
    });
    if switched_on && !o.keep_on {
        let _ = set_capture(false);
    }
    result
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mace-ping: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: Installs a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    match run(&o) {
        Ok(code) => code,
        Err(Fatal(code, msg)) => {
            eprintln!("mace-ping: {msg}");
            ExitCode::from(code)
        }
    }
}
