//! [`FaultProxy`]: a TCP proxy put between two real processes (a client and the address it
//! calls) that injects network faults on command: delay, reset, black hole, refuse.
//!
//! A test points the client at [`FaultProxy::addr`] instead of the server and switches the
//! [`Fault`] at any time with [`FaultProxy::set`]. A fault applies to new connections and to
//! the bytes of connections already open, so pooled keep-alive connections (hyper, tonic) feel
//! it too. Every accepted connection is timestamped, so a test can count a client's connection
//! attempts and measure their spacing (its reconnect back-off).
//!
//! The proxy runs on a thread of its own with its own single-threaded tokio runtime, so it
//! keeps forwarding while the test's runtime is busy, and it can be used from plain and from
//! `#[tokio::test]` code alike. Dropping it stops that thread and closes every connection.
//!
//! Bytes a black hole swallowed are gone: a connection that lost any (or a FIN) is reset when
//! the black hole lifts, rather than resuming with a hole in its byte stream, which a real
//! network never delivers. A connection that stayed idle in the black hole simply resumes.
//!
//! Which step of a client the reset of a new connection breaks is a race: the RST may arrive
//! before its non-blocking connect completes (connect fails with `ConnectionReset`, which tonic
//! reports as `Unavailable` "tcp connect error") or after (its first write or read fails,
//! which hyper reports as a `SendRequest` error). Unlike a closed port, [`Fault::Refuse`]
//! therefore does not reliably give a connect error; stop the upstream for that.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Most bytes read from one side before they are passed on as one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks of one direction held at once (all of them waiting out a delay): the read side
/// stops reading when they are all taken, so a slow reader slows the writer as TCP would.
const CHUNKS_IN_FLIGHT: usize = 16;

/// What the proxy does to the traffic through it; switched with [`FaultProxy::set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways.
    None,
    /// Hold every chunk, in each direction, this long before forwarding it; a new connection
    /// also waits this long before the proxy connects upstream.
    Delay(Duration),
    /// Accept connections and read and discard what arrives from either side, never forwarding
    /// anything and never closing: a hung peer. Open connections stop forwarding too.
    BlackHole,
    /// Reset (TCP RST) every open connection, and accept and at once reset new ones without
    /// reading anything.
    Reset,
    /// Accept and at once reset new connections without reading anything, as [`Fault::Reset`]
    /// does; connections already open are left alone.
    Refuse,
}

/// A TCP proxy from an OS-chosen port on 127.0.0.1 to `upstream`, injecting [`Fault`]s.
pub struct FaultProxy {
    addr: SocketAddr,
    controls: Arc<Controls>,
    /// Dropped to stop the proxy's accept loop, and with it the proxy thread.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` in [`Fault::None`]. Its listener is bound when this
    /// returns, so clients may connect to [`FaultProxy::addr`] at once.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = StdTcpListener::bind("127.0.0.1:0").expect("fault proxy: bind");
        std_listener
            .set_nonblocking(true)
            .expect("fault proxy: non-blocking listener");
        let addr = std_listener.local_addr().expect("fault proxy: local addr");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fault proxy: tokio runtime");
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(std_listener).expect("fault proxy: tokio listener")
        };
        let controls = Arc::new(Controls::new(upstream));
        let (stop, stopped) = oneshot::channel();
        let thread_controls = controls.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || runtime.block_on(accept_until(stopped, listener, thread_controls)))
            .expect("fault proxy: spawn thread");
        FaultProxy {
            addr,
            controls,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.controls.upstream
    }

    /// Switches the fault. Bytes that arrive after this returns are treated by the new fault,
    /// on open connections as on new ones.
    pub fn set(&self, fault: Fault) {
        self.controls.fault.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.controls.fault.borrow()
    }

    /// Resets (TCP RST) every connection open now, once, without changing the fault: breaks a
    /// call in flight. Bytes that arrive after this returns are not forwarded on them.
    pub fn reset_open_connections(&self) {
        self.controls.resets.send_modify(|epoch| *epoch += 1);
    }

    /// When each connection was accepted, oldest first, whatever the fault was then.
    pub fn accepted(&self) -> Vec<Instant> {
        self.controls.accepted().clone()
    }

    /// How many connections were accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.controls.accepted().len()
    }
}

impl Drop for FaultProxy {
    /// Stops the accept loop; the thread then drops its runtime, which drops every connection
    /// task and so closes their sockets, and ends. Neither step waits on a peer.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the proxy thread must not become a panic in drop (maybe during
            // unwinding); the test that needed the proxy fails on its own.
            let _ = thread.join();
        }
    }
}

/// What the test's side and the proxy thread share.
struct Controls {
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped by [`FaultProxy::reset_open_connections`]; each connection resets when it moves
    /// past the value it saw when it was accepted.
    resets: watch::Sender<u64>,
    accepted: Mutex<Vec<Instant>>,
}

