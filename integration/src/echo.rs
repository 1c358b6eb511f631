//! TCP echo, the one way tests prove that a connection gets through: a server that sends
//! back what a client wrote, and a client that checks it came back. The truth table's
//! probes, [`crate::Cluster::tcp`] and the CNI plugin's tests all use these.
//!
//! What has bitten us:
//! - A blocked client leaves a one-shot server waiting in `accept()`, holding its port for
//!   the next check: [`tcp_echo`]'s server lives on a runtime that ends with the exchange.
//! - Even so, one full parallel run saw the next exchange's bind fail "address in use";
//!   the bind is retried briefly (`bind_retrying`), and the error names the address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::netns::Netns;

/// What a client writes and expects back.
pub const PAYLOAD: &[u8; 5] = b"probe";

/// Echoes the first [`PAYLOAD`]-length bytes of every connection `listener` accepts, until
/// the task running it is dropped. Each client's address goes to `peers` (ignored once the
/// receiver is gone).
pub async fn serve_tcp(listener: TcpListener, peers: mpsc::UnboundedSender<SocketAddr>) {
    let mut conns = JoinSet::new();
    while let Ok((mut s, peer)) = listener.accept().await {
        let _ = peers.send(peer);
        conns.spawn(async move {
            let mut buf = [0u8; PAYLOAD.len()];
            if s.read_exact(&mut buf).await.is_ok() {
                let _ = s.write_all(&buf).await;
            }
        });
    }
}

/// One exchange from `socket` (made in the client's namespace) with an echo server at `to`:
/// the connect, then the echo, each within `timeout`.
pub async fn tcp_exchange(socket: TcpSocket, to: SocketAddr, timeout: Duration) -> io::Result<()> {
    let timed_out = |what: &str| io::Error::new(io::ErrorKind::TimedOut, format!("{what} {to}"));
    let mut stream = tokio::time::timeout(timeout, socket.connect(to))
        .await
        .map_err(|_| timed_out("connecting to"))??;
    stream.write_all(PAYLOAD).await?;
    let mut back = [0u8; PAYLOAD.len()];
    tokio::time::timeout(timeout, stream.read_exact(&mut back))
        .await
        .map_err(|_| timed_out("waiting for the echo from"))??;
    if &back != PAYLOAD {
        return Err(io::Error::other(format!("the echo came back as {back:?}")));
    }
    Ok(())
}

/// A non-blocking listener at `at`. The previous exchange's server on the same port may
/// still be closing (seen once under a full parallel test run): "in use" is retried for up
/// to a second, then returned.
fn bind_retrying(at: SocketAddr) -> io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match std::net::TcpListener::bind(at) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("binding {at}: {e}"))),
        }
    }
}

/// A client socket of `to`'s family, made inside `ns`.
pub fn tcp_socket(ns: &Netns, to: SocketAddr) -> anyhow::Result<TcpSocket> {
    ns.enter(|| match to {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    })
}

/// One exchange from namespace `from` with an echo server bound at `at` in namespace `to`
/// for this exchange only (port 0: any free one). The outer error is a failure to set up
/// (binding the server); the inner result is the exchange's: the client address the server
/// saw, or why it failed. Blocks; from async code, call it in `block_in_place`.
pub fn tcp_echo(
    from: &Netns,
    to: &Netns,
    at: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<io::Result<SocketAddr>> {
    let listener = to.enter(|| bind_retrying(at))?;
    let server = listener.local_addr()?;
    let socket = tcp_socket(from, server)?;
    from.run(|| async move {
        let (peers, mut seen) = mpsc::unbounded_channel();
        let listener = TcpListener::from_std(listener)?;
        tokio::spawn(serve_tcp(listener, peers));
        let exchanged = tcp_exchange(socket, server, timeout).await;
        anyhow::Ok(exchanged.and_then(|()| {
            seen.try_recv()
                .map_err(|_| io::Error::other("the server saw no client"))
        }))
    })?
}
