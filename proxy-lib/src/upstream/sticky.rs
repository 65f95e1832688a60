//! The sticky-session cookie: `<endpoint id>.<truncated HMAC-SHA256>`, both
//! in hex. Only a cookie signed with our key is honoured.

use std::fmt::Write;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use sha2::Sha256;

use crate::config::StickyCookie;

/// Bytes of the HMAC kept in the cookie.
const TAG_LEN: usize = 16;

fn mac(key: &[u8; 32], id: u64) -> Hmac<Sha256> {
    // HMAC takes keys of any length; 32 bytes cannot be refused.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(&id.to_be_bytes());
    mac
}

/// The endpoint id named by a validly signed cookie in `headers`.
pub(crate) fn find(headers: &HeaderMap, cookie: &StickyCookie) -> Option<u64> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == &*cookie.name)
        .find_map(|(_, value)| verify(value, &cookie.key))
}

fn verify(value: &str, key: &[u8; 32]) -> Option<u64> {
    let (id, tag) = value.split_once('.')?;
    if id.len() != 16 || tag.len() != TAG_LEN * 2 {
        return None;
    }
    let id = u64::from_str_radix(id, 16).ok()?;
    let mut bytes = [0u8; TAG_LEN];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(tag.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    mac(key, id).verify_truncated_left(&bytes).ok()?;
    Some(id)
}

/// The `Set-Cookie` value pinning the client to endpoint `id`.
pub(crate) fn set_cookie(id: u64, cookie: &StickyCookie, secure: bool) -> Option<HeaderValue> {
    let tag = mac(&cookie.key, id).finalize().into_bytes();
    let mut value = format!("{}={id:016x}.", cookie.name);
    for byte in &tag[..TAG_LEN] {
        let _ = write!(value, "{byte:02x}");
    }
    value.push_str("; Path=/; HttpOnly; SameSite=Lax");
    if let Some(max_age) = cookie.max_age {
        let _ = write!(value, "; Max-Age={}", max_age.as_secs());
    }
    if secure {
        value.push_str("; Secure");
    }
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_cookies_round_trip_and_forgeries_fail() {
        let cookie = StickyCookie::default();
        let set = set_cookie(42, &cookie, false).unwrap();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {pair}")).unwrap(),
        );
        assert_eq!(find(&headers, &cookie), Some(42));

        let forged = pair.replace(&format!("{:016x}", 42u64), &format!("{:016x}", 43u64));
        headers.insert(COOKIE, HeaderValue::from_str(&forged).unwrap());
        assert_eq!(find(&headers, &cookie), None);

        let other_key = StickyCookie::default();
        headers.insert(COOKIE, HeaderValue::from_str(&pair).unwrap());
        assert_eq!(find(&headers, &other_key), None);
    }
}
