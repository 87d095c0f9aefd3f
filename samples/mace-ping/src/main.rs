// SPDX-License-Identifier: GPL-2.0

//! `mace-ping`: ping from inside a container, corrected for the latency the
//! container host adds, as measured by the mace kernel module.
//!
//! It stamps CLOCK_MONOTONIC right before each `sendto` and right after the
//! `recv` that returns the reply, so that its RTT spans exactly mace's
//! two windows (send syscall entry to outer NIC, outer NIC to receive syscall
//! return) plus what lies beyond the outer NIC. With `--breakdown` it also
//! switches mace's `breakdown` on, as it does capture, and prints where the
//! host held each packet. See `--help` and Documentation/mace.rst.

use mace_core::record::Direction;
use mace_ping::{
    annotation_json, annotation_line, echo_reply, echo_request, packet_json, packet_line,
    parse_args, strip_ipv4, Joiner, Options, PingResult, SockKind, Summary, USAGE_EXIT,
};
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::{
    bind, getsockname, recv, recvmsg, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags,
    SockFlag, SockProtocol, SockType, SockaddrStorage,
};
use nix::sys::time::{TimeVal, TimeValLike};
use nix::time::{clock_gettime, ClockId};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ON: &str = "/sys/class/mace/on";
const BREAKDOWN: &str = "/sys/class/mace/breakdown";
const DEV: &str = "/dev/mace";
/// Slack around a ping's time window when joining lines (clock conversion).
const SLACK_US: u64 = 2_000;

