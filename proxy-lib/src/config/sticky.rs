//! Settings of the cookie that pins a client to an upstream.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Default name of the sticky-session cookie.
pub const DEFAULT_STICKY_COOKIE_NAME: &str = "portcullis_upstream";

/// The sticky-session cookie: its name, lifetime, and the key that signs it.
///
/// The cookie names an upstream and carries an HMAC over that name, so a
/// client cannot steer itself to an upstream of its choosing. Without a
/// configured secret the key is random per process: cookies then survive
/// config reloads but not restarts, and servers of a fleet do not honour each
/// other's cookies.
#[derive(Clone)]
pub struct StickyCookie {
    pub(crate) name: Box<str>,
    pub(crate) key: [u8; 32],
    pub(crate) max_age: Option<Duration>,
}

impl StickyCookie {
    /// A cookie called `name` with a random key and a session lifetime.
    pub fn new(name: &str) -> Result<Self> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(Error::config(format!("invalid cookie name {name:?}")));
        }
        Ok(Self {
            name: name.into(),
            key: rand::random(),
            max_age: None,
        })
    }

    /// Derives the signing key from `secret`, so that every server sharing the
    /// secret accepts the same cookies. Default: a random key.
    pub fn secret(&mut self, secret: &[u8]) -> &mut Self {
        self.key = Sha256::digest(secret).into();
        self
    }

    /// `Max-Age` of the cookie. Default: none (a session cookie).
    pub fn max_age(&mut self, max_age: Option<Duration>) -> &mut Self {
        self.max_age = max_age;
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for StickyCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_STICKY_COOKIE_NAME.into(),
            key: rand::random(),
            max_age: None,
        }
    }
}

impl fmt::Debug for StickyCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyCookie")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("max_age", &self.max_age)
            .finish()
    }
}
