//! Mutual TLS on the transport seam: [`TlsTransport`] wraps another [`Transport`] so that every
//! connection it accepts or opens is TLS 1.2/1.3 (rustls on ring) with a certificate on both
//! sides, each checked against one CA.
//!
//! - Accepting: the peer must present a certificate that chains to the CA (any name: the CA is
//!   the cluster's identity). A plaintext peer, one without a certificate, or one signed by
//!   another CA fails the handshake; the connection is dropped and logged, and the listener goes
//!   on. Handshakes run concurrently, each bounded by [`HANDSHAKE_TIMEOUT_MS`].
//! - Connecting: the server's certificate must chain to the CA *and* name the host dialed (its
//!   DNS name or IP address, as `rookery certs issue --dns/--ip` writes them).
//! - Reloading: the PEM files are read again when one of them changes (checked every
//!   [`RELOAD_CHECK_INTERVAL_MS`]); new connections use the new material, established ones keep
//!   theirs. Material that does not load is refused with a warning and the previous kept.
//!
//! gRPC runs over it unchanged: tonic sees byte streams and speaks `http://` inside them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::StreamExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::net::{Connection, Incoming, SharedTransport, Transport};

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How often the PEM files are checked for a change.
pub const RELOAD_CHECK_INTERVAL_MS: u64 = 2_000;
/// Accepted connections that finished their handshake and wait for the server to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// Where a node's TLS material is: its certificate chain, its private key, and the CA that
/// signs every node of the cluster. All PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds no {what}")]
    Missing { path: PathBuf, what: &'static str },
    #[error("invalid TLS material: {0}")]
    Invalid(String),
}

/// The configurations built from one reading of the files.
struct Material {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    stamps: Vec<Option<(SystemTime, u64)>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_owned(),
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?
        .ok_or_else(|| TlsError::Missing {
            path: path.to_owned(),
            what: "PEM private key",
        })
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl TlsFiles {
    fn paths(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.ca]
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths().into_iter().map(stamp).collect()
    }

    fn load(&self) -> Result<Material, TlsError> {
        let stamps = self.stamps();
        let chain = certificates(&self.cert)?;
        let key = private_key(&self.key)?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&self.ca)? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Invalid(format!("{}: {e}", self.ca.display())))?;
        }
        let roots = Arc::new(roots);
        let invalid = |e: rustls::Error| TlsError::Invalid(e.to_string());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(invalid)?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(invalid)?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Material {
            server: Arc::new(server),
            client: Arc::new(client),
            stamps,
        })
    }
}

struct Shared {
    files: TlsFiles,
    material: RwLock<Material>,
}

impl Shared {
    fn server(&self) -> Arc<ServerConfig> {
        self.material.read().expect("tls material").server.clone()
    }

    fn client(&self) -> Arc<ClientConfig> {
        self.material.read().expect("tls material").client.clone()
    }

    /// Reads the files again if any changed since the last reading.
    fn reload_if_changed(&self) {
        let now = self.files.stamps();
        if now == self.material.read().expect("tls material").stamps {
            return;
        }
        match self.files.load() {
            Ok(material) => {
                *self.material.write().expect("tls material") = material;
                tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificates");
            }
            Err(e) => {
                // Keep the stamps of the last good reading, so the next check tries again.
                tracing::warn!(error = %e, "the changed TLS files do not load; keeping the previous certificates");
            }
        }
    }
}

/// A transport whose connections are mutually authenticated TLS over `inner`'s.
pub struct TlsTransport {
    inner: SharedTransport,
    shared: Arc<Shared>,
}

impl TlsTransport {
    /// Loads the files (failing if they do not make a usable configuration) and starts
    /// watching them for changes. Needs a tokio runtime.
    pub fn new(inner: SharedTransport, files: TlsFiles) -> Result<TlsTransport, TlsError> {
        let material = files.load()?;
        let shared = Arc::new(Shared {
            files,
            material: RwLock::new(material),
        });
        tokio::spawn(watch_files(Arc::downgrade(&shared)));
        Ok(TlsTransport { inner, shared })
    }

    pub fn shared(inner: SharedTransport, files: TlsFiles) -> Result<SharedTransport, TlsError> {
        Ok(Arc::new(TlsTransport::new(inner, files)?))
    }
}

/// Checks the files until the transport is dropped.
async fn watch_files(shared: Weak<Shared>) {
    let mut every = tokio::time::interval(Duration::from_millis(RELOAD_CHECK_INTERVAL_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Small files, read rarely: a blocking read here costs less than a thread hop.
        shared.reload_if_changed();
    }
}

/// The host part of `host:port`, as a TLS server name (a DNS name or an IP address).
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a TLS server name: {e}"),
        )
    })
}

impl Transport for TlsTransport {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<(String, Incoming)>> {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let (local, mut plain) = inner.bind(addr).await?;
            let (tx, rx) = mpsc::channel::<io::Result<Connection>>(ACCEPTED_BACKLOG);
            let listener = local.clone();
            tokio::spawn(async move {
                while let Some(accepted) = plain.next().await {
                    let connection = match accepted {
                        Ok(connection) => connection,
                        Err(e) => {
                            if tx.send(Err(e)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    let acceptor = TlsAcceptor::from(shared.server());
                    let tx = tx.clone();
                    let listener = listener.clone();
                    tokio::spawn(async move {
                        let peer = connection.peer().map(str::to_owned);
                        let handshake = tokio::time::timeout(
                            Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                            acceptor.accept(connection),
                        )
                        .await;
                        match handshake {
                            Ok(Ok(stream)) => {
                                let _ = tx.send(Ok(Connection::with_peer(stream, peer))).await;
                            }
                            Ok(Err(e)) => tracing::warn!(
                                listener = %listener,
                                peer = peer.as_deref().unwrap_or("?"),
                                error = %e,
                                "refused a connection: TLS handshake failed"
                            ),
                            Err(_) => tracing::warn!(
                                listener = %listener,
                                peer = peer.as_deref().unwrap_or("?"),
                                "refused a connection: no TLS handshake within {HANDSHAKE_TIMEOUT_MS} ms"
                            ),
                        }
                    });
                }
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx).boxed();
            Ok((local, incoming))
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Connection>> {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let name = server_name(&addr)?;
            let plain = inner.connect(addr.clone()).await?;
            let peer = plain.peer().map(str::to_owned);
            let connector = TlsConnector::from(shared.client());
            let stream = tokio::time::timeout(
                Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                connector.connect(name, plain),
            )
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no TLS handshake with {addr} within {HANDSHAKE_TIMEOUT_MS} ms"),
                )
            })?
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}")))?;
            Ok(Connection::with_peer(stream, peer))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        assert!(matches!(
            server_name("127.0.0.1:50002").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:50002").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("placement-0.placement:50005").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/node.pem".into(),
            key: "/nonexistent/node-key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
        };
        let error = files.load().err().expect("no files");
        assert!(
            error.to_string().contains("/nonexistent/node.pem"),
            "{error}"
        );
    }
}
