//! The seam every socket goes through: a [`Transport`] binds listeners and opens connections.
//!
//! Production uses [`TcpTransport`] (tokio TCP with `TCP_NODELAY`). The simulator plugs in a
//! transport over a simulated network, so placement and host code run unchanged under
//! deterministic faults. Nothing below this module names `tokio::net` directly.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint};

/// Anything a connection can be built on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One established byte stream, of whatever transport, and the peer's address when known.
pub struct Connection {
    io: Pin<Box<dyn Io>>,
    peer: Option<String>,
}

impl Connection {
    pub fn new(io: impl Io) -> Connection {
        Connection {
            io: Box::pin(io),
            peer: None,
        }
    }

    pub fn with_peer(io: impl Io, peer: Option<String>) -> Connection {
        Connection {
            io: Box::pin(io),
            peer,
        }
    }

    /// The other end's address (`host:port`), for logs.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Accepted connections of one listener.
pub type Incoming = BoxStream<'static, io::Result<Connection>>;

/// Binds listeners and dials peers.
pub trait Transport: Send + Sync + 'static {
    /// Listens on `addr` (`host:port`; port 0 picks a free one) and returns the bound address.
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<(String, Incoming)>>;
    /// Opens a connection to `addr` (`host:port`).
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Connection>>;
}

/// The transport shared by every component of a process.
pub type SharedTransport = Arc<dyn Transport>;

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct ListenError {
    pub addr: String,
    #[source]
    pub source: io::Error,
}

/// Binds `addr` through `transport`; the error names the address.
pub async fn listen(
    transport: &SharedTransport,
    addr: &str,
) -> Result<(String, Incoming), ListenError> {
    transport
        .bind(addr.to_owned())
        .await
        .map_err(|source| ListenError {
            addr: addr.to_owned(),
            source,
        })
}

/// Real TCP sockets through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl TcpTransport {
    pub fn shared() -> SharedTransport {
        Arc::new(TcpTransport)
    }
}

impl Transport for TcpTransport {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<(String, Incoming)>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?.to_string();
            let incoming = futures::stream::unfold(listener, |listener| async move {
                let accepted = listener.accept().await.and_then(|(stream, peer)| {
                    // Small request/response messages: never wait for Nagle.
                    stream.set_nodelay(true)?;
                    Ok(Connection::with_peer(stream, Some(peer.to_string())))
                });
                Some((accepted, listener))
            })
            .boxed();
            Ok((local, incoming))
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Connection>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            Ok(Connection::with_peer(stream, Some(addr)))
        })
    }
}

/// How long dialing a peer may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// HTTP/2 pings on every connection, so a peer that stopped answering (a paused or cut-off
/// process, whose socket stays open) is noticed within interval + timeout and its calls fail
/// as retryable instead of waiting out their deadline.
pub const KEEPALIVE_INTERVAL_MS: u64 = 1_000;
pub const KEEPALIVE_TIMEOUT_MS: u64 = 2_000;

/// A lazily connected gRPC channel to `addr` over `transport`; it reconnects by itself after a
/// failure, so callers keep one per peer.
pub fn channel(
    transport: &SharedTransport,
    addr: &str,
) -> Result<Channel, tonic::transport::Error> {
    let transport = transport.clone();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
        .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |uri: tonic::transport::Uri| {
        let transport = transport.clone();
        async move {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "uri has no authority")
                })?;
            let connection = transport.connect(authority).await?;
            Ok::<_, io::Error>(TokioIo::new(connection))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
