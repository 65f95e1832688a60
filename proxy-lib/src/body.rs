//! Request and response bodies as the proxy streams them.

mod client;
mod request;
mod response;

pub(crate) use client::ClientBody;
pub(crate) use request::{BodyState, RequestBody, prefetch};
pub use response::ResponseBody;
