//! `--tls-cert`, `--tls-key`, `--tls-ca`: the mutual TLS of every connection between nodes
//! (placement peers, host ↔ placement, host ↔ host), shared by the commands that open them.
//! All three or none; without them those connections are plaintext.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rookery_core::net::{SharedTransport, TcpTransport};
use rookery_core::tls::{TlsFiles, TlsTransport};

#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM certificate (chain) of this node, signed by --tls-ca (`rookery certs issue`).
    #[arg(long, env = "ROOKERY_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROOKERY_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate of the CA every node's certificate must chain to; peers without one,
    /// or signed by another CA, are refused. The three files are read again when they change.
    #[arg(long, env = "ROOKERY_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    pub fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            ca: self.tls_ca.clone()?,
        })
    }

    /// The transport between nodes: mutual TLS over TCP when the files are given, else TCP.
    pub fn transport(&self) -> anyhow::Result<SharedTransport> {
        match self.files() {
            Some(files) => TlsTransport::shared(TcpTransport::shared(), files)
                .context("cannot load the TLS certificates (--tls-cert, --tls-key, --tls-ca)"),
            None => Ok(TcpTransport::shared()),
        }
    }
}
