//! The client socket as hyper sees it: bytes pass through untouched while
//! the HTTP/1 inspector follows them.

use std::sync::Arc;

use crate::observed::{Observed, ReadObserver};
use crate::server::activity::ConnActivity;
use crate::server::inspect::H1Inspector;

/// A client connection's I/O with its inspector attached.
pub(crate) type ClientIo<T> = Observed<T, ClientObserver>;

/// Feeds what the client sends to the inspector, if one is attached.
#[derive(Debug)]
pub(crate) struct ClientObserver {
    activity: Arc<ConnActivity>,
    inspector: Option<Box<H1Inspector>>,
}

impl ClientObserver {
    pub(crate) fn new(activity: Arc<ConnActivity>, inspector: Option<H1Inspector>) -> Self {
        Self {
            activity,
            inspector: inspector.map(Box::new),
        }
    }
}

impl ReadObserver for ClientObserver {
    fn observe(&mut self, bytes: &[u8]) {
        if let Some(inspector) = &mut self.inspector {
            inspector.feed(bytes, &self.activity);
        }
    }
}
