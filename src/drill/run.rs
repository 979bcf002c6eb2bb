//! Running a drill: the guards (again, under the cluster lock), the clients started, the unit
//! stopped, the cluster watched while it is down, the unit started again (also on Ctrl-C or
//! SIGTERM), `status` polled until healthy, the figures judged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::error::DrillError;
use super::kind::DrillKind;
use super::probes::{self, Recorded};
use super::report::{DrillEvent, DrillReport, Placement};
use super::series::{answered_again, figures};
use super::target::{self, Target};
use super::thresholds::{Observed, Thresholds, verdict};
use super::watch::{self, Moved};
use crate::engine::cluster_lock::LockRequest;
use crate::engine::event::Quiet;
use crate::engine::host_ops::run_script;
use crate::inventory::Inventory;
use crate::ssh::{HostTarget, Pool};
use crate::status::{self, GatherOptions, StatusReport};

/// Clients run this long before the piece goes down, for a baseline.
const BASELINE: Duration = Duration::from_secs(1);
/// A unit's stop or start may take this long (kube-apiserver's shutdown delay included).
const UNIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Between two looks at the status while waiting for health.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Once healthy, the clients go on this long and the status must still be healthy: a piece
/// that takes its place back (keepalived preempting the VIP) moves things once more.
const SETTLE: Duration = Duration::from_secs(4 * crate::render::failover::VRRP_ADVERT_INT_SECS);

#[derive(Debug, Clone)]
pub struct DrillSettings {
    pub kind: DrillKind,
    pub duration: Duration,
    pub thresholds: Thresholds,
    pub gather: GatherOptions,
    pub lock: LockRequest,
}

/// What a drill would take down, and the status it was chosen from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub target: Target,
    pub status: StatusReport,
}

/// Read the status and choose the target; refused on a degraded cluster, when etcd would lose
/// its quorum, or when nobody could take over. Changes nothing.
pub async fn prepare(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    settings: &DrillSettings,
    cancel: &CancellationToken,
) -> Result<Prepared, DrillError> {
    let status = read_status(inv, pool, targets, &settings.gather, cancel).await;
    if cancel.is_cancelled() {
        return Err(DrillError::Interrupted);
    }
    target::healthy_enough(&status)?;
    let target = target::choose(inv, &settings.kind, &status)?;
    Ok(Prepared { target, status })
}

async fn read_status(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    gather: &GatherOptions,
    cancel: &CancellationToken,
) -> StatusReport {
    status::gather(
        inv,
        pool.clone(),
        targets.values().cloned().collect(),
        gather,
        cancel,
        SystemTime::now(),
    )
    .await
}

/// Take the cluster lock on every host in `targets`, run the drill, give the lock back.
pub async fn execute(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    settings: &DrillSettings,
    cancel: &CancellationToken,
) -> Result<DrillReport, DrillError> {
    let sessions = settings.lock.take(pool, targets, cancel, &Quiet).await?;
    let result = locked(inv, pool, targets, settings, cancel).await;
    settings.lock.release(&sessions).await;
    result
}

struct Timeline {
    clock: Instant,
    events: Vec<DrillEvent>,
}

impl Timeline {
    fn note(&mut self, what: impl Into<String>) -> Duration {
        let at = self.clock.elapsed();
        self.events.push(DrillEvent {
            at_ms: at.as_millis() as u64,
            what: what.into(),
        });
        at
    }
}

fn placement(status: &StatusReport) -> Placement {
    Placement {
        vip_holder: status.vip.as_ref().and_then(|v| v.holders.first().cloned()),
        etcd_leader: status.etcd.leaders.first().cloned(),
    }
}

