//! A binary's version, asked of the binary itself (`kube-apiserver --version`, `etcdctl version`,
//! ...), and the version strings the release rules compare.

use std::cmp::Ordering;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A binary that takes longer than this to print its version is not one to ship.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// `vMAJOR.MINOR.PATCH[-pre]`, as the bundle manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
}

impl Version {
    /// `v1.37.2`, `3.6.16`, `v2.4.2-rc.1` (the leading `v` is optional).
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim().strip_prefix('v').unwrap_or(text.trim());
        let (core, pre) = match t.split_once(['-', '+']) {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (t, None),
        };
        let mut parts = core.split('.');
        let mut num = || -> Option<u64> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let (major, minor, patch) = (num()?, num()?, num()?);
        if parts.next().is_some() || pre.as_deref() == Some("") {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// `v1.37`
    pub fn minor_line(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// Release order; a pre-release comes before its release.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

/// The arguments that make a bundle file print its version.
pub fn version_args(file: &str) -> &'static [&'static str] {
    match file {
        "etcdctl" | "etcdutl" => &["version"],
        "kubectl" => &["version", "--client"],
        // `pause.c v1.37.2`: the Kubernetes release it was built from.
        "containerd-shim-runc-v2" | "pause" => &["-v"],
        // `CoreDNS-1.15.0`.
        "coredns" => &["-version"],
        // A CNI plugin run without CNI_COMMAND prints "CNI <name> plugin vX.Y.Z" and exits.
        f if f.starts_with(super::sources::CNI_DIR) => &[],
        _ => &["--version"],
    }
}

/// The first version-looking word of a binary's output: `Kubernetes v1.37.2`,
/// `etcd Version: 3.6.16`, `containerd github.com/containerd/containerd/v2 v2.4.2 <sha>`,
/// `runc version 1.5.3`, `crictl version v1.37.0`, `CNI bridge plugin v1.10.0`,
/// `CoreDNS-1.15.0`.
pub fn from_output(output: &str) -> Option<Version> {
    output
        .split(|c: char| c.is_whitespace() || c == ',' || c == '"')
        .filter(|w| !w.contains('/'))
        .map(|w| w.trim_end_matches([':', ';', ')', '.']))
        .map(|w| w.strip_prefix("CoreDNS-").unwrap_or(w))
        .find_map(|w| {
            let starts = w
                .strip_prefix('v')
                .unwrap_or(w)
                .starts_with(|c: char| c.is_ascii_digit());
            if starts { Version::parse(w) } else { None }
        })
}

/// Run `path` with its version arguments (on this machine) and read the version it prints.
pub fn read(path: &Path, file: &str) -> Result<Version, String> {
    // A bare name (`bridge`, as `kinit bundle import *` passes it) is this file, not a program
    // of the same name on PATH.
    let here;
    let path = if path.components().count() == 1 && path.is_relative() {
        here = Path::new(".").join(path);
        here.as_path()
    } else {
        path
    };
    let mut child = Command::new(path)
        .args(version_args(file))
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it here: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < RUN_LIMIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", RUN_LIMIT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    let shown = || {
        let args = version_args(file).join(" ");
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        format!("`{file} {args}` printed `{}`", first.trim())
    };
    if !status.success() {
        return Err(format!("{} and exited with {status}", shown()));
    }
    from_output(&text).ok_or_else(|| format!("{}: no version in it", shown()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_what_upstream_binaries_print() {
        let v = |s: &str| from_output(s).map(|v| v.to_string());
        assert_eq!(v("Kubernetes v1.37.2\n").as_deref(), Some("v1.37.2"));
        assert_eq!(
            v("CoreDNS-1.15.0\nlinux/amd64, go1.26.8, kinit\n").as_deref(),
            Some("v1.15.0")
        );
        assert_eq!(
            v("etcd Version: 3.6.16\nGit SHA: x\nGo Version: go1.26.8\n").as_deref(),
            Some("v3.6.16")
        );
        assert_eq!(
            v("etcdctl version: 3.6.16\nAPI version: 3.6\n").as_deref(),
            Some("v3.6.16")
        );
        assert_eq!(
            v("containerd github.com/containerd/containerd/v2 v2.4.2 0123abcd\n").as_deref(),
            Some("v2.4.2")
        );
        assert_eq!(
            v("containerd-shim-runc-v2:\n  Version:  v2.4.2\n  Revision: x\n").as_deref(),
            Some("v2.4.2")
        );
        assert_eq!(
            v("runc version 1.5.3\ncommit: v1.5.3-0-g\nspec: 1.2.1\n").as_deref(),
            Some("v1.5.3")
        );
        assert_eq!(v("crictl version v1.37.0\n").as_deref(), Some("v1.37.0"));
        assert_eq!(
            v("CNI bridge plugin v1.10.0\nCNI protocol versions supported: 0.1.0, 1.1.0\n")
                .as_deref(),
            Some("v1.10.0")
        );
        assert_eq!(
            v("Client Version: v1.37.2\nKustomize Version: v5.7.1\n").as_deref(),
            Some("v1.37.2")
        );
        assert_eq!(v("usage: foo [flags]\n"), None);
    }

    #[test]
    fn ordering_and_parsing() {
        let p = |s: &str| Version::parse(s).unwrap();
        assert!(p("v1.37.2") > p("v1.36.9"));
        assert!(p("v1.37.0-rc.1") < p("v1.37.0"));
        assert_eq!(p("3.6.16"), p("v3.6.16"));
        assert!(Version::parse("v1.37").is_none());
        assert!(Version::parse("v1.37.x").is_none());
        assert!(Version::parse("v1.2.3.4").is_none());
    }

    #[test]
    fn a_script_that_prints_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcdctl");
        std::fs::write(&path, "#!/bin/sh\n[ \"$1\" = version ] && echo 'etcdctl version: 3.6.16' && exit 0\necho 'unknown flag' >&2; exit 1\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(read(&path, "etcdctl").unwrap().to_string(), "v3.6.16");
        let e = read(&path, "etcd").unwrap_err();
        assert!(e.contains("`etcd --version` printed `unknown flag`"), "{e}");
    }
}
