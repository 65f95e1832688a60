//! The identity a verified client certificate carries, in one line that an
//! upstream can read from a header.

use std::fmt::Write as _;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The subject and subject alternative names of a client certificate, as
/// `Subject="CN=alice,O=Example";DNS=alice.example;URI=spiffe://x/y;Email=a@b`
/// (Envoy's `X-Forwarded-Client-Cert` spelling). `None` if the certificate
/// cannot be parsed. Quotes and backslashes in the subject are escaped;
/// names containing `;`, `,`, `"` or control characters are left out.
pub fn client_identity(cert: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let mut out = String::from("Subject=\"");
    for c in cert.subject().to_string().chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let (kind, value) = match name {
                GeneralName::DNSName(v) => ("DNS", (*v).to_owned()),
                GeneralName::URI(v) => ("URI", (*v).to_owned()),
                GeneralName::RFC822Name(v) => ("Email", (*v).to_owned()),
                GeneralName::IPAddress(bytes) => match ip(bytes) {
                    Some(ip) => ("IP", ip),
                    None => continue,
                },
                _ => continue,
            };
            if value
                .chars()
                .any(|c| matches!(c, ';' | ',' | '"') || c.is_control())
            {
                continue;
            }
            let _ = write!(out, ";{kind}={value}");
        }
    }
    Some(out)
}

/// A certificate's subject (`CN=origin,O=Example`) and serial number in
/// lower-case hex, for logs. `None` if the certificate cannot be parsed.
pub fn subject_and_serial(cert: &[u8]) -> Option<(String, String)> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let subject = cert
        .subject()
        .to_string()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let serial = cert.raw_serial().iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    Some((subject, serial))
}

fn ip(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}
