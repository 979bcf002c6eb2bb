//! Uploading a file over an exec channel (stdin of `cat`), as root, atomically: the bytes go to a
//! temporary file in the destination's directory, their sha256 is checked there, then mode and
//! owner are set, the file is synced to disk and renamed into place (`mv -T`: a directory at the
//! destination is an error, not a place to move the file into). A transfer cut short, or one
//! over its time limit, leaves nothing behind.
//! Nothing is sent when the host already has the same content, mode and owner.

use aws_lc_rs::digest;
use tokio::io::AsyncRead;

use super::error::SshError;
use super::exec::{Conn, ExitStatus, RawCommand};
use super::quote::{join, quote};
use super::sudo::Sudo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    Written,
    /// Same sha256, mode and owner already: nothing was sent.
    Unchanged,
}

/// Mode and owner of an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub mode: u32,
    /// `user` or `user:group`; `None` leaves the owner to whoever writes it (root).
    pub owner: Option<String>,
}

impl FileSpec {
    pub fn new(mode: u32, owner: Option<&str>) -> Self {
        FileSpec {
            mode,
            owner: owner.map(str::to_string),
        }
    }
}

/// Prints `<sha256> <mode in octal> <user>:<group>` for an existing regular file, nothing otherwise.
const PROBE: &str = r#"d=$1; if [ -f "$d" ]; then printf '%s %s\n' "$(sha256sum < "$d" | cut -d ' ' -f 1)" "$(stat -c '%a %U:%G' -- "$d")"; fi"#;

/// Reads stdin into a temporary file beside the destination and renames it into place only when
/// its sha256 matches. The traps remove the temporary file on every way out.
const WRITE: &str = r#"set -e
dest=$1; mode=$2; owner=$3; sha=$4
dir=$(dirname -- "$dest"); base=$(basename -- "$dest")
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.$base.kinit-upload.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP INT TERM PIPE
cat > "$tmp"
got=$(sha256sum < "$tmp" | cut -d ' ' -f 1)
if [ "$got" != "$sha" ]; then
  echo "the content arrived incomplete or changed (sha256 $got, expected $sha); nothing was written" >&2
  exit 3
fi
chmod -- "$mode" "$tmp"
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
# The content is on disk before the name points at it: a crash leaves the old file or the new one.
sync -- "$tmp"
mv -T -f -- "$tmp" "$dest"
trap - EXIT
sync -- "$dir" || true"#;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn upload_error(host: &str, dest: &str, reason: String) -> SshError {
    SshError::Upload {
        host: host.to_string(),
        dest: dest.to_string(),
        reason,
    }
}

/// A relative `dest` would resolve against whatever directory the remote shell starts in. Checked
/// before sudo is looked at, so a bad argument costs no round trip.
pub(crate) fn check_dest(host: &str, dest: &str) -> Result<(), SshError> {
    if !dest.starts_with('/') {
        return Err(upload_error(
            host,
            dest,
            "the destination must be an absolute path".into(),
        ));
    }
    Ok(())
}

/// Whether `dest` already holds content hashing to `sha256` with the mode and owner of `spec`.
pub(crate) async fn is_current(
    conn: Conn<'_>,
    sudo: Sudo<'_>,
    sha256: &str,
    dest: &str,
    spec: &FileSpec,
) -> Result<bool, SshError> {
    let as_root = sudo.mode.prefix();
    let probe = format!("{as_root}sh -c {} sh {}", quote(PROBE)?, quote(dest)?);
    let mut raw = RawCommand::new(probe);
    raw.stdin_prefix = sudo.stdin();
    let found = conn.run(raw, None, None).await?;
    if !found.success() {
        return Err(upload_error(
            conn.host,
            dest,
            format!(
                "cannot inspect the destination: {}",
                found.stderr_text().trim()
            ),
        ));
    }
    Ok(matches_existing(&found.stdout_text(), sha256, spec))
}

/// Stream what `reader` yields into `dest` as root through [`WRITE`], within `timeout`.
pub(crate) async fn write_from(
    conn: Conn<'_>,
    sudo: Sudo<'_>,
    reader: &mut (dyn AsyncRead + Unpin + Send),
    sha256: &str,
    dest: &str,
    spec: &FileSpec,
    timeout: std::time::Duration,
) -> Result<(), SshError> {
    let fail = |reason: String| upload_error(conn.host, dest, reason);
    let as_root = sudo.mode.prefix();
    let mode_text = format!("{:o}", spec.mode);
    let owner = spec.owner.clone().unwrap_or_default();
    let write = format!(
        "{as_root}sh -c {} sh {}",
        quote(WRITE)?,
        join([dest, mode_text.as_str(), owner.as_str(), sha256])?
    );
    let password = sudo.stdin();
    let mut body = reader;
    let mut raw = RawCommand::new(write);
    raw.stdin_prefix = password;
    raw.body = Some(&mut body);
    let done =
        conn.run(raw, Some(timeout), None).await.map_err(|e| {
            match e {
        SshError::CommandTimedOut { after, .. } => SshError::UploadTimedOut {
            host: conn.host.to_string(),
            dest: dest.to_string(),
            after,
        },
        SshError::ConnectionLost { .. } => fail(
            "transfer interrupted: the connection was lost (host down, rebooted or sshd stopped)"
                .into(),
        ),
        SshError::Protocol { source, .. } => fail(format!("transfer interrupted: {source}")),
        other => other,
    }
        })?;
    match done.status {
        ExitStatus::Code(0) => Ok(()),
        ref status => Err(fail(format!("{status}: {}", done.stderr_text().trim()))),
    }
}

fn matches_existing(probe: &str, sha256: &str, spec: &FileSpec) -> bool {
    let mut words = probe.split_whitespace();
    let (Some(sha), Some(mode), Some(owner)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let mode_ok = u32::from_str_radix(mode, 8).is_ok_and(|m| m == spec.mode);
    let owner_ok = match spec.owner.as_deref() {
        None => true,
        Some(want) if want.contains(':') => owner == want,
        Some(want) => owner.split(':').next() == Some(want),
    };
    sha.eq_ignore_ascii_case(sha256) && mode_ok && owner_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_comparison() {
        let sha = sha256_hex(b"x");
        let spec = FileSpec::new(0o600, Some("root"));
        assert!(matches_existing(
            &format!("{sha} 600 root:root\n"),
            &sha,
            &spec
        ));
        assert!(!matches_existing(
            &format!("{sha} 644 root:root\n"),
            &sha,
            &spec
        ));
        assert!(!matches_existing(
            &format!("{sha} 600 etcd:etcd\n"),
            &sha,
            &spec
        ));
        assert!(!matches_existing("", &sha, &spec));
        let other = sha256_hex(b"y");
        assert!(!matches_existing(
            &format!("{other} 600 root:root\n"),
            &sha,
            &spec
        ));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
