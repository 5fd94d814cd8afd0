//! The single-node `MGET` hot path on a plain TCP connection of its own:
//! the request written in one buffer, the reply parsed in one pass over one
//! read buffer (the `redis` crate's parser built a `Value` per item through
//! `combine`: about 15 µs of a 100-key `get_many`, against about 3 here).
//! Only for `redis://` nodes speaking RESP2 (the default); TLS and Unix
//! sockets keep the crate's connection.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where and how a fast connection connects: a `redis://` node's address,
/// credentials and database.
#[derive(Clone)]
pub(crate) struct FastAddr {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl FastAddr {
    /// `Some` for a plain TCP node in RESP2; `None` (the crate's
    /// connection serves it) for TLS, Unix sockets and RESP3.
    pub(crate) fn of(info: &redis::ConnectionInfo) -> Option<FastAddr> {
        let redis::ConnectionAddr::Tcp(host, port) = &info.addr else {
            return None;
        };
        if info.redis.protocol != redis::ProtocolVersion::RESP2 {
            return None;
        }
        Some(FastAddr {
            host: host.clone(),
            port: *port,
            username: info.redis.username.clone(),
            password: info.redis.password.clone(),
            db: info.redis.db,
        })
    }
}

/// A RESP2 failure: the connection is unusable (`Io`) or the server
/// answered an error (`Server`: the connection stays in sync).
#[derive(Debug)]
pub(crate) enum FastError {
    Io(io::Error),
    Server(String),
    /// `AUTH` refused (the server's words are not kept: they may echo the
    /// user name).
    Auth,
}

impl From<io::Error> for FastError {
    fn from(e: io::Error) -> Self {
        FastError::Io(e)
    }
}

impl From<FastError> for redis::RedisError {
    fn from(e: FastError) -> Self {
        match e {
            FastError::Io(e) => e.into(),
            FastError::Server(text) => {
                redis::RedisError::from((redis::ErrorKind::ResponseError, "server error", text))
            }
            // The crate's words for it, so errors read the same either way.
            FastError::Auth => redis::RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                "Password authentication failed",
            )),
        }
    }
}

fn protocol(what: &str) -> FastError {
    FastError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("redis: unexpected reply ({what})"),
    ))
}

/// One connection: the socket and a read buffer kept between replies.
pub(crate) struct FastConn {
    stream: TcpStream,
    out: Vec<u8>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Appends a RESP2 array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_len(out, args.len());
    out.extend_from_slice(b"\r\n");
    for a in args {
        bulk(out, a);
    }
}

