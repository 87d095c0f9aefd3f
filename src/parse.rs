// SPDX-License-Identifier: GPL-2.0

//! Parsers of everything a user writes to mace: sysfs files and module
//! parameters.
//!
//! Each parser accepts exactly the documented syntax and otherwise returns a
//! [`ParseError`] whose text says what was wrong and what is accepted; the
//! caller logs it and returns `EINVAL`, and nothing changes.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::fmt;

/// Longest interface name (`IFNAMSIZ - 1`).
pub const IFNAMSIZ_MAX: usize = 15;

/// Most outer devices mace watches at once.
pub const MAX_OUTER_DEVS: usize = 8;

/// Longest write a file of `/sys/class/mace` takes; anything longer is
/// refused (`E2BIG`) before it is parsed. The longest valid input is a list
/// of 8 interface names of 15 bytes.
pub const MAX_WRITE: usize = 256;

/// What was wrong with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A switch was not `0` or `1`.
    NotSwitch,
    /// A device list had an empty entry (e.g. `eth0,,eth1`).
    EmptyDevice,
    /// A device name was longer than [`IFNAMSIZ_MAX`] bytes.
    NameTooLong,
    /// A device name had a byte a Linux interface name cannot have.
    BadName,
    /// An ifindex was 0, or did not fit in a positive `int`.
    BadIndex,
    /// More than [`MAX_OUTER_DEVS`] devices.
    TooManyDevices,
    /// The same device was listed twice.
    Duplicate,
    /// A number was not a decimal integer.
    NotNumber,
    /// A number was out of its range or not a power of two.
    OutOfRange,
    /// A tap end was not `read` or `stamp`.
    NotTapEnd,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ParseError::NotSwitch => {
                "not 0 or 1 (accepted: \"0\" or \"1\", optionally followed by a newline)"
            }
            ParseError::EmptyDevice => {
                "empty device entry (accepted: comma-separated interface names or ifindexes)"
            }
            ParseError::NameTooLong => "interface name longer than 15 bytes",
            ParseError::BadName => {
                "invalid interface name (no '/', ':', whitespace, \".\" or \"..\")"
            }
            ParseError::BadIndex => "ifindex must be between 1 and 2147483647",
            ParseError::TooManyDevices => "more than 8 devices",
            ParseError::Duplicate => "device listed twice",
            ParseError::NotNumber => "not a decimal number",
            ParseError::OutOfRange => "out of range or not a power of two",
            ParseError::NotTapEnd => {
                "not a tap end (accepted: \"read\" or \"stamp\", optionally followed by a newline)"
            }
        };
        f.write_str(what)
    }
}

/// Strips one trailing newline, as `echo` appends.
fn strip_newline(input: &[u8]) -> &[u8] {
    input.strip_suffix(b"\n").unwrap_or(input)
}

/// Parses a capture switch: `1` (on) or `0` (off), with an optional newline.
pub fn parse_switch(input: &[u8]) -> Result<bool, ParseError> {
    match strip_newline(input) {
        b"1" => Ok(true),
        b"0" => Ok(false),
        _ => Err(ParseError::NotSwitch),
    }
}

/// Where the ingress window of a packet that only a packet socket reads
/// (libpcap: hping3, nping, scapy) ends, per namespace (`tap_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapEnd {
    /// When a syscall of a task reading or waiting for a packet socket of
    /// the namespace returns with something to read: where a tool that
    /// stamps replies in user space (hping3) stops its clock. The default.
    Read,
    /// Where the tap saw the packet, the time the packet socket stamps it
    /// with: for tools that take their receive time from that stamp (the
    /// pcap header's).
    Stamp,
}

impl TapEnd {
    /// The name written to and read from `tap_end`.
    pub fn name(self) -> &'static str {
        match self {
            TapEnd::Read => "read",
            TapEnd::Stamp => "stamp",
        }
    }
}

/// Parses a tap end: `read` or `stamp`, with an optional newline.
pub fn parse_tap_end(input: &[u8]) -> Result<TapEnd, ParseError> {
    match strip_newline(input) {
        b"read" => Ok(TapEnd::Read),
        b"stamp" => Ok(TapEnd::Stamp),
        _ => Err(ParseError::NotTapEnd),
    }
}

/// Parses an unsigned decimal number (no sign, no spaces, at most 10 digits).
pub fn parse_u32(input: &[u8]) -> Result<u32, ParseError> {
    if input.is_empty() || input.len() > 10 {
        return Err(ParseError::NotNumber);
    }
    let mut value: u32 = 0;
    for &b in input {
        if !b.is_ascii_digit() {
            return Err(ParseError::NotNumber);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(ParseError::OutOfRange)?;
    }
    Ok(value)
}

/// Checks that `value` is a power of two in `min..=max`.
pub fn check_pow2(value: u32, min: u32, max: u32) -> Result<u32, ParseError> {
    if value.is_power_of_two() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ParseError::OutOfRange)
    }
}