/// A fatal error: exit status and message.
struct Fatal(u8, String);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT end the run (with its summary) instead of the process. The
/// handler is installed with SA_RESTART, as signal(3) does, but a receive
/// with a timeout is still interrupted at once (see socket(7)).
fn catch_sigint() {
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: The handler only stores to an atomic, which is
    // async-signal-safe, and no other code of this program handles SIGINT.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}

fn clock(id: ClockId) -> u64 {
    // Cannot fail: both clocks used are always there.
    let t = clock_gettime(id).map(Duration::from).unwrap_or_default();
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

fn mono_ns() -> u64 {
    clock(ClockId::CLOCK_MONOTONIC)
}

fn wall_us() -> u64 {
    clock(ClockId::CLOCK_REALTIME) / 1_000
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
    ensure_on(
        ON,
        "capture",
        "in a container: -v /sys/class/mace:/sys/class/mace",
    )
}

/// Makes sure `breakdown` is on in this namespace; returns whether we
/// switched it on.
fn ensure_breakdown() -> Result<bool, Fatal> {
    ensure_on(
        BREAKDOWN,
        "breakdown",
        "a mace without breakdown? in a container: -v /sys/class/mace:/sys/class/mace",
    )
}

/// Makes sure the switch `file` (`what`) is on in this namespace; returns
/// whether we switched it on. `hint` follows an error reading it.
fn ensure_on(file: &str, what: &str, hint: &str) -> Result<bool, Fatal> {
    let state = std::fs::read_to_string(file)
        .map_err(|e| Fatal(3, format!("cannot read {file}: {e} ({hint})")))?;
    if state.trim() == "1" {
        return Ok(false);
    }
    switch(file, true).map_err(|e| {
        Fatal(
            4,
            format!(
                "{what} is off in this network namespace and switching it on was refused ({e}): \
                 it needs CAP_NET_ADMIN (docker run --cap-add NET_ADMIN)"
            ),
        )
    })?;
    Ok(true)
}

/// Writes `1` or `0` to the switch `file`.
fn switch(file: &str, on: bool) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(file)?
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
    /// Replies are read with `recvmsg(2)` (`--recvmsg`), not `recv(2)`.
    recvmsg: bool,
    id: u16,
    dest: SockaddrStorage,
    /// The receive buffer, allocated once: clearing 64 KiB per ping would
    /// sit inside the measured RTT.
    buf: Vec<u8>,
}

impl Pinger {
    fn open(dest: SocketAddr, kind: SockKind, recvmsg: bool) -> Result<Self, Fatal> {
        let v6 = dest.is_ipv6();
        let (af, proto) = if v6 {
            (AddressFamily::Inet6, SockProtocol::IcmpV6)
        } else {
            (AddressFamily::Inet, SockProtocol::Icmp)
        };
        let try_open = |ty| socket(af, ty, SockFlag::SOCK_CLOEXEC, proto);
        let (fd, raw) = match kind {
            SockKind::Raw => (try_open(SockType::Raw), true),
            SockKind::Dgram => (try_open(SockType::Datagram), false),
            SockKind::Auto => match try_open(SockType::Raw) {
                Ok(fd) => (Ok(fd), true),
                Err(_) => (try_open(SockType::Datagram), false),
            },
        };
        let fd = fd.map_err(|e| {
            Fatal(
                2,
                format!(
                    "cannot open an ICMP socket: {} (raw sockets need CAP_NET_RAW; ping sockets \
                     need net.ipv4.ping_group_range to include your group)",
                    io::Error::from(e)
                ),
            )
        })?;
        let mut p = Pinger {
            fd,
            v6,
            raw,
            recvmsg,
            id: (std::process::id() & 0xffff) as u16,
            dest: SockaddrStorage::from(dest),
            buf: vec![0; 65536],
        };
        if !raw {
            // A ping socket's id is its local port: bind to learn it.
            let any: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
            let fd = p.fd.as_raw_fd();
            if bind(fd, &SockaddrStorage::from(any)).is_ok() {
                if let Ok(local) = getsockname::<SockaddrStorage>(fd) {
                    let port = local
                        .as_sockaddr_in()
                        .map(|a| a.port())
                        .or_else(|| local.as_sockaddr_in6().map(|a| a.port()));
                    p.id = port.unwrap_or(p.id);
                }
            }
        }
        Ok(p)
    }

    fn send(&self, pkt: &[u8]) -> io::Result<()> {
        sendto(self.fd.as_raw_fd(), pkt, &self.dest, MsgFlags::empty())?;
        Ok(())
    }

    /// Reads one message into the buffer, by the syscall asked for; returns
    /// its length.
    fn recv_once(&mut self) -> nix::Result<usize> {
        let fd = self.fd.as_raw_fd();
        if !self.recvmsg {
            return recv(fd, &mut self.buf, MsgFlags::empty());
        }
        // With a name buffer, as iputils ping reads (no control messages).
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, None, MsgFlags::empty())?;
        Ok(msg.bytes)
    }

    /// Waits for the reply to `seq` until `deadline`; returns the monotonic
    /// time right after the receive syscall returned it, or None on timeout.
    fn recv_reply(&mut self, seq: u16, deadline: Instant) -> io::Result<Option<u64>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || INTERRUPTED.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // At least 1 us: a zero timeout would wait for ever.
            let us = i64::try_from(left.as_micros()).unwrap_or(i64::MAX).max(1);
            setsockopt(
                &self.fd,
                sockopt::ReceiveTimeout,
                &TimeVal::microseconds(us),
            )?;
            let n = self.recv_once();
            let t = mono_ns();
            let n = match n {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let data = &self.buf[..n];
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
    let dest = resolve(&target, o.family())?;
    let mut pinger = Pinger::open(dest, o.sock(), o.recvmsg)?;
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
    let mut summary = Summary::new(o.breakdown);
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
            let egress = joiner.take(pktid, Direction::Egress, lo, hi);
            let ingress = joiner.take(pktid, Direction::Ingress, lo, hi);
            let r = PingResult::joined(
                seq,
                t1.saturating_sub(t0),
                egress.as_ref(),
                ingress.as_ref(),
                o.breakdown,
            );
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
                println!("{}", annotation_json(id, e, i));
            } else {
                println!("{}", annotation_line(id, e, i));
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
    let breakdown = if o.breakdown {
        ensure_breakdown()
    } else {
        Ok(false)
    };
    let result = breakdown.and_then(|breakdown_on| {
        let result = open_dev().and_then(|mut dev| {
            if o.annotate {
                annotate(o, &mut dev)
            } else {
                ping(o, Some(&mut dev))
            }
        });
        if breakdown_on && !o.keep_on {
            let _ = switch(BREAKDOWN, false);
        }
        result
    });
    if switched_on && !o.keep_on {
        let _ = switch(ON, false);
    }
    result
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            // Help goes to stdout and exits 0, usage errors to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(USAGE_EXIT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    catch_sigint();
    match run(&o) {
        Ok(code) => code,
        Err(Fatal(code, msg)) => {
            eprintln!("mace-ping: {msg}");
            ExitCode::from(code)
        }
    }
}
