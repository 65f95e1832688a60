//! The process's open-files limit, which bounds how many clients it can
//! hold: raised to the hard limit at start (as Go programs and HAProxy do),
//! and the default `max_clients` derived from it.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for listeners, certificate files, logs and the like.
const RESERVE: u64 = 64;
/// The fewest clients the default allows, however low the limit.
const FLOOR: u64 = 64;
/// The most the default allows, whatever the limit ("unlimited" included).
const CEILING: u64 = 1 << 20;

/// Raises the soft open-files limit to the hard one. Returns the limit
/// before and after when it changed.
pub fn raise_limit() -> Option<(u64, u64)> {
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (limit.current, limit.maximum) else {
        return None;
    };
    let wanted = maximum.unwrap_or(CEILING).min(CEILING);
    if wanted <= current {
        return None;
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).ok()?;
    Some((current, wanted))
}

/// `max_clients` when the config does not set it: half the descriptors the
/// process may open (a client can need an upstream connection too), less
/// a reserve, at least 64 and at most 2^20.
pub fn default_max_clients() -> usize {
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(CEILING);
    let clients = (limit.saturating_sub(RESERVE) / 2).clamp(FLOOR, CEILING);
    usize::try_from(clients).unwrap_or(usize::MAX)
}
