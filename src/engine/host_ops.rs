//! What the engine does on a host, each as one shell script run over one SSH channel as root:
//! look at many files at once, note which units must restart, ensure packages, bring a unit to
//! its state. Scripts take their values as positional arguments, never spliced into the text.

use std::collections::BTreeSet;

use crate::ssh::quote::join;
use crate::ssh::{ExecOptions, ExecOutput, Session, SshError};

/// Restart notes survive a failed run: a file written by a run that stopped before the restart
/// still restarts its unit on the next one.
pub const PENDING_DIR: &str = "/var/lib/kinit/pending";
/// The note asking for `systemctl daemon-reload` before the next unit action.
pub const DAEMON_RELOAD: &str = "daemon-reload";

#[derive(Debug, thiserror::Error)]
pub enum HostOpError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{summary}")]
    Failed { summary: String, stderr: String },
}

impl HostOpError {
    /// The last lines of the remote stderr, for the failure report.
    pub fn stderr_tail(&self) -> Option<String> {
        match self {
            HostOpError::Failed { stderr, .. } if !stderr.trim().is_empty() => {
                let lines: Vec<&str> = stderr.trim_end().lines().collect();
                Some(lines[lines.len().saturating_sub(12)..].join("\n"))
            }
            _ => None,
        }
    }
}

/// Run `script` as root with `args` as its positional parameters, whatever its exit status.
pub async fn run_script(
    session: &Session,
    script: &str,
    args: &[&str],
    timeout: std::time::Duration,
) -> Result<ExecOutput, HostOpError> {
    let mut words = vec!["sh", "-c", script, "kinit"];
    words.extend_from_slice(args);
    let command = join(words.iter().copied())?;
    let opts = ExecOptions {
        sudo: true,
        timeout: Some(timeout),
        ..Default::default()
    };
    Ok(session.exec(&command, &opts).await?)
}

/// Like [`run_script`], but a non-zero exit is an error carrying the host's stderr.
async fn run(
    session: &Session,
    script: &str,
    args: &[&str],
    what: &str,
) -> Result<ExecOutput, HostOpError> {
    let out = run_script(session, script, args, std::time::Duration::from_secs(600)).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(HostOpError::Failed {
            summary: format!("{what}: {}", out.status),
            stderr: out.stderr_text(),
        })
    }
}

/// What a file on the host is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
}

const STAT: &str = r#"for p in "$@"; do
  if [ -f "$p" ]; then printf '%s %s\n' "$(sha256sum < "$p" | cut -d ' ' -f 1)" "$(stat -c '%a %U:%G' -- "$p")"; else echo -; fi
done"#;

/// One round trip for any number of files: `None` where a file does not exist.
pub async fn stat_files(
    session: &Session,
    paths: &[&str],
) -> Result<Vec<Option<FileState>>, HostOpError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let out = run(session, STAT, paths, "looking at the files on the host").await?;
    let text = out.stdout_text();
    let states: Vec<Option<FileState>> = text.lines().map(parse_stat_line).collect();
    if states.len() != paths.len() {
        return Err(HostOpError::Failed {
            summary: format!(
                "looking at the files on the host: {} answers for {} files",
                states.len(),
                paths.len()
            ),
            stderr: out.stderr_text(),
        });
    }
    Ok(states)
}

fn parse_stat_line(line: &str) -> Option<FileState> {
    let mut words = line.split_whitespace();
    let sha256 = words.next()?.to_string();
    let mode = u32::from_str_radix(words.next()?, 8).ok()?;
    let owner = words.next()?.to_string();
    Some(FileState {
        sha256,
        mode,
        owner,
    })
}

const MARK: &str = r#"set -e
d=$1; shift
mkdir -p -- "$d"
for u in "$@"; do : > "$d/$u"; done"#;

/// Note that these units must restart (written before the files that cause it).
pub async fn mark_pending(session: &Session, units: &BTreeSet<String>) -> Result<(), HostOpError> {
    if units.is_empty() {
        return Ok(());
    }
    let mut args = vec![PENDING_DIR];
    args.extend(units.iter().map(String::as_str));
    run(session, MARK, &args, "noting units to restart").await?;
    Ok(())
}

const PACKAGES: &str = r#"dry=$1; shift
installed() {
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
  else
    rpm -q "$1" >/dev/null 2>&1
  fi
}
missing=
for p in "$@"; do installed "$p" || missing="$missing $p"; done
if [ -z "$missing" ]; then echo present; exit 0; fi
if [ "$dry" = yes ]; then echo "missing$missing"; exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
elif command -v dnf >/dev/null 2>&1; then
  dnf install -y $missing >&2
