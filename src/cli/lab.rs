//! clap definitions of `kinit lab` (local HA test nodes) and their conversion into
//! `commands::lab::LabAction`.

use clap::{Args, Subcommand};

use crate::commands::lab::LabAction;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Boot the lab's nodes (building the node image on first use) and write its cluster.yaml
    Up(LabUpArgs),
    /// Remove the lab: its nodes, mounts, links, bridge and directory
    Down(LabNameArg),
    /// Show every lab (or one) and its nodes
    Status(LabStatusArgs),
    /// Power a node off (its address stops answering; its disk is kept)
    Stop(LabNodeArgs),
    /// Boot a stopped node again, with the same identity
    Start(LabNodeArgs),
    /// Log in to a node (or run CMD on it) with the lab key and strict host-key checking
    Ssh(LabSshArgs),
}

#[derive(Debug, Args)]
pub struct LabNameArg {
    /// The lab
    #[arg(long, default_value = crate::lab::plan::DEFAULT_NAME)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    #[command(flatten)]
    pub lab: LabNameArg,
    /// Number of nodes: cp1..cp3 (control-plane + etcd), then workers w1.. [default: 3]
    #[arg(long, value_name = "N")]
    pub nodes: Option<u32>,
    /// The lab's private IPv4 subnet; the bridge gets its first address [default: the first /24
    /// from 10.213.0.0/24 on that no other lab and nothing on this machine uses]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<ipnet::Ipv4Net>,
    /// The binaries a new lab deploys: a directory with etcd, etcdctl, kube-apiserver,
    /// kube-controller-manager, kube-scheduler and kubectl (as `hack/build-upstream.sh DIR`
    /// builds them; the lab then runs a real control plane as systemd units), or `image` for
    /// etcd from the node image alone [default: /var/cache/kinit-test/bundle-bin when it holds
    /// kube-apiserver, else image]
    #[arg(long, value_name = "DIR|image")]
    pub bundle: Option<std::path::PathBuf>,
    /// Nodes that run containers: the bundle DIR must also hold kubelet, containerd,
    /// containerd-shim-runc-v2, ctr, runc, pause and the CNI plugins bridge, host-local,
    /// loopback and portmap (`hack/build-upstream.sh DIR --set node`); each node gets writable
    /// cgroup v1 controllers of its own (cgroup v1 machines only), and `kinit up` runs
    /// containerd and a kubelet on every node (about 60 MiB more per node)
    #[arg(long)]
    pub runtime: bool,
}

#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// Only this lab
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LabNodeArgs {
    /// The node (cp1, cp2, ...)
    pub node: String,
    #[command(flatten)]
    pub lab: LabNameArg,
}

#[derive(Debug, Args)]
pub struct LabSshArgs {
    /// The node (cp1, cp2, ...)
    pub node: String,
    #[command(flatten)]
    pub lab: LabNameArg,
    /// Command to run on the node instead of a login shell
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl LabCommand {
    pub fn action(&self) -> LabAction {
        match self {
            LabCommand::Up(a) => LabAction::Up(crate::lab::LabRequest {
                name: Some(a.lab.name.clone()),
                nodes: a.nodes,
                subnet: a.subnet,
                bundle: match a.bundle.as_deref() {
                    None => crate::lab::plan::LabBundleChoice::Default,
                    Some(p) if p == std::path::Path::new("image") => {
                        crate::lab::plan::LabBundleChoice::Image
                    }
                    Some(p) => crate::lab::plan::LabBundleChoice::Dir(p.to_path_buf()),
                },
                runtime: a.runtime,
            }),
            LabCommand::Down(a) => LabAction::Down {
                name: a.name.clone(),
            },
            LabCommand::Status(a) => LabAction::Status {
                name: a.name.clone(),
            },
            LabCommand::Stop(a) => LabAction::Stop {
                name: a.lab.name.clone(),
                node: a.node.clone(),
            },
            LabCommand::Start(a) => LabAction::Start {
                name: a.lab.name.clone(),
                node: a.node.clone(),
            },
            LabCommand::Ssh(a) => LabAction::Ssh {
                name: a.lab.name.clone(),
                node: a.node.clone(),
                command: a.command.clone(),
            },
        }
    }
}
