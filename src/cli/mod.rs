//! Command-line definitions (clap) and their conversion into the option structs `commands/`
//! defines. Nothing here does any work, and nothing below this module knows about clap.

mod bundle;
mod certs;
mod drill;
mod lab;
mod lifecycle;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::commands::exec::ExecCommandOptions;
use crate::commands::init::InitOptions;
use crate::commands::kubeconfig::{KubeconfigOptions, KubeconfigTarget};
use crate::commands::preflight::PreflightOptions;
use crate::commands::render::RenderOptions;
use crate::commands::status::StatusOptions;
use crate::commands::up::UpOptions;
use crate::config::Topology;
use crate::config::template::InitShape;
use crate::ui::{ColorChoice, GlobalOptions, OutputFormat};

pub use bundle::BundleCommand;
pub use certs::{CertsCommand, RenewArgs};
pub use drill::{DrillCommand, DrillFlags};
pub use lab::LabCommand;
pub use lifecycle::{EtcdCommand, RemoveArgs, ResetArgs, SnapshotCommand};

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

    /// Local test nodes (systemd-nspawn) to try kinit on, on this machine
    #[command(subcommand)]
    Lab(LabCommand),
    /// Write every file each host will receive, for review (no host is contacted)
    Render(RenderArgs),
    /// Check every host (or this machine) before deploying: resources, ports, identities, time
    Preflight(PreflightArgs),
    /// Deploy the HA control plane: preflight, PKI, certificates, etcd, VIP, control plane
    Up(UpArgs),
    /// Run a command on the hosts over SSH (as root; sudo for non-root logins)
    Exec(ExecArgs),
    /// Live health: etcd members over mTLS, VIP holder, haproxy backends, services, cert expiry
    Status(StatusArgs),
    /// Build and check the cluster PKI on this machine (CAs, certificates, kubeconfigs)
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Write the cluster's admin kubeconfig to FILE, or merge it into ~/.kube/config
    Kubeconfig(KubeconfigArgs),
    /// Take kinit's cluster off hosts: services stopped, files removed, etcd data moved aside
    Reset(ResetArgs),
    /// Take control-plane/etcd hosts out of the running cluster, keeping etcd's quorum
    Remove(RemoveArgs),
    /// Practise a failover: take a piece down for real, measure, bring it back, pass or fail
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Day-two etcd operations: snapshots
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// The artifacts bundle for air-gapped hosts: fetch, import, verify, list
    #[command(subcommand)]
    Bundle(BundleCommand),

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
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["file", "merge"])),
    after_help = "Examples:\n  kinit kubeconfig admin.kubeconfig\n  kinit kubeconfig --merge\n\n\
The admin kubeconfig of `kinit certs generate` (or `kinit up`), checked first: its server is \
the controlPlaneEndpoint (https://VIP:port), its CA the cluster CA. Names: cluster NAME, user and \
context kubernetes-admin@NAME (NAME = metadata.name). --merge writes to $KUBECONFIG's first \
file, else ~/.kube/config: entries of those names are replaced, all others kept; the \
current-context is set only when the file has none; the old file is kept as \
<file>.kinit-backup-<UTC time>. Files are written 0600. The kubeconfig holds the admin's private \
key, so it is never printed."
)]
pub struct KubeconfigArgs {
    /// Write it to this file (mode 0600; `-o` is the output format)
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Merge it into $KUBECONFIG's first file, or ~/.kube/config, instead
    #[arg(long)]
    pub merge: bool,

    /// Replace an existing FILE
    #[arg(long, requires = "file", conflicts_with = "merge")]
    pub force: bool,
}

impl KubeconfigArgs {
    pub fn options(&self) -> KubeconfigOptions {
        KubeconfigOptions {
            target: match &self.file {
                Some(path) => KubeconfigTarget::File {
                    path: path.clone(),
                    force: self.force,
                },
                None => KubeconfigTarget::Merge,
            },
        }
    }
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
pub struct RenderArgs {
    /// Where to write `<host>/<path on the host>` [default: `rendered` next to the config]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Render only this host
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// A directory of *.tera files replacing the built-in templates of the same name
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

impl RenderArgs {
    pub fn options(&self, global: &GlobalOptions) -> RenderOptions {
        let config_dir = global
            .config_path
            .parent()
            .unwrap_or(std::path::Path::new(""));
        RenderOptions {
            out: self
                .out
                .clone()
                .unwrap_or_else(|| config_dir.join("rendered")),
            host: self.host.clone(),
            templates: self.templates.clone(),
        }
    }
}

#[derive(Debug, Args)]
#[command(mut_args(probed_at_once))]
pub struct PreflightArgs {
    /// Check the machine kinit runs on (as `kubeadm init` does) instead of the config's hosts
    #[arg(long)]
    pub local: bool,

    /// Checks whose failures only warn, comma separated (case-insensitive), or `all`
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,

    #[command(flatten)]
    pub probe: ProbeTimeoutArg,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl PreflightArgs {
    pub fn options(&self) -> PreflightOptions {
        PreflightOptions {
            local: self.local,
            ignore: crate::preflight::IgnoreSet::parse(&self.ignore_preflight_errors),
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
            probe_timeout: self.probe.get(),
        }
    }
}

/// How long a host's preflight probe may take (`kinit preflight`, `kinit up`).
#[derive(Debug, Args)]
pub struct ProbeTimeoutArg {
    /// Stop a host's preflight probe after this long (e.g. 2m for emulated VMs), 1s to 1h
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = probe_timeout)]
    probe_timeout: std::time::Duration,
}

impl ProbeTimeoutArg {
    pub fn get(&self) -> std::time::Duration {
        self.probe_timeout
    }
}

/// A probe timeout: a duration (`90s`, `2m`) from 1 s to 1 h. Zero would mean no limit to the
/// remote `timeout`, and a probe that takes an hour is a host in trouble whatever it runs on.
fn probe_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = text
        .parse::<crate::config::duration::ConfigDuration>()?
        .as_duration();
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("`{text}` is out of range: give 1s to 1h"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kinit up --dry-run\n  kinit up --topology stacked\n  kinit up --from-phase etcd\n  \
kinit up --only-phase load-balancer\n\n\
Re-running is safe: files are compared by sha256 on each host and only changed ones are written; a \
service restarts only when one of its inputs changed."
)]
pub struct UpArgs {
    /// The topology to deploy; must match spec.topology [default: spec.topology]
    #[arg(long, value_enum)]
    pub topology: Option<TopologyArg>,

