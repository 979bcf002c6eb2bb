//! `kinit reset` on hosts: etcd members of a partial reset removed first (keeping quorum), then
//! on every selected host at once, in one round trip each: static pod manifests removed, units
//! stopped and disabled, etcd's data dir moved aside (or purged), files, binaries and kinit's
//! state removed, systemd reloaded, kinit's empty directories removed. A dry run asks the same
//! script what it would do. The host's lock is held while it is reset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::membership::{self, MembershipError, ResetMembership};
use super::reset_plan::HostReset;
use crate::engine::host_ops::run_script;
use crate::engine::lock::{self, LockOwner};
use crate::etcd::ClientTls;
use crate::fanout::{self, FanoutError};
use crate::ssh::{HostTarget, Pool};

/// How a reset runs.
#[derive(Debug, Clone)]
pub struct ResetSettings {
    pub dry_run: bool,
    /// Delete etcd's data dir instead of moving it aside.
    pub purge: bool,
    pub concurrency: usize,
    /// UTC `YYYYMMDDTHHMMSSZ`: names the moved-aside data dir.
    pub stamp: String,
    pub etcd_timeout: Duration,
}

/// One thing done (or, in a dry run, to be done) on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "target")]
pub enum ResetAction {
    Stop(String),
    Disable(String),
    Remove(String),
    /// etcd's data dir, and where it went.
    Move {
        from: String,
        to: String,
    },
    Purge(String),
    Rmdir(String),
    /// A step that failed (the script went on with the rest).
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostResetOutcome {
    pub host: String,
    pub actions: Vec<ResetAction>,
    pub kept: Vec<String>,
    pub error: Option<String>,
}

impl HostResetOutcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self
                .actions
                .iter()
                .any(|a| matches!(a, ResetAction::Failed(_)))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    pub dry_run: bool,
    pub membership: ResetMembership,
    pub hosts: Vec<HostResetOutcome>,
}

impl ResetReport {
    pub fn ok(&self) -> bool {
        self.hosts.iter().all(HostResetOutcome::ok)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("interrupted before any host was changed")]
    Interrupted,
}

/// Runs as root with: dry purge data aside, then sections of words, each opened by its marker,
/// in the order they are carried out. Prints one `<action> <target>` line per thing done (or,
/// dry, to do); `failed <action> <target>` when a step failed (the rest still runs).
const SCRIPT: &str = r#"set -u
dry=$1; purge=$2; data=$3; aside=$4; shift 4
fail=0
act() {
  verb=$1; target=$2; shift 2
  if [ "$dry" = yes ]; then echo "$verb $target"; return 0; fi
  if "$@" >&2; then echo "$verb $target"; else echo "failed $verb $target"; fail=1; fi
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
data_dir() {
  [ "$data" = - ] && return 0
  [ -d "$data" ] || return 0
  [ -n "$(ls -A -- "$data" 2>/dev/null)" ] || return 0
  if [ "$purge" = yes ]; then act purge "$data" rm -rf -- "$data"
  else act move "$data $aside" mv -- "$data" "$aside"; fi
}
sec=
for a in "$@"; do
  case $a in
    --manifests|--wait|--units|--files|--state|--dirs) sec=$a; continue ;;
    --data) data_dir; continue ;;
  esac
  case $sec in
    --manifests|--files)
      if [ -e "$a" ] || [ -L "$a" ]; then act remove "$a" rm -f -- "$a"; fi ;;
    --wait)
      # The kubelet stops a static pod once its manifest is gone; wait for its port.
      if [ "$dry" = no ] && systemctl is-active -q kubelet 2>/dev/null; then
        n=0; while listening "$a" && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done
      fi ;;
    --units)
      s=$(systemctl is-active "$a" 2>/dev/null || true)
      case $s in active|activating|reloading|deactivating) act stop "$a" systemctl stop "$a" ;; esac
      e=$(systemctl is-enabled "$a" 2>/dev/null || true)
      case $e in enabled|enabled-runtime) act disable "$a" systemctl disable -q "$a" ;; esac
      [ "$dry" = no ] && systemctl reset-failed "$a" >/dev/null 2>&1
      ;;
    --state)
      if [ -d "$a" ]; then act remove "$a" rm -rf -- "$a"; fi ;;
    --dirs)
      if [ "$dry" = no ] && [ -d "$a" ] && [ -z "$(ls -A -- "$a" 2>/dev/null)" ]; then
        act rmdir "$a" rmdir -- "$a"
      fi ;;
  esac
done
[ "$dry" = no ] && { systemctl daemon-reload || fail=1; }
exit $fail"#;

/// The script's words for `plan`.
fn script_args(plan: &HostReset, settings: &ResetSettings) -> Vec<String> {
    let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
    let (data, aside) = match &plan.data_dir {
        Some(d) => (d.clone(), aside_path(d, &settings.stamp, "reset")),
        None => ("-".into(), "-".into()),
    };
    let mut args = vec![yn(settings.dry_run), yn(settings.purge), data, aside];
    args.push("--manifests".into());
    args.extend(plan.manifests.iter().cloned());
    args.push("--wait".into());
    args.extend(plan.pod_ports.iter().map(u16::to_string));
    args.push("--units".into());
    args.extend(plan.units.iter().map(|u| u.to_string()));
    args.push("--data".into());
    args.push("--files".into());
    args.extend(plan.files.iter().cloned());
    args.push("--state".into());
    args.extend(plan.state_dirs.iter().map(|d| d.to_string()));
    args.push("--dirs".into());
    args.extend(plan.dirs.iter().cloned());
    args
}

