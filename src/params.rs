// SPDX-License-Identifier: GPL-2.0

//! Validation of the module parameters.
//!
//! The parameters are declared in `mace_helpers.c` (the 6.12 `kernel` crate
//! cannot declare them) and checked here when the module initializes: a bad
//! value makes `insmod` fail with `EINVAL` and a log line that names the
//! parameter, says what was wrong and what is accepted.
//!
//! This file uses only `core`; it is compiled into the module and into the
//! host test crate.

#![deny(unsafe_code)]

use crate::parse::{check_pow2, check_range, parse_dev_list, DevList, ParseError};
use core::fmt;

/// Bounds of `table_size` (buckets per correlation table).
pub const TABLE_SIZE: (u32, u32) = (64, 1 << 20);
/// Bounds of `ring_size` (records queued per namespace).
pub const RING_SIZE: (u32, u32) = (16, 1 << 16);
/// Bounds of `max_age_ms` (age of an unmatched packet entry).
pub const MAX_AGE_MS: (u32, u32) = (1, 60_000);
/// Bounds of `max_netns_per_user` (namespaces that capture at once, per user
/// who owns user namespaces); the upper bound is the namespace registry's
/// size.
pub const MAX_NETNS_PER_USER: (u32, u32) = (0, 4096);
/// Bounds of `peer_window_ms` (how long a remote address stays a capturing
/// namespace's peer; 0: every address is one).
pub const PEER_WINDOW_MS: (u32, u32) = (0, 3_600_000);

/// Validated module parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Outer devices to watch from the start.
    pub outer_devs: DevList,
    /// Buckets per correlation table (a power of two).
    pub table_size: u32,
    /// Records queued per namespace (a power of two).
    pub ring_size: u32,
    /// Age after which an unmatched entry is ignored, in milliseconds.
    pub max_age_ms: u32,
    /// Whether probe hits are timed for the self-cost counters.
    pub self_cost: bool,
    /// Most network namespaces that capture at once whose user namespaces
    /// descend from the ones one unprivileged user created (0: none).
    pub max_netns_per_user: u32,
    /// How long a remote address stays a peer of the capturing namespaces
    /// after one of them sent to it (or got an unstamped packet from it),
    /// in milliseconds: outer devices stamp only peers' packets (0: every
    /// packet).
    pub peer_window_ms: u32,
}

/// A rejected module parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub name: &'static str,
    /// What was wrong.
    pub error: ParseError,
    /// What the parameter accepts.
    pub accepted: &'static str,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {}; accepted: {}",
            self.name, self.error, self.accepted
        )
    }
}

impl Params {
    /// Validates the raw parameter values.
    pub fn validate(
        outer_dev: &[u8],
        table_size: u32,
        ring_size: u32,
        max_age_ms: u32,
        self_cost: bool,
        max_netns_per_user: u32,
        peer_window_ms: u32,
    ) -> Result<Params, ParamError> {
        let err = |name, accepted| {
            move |error| ParamError {
                name,
                error,
                accepted,
            }
        };
        Ok(Params {
            outer_devs: parse_dev_list(outer_dev).map_err(err(
                "outer_dev",
                "up to 8 distinct comma-separated interface names or ifindexes, e.g. eth0,3",
            ))?,
            table_size: check_pow2(table_size, TABLE_SIZE.0, TABLE_SIZE.1)
                .map_err(err("table_size", "a power of two from 64 to 1048576"))?,
            ring_size: check_pow2(ring_size, RING_SIZE.0, RING_SIZE.1)
                .map_err(err("ring_size", "a power of two from 16 to 65536"))?,
            max_age_ms: check_range(max_age_ms, MAX_AGE_MS.0, MAX_AGE_MS.1)
                .map_err(err("max_age_ms", "1 to 60000"))?,
            self_cost,
            max_netns_per_user: check_range(
                max_netns_per_user,
                MAX_NETNS_PER_USER.0,
                MAX_NETNS_PER_USER.1,
            )
            .map_err(err("max_netns_per_user", "0 to 4096"))?,
            peer_window_ms: check_range(peer_window_ms, PEER_WINDOW_MS.0, PEER_WINDOW_MS.1)
                .map_err(err("peer_window_ms", "0 to 3600000"))?,
        })
    }
}
