//! What `reset` (and `remove`, which resets the hosts that leave) takes off a host, and what an
//! etcd snapshot restore checks, stops, holds aside, restores and starts again, as steps of the host job
//! ([`LifecycleStep`]): the same events, dry run and failure reports as `up`'s steps. Each kind
//! is one small script run as root with its values as positional arguments; it answers one
//! line per item it was given, in order, and the meaning of each answer is read here
//! ([`read_answers`]). A thing that could not be done is a [`HostAction::Failed`] and the rest
//! still goes (a reset takes off what it can; a restore stops at it); only a host that cannot
//! be asked fails the step.

use serde::Serialize;

mod scripts;

pub(crate) use scripts::{DIR_FUNCTIONS, FOREIGN, script};

/// What a restore's check says when the host has no program that restores a snapshot.
const NO_RESTORE_TOOL: &str =
    "find etcdutl or an etcdctl that has `snapshot restore` on the host's PATH (neither is there)";

/// One thing done (or, in a dry run, to be done) on a host, or found by a restore's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "target")]
pub enum HostAction {
    Stop(String),
    Disable(String),
    Start(String),
    Remove(String),
    /// etcd's data dir or a manifest, and where it went.
    Move {
        from: String,
        to: String,
    },
    Purge(String),
    Rmdir(String),
    /// One of kinit's state dirs left in place: it holds `found`, which kinit did not put there
    /// (kinit's own entries in it were removed).
    Kept {
        path: String,
        found: Vec<String>,
    },
    /// What could not be done (the rest still went).
    Failed(String),
    /// etcd's data dir holds `found` besides etcd's entry: nothing in it is touched.
    ForeignData {
        dir: String,
        found: Vec<String>,
    },
    /// etcd's data dir is a mount point: it stays where it is, etcd's entry in it moves.
    MountPoint(String),
    /// An etcd member restored from a snapshot into its data dir.
    Restored {
        member: String,
        dir: String,
    },
}

/// One etcd member's restore from a snapshot on its host (see [`LifecycleStep::EtcdRestore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRestore {
    /// The uploaded snapshot: deleted once the step ends, whatever happened.
    pub snapshot: String,
    pub data_dir: String,
    /// etcd's entry in the data dir (`member`).
    pub entry: String,
    pub name: String,
    pub peer_url: String,
    /// Every member as `name=peer-url,...`.
    pub initial_cluster: String,
    /// The new cluster token: no restored member can rejoin the old cluster.
    pub token: String,
}