impl Controls {
    fn new(upstream: SocketAddr) -> Controls {
        Controls {
            upstream,
            fault: watch::Sender::new(Fault::None),
            resets: watch::Sender::new(0),
            accepted: Mutex::new(Vec::new()),
        }
    }

    fn accepted(&self) -> MutexGuard<'_, Vec<Instant>> {
        self.accepted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_accept(&self) {
        self.accepted().push(Instant::now());
    }
}

/// Accepts connections until `stopped` fires (its sender is dropped).
async fn accept_until(
    mut stopped: oneshot::Receiver<()>,
    listener: TcpListener,
    controls: Arc<Controls>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                // Accept errors (a client gone before it was accepted, out of descriptors)
                // concern one connection, not the proxy.
                if let Ok((client, _)) = accepted {
                    admit(client, &controls);
                }
            }
        }
    }
}

/// Records `client` and resets it at once or starts proxying it, as the fault says.
fn admit(client: TcpStream, controls: &Arc<Controls>) {
    controls.record_accept();
    let fault = *controls.fault.borrow();
    match fault {
        Fault::Reset | Fault::Refuse => reset(client),
        Fault::None | Fault::Delay(_) | Fault::BlackHole => {
            // Made here, not in the task, so that a reset ordered from now on reaches it.
            let connection = Connection::new(controls);
            tokio::spawn(connection.run(client));
        }
    }
}

/// Closes `stream` with a TCP RST instead of a FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    // Failing to set it leaves a FIN, which still ends the connection.
    let _ = stream.set_zero_linger();
}

/// How a connection ended, and so how its sockets are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Both directions ended with a FIN, each passed on: close normally.
    Closed,
    /// A fault, a reset order or a failed side: reset both sides.
    Reset,
}

/// What happens to a chunk about to be forwarded, by the fault in force at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Forward,
    Swallow,
    Reset,
}

/// One proxied connection: the fault and reset orders it watches, and whether it lost bytes.
struct Connection {
    upstream: SocketAddr,
    fault: watch::Receiver<Fault>,
    /// Marked seen at accept: it has changed once a reset of open connections was ordered.
    resets: watch::Receiver<u64>,
    /// Set once a black hole swallowed bytes or a FIN of this connection.
    lost_bytes: AtomicBool,
}

impl Connection {
    fn new(controls: &Controls) -> Connection {
        Connection {
            upstream: controls.upstream,
            fault: controls.fault.subscribe(),
            resets: controls.resets.subscribe(),
            lost_bytes: AtomicBool::new(false),
        }
    }

    async fn run(self, mut client: TcpStream) {
        let ending = match self.open_upstream(&mut client).await {
            Ok(mut upstream) => {
                let ending = self.forward(&mut client, &mut upstream).await;
                close(upstream, ending);
                ending
            }
            Err(ending) => ending,
        };
        close(client, ending);
    }

    /// Connects upstream once the fault lets it; an upstream that cannot be reached is passed
    /// on to the client as a reset.
    async fn open_upstream(&self, client: &mut TcpStream) -> Result<TcpStream, Ending> {
        tokio::select! {
            () = self.reset_ordered() => Err(Ending::Reset),
            upstream = self.connect_when_allowed(client) => upstream.map_err(|_| Ending::Reset),
        }
    }

    async fn connect_when_allowed(&self, client: &mut TcpStream) -> io::Result<TcpStream> {
        self.swallow_while_black_hole(client).await?;
        if self.verdict_now() == Verdict::Reset {
            return Err(io::Error::other("reset before connecting upstream"));
        }
        let delay = self.delay_now();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        TcpStream::connect(self.upstream).await
    }

