//! Certificates made by rcgen for the test: a root CA, intermediates,
//! server and client leaves, written to files the proxy loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, RevokedCertParams,
    SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The crypto provider the binary installs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate authority: a root, or an intermediate under one.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
    /// This CA and those above it, without the root: what a leaf it issues
    /// sends after itself. Empty for a root.
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
}

/// A certificate and its key, as files and as DER.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate's serial number, unique in the process.
    pub serial: u64,
    /// The certificate, then the intermediates that issued it.
    pub chain: Vec<CertificateDer<'static>>,
    pub chain_pem: String,
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

impl Ca {
    pub fn root(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            chain: Vec::new(),
            chain_pem: String::new(),
        }
    }

    /// An intermediate CA issued by this one.
    pub fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            chain,
            chain_pem: cert.pem() + &self.chain_pem,
        }
    }

    /// A server certificate for `names` (DNS names or `*.` wildcards).
    pub fn server(&self, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A server certificate for `names` valid from `not_before` to
    /// `not_after` (whole seconds).
    pub fn server_between(
        &self,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        self.sign(params)
    }

    /// A server certificate for `names` whose validity ended in 2002.
    pub fn expired_server(&self, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        self.sign(params)
    }

    /// A client certificate with common name `cn` and a key of algorithm
    /// `alg`.
    pub fn client_with(&self, cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Leaf {
        self.sign_with(client_params(cn, &[]), KeyPair::generate_for(alg).unwrap())
    }

    /// A client certificate with common name `cn` and `names` as DNS SANs.
    pub fn client(&self, cn: &str, names: &[&str]) -> Leaf {
        self.sign(client_params(cn, names))
    }

    /// A client certificate with common name `cn` whose validity ends
    /// `lifetime` from now (to the second, rounded up).
    pub fn client_expiring(&self, cn: &str, lifetime: Duration) -> Leaf {
        let mut params = client_params(cn, &[]);
        let end = SystemTime::now() + lifetime + Duration::from_secs(1);
        let secs = end.duration_since(UNIX_EPOCH).unwrap().as_secs();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
        self.sign(params)
    }

    /// A revocation list from this CA revoking `revoked` (none: a list that
    /// revokes nothing), valid for a day, as PEM.
    pub fn crl(&self, revoked: &[&Leaf]) -> String {
        self.crl_between(revoked, -60, 86_400)
    }

    /// A revocation list whose `nextUpdate` passed an hour ago.
    pub fn stale_crl(&self, revoked: &[&Leaf]) -> String {
        self.crl_between(revoked, -86_400, -3_600)
    }

    /// A list issued `from` seconds from now, next updated `to` seconds from
    /// now.
    fn crl_between(&self, revoked: &[&Leaf], from: i64, to: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let at = |secs: i64| time::OffsetDateTime::from_unix_timestamp(now + secs).unwrap();
        let params = CertificateRevocationListParams {
            this_update: at(from),
            next_update: at(to),
            crl_number: SerialNumber::from(next_serial()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|leaf| RevokedCertParams {
                    serial_number: SerialNumber::from(leaf.serial),
                    revocation_time: at(from),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// A server certificate for `names` with a key of algorithm `alg`
    /// (`rcgen::PKCS_RSA_SHA256`, `PKCS_ECDSA_P384_SHA384`, `PKCS_ED25519`…).
    pub fn server_with(&self, names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign_with(params, KeyPair::generate_for(alg).unwrap())
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        self.sign_with(params, KeyPair::generate().unwrap())
    }

    fn sign_with(&self, mut params: CertificateParams, key: KeyPair) -> Leaf {
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Leaf {
            serial,
            chain,
            chain_pem: cert.pem() + &self.chain_pem,
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `dir/name` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

impl Leaf {
    /// Writes `dir/NAME.crt` and `dir/NAME.key`; returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::try_from(self.key_der.clone()).unwrap()
    }

    /// The chain and key as rustls serves them.
    pub fn certified(&self) -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::from_der(self.chain.clone(), self.key(), &provider()).unwrap())
    }

    /// The key in its algorithm's own format rather than PKCS#8: PKCS#1
    /// (`RSA PRIVATE KEY`) for RSA, SEC1 (`EC PRIVATE KEY`) for EC.
    pub fn legacy_key_pem(&self, label: &str) -> String {
        pem(label, &inner_key(&self.key_der))
    }
}

/// A key format the proxy reads.
pub type KeyFormat = (
    &'static str,
    &'static rcgen::SignatureAlgorithm,
    Option<&'static str>,
);

/// Every private-key format the proxy reads: a name, the key's algorithm,
/// and the PEM label of the algorithm's own format (PKCS#1 for RSA, SEC1
/// for EC), or `None` for PKCS#8.
pub fn key_formats() -> [KeyFormat; 6] {
    [
        ("ec-pkcs8", &rcgen::PKCS_ECDSA_P256_SHA256, None),
        (
            "ec-sec1",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Some("EC PRIVATE KEY"),
        ),
        (
            "ec-p384-sec1",
            &rcgen::PKCS_ECDSA_P384_SHA384,
            Some("EC PRIVATE KEY"),
        ),
        ("rsa-pkcs8", &rcgen::PKCS_RSA_SHA256, None),
        (
            "rsa-pkcs1",
            &rcgen::PKCS_RSA_SHA256,
            Some("RSA PRIVATE KEY"),
        ),
        ("ed25519", &rcgen::PKCS_ED25519, None),
    ]
}

/// The key inside a PKCS#8 document: PKCS#1 for RSA, SEC1 for EC (the
/// OCTET STRING after the version and the algorithm).
pub fn inner_key(pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, start) = match input[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let count = (n & 0x7f) as usize;
                let len = input[2..2 + count]
                    .iter()
                    .fold(0usize, |acc, &b| acc << 8 | b as usize);
                (len, 2 + count)
            }
        };
        (tag, &input[start..start + len], &input[start + len..])
    }
    let (_, body, _) = tlv(pkcs8); // PrivateKeyInfo
    let (_, _, rest) = tlv(body); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest); // privateKey
    assert_eq!(tag, 0x04);
    key.to_vec()
}

/// `der` as a PEM section labelled `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Serial numbers unique in the process (and unlikely to repeat across
/// processes).
fn next_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 & 0x0fff_ffff_ffff_ffff);
    let _ = NEXT.compare_exchange(0, start.max(1), Ordering::AcqRel, Ordering::Acquire);
    NEXT.fetch_add(1, Ordering::AcqRel)
}

fn client_params(cn: &str, names: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|n| SanType::DnsName(n.to_string().try_into().unwrap()))
        .collect();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}
