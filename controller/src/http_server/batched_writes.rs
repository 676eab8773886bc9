//! Gathers an h2 connection's writes and sends them when its task has done
//! all it can for now, instead of one write per answer.
//!
//! The h2 crate flushes after every DATA frame longer than 256 bytes, and
//! over TLS each flush is a record and a `writev`: ten 1 KB answers ready at
//! once went out as ten records and ten system calls. Here the writes go
//! into a buffer, a flush returns at once, and [`FlushAfterPoll`], wrapped
//! around the connection's future, writes the buffer out after each poll
//! of the connection: the answers of one turn leave in one record and one
//! call. Nothing is held back past the turn that wrote it.
//!
//! Every write of an h2 connection happens in its own task (the streams'
//! tasks hand their frames to it), so flushing after the connection's poll
//! covers all of them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write at least this long, or one that would take the buffer past it,
/// sends what is gathered and then goes straight through: large bodies are
/// not copied, and the buffer never holds more.
const DIRECT_WRITE: usize = 16 * 1024;

/// The connection's stream with what has been written and not yet sent.
struct Shared<T> {
    io: T,
    gathered: Vec<u8>,
    /// What sending the gathered bytes failed with: given to the next read
    /// or write, which ends the connection.
    failed: Option<io::ErrorKind>,
}

impl<T> Shared<T> {
    /// The failure of an earlier send, for the connection to end with.
    fn check(&self) -> io::Result<()> {
        match self.failed {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    /// Sends everything gathered, then flushes the stream.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while sent < self.gathered.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.gathered[sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    self.gathered.drain(..sent);
                    return Poll::Pending;
                }
            }
        }
        self.gathered.clear();
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// The stream hyper reads and writes; see the module's documentation.
pub struct BatchedIo<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// Sends what a [`BatchedIo`] gathered, from the connection's own task.
pub struct Sender<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> BatchedIo<T> {
    /// `io`, with its writes gathered, and the [`Sender`] that sends them.
    pub fn new(io: T) -> (BatchedIo<T>, Sender<T>) {
        let shared = Arc::new(Mutex::new(Shared {
            io,
            gathered: Vec::new(),
            failed: None,
        }));
        (
            BatchedIo {
                shared: shared.clone(),
            },
            Sender { shared },
        )
    }
}

impl<T> Sender<T> {
    /// `connection`, the future serving the [`BatchedIo`], sending what it
    /// wrote after each of its polls.
    pub fn after_each_poll<F: Future>(self, connection: F) -> FlushAfterPoll<F, T> {
        FlushAfterPoll {
            connection: Box::pin(connection),
            shared: self.shared,
            finished: None,
        }
    }
}

/// See [`Sender::after_each_poll`].
pub struct FlushAfterPoll<F: Future, T> {
    connection: Pin<Box<F>>,
    shared: Arc<Mutex<Shared<T>>>,
    /// The connection's result, kept while its last bytes are sent.
    finished: Option<F::Output>,
}

// Nothing is pinned in place: the connection is boxed.
impl<F: Future, T> Unpin for FlushAfterPoll<F, T> {}

impl<F: Future, T: AsyncWrite + Unpin> Future for FlushAfterPoll<F, T> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if this.finished.is_none()
            && let Poll::Ready(output) = this.connection.as_mut().poll(cx)
        {
            this.finished = Some(output);
        }
        let mut shared = lock(&this.shared);
        if shared.failed.is_none() {
            match shared.poll_send(cx) {
                // The stream wakes this task when it can take more.
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    // The connection learns of it at its next read or
                    // write, and ends.
                    shared.failed = Some(error.kind());
                    shared.gathered = Vec::new();
                    if this.finished.is_none() {
                        cx.waker().wake_by_ref();
                    }
                }
            }
        }
        drop(shared);
        match this.finished.take() {
            Some(output) => Poll::Ready(output),
            None => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        shared.check()?;
        Pin::new(&mut shared.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        shared.check()?;
        let len: usize = bufs.iter().map(|buf| buf.len()).sum();
        if shared.gathered.len() + len >= DIRECT_WRITE {
            // In order: what was gathered first, then this write itself.
            ready!(shared.poll_send(cx))?;
            return Pin::new(&mut shared.io).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            shared.gathered.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sent after the connection's poll, by `FlushAfterPoll`, with
        // whatever else this turn writes.
        lock(&self.shared).check().into()
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        shared.check()?;
        ready!(shared.poll_send(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A stream that keeps each write it is given, as the socket would
    /// see them.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        shut: Arc<Mutex<bool>>,
    }

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.writes.lock().unwrap().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            *self.shut.lock().unwrap() = true;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_answers_of_one_turn_leave_in_one_write_after_it() {
        let socket = Recorder::default();
        let (mut io, sender) = BatchedIo::new(socket.clone());
        let (next_turn, wait) = tokio::sync::oneshot::channel::<()>();
        let seen = socket.clone();
        let connection = sender.after_each_poll(async move {
            for answer in ["first ", "second ", "third"] {
                io.write_all(answer.as_bytes()).await.unwrap();
                io.flush().await.unwrap();
            }
            assert!(seen.writes().is_empty(), "nothing leaves during the turn");
            wait.await.unwrap();
            io.write_all(b"fourth").await.unwrap();
            io.flush().await.unwrap();
            io.shutdown().await.unwrap();
        });
        let connection = tokio::spawn(connection);
        tokio::task::yield_now().await;
        while socket.writes().is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(socket.writes(), [b"first second third".to_vec()]);
        next_turn.send(()).unwrap();
        connection.await.unwrap();
        assert_eq!(
            socket.writes(),
            [b"first second third".to_vec(), b"fourth".to_vec()]
        );
        assert!(*socket.shut.lock().unwrap(), "shut down after the last bytes");
    }

    #[tokio::test]
    async fn a_large_write_goes_straight_through_after_what_was_gathered() {
        let socket = Recorder::default();
        let (mut io, sender) = BatchedIo::new(socket.clone());
        let large = vec![b'x'; DIRECT_WRITE];
        let written = large.clone();
        sender
            .after_each_poll(async move {
                io.write_all(b"headers").await.unwrap();
                io.write_all(&written).await.unwrap();
                io.write_all(b"trailer").await.unwrap();
            })
            .await;
        assert_eq!(
            socket.writes(),
            [b"headers".to_vec(), large, b"trailer".to_vec()],
            "in order, the large one uncopied"
        );
    }

    #[tokio::test]
    async fn a_failed_send_ends_the_connection_at_its_next_read() {
        struct Broken;
        impl AsyncWrite for Broken {
            fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
                Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        impl AsyncRead for Broken {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Pending
            }
        }
        let (mut io, sender) = BatchedIo::new(Broken);
        let ended = sender
            .after_each_poll(async move {
                io.write_all(b"an answer").await.unwrap();
                io.flush().await.unwrap();
                let mut buf = [0; 16];
                // Broken never answers a read; the failed send does.
                tokio::io::AsyncReadExt::read(&mut io, &mut buf).await
            })
            .await;
        assert_eq!(ended.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
