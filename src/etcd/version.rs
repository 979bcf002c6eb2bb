//! etcd release versions as etcd states them: a member's status (`"version": "3.4.23"`) and a
//! binary's `etcd --version` (`etcd Version: 3.5.1`). Compared by major, minor and patch; a
//! pre-release or build suffix (`3.6.0-rc.1`) is kept for display and does not order.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not an etcd version (MAJOR.MINOR.PATCH, e.g. 3.5.1)")]
pub struct BadVersion {
    pub text: String,
}

#[derive(Debug, Clone, Eq)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// As etcd wrote it, without a leading `v`.
    text: String,
}

impl EtcdVersion {
    /// `3.5.1`, `v3.5.1` or `3.6.0-rc.1`.
    pub fn parse(text: &str) -> Result<EtcdVersion, BadVersion> {
        let bad = || BadVersion {
            text: text.to_string(),
        };
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let core = bare.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let mut number = || -> Result<u32, BadVersion> {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let (major, minor, patch) = (number()?, number()?, number()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(EtcdVersion {
            major,
            minor,
            patch,
            text: bare.to_string(),
        })
    }

    /// The version in what `etcd --version` prints (`etcd Version: 3.5.1`, then the Git SHA,
    /// Go version and platform).
    pub fn from_version_output(output: &str) -> Result<EtcdVersion, BadVersion> {
        let line = output
            .lines()
            .find_map(|l| l.trim().strip_prefix("etcd Version:"))
            .ok_or_else(|| BadVersion {
                text: output.lines().next().unwrap_or_default().to_string(),
            })?;
        EtcdVersion::parse(line)
    }

    /// `3.5`
    pub fn minor_line(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    fn key(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }
}

impl PartialEq for EtcdVersion {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl PartialOrd for EtcdVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EtcdVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_etcd_states() {
        let v = EtcdVersion::parse("3.4.23").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (3, 4, 23));
        assert_eq!(v.to_string(), "3.4.23");
        assert_eq!(v.minor_line(), "3.4");
        assert_eq!(EtcdVersion::parse("v3.5.1").unwrap().to_string(), "3.5.1");
        let rc = EtcdVersion::parse("3.6.0-rc.1").unwrap();
        assert_eq!((rc.minor, rc.patch), (6, 0));
        assert_eq!(rc.to_string(), "3.6.0-rc.1");
        for bad in [
            "", "3.5", "3.5.x", "3..1", "3.5.1.2", "three", "3.5.-1", " ",
        ] {
            assert!(EtcdVersion::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_the_version_line_of_etcd_version() {
        let out = "etcd Version: 3.5.1\nGit SHA: e8732fb5f\nGo Version: go1.16.3\nGo OS/Arch: linux/amd64\n";
        assert_eq!(
            EtcdVersion::from_version_output(out).unwrap().to_string(),
            "3.5.1"
        );
        let e = EtcdVersion::from_version_output("etcdctl version: 3.5.1\n").unwrap_err();
        assert_eq!(e.text, "etcdctl version: 3.5.1");
    }

    #[test]
    fn orders_by_numbers_not_text() {
        let v = |s| EtcdVersion::parse(s).unwrap();
        assert!(v("3.4.23") < v("3.5.1"));
        assert!(v("3.5.10") > v("3.5.9"));
        assert!(v("3.10.0") > v("3.9.9"));
        assert_eq!(v("3.5.1"), v("v3.5.1"));
        assert!(v("4.0.0") > v("3.99.99"));
    }
}