    /// Reads and discards what the client sends while the fault is [`Fault::BlackHole`].
    async fn swallow_while_black_hole(&self, client: &mut TcpStream) -> io::Result<()> {
        let mut fault = self.fault.clone();
        let mut buffer = vec![0; CHUNK_BYTES];
        let mut client_sent_fin = false;
        while *fault.borrow_and_update() == Fault::BlackHole {
            tokio::select! {
                _ = fault.changed() => {}
                read = client.read(&mut buffer), if !client_sent_fin => {
                    client_sent_fin = read? == 0;
                    self.lost_bytes.store(true, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    }

    /// Forwards both directions until both have passed on a FIN, a side fails, or a reset is
    /// ordered.
    async fn forward(&self, client: &mut TcpStream, upstream: &mut TcpStream) -> Ending {
        let (from_client, to_client) = client.split();
        let (from_upstream, to_upstream) = upstream.split();
        let both_directions = async {
            tokio::try_join!(
                self.pump(from_client, to_upstream),
                self.pump(from_upstream, to_client),
            )
        };
        tokio::select! {
            () = self.reset_ordered() => Ending::Reset,
            pumped = both_directions => match pumped {
                Ok(_) => Ending::Closed,
                Err(_) => Ending::Reset,
            },
        }
    }

    /// One direction: a reader that stamps each chunk with its release time, and a writer that
    /// forwards it then, so a delay holds each chunk once rather than adding up chunk by chunk.
    async fn pump(&self, from: ReadHalf<'_>, to: WriteHalf<'_>) -> io::Result<()> {
        let (chunks_tx, chunks_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::try_join!(
            self.read_chunks(from, chunks_tx),
            self.write_chunks(chunks_rx, to)
        )?;
        Ok(())
    }

    /// Reads until the FIN, which is passed on as an empty chunk.
    async fn read_chunks(
        &self,
        mut from: ReadHalf<'_>,
        chunks: mpsc::Sender<Chunk>,
    ) -> io::Result<()> {
        let mut buffer = vec![0; CHUNK_BYTES];
        loop {
            let read_bytes = from.read(&mut buffer).await?;
            let chunk = Chunk {
                release_at: tokio::time::Instant::now() + self.delay_now(),
                bytes: buffer[..read_bytes].to_vec(),
            };
            // The writer only goes away with an error, which ends this direction anyway.
            if chunks.send(chunk).await.is_err() || read_bytes == 0 {
                return Ok(());
            }
        }
    }

    async fn write_chunks(
        &self,
        mut chunks: mpsc::Receiver<Chunk>,
        mut to: WriteHalf<'_>,
    ) -> io::Result<()> {
        while let Some(chunk) = chunks.recv().await {
            tokio::time::sleep_until(chunk.release_at).await;
            match self.verdict_now() {
                Verdict::Reset => return Err(io::Error::other("reset ordered")),
                Verdict::Swallow => self.swallow_chunk()?,
                Verdict::Forward if chunk.is_fin() => return to.shutdown().await,
                Verdict::Forward => self.write_unless_black_hole(&mut to, &chunk.bytes).await?,
            }
        }
        // The reader is done but no FIN went out: the black hole swallowed it. A hung peer
        // never closes, so neither does this direction.
        std::future::pending().await
    }

    /// Writes `bytes`, unless a black hole opens while the write waits on a slow reader.
    async fn write_unless_black_hole(
        &self,
        to: &mut WriteHalf<'_>,
        bytes: &[u8],
    ) -> io::Result<()> {
        let mut fault = self.fault.clone();
        tokio::select! {
            written = to.write_all(bytes) => written,
            _ = fault.wait_for(|fault| *fault == Fault::BlackHole) => self.swallow_chunk(),
        }
    }

    /// Records that a chunk went into the black hole. Fails if the black hole lifted
    /// meanwhile, as the connection must then be reset, not resume with a hole in its stream.
    fn swallow_chunk(&self) -> io::Result<()> {
        self.lost_bytes.store(true, Ordering::SeqCst);
        match self.verdict_now() {
            Verdict::Reset => Err(io::Error::other("black hole lifted after swallowing bytes")),
            Verdict::Forward | Verdict::Swallow => Ok(()),
        }
    }

    /// Resolves when this connection must be reset.
    async fn reset_ordered(&self) {
        let mut fault = self.fault.clone();
        let mut resets = self.resets.clone();
        tokio::select! {
            _ = fault.wait_for(|fault| self.verdict(*fault) == Verdict::Reset) => {}
            _ = resets.changed() => {}
        }
    }

    fn verdict_now(&self) -> Verdict {
        self.verdict(*self.fault.borrow())
    }

    fn verdict(&self, fault: Fault) -> Verdict {
        let reset_of_open_connections = self.resets.has_changed().unwrap_or(false);
        let lost_bytes = self.lost_bytes.load(Ordering::SeqCst);
        match fault {
            Fault::Reset => Verdict::Reset,
            _ if reset_of_open_connections => Verdict::Reset,
            Fault::BlackHole => Verdict::Swallow,
            _ if lost_bytes => Verdict::Reset,
            Fault::None | Fault::Delay(_) | Fault::Refuse => Verdict::Forward,
        }
    }

    fn delay_now(&self) -> Duration {
        match *self.fault.borrow() {
            Fault::Delay(delay) => delay,
            Fault::None | Fault::BlackHole | Fault::Reset | Fault::Refuse => Duration::ZERO,
        }
    }
}

/// Bytes read from one side, to be written to the other at `release_at`. Empty: the FIN.
struct Chunk {
    release_at: tokio::time::Instant,
    bytes: Vec<u8>,
}

impl Chunk {
    fn is_fin(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn close(stream: TcpStream, ending: Ending) {
    match ending {
        Ending::Closed => drop(stream),
        Ending::Reset => reset(stream),
    }
}
