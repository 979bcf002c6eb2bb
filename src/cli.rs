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

    /// Run a command on the hosts over SSH (as root; sudo for non-root logins)
    Exec(ExecArgs),

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

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kinit exec -- uptime\n  kinit exec --hosts cp1,etcd -- systemctl is-active etcd\n\n\
Secrets come from the environment: KINIT_SSH_PASSPHRASE (encrypted keys), KINIT_SUDO_PASSWORD."
)]
pub struct ExecArgs {
    /// Host names and/or roles, comma separated (e.g. cp1,etcd) [default: all hosts]
    #[arg(long, value_name = "SELECTOR")]
    pub hosts: Option<String>,

    /// Learn the host keys of hosts not in known_hosts yet (a changed key is still refused)
    #[arg(long)]
    pub accept_new_host_keys: bool,

    /// Hosts worked on at once
    #[arg(long, value_name = "N", default_value_t = crate::fanout::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// Stop the command on a host after this long (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<crate::config::duration::ConfigDuration>,

    /// Ask for the sudo password of the login user (or set KINIT_SUDO_PASSWORD)
    #[arg(long)]
    pub ask_sudo_password: bool,

    /// Run as the login user instead of root
    #[arg(long)]
    pub no_sudo: bool,

    /// The command line, run by the remote shell (after --)
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl ExecArgs {
    pub fn options(&self) -> crate::commands::exec::ExecCommandOptions {
        crate::commands::exec::ExecCommandOptions {
            selector: self.hosts.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            concurrency: self.concurrency.max(1),
            timeout: self.timeout.as_ref().map(|t| t.as_duration()),
            ask_sudo_password: self.ask_sudo_password,
            as_root: !self.no_sudo,
            // Words are joined the way `ssh host a b` joins them: the remote shell parses them.
            command: self.command.join(" "),
        }
    }
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
