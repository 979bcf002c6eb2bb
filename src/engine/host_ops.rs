//! What the per-host job asks of a host ([`HostOps`]), and its implementation over SSH
//! ([`SshHost`]): each operation one shell script run as root over one channel, taking its values
//! as positional arguments, never spliced into the text. The job's decisions (what differs, what
//! to restart) live in `host_job`, so they are tested against an in-memory host.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::lifecycle_step::{self, HostAction, LifecycleStep};
use super::plan::{Content, PendingNote, PruneDir, PutFile, RENDERED_MARK};
use crate::ssh::quote::join;
use crate::ssh::{ExecOptions, ExecOutput, FileSpec, Session};

mod contract;
pub use contract::{
    FileState, HostOpError, HostOps, PackagesState, UnitAction, UnitPlan, UnitState,
};

/// Restart notes survive a failed run: a file written by a run that stopped before the restart
/// still restarts its unit on the next one.
pub const PENDING_DIR: &str = crate::host_paths::PENDING_DIR;

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
pub(crate) async fn run(
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

/// Removes the directories under `$1` (not links) that are not named in `$5...` and whose
/// file `$2` starts with `$3` (kinit's header), when `$4` is `yes`; prints their names.
const PRUNE: &str = r#"dir="$1"; marker="$2"; mark="$3"; apply="$4"; shift 4
[ -d "$dir" ] || exit 0
for p in "$dir"/*; do
  { [ -d "$p" ] && [ ! -L "$p" ]; } || continue
  n="${p##*/}"
  for k in "$@"; do [ "$n" = "$k" ] && continue 2; done
  case "$(head -n 1 -- "$p/$marker" 2>/dev/null)" in "$mark"*) ;; *) continue ;; esac
  if [ "$apply" = yes ]; then rm -rf -- "$p" || exit 1; fi
  printf '%s\n' "$n"
done"#;

/// A host over SSH.
pub struct SshHost(pub Arc<Session>);

/// Files at least this large (binaries) are hashed once and then known by a stamp: hashing the
/// control plane's 300 MiB of binaries on every host took most of a no-op `up`.
const STAMP_MIN_BYTES: u64 = 1 << 20;

/// A file's identity for its stamp: device, inode, size, change and modification times (with
/// nanoseconds). Writing the file or renaming another onto it changes it; ctime cannot be set
/// back by any tool, so content that changed is never taken for the stamped one.
const STAMP_FNS: &str = r#"ident() { stat -c '%d:%i:%s:%z:%y' -- "$1" | tr ' ' '_'; }
stamp() {
  mkdir -p -m 0700 -- "$sd" || return 0
  t="$sd/.$2.kinit-upload.$$"
  printf '%s %s\n' "$(ident "$1")" "$3" > "$t" && mv -f -- "$t" "$sd/$2" || rm -f -- "$t"
}"#;

