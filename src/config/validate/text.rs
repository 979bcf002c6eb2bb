//! Text rules the field checks share: RFC 1123 names, and how a value and a character are
//! quoted in a message.

/// A value as the message quotes it: control characters escaped (`\n`), so that a hostile value
/// shows what it holds instead of breaking the message's lines.
pub(super) fn shown(s: &str) -> String {
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

pub(super) fn describe_char(c: char) -> String {
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
            format!("contains `{c}`, which an RFC 1123 name cannot")
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
}
