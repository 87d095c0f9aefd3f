// SPDX-License-Identifier: GPL-2.0

//! A [`core::fmt::Write`] sink over a fixed byte buffer.
//!
//! Used to format sysfs files and log messages without allocating.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use core::fmt;

/// Writes formatted text into a borrowed buffer; fails when it is full.
pub struct TextBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> TextBuf<'a> {
    /// An empty text over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Write for TextBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