/// `sd` (the stamp dir), then pairs of (path, stamp name): for each, `<sha256> <mode> <owner>`
/// or `-`. A large file whose stamp still names it is not read again.
const STAT: &str = r#"sd=$1; shift
while [ $# -ge 2 ]; do
  p=$1; n=$2; shift 2
  if [ -f "$p" ]; then
    h=
    if [ -f "$sd/$n" ] && read -r i x < "$sd/$n" && [ "$i" = "$(ident "$p")" ]; then h=$x; fi
    if [ -z "$h" ]; then
      h=$(sha256sum < "$p" | cut -d ' ' -f 1)
      [ "$(stat -c %s -- "$p")" -ge MIN ] && stamp "$p" "$n" "$h"
    fi
    printf '%s %s\n' "$h" "$(stat -c '%a %U:%G' -- "$p")"
  else echo -; fi
done"#;

/// After a write: the stamp of a large file just written with `sha256` (the write checked it).
const STAMP: &str = r#"sd=$1; p=$2; n=$3; h=$4
[ "$(stat -c %s -- "$p")" -ge MIN ] && stamp "$p" "$n" "$h"
exit 0"#;

fn with_stamp_fns(script: &str) -> String {
    format!(
        "{STAMP_FNS}\n{}",
        script.replace("MIN", &STAMP_MIN_BYTES.to_string())
    )
}

/// The stamp file name of `path`: its sha256, shortened (the stamp dir is kinit's alone).
pub fn stamp_name(path: &str) -> String {
    format!("{}.stamp", &crate::ssh::sha256_hex(path.as_bytes())[..32])
}

/// One round trip for any number of files: `None` where a file does not exist.
async fn stat_files(
    session: &Session,
    paths: &[&str],
) -> Result<Vec<Option<FileState>>, HostOpError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = paths.iter().map(|p| stamp_name(p)).collect();
    let mut args = vec![crate::host_paths::UPLOAD_STAMP_DIR];
    for (p, n) in paths.iter().zip(&names) {
        args.push(p);
        args.push(n);
    }
    let script = with_stamp_fns(STAT);
    let out = run(session, &script, &args, "looking at the files on the host").await?;
    let text = out.stdout_text();
    let states: Vec<Option<FileState>> = text.lines().map(parse_stat_line).collect();
    HostOpError::check_answers(states.len(), paths.len(), out.stderr_text())?;
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

const UNIT_STATE: &str = r#"u=$1; d=$2
a=$(systemctl is-active "$u" 2>/dev/null || true)
e=$(systemctl is-enabled "$u" 2>/dev/null || true)
r=no; [ -e "$d/$u" ] && r=yes
l=no; [ -e "$d/$u.reload" ] && l=yes
dr=no; [ -e "$d/daemon-reload" ] && dr=yes
echo "${a:-unknown} ${e:-unknown} $r $l $dr""#;

const UNIT_APPLY: &str = r#"set -e
u=$1; dr=$2; en=$3; act=$4; nb=$5; d=$6
if [ "$dr" = yes ]; then systemctl daemon-reload; rm -f -- "$d/daemon-reload"; fi
[ "$en" = yes ] && systemctl enable -q "$u"
b=; [ "$nb" = yes ] && b=--no-block
fail() { systemctl status --no-pager -n 15 "$u" >&2 || true; exit 1; }
case $act in
  restart) systemctl restart $b "$u" || fail ;;
  reload) systemctl reload $b "$u" || fail ;;
  start) systemctl start $b "$u" || fail ;;
esac
rm -f -- "$d/$u" "$d/$u.reload""#;

fn parse_unit_state(line: &str) -> Option<UnitState> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let [active, enabled, restart, reload, daemon_reload] = w[..] else {
        return None;
    };
    Some(UnitState {
        running: active == "active" || active == "activating",
        enabled: enabled == "enabled",
        restart_noted: restart == "yes",
        reload_noted: reload == "yes",
        daemon_reload_noted: daemon_reload == "yes",
    })
}

fn parse_packages(line: &str) -> Option<PackagesState> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let rest: Vec<String> = words.map(str::to_string).collect();
    match first {
        "present" => Some(PackagesState::Present),
        "missing" => Some(PackagesState::Missing(rest)),
        "installed" => Some(PackagesState::Installed(rest)),
        _ => None,
    }
}

fn unexpected(what: &str, out: &ExecOutput) -> HostOpError {
    HostOpError::Failed {
        summary: format!("{what}: unexpected answer `{}`", out.stdout_text().trim()),
        stderr: out.stderr_text(),
    }
}

impl HostOps for SshHost {
    async fn stat_files(&self, paths: &[&str]) -> Result<Vec<Option<FileState>>, HostOpError> {
        stat_files(&self.0, paths).await
    }

    async fn note_pending(&self, notes: &BTreeSet<PendingNote>) -> Result<(), HostOpError> {
        if notes.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = notes.iter().map(|n| n.file_name()).collect();
        let mut args = vec![PENDING_DIR];
        args.extend(names.iter().map(String::as_str));
        run(&self.0, MARK, &args, "noting units to restart").await?;
        Ok(())
    }

    async fn write_file(&self, f: &PutFile) -> Result<(), HostOpError> {
        let spec = FileSpec::new(f.mode, Some(&f.owner));
        match &f.content {
            Content::Bytes(bytes) => {
                let mut reader: &[u8] = bytes;
                self.0
                    .write_from(&mut reader, &f.sha256, &f.path, &spec)
                    .await?;
            }
            Content::Local(path) | Content::Once(path) => {
                let mut file =
                    tokio::fs::File::open(path)
                        .await
                        .map_err(|e| HostOpError::Failed {
                            summary: format!("cannot read {}: {e}", path.display()),
                            stderr: String::new(),
                        })?;
                self.0
                    .write_from(&mut file, &f.sha256, &f.path, &spec)
                    .await?;
                if matches!(f.content, Content::Once(_)) {
                    return Ok(());
                }
                // A bundle binary: stamped now, so the next run need not read it back.
                let name = stamp_name(&f.path);
                let args = [
                    crate::host_paths::UPLOAD_STAMP_DIR,
                    f.path.as_str(),
                    name.as_str(),
                    f.sha256.as_str(),
                ];
                run(&self.0, &with_stamp_fns(STAMP), &args, "stamping the file").await?;
            }
        }
        Ok(())
    }

