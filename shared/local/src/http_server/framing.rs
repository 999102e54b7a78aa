//! Finds requests framed two ways: both `Transfer-Encoding` and `Content-Length`.
//!
//! hyper handles such a request safely (chunked wins, the connection closes afterwards) but
//! drops the `Content-Length` header before the router could see it, and a proxy in front may
//! have framed the same bytes by their length (request smuggling). RFC 9112 §6.3 lets a server
//! refuse it, and `serve` does: so the check has to read the header block as it arrives.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest header line followed; hyper refuses a longer header block anyway.
const MAX_LINE: usize = 16 * 1024;

/// Set when a request on the connection carried both headers; shared with the service.
#[derive(Clone, Debug, Default)]
pub struct AmbiguousFraming(Arc<AtomicBool>);

impl AmbiguousFraming {
    pub fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
enum State {
    /// Reading a request line and headers.
    Head { line: Vec<u8>, started: bool, transfer_encoding: bool, content_length: Option<u64> },
    /// Skipping a body of known length.
    Body(u64),
    /// After a chunked or an ambiguous request (whose answer closes the connection), or a line
    /// too long to follow: nothing more to find on this connection.
    Done,
}

impl State {
    fn head() -> State {
        State::Head { line: Vec::new(), started: false, transfer_encoding: false, content_length: None }
    }
}

/// The connection's bytes, passed through unchanged while their header blocks are watched.
#[derive(Debug)]
pub struct FramingWatch<T> {
    inner: T,
    state: State,
    ambiguous: AmbiguousFraming,
}

impl<T> FramingWatch<T> {
    pub fn new(inner: T) -> (Self, AmbiguousFraming) {
        let ambiguous = AmbiguousFraming::default();
        (FramingWatch { inner, state: State::head(), ambiguous: ambiguous.clone() }, ambiguous)
    }

    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Body(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::head();
                    }
                }
                State::Head { line, started, transfer_encoding, content_length } => {
                    let Some(end) = memchr::memchr(b'\n', bytes) else {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_LINE {
                            self.state = State::Done;
                        }
                        return;
                    };
                    line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    let text = line.strip_suffix(b"\r").unwrap_or(line);
                    if text.is_empty() {
                        // Empty lines before a request line are allowed (RFC 9112 §2.2).
                        if *started {
                            self.state = match (*transfer_encoding, *content_length) {
                                (true, Some(_)) => {
                                    self.ambiguous.0.store(true, Ordering::Relaxed);
                                    State::Done
                                }
                                (true, None) => State::Done,
                                (false, None | Some(0)) => State::head(),
                                (false, Some(n)) => State::Body(n),
                            };
                            continue;
                        }
                    } else if !*started {
                        *started = true;
                    } else if let Some((name, value)) = split_header(text) {
                        if name.eq_ignore_ascii_case(b"transfer-encoding") {
                            *transfer_encoding = true;
                        } else if name.eq_ignore_ascii_case(b"content-length") {
                            // Unparsable: hyper answers 400 itself; count it as present.
                            let n = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
                            *content_length = Some(n.unwrap_or(u64::MAX));
                        }
                    }
                    line.clear();
                }
            }
        }
    }
}

fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    Some((line[..colon].trim_ascii(), &line[colon + 1..]))
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingWatch<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            this.scan(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingWatch<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(chunks: &[&[u8]]) -> bool {
        let (mut w, seen) = FramingWatch::new(());
        for c in chunks {
            w.scan(c);
        }
        seen.seen()
    }

    #[test]
    fn finds_both_headers_in_any_order_case_and_split() {
        assert!(watch(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"]));
        assert!(watch(&[b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n", b"CONTENT-LENGTH:5\r\n\r\n0\r\n\r\n"]));
        assert!(watch(&[b"GET / HTTP/1.1\r\nTransfer-Enc", b"oding: chunked\r\nContent-Le", b"ngth: 5\r\n\r\n"]));
        assert!(!watch(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"]));
        assert!(!watch(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"]));
        // A body that looks like headers is skipped by its length.
        assert!(!watch(&[
            b"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nTransfer-Encoding: x\r\nContent-Length: 1\r\n\r\n"
        ]));
    }

    #[test]
    fn follows_keep_alive_requests() {
        let two = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
        assert!(watch(&[two]));
        assert!(!watch(&[b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"]));
    }
}
