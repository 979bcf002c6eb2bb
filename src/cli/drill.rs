//! clap definitions of `kinit drill`.

use clap::{Args, Subcommand};

use crate::commands::drill::DrillOptions;
use crate::drill::{DrillKind, Thresholds};

#[derive(Debug, Subcommand)]
#[command(
    after_help = "Examples:\n  kinit drill vip-holder\n  kinit drill etcd-leader --duration 20 --yes\n  \
kinit drill apiserver cp2 --max-gap-ms 1000 -o json --yes\n  kinit drill node w1 --yes\n\n\
Meanwhile this machine reads the default namespace through the VIP with admin.conf (verified \
with the cluster CA) and writes to etcd, each every 100 ms, and counts failed requests and the \
longest gap. The piece is started again after --duration (also on Ctrl-C or SIGTERM) and the \
drill ends once `kinit status` is healthy, and still is a few seconds later (the VIP returns to \
its first host). Refused on a degraded cluster, and when etcd would lose its quorum. Exit \
status: 0 pass, 1 fail or refused, 2 bad invocation."
)]
pub enum DrillCommand {
    /// Stop keepalived on the host holding the VIP, until --duration ends
    VipHolder(DrillFlags),
    /// Stop etcd on the current etcd leader, until --duration ends
    EtcdLeader(DrillFlags),
    /// Stop kube-apiserver on HOST, until --duration ends
    Apiserver {
        /// The control-plane host whose apiserver goes down
        #[arg(value_name = "HOST")]
        host: String,
        #[command(flatten)]
        flags: DrillFlags,
    },
    /// Stop the kubelet on HOST until --duration ends (its pods go on running); measures when
    /// the Node goes NotReady and when it is Ready again
    Node {
        /// The node (any host that runs a kubelet) that is lost
        #[arg(value_name = "HOST")]
        host: String,
        #[command(flatten)]
        flags: DrillFlags,
    },
}

#[derive(Debug, Args)]
pub struct DrillFlags {
    /// How long the piece stays down, in seconds (1 to 600) [default: 10; node: 70, past the
    /// controller-manager's 50 s grace before it marks a silent Node NotReady]
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: Option<u64>,

    /// Do not ask (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Fail when a client goes longer than this without a successful request (default:
    /// keepalived's VRRP takeover plus haproxy's health checks)
    #[arg(long, value_name = "MS",
          default_value_t = Thresholds::default_max_gap().as_millis() as u64)]
    pub max_gap_ms: u64,

    /// Fail when more requests than this fail, API and etcd together [default: any number]
    #[arg(long, value_name = "N")]
    pub max_failed: Option<u64>,

    /// Fail when `status` is not healthy this many seconds after the piece is started again
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub healthy_within: u64,

    /// Remove another run's lock on the hosts (only when no other kinit run is going on)
    #[arg(long)]
    pub break_lock: bool,
}

impl DrillCommand {
    pub fn options(&self) -> DrillOptions {
        let (kind, f) = match self {
            DrillCommand::VipHolder(f) => (DrillKind::VipHolder, f),
            DrillCommand::EtcdLeader(f) => (DrillKind::EtcdLeader, f),
            DrillCommand::Apiserver { host, flags } => (DrillKind::Apiserver(host.clone()), flags),
            DrillCommand::Node { host, flags } => (DrillKind::Node(host.clone()), flags),
        };
        DrillOptions {
            duration: f
                .duration
                .map_or_else(|| kind.default_duration(), std::time::Duration::from_secs),
            kind,
            yes: f.yes,
            thresholds: Thresholds {
                max_gap_ms: f.max_gap_ms,
                max_failed: f.max_failed,
                healthy_within_ms: f.healthy_within.saturating_mul(1000),
            },
            break_lock: f.break_lock,
        }
    }
}
