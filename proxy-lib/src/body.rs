//! Request and response bodies as the proxy streams them.

mod buffered;
mod client;
mod h3;
mod request;
mod response;

pub(crate) use buffered::{BufferPolicy, DiskBudget, buffer};
pub(crate) use client::ClientBody;
pub(crate) use h3::H3RequestBody;
pub(crate) use request::{BodyState, RequestBody, prefetch};
pub use response::ResponseBody;
