//! Uploading a file over an exec channel (stdin of `cat`), as root, atomically: the bytes go to a
//! temporary file in the destination's directory, their sha256 is checked there, then mode and
//! owner are set and the file is renamed into place. A transfer cut short leaves nothing behind.
//! Nothing is sent when the host already has the same content, mode and owner.

use aws_lc_rs::digest;
use tokio::io::AsyncRead;

use super::error::SshError;
use super::exec::{ExitStatus, RawCommand};
use super::quote::{join, quote};
use super::session::Session;

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
mv -f -- "$tmp" "$dest"
trap - EXIT"#;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    fn upload_error(&self, dest: &str, reason: String) -> SshError {
        SshError::Upload {
            host: self.host.clone(),
            dest: dest.to_string(),
            reason,
        }
    }

    /// How this session becomes root for writing `dest`, which must be absolute.
    async fn root_mode_for(&self, dest: &str) -> Result<super::sudo::SudoMode, SshError> {
        if !dest.starts_with('/') {
            return Err(self.upload_error(dest, "the destination must be an absolute path".into()));
        }
        self.sudo_mode().await
    }

    /// Upload `content` to `dest` (an absolute path) as root.
    pub async fn upload(
        &self,
        content: &[u8],
        dest: &str,
        spec: &FileSpec,
    ) -> Result<UploadOutcome, SshError> {
        let mut reader = content;
        self.upload_from(&mut reader, &sha256_hex(content), dest, spec)
            .await
    }

    /// Upload what `reader` yields, which must hash to `sha256` (hex): a file from a bundle whose
    /// SHA256SUMS is known streams without being read into memory first.
    pub async fn upload_from(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        sha256: &str,
        dest: &str,
        spec: &FileSpec,
    ) -> Result<UploadOutcome, SshError> {
        let mode = self.root_mode_for(dest).await?;
        let as_root = mode.prefix();
        let probe = format!("{as_root}sh -c {} sh {}", quote(PROBE)?, quote(dest)?);
        let mut raw = RawCommand::new(probe);
        raw.stdin_prefix = self.sudo_stdin(mode);
        let found = self.run_raw(raw, None).await?;
        if !found.success() {
            return Err(self.upload_error(
                dest,
                format!(
                    "cannot inspect the destination: {}",
                    found.stderr_text().trim()
                ),
            ));
        }
        if matches_existing(&found.stdout_text(), sha256, spec) {
            return Ok(UploadOutcome::Unchanged);
        }
        self.write_from(reader, sha256, dest, spec).await?;
        Ok(UploadOutcome::Written)
    }

    /// Write what `reader` yields to `dest` without first looking at what is there (the caller
    /// compared already, e.g. for a whole batch of files in one round trip). Atomic and
    /// checksum-verified on the host like [`Session::upload_from`].
    pub async fn write_from(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        sha256: &str,
        dest: &str,
        spec: &FileSpec,
    ) -> Result<(), SshError> {
        let fail = |reason: String| self.upload_error(dest, reason);
        let mode = self.root_mode_for(dest).await?;
        let as_root = mode.prefix();
        let mode_text = format!("{:o}", spec.mode);
        let owner = spec.owner.clone().unwrap_or_default();
        let write = format!(
            "{as_root}sh -c {} sh {}",
            quote(WRITE)?,
            join([dest, mode_text.as_str(), owner.as_str(), sha256])?
        );
        let password = self.sudo_stdin(mode);
        let mut body = reader;
        let mut raw = RawCommand::new(write);
        raw.stdin_prefix = password;
        raw.body = Some(&mut body);
        let done = self.run_raw(raw, None).await.map_err(|e| match e {
            SshError::ConnectionLost { .. } => fail(
                "transfer interrupted: the connection was lost (host down, rebooted or sshd stopped)"
                    .into(),
            ),
            SshError::Protocol { source, .. } => fail(format!("transfer interrupted: {source}")),
            other => other,
        })?;
        match done.status {
            ExitStatus::Code(0) => Ok(()),
            ref status => Err(fail(format!("{status}: {}", done.stderr_text().trim()))),
        }
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
