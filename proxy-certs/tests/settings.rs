//! The server TLS settings: suites narrowed to forward-secret AEAD ones,
//! key exchange groups in the preferred order (TLS 1.2 and the
//! post-quantum group negotiated over real handshakes: proxy-lib/tests/tls.rs).

use proxy_certs::{PREFERRED_GROUPS, hardened};
use rustls::NamedGroup;

#[test]
fn groups_come_in_the_preferred_order_and_suites_are_forward_secret() {
    let provider = hardened(&rustls::crypto::aws_lc_rs::default_provider());
    let groups: Vec<NamedGroup> = provider.kx_groups.iter().map(|g| g.name()).collect();
    assert_eq!(groups[..PREFERRED_GROUPS.len()], PREFERRED_GROUPS);
    for suite in &provider.cipher_suites {
        let name = format!("{:?}", suite.suite());
        let tls13 = suite.tls13().is_some();
        assert!(
            tls13
                || (name.starts_with("TLS_ECDHE_")
                    && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))),
            "{name}"
        );
    }
    assert!(
        provider.cipher_suites.iter().any(|s| s.tls13().is_none()),
        "TLS 1.2 stays available"
    );
}
