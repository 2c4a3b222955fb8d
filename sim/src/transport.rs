//! The simulated network behind the placement and host code: a
//! [`rookery_core::net::Transport`] over turmoil's `TcpListener`/`TcpStream`.
//!
//! Every socket the real code opens goes through this seam, so all gRPC traffic between
//! placement nodes, hosts and the workload crosses turmoil's links, where the harness delays,
//! holds and drops it. Names (`placement-1:7000`) resolve through turmoil's DNS.

use std::io;

use futures::future::BoxFuture;
use futures::StreamExt;
use rookery_core::net::{Connection, Incoming, SharedTransport, Transport};

/// Turmoil's TCP, used from inside a simulated host (every call must run on the host's runtime).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTransport;

impl SimTransport {
    pub fn shared() -> SharedTransport {
        std::sync::Arc::new(SimTransport)
    }
}

impl Transport for SimTransport {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<(String, Incoming)>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr.as_str()).await?;
            let local = listener.local_addr()?.to_string();
            let incoming = futures::stream::unfold(listener, |listener| async move {
                let accepted = listener
                    .accept()
                    .await
                    .map(|(stream, _)| Connection::new(stream));
                Some((accepted, listener))
            })
            .boxed();
            Ok((local, incoming))
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Connection>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr.as_str()).await?;
            Ok(Connection::new(stream))
        })
    }
}
