//! A client-certificate policy: the CA certificates a client's chain must
//! lead to, the revocation lists that can refuse it (re-read while serving),
//! and the [`SessionScope`] of the sessions made under it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tracing::{info, warn};

use crate::crl::{CrlFile, read_crls};
use crate::error::{Error, ErrorKind, Result};
use crate::load::{read_chain, rfc3339};
use crate::sessions::SessionScope;
use crate::upstream::roots_of;
use crate::verified::{self, VerifiedChains};
use crate::watch::{FileStamp, Reload};

/// Who may present a client certificate: a verifier (normally the CA
/// bundle and revocation lists of one app) and the scope of the sessions
/// made under it.
///
/// It is itself a rustls [`ClientCertVerifier`] that asks for a certificate
/// and requires one. Built by [`ClientAuth::load`] from files, its
/// revocation lists are re-read through [`Reload`] while the CA bundle stays
/// as loaded (a new bundle is a new policy, with a new session scope).
/// Each change of verifier bumps [`generation`](Self::generation), so that
/// whoever caches a verdict knows when to ask again.
#[derive(Debug)]
pub struct ClientAuth {
    scope: SessionScope,
    hints: Vec<DistinguishedName>,
    current: ArcSwap<Current>,
    generation: AtomicU64,
    files: Option<PolicyFiles>,
}

#[derive(Debug)]
struct Current {
    verifier: Arc<dyn ClientCertVerifier>,
    crls: Vec<CrlFile>,
    /// Chains this verifier accepted; none for an embedder's verifier,
    /// whose verdicts may depend on more than the chain and the time.
    verified: Option<VerifiedChains>,
}

/// What a policy loaded from files re-reads.
#[derive(Debug)]
struct PolicyFiles {
    ca: PathBuf,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    crl_paths: Vec<PathBuf>,
    stamps: Mutex<Stamps>,
}

/// The revocation lists on disk as they were when last read, and when they
/// last failed to load (so that a broken file is reported once).
#[derive(Debug, Default)]
struct Stamps {
    read: Option<Vec<FileStamp>>,
    failed: Option<Vec<FileStamp>>,
}

impl ClientAuth {
    /// Requires a client certificate chaining to a CA certificate of the
    /// PEM bundle `ca` (the client may send intermediates), not revoked by
    /// the PEM revocation lists in `crls`. With revocation lists, every
    /// certificate of the chain below the trust anchor must be covered by a
    /// list from its issuer, as nginx's `ssl_crl` requires; a list past its
    /// `nextUpdate` still revokes what it names.
    ///
    /// An unreadable or empty bundle or list is an error naming the file,
    /// never a policy that trusts nothing or revokes nothing.
    pub fn load(ca: &Path, crls: Vec<PathBuf>, provider: Arc<CryptoProvider>) -> Result<Self> {
        let certs = read_chain(ca)?;
        let roots = Arc::new(roots_of(ca, &certs)?);
        let scope = SessionScope::of(certs.iter().map(|c| c.as_ref()));
        let lists = crls
            .iter()
            .map(|path| read_crls(path))
            .collect::<Result<Vec<_>>>()?;
        let verifier = build(ca, &roots, &provider, &lists)?;
        let hints = verifier.root_hint_subjects().to_vec();
        let stamps = FileStamp::all(&crls);
        Ok(Self {
            scope,
            hints,
            current: ArcSwap::from_pointee(Current {
                verifier,
                crls: lists,
                verified: Some(VerifiedChains::default()),
            }),
            generation: AtomicU64::new(0),
            files: Some(PolicyFiles {
                ca: ca.to_path_buf(),
                roots,
                provider,
                crl_paths: crls,
                stamps: Mutex::new(Stamps {
                    read: stamps,
                    failed: None,
                }),
            }),
        })
    }