/// `systemctl ACTION UNIT` on the target's host (the unit as a positional parameter).
async fn systemctl(
    pool: &Arc<Pool>,
    target: &HostTarget,
    script: &str,
    unit: &str,
) -> Result<String, String> {
    let session = pool.get(target).await.map_err(|e| e.to_string())?;
    let out = run_script(&session, script, &[unit], UNIT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if out.success() {
        Ok(out.stdout_text().trim().to_string())
    } else {
        Err(format!("{}: {}", out.status, out.stderr_text().trim()))
    }
}

async fn unit_state(pool: &Arc<Pool>, target: &HostTarget, unit: &str) -> String {
    systemctl(pool, target, "systemctl is-active \"$1\" || true", unit)
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Start the unit again: tried a few times, since nothing must be left down. Never cancelled.
async fn restore(pool: &Arc<Pool>, target: &HostTarget, t: &Target) -> Result<(), String> {
    let script = if t.no_block {
        "systemctl start --no-block \"$1\""
    } else {
        "systemctl start \"$1\""
    };
    let mut last = String::new();
    for _ in 0..3 {
        match systemctl(pool, target, script, t.unit).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last)
}

/// The piece taken down and what was seen while it was down.
struct Down {
    /// When the stop was asked for.
    stopped_at: Duration,
    unit_state_during: String,
    /// The watcher's find: the VIP or the leader moved, or the Node went NotReady.
    moved: Option<Moved>,
    interrupted: bool,
}

/// After the piece was started again: when status was healthy, and where things ended up.
struct Recovery {
    restarted_at: Duration,
    healthy_after: Option<u64>,
    after: Placement,
    /// The node drill: when its Node was Ready again.
    ready_again: Option<Moved>,
}

/// One drill under the lock: the target, its host and the timeline of what happened.
struct Drill<'a> {
    inv: &'a Inventory,
    pool: &'a Arc<Pool>,
    targets: &'a BTreeMap<String, HostTarget>,
    settings: &'a DrillSettings,
    cancel: &'a CancellationToken,
    t: Target,
    host_target: HostTarget,
    timeline: Timeline,
}

async fn locked(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    settings: &DrillSettings,
    cancel: &CancellationToken,
) -> Result<DrillReport, DrillError> {
    // The status again: the confirmation may have come long after the first look.
    let prepared = prepare(inv, pool, targets, settings, cancel).await?;
    let t = prepared.target.clone();
    let host_target = targets
        .get(&t.host)
        .cloned()
        .ok_or_else(|| DrillError::Setup(format!("no SSH target for {}", t.host)))?;
    let clients = probes::start_clients(inv)?;
    let mut drill = Drill {
        inv,
        pool,
        targets,
        settings,
        cancel,
        t,
        host_target,
        timeline: Timeline {
            clock: clients.clock,
            events: Vec::new(),
        },
    };
    drill.timeline.note(format!(
        "clients started: GET {} through the VIP and an etcd write every 100 ms",
        probes::API_READ
    ));
    let baseline_done = tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(BASELINE) => true,
    };
    if !baseline_done {
        clients.finish().await;
        return Err(DrillError::Interrupted);
    }
    let down = match drill.take_down(&prepared).await {
        Ok(down) => down,
        Err(e) => {
            clients.finish().await;
            return Err(e);
        }
    };
    let recovery = drill.bring_back(down.interrupted).await?;
    let unit_state_after = drill.unit_state().await;
    let t = &drill.t;
    drill
        .timeline
        .note(format!("{} on {} is {unit_state_after}", t.unit, t.host));
    let recorded = clients.finish().await;
    Ok(drill.report(&prepared, down, recovery, unit_state_after, recorded))
}

