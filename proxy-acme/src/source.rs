//! The certificates ACME keeps, by app, served as a certificate source;
//! starting the orders and stopping them.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use proxy_certs::CertificateSource;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_acme::{AcmeConfig, AcmeState, ResolvesServerCertAcme};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cache::{StorageCache, account_key};
use crate::error::Error;
use crate::orders;
use crate::settings::{AcmeSettings, check_names};

/// What is known of one app's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStatus {
    /// The app, as it was named to [`Acme::new`].
    pub app: String,
    /// The names its certificate is ordered for.
    pub names: Vec<String>,
    /// Whether a certificate is served for them.
    pub serving: bool,
    /// When the certificate last read or issued expires.
    pub not_after: Option<SystemTime>,
    /// When it is renewed: two thirds into its lifetime.
    pub renew_at: Option<SystemTime>,
    /// The reason the last order or storage operation failed, cleared when
    /// a certificate is issued.
    pub last_error: Option<String>,
}

/// One app's certificate as the orders and the listeners share it.
#[derive(Debug)]
pub(crate) struct Managed {
    status: Mutex<AppStatus>,
    serving: AtomicBool,
    /// Seconds since the epoch; 0 when unknown.
    not_after: AtomicU64,
    checked: watch::Sender<bool>,
}

impl Managed {
    fn new(app: String, names: Vec<String>) -> Self {
        Self {
            status: Mutex::new(AppStatus {
                app,
                names,
                serving: false,
                not_after: None,
                renew_at: None,
                last_error: None,
            }),
            serving: AtomicBool::new(false),
            not_after: AtomicU64::new(0),
            checked: watch::Sender::new(false),
        }
    }

    pub(crate) fn status(&self) -> AppStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut AppStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// A certificate of `lifetime` was read from the cache or issued.
    pub(crate) fn seen(&self, lifetime: Option<(SystemTime, SystemTime)>) {
        let Some((not_before, not_after)) = lifetime else {
            return;
        };
        let renew_at = not_after
            .duration_since(not_before)
            .ok()
            .and_then(|lifetime| not_before.checked_add(lifetime * 2 / 3));
        let seconds = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.not_after.store(seconds, Ordering::Release);
        self.update(|status| {
            status.not_after = Some(not_after);
            status.renew_at = renew_at;
        });
    }

    /// The cache was looked at: whatever it held is in service (or there
    /// was nothing to serve).
    pub(crate) fn cache_checked(&self) {
        self.checked.send_replace(true);
    }

    /// A certificate was put in service.
    pub(crate) fn deployed(&self, issued: bool) {
        self.serving.store(true, Ordering::Release);
        self.update(|status| {
            status.serving = true;
            if issued {
                status.last_error = None;
            }
        });
        self.cache_checked();
    }

    pub(crate) fn failed(&self, reason: String) {
        self.update(|status| status.last_error = Some(reason));
    }

    /// Serving, and not past the certificate's expiry: an expired cached
    /// certificate is refused while its successor is ordered.
    fn serves(&self) -> bool {
        if !self.serving.load(Ordering::Acquire) {
            return false;
        }
        let not_after = self.not_after.load(Ordering::Acquire);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        not_after == 0 || now < not_after
    }
}

struct Entry {
    managed: Arc<Managed>,
    resolver: Arc<ResolvesServerCertAcme>,
    /// Served while there is no certificate, if the app asked for it.
    stand_in: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Entry {
    // Not the resolver's: it holds the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("managed", &self.managed)
            .field("stand_in", &self.stand_in.is_some())
            .finish_non_exhaustive()
    }
}

/// An app whose certificate is ordered: its name (for the log and
/// [`AppStatus`]) and its server names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeApp {
    name: String,
    names: Vec<String>,
    stand_in: bool,
}

impl AcmeApp {
    /// A certificate for `names`, in this order, for the app `name`.
    pub fn new(
        name: impl Into<String>,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            names: names.into_iter().map(Into::into).collect(),
            stand_in: false,
        }
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names its certificate is ordered for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// While the app has no certificate, serves a self-signed one made at
    /// start instead of refusing its handshakes: clients that accept it
    /// (or are told to) reach the app before the CA answers. Default: off.
    pub fn self_signed_stand_in(mut self, on: bool) -> Self {
        self.stand_in = on;
        self
    }
}

/// The certificates of every app [`Acme`] manages, as a certificate
/// source: a name is served once its app's certificate is (from the cache
/// or newly issued), and TLS-ALPN-01 validations are answered for the names
/// being ordered.
#[derive(Debug)]
pub struct AcmeSource {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl AcmeSource {
    /// Every app's certificate, in the order the apps were given.
    pub fn status(&self) -> Vec<AppStatus> {
        self.entries.iter().map(|e| e.managed.status()).collect()
    }

    /// The names of every app.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    fn entry(&self, server_name: Option<&str>) -> Option<&Entry> {
        let index = self
            .by_name
            .get(proxy_certs::normalized_name(server_name?).as_ref())?;
        self.entries.get(*index)
    }
}

impl CertificateSource for AcmeSource {
    fn serves(&self, server_name: Option<&str>) -> bool {
        self.entry(server_name)
            .is_some_and(|e| e.stand_in.is_some() || e.managed.serves())
    }