    async fn packages(
        &self,
        packages: &[&str],
        install: bool,
    ) -> Result<PackagesState, HostOpError> {
        let mut args = vec![if install { "no" } else { "yes" }];
        args.extend_from_slice(packages);
        let out = run(&self.0, PACKAGES, &args, "installing packages").await?;
        parse_packages(out.stdout_text().trim()).ok_or_else(|| unexpected("packages", &out))
    }

    async fn unit_state(&self, unit: &str) -> Result<UnitState, HostOpError> {
        let what = format!("systemd unit {unit}");
        let out = run(&self.0, UNIT_STATE, &[unit, PENDING_DIR], &what).await?;
        parse_unit_state(out.stdout_text().trim()).ok_or_else(|| unexpected(&what, &out))
    }

    async fn apply_unit(&self, unit: &str, plan: &UnitPlan) -> Result<(), HostOpError> {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let act = match plan.action {
            UnitAction::None => "none",
            UnitAction::Start => "start",
            UnitAction::Restart => "restart",
            UnitAction::Reload => "reload",
        };
        let args = [
            unit,
            yn(plan.daemon_reload),
            yn(plan.enable),
            act,
            yn(plan.no_block),
            PENDING_DIR,
        ];
        run(&self.0, UNIT_APPLY, &args, &format!("systemd unit {unit}")).await?;
        Ok(())
    }

    async fn prune(&self, prune: &PruneDir, apply: bool) -> Result<Vec<String>, HostOpError> {
        let mut args = vec![
            prune.dir.as_str(),
            prune.marker_file.as_str(),
            RENDERED_MARK,
            if apply { "yes" } else { "no" },
        ];
        args.extend(prune.keep.iter().map(String::as_str));
        let what = format!("pruning {}", prune.dir);
        let out = run(&self.0, PRUNE, &args, &what).await?;
        Ok(out.stdout_text().lines().map(str::to_string).collect())
    }

    async fn lifecycle_step(
        &self,
        what: &LifecycleStep,
        apply: bool,
    ) -> Result<Vec<HostAction>, HostOpError> {
        let label = what.label();
        let (script, words) = lifecycle_step::script(what, !apply);
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = run(&self.0, &script, &args, &label).await?;
        let mut actions =
            lifecycle_step::read_answers(what, !apply, &out.stdout_text()).map_err(|summary| {
                HostOpError::Failed {
                    summary: format!("{label}: {summary}"),
                    stderr: out.stderr_text(),
                }
            })?;
        // What the host said about the last thing it could not do: its commands' last words.
        let stderr = out.stderr_text();
        let said: Vec<&str> = stderr.trim_end().lines().rev().take(3).collect();
        let said =
            (!said.is_empty()).then(|| said.into_iter().rev().collect::<Vec<_>>().join("; "));
        let last_failed = actions.iter_mut().rev().find_map(|a| match a {
            HostAction::Failed(what) => Some(what),
            _ => None,
        });
        if let (Some(what), Some(said)) = (last_failed, said) {
            what.push_str(&format!(" (the host said: {said})"));
        }
        Ok(actions)
    }
}

/// What etcd's data dir `dir` holds besides etcd's `entry` (at most 20 names; none when it
/// is not there): asked before anything leaves, since such a directory is not touched.
pub(crate) async fn foreign_in_data_dir(
    session: &Session,
    dir: &str,
    entry: &str,
) -> Result<Vec<String>, HostOpError> {
    let script = format!(
        "{}{}",
        lifecycle_step::DIR_FUNCTIONS,
        lifecycle_step::FOREIGN
    );
    let what = "looking into etcd's data dir";
    let out = run(session, &script, &[dir, entry], what).await?;
    Ok(out.stdout_text().lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests;
