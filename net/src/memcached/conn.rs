//! Connections to one server: TCP or a Unix socket, with a read buffer and
//! socket timeouts armed from the operation's deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Read buffers larger than this are shrunk before a connection is pooled.
const POOLED_BUFFER: usize = 64 * 1024;
/// A socket timeout within this much of the one wanted is kept as it is
/// (saves a system call per read and write).
const TIMEOUT_SLACK: Duration = Duration::from_millis(5);
/// Past the deadline, bytes already received are still read (a frozen
/// server read first must not fail the healthy ones whose replies are in).
const AFTER_DEADLINE: Duration = Duration::from_millis(1);

/// Where a server listens.
///
/// ```
/// use stratacache_net::memcached::Addr;
/// let a = Addr::Tcp("127.0.0.1".into(), 11211);
/// assert!(matches!(a, Addr::Tcp(_, 11211)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// Host name or address, and port.
    Tcp(String, u16),
    /// A Unix socket path.
    #[cfg(unix)]
    Unix(String),
}

pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }
}

pub(crate) struct Conn {
    stream: Stream,
    /// Read buffer: `buf[..filled]` holds bytes received and not consumed.
    pub(crate) buf: Vec<u8>,
    pub(crate) filled: usize,
    /// The socket timeout currently set.
    timeout: Duration,
    /// Used before (from the pool), as opposed to just connected.
    pub(crate) reused: bool,
    pub(crate) pid: u32,
}

/// A socket timeout shows as `WouldBlock` on Unix: call it what it is.
pub(crate) fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        e
    }
}

impl Conn {
    pub(crate) fn connect(
        addr: &Addr,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let stream = match addr {
            Addr::Tcp(host, port) => {
                let stream =
                    crate::tcp::connect(host, *port, connect_timeout).map_err(timeout_kind)?;
                Stream::Tcp(stream)
            }
            #[cfg(unix)]
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeouts(Some(timeout))?;
        Ok(Conn {
            stream,
            buf: vec![0; POOLED_BUFFER],
            filled: 0,
            timeout,
            reused: false,
            pid: std::process::id(),
        })
    }

    /// Sets the socket timeout to what is left before `deadline`, unless the
    /// one set already ends close enough to it.
    fn arm(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(AFTER_DEADLINE);
        if self.timeout > left + TIMEOUT_SLACK || self.timeout + TIMEOUT_SLACK < left {
            self.stream.set_timeouts(Some(left))?;
            self.timeout = left;
        }
        Ok(())
    }

    pub(crate) fn send(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            self.arm(deadline)?;
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
        Ok(())
    }

    /// Reads more bytes, growing the buffer to hold at least `want` bytes.
    pub(crate) fn fill(&mut self, want: usize, deadline: Instant) -> io::Result<()> {
        if self.buf.len() < want.max(self.filled + 4096) {
            let size = want.max(self.filled + 4096).max(self.buf.len() * 2);
            self.buf.resize(size, 0);
        }
        loop {
            self.arm(deadline)?;
            match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
    }

    /// A value of `len` bytes whose first bytes are at `buf[start..filled]`:
    /// reads the rest (and the CRLF after it) into a buffer of its own, and
    /// leaves `filled` at `start`. None if the CRLF is missing.
    pub(crate) fn read_large(
        &mut self,
        start: usize,
        len: usize,
        deadline: Instant,
    ) -> io::Result<Option<Vec<u8>>> {
        let mut value = vec![0u8; len + 2];
        let have = self.filled - start;
        value[..have].copy_from_slice(&self.buf[start..self.filled]);
        self.filled = start;
        let mut at = have;
        while at < value.len() {
            self.arm(deadline)?;
            match self.stream.read(&mut value[at..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
        if &value[len..] != b"\r\n" {
            return Ok(None);
        }
        value.truncate(len);
        Ok(Some(value))
    }

    pub(crate) fn reset_buffer(&mut self) {
        self.filled = 0;
        if self.buf.len() > POOLED_BUFFER {
            self.buf.truncate(POOLED_BUFFER);
            self.buf.shrink_to_fit();
        }
    }
}

/// A dead pooled connection, as opposed to a slow or confused server.
pub(crate) fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
