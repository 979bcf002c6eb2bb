//! `https://10.0.0.1:2379` taken apart: where to connect and which name the server certificate
//! must carry.

use std::net::IpAddr;

use rustls::pki_types::ServerName;

use super::error::EtcdError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the caller wrote it, for errors.
    pub url: String,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// The path part, `/` when there is none.
    pub path: String,
}

impl Endpoint {
    /// Parse an `https://host[:port][/path]` URL; the port defaults to 443.
    pub fn parse(url: &str) -> Result<Endpoint, EtcdError> {
        let bad = |reason: &str| EtcdError::BadEndpoint {
            endpoint: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in an IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("unexpected text after the IPv6 address")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        Ok(Endpoint {
            url: url.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` for a TCP connect and the Host header (IPv6 bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name the server certificate is checked against: an IP SAN for an address, a DNS SAN
    /// otherwise; `override_name` replaces the URL's host (connect to one address, verify another).
    pub fn server_name(
        &self,
        override_name: Option<&str>,
    ) -> Result<ServerName<'static>, EtcdError> {
        let name = override_name.unwrap_or(&self.host);
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(ServerName::IpAddress(ip.into()));
        }
        ServerName::try_from(name.to_string()).map_err(|_| EtcdError::BadEndpoint {
            endpoint: self.url.clone(),
            reason: format!("{name:?} is neither an IP address nor a DNS name"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_name_ipv6_and_path() {
        let e = Endpoint::parse("https://10.0.0.1:2379").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("10.0.0.1", 2379, "/")
        );
        let e = Endpoint::parse("https://etcd.example:2379/health").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("etcd.example", 2379, "/health")
        );
        let e = Endpoint::parse("https://[fd00::1]:2379").unwrap();
        assert_eq!(
            (e.host.as_str(), e.authority()),
            ("fd00::1", "[fd00::1]:2379".to_string())
        );
        assert!(matches!(
            e.server_name(None).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(Endpoint::parse("https://h").unwrap().port, 443);
    }

    #[test]
    fn rejects_what_is_not_an_https_url() {
        for bad in [
            "http://10.0.0.1:2379",
            "https://:2379",
            "https://h:0",
            "https://h:x",
            "https://[::1",
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
