//! How `redis::Client::get_many` takes an `MGET` reply apart: values and
//! nils in key order, and a server error as the node's failure (every key
//! failed, the error kept). A scripted loopback server stands in for Redis
//! so the error reply is certain (a real Redis answers `MGET` with an error
//! only in states a test cannot set up cheaply, such as `LOADING`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use stratacache_net::redis::{Client, Config};

/// Reads one command (a RESP array of bulk strings, as clients send them)
/// and returns its words; None when the client hung up.
fn read_command(reader: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut word = vec![0; len + 2];
        reader.read_exact(&mut word).ok()?;
        word.truncate(len);
        words.push(String::from_utf8(word).ok()?);
    }
    Some(words)
}

/// A server on a free loopback port that answers `MGET` with `mget_reply`
/// and anything else (the client's connection set-up) with `+OK`.
fn scripted_server(mget_reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            while let Some(words) = read_command(&mut reader) {
                let reply: &[u8] = if words[0].eq_ignore_ascii_case("MGET") {
                    mget_reply
                } else {
                    b"+OK\r\n"
                };
                if writer.write_all(reply).is_err() {
                    break;
                }
            }
        }
    });
    format!("redis://{addr}/0")
}

#[test]
fn values_and_nils_in_key_order() {
    let url = scripted_server(b"*3\r\n$5\r\nfirst\r\n$-1\r\n$0\r\n\r\n");
    let client = Client::new(Config::single(&url, &[])).unwrap();
    let got = client.get_many(&["a", "b", "c"]);
    assert!(got.is_complete(), "{:?}", got.describe());
    assert_eq!(
        got.values,
        vec![Some(b"first".to_vec()), None, Some(Vec::new())]
    );
}

#[test]
fn an_error_reply_fails_every_key_of_the_node() {
    let url = scripted_server(b"-LOADING Redis is loading the dataset in memory\r\n");
    let client = Client::new(Config::single(&url, &[])).unwrap();
    let got = client.get_many(&["a", "b"]);
    assert_eq!(got.failed, vec![0, 1]);
    assert_eq!(got.values, vec![None, None]);
    let text = got.describe().unwrap();
    assert!(text.contains("loading"), "{text}");
}

#[test]
fn a_reply_that_is_not_an_array_is_a_failure_not_a_panic() {
    let url = scripted_server(b"+OK\r\n");
    let client = Client::new(Config::single(&url, &[])).unwrap();
    let got = client.get_many(&["a"]);
    assert_eq!(got.failed, vec![0]);
    let text = got.describe().unwrap();
    assert!(text.contains("MGET did not answer an array"), "{text}");
}
