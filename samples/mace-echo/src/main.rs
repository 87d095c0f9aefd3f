// SPDX-License-Identifier: GPL-2.0

//! UDP and TCP request/response clients and echo servers, for testing mace.
//!
//! ```text
//! mace-echo udp-server ADDR:PORT
//! mace-echo udp-client [--recv-delay-ms MS] [--burst N] ADDR:PORT COUNT [INTERVAL_MS]
//! mace-echo tcp-server ADDR:PORT
//! mace-echo tcp-client ADDR:PORT COUNT [INTERVAL_MS]
//! mace-echo tcp-push-server ADDR:PORT
//! mace-echo tcp-push-client ADDR:PORT COUNT [INTERVAL_MS]
//! mace-echo hold-tap DEV SECONDS
//! ```
//!
//! A client sends COUNT requests of 64 bytes, one at a time, each starting
//! with its sequence number (1, 2, ...) as a big-endian u32, and waits for
//! the echo. For each it prints `seq N rtt_ns T`, where T is taken with
//! CLOCK_MONOTONIC right before the send and right after the receive
//! syscall. UDP requests go out as one datagram each (mace's UDP packet id is
//! that number); TCP uses TCP_NODELAY so that each request is one segment.
//! Servers echo until killed. Exit status: 0, or 1 on any error (printed).
//!
//! `udp-client --recv-delay-ms MS` sleeps MS milliseconds after each send
//! before it calls recv, so that the echo waits in the socket's queue that
//! long: its ingress window, which ends at recv's return, grows by about
//! MS (with `breakdown` on, in its `socket` segment). The printed RTT
//! includes the sleep.
//!
//! `udp-client --burst N` (1 to 16) sends its requests N at a time, one
//! datagram each, then (after the receive delay, which lets the echoes
//! queue) takes the echoes with `recvmmsg(2)`, as many as are queued per
//! syscall, and prints `batch K` for each such syscall that took K of them,
//! before their `seq` lines: several packets taken by one receiving
//! syscall. Each RTT runs from its own send to that syscall's return.
//!
//! The push pair tests TCP while data flows both ways: the push server
//! streams data to every client without pause (and discards what it gets);
//! the push client reads and discards that stream in a second thread while
//! it sends its COUNT requests (printing `seq N` for each), so that TCP
//! acknowledges incoming data while the client is inside its send syscalls.
//!
//! `hold-tap` opens a packet socket on device DEV (of its network
//! namespace) and reads nothing for SECONDS: the socket keeps a copy of
//! each packet the device sends or receives, sharing its data, until its
//! receive buffer is full, as a capturing tool that reads slowly does (a
//! packet socket that copies packets to a ring, libpcap's, lets them go at
//! once). It prints `holding` once the socket is bound. While such a copy
//! shares a received packet's data, NAT gives the packet a data buffer of
//! its own before it writes the header.
//!
//! Arguments are parsed by clap; a usage error exits with 1 too.

