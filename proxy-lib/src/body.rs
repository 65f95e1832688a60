//! Request and response bodies as the proxy streams them.

mod buffered;
mod client;
mod file;
mod h1;
mod h3;
mod request;
mod streaming;

pub(crate) use buffered::{BufferPolicy, DiskBudget, buffer};
pub(crate) use client::ClientBody;
pub(crate) use file::FileBody;
pub(crate) use h1::{H1RequestBody, ReadSide, Returned, skip_rest};
pub(crate) use h3::{H3RequestBody, Malformed};
pub(crate) use request::{RequestBody, prefetch};
pub(crate) use streaming::BodyState;
