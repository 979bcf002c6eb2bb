//! The lab commands: up, down, status, stop, start, ssh. Each takes the lab lock, reads the
//! recorded state, and acts on what it records.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::admission::{check_capacity, check_free, pick_free_subnet};
use super::boot::{boot, wait_for_ssh};
use super::host_tools::{LAB_TOOLS, require_root, require_tools};
use super::lock::FileLock;
use super::plan::{
    DEFAULT_NAME, DEFAULT_NODES, LabPlan, LabRequest, PlannedNode, SubnetPick, validate_name,
};
use super::ssh_probe::sshd_answers;
use super::state::LabState;
use super::{
    LabError, Reporter, bridge, cluster_file, image, keys, lab_dir, labs_dir, node, recipe,
};
use crate::fsutil::{Existing, write_atomic};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpOutcome {
    pub name: String,
    pub lab_dir: PathBuf,
    pub cluster_file: PathBuf,
    pub identity_file: PathBuf,
    pub known_hosts: PathBuf,
    pub subnet: String,
    /// Set when this run chose the subnet (a new lab given no `--subnet`): the subnets passed
    /// over, and what uses them.
    pub subnet_picked: Option<SubnetPick>,
    pub bridge: String,
    pub vip: Ipv4Addr,
    /// Nodes this run booted; empty when the lab was already up.
    pub started: Vec<String>,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabStatus {
    pub name: String,
    pub lab_dir: PathBuf,
    pub subnet: String,
    pub bridge: String,
    pub bridge_present: bool,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub machine_id: String,
    pub roles: Vec<&'static str>,
    pub running: bool,
    pub ssh: bool,
    /// The systemd-nspawn process, while running.
    pub pid: Option<i32>,
}

pub struct LabPaths {
    pub dir: PathBuf,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub cluster: PathBuf,
}

impl LabPaths {
    pub fn new(name: &str) -> LabPaths {
        let dir = lab_dir(name);
        LabPaths {
            key: dir.join("id_ed25519"),
            known_hosts: dir.join("known_hosts"),
            cluster: dir.join("cluster.yaml"),
            dir,
        }
    }
}

fn lock(dir: &Path) -> Result<FileLock, LabError> {
    FileLock::acquire(&dir.join(".lock"))
}

/// Bring the lab up, or finish bringing it up: converges, so a second run changes nothing and a
/// run after a crash first removes what the crash left.
///
/// A new lab is first checked against this machine's free memory, disk and CPUs; one given no
/// `--subnet` gets the first free /24 from [`DEFAULT_SUBNET`] on ([`UpOutcome::subnet_picked`]).
pub fn up(req: &LabRequest, reporter: &dyn Reporter) -> Result<UpOutcome, LabError> {
    require_root()?;
    require_tools(LAB_TOOLS)?;
    let name = req.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
    validate_name(&name)?;
    // Before the plan, so that a request for more nodes than a lab may have also hears what fits.
    let source = super::bundle::resolve(&req.bundle, req.runtime)?;
    if !LabState::path(&lab_dir(&name)).exists() {
        let workload = match source.kubernetes() {
            Some(_) => super::capacity::LabWorkload::Kubernetes,
            None => super::capacity::LabWorkload::Etcd,
        };
        check_capacity(&name, req.nodes.unwrap_or(DEFAULT_NODES), workload)?;
    }
    let mut requested = LabPlan::new(req)?;
    requested.kubernetes = source.kubernetes();
    let paths = LabPaths::new(&requested.name);
    // The cluster definition must validate (e.g. --subnet must not overlap the pod subnet)
    // before anything is created.
    validate_cluster_file(&requested, &paths)?;
    std::fs::create_dir_all(labs_dir()).map_err(|e| LabError::io(labs_dir(), "creating", e))?;
    let existed = paths.dir.exists();
    node_dir_create(&paths.dir)?;
    let _lock = lock(&paths.dir)?;

    // Held from the subnet check (or pick) until this lab's state, with its subnet, is saved, so
    // that a lab picking its subnet meanwhile sees this one.
    let mut subnets_lock = None;
    let mut subnet_picked = None;
    let mut state = match LabState::load(&paths.dir)? {
        Some(state) => same_shape(req, &requested, state)?,
        None => {
            let fresh = NewLab {
                req,
                requested,
                source: &source,
                paths: &paths,
                existed,
            };
            let (state, pick) = fresh.state(&mut subnets_lock, reporter)?;
            subnet_picked = pick;
            state
        }
    };
    let plan = state.plan.clone();
    if !state.image.is_dir() {
        return Err(LabError::step(
            "finding the lab's image",
            format!(
                "{} is gone; run `kinit lab down --name {}` and `kinit lab up` again",
                state.image.display(),
                plan.name
            ),
        ));
    }
    state.save(&paths.dir)?;
    drop(subnets_lock);
    // An existing lab keeps the bundle it was made with.
    super::bundle::ensure(&paths.dir, &state.image, &source, plan.runtime)?;

    let lab_key = keys::ensure_key(&paths.key, &format!("kinit-lab-{}", plan.name))?;
    ensure_bridge(&plan)?;

    let started = boot_stopped_nodes(&mut state, &paths, &lab_key, reporter)?;

    // An operator may have edited it since the lab came up: keep theirs.
    let text = cluster_file::render(&plan, &paths.key, &paths.known_hosts);
    match write_atomic(&paths.cluster, text.as_bytes(), 0o644, Existing::Keep) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(LabError::io(&paths.cluster, "writing", e)),
    }
    Ok(UpOutcome {
        name: plan.name.clone(),
        lab_dir: paths.dir.clone(),
        cluster_file: paths.cluster.clone(),
        identity_file: paths.key.clone(),
        known_hosts: paths.known_hosts.clone(),
        subnet: plan.subnet.to_string(),
        subnet_picked,
        bridge: plan.bridge.clone(),
        vip: plan.vip,
        started,
        nodes: node_statuses(&state),
    })
}