fn bulk(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b'$');
    push_len(out, a.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal (no allocation: this runs per key).
fn push_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

impl FastConn {
    /// Connects (each address of the host in turn within `connect_timeout`),
    /// authenticates and selects the database; replies then wait at most
    /// `timeout`.
    pub(crate) fn connect(
        addr: &FastAddr,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<FastConn, FastError> {
        let stream = crate::tcp::connect(&addr.host, addr.port, connect_timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = FastConn {
            stream,
            out: Vec::with_capacity(4096),
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        };
        let mut setup = 0;
        let auth = addr.password.is_some();
        if let Some(password) = &addr.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &addr.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            command(&mut conn.out, &args);
            setup += 1;
        }
        if addr.db != 0 {
            command(&mut conn.out, &[b"SELECT", addr.db.to_string().as_bytes()]);
            setup += 1;
        }
        if setup > 0 {
            conn.flush()?;
            // Every reply read before the first error is reported: the
            // connection stays in sync either way, but is not kept.
            let mut first_err = None;
            for i in 0..setup {
                match conn.simple_reply() {
                    Err(FastError::Server(_)) if auth && i == 0 => {
                        first_err.get_or_insert(FastError::Auth);
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                    Ok(()) => {}
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
        Ok(conn)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result
    }

    /// Reads more bytes into the buffer (compacted or grown first when full).
    fn fill(&mut self) -> io::Result<()> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "redis closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// The next line's type byte and its text (without `\r\n`), as a range
    /// of the buffer; consumed.
    fn line(&mut self) -> Result<(u8, usize, usize), FastError> {
        let mut from = self.start;
        loop {
            if let Some(at) = self.buf[from..self.end].iter().position(|&b| b == b'\n') {
                let nl = from + at;
                if nl == self.start || self.buf[nl - 1] != b'\r' {
                    return Err(protocol("a line without \\r\\n"));
                }
                let kind = self.buf[self.start];
                let text = (self.start + 1, nl - 1);
                self.start = nl + 1;
                return Ok((kind, text.0, text.1));
            }
            // `fill` may move the unread bytes to the front.
            let scanned = self.end - self.start;
            self.fill()?;
            from = self.start + scanned;
        }
    }

    fn int(&self, from: usize, to: usize) -> Result<i64, FastError> {
        std::str::from_utf8(&self.buf[from..to])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol("a length that is not a number"))
    }

    fn error_text(&self, from: usize, to: usize) -> FastError {
        FastError::Server(String::from_utf8_lossy(&self.buf[from..to]).into_owned())
    }

    /// A `+OK`-like reply (a server error is `FastError::Server`).
    fn simple_reply(&mut self) -> Result<(), FastError> {
        match self.line()? {
            (b'+', _, _) => Ok(()),
            (b'-', from, to) => Err(self.error_text(from, to)),
            _ => Err(protocol("not a status")),
        }
    }

    /// A bulk string of `len` bytes and its `\r\n`, copied out; consumed.
    fn bulk(&mut self, len: usize) -> Result<Vec<u8>, FastError> {
        while self.end - self.start < len + 2 {
            if self.start + len + 2 > self.buf.len() && self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if len + 2 > self.buf.len() {
                self.buf.resize(len + 2, 0);
            }
            self.fill()?;
        }
        let value = self.buf[self.start..self.start + len].to_vec();
        if &self.buf[self.start + len..self.start + len + 2] != b"\r\n" {
            return Err(protocol("a bulk string without \\r\\n"));
        }
        self.start += len + 2;
        Ok(value)
    }

    /// `MGET` of each of `keys` after `prefix`: one value or `None` per
    /// key, in order.
    pub(crate) fn mget<K: AsRef<[u8]>>(
        &mut self,
        prefix: &[u8],
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, FastError> {
        self.out.push(b'*');
        push_len(&mut self.out, keys.len() + 1);
        self.out.extend_from_slice(b"\r\n$4\r\nMGET\r\n");
        for k in keys {
            let k = k.as_ref();
            self.out.push(b'$');
            push_len(&mut self.out, prefix.len() + k.len());
            self.out.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(prefix);
            self.out.extend_from_slice(k);
            self.out.extend_from_slice(b"\r\n");
        }
        self.flush()?;
        let values = match self.line()? {
            (b'*', from, to) => {
                let n = self.int(from, to)?;
                if n != keys.len() as i64 {
                    return Err(protocol("an MGET reply of another length"));
                }
                let mut values = Vec::with_capacity(keys.len());
                for _ in 0..keys.len() {
                    values.push(match self.line()? {
                        (b'$', from, to) => match self.int(from, to)? {
                            -1 => None,
                            len if len >= 0 => Some(self.bulk(len as usize)?),
                            _ => return Err(protocol("a negative length")),
                        },
                        _ => return Err(protocol("an MGET item that is not a bulk string")),
                    });
                }
                values
            }
            (b'-', from, to) => return Err(self.error_text(from, to)),
            _ => return Err(protocol("MGET did not answer an array")),
        };
        if self.start != self.end {
            return Err(protocol("bytes after the reply"));
        }
        self.start = 0;
        self.end = 0;
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each connection with `reply` (in pieces of
    /// `piece` bytes) after reading a request.
    fn server(reply: Vec<u8>, piece: usize) -> (FastAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = vec![0; 4096];
            let n = s.read(&mut got).unwrap();
            got.truncate(n);
            for chunk in reply.chunks(piece) {
                s.write_all(chunk).unwrap();
                s.flush().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            got
        });
        let addr = FastAddr {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            db: 0,
        };
        (addr, handle)
    }

    #[test]
    fn an_mget_reply_in_small_pieces_is_put_together() {
        let big = vec![b'x'; 100_000];
        let mut reply = b"*3\r\n$3\r\nabc\r\n$-1\r\n$100000\r\n".to_vec();
        reply.extend_from_slice(&big);
        reply.extend_from_slice(b"\r\n");
        let (addr, handle) = server(reply, 7_001);
        let t = Duration::from_secs(2);
        let mut conn = FastConn::connect(&addr, t, t).unwrap();
        let keys = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let values = conn.mget(b"", &keys).unwrap();
        assert_eq!(values, vec![Some(b"abc".to_vec()), None, Some(big)]);
        let sent = handle.join().unwrap();
        assert_eq!(
            sent,
            b"*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
    }

    #[test]
    fn a_server_error_and_a_bad_reply_are_told_apart() {
        let (addr, _h) = server(b"-WRONGTYPE oops\r\n".to_vec(), 100);
        let t = Duration::from_secs(2);
        let mut conn = FastConn::connect(&addr, t, t).unwrap();
        match conn.mget(b"", &[b"a".to_vec()]) {
            Err(FastError::Server(text)) => assert_eq!(text, "WRONGTYPE oops"),
            other => panic!("{other:?}"),
        }
        let (addr, _h) = server(b"*2\r\n$1\r\na\r\n".to_vec(), 100);
        let mut conn = FastConn::connect(&addr, t, t).unwrap();
        assert!(matches!(
            conn.mget(b"", &[b"a".to_vec()]),
            Err(FastError::Io(_))
        ));
        let (addr, _h) = server(b"*1\r\n:5\r\n".to_vec(), 100);
        let mut conn = FastConn::connect(&addr, t, t).unwrap();
        assert!(matches!(
            conn.mget(b"", &[b"a".to_vec()]),
            Err(FastError::Io(_))
        ));
    }
    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0usize, 7, 10, 99, 100, 12_345, usize::MAX] {
            let mut out = Vec::new();
            push_len(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn credentials_and_database_are_sent_before_the_prefixed_keys() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut chunks = Vec::new();
            for reply in [&b"+OK\r\n+OK\r\n"[..], b"*1\r\n$-1\r\n"] {
                let mut got = vec![0; 4096];
                let n = s.read(&mut got).unwrap();
                got.truncate(n);
                chunks.push(got);
                s.write_all(reply).unwrap();
            }
            chunks
        });
        let addr = FastAddr {
            host: "127.0.0.1".into(),
            port,
            username: Some("app".into()),
            password: Some("pw".into()),
            db: 3,
        };
        let t = Duration::from_secs(2);
        let mut conn = FastConn::connect(&addr, t, t).unwrap();
        assert_eq!(conn.mget(b"p:", &["k"]).unwrap(), vec![None]);
        let chunks = handle.join().unwrap();
        assert_eq!(
            chunks[0],
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
        );
        assert_eq!(chunks[1], b"*2\r\n$4\r\nMGET\r\n$3\r\np:k\r\n");
    }

    #[test]
    fn a_refused_password_fails_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = vec![0; 4096];
            let _ = s.read(&mut got).unwrap();
            s.write_all(b"-WRONGPASS invalid username-password pair\r\n")
                .unwrap();
        });
        let addr = FastAddr {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: Some("nope".into()),
            db: 0,
        };
        let t = Duration::from_secs(2);
        match FastConn::connect(&addr, t, t) {
            Err(e @ FastError::Auth) => {
                let e = redis::RedisError::from(e);
                assert!(
                    e.to_string().contains("Password authentication failed"),
                    "{e}"
                );
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("connected with a refused password"),
        }
    }
}
