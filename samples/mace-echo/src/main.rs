// SPDX-License-Identifier: GPL-2.0

//! UDP and TCP request/response clients and echo servers, for testing mace.
//!
//! ```text
//! mace-echo udp-server ADDR:PORT
//! mace-echo udp-client ADDR:PORT COUNT [INTERVAL_MS]
//! mace-echo tcp-server ADDR:PORT
//! mace-echo tcp-client ADDR:PORT COUNT [INTERVAL_MS]
//! mace-echo tcp-push-server ADDR:PORT
//! mace-echo tcp-push-client ADDR:PORT COUNT [INTERVAL_MS]
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
//! The push pair tests TCP while data flows both ways: the push server
//! streams data to every client without pause (and discards what it gets);
//! the push client reads and discards that stream in a second thread while
//! it sends its COUNT requests (printing `seq N` for each), so that TCP
//! acknowledges incoming data while the client is inside its send syscalls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const REQUEST_BYTES: usize = 64;

fn usage() -> String {
    "usage: mace-echo udp-server|udp-client|tcp-server|tcp-client|tcp-push-server|tcp-push-client ADDR:PORT [COUNT [INTERVAL_MS]]"
        .to_string()
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

fn udp_client(addr: SocketAddr, count: u32, interval: Duration) -> Result<(), String> {
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
    let mut buf = [0u8; REQUEST_BYTES];
    for seq in 1..=count {
        let req = request(seq);
        let t0 = Instant::now();
        sock.send(&req).map_err(|e| format!("send: {e}"))?;
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

fn run(args: &[String]) -> Result<(), String> {
    let (Some(mode), Some(addr)) = (args.get(1), args.get(2)) else {
        return Err(usage());
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("{addr}: not ADDR:PORT ({e})"))?;
    let count = || -> Result<u32, String> {
        args.get(3)
            .ok_or_else(usage)?
            .parse()
            .map_err(|e| format!("COUNT: {e}"))
    };
    let interval = || -> Result<Duration, String> {
        match args.get(4) {
            Some(ms) => ms
                .parse()
                .map(Duration::from_millis)
                .map_err(|e| format!("INTERVAL_MS: {e}")),
            None => Ok(Duration::from_millis(10)),
        }
    };
    match mode.as_str() {
        "udp-server" => udp_server(addr),
        "udp-client" => udp_client(addr, count()?, interval()?),
        "tcp-server" => tcp_server(addr),
        "tcp-client" => tcp_client(addr, count()?, interval()?),
        "tcp-push-server" => tcp_push_server(addr),
        "tcp-push-client" => tcp_push_client(addr, count()?, interval()?),
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mace-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
