//! The memcached text protocol: requests built into buffers and replies
//! parsed from a connection's buffer (the connection only supplies bytes).

use std::io;
use std::time::Instant;

use super::conn::Conn;

/// Keys per `get` command (several commands are pipelined in one request).
pub(crate) const KEYS_PER_GET: usize = 100;
/// Values at least this large are read into buffers of their own.
const LARGE_VALUE: usize = 32 * 1024;

/// What a request to one server expects back.
pub(crate) enum Expect {
    /// `gets` pipelined `get` commands.
    Values { gets: usize },
    /// One line per command (storage commands, `delete`, `flush_all`).
    Lines(usize),
    /// `STAT name value` lines up to `END`.
    Stats,
}

/// A parsed reply.
pub(crate) enum Reply {
    /// (index among the keys sent to this server, value).
    Values(Vec<(usize, Vec<u8>)>),
    Lines(Vec<String>),
    Stats(Vec<(String, String)>),
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i + 1..].iter().position(|&b| b == b'\n') {
            Some(p) => {
                let nl = i + 1 + p;
                if buf[nl - 1] == b'\r' {
                    return Some(nl - 1);
                }
                i = nl;
            }
            None => return None,
        }
    }
    None
}

pub(crate) fn protocol_error(server: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("memcached {server}: {what}"),
    )
}

fn server_error(server: &str, line: &[u8]) -> io::Error {
    protocol_error(server, String::from_utf8_lossy(line))
}

/// Parses a whole reply from `conn`, reading as needed. `keys`: the keys of
/// a `Values` request, in the order sent.
pub(crate) fn receive(
    conn: &mut Conn,
    server: &str,
    expect: &Expect,
    keys: &[&[u8]],
    deadline: Instant,
) -> io::Result<Reply> {
    let mut pos = 0usize;
    match *expect {
        Expect::Values { gets } => {
            let mut values = Vec::new();
            let mut cursor = 0usize;
            let mut ends = 0usize;
            while ends < gets {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                let line = &conn.buf[pos..eol];
                if line == b"END" {
                    ends += 1;
                    pos = eol + 2;
                    continue;
                }
                let Some(header) = line.strip_prefix(b"VALUE ") else {
                    return Err(server_error(server, line));
                };
                let mut fields = header.split(|&b| b == b' ');
                let key_len = fields.next().map_or(0, <[u8]>::len);
                let _flags = fields.next();
                let len: usize = fields
                    .next()
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(|| server_error(server, line))?;
                let start = eol + 2;
                let end = start + len;
                let key = &conn.buf[pos + 6..pos + 6 + key_len];
                while cursor < keys.len() && keys[cursor] != key {
                    cursor += 1;
                }
                if cursor == keys.len() {
                    return Err(protocol_error(
                        server,
                        format!(
                            "a value for a key not asked for ({})",
                            String::from_utf8_lossy(key)
                        ),
                    ));
                }
                if conn.filled < end + 2 && len >= LARGE_VALUE {
                    // Straight from the socket into the value's own buffer:
                    // no growing of the connection's buffer, no extra copy.
                    let Some(value) = conn.read_large(start, len, deadline)? else {
                        return Err(protocol_error(server, "a value did not end with CRLF"));
                    };
                    values.push((cursor, value));
                    cursor += 1;
                    pos = start;
                    continue;
                }
                if conn.filled < end + 2 {
                    conn.fill(end + 2, deadline)?;
                    continue; // parse the header again with the data in
                }
                if &conn.buf[end..end + 2] != b"\r\n" {
                    return Err(protocol_error(server, "a value did not end with CRLF"));
                }
                values.push((cursor, conn.buf[start..end].to_vec()));
                cursor += 1;
                pos = end + 2;
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Values(values))
        }
        Expect::Lines(n) => {
            let mut lines = Vec::with_capacity(n);
            while lines.len() < n {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                lines.push(String::from_utf8_lossy(&conn.buf[pos..eol]).into_owned());
                pos = eol + 2;
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Lines(lines))
        }
        Expect::Stats => {
            let mut stats = Vec::new();
            loop {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                let line = &conn.buf[pos..eol];
                pos = eol + 2;
                if line == b"END" {
                    break;
                }
                let Some(stat) = line.strip_prefix(b"STAT ") else {
                    return Err(server_error(server, line));
                };
                let text = String::from_utf8_lossy(stat);
                let (name, value) = text.split_once(' ').unwrap_or((&text, ""));
                stats.push((name.to_owned(), value.to_owned()));
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Stats(stats))
        }
    }
}

fn finish_reply(conn: &mut Conn, pos: usize, server: &str) -> io::Result<()> {
    if pos != conn.filled {
        return Err(protocol_error(server, "more reply than asked for"));
    }
    conn.reset_buffer();
    Ok(())
}
