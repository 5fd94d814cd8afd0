//! A minimal RESP2 connection for the one command on the hot read path,
//! `MGET` to one node: the request written by hand, the reply (an array of
//! bulk strings or nils) parsed straight into byte vectors. The `redis`
//! crate's parser builds a `Value` per key through parser combinators, a
//! sixth of a 100-key read; this reads each value with one copy.
//! Anything else (TLS, RESP3, cluster) stays on the `redis` crate.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, ProtocolVersion};

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reply the server sent as an error (`-ERR ...`): the connection is
/// still in step and can be reused.
#[derive(Debug)]
pub struct ServerReplyError(pub String);

/// What a command can fail with.
#[derive(Debug)]
pub enum RespError {
    /// The connection failed or lost step: drop it.
    Io(io::Error),
    /// The server answered with an error.
    Reply(ServerReplyError),
}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        RespError::Io(e)
    }
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "{e}"),
            RespError::Reply(e) => write!(f, "{}", e.0),
        }
    }
}

/// One connection to one node.
pub struct RespConn {
    reader: BufReader<Stream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

/// True if `info` can be served by [`RespConn`] (plain TCP or a Unix
/// socket, RESP2).
pub fn supported(info: &ConnectionInfo) -> bool {
    let addr_ok = match &info.addr {
        ConnectionAddr::Tcp(..) => true,
        #[cfg(unix)]
        ConnectionAddr::Unix(_) => true,
        _ => false,
    };
    addr_ok && info.redis.protocol == ProtocolVersion::RESP2
}

fn protocol_error(what: &str) -> RespError {
    RespError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("redis: unexpected reply ({what})"),
    ))
}

impl RespConn {
    /// Connects, authenticates and selects the database of `info`.
    pub fn connect(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<RespConn, RespError> {
        let stream = match &info.addr {
            ConnectionAddr::Tcp(host, port) => {
                let mut last = None;
                let mut found = None;
                for addr in std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))? {
                    match TcpStream::connect_timeout(&addr, connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = found.ok_or_else(|| {
                    last.unwrap_or_else(|| io::Error::other(format!("{host}: no address")))
                })?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Stream::Unix(s)
            }
            _ => {
                return Err(RespError::Io(io::Error::other(
                    "redis: address not supported",
                )))
            }
        };
        let mut conn = RespConn {
            reader: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            line: Vec::new(),
        };
        let r = &info.redis;
        if let Some(password) = &r.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &r.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.simple(&args)?;
        }
        if r.db != 0 {
            let db = r.db.to_string();
            conn.simple(&[b"SELECT", db.as_bytes()])?;
        }
        Ok(conn)
    }

    fn write_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.out.clear();
        push_header(&mut self.out, b'*', args.len());
        for a in args {
            push_bulk(&mut self.out, a);
        }
        self.reader.get_mut().write_all(&self.out)
    }

    /// A command answered by a status (`+OK`).
    fn simple(&mut self, args: &[&[u8]]) -> Result<(), RespError> {
        self.write_command(args)?;
        self.read_line()?;
        match self.line.first() {
            Some(b'+') => Ok(()),
            Some(b'-') => Err(self.reply_error()),
            _ => Err(protocol_error("status")),
        }
    }

    fn reply_error(&self) -> RespError {
        RespError::Reply(ServerReplyError(
            String::from_utf8_lossy(&self.line[1..]).into_owned(),
        ))
    }

    /// Reads one line, without its CRLF, into `self.line`.
    fn read_line(&mut self) -> Result<(), RespError> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(RespError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(protocol_error("line end"));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    fn line_number(&self) -> Result<i64, RespError> {
        std::str::from_utf8(&self.line[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol_error("length"))
    }

    /// `MGET keys...`: one value (or None) per key, in order.
    pub fn mget<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, RespError> {
        self.out.clear();
        push_header(&mut self.out, b'*', keys.len() + 1);
        push_bulk(&mut self.out, b"MGET");
        for k in keys {
            push_bulk(&mut self.out, k.as_ref());
        }
        self.reader.get_mut().write_all(&self.out)?;
        self.read_line()?;
        match self.line.first() {
            Some(b'*') => {}
            Some(b'-') => return Err(self.reply_error()),
            _ => return Err(protocol_error("array")),
        }
        let n = self.line_number()?;
        if n != keys.len() as i64 {
            return Err(protocol_error("array length"));
        }
        let mut values = Vec::with_capacity(keys.len());
        for _ in 0..n {
            self.read_line()?;
            if self.line.first() != Some(&b'$') {
                return Err(protocol_error("bulk string"));
            }
            let len = self.line_number()?;
            if len < 0 {
                values.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| protocol_error("length"))?;
            let mut value = vec![0u8; len];
            self.reader.read_exact(&mut value)?;
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(protocol_error("bulk end"));
            }
            values.push(Some(value));
        }
        Ok(values)
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    push_header(out, b'$', arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        push_header(&mut out, b'*', 2);
        push_bulk(&mut out, b"MGET");
        push_bulk(&mut out, b"k");
        assert_eq!(out, b"*2\r\n$4\r\nMGET\r\n$1\r\nk\r\n");
    }

    #[test]
    fn only_plain_resp2_addresses_are_supported() {
        use redis::IntoConnectionInfo;
        let info = "redis://127.0.0.1:6379/3".into_connection_info().unwrap();
        assert!(supported(&info));
        let mut resp3 = info.clone();
        resp3.redis.protocol = ProtocolVersion::RESP3;
        assert!(!supported(&resp3));
    }
}
