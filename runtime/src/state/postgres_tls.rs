//! TLS to PostgreSQL (rustls), as libpq's `sslmode` and `sslrootcert` ask:
//!
//! | `sslmode` | encryption | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | chains to `sslrootcert` |
//! | `verify-full` | always | chains to `sslrootcert` and names the host |
//!
//! `sslrootcert` is a PEM file of CA certificates; `verify-ca` and `verify-full` need it
//! (libpq's default `~/.postgresql/root.crt` is not looked for). Both keys are taken out of
//! the connection string here, since the PostgreSQL driver knows `sslmode` only up to
//! `require` and `sslrootcert` not at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::StateError;

/// How a connection string asks for TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StateError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StateError::Config(format!(
                    "invalid sslmode {other:?}: disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    /// The driver's own mode: it negotiates, this module verifies.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// The TLS settings of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a key/value connection string (or a URL's query);
/// returns the rest and the settings.
pub fn split_tls_settings(text: &str) -> Result<(String, TlsSettings), StateError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StateError> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if let Some((base, query)) = text
        .split_once('?')
        .filter(|_| text.starts_with("postgres://") || text.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for pair in text.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value)? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    let mode = mode.unwrap_or(SslMode::Prefer);
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(StateError::Config(
            "sslmode verify-ca and verify-full need sslrootcert (a PEM file of CA certificates)"
                .into(),
        ));
    }
    Ok((rest, TlsSettings { mode, root_cert }))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, StateError> {
    let text = std::fs::read(path).map_err(|e| {
        StateError::Config(format!("cannot read sslrootcert {}: {e}", path.display()))
    })?;
    let mut store = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut text.as_slice()) {
        let cert =
            cert.map_err(|e| StateError::Config(format!("sslrootcert {}: {e}", path.display())))?;
        store
            .add(cert)
            .map_err(|e| StateError::Config(format!("sslrootcert {}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(StateError::Config(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(store)
}

/// The rustls configuration of the settings; `None` for `disable`.
pub fn client_config(settings: &TlsSettings) -> Result<Option<ClientConfig>, StateError> {
    let mode = match (settings.mode, &settings.root_cert) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (mode, _) => mode,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StateError::Config(format!("TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, &settings.root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, Some(path)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider())
                    .build()
                    .map_err(|e| StateError::Config(format!("TLS: {e}")))?;
            Arc::new(Checked {
                inner: webpki,
                check_name: mode == SslMode::VerifyFull,
            })
        }
        _ => Arc::new(Unchecked(provider())),
    };
    Ok(Some(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// `verify-ca` and `verify-full`: the chain is checked; the name only for `verify-full`.
#[derive(Debug)]
struct Checked {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate, as libpq: encrypted, the server's
/// certificate not checked (its handshake signature still is).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_both_forms() {
        let (rest, tls) =
            split_tls_settings("host=db user=u sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(rest, "host=db user=u");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (rest, tls) =
            split_tls_settings("postgres://u@db/x?sslmode=require&connect_timeout=2").unwrap();
        assert_eq!(rest, "postgres://u@db/x?connect_timeout=2");
        assert_eq!(tls.mode, SslMode::Require);
        let (_, tls) = split_tls_settings("host=db").unwrap();
        assert_eq!(tls.mode, SslMode::Prefer);
        assert!(split_tls_settings("host=db sslmode=verify-ca").is_err());
        assert!(split_tls_settings("host=db sslmode=always").is_err());
    }
}