use clap::{Args, Parser, Subcommand};
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use std::io::{IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const REQUEST_BYTES: usize = 64;

/// The most requests `udp-client --burst` sends at a time.
const MAX_BURST: usize = 16;

/// The exit status of any error, usage errors included.
const ERROR_EXIT: u8 = 1;

/// UDP and TCP request/response clients and echo servers, for testing mace.
#[derive(Debug, PartialEq, Parser)]
#[command(name = "mace-echo")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// What to run.
#[derive(Debug, PartialEq, Subcommand)]
enum Mode {
    /// Echoes UDP datagrams until killed.
    UdpServer {
        /// Address to listen on.
        #[arg(value_name = "ADDR:PORT")]
        addr: SocketAddr,
    },
    /// Sends COUNT requests as UDP datagrams, one at a time.
    UdpClient(UdpClient),
    /// Echoes TCP requests until killed.
    TcpServer {
        /// Address to listen on.
        #[arg(value_name = "ADDR:PORT")]
        addr: SocketAddr,
    },
    /// Sends COUNT requests on one TCP connection, one at a time.
    TcpClient(Client),
    /// Streams data to every TCP client, without pause, until killed.
    TcpPushServer {
        /// Address to listen on.
        #[arg(value_name = "ADDR:PORT")]
        addr: SocketAddr,
    },
    /// Sends COUNT requests while reading a push server's stream.
    TcpPushClient(Client),
    /// Holds a packet socket on DEV that reads nothing, for SECONDS.
    HoldTap {
        /// The device, in this network namespace.
        #[arg(value_name = "DEV")]
        dev: String,
        /// How long to hold it.
        #[arg(value_name = "SECONDS")]
        seconds: u64,
    },
}

/// A client's arguments.
#[derive(Debug, PartialEq, Args)]
struct Client {
    /// The server's address.
    #[arg(value_name = "ADDR:PORT")]
    addr: SocketAddr,
    /// Requests to send.
    #[arg(value_name = "COUNT")]
    count: u32,
    /// Pause after each request, in milliseconds.
    #[arg(value_name = "INTERVAL_MS", default_value_t = 10)]
    interval_ms: u64,
}

impl Client {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// The UDP client's arguments: a client's, and how long each reply waits.
#[derive(Debug, PartialEq, Args)]
struct UdpClient {
    #[command(flatten)]
    client: Client,
    /// Sleep this long after each send before receiving the reply, in
    /// milliseconds (the reply waits in the socket).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    recv_delay_ms: u64,
    /// Send this many requests at a time and take their echoes with
    /// recvmmsg(2), as many per syscall as are queued.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BURST as i64))]
    burst: u32,
}

impl UdpClient {
    fn recv_delay(&self) -> Duration {
        Duration::from_millis(self.recv_delay_ms)
    }
}

fn request(seq: u32) -> [u8; REQUEST_BYTES] {
    let mut buf = [0x5a_u8; REQUEST_BYTES];
    buf[..4].copy_from_slice(&seq.to_be_bytes());
    buf
}

fn udp_server(addr: SocketAddr) -> Result<(), String> {
    let sock = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let mut buf = [0u8; 65536];
    loop {
        let (n, peer) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
        sock.send_to(&buf[..n], peer)
            .map_err(|e| format!("send: {e}"))?;
    }
}

fn udp_client(u: &UdpClient) -> Result<(), String> {
    let (addr, count, interval, recv_delay) = (
        u.client.addr,
        u.client.count,
        u.client.interval(),
        u.recv_delay(),
    );
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|e| format!("{e}"))?;
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
    sock.connect(addr)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("{e}"))?;
    if u.burst > 1 {
        let mut first = 1;
        while first <= count {
            let n = u.burst.min(count - first + 1);
            udp_burst(&sock, first, n, recv_delay)?;
            first += n;
            thread::sleep(interval);
        }
        return Ok(());
    }
    let mut buf = [0u8; REQUEST_BYTES];
    for seq in 1..=count {
        let req = request(seq);
        let t0 = Instant::now();
        sock.send(&req).map_err(|e| format!("send: {e}"))?;
        if !recv_delay.is_zero() {
            thread::sleep(recv_delay);
        }
        let n = sock
            .recv(&mut buf)
            .map_err(|e| format!("recv seq {seq}: {e}"))?;
        let rtt = t0.elapsed();
        if buf[..n] != req[..] {
            return Err(format!("seq {seq}: reply differs from request"));
        }
        println!("seq {seq} rtt_ns {}", rtt.as_nanos());
        thread::sleep(interval);
    }
    Ok(())
}

/// Sends requests `first..first + n` on `sock` (connected), then after
/// `recv_delay` takes their echoes with recvmmsg(2), as many per syscall as
/// are queued, printing `batch K` for a syscall that took K and a `seq`
/// line for each echo.
fn udp_burst(sock: &UdpSocket, first: u32, n: u32, recv_delay: Duration) -> Result<(), String> {
    let mut sent = Vec::new();
    for seq in first..first.saturating_add(n) {
        sock.send(&request(seq))
            .map_err(|e| format!("send seq {seq}: {e}"))?;
        sent.push((seq, Instant::now()));
    }
    thread::sleep(recv_delay);
    let mut bufs = [[0u8; REQUEST_BYTES]; MAX_BURST];
    let mut got = 0;
    while got < sent.len() {
        let want = sent.len() - got;
        let lens = recv_queued(sock, &mut bufs[..want])?;
        let done = Instant::now();
        println!("batch {}", lens.len());
        for (buf, len) in bufs.iter().zip(&lens) {
            let Some(&(seq, t0)) = sent.get(got) else {
                return Err("more echoes than requests".into());
            };
            if buf[..*len] != request(seq)[..] {
                return Err(format!("seq {seq}: reply differs from request"));
            }
            println!("seq {seq} rtt_ns {}", done.duration_since(t0).as_nanos());
            got += 1;
        }
    }
    Ok(())
}