/// The lab as recorded, when the request does not ask for another shape.
fn same_shape(
    req: &LabRequest,
    requested: &LabPlan,
    state: LabState,
) -> Result<LabState, LabError> {
    let differs = (req.nodes.is_some() && requested.nodes.len() != state.plan.nodes.len())
        || (req.subnet.is_some() && requested.subnet != state.plan.subnet)
        || (req.runtime && !state.plan.runtime);
    if differs {
        return Err(LabError::ShapeMismatch {
            lab: state.plan.name.clone(),
            existing: format!(
                "{} node(s) on {}",
                state.plan.nodes.len(),
                state.plan.subnet
            ),
        });
    }
    Ok(state)
}

/// A lab that has no state yet: its subnet checked or picked, its image, its node records.
struct NewLab<'a> {
    req: &'a LabRequest,
    requested: LabPlan,
    source: &'a super::bundle::LabBundleSource,
    paths: &'a LabPaths,
    existed: bool,
}

impl NewLab<'_> {
    /// The new lab's state; `subnets_lock` is taken here and held by the caller until the
    /// state is saved. A failure before anything was made removes the directory it created.
    fn state(
        self,
        subnets_lock: &mut Option<FileLock>,
        reporter: &dyn Reporter,
    ) -> Result<(LabState, Option<SubnetPick>), LabError> {
        let NewLab {
            req,
            requested,
            source,
            paths,
            existed,
        } = self;
        let prepared = (|| {
            *subnets_lock = Some(FileLock::acquire(&labs_dir().join(".subnets.lock"))?);
            if req.subnet.is_some() {
                check_free(&requested)?;
                return Ok((requested, None));
            }
            let pick = pick_free_subnet(&requested)?;
            let mut plan = LabPlan::new(&LabRequest {
                subnet: Some(pick.subnet),
                ..req.clone()
            })?;
            plan.kubernetes = source.kubernetes();
            validate_cluster_file(&plan, paths)?;
            check_free(&plan)?;
            Ok((plan, Some(pick)))
        })();
        let (requested, pick) = match prepared {
            Ok(p) => p,
            Err(e) => {
                if !existed {
                    let _ = std::fs::remove_dir_all(&paths.dir);
                }
                return Err(e);
            }
        };
        let image = image::ensure(&super::images_dir(), &recipe::BOOKWORM, reporter)?;
        let nodes = requested
            .nodes
            .iter()
            .map(|n| node::record(&paths.dir, n, requested.runtime))
            .collect::<Result<_, _>>()?;
        let state = LabState {
            plan: requested,
            image: image.rootfs,
            nodes,
        };
        Ok((state, pick))
    }
}

