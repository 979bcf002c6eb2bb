//! Text rules the field checks share: RFC 1123 names, interface names, host paths, and how a
//! value and a character are quoted in a message.

/// A value as the message quotes it: control characters escaped (`\n`), so that a hostile value
/// shows what it holds instead of breaking the message's lines.
pub(crate) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub(crate) fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", u32::from(c))
    } else if c == ' ' {
        "a space".into()
    } else if c.is_whitespace() {
        format!("the white space character U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

/// RFC 1123 label: what a cluster name must be.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("is {} characters long; the limit is 63", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c.is_ascii_uppercase() {
            "has uppercase letters; RFC 1123 names are lowercase".into()
        } else {
            format!(
                "contains {}, which an RFC 1123 name cannot",
                describe_char(c)
            )
        });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("starts or ends with '-'".into());
    }
    Ok(())
}

/// RFC 1123 subdomain: what a host (node) name must be.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("is {} characters long; the limit is 253", s.len()));
    }
    if s.is_empty() {
        return Err("is empty".into());
    }
    for label in s.split('.') {
        check_dns_label(label).map_err(|why| {
            if label.is_empty() {
                "has an empty label (two dots, or a leading or trailing dot)".to_string()
            } else {
                why
            }
        })?;
    }
    Ok(())
}

/// A path on the hosts as rendered files and remote commands use it: absolute, in its normal
/// form, not `/`, and one word (no whitespace, control characters, quotes or backslashes).
/// `what` names the path in the message; the error is (why, help).
pub(super) fn check_host_path(s: &str, what: &str, example: &str) -> Result<(), (String, String)> {
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '`' | '\\'))
    {
        return Err((
            format!("contains {}, which {what} cannot", describe_char(c)),
            format!(
                "a path without whitespace, control characters, quotes or backslashes, {example}"
            ),
        ));
    }
    if !s.starts_with('/') {
        return Err((
            "is not an absolute path".into(),
            format!("{what} on the hosts, {example}"),
        ));
    }
    if s == "/" {
        return Err((
            "is the root directory".into(),
            format!("give it a directory of its own, {example}"),
        ));
    }
    let parts: Vec<&str> = s[1..].split('/').collect();
    if parts.contains(&"..") {
        return Err((
            "contains `..`".into(),
            format!("write the directory without `..`, {example}"),
        ));
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        let normal: Vec<&str> = parts
            .iter()
            .copied()
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        return Err((
            "is not in normal form (`//`, `/./` or a trailing `/`)".into(),
            if normal.is_empty() {
                format!("give it a directory of its own, {example}")
            } else {
                format!("write /{}", normal.join("/"))
            },
        ));
    }
    Ok(())
}

/// A Linux network interface name (the kernel's `dev_valid_name`): 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or white space; control characters are refused too.
pub(super) fn check_interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 15 {
        return Err(format!(
            "is {} bytes long; Linux interface names have at most 15",
            s.len()
        ));
    }
    if s == "." || s == ".." {
        return Err("is not an interface name".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':'))
    {
        return Err(format!(
            "contains {}, which a Linux interface name cannot",
            describe_char(c)
        ));
    }
    // Not the kernel's rule, but every tool that reads one (keepalived, ip) takes it as a word.
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '\'' | '"' | '`' | '\\' | '#' | '!' | '{' | '}'))
    {
        return Err(format!(
            "contains {}, which kinit does not write into keepalived.conf",
            describe_char(c)
        ));
    }
    Ok(())
}

/// A host named by IP address or by DNS name (any case; DNS names are case-insensitive).
pub(super) fn check_host_or_ip(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_subdomain(&s.to_ascii_lowercase())
        .map_err(|why| format!("is neither an IP address nor a DNS name: it {why}"))
}

/// A certificate SAN: an IP address, or an RFC 1123 DNS name whose leftmost label may be the
/// wildcard `*` (RFC 6125: a whole label, and not directly under a top-level domain).
pub(super) fn check_san(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (wildcard, name) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if let Some(c) = name.chars().find(|c| *c == '*') {
        return Err(format!(
            "has {} outside a leading `*.` label, the only place a wildcard may be",
            describe_char(c)
        ));
    }
    check_dns_subdomain(name)
        .map_err(|why| format!("is neither an IP address nor a DNS name: it {why}"))?;
    if wildcard && !name.contains('.') {
        return Err("is a wildcard for a whole top-level domain".into());
    }
    Ok(())
}

/// A login name as SSH and sudo take it: one word, not an option (POSIX portable user names
/// plus the `.`, `@` and uppercase letters some directories use).
pub(super) fn check_login_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 256 {
        return Err(format!("is {} bytes long; the limit is 256", s.len()));
    }
    if s.starts_with('-') {
        return Err("starts with '-'".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '$')))
    {
        return Err(format!(
            "contains {}, which a login name cannot",
            describe_char(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123_names() {
        assert!(check_dns_subdomain("cp1").is_ok());
        assert!(check_dns_subdomain("cp-1.dc1.example.com").is_ok());
        assert!(
            check_dns_subdomain("CP1")
                .unwrap_err()
                .contains("uppercase")
        );
        assert!(check_dns_subdomain("cp_1").unwrap_err().contains('_'));
        assert!(check_dns_subdomain("-cp").is_err());
        assert!(
            check_dns_subdomain("cp..1")
                .unwrap_err()
                .contains("empty label")
        );
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn interface_names() {
        for good in [
            "eth0",
            "host0",
            "enp0s31f6",
            "br-lan.100",
            "a",
            "abcdefghijklmno",
        ] {
            assert_eq!(check_interface_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "eth/0",
            "eth0:1",
            "eth 0",
            "eth0\n",
            "eth0\0",
            "eth\t0",
            "eth\"0",
            "eth0}",
        ] {
            assert!(check_interface_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hosts_and_sans() {
        for good in [
            "pool.ntp.org",
            "10.0.0.1",
            "fd00::1",
            "Time.Example.COM",
            "ntp1",
        ] {
            assert_eq!(check_host_or_ip(good), Ok(()), "{good}");
        }
        for bad in ["", "ntp.org\ncmdallow all", "a b", "a\"b", "-x", "x..y"] {
            assert!(check_host_or_ip(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "api.example.com",
            "*.example.com",
            "203.0.113.10",
            "::1",
            "api",
        ] {
            assert_eq!(check_san(good), Ok(()), "{good}");
        }
        for bad in [
            "*",
            "*.com",
            "a.*.com",
            "*a.example.com",
            "x\ny",
            "api example",
            "API.example.com",
        ] {
            assert!(check_san(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn login_names() {
        for good in ["root", "ubuntu", "deploy_1", "svc-kinit", "a.b@corp"] {
            assert_eq!(check_login_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "a;b",
            "a\nb",
            "a'b",
            "a/b",
            "a:b",
        ] {
            assert!(check_login_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