/// One kind of thing done to a host by a reset (in the order a reset does them) or a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleStep {
    /// Static pod manifests: removed first, so the kubelet stops their pods.
    Manifests(Vec<String>),
    /// The ports those pods hold: while `runner` (the kubelet's unit) runs, waited for (up to a
    /// minute each) until free, so etcd no longer writes to the data dir that moves next. Not
    /// in a dry run.
    PodPortsFree {
        runner: &'static str,
        ports: Vec<u16>,
    },
    /// Units stopped, disabled and their failed state cleared, in this order.
    Units(Vec<&'static str>),
    /// Pods' processes (`kubepods.slice`, containerd's shims, which outlive containerd), then
    /// what the stopped programs made: directories (mounts below them unmounted; a mount point
    /// emptied, not removed), `link:NAME` deleted, `cleanup:BINARY` run with `--cleanup`.
    RuntimeState(Vec<String>),
    /// etcd's data dir moved to `aside` (or deleted with `purge`); a data dir that is a mount
    /// point stays and etcd's `entry` in it goes. One that holds anything else is not touched.
    EtcdData {
        dir: String,
        aside: String,
        entry: String,
        purge: bool,
    },
    /// Every other file and binary.
    Files(Vec<String>),
    /// One of kinit's state directories: removed whole when it holds only entries matching
    /// `kinit_names` (shell patterns), else only those go and the rest is reported as kept.
    StateDir {
        path: String,
        kinit_names: Vec<String>,
    },
    /// Directories kinit made, removed when empty and not a mount point (deepest first).
    EmptyDirs(Vec<String>),
    /// systemd forgets the removed units. Not in a dry run.
    DaemonReload,
    /// Units that run stopped (neither disabled nor forgotten: a restore starts them again).
    StopUnits(Vec<&'static str>),
    /// Files that are there moved into `into` (made root's alone), by name.
    MoveAside { paths: Vec<String>, into: String },
    /// What a [`LifecycleStep::MoveAside`] held in `aside`, of `names`, moved back into `dir`;
    /// `aside` removed once empty, else what it still holds reported as kept.
    PutBack {
        aside: String,
        dir: String,
        names: Vec<String>,
    },
    /// The installed ones of the units started together (each start waits for its program).
    StartUnits(Vec<&'static str>),
    /// Whether a snapshot can be restored here, changing nothing (also in a real run): a
    /// restore tool (etcdutl, or an etcdctl that still has `snapshot restore`) is on the PATH,
    /// and etcd's data dir `dir` is absent or a directory holding nothing but `entry`; a mount
    /// point is said.
    EtcdRestoreCheck { dir: String, entry: String },
    /// A directory only root can enter (0700), made when missing.
    PrivateDir(String),
    /// An etcd member restored from a snapshot into its data dir, which no longer holds etcd's
    /// entry ([`LifecycleStep::EtcdData`] set it aside first; one that still holds it is not
    /// touched).
    EtcdRestore(Box<MemberRestore>),
}

impl LifecycleStep {
    /// The step as the operator reads it in the progress output.
    pub fn label(&self) -> String {
        match self {
            LifecycleStep::Manifests(_) => "remove static pod manifests".into(),
            LifecycleStep::PodPortsFree { .. } => "wait for the static pods to stop".into(),
            LifecycleStep::Units(_) => "stop and disable units".into(),
            LifecycleStep::RuntimeState(_) => "stop pods, remove runtime state".into(),
            LifecycleStep::EtcdData { dir, .. } => format!("etcd data dir {dir}"),
            LifecycleStep::Files(_) => "remove files and binaries".into(),
            LifecycleStep::StateDir { path, .. } => format!("kinit state {path}"),
            LifecycleStep::EmptyDirs(_) => "remove empty directories".into(),
            LifecycleStep::DaemonReload => "systemd daemon-reload".into(),
            LifecycleStep::StopUnits(_) => "stop units".into(),
            LifecycleStep::MoveAside { into, .. } => format!("move aside into {into}"),
            LifecycleStep::PutBack { dir, .. } => format!("put back into {dir}"),
            LifecycleStep::StartUnits(_) => "start units".into(),
            LifecycleStep::EtcdRestoreCheck { dir, .. } => {
                format!("check the restore tool and {dir}")
            }
            LifecycleStep::PrivateDir(dir) => format!("private dir {dir}"),
            LifecycleStep::EtcdRestore(r) => format!("restore member {} from the snapshot", r.name),
        }
    }

    /// The steps after it rely on it: what it could not do stops the host's job (other kinds
    /// report it and the rest still goes).
    pub fn relied_on(&self) -> bool {
        matches!(self, LifecycleStep::PrivateDir(_))
    }

    /// The items the script answers for, one line each.
    fn answers_expected(&self, dry_run: bool) -> Option<usize> {
        match self {
            LifecycleStep::Manifests(items)
            | LifecycleStep::Files(items)
            | LifecycleStep::EmptyDirs(items) => Some(items.len()),
            LifecycleStep::PodPortsFree { .. } => Some(0),
            LifecycleStep::Units(units)
            | LifecycleStep::StopUnits(units)
            | LifecycleStep::StartUnits(units) => Some(units.len()),
            LifecycleStep::MoveAside { paths, .. } => Some(paths.len()),
            // One per name, then what became of the directory (none when it is not there).
            LifecycleStep::PutBack { .. } => None,
            LifecycleStep::RuntimeState(items) => Some(items.len() + 1),
            LifecycleStep::EtcdData { .. } => Some(1),
            // As many lines as the directory has entries of its own.
            LifecycleStep::StateDir { .. } => None,
            LifecycleStep::DaemonReload => Some(usize::from(!dry_run)),
            LifecycleStep::PrivateDir(_) | LifecycleStep::EtcdRestore(_) => Some(1),
            // The tool, then the data dir's state or what it holds that is not etcd's.
            LifecycleStep::EtcdRestoreCheck { .. } => None,
        }
    }
}

/// What the script's answers (`stdout`) say was taken off; an answer the script does not give
/// is an error.
pub(crate) fn read_answers(
    what: &LifecycleStep,
    dry_run: bool,
    stdout: &str,
) -> Result<Vec<HostAction>, String> {
    let lines: Vec<&str> = stdout.lines().collect();
    if let Some(n) = what.answers_expected(dry_run)
        && lines.len() != n
    {
        return Err(format!("{n} answers expected, {} given", lines.len()));
    }
    let mut out = Vec::new();
    match what {
        LifecycleStep::Manifests(paths) | LifecycleStep::Files(paths) => {
            for (p, a) in paths.iter().zip(&lines) {
                out.extend(answer(a, HostAction::Remove(p.clone()), "remove", p)?);
            }
        }
        LifecycleStep::EmptyDirs(dirs) => {
            for (d, a) in dirs.iter().zip(&lines) {
                out.extend(answer(a, HostAction::Rmdir(d.clone()), "rmdir", d)?);
            }
        }
        LifecycleStep::PodPortsFree { .. } => {}
        LifecycleStep::StopUnits(units) => {
            for (u, a) in units.iter().zip(&lines) {
                out.extend(answer(a, HostAction::Stop(u.to_string()), "stop", u)?);
            }
        }
        LifecycleStep::StartUnits(units) => {
            for (u, a) in units.iter().zip(&lines) {
                out.extend(answer(a, HostAction::Start(u.to_string()), "start", u)?);
            }
        }
        LifecycleStep::MoveAside { paths, into } => {
            for (p, a) in paths.iter().zip(&lines) {
                let name = p.rsplit('/').next().unwrap_or(p);
                let to = format!("{into}/{name}");
                let target = format!("{p} {to}");
                let done = HostAction::Move {
                    from: p.clone(),
                    to,
                };
                out.extend(answer(a, done, "move", &target)?);
            }
        }
        LifecycleStep::PutBack { aside, dir, names } => {
            out = read_put_back(aside, dir, names, &lines)?
        }
        // Done is not news: only a failure is reported.
        LifecycleStep::DaemonReload => out.extend(
            lines
                .iter()
                .filter(|a| **a == "failed")
                .map(|_| HostAction::Failed("daemon-reload".into())),
        ),
        LifecycleStep::Units(units) => {
            for (u, line) in units.iter().zip(&lines) {
                let (stop, disable) = pair(line)?;
                out.extend(answer(stop, HostAction::Stop(u.to_string()), "stop", u)?);
                out.extend(answer(
                    disable,
                    HostAction::Disable(u.to_string()),
                    "disable",
                    u,
                )?);
            }
        }
        LifecycleStep::RuntimeState(items) => out = read_runtime(items, &lines)?,
        LifecycleStep::EtcdData {
            dir,
            aside,
            entry,
            purge,
        } => out = read_etcd_data(dir, aside, entry, *purge, lines[0])?,
        LifecycleStep::StateDir { path, .. } => out = read_state_dir(path, &lines)?,
        LifecycleStep::EtcdRestoreCheck { dir, .. } => out = read_restore_check(dir, &lines)?,
        // Done is not news: only a failure is reported.
        LifecycleStep::PrivateDir(dir) => match lines[0] {
            "ok" => {}
            "failed" => out.push(HostAction::Failed(format!(
                "make {dir} root's alone (0700)"
            ))),
            other => return Err(unexpected(other)),
        },
        LifecycleStep::EtcdRestore(r) => out.push(read_member_restore(r, lines[0])?),
    }
    Ok(out)
}

/// One answer: `ok` gives `done`, `failed` a failure named `verb target`, `-` nothing.
fn answer(
    answer: &str,
    done: HostAction,
    verb: &str,
    target: &str,
) -> Result<Option<HostAction>, String> {
    match answer {
        "ok" => Ok(Some(done)),
        "failed" => Ok(Some(HostAction::Failed(format!("{verb} {target}")))),
        "-" => Ok(None),
        other => Err(unexpected(other)),
    }
}

fn unexpected(answer: &str) -> String {
    format!("unexpected answer `{answer}`")
}

fn pair(line: &str) -> Result<(&str, &str), String> {
    line.split_once(' ').ok_or_else(|| unexpected(line))
}

fn read_runtime(items: &[String], lines: &[&str]) -> Result<Vec<HostAction>, String> {
    let mut out = Vec::new();
    let (slice, shims) = pair(lines[0])?;
    let pods = "kubepods.slice";
    out.extend(answer(slice, HostAction::Stop(pods.into()), "stop", pods)?);
    let shim = "containerd-shim-runc-v2";
    // Pods' processes stop like units.
    out.extend(answer(shims, HostAction::Stop(shim.into()), "kill", shim)?);
    for (item, line) in items.iter().zip(&lines[1..]) {
        let (result, how) = pair(line)?;
        let (done, verb) = match how {
            // A program's rules (`rules:kube-proxy`) go like a file.
            "deleted" => match item.strip_prefix("cleanup:") {
                Some(binary) => {
                    let name = binary.rsplit('/').next().unwrap_or(binary);
                    (format!("rules:{name}"), "delete")
                }
                None => (item.clone(), "delete"),
            },
            "removed" => (item.clone(), "remove"),
            // A mount point's contents.
            "emptied" => (format!("{item}/*"), "empty"),
            "-" => continue,
            other => return Err(unexpected(other)),
        };
        out.extend(answer(
            result,
            HostAction::Remove(done.clone()),
            verb,
            &done,
        )?);
    }
    Ok(out)
}

fn read_etcd_data(
    dir: &str,
    aside: &str,
    entry: &str,
    purge: bool,
    line: &str,
) -> Result<Vec<HostAction>, String> {
    let (scope, result) = pair(line)?;
    let (from, to) = match scope {
        "-" => return Ok(Vec::new()),
        "foreign" => {
            return Ok(vec![HostAction::Failed(format!(
                "move {dir}: it holds more than etcd's `{entry}` (nothing there was touched)"
            ))]);
        }
        "entry" => (format!("{dir}/{entry}"), format!("{aside}/{entry}")),
        "dir" => (dir.to_string(), aside.to_string()),
        other => return Err(unexpected(other)),
    };
    let done = if purge {
        answer(result, HostAction::Purge(from.clone()), "purge", &from)?
    } else {
        let target = format!("{from} {to}");
        answer(result, HostAction::Move { from, to }, "move", &target)?
    };
    Ok(done.into_iter().collect())
}

fn read_put_back(
    aside: &str,
    dir: &str,
    names: &[String],
    lines: &[&str],
) -> Result<Vec<HostAction>, String> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    if lines.len() < names.len() {
        return Err(format!(
            "{} answers expected, {} given",
            names.len(),
            lines.len()
        ));
    }
    let mut out = Vec::new();
    for (n, a) in names.iter().zip(lines) {
        let (from, to) = (format!("{aside}/{n}"), format!("{dir}/{n}"));
        let target = format!("{from} {to}");
        out.extend(answer(a, HostAction::Move { from, to }, "move", &target)?);
    }
    let mut kept = Vec::new();
    for line in &lines[names.len()..] {
        match line.split_once(' ') {
            None if *line == "gone" => out.push(HostAction::Rmdir(aside.into())),
            None if *line == "failed" => out.push(HostAction::Failed(format!("rmdir {aside}"))),
            Some(("kept", name)) => kept.push(name.to_string()),
            _ => return Err(unexpected(line)),
        }
    }
    if !kept.is_empty() {
        out.push(HostAction::Kept {
            path: aside.into(),
            found: kept,
        });
    }
    Ok(out)
}

fn read_restore_check(dir: &str, lines: &[&str]) -> Result<Vec<HostAction>, String> {
    let Some((tool, data)) = lines.split_first() else {
        return Err("no answer".into());
    };
    let mut out = Vec::new();
    match tool.strip_prefix("tool ") {
        Some("-") => out.push(HostAction::Failed(NO_RESTORE_TOOL.into())),
        Some(_) => {}
        None => return Err(unexpected(tool)),
    }
    if data.is_empty() {
        return Err(format!("no answer about {dir}"));
    }
    let mut found = Vec::new();
    for line in data {
        match pair(line)? {
            ("foreign", name) => found.push(name.to_string()),
            ("data", "mount") => out.push(HostAction::MountPoint(dir.into())),
            ("data", "dir" | "absent") => {}
            ("data", "other") => out.push(HostAction::Failed(format!(
                "use {dir} as etcd's data dir: it is there but not a directory"
            ))),
            _ => return Err(unexpected(line)),
        }
    }
    if !found.is_empty() {
        out.push(HostAction::ForeignData {
            dir: dir.into(),
            found,
        });
    }
    Ok(out)
}

fn read_member_restore(r: &MemberRestore, line: &str) -> Result<HostAction, String> {
    let (member, dir) = (&r.name, &r.data_dir);
    Ok(match line {
        "ok" => HostAction::Restored {
            member: member.clone(),
            dir: dir.clone(),
        },
        "failed" => HostAction::Failed(format!("restore member {member} into {dir}")),
        "held" => HostAction::Failed(format!(
            "restore member {member} into {dir}: it still holds etcd's `{}` (not set aside, so \
             not touched)",
            r.entry
        )),
        "notool" => HostAction::Failed(NO_RESTORE_TOOL.into()),
        other => return Err(unexpected(other)),
    })
}

fn read_state_dir(path: &str, lines: &[&str]) -> Result<Vec<HostAction>, String> {
    let (mut out, mut kept) = (Vec::new(), Vec::new());
    for line in lines {
        let (result, name) = pair(line)?;
        match result {
            "whole" => out.extend(answer(
                name,
                HostAction::Remove(path.into()),
                "remove",
                path,
            )?),
            "kept" => kept.push(name.to_string()),
            _ => {
                let entry = format!("{path}/{name}");
                out.extend(answer(
                    result,
                    HostAction::Remove(entry.clone()),
                    "remove",
                    &entry,
                )?)
            }
        }
    }
    if !kept.is_empty() {
        out.push(HostAction::Kept {
            path: path.into(),
            found: kept,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod tests;
