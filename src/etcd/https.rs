//! One HTTPS request with a deadline: TCP connect, TLS handshake (server verified against the
//! given CA, optional client certificate), request, response. Also the generic "does this HTTPS
//! endpoint answer" probe.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::endpoint::Endpoint;
use super::error::EtcdError;
use super::http::{self, ReadError, Response};
use super::tls::client_config;

/// What to send: the method, the path (overriding the URL's) and an optional body (JSON but
/// for a server-side apply).
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: Option<&'a [u8]>,
    pub content_type: &'a str,
}

/// Make one request to `endpoint`, all of it (connect included) within `timeout`.
pub(crate) async fn call(
    config: Arc<ClientConfig>,
    endpoint: &Endpoint,
    server_name: Option<&str>,
    request: Request<'_>,
    timeout: Duration,
) -> Result<Response, EtcdError> {
    let name = endpoint.server_name(server_name)?;
    let url = endpoint.url.as_str();
    let work = async {
        let tcp = TcpStream::connect(endpoint.authority())
            .await
            .map_err(|source| EtcdError::Connect {
                endpoint: url.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| EtcdError::from_tls_io(url, e))?;
        let bytes = http::request(
            request.method,
            &endpoint.authority(),
            request.path,
            request.body,
            request.content_type,
        );
        http::exchange(&mut tls, &bytes).await.map_err(|e| match e {
            ReadError::Io(e) => EtcdError::from_tls_io(url, e),
            ReadError::Malformed(message) => EtcdError::Protocol {
                endpoint: url.to_string(),
                message,
            },
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| EtcdError::Timeout {
            endpoint: url.to_string(),
            after: timeout,
        })?
}

/// GET `url` (`https://host:port/path`) and return the status and body, whatever the status.
/// The server must present a certificate signed by `ca_pem` for `server_name` (the URL's host
/// when `None`); `client_cert` is `(cert_pem, key_pem)` when the server wants one.
pub async fn https_get(
    url: &str,
    ca_pem: &[u8],
    client_cert: Option<(&[u8], &[u8])>,
    server_name: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), EtcdError> {
    let endpoint = Endpoint::parse(url)?;
    let config = Arc::new(client_config(ca_pem, client_cert)?);
    let request = Request {
        method: "GET",
        path: &endpoint.path,
        body: None,
        content_type: http::JSON,
    };
    let r = call(config, &endpoint, server_name, request, timeout).await?;
    Ok((r.status, r.body))
}
