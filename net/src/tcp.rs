//! The TCP connect both clients share.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A connection to the first of `host`'s addresses that accepts one within
/// `timeout` (the last address's error if none does), with Nagle off: the
/// clients write whole requests and wait for the answer.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_is_the_connect_error_and_a_listener_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect("127.0.0.1", port, Duration::from_secs(1)).unwrap();
        assert!(stream.nodelay().unwrap());
        drop(listener);
        let e = connect("127.0.0.1", port, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }
}