    /// The certificates issued or read and served (not the stand-ins).
    fn expiries(&self) -> Vec<proxy_certs::Expiry> {
        self.status()
            .into_iter()
            .filter(|status| status.serving)
            .filter_map(|status| {
                Some(proxy_certs::Expiry {
                    name: status.names.first()?.clone(),
                    not_after: status.not_after?,
                })
            })
            .collect()
    }

    fn tls_alpn_challenge(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !proxy_certs::is_tls_alpn_challenge(&hello) {
            return None;
        }
        // rustls-acme's resolver answers a validation hello with the
        // challenge certificate of the name it is validating, if any.
        self.entry(hello.server_name())?.resolver.resolve(hello)
    }
}

impl ResolvesServerCert for AcmeSource {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if proxy_certs::is_tls_alpn_challenge(&hello) {
            return None;
        }
        let entry = self.entry(hello.server_name())?;
        if !entry.managed.serves() {
            return entry.stand_in.clone();
        }
        entry.resolver.resolve(hello)
    }
}

/// Certificates for a set of apps, ordered from one ACME directory.
pub struct Acme {
    settings: AcmeSettings,
    source: Arc<AcmeSource>,
    states: Vec<(Arc<Managed>, AcmeState<io::Error>)>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("settings", &self.settings)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// One certificate per app of `apps`, each ordered on its own. Nothing
    /// is asked of the CA or the storage until [`start`](Self::start).
    pub fn new(
        settings: AcmeSettings,
        apps: impl IntoIterator<Item = AcmeApp>,
    ) -> Result<Self, Error> {
        let client = settings.client_config()?;
        let mut entries = Vec::new();
        let mut by_name = HashMap::new();
        let mut states = Vec::new();
        for AcmeApp {
            name: app,
            names,
            stand_in,
        } in apps
        {
            let names: Vec<String> = names
                .iter()
                .map(|n| proxy_certs::normalized_name(n).into_owned())
                .collect();
            check_names(&names).map_err(|e| Error::new(e.field, format!("{app}: {}", e.reason)))?;
            for name in &names {
                if by_name.insert(name.clone(), entries.len()).is_some() {
                    return Err(Error::new(
                        "names",
                        format!("{name} is named by two apps: a certificate is ordered once"),
                    ));
                }
            }
            let stand_in = match stand_in {
                true => Some(self_signed(&names, &settings).map_err(|reason| {
                    Error::new("names", format!("{app}: no self-signed stand-in: {reason}"))
                })?),
                false => None,
            };
            let managed = Arc::new(Managed::new(app, names.clone()));
            let cache = StorageCache {
                storage: settings.storage.clone(),
                app: managed.clone(),
            };
            let state = AcmeConfig::new_with_client_config(&names, client.clone())
                .directory(&settings.directory)
                .contact(&settings.contacts)
                .cache(cache)
                .state();
            entries.push(Entry {
                managed: managed.clone(),
                resolver: state.resolver(),
                stand_in,
            });
            states.push((managed, state));
        }
        Ok(Self {
            settings,
            source: Arc::new(AcmeSource { entries, by_name }),
            states,
        })
    }

    /// The certificate source to give the TLS listeners.
    pub fn source(&self) -> Arc<AcmeSource> {
        self.source.clone()
    }

    /// Starts the orders on the current tokio runtime: the cached
    /// certificates are read and served, the missing ones ordered, and
    /// each renewed when due, until the returned handle is dropped.
    pub fn start(self) -> Running {
        let Self {
            settings,
            source,
            states,
        } = self;
        let task = tokio::spawn(async move {
            prepare_account(&settings).await;
            let mut orders = tokio::task::JoinSet::new();
            for (managed, state) in states {
                orders.spawn(orders::drive(state, managed));
            }
            while let Some(ended) = orders.join_next().await {
                if let Err(error) = ended {
                    warn!(%error, "an app's certificate orders stopped");
                }
            }
        });
        Running { source, task }
    }
}

/// A self-signed certificate for `names`, with a new ECDSA P-256 key.
fn self_signed(names: &[String], settings: &AcmeSettings) -> Result<Arc<CertifiedKey>, String> {
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    CertifiedKey::from_der(vec![made.cert.der().clone()], key, &settings.provider)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Makes the account key before any app needs it, so that apps ordering at
/// once share one account rather than each making its own.
async fn prepare_account(settings: &AcmeSettings) {
    let key = account_key(&settings.directory, &settings.contacts);
    match settings.storage.load(&key).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let pkcs8 = rustls_acme::acme::Account::generate_key_pair();
            match settings.storage.store(&key, &pkcs8).await {
                Ok(()) => info!(directory = %settings.directory, key, "ACME account key made"),
                Err(error) => warn!(%error, key, "the ACME account key cannot be stored"),
            }
        }
        Err(error) => warn!(%error, key, "the ACME account key cannot be read"),
    }
}

/// Orders running in the background; dropping it stops them (an order
/// under way is abandoned, and made again at the next start).
#[derive(Debug)]
pub struct Running {
    source: Arc<AcmeSource>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until every app's cache was read and what it held is served,
    /// at most `limit`; returns whether that happened in time.
    pub async fn cache_loaded(&self, limit: Duration) -> bool {
        let all = async {
            for entry in &self.source.entries {
                let mut checked = entry.managed.checked.subscribe();
                let _ = checked.wait_for(|&done| done).await;
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }

    /// The certificates being kept.
    pub fn source(&self) -> &Arc<AcmeSource> {
        &self.source
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
