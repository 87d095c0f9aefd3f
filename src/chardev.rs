// SPDX-License-Identifier: GPL-2.0

//! `/dev/mace`: where a namespace reads its latency records.
//!
//! Opening the device binds the open file to the opener's network namespace
//! (holding a reference to it) and requires CAP_NET_ADMIN over the user
//! namespace that owns it, the same right that switches capture on. Each read
//! pops records from that namespace's ring and returns them as text lines
//! (see [`crate::record`]); a read that stops inside a line leaves the rest of
//! it in the open file's cursor for the next read. When nothing is queued, a
//! read returns 0 (end of file), so `cat /dev/mace` prints what is queued and
//! ends. The device is a stream: it cannot seek, and it cannot be written.

use crate::ffi::{self, NetHold};
use crate::record::{LineCursor, Record, Sink};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// One open file of `/dev/mace`.
#[pin_data]
pub(crate) struct Reader {
    /// The namespace whose records this file returns.
    net: NetHold,
    /// The rest of the line a read stopped in; the mutex also serializes
    /// concurrent reads of the same open file.
    #[pin]
    cursor: Mutex<LineCursor>,
}

impl Reader {
    /// Opens `/dev/mace` for the namespace `net` of the calling task.
    pub(crate) fn open(net: NetHold) -> Result<Pin<KBox<Self>>> {
        if !net.capable() {
            if crate::ffi::log_ratelimit() {
                pr_warn!(
                    "open of /dev/mace denied: CAP_NET_ADMIN over network namespace {} is required\n",
                    net.inum()
                );
            }
            return Err(EPERM);
        }
        KBox::pin_init(
            pin_init!(Self {
                net,
                cursor <- new_mutex!(LineCursor::new(), "mace_reader"),
            }),
            GFP_KERNEL,
        )
    }

    /// Reads lines into `out`; returns the bytes copied, 0 at end of file.
    pub(crate) fn read<S: Sink<Error = Error>>(&self, out: &mut S) -> Result<usize> {
        let mut cursor = self.cursor.lock();
        let ring = self.net.state().ring();
        // One offset per read: lines of one read agree with each other.
        let offset = ffi::real_ns().wrapping_sub(ffi::mono_ns());
        cursor.read(out, || {
            ring.and_then(|r| r.pop::<Record>())
                .map(|r| r.to_wall(offset))
        })
    }
}
