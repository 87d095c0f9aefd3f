// SPDX-License-Identifier: GPL-2.0

//! The callbacks from C other than probes: pernet operations, the file
//! operations of `/dev/mace` and `/dev/mace-hist`, `/sys/class/mace`'s
//! files, device events.
//!
//! Each is a trait of the kernel layer implemented here by one safe call;
//! the kernel layer turns the `Result`s into errnos on the way back to C.
//! Everything here runs in process context.

#![deny(unsafe_code)]

use crate::chardev::Reader;
use crate::control::Control;
use crate::ffi::class::{ClassAttr, ClassOps, Opener};
use crate::ffi::file::{FileOps, MiscDevice, UserWriter};
use crate::ffi::net::{Net, PernetKey, PernetOps};
use crate::ffi::netdev::{NetdevEvent, NetdevOps};
use crate::histdev::HistReader;
use crate::netns::{NetState, NET_STATE};
use crate::sysfs;
use kernel::prelude::*;
use kernel::sync::Arc;

impl PernetOps for Control {
    type State = NetState;

    fn init(&self, net: &Net) -> Result<Arc<NetState>> {
        NetState::new(net.inum(), net.addr())
    }

    fn pre_exit(&self, net: &Net, state: &NetState) {
        self.net_pre_exit(net, state);
    }

    fn exit_batch(&self) {
        self.net_exit_batch();
    }

    fn key() -> &'static PernetKey<NetState> {
        &NET_STATE
    }
}

impl ClassOps for Control {
    fn show(&self, attr: ClassAttr, out: &mut [u8]) -> Result<usize> {
        sysfs::show(self, attr, out)
    }

    fn store(&self, attr: ClassAttr, opener: &Opener<'_>, input: &[u8]) -> Result {
        sysfs::store(self, attr, opener, input)
    }
}

impl NetdevOps for Control {
    fn event(&self, event: NetdevEvent, ifindex: i32) {
        match event {
            NetdevEvent::Unregister => self.outer_devs_changed(ifindex),
            NetdevEvent::Register | NetdevEvent::ChangeName => self.outer_devs_changed(0),
        }
    }
}

impl FileOps for Reader {
    const DEVICE: MiscDevice = MiscDevice::Records;
    type Data = ();

    fn open(_data: &()) -> Result<Pin<KBox<Self>>> {
        Reader::open()
    }

    fn read(&self, out: &mut UserWriter) -> Result<usize> {
        Reader::read(self, out)
    }
}

impl FileOps for HistReader {
    const DEVICE: MiscDevice = MiscDevice::Hist;
    type Data = Control;

    fn open(control: &Control) -> Result<Pin<KBox<Self>>> {
        HistReader::open(control)
    }

    fn read(&self, out: &mut UserWriter) -> Result<usize> {
        HistReader::read(self, out)
    }
}
