//! The accept loop. At most `http.max_connections` connections are served
//! at once: past that, new ones wait in the kernel's queue instead of
//! taking the open files deliveries need. Each connection gets hyper's
//! header timeout (a request's head must arrive within
//! `http.header_timeout_secs`, which also ends a kept-alive connection
//! left idle) and an idle timeout on its socket (no byte either way for
//! `http.idle_timeout_secs` closes it). Bodies have their own deadline
//! ([`super::guard::body_deadline`]).

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A server's connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `router` on `listener` until `cancel`, then tells each
/// connection to finish its request and close. The connections are
/// tracked by `connections`, which the caller waits for: a reload of `acp
/// run` does not wait for them, since a request may be waiting for that
/// very reload (a start asks the service to take its new agent in).
pub(crate) async fn serve(
    listener: Arc<TcpListener>,
    connections: TaskTracker,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
) {
    let places = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // A place first: at the cap, nothing more is accepted.
        let place = tokio::select! {
            () = cancel.cancelled() => break,
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    not_accepted(&e, &cancel).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let cancel = cancel.clone();
        connections.spawn(async move {
            let io = TokioIo::new(Guarded::new(stream, limits.idle, place));
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header);
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "an HTTP connection ended");
            }
        });
    }
}

/// An accept that failed: a connection reset before it was taken is
/// nothing; out of open files, wait a moment rather than spin.
async fn not_accepted(e: &io::Error, cancel: &CancellationToken) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept an HTTP connection; trying again in a second");
    tokio::select! {
        () = cancel.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// A connection's socket, holding its place under the cap, and closed (an
/// error to hyper) once no byte has moved either way for `idle` while
/// hyper waits on it.
struct Guarded {
    stream: TcpStream,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
    _place: OwnedSemaphorePermit,
}

impl Guarded {
    fn new(stream: TcpStream, idle: Duration, place: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            _place: place,
        }
    }

    /// The socket is not ready: pending until `idle` has passed without
    /// any byte moving, then the error that closes the connection.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.waiting {
            self.waiting = true;
            self.timer.as_mut().reset(Instant::now() + self.idle);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no byte moved within http.idle_timeout_secs",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What a poll came to: bytes moved end the wait (`moved`); not
    /// ready is a stall. A flush with nothing to flush moves nothing, so
    /// it neither ends the wait nor starts one.
    fn after<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        moved: impl FnOnce(&io::Result<T>) -> bool,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                if moved(&result) {
                    self.waiting = false;
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        // Ready is data, the end, or an error: each ends the wait.
        this.after(cx, polled, |_| true)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after(cx, polled, |r| r.as_ref().map_or(true, |n| *n > 0))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after(cx, polled, |r| r.as_ref().map_or(true, |n| *n > 0))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.after(cx, polled, |_| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn a_socket_where_no_byte_moves_errs_at_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let place = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        let mut guarded = Guarded::new(stream, Duration::from_millis(100), place);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), guarded.read(&mut buf)).await;
        let err = read.expect("no error within 10 s").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