elif command -v yum >/dev/null 2>&1; then
  yum install -y $missing >&2
else
  echo "no package manager found (apt-get, dnf, yum) to install:$missing" >&2; exit 1
fi
echo "installed$missing""#;

/// `present`, `installed a b` or (dry run) `missing a b`.
pub async fn ensure_packages(
    session: &Session,
    packages: &[String],
    dry_run: bool,
) -> Result<String, HostOpError> {
    let mut args = vec![if dry_run { "yes" } else { "no" }];
    args.extend(packages.iter().map(String::as_str));
    let out = run(session, PACKAGES, &args, "installing packages").await?;
    Ok(out.stdout_text().trim().to_string())
}

const SERVICE: &str = r#"set -e
u=$1; enable=$2; policy=$3; noblock=$4; dry=$5; d=$6
reload=no; [ -e "$d/daemon-reload" ] && reload=yes
if [ "$dry" != yes ] && [ "$reload" = yes ]; then systemctl daemon-reload; rm -f -- "$d/daemon-reload"; fi
changed=no; [ -e "$d/$u" ] && changed=yes
active=$(systemctl is-active "$u" 2>/dev/null || true)
enabled=$(systemctl is-enabled "$u" 2>/dev/null || true)
act=none
if [ "$changed" = yes ] && { [ "$active" = active ] || [ "$active" = activating ]; }; then act=restart
elif [ "$changed" = yes ]; then act=start
elif [ "$policy" = always ] && [ "$active" != active ] && [ "$active" != activating ]; then act=start
fi
en=none
if [ "$enable" = yes ] && [ "$enabled" != enabled ]; then en=enable; fi
if [ "$dry" = yes ]; then echo "$act $en"; exit 0; fi
[ "$en" = enable ] && systemctl enable -q "$u"
nb=; [ "$noblock" = yes ] && nb=--no-block
fail() { systemctl status --no-pager -n 15 "$u" >&2 || true; exit 1; }
case $act in
  restart) systemctl restart $nb "$u" || fail ;;
  start) systemctl start $nb "$u" || fail ;;
esac
rm -f -- "$d/$u"
echo "$act $en""#;

/// What a unit action did (or, dry, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitChange {
    None,
    Started,
    Restarted,
}

pub struct UnitRequest<'a> {
    pub unit: &'a str,
    pub enable: bool,
    /// Start it when it is not running (else only restart on a change).
    pub keep_running: bool,
    pub no_block: bool,
}

/// Bring a unit to its state: daemon-reload when a unit file changed, enable, start when not
/// running, restart when an input changed. Returns (what happened, whether it was enabled now).
pub async fn ensure_unit(
    session: &Session,
    req: &UnitRequest<'_>,
    dry_run: bool,
) -> Result<(UnitChange, bool), HostOpError> {
    let yn = |b: bool| if b { "yes" } else { "no" };
    let args = [
        req.unit,
        yn(req.enable),
        if req.keep_running {
            "always"
        } else {
            "on-change"
        },
        yn(req.no_block),
        yn(dry_run),
        PENDING_DIR,
    ];
    let out = run(
        session,
        SERVICE,
        &args,
        &format!("systemd unit {}", req.unit),
    )
    .await?;
    let text = out.stdout_text();
    let mut words = text.split_whitespace();
    let change = match words.next() {
        Some("restart") => UnitChange::Restarted,
        Some("start") => UnitChange::Started,
        _ => UnitChange::None,
    };
    Ok((change, words.next() == Some("enable")))
}

/// A command, skipped when `unless` exits 0. Returns whether it ran.
pub async fn command(
    session: &Session,
    run_text: &str,
    unless: Option<&str>,
    dry_run: bool,
) -> Result<bool, HostOpError> {
    if let Some(check) = unless {
        let out = session
            .exec(
                check,
                &ExecOptions {
                    sudo: true,
                    timeout: Some(std::time::Duration::from_secs(60)),
                    ..Default::default()
                },
            )
            .await?;
        if out.success() {
            return Ok(false);
        }
    }
    if dry_run {
        return Ok(true);
    }
    run(session, run_text, &[], &format!("`{run_text}`")).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        assert_eq!(parse_stat_line("-"), None);
        assert_eq!(
            parse_stat_line("abc 600 root:root"),
            Some(FileState {
                sha256: "abc".into(),
                mode: 0o600,
                owner: "root:root".into()
            })
        );
    }
}