/// Checks that `value` is in `min..=max`.
pub fn check_range(value: u32, min: u32, max: u32) -> Result<u32, ParseError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ParseError::OutOfRange)
    }
}

/// One outer device, by name or by ifindex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DevSpec {
    /// An interface index, as in `ip link`.
    Index(u32),
    /// An interface name (`len` bytes of `name`).
    Name {
        /// The name's bytes, zero-padded.
        name: [u8; IFNAMSIZ_MAX],
        /// The name's length.
        len: u8,
    },
}

impl DevSpec {
    /// The name, for a [`DevSpec::Name`].
    pub fn name(&self) -> Option<&[u8]> {
        match self {
            DevSpec::Name { name, len } => name.get(..usize::from(*len)),
            DevSpec::Index(_) => None,
        }
    }
}

impl fmt::Display for DevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevSpec::Index(i) => write!(f, "{i}"),
            DevSpec::Name { .. } => {
                for &b in self.name().unwrap_or(&[]) {
                    // Names were validated to be printable ASCII.
                    f.write_fmt(format_args!("{}", char::from(b)))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for DevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A list of up to [`MAX_OUTER_DEVS`] distinct outer devices.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevList {
    devs: [DevSpec; MAX_OUTER_DEVS],
    len: usize,
}

impl Default for DevList {
    fn default() -> Self {
        Self::new()
    }
}

impl DevList {
    /// The empty list.
    pub const fn new() -> Self {
        Self {
            devs: [DevSpec::Index(0); MAX_OUTER_DEVS],
            len: 0,
        }
    }

    /// The devices, in the order given.
    pub fn as_slice(&self) -> &[DevSpec] {
        self.devs.get(..self.len).unwrap_or(&[])
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The list without the device given by ifindex `ifindex`, and whether
    /// it was there. Devices given by name are kept.
    pub fn without_index(&self, ifindex: u32) -> (DevList, bool) {
        let mut out = DevList::new();
        let mut found = false;
        for dev in self.as_slice() {
            if *dev == DevSpec::Index(ifindex) {
                found = true;
            } else {
                // Cannot fail: fewer and still distinct.
                let _ = out.push(*dev);
            }
        }
        (out, found)
    }

    fn push(&mut self, dev: DevSpec) -> Result<(), ParseError> {
        if self.as_slice().contains(&dev) {
            return Err(ParseError::Duplicate);
        }
        let slot = self
            .devs
            .get_mut(self.len)
            .ok_or(ParseError::TooManyDevices)?;
        *slot = dev;
        self.len = self.len.wrapping_add(1);
        Ok(())
    }
}

impl fmt::Display for DevList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, dev) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dev}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DevList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses one device: all digits is an ifindex, anything else a name.
fn parse_dev(token: &[u8]) -> Result<DevSpec, ParseError> {
    if token.is_empty() {
        return Err(ParseError::EmptyDevice);
    }
    if token.iter().all(u8::is_ascii_digit) {
        let index = parse_u32(token).map_err(|_| ParseError::BadIndex)?;
        return match index {
            1..=0x7fff_ffff => Ok(DevSpec::Index(index)),
            _ => Err(ParseError::BadIndex),
        };
    }
    if token.len() > IFNAMSIZ_MAX {
        return Err(ParseError::NameTooLong);
    }
    // The kernel's dev_valid_name() also forbids these; mace further keeps
    // names printable ASCII so that they can be logged verbatim.
    if token == b"." || token == b".." {
        return Err(ParseError::BadName);
    }
    if !token
        .iter()
        .all(|&b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b',')
    {
        return Err(ParseError::BadName);
    }
    let mut name = [0u8; IFNAMSIZ_MAX];
    name.get_mut(..token.len())
        .ok_or(ParseError::NameTooLong)?
        .copy_from_slice(token);
    Ok(DevSpec::Name {
        name,
        len: token.len() as u8,
    })
}

/// Parses a device list: names and/or ifindexes separated by commas, e.g.
/// `eth0,3`, with an optional trailing newline. The empty string is the empty
/// list.
pub fn parse_dev_list(input: &[u8]) -> Result<DevList, ParseError> {
    let input = strip_newline(input);
    let mut list = DevList::new();
    if input.is_empty() {
        return Ok(list);
    }
    for token in input.split(|&b| b == b',') {
        list.push(parse_dev(token)?)?;
    }
    Ok(list)
}
