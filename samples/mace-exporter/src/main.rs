// SPDX-License-Identifier: GPL-2.0

//! mace-exporter's command line: serve `/metrics`, or write a textfile.

#![forbid(unsafe_code)]

use clap::Parser;
use mace_exporter::{collect, textfile, Paths};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exports mace's per-namespace latency histograms and counters to
/// Prometheus (see the crate documentation for the metrics).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to serve GET /metrics on.
    #[arg(long, default_value = "0.0.0.0:9470")]
    listen: String,
    /// Write the exposition to this file atomically instead of listening
    /// (for node_exporter's textfile collector).
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// Write once and exit: to --textfile, or to standard output.
    #[arg(long)]
    once: bool,
    /// Seconds between two writes of --textfile.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// mace's histogram snapshot device.
    #[arg(long, value_name = "PATH", default_value = "/dev/mace-hist")]
    hist: PathBuf,
    /// mace's counters (host-wide lines from the initial namespace).
    #[arg(long, value_name = "PATH", default_value = "/sys/class/mace/stats")]
    stats: PathBuf,
    /// The proc file system, to name namespaces by container and pod.
    #[arg(long, value_name = "PATH", default_value = "/proc")]
    proc: PathBuf,
    /// Namespaces with series of their own; the rest are summed into
    /// netns="other".
    #[arg(long, value_name = "N", default_value_t = 128)]
    max_namespaces: usize,
}

/// Logs why mace is down when that changes (not at every scrape).
#[derive(Default)]
struct DownLog(Option<String>);

impl DownLog {
    fn note(&mut self, why: Option<String>) {
        if why != self.0 {
            match &why {
                Some(w) => eprintln!("mace-exporter: mace is down: {w}"),
                None if self.0.is_some() => eprintln!("mace-exporter: mace is up"),
                None => {}
            }
            self.0 = why;
        }
    }
}

/// The exposition in the Prometheus text format, logging why mace is down.
fn scrape_text(args: &Args, paths: &Paths, log: &mut DownLog) -> String {
    let (e, why) = collect(paths, args.max_namespaces);
    log.note(why);
    e.to_prometheus_text()
}

/// Writes the textfile once, or every interval forever.
fn run_textfile(args: &Args, paths: &Paths, path: &Path) -> ExitCode {
    let mut log = DownLog::default();
    loop {
        let text = scrape_text(args, paths, &mut log);
        if let Err(e) = textfile::write_atomic(path, &text) {
            eprintln!("mace-exporter: cannot write {}: {e}", path.display());
            if args.once {
                return ExitCode::FAILURE;
            }
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_secs(args.interval));
    }
}

/// Whether a request's Accept header asks for OpenMetrics.
fn wants_openmetrics(req: &tiny_http::Request) -> bool {
    req.headers()
        .iter()
        .filter(|h| h.field.equiv("Accept"))
        .any(|h| h.value.as_str().contains("application/openmetrics-text"))
}

/// Serves `/metrics` until the process is killed.
fn run_server(args: &Args, paths: &Paths) -> ExitCode {
    let server = match tiny_http::Server::http(&args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mace-exporter: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("mace-exporter: serving http://{}/metrics", args.listen);
    let mut log = DownLog::default();
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let get = matches!(
            req.method(),
            tiny_http::Method::Get | tiny_http::Method::Head
        );
        let (status, body, ctype) = match (get, path) {
            (true, "/metrics") => {
                let (e, why) = collect(paths, args.max_namespaces);
                log.note(why);
                if wants_openmetrics(&req) {
                    (
                        200,
                        e.to_openmetrics(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                } else {
                    (
                        200,
                        e.to_prometheus_text(),
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    )
                }
            }
            (true, "/") => (
                200,
                "mace-exporter: metrics at /metrics\n".to_owned(),
                "text/plain; charset=utf-8",
            ),
            (true, _) => (404, "not found\n".to_owned(), "text/plain; charset=utf-8"),
            (false, _) => (
                405,
                "method not allowed\n".to_owned(),
                "text/plain; charset=utf-8",
            ),
        };
        let header = tiny_http::Header::from_bytes("Content-Type", ctype)
            .expect("a constant header is valid");
        let resp = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        if let Err(e) = req.respond(resp) {
            eprintln!("mace-exporter: cannot answer a request: {e}");
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    let paths = Paths {
        hist: args.hist.clone(),
        stats: args.stats.clone(),
        proc: args.proc.clone(),
    };
    match (&args.textfile, args.once) {
        (Some(path), _) => run_textfile(&args, &paths, path),
        (None, true) => {
            let mut log = DownLog::default();
            print!("{}", scrape_text(&args, &paths, &mut log));
            ExitCode::SUCCESS
        }
        (None, false) => run_server(&args, &paths),
    }
}