    /// Show, per host, what would be done and which files would change; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Phases to leave out, comma separated
    #[arg(long, value_name = "PHASE,...", value_delimiter = ',')]
    pub skip_phases: Vec<String>,

    /// Run this phase only
    #[arg(long, value_name = "PHASE", conflicts_with = "from_phase")]
    pub only_phase: Option<String>,

    /// Start at this phase (resume after a failure)
    #[arg(long, value_name = "PHASE")]
    pub from_phase: Option<String>,

    /// Preflight checks whose failures only warn, comma separated (case-insensitive), or `all`
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,

    #[command(flatten)]
    pub probe: ProbeTimeoutArg,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Remove another run's lock on the hosts (only when no kinit up is running)
    #[arg(long)]
    pub break_lock: bool,

    /// Restart etcd members even when the quorum guard refuses (another member is unhealthy)
    #[arg(long)]
    pub force: bool,

    /// Read the playbook from DIR/up.yaml instead of the built-in one
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<std::path::PathBuf>,

    /// Read templates from DIR first (files named like the built-in ones override them)
    #[arg(long, value_name = "DIR")]
    pub templates: Option<std::path::PathBuf>,
}

impl UpArgs {
    pub fn options(&self) -> UpOptions {
        UpOptions {
            topology: self.topology.map(|t| match t {
                TopologyArg::Stacked => crate::config::Topology::Stacked,
                TopologyArg::External => crate::config::Topology::External,
            }),
            run: crate::engine::RunOptions {
                selection: crate::engine::PhaseSelection {
                    skip: self.skip_phases.clone(),
                    only: self.only_phase.clone(),
                    from: self.from_phase.clone(),
                },
                dry_run: self.dry_run,
                concurrency: self.remote.concurrency.get(),
                ignore_preflight: crate::preflight::IgnoreSet::parse(&self.ignore_preflight_errors),
                probe_timeout: self.probe.get(),
                break_lock: self.break_lock,
                force: self.force,
            },
            accept_new_host_keys: self.remote.accept_new_host_keys,
            playbooks: self.playbooks.clone(),
            templates: self.templates.clone(),
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 healthy, 1 degraded (a problem is listed), 2 bad invocation or config.\n\
Read-only: hosts whose SSH key is not in known_hosts are refused (learn them with `kinit preflight \
--accept-new-host-keys`).",
    mut_args(probed_at_once)
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,

    /// Seconds to wait for each etcd request and each host's probe
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

impl StatusArgs {
    pub fn options(&self) -> StatusOptions {
        StatusOptions {
            concurrency: self.concurrency.get(),
            timeout: std::time::Duration::from_secs(self.timeout.max(1)),
        }
    }
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

    #[command(flatten)]
    pub remote: RemoteArgs,

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
    pub fn options(&self) -> ExecCommandOptions {
        ExecCommandOptions {
            selector: self.hosts.clone(),
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
            timeout: self.timeout.as_ref().map(|t| t.as_duration()),
            ask_sudo_password: self.ask_sudo_password,
            as_root: !self.no_sudo,
            // Words are joined the way `ssh host a b` joins them: the remote shell parses them.
            command: self.command.join(" "),
        }
    }
}

/// The flags of every command that works on hosts over SSH and may meet new ones.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Learn the host keys of hosts not in known_hosts yet (a changed key is still refused)
    #[arg(long)]
    pub accept_new_host_keys: bool,

    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
}

/// `--concurrency`, worded for the commands that change hosts; the ones that only look reword
/// it with `probed_at_once`.
#[derive(Debug, Args)]
pub struct ConcurrencyArg {
    /// Hosts worked on at once
    #[arg(long, value_name = "N", default_value_t = crate::fanout::DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

impl ConcurrencyArg {
    /// At least one host at a time: 0 would never start any.
    pub fn get(&self) -> usize {
        self.concurrency.max(1)
    }
}

/// For `mut_args`, which keeps the arguments' order (`mut_arg` would move `--concurrency` last,
/// reordering the shell completions).
fn probed_at_once(arg: clap::Arg) -> clap::Arg {
    if arg.get_id() == "concurrency" {
        arg.help("Hosts probed at once")
    } else {
        arg
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopologyArg {
    Stacked,
    External,
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

/// The command line as clap knows it, with `up --help` naming the built-in playbook's phases
/// (read from playbooks/up.yaml, so the list cannot drift from it).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let phases = crate::engine::playbook::load(None)
        .map(|book| {
            book.phases
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Cli::command().mut_subcommand("up", |up| {
        let examples = up
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        up.after_help(format!(
            "Phases (playbooks/up.yaml, in order; a phase whose components run nowhere in the \
             cluster is skipped, `kubelets` runs only in a Kubernetes upgrade): {phases}.\n\n\
             {examples}"
        ))
    })
}

/// Parse the process's arguments against [`command`]; exits with clap's message on an error.
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}