/// Boot every node that is not running, then wait for their sshd; the names of those booted.
fn boot_stopped_nodes(
    state: &mut LabState,
    paths: &LabPaths,
    lab_key: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, LabError> {
    let plan = state.plan.clone();
    let image = state.image.clone();
    let mut booting = Vec::new();
    for planned in &plan.nodes {
        let rec = state
            .node_mut(&planned.name)
            .expect("a record per planned node");
        if rec.nspawn.is_some_and(|p| p.is_alive()) {
            continue;
        }
        booting.push(boot(rec, &plan, planned, &image, lab_key, reporter)?);
        state.save(&paths.dir)?;
    }
    write_known_hosts(state, paths)?;
    let waited = wait_for_ssh(state, &plan, booting.as_mut_slice(), reporter);
    state.save(&paths.dir)?;
    waited?;
    Ok(booting.iter().map(|b| b.name.clone()).collect())
}

fn node_dir_create(dir: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LabError::io(dir, "creating", e))
}

fn validate_cluster_file(plan: &LabPlan, paths: &LabPaths) -> Result<(), LabError> {
    let text = cluster_file::render(plan, &paths.key, &paths.known_hosts);
    let (_, report) = crate::config::check(&paths.cluster, text);
    if report.has_errors() {
        let msgs: Vec<&str> = report.errors().map(|p| p.message.as_str()).collect();
        return Err(LabError::Invalid(format!(
            "lab {} on {}: its cluster.yaml would not validate: {}",
            plan.name,
            plan.subnet,
            msgs.join("; ")
        )));
    }
    Ok(())
}

fn ensure_bridge(plan: &LabPlan) -> Result<(), LabError> {
    if bridge::is_bridge(&plan.bridge) {
        return Ok(());
    }
    // Gone since the lab was recorded (a reboot, a crash): the subnet must still be free.
    let users = bridge::subnet_users(plan.subnet, &plan.bridge)?;
    if !users.is_empty() {
        return Err(LabError::SubnetInUse {
            subnet: plan.subnet.to_string(),
            used_by: users.join(", "),
        });
    }
    bridge::create(&plan.bridge, plan.bridge_address, plan.subnet)
}

fn write_known_hosts(state: &LabState, paths: &LabPaths) -> Result<(), LabError> {
    let mut entries = Vec::new();
    for planned in &state.plan.nodes {
        let rec = state.node(&planned.name).expect("recorded");
        entries.push((
            planned.address,
            node::host_public_key(rec).map_err(|e| e.for_node(&planned.name))?,
        ));
    }
    keys::write_known_hosts(&paths.known_hosts, &entries)
}

fn node_statuses(state: &LabState) -> Vec<NodeStatus> {
    state
        .plan
        .nodes
        .iter()
        .map(|planned| {
            let rec = state.node(&planned.name).expect("recorded");
            let live = rec.nspawn.filter(|p| p.is_alive());
            NodeStatus {
                name: planned.name.clone(),
                address: planned.address,
                machine_id: rec.machine_id.clone(),
                roles: if planned.control_plane {
                    vec!["control-plane", "etcd"]
                } else {
                    vec!["worker"]
                },
                running: live.is_some(),
                ssh: live.is_some()
                    && sshd_answers(
                        SocketAddr::from((planned.address, 22)),
                        Duration::from_millis(500),
                    ),
                pid: live.map(|p| p.pid),
            }
        })
        .collect()
}

fn load_existing(name: &str) -> Result<(LabPaths, FileLock, LabState), LabError> {
    super::plan::validate_name(name)?;
    let paths = LabPaths::new(name);
    if !paths.dir.is_dir() {
        return Err(LabError::NoSuchLab(name.to_string()));
    }
    let lock = lock(&paths.dir)?;
    let state = LabState::load(&paths.dir)?.ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    Ok((paths, lock, state))
}