/// `/var/lib/etcd` -> `/var/lib/etcd.reset-20261127T101500Z`: next to it, so on the same
/// filesystem (a rename, not a copy).
pub fn aside_path(data_dir: &str, stamp: &str, why: &str) -> String {
    format!("{}.{why}-{stamp}", data_dir.trim_end_matches('/'))
}

fn parse_actions(stdout: &str) -> Vec<ResetAction> {
    stdout
        .lines()
        .filter_map(|line| {
            let (verb, target) = line.split_once(' ')?;
            let t = target.to_string();
            Some(match verb {
                "stop" => ResetAction::Stop(t),
                "disable" => ResetAction::Disable(t),
                "remove" => ResetAction::Remove(t),
                "purge" => ResetAction::Purge(t),
                "rmdir" => ResetAction::Rmdir(t),
                "move" => {
                    let (from, to) = target.split_once(' ')?;
                    ResetAction::Move {
                        from: from.into(),
                        to: to.into(),
                    }
                }
                "failed" => ResetAction::Failed(t),
                _ => return None,
            })
        })
        .collect()
}

/// Reset the hosts of `plans` (their targets in `targets`). Members of a partial reset are
/// removed first; a refusal there changes nothing anywhere.
pub async fn run(
    inv: &crate::inventory::Inventory,
    tls: Option<&ClientTls>,
    plans: Vec<HostReset>,
    targets: &BTreeMap<String, HostTarget>,
    pool: Arc<Pool>,
    settings: &ResetSettings,
    cancel: &CancellationToken,
) -> Result<ResetReport, ResetError> {
    let selected: BTreeSet<String> = plans.iter().map(|p| p.host.clone()).collect();
    let membership = match tls {
        Some(tls) => membership::plan_reset(inv, tls, &selected, settings.etcd_timeout).await?,
        None => membership::without_client(inv, &selected)?,
    };
    if cancel.is_cancelled() {
        return Err(ResetError::Interrupted);
    }
    if let (ResetMembership::Remove { members, via }, Some(tls), false) =
        (&membership, tls, settings.dry_run)
    {
        membership::remove(tls, members, via, settings.etcd_timeout).await?;
    }
    let owner = LockOwner::current();
    let items: Vec<_> = plans
        .into_iter()
        .filter_map(|p| {
            let target = targets.get(&p.host)?.clone();
            Some((p.host.clone(), (p, target)))
        })
        .collect();
    let kept: BTreeMap<String, Vec<String>> = items
        .iter()
        .map(|(h, (p, _))| (h.clone(), p.kept.clone()))
        .collect();
    let shared = settings.clone();
    let results = fanout::run(
        items,
        settings.concurrency,
        cancel,
        move |(plan, target)| {
            let (pool, owner, settings) = (pool.clone(), owner.clone(), shared.clone());
            async move { reset_host(&pool, &target, &plan, &owner, &settings).await }
        },
    )
    .await;
    let hosts = results
        .into_iter()
        .map(|(host, r)| {
            let kept = kept.get(&host).cloned().unwrap_or_default();
            match r {
                Ok(actions) => HostResetOutcome {
                    host,
                    actions,
                    kept,
                    error: None,
                },
                Err(e) => HostResetOutcome {
                    host,
                    actions: Vec::new(),
                    kept,
                    error: Some(match e {
                        FanoutError::Failed(s) => s,
                        other => other.to_string(),
                    }),
                },
            }
        })
        .collect();
    Ok(ResetReport {
        dry_run: settings.dry_run,
        membership,
        hosts,
    })
}

async fn reset_host(
    pool: &Pool,
    target: &HostTarget,
    plan: &HostReset,
    owner: &LockOwner,
    settings: &ResetSettings,
) -> Result<Vec<ResetAction>, String> {
    let session = pool.get(target).await.map_err(|e| e.to_string())?;
    if !settings.dry_run {
        lock::take(&session, owner, false)
            .await
            .map_err(|e| format!("lock: {e}"))?;
    }
    let args = script_args(plan, settings);
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_script(&session, SCRIPT, &words, Duration::from_secs(300)).await;
    if !settings.dry_run {
        let _ = lock::release(&session, owner).await;
    }
    let out = out.map_err(|e| e.to_string())?;
    let actions = parse_actions(&out.stdout_text());
    if !out.success() && !actions.iter().any(|a| matches!(a, ResetAction::Failed(_))) {
        let stderr = out.stderr_text();
        let tail: Vec<&str> = stderr.trim_end().lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("reset: {}: {}", out.status, tail.join(" / ")));
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_report_parses_into_actions() {
        let got = parse_actions(
            "stop keepalived\ndisable keepalived\nmove /var/lib/etcd /var/lib/etcd.reset-X\n\
             remove /etc/etcd/etcd.conf.yml\nfailed stop etcd\nrmdir /etc/etcd\nnoise\n",
        );
        assert_eq!(
            got,
            vec![
                ResetAction::Stop("keepalived".into()),
                ResetAction::Disable("keepalived".into()),
                ResetAction::Move {
                    from: "/var/lib/etcd".into(),
                    to: "/var/lib/etcd.reset-X".into()
                },
                ResetAction::Remove("/etc/etcd/etcd.conf.yml".into()),
                ResetAction::Failed("stop etcd".into()),
                ResetAction::Rmdir("/etc/etcd".into()),
            ]
        );
    }

    #[test]
    fn the_data_dir_goes_next_to_itself() {
        assert_eq!(
            aside_path("/var/lib/etcd/", "20261127T101500Z", "reset"),
            "/var/lib/etcd.reset-20261127T101500Z"
        );
    }
}
