//! Just enough HTTP/1.1 for one request per connection (`Connection: close`): a request writer
//! and a response reader that understands Content-Length, chunked bodies, and bodies that run
//! to the end of the connection.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Responses larger than this are refused (etcd's answers here are a few KiB).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a response could not be read: the stream failed, or the bytes are not HTTP.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Malformed(String),
}

/// The bytes of one request. `body` is sent as JSON.
/// The content type of every body kinit sends, but a server-side apply's.
pub const JSON: &str = "application/json";

pub fn request(
    method: &str,
    authority: &str,
    path: &str,
    body: Option<&[u8]>,
    content_type: &str,
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: kinit\r\nAccept: */*\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some(body) = body {
        out.extend_from_slice(
            format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

/// Send `request` and read the response, stopping as soon as it is complete (servers do not
/// always close TLS cleanly after the last byte).
pub async fn exchange<S>(stream: &mut S, request: &[u8]) -> Result<Response, ReadError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await.map_err(ReadError::Io)?;
    stream.flush().await.map_err(ReadError::Io)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A peer that drops the connection without close_notify after a complete
            // response: what we have decides.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(ReadError::Io(e)),
        };
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE {
            return Err(ReadError::Malformed(format!(
                "the response is larger than {MAX_RESPONSE} bytes"
            )));
        }
        match parse(&buf, eof)? {
            Some(r) => return Ok(r),
            None if eof => {
                return Err(ReadError::Malformed(if buf.is_empty() {
                    "the server closed the connection without answering".into()
                } else {
                    "the server closed the connection in the middle of the response".into()
                }));
            }
            None => {}
        }
    }
}

/// The response in `buf` if it is complete (`eof`: nothing more will come).
pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Response>, ReadError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ReadError::Malformed("the response headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| ReadError::Malformed(format!("not an HTTP status line: {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| ReadError::Malformed(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let body = &buf[head_end + 4..];
    let complete = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        (body.len() >= n).then(|| body[..n].to_vec())
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Some(Vec::new())
    } else {
        eof.then(|| body.to_vec())
    };
    Ok(complete.map(|body| Response { status, body }))
}

/// The decoded body once the final zero-size chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&rest[..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Malformed(format!("bad chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers, if any, are not needed: the body is complete.
            return Ok(Some(out));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &str, eof: bool) -> Option<Response> {
        parse(buf.as_bytes(), eof).unwrap()
    }

    #[test]
    fn content_length_waits_for_the_whole_body() {
        let full = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(done(&full[..full.len() - 1], false), None);
        assert_eq!(
            done(full, false),
            Some(Response {
                status: 200,
                body: b"hello".to_vec()
            })
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let partial =
            "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n";
        assert_eq!(done(partial, false), None);
        let full = format!("{partial}3;ext=1\r\n:1}}\r\n0\r\n\r\n");
        assert_eq!(
            done(&full, false),
            Some(Response {
                status: 503,
                body: b"{\"a\":1}".to_vec()
            })
        );
    }

    #[test]
    fn no_length_means_until_the_connection_ends() {
        let r = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc";
        assert_eq!(done(r, false), None);
        assert_eq!(done(r, true).unwrap().body, b"abc");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }

    #[test]
    fn request_carries_length_and_close() {
        let r = String::from_utf8(request(
            "POST",
            "10.0.0.1:2379",
            "/v3/kv/range",
            Some(b"{}"),
            JSON,
        ))
        .unwrap();
        assert!(r.starts_with("POST /v3/kv/range HTTP/1.1\r\nHost: 10.0.0.1:2379\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.contains("Content-Type: application/json\r\n"));
        assert!(r.ends_with("Content-Length: 2\r\n\r\n{}"));
    }
}
