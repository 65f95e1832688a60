//! Read buffers set aside by connections that went idle, for the next
//! connection that has bytes to read. An idle connection holds no buffer,
//! yet a busy keep-alive connection does not pay an allocation of a few
//! KiB (which the allocator's per-thread cache does not hold) per request.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread; beyond these, an idle connection's buffer is
/// freed.
const KEPT: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with room for `room` bytes: a spare one if there is one.
pub(super) fn take(room: usize) -> BytesMut {
    let mut buf = SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_default();
    buf.reserve(room);
    buf
}

/// Sets aside an empty buffer that is no longer needed.
pub(super) fn give(buf: BytesMut) {
    if buf.capacity() == 0 || !buf.is_empty() {
        return;
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEPT {
            spare.push(buf);
        }
    });
}