impl Drill<'_> {
    async fn unit_state(&self) -> String {
        unit_state(self.pool, &self.host_target, self.t.unit).await
    }

    /// Stop the unit, and keep it down for the duration (or until cancelled) while the watcher
    /// looks for the piece moving. A stop that fails is undone.
    async fn take_down(&mut self, prepared: &Prepared) -> Result<Down, DrillError> {
        let (pool, t) = (self.pool, self.t.clone());
        let watch_stop = CancellationToken::new();
        let watcher = watch::start(
            self.inv,
            pool,
            self.targets,
            watch::Watched {
                status: &prepared.status,
                host: &prepared.target.host,
                kind: &self.settings.kind,
            },
            self.timeline.clock,
            &watch_stop,
        );
        let stopped_at = self
            .timeline
            .note(format!("stopping {} on {}", t.unit, t.host));
        if let Err(message) =
            systemctl(pool, &self.host_target, "systemctl stop \"$1\"", t.unit).await
        {
            watch_stop.cancel();
            let _ = restore(pool, &self.host_target, &t).await;
            return Err(DrillError::Stop {
                host: t.host.clone(),
                unit: t.unit.to_string(),
                message,
            });
        }
        let unit_state_during = self.unit_state().await;
        // The piece stays down for the duration from here: stopping it may take a while (an
        // apiserver's shutdown delay, etcd handing over).
        let down_at = self
            .timeline
            .note(format!("{} on {} is {unit_state_during}", t.unit, t.host));
        let until = down_at + self.settings.duration;
        let interrupted = tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(until.saturating_sub(self.timeline.clock.elapsed())) => false,
        };
        watch_stop.cancel();
        let moved = match watcher {
            Some(w) => w.await.ok().flatten(),
            None => None,
        };
        if let Some(m) = &moved {
            let what = match &self.settings.kind {
                DrillKind::VipHolder => "the VIP moved to".to_string(),
                DrillKind::Node(name) => format!("the control plane marked Node {name} NotReady:"),
                _ => "etcd elected a new leader:".to_string(),
            };
            self.timeline.events.push(DrillEvent {
                at_ms: m.at.as_millis() as u64,
                what: format!("{what} {}", m.to),
            });
        }
        if interrupted {
            self.timeline.note("interrupted: starting what was stopped");
        }
        Ok(Down {
            stopped_at,
            unit_state_during,
            moved,
            interrupted,
        })
    }

    /// Start the unit again, then wait for a healthy status that stays healthy while things
    /// settle (interrupted: only until the unit runs).
    async fn bring_back(&mut self, interrupted: bool) -> Result<Recovery, DrillError> {
        let t = self.t.clone();
        self.timeline
            .note(format!("starting {} on {}", t.unit, t.host));
        match restore(self.pool, &self.host_target, &t).await {
            Ok(()) => self
                .timeline
                .note(format!("started {} on {}", t.unit, t.host)),
            Err(e) => self
                .timeline
                .note(format!("could not start {} on {}: {e}", t.unit, t.host)),
        };
        let restarted_at = self.timeline.clock.elapsed();
        // The node drill's recovery: the Node Ready again once its kubelet runs.
        let ready_stop = CancellationToken::new();
        let ready_watch = match &self.settings.kind {
            DrillKind::Node(name) => Some(tokio::spawn(watch::node_ready_is(
                probes::admin_client(self.inv)?,
                name.clone(),
                true,
                self.timeline.clock,
                ready_stop.clone(),
            ))),
            _ => None,
        };
        let (healthy_after, after) = if interrupted {
            // Only until the unit runs again: the operator asked to stop.
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.unit_state().await != "active" && Instant::now() < deadline {
                tokio::time::sleep(STATUS_EVERY).await;
            }
            (None, Placement::default())
        } else {
            self.healthy_again(restarted_at).await
        };
        ready_stop.cancel();
        let ready_again = match ready_watch {
            Some(w) => w.await.ok().flatten(),
            None => None,
        };
        if let (Some(r), DrillKind::Node(name)) = (&ready_again, &self.settings.kind) {
            self.timeline.events.push(DrillEvent {
                at_ms: r.at.as_millis() as u64,
                what: format!("Node {name} is Ready again"),
            });
        }
        Ok(Recovery {
            restarted_at,
            healthy_after,
            after,
            ready_again,
        })
    }

    /// Poll the status until it is healthy and still healthy after [`SETTLE`], or the
    /// threshold ran out (or cancelled: the caller sees `cancel`). When it was healthy (ms
    /// into the drill), and where things are then.
    async fn healthy_again(&mut self, restarted_at: Duration) -> (Option<u64>, Placement) {
        let limit = Duration::from_millis(self.settings.thresholds.healthy_within_ms);
        let mut healthy_after = None;
        let mut settled_at: Option<Duration> = None;
        loop {
            let status = read_status(
                self.inv,
                self.pool,
                self.targets,
                &self.settings.gather,
                self.cancel,
            )
            .await;
            if self.cancel.is_cancelled() {
                return (healthy_after, Placement::default());
            }
            let clock = self.timeline.clock;
            if status.problems().is_empty() {
                match healthy_after {
                    None => {
                        let at = self.timeline.note("status: healthy again");
                        healthy_after = Some(at.as_millis() as u64);
                        settled_at = Some(at + SETTLE);
                    }
                    // Still healthy once the piece could have taken its place back (the
                    // VIP returns to the first host): the clients measured that too.
                    Some(_) if settled_at.is_some_and(|s| clock.elapsed() >= s) => {
                        self.timeline.note("status: still healthy after settling");
                        return (healthy_after, placement(&status));
                    }
                    Some(_) => {}
                }
            } else if healthy_after.is_some() {
                self.timeline.note(format!(
                    "status: degraded again while settling: {}",
                    status.problems().join("; ")
                ));
                healthy_after = None;
                settled_at = None;
            }
            if clock.elapsed().saturating_sub(restarted_at) > limit {
                self.timeline.note(format!(
                    "status: still degraded: {}",
                    status.problems().join("; ")
                ));
                return (healthy_after, Placement::default());
            }
            tokio::time::sleep(STATUS_EVERY).await;
        }
    }

    /// The figures judged against the thresholds, with the timeline in order.
    fn report(
        mut self,
        prepared: &Prepared,
        down: Down,
        recovery: Recovery,
        unit_state_after: String,
        (api_rec, etcd_rec, end): (Recorded, Recorded, Duration),
    ) -> DrillReport {
        let settings = self.settings;
        // Cancelled while waiting for health counts as interrupted too.
        let interrupted = down.interrupted || self.cancel.is_cancelled();
        let mut api = figures(&api_rec.samples, Duration::ZERO, end);
        api.first_error = api_rec.first_error;
        let mut etcd = figures(&etcd_rec.samples, Duration::ZERO, end);
        etcd.first_error = etcd_rec.first_error;
        let moved = down.moved.as_ref();
        let recovered = match settings.kind {
            DrillKind::Apiserver(_) => answered_again(&api_rec.samples, down.stopped_at),
            DrillKind::Node(_) => recovery
                .ready_again
                .as_ref()
                .map(|r| r.at.saturating_sub(recovery.restarted_at)),
            _ => moved.map(|m| m.at.saturating_sub(down.stopped_at)),
        };
        let node_not_ready_after = match settings.kind {
            DrillKind::Node(_) => moved.map(|m| m.at.saturating_sub(down.stopped_at)),
            _ => None,
        };
        let went_down = matches!(down.unit_state_during.as_str(), "inactive" | "failed");
        let observed = Observed {
            went_down,
            moved_after: moved.map(|m| m.at),
            api: api.clone(),
            etcd: etcd.clone(),
            healthy_again: recovery.healthy_after.is_some(),
            interrupted,
        };
        let during = Placement {
            vip_holder: match settings.kind {
                DrillKind::VipHolder => moved.map(|m| m.to.clone()),
                _ => None,
            },
            etcd_leader: match settings.kind {
                DrillKind::EtcdLeader => moved.map(|m| m.to.clone()),
                _ => None,
            },
        };
        self.timeline.events.sort_by_key(|e| e.at_ms);
        DrillReport {
            cluster: self.inv.name.clone(),
            verdict: verdict(&settings.kind, &observed, &settings.thresholds),
            drill: settings.kind.clone(),
            target: self.t,
            duration_ms: settings.duration.as_millis() as u64,
            before: placement(&prepared.status),
            during,
            after: recovery.after,
            unit_state_during: down.unit_state_during,
            unit_state_after,
            recovered_after_ms: recovered.map(|d| d.as_millis() as u64),
            node_not_ready_after_ms: node_not_ready_after.map(|d| d.as_millis() as u64),
            healthy_after_ms: recovery.healthy_after,
            api,
            etcd_writes: etcd,
            thresholds: settings.thresholds.clone(),
            interrupted,
            events: self.timeline.events,
        }
    }
}
