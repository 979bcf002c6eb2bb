//! Is a node's sshd answering? Connect and read its version banner.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub fn sshd_answers(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 8 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"SSH-2.0-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn serve_once(reply: &'static [u8]) -> SocketAddr {
        // Loopback only.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(reply);
            std::thread::sleep(Duration::from_millis(300));
        });
        addr
    }

    #[test]
    fn an_ssh_banner_counts_and_anything_else_does_not() {
        let t = Duration::from_secs(2);
        assert!(sshd_answers(serve_once(b"SSH-2.0-OpenSSH_9.2p1\r\n"), t));
        assert!(!sshd_answers(serve_once(b"HTTP/1.1 400 Bad\r\n"), t));
        assert!(!sshd_answers(serve_once(b""), t));
    }
}
