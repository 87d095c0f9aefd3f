// SPDX-License-Identifier: GPL-2.0

//! `/dev/mace`: where a namespace reads its latency records.
//!
//! Opening the device binds the open file to the opener's network namespace
//! (holding a reference to it and to its state) and requires CAP_NET_ADMIN
//! over the user namespace that owns it, the same right that switches
//! capture on. Each read pops records from that namespace's ring and returns
//! them as text lines (see [`crate::record`]); a read that stops inside a
//! line leaves the rest of it in the open file's cursor for the next read.
//! When nothing is queued, a read returns 0 (end of file), so `cat
//! /dev/mace` prints what is queued and ends. The device is a stream: it
//! cannot seek, and it cannot be written.

#![deny(unsafe_code)]

use crate::ffi::file::UserWriter;
use crate::ffi::log_ratelimit;
use crate::ffi::net::NetRef;
use crate::netns::{NetState, NET_STATE};
use crate::record::{LineCursor, Record, Sink};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// A user buffer is where a read's lines go.
impl Sink for UserWriter {
    type Error = Error;

    fn space(&self) -> usize {
        UserWriter::space(self)
    }

    fn put(&mut self, bytes: &[u8]) -> Result {
        self.write(bytes)
    }
}

/// One open file of `/dev/mace`.
#[pin_data]
pub(crate) struct Reader {
    /// The namespace whose records this file returns; held so that it lives
    /// as long as the file, like a socket's.
    net: NetRef,
    /// Its state.
    state: Arc<NetState>,
    /// The rest of the line a read stopped in; the mutex also serializes
    /// concurrent reads of the same open file.
    #[pin]
    cursor: Mutex<LineCursor>,
}

/// The calling task's network namespace, for an open of `/dev/<device>`:
/// `EPERM` (logged) unless the task has CAP_NET_ADMIN over the user
/// namespace owning it.
pub(crate) fn opener_net(device: &str) -> Result<NetRef> {
    let net = NetRef::current().ok_or(ENOENT)?;
    if !net.capable() {
        if log_ratelimit() {
            pr_warn!(
                "open of /dev/{} denied: CAP_NET_ADMIN over network namespace {} is required\n",
                device,
                net.inum()
            );
        }
        return Err(EPERM);
    }
    Ok(net)
}

impl Reader {
    /// Opens `/dev/mace` for the namespace of the calling task.
    pub(crate) fn open() -> Result<Pin<KBox<Self>>> {
        let net = opener_net("mace")?;
        let state = NET_STATE.get_arc(&net).ok_or(ENOENT)?;
        KBox::pin_init(
            pin_init!(Self {
                net,
                state,
                cursor <- new_mutex!(LineCursor::new(), "mace_reader"),
            }),
            GFP_KERNEL,
        )
    }

    /// Reads lines into `out`; returns the bytes copied, 0 at end of file.
    pub(crate) fn read(&self, out: &mut UserWriter) -> Result<usize> {
        let mut cursor = self.cursor.lock();
        // Counted for the read, so that switching capture off meanwhile
        // cannot free it under the reader.
        let ring = self.state.ring_arc();
        cursor.read(out, || ring.as_ref().and_then(|r| r.pop::<Record>()))
    }
}