fn planned_node<'a>(state: &'a LabState, node: &str) -> Result<&'a PlannedNode, LabError> {
    state.plan.node(node).ok_or_else(|| LabError::NoSuchNode {
        lab: state.plan.name.clone(),
        node: node.to_string(),
        known: state
            .plan
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Remove the lab: every node's process, mount and veth, the bridge, and the lab directory.
/// Returns false when there was no such lab.
pub fn down(name: &str, reporter: &dyn Reporter) -> Result<bool, LabError> {
    require_root()?;
    super::plan::validate_name(name)?;
    let paths = LabPaths::new(name);
    if !paths.dir.is_dir() {
        return Ok(false);
    }
    let lock = lock(&paths.dir)?;
    if let Some(mut state) = LabState::load(&paths.dir)? {
        let plan = state.plan.clone();
        // Every node gets its turn even if one cannot be stopped; the first failure is reported
        // and the bridge and directory stay, so nothing recorded is forgotten.
        let mut first_error = None;
        for planned in &plan.nodes {
            let rec = state.node_mut(&planned.name).expect("recorded");
            let started = Instant::now();
            reporter.step(&format!("{}: stopping", planned.name));
            match stop_with_retries(rec, planned) {
                Ok(()) => reporter.done(&format!("{}: stopped", planned.name), started.elapsed()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            state.save(&paths.dir)?;
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if bridge::is_bridge(&plan.bridge) {
            bridge::delete_link(&plan.bridge)?;
        }
    }
    // The nodes' runtime stores (tmpfs) go with them.
    if let Ok(dirs) = std::fs::read_dir(paths.dir.join("nodes")) {
        for d in dirs.flatten() {
            node::unmount_stores(&d.path())?;
        }
    }
    // Nothing may still be mounted below the lab directory before it is removed.
    if let Some(m) = super::mounts::below(&paths.dir).first() {
        return Err(LabError::step(
            "removing the lab directory",
            format!(
                "{} is still mounted; unmount it and run `kinit lab down --name {name}` again",
                m.display()
            ),
        ));
    }
    std::fs::remove_dir_all(&paths.dir).map_err(|e| LabError::io(&paths.dir, "removing", e))?;
    drop(lock);
    Ok(true)
}

/// A node with a container runtime inside can take a while to let go after its processes
/// are gone: shims exit, cgroups empty and the overlay stops being busy a few seconds late. A
/// second `lab down` run by hand then always succeeded; `down` now waits for that itself.
fn stop_with_retries(
    rec: &mut super::state::NodeRecord,
    planned: &super::plan::PlannedNode,
) -> Result<(), LabError> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        match node::stop(rec, planned) {
            Err(_) if attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

pub fn stop_node(name: &str, node_name: &str) -> Result<(), LabError> {
    require_root()?;
    let (paths, _lock, mut state) = load_existing(name)?;
    let planned = planned_node(&state, node_name)?.clone();
    let rec = state.node_mut(node_name).expect("recorded");
    node::stop(rec, &planned)?;
    state.save(&paths.dir)
}

/// Boot one stopped node again, with the same identity, and wait for its sshd.
pub fn start_node(name: &str, node_name: &str, reporter: &dyn Reporter) -> Result<bool, LabError> {
    require_root()?;
    require_tools(LAB_TOOLS)?;
    let (paths, _lock, mut state) = load_existing(name)?;
    let planned = planned_node(&state, node_name)?.clone();
    let plan = state.plan.clone();
    if state
        .node(node_name)
        .expect("recorded")
        .nspawn
        .is_some_and(|p| p.is_alive())
    {
        return Ok(false);
    }
    ensure_bridge(&plan)?;
    let lab_key = keys::ensure_key(&paths.key, &format!("kinit-lab-{}", plan.name))?;
    let image = state.image.clone();
    let rec = state.node_mut(node_name).expect("recorded");
    let mut booting = [boot(rec, &plan, &planned, &image, &lab_key, reporter)?];
    state.save(&paths.dir)?;
    let waited = wait_for_ssh(&mut state, &plan, &mut booting, reporter);
    state.save(&paths.dir)?;
    waited?;
    Ok(true)
}

/// Every lab on this machine (or the one named).
pub fn status(name: Option<&str>) -> Result<Vec<LabStatus>, LabError> {
    require_root()?;
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => {
            let mut v: Vec<String> = std::fs::read_dir(labs_dir())
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().join("state.json").exists())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
    };
    let mut out = Vec::new();
    for n in names {
        let paths = LabPaths::new(&n);
        let Some(state) = LabState::load(&paths.dir)? else {
            return Err(LabError::NoSuchLab(n));
        };
        out.push(LabStatus {
            name: state.plan.name.clone(),
            lab_dir: paths.dir.clone(),
            subnet: state.plan.subnet.to_string(),
            bridge: state.plan.bridge.clone(),
            bridge_present: bridge::is_bridge(&state.plan.bridge),
            nodes: node_statuses(&state),
        });
    }
    Ok(out)
}

/// The OpenSSH command that logs in to a node as kinit would: the lab key, the lab's
/// known_hosts, strict host-key checking.
pub fn ssh_command(name: &str, node_name: &str, remote: &[String]) -> Result<Command, LabError> {
    require_root()?;
    require_tools(&[("ssh", "openssh-client")])?;
    super::plan::validate_name(name)?;
    let paths = LabPaths::new(name);
    let state = LabState::load(&paths.dir)?.ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    let planned = planned_node(&state, node_name)?;
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(&paths.key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            paths.known_hosts.display()
        ))
        .args(["-o", "LogLevel=ERROR"])
        .arg(format!("root@{}", planned.address));
    if !remote.is_empty() {
        cmd.arg("--").args(remote);
    }
    Ok(cmd)
}
