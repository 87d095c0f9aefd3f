// SPDX-License-Identifier: GPL-2.0

//! `/dev/mace-hist`: the latency histograms and counters of namespaces.
//!
//! Opening the device takes a snapshot, in the text form of `hist.rs`, of:
//!
//! - every namespace that captures, if the opener is in the initial network
//!   namespace with CAP_NET_ADMIN there (a host's monitoring agent);
//! - otherwise, the opener's own namespace, if it has CAP_NET_ADMIN over
//!   the user namespace owning it (what `/dev/mace` asks too).
//!
//! Anyone else gets `EPERM`. Reads return the snapshot from where the last
//! one stopped, then 0 (end of file); a read into a buffer of any size,
//! even one byte, returns what fits. Nothing is consumed: the histograms and
//! counters only grow, and every open sees them all, unlike `/dev/mace`,
//! whose lines a read takes away. The snapshot is charged to the opener's
//! memory cgroup; its size is about 1.5 KiB per namespace.

#![deny(unsafe_code)]

use crate::chardev::opener_net;
use crate::control::Control;
use crate::ffi::file::UserWriter;
use crate::ffi::log_ratelimit;
use crate::hist::{write_counter, write_header, write_hist, write_netns, write_seghist};
use crate::netns::{NetState, NET_STATE};
use crate::record::Direction;
use core::fmt;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Text written into a growing buffer; a failed allocation is a write error.
struct Text {
    bytes: KVVec<u8>,
    /// Whether an allocation failed.
    oom: bool,
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes
            .extend_from_slice(s.as_bytes(), GFP_KERNEL_ACCOUNT)
            .map_err(|_| {
                self.oom = true;
                fmt::Error
            })
    }
}

/// Writes a namespace's `netns`, `counter` and `hist` lines.
fn write_state(out: &mut Text, state: &NetState) -> fmt::Result {
    let inum = state.inum();
    write_netns(out, inum, state.enabled())?;
    let mut result = Ok(());
    state.for_each_counter(|name, value| {
        if result.is_ok() {
            result = write_counter(out, inum, name, value);
        }
    });
    result?;
    for dir in [Direction::Egress, Direction::Ingress] {
        write_hist(out, inum, dir, &state.hist(dir).snapshot())?;
    }
    if let Some(hists) = state.segment_hists() {
        for dir in [Direction::Egress, Direction::Ingress] {
            for (name, h) in dir.segment_names().iter().zip(hists.of(dir)) {
                write_seghist(out, inum, dir, name, &h.snapshot())?;
            }
        }
    }
    Ok(())
}

/// One open file of `/dev/mace-hist`.
#[pin_data]
pub(crate) struct HistReader {
    /// The snapshot taken at open.
    text: KVVec<u8>,
    /// Where the next read starts; the mutex also serializes concurrent
    /// reads of the same open file.
    #[pin]
    pos: Mutex<usize>,
}

impl HistReader {
    /// Opens `/dev/mace-hist` for the calling task: takes the snapshot it
    /// may see.
    pub(crate) fn open(control: &Control) -> Result<Pin<KBox<Self>>> {
        let net = opener_net("mace-hist")?;
        let mut out = Text {
            bytes: KVVec::new(),
            oom: false,
        };
        let mut result = write_header(&mut out);
        if net.is_init() {
            control.capture.registry.for_each(|state| {
                if result.is_ok() {
                    result = write_state(&mut out, state);
                }
            });
        } else {
            let state = NET_STATE.get_arc(&net).ok_or(ENOENT)?;
            result = result.and_then(|()| write_state(&mut out, &state));
        }
        if result.is_err() {
            // Formatting numbers and names fails only when the buffer
            // cannot grow.
            if log_ratelimit() {
                pr_warn!(
                    "open of /dev/mace-hist failed: no memory for a snapshot of {} bytes or more\n",
                    out.bytes.len()
                );
            }
            return Err(if out.oom { ENOMEM } else { EINVAL });
        }
        KBox::pin_init(
            pin_init!(Self {
                text: out.bytes,
                pos <- new_mutex!(0, "mace_hist_reader"),
            }),
            GFP_KERNEL,
        )
    }

    /// Copies the snapshot from where the last read stopped into `out`;
    /// returns the bytes copied, 0 at end of file.
    pub(crate) fn read(&self, out: &mut UserWriter) -> Result<usize> {
        let mut pos = self.pos.lock();
        let rest = self.text.get(*pos..).unwrap_or(&[]);
        let n = rest.len().min(out.space());
        out.write(rest.get(..n).unwrap_or(&[]))?;
        *pos = pos.saturating_add(n);
        Ok(n)
    }
}
