//! Command-line definitions (clap) and their conversion into plain option structs.
//! Nothing here does any work; `commands/` does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::config::Topology;
use crate::config::template::InitShape;
use crate::ui::{ColorChoice, OutputFormat};

#[derive(Debug, Parser)]
#[command(
    name = "kinit",
    version,
    about = "Bootstrap a highly available Kubernetes control plane over SSH",
    long_about = "kinit turns plain Linux hosts reachable over SSH into a highly available Kubernetes \
control plane, kubeadm-style, driven from this machine: no agent, no Ansible.\n\n\
Start with `kinit init` to write a cluster.yaml, then `kinit config validate`.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The cluster definition
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        default_value = "cluster.yaml",
        env = "KINIT_CONFIG"
    )]
    pub config: PathBuf,

    /// More detail in logs (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,

    /// Never color output (also: NO_COLOR=1)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented example cluster.yaml
    Init(InitArgs),

    /// Work with the cluster definition
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Build and check the cluster PKI on this machine (CAs, certificates, kubeconfigs)
    #[command(subcommand)]
    Certs(CertsCommand),

    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },

    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the cluster definition and summarize it
    Validate,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create or complete the PKI under spec.pki.dir, laid out per host as /etc/kubernetes
    ///
    /// Valid existing certificates are kept; certificates the config no longer matches (new
    /// host, address, VIP or SAN) are re-issued; CAs are created when missing and never replaced.
    /// An existing ca.crt/ca.key (from cfssl, kubeasz or kubeadm) is used to sign.
    Generate,
    /// Show when each certificate and CA expires (exit 1 if one is missing or expired)
    CheckExpiration,
    /// Re-issue certificates from the existing CAs, SANs recomputed from the config
    Renew {
        /// Certificates as kubeadm names them (apiserver, etcd-server, admin.conf, ...), or `all`
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where etcd runs
    #[arg(long, value_enum, default_value_t = TopologyArg::Stacked)]
    pub topology: TopologyArg,

    /// Number of control-plane hosts
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub control_planes: u32,

    /// Number of worker hosts
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub workers: u32,

    /// Number of dedicated etcd hosts (external topology only) [default: 3]
    #[arg(long, value_name = "N")]
    pub etcd_hosts: Option<u32>,

    /// Write here instead of the --config path
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopologyArg {
    Stacked,
    External,
}

/// Options every command receives.
#[derive(Debug, Clone)]
pub struct GlobalOptions {
    pub config_path: PathBuf,
    /// -1 quiet, 0 default, 1.. verbose
    pub verbosity: i8,
    pub output: OutputFormat,
    pub color: ColorChoice,
}

/// `kinit certs renew`: the certificates to renew; empty means all.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    pub names: std::collections::BTreeSet<String>,
}

impl CertsCommand {
    pub fn renew_options(names: &[String]) -> RenewOptions {
        RenewOptions {
            names: if names.iter().any(|n| n == "all") {
                Default::default()
            } else {
                names.iter().cloned().collect()
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub shape: InitShape,
    pub file: PathBuf,
    pub force: bool,
}

impl GlobalArgs {
    pub fn options(&self) -> GlobalOptions {
        GlobalOptions {
            config_path: self.config.clone(),
            verbosity: if self.quiet {
                -1
            } else {
                self.verbose.min(3) as i8
            },
            output: match self.output {
                OutputArg::Text => OutputFormat::Text,
                OutputArg::Json => OutputFormat::Json,
            },
            color: if self.no_color {
                ColorChoice::Never
            } else {
                ColorChoice::Auto
            },
        }
    }
}

impl InitArgs {
    pub fn options(&self, global: &GlobalOptions) -> Result<InitOptions, clap::Error> {
        use clap::CommandFactory;
        let topology = match self.topology {
            TopologyArg::Stacked => Topology::Stacked,
            TopologyArg::External => Topology::External,
        };
        if topology == Topology::Stacked && self.etcd_hosts.is_some() {
            return Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--etcd-hosts applies to --topology external; in a stacked topology etcd runs on the control-plane hosts",
            ));
        }
        Ok(InitOptions {
            shape: InitShape {
                topology,
                control_planes: self.control_planes,
                workers: self.workers,
                etcd_hosts: self.etcd_hosts.unwrap_or(3),
            },
            file: self
                .file
                .clone()
                .unwrap_or_else(|| global.config_path.clone()),
            force: self.force,
        })
    }
}