/// Receives into `bufs` with one recvmmsg(2) on `sock`: waits for one
/// datagram, then takes as many more as are queued; their lengths.
fn recv_queued(sock: &UdpSocket, bufs: &mut [[u8; REQUEST_BYTES]]) -> Result<Vec<usize>, String> {
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let msgs = recvmmsg(
        sock.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )
    .map_err(|e| format!("recvmmsg: {e}"))?;
    Ok(msgs.map(|m| m.bytes).collect())
}

fn tcp_server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    for conn in listener.incoming() {
        let mut conn = conn.map_err(|e| format!("accept: {e}"))?;
        conn.set_nodelay(true).map_err(|e| format!("{e}"))?;
        thread::spawn(move || {
            let mut buf = [0u8; REQUEST_BYTES];
            while conn.read_exact(&mut buf).is_ok() {
                if conn.write_all(&buf).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn tcp_client(addr: SocketAddr, count: u32, interval: Duration) -> Result<(), String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_nodelay(true).map_err(|e| format!("{e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("{e}"))?;
    let mut buf = [0u8; REQUEST_BYTES];
    for seq in 1..=count {
        let req = request(seq);
        let t0 = Instant::now();
        conn.write_all(&req).map_err(|e| format!("send: {e}"))?;
        conn.read_exact(&mut buf)
            .map_err(|e| format!("recv seq {seq}: {e}"))?;
        let rtt = t0.elapsed();
        if buf != req {
            return Err(format!("seq {seq}: reply differs from request"));
        }
        println!("seq {seq} rtt_ns {}", rtt.as_nanos());
        thread::sleep(interval);
    }
    Ok(())
}

/// Reads and discards from `conn` until end of stream or an error.
fn discard(mut conn: TcpStream) {
    let mut buf = [0u8; 16384];
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}

fn tcp_push_server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    for conn in listener.incoming() {
        let conn = conn.map_err(|e| format!("accept: {e}"))?;
        let reader = conn.try_clone().map_err(|e| format!("{e}"))?;
        thread::spawn(move || discard(reader));
        thread::spawn(move || {
            let mut conn = conn;
            let chunk = [0xa5_u8; 1400];
            while conn.write_all(&chunk).is_ok() {}
        });
    }
    Ok(())
}

fn tcp_push_client(addr: SocketAddr, count: u32, interval: Duration) -> Result<(), String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_nodelay(true).map_err(|e| format!("{e}"))?;
    let reader = conn.try_clone().map_err(|e| format!("{e}"))?;
    thread::spawn(move || discard(reader));
    for seq in 1..=count {
        conn.write_all(&request(seq))
            .map_err(|e| format!("send seq {seq}: {e}"))?;
        println!("seq {seq}");
        thread::sleep(interval);
    }
    Ok(())
}

fn hold_tap(dev: &str, seconds: u64) -> Result<(), String> {
    use nix::libc;
    use nix::sys::socket::{bind, socket, AddressFamily, LinkAddr, SockFlag, SockProtocol};
    use nix::sys::socket::{SockType, SockaddrLike};
    let index = std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .map_err(|e| format!("device {dev}: {e}"))?;
    let index: i32 = index
        .trim()
        .parse()
        .map_err(|e| format!("device {dev}: ifindex {index:?}: {e}"))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| format!("packet socket: {e}"))?;
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: index,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `ll` is a whole `sockaddr_ll` of `len` bytes, alive for the
    // call, which copies it.
    let addr = unsafe { LinkAddr::from_raw(std::ptr::addr_of!(ll).cast(), Some(len)) }
        .ok_or("packet socket: no link address")?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| format!("bind to {dev}: {e}"))?;
    println!("holding");
    std::io::stdout().flush().map_err(|e| format!("{e}"))?;
    thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

fn run(mode: &Mode) -> Result<(), String> {
    match mode {
        Mode::UdpServer { addr } => udp_server(*addr),
        Mode::UdpClient(u) => udp_client(u),
        Mode::TcpServer { addr } => tcp_server(*addr),
        Mode::TcpClient(c) => tcp_client(c.addr, c.count, c.interval()),
        Mode::TcpPushServer { addr } => tcp_push_server(*addr),
        Mode::TcpPushClient(c) => tcp_push_client(c.addr, c.count, c.interval()),
        Mode::HoldTap { dev, seconds } => hold_tap(dev, *seconds),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help goes to stdout and exits 0; usage errors exit 1, as
            // every other error of this tool.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(ERROR_EXIT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&cli.mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mace-echo: {e}");
            ExitCode::from(ERROR_EXIT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mace-echo").chain(args.iter().copied()))
    }

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_and_arguments() {
        let v4: SocketAddr = "198.18.0.2:7777".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::2]:7778".parse().unwrap();
        assert_eq!(
            parse(&["udp-server", "198.18.0.2:7777"]).unwrap().mode,
            Mode::UdpServer { addr: v4 }
        );
        assert_eq!(
            parse(&["tcp-push-server", "[2001:db8::2]:7778"])
                .unwrap()
                .mode,
            Mode::TcpPushServer { addr: v6 }
        );
        assert_eq!(
            parse(&["tcp-client", "[2001:db8::2]:7778", "100", "20"])
                .unwrap()
                .mode,
            Mode::TcpClient(Client {
                addr: v6,
                count: 100,
                interval_ms: 20
            })
        );
        let Mode::UdpClient(u) = parse(&["udp-client", "198.18.0.2:7777", "5"]).unwrap().mode
        else {
            panic!("not udp-client");
        };
        let c = &u.client;
        assert_eq!((c.count, c.interval()), (5, Duration::from_millis(10)));
        assert_eq!(u.recv_delay(), Duration::ZERO);
        assert_eq!(
            parse(&["hold-tap", "eth0", "30"]).unwrap().mode,
            Mode::HoldTap {
                dev: "eth0".into(),
                seconds: 30
            }
        );
        assert!(parse(&["hold-tap", "eth0"]).is_err());
        assert!(parse(&["hold-tap", "eth0", "-1"]).is_err());
    }

    #[test]
    fn hold_tap_needs_a_device() {
        let e = hold_tap("no-such-device0", 0).unwrap_err();
        assert!(e.starts_with("device no-such-device0: "), "{e}");
    }

    #[test]
    fn udp_client_recv_delay() {
        let v4: SocketAddr = "198.18.0.2:7777".parse().unwrap();
        let want = Mode::UdpClient(UdpClient {
            client: Client {
                addr: v4,
                count: 20,
                interval_ms: 50,
            },
            recv_delay_ms: 50,
            burst: 1,
        });
        // Before or after the positional arguments, as the VM suite puts it.
        for args in [
            &[
                "udp-client",
                "198.18.0.2:7777",
                "20",
                "50",
                "--recv-delay-ms",
                "50",
            ][..],
            &[
                "udp-client",
                "--recv-delay-ms",
                "50",
                "198.18.0.2:7777",
                "20",
                "50",
            ],
            &[
                "udp-client",
                "198.18.0.2:7777",
                "20",
                "50",
                "--recv-delay-ms=50",
            ],
        ] {
            assert_eq!(parse(args).unwrap().mode, want, "{args:?}");
        }
        let Mode::UdpClient(u) = want else {
            panic!("not udp-client");
        };
        assert_eq!(u.recv_delay(), Duration::from_millis(50));
    }

    #[test]
    fn udp_client_burst() {
        let parsed = |args: &[&str]| match parse(args).unwrap().mode {
            Mode::UdpClient(u) => u.burst,
            m => panic!("not udp-client: {m:?}"),
        };
        assert_eq!(parsed(&["udp-client", "198.18.0.2:7777", "5"]), 1);
        assert_eq!(
            parsed(&["udp-client", "--burst", "3", "198.18.0.2:7777", "12"]),
            3
        );
        assert_eq!(
            parsed(&["udp-client", "198.18.0.2:7777", "12", "--burst=16"]),
            16
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["udp-server"],
            &["udp-server", "198.18.0.2"],
            &["udp-client", "198.18.0.2:7777"],
            &["udp-client", "198.18.0.2:7777", "x"],
            &["udp-client", "198.18.0.2:7777", "-1"],
            &["tcp-client", "198.18.0.2:7777", "1", "x"],
            &["udp-client", "198.18.0.2:7777", "1", "--recv-delay-ms"],
            &["udp-client", "198.18.0.2:7777", "1", "--recv-delay-ms", "x"],
            &[
                "udp-client",
                "198.18.0.2:7777",
                "1",
                "--recv-delay-ms",
                "-1",
            ],
            // Only the UDP client reads late.
            &["tcp-client", "198.18.0.2:7777", "1", "--recv-delay-ms", "5"],
            // A burst of 1 to 16, of the UDP client only.
            &["udp-client", "198.18.0.2:7777", "1", "--burst", "0"],
            &["udp-client", "198.18.0.2:7777", "1", "--burst", "17"],
            &["udp-client", "198.18.0.2:7777", "1", "--burst", "x"],
            &["tcp-client", "198.18.0.2:7777", "1", "--burst", "2"],
            &["echo-server", "198.18.0.2:7777"],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?} is a usage error");
        }
    }
}