    /// A policy of the embedder's own: `verifier` decides, and sessions
    /// resume among policies of the same `scope` only. Give every distinct
    /// policy its own scope (for instance [`SessionScope::of`] the CA
    /// certificates it trusts), and a new one when it changes.
    pub fn with_verifier(verifier: Arc<dyn ClientCertVerifier>, scope: SessionScope) -> Self {
        Self {
            scope,
            hints: verifier.root_hint_subjects().to_vec(),
            current: ArcSwap::from_pointee(Current {
                verifier,
                crls: Vec::new(),
                verified: None,
            }),
            generation: AtomicU64::new(0),
            files: None,
        }
    }

    /// The scope of sessions made under this policy.
    pub fn scope(&self) -> SessionScope {
        self.scope
    }

    /// Changes with every new verifier (revocation lists re-read).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `chain` (leaf first) passes this policy at `now`.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<(), rustls::Error> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.verify_client_cert(leaf, intermediates, now)
            .map(|_| ())
    }

    /// The revocation lists in service whose `nextUpdate` is before `now`:
    /// their issuer has published newer ones that this proxy has not read.
    pub fn stale_revocation_lists(&self, now: SystemTime) -> Vec<(PathBuf, String)> {
        self.current
            .load()
            .crls
            .iter()
            .filter_map(|file| {
                let next = file.next_update.filter(|next| *next < now)?;
                Some((file.path.clone(), rfc3339(next)))
            })
            .collect()
    }
}

/// The verifier of `roots` with `lists`.
fn build(
    ca: &Path,
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    lists: &[CrlFile],
) -> Result<Arc<dyn ClientCertVerifier>> {
    let crls = lists.iter().flat_map(|file| file.crls.iter().cloned());
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| {
            let path = lists.first().map_or(ca, |file| file.path.as_path());
            Error::new(
                ErrorKind::InvalidRevocationList,
                path,
                format!("client CA bundle or revocation list cannot be used: {e}"),
            )
            .with_source(e)
        })
}

impl Reload for ClientAuth {
    fn files(&self) -> Vec<PathBuf> {
        self.files
            .as_ref()
            .map_or_else(Vec::new, |files| files.crl_paths.clone())
    }

    /// Re-reads the revocation lists if one changed. Lists that no longer
    /// load leave those in service, with a warning.
    fn refresh(&self) -> usize {
        let Some(files) = &self.files else {
            return 0;
        };
        if files.crl_paths.is_empty() {
            return 0;
        }
        let mut stamps = files.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        let now = FileStamp::all(&files.crl_paths);
        if now == stamps.read || (now.is_some() && now == stamps.failed) {
            return 0;
        }
        let loaded = files
            .crl_paths
            .iter()
            .map(|path| read_crls(path))
            .collect::<Result<Vec<_>>>()
            .and_then(|lists| {
                let verifier = build(&files.ca, &files.roots, &files.provider, &lists)?;
                Ok(Current {
                    verifier,
                    crls: lists,
                    verified: Some(VerifiedChains::default()),
                })
            });
        match loaded {
            Ok(current) => {
                self.current.store(Arc::new(current));
                self.generation.fetch_add(1, Ordering::AcqRel);
                *stamps = Stamps {
                    read: now,
                    failed: None,
                };
                info!(ca = %files.ca.display(), "client certificate revocation lists reloaded");
                for (path, next) in self.stale_revocation_lists(SystemTime::now()) {
                    warn!(crl = %path.display(), next_update = %next, "revocation list is past its nextUpdate");
                }
                1
            }
            Err(error) => {
                warn!(%error, "revocation lists not reloaded; the previous ones stay in service");
                stamps.failed = now;
                0
            }
        }
    }
}

impl ClientAuth {
    /// The verifier in service.
    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.load().verifier.clone()
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        self.verifier().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.verifier().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    /// The verifier's verdict, remembered for chains it accepts (see
    /// `verified.rs`): a chain seen before costs a hash.
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let current = self.current.load_full();
        let Some(verified) = &current.verified else {
            return current
                .verifier
                .verify_client_cert(end_entity, intermediates, now);
        };
        let digest = verified::digest(end_entity, intermediates);
        if verified.contains(&digest, now) {
            return Ok(ClientCertVerified::assertion());
        }
        let accepted = current
            .verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        verified.insert(digest, end_entity, intermediates);
        Ok(accepted)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}
