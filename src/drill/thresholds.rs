//! Pass or fail: the figures of a drill against the operator's thresholds. Pure.

use std::time::Duration;

use serde::Serialize;

use super::kind::DrillKind;
use super::series::LoopFigures;
use crate::render::failover;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// No client may go longer than this without a successful request (`--max-gap-ms`).
    pub max_gap_ms: u64,
    /// At most this many failed requests, API and etcd together (`--max-failed`); any number
    /// when unset.
    pub max_failed: Option<u64>,
    /// The cluster must be healthy again this long after the piece was started again.
    pub healthy_within_ms: u64,
}

impl Thresholds {
    /// The default gap: keepalived's VRRP takeover plus the time haproxy's checks take to
    /// notice a failed apiserver, both from the numbers the templates render.
    pub fn default_max_gap() -> Duration {
        failover::vrrp_takeover() + failover::haproxy_detection()
    }
}

/// What the drill observed, as the verdict needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The unit was seen inactive after the stop.
    pub went_down: bool,
    /// When the VIP moved / a new leader was elected / the Node was marked NotReady (not asked
    /// for the apiserver drill).
    pub moved_after: Option<Duration>,
    pub api: LoopFigures,
    pub etcd: LoopFigures,
    pub healthy_again: bool,
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub pass: bool,
    /// Why it failed, one sentence each; empty when it passed.
    pub reasons: Vec<String>,
}

pub fn verdict(kind: &DrillKind, seen: &Observed, limits: &Thresholds) -> Verdict {
    let mut reasons = Vec::new();
    if seen.interrupted {
        reasons.push("interrupted: the drill did not run its course".to_string());
    }
    if !seen.went_down {
        reasons.push("the unit was never seen stopped: nothing was drilled".to_string());
    }
    match kind {
        DrillKind::VipHolder if seen.moved_after.is_none() => {
            reasons.push("the VIP never moved to another host".to_string())
        }
        DrillKind::EtcdLeader if seen.moved_after.is_none() => {
            reasons.push("no other member became etcd's leader".to_string())
        }
        DrillKind::Node(name) if seen.moved_after.is_none() => reasons.push(format!(
            "the control plane never marked Node {name} NotReady (it waits for the \
             controller-manager's node-monitor-grace-period, {} s by default: a shorter \
             --duration cannot show it)",
            super::kind::NODE_MONITOR_GRACE.as_secs()
        )),
        _ => {}
    }
    for (what, f) in [
        ("API requests through the VIP", &seen.api),
        ("etcd writes", &seen.etcd),
    ] {
        if f.longest_gap_ms > limits.max_gap_ms {
            reasons.push(format!(
                "{what} went {} ms without success (allowed: {} ms)",
                f.longest_gap_ms, limits.max_gap_ms
            ));
        }
    }
    if let Some(max) = limits.max_failed {
        let failed = seen.api.failed + seen.etcd.failed;
        if failed > max {
            reasons.push(format!("{failed} requests failed (allowed: {max})"));
        }
    }
    if !seen.healthy_again {
        reasons.push(format!(
            "the cluster was not healthy again within {} ms of the restart",
            limits.healthy_within_ms
        ));
    }
    Verdict {
        pass: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(gap: u64, failed: u64) -> LoopFigures {
        LoopFigures {
            requests: 100,
            failed,
            longest_gap_ms: gap,
            first_error: None,
        }
    }

    fn limits() -> Thresholds {
        Thresholds {
            max_gap_ms: 1000,
            max_failed: None,
            healthy_within_ms: 60_000,
        }
    }

    fn seen() -> Observed {
        Observed {
            went_down: true,
            moved_after: Some(Duration::from_millis(300)),
            api: figures(400, 3),
            etcd: figures(200, 0),
            healthy_again: true,
            interrupted: false,
        }
    }

    #[test]
    fn within_every_threshold_passes() {
        let v = verdict(&DrillKind::VipHolder, &seen(), &limits());
        assert!(v.pass, "{v:?}");
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn a_gap_over_the_limit_fails_and_says_which_client() {
        let mut s = seen();
        s.etcd = figures(1001, 5);
        let v = verdict(&DrillKind::EtcdLeader, &s, &limits());
        assert!(!v.pass);
        assert_eq!(v.reasons.len(), 1, "{v:?}");
        assert!(v.reasons[0].contains("etcd writes went 1001 ms"), "{v:?}");
        // Exactly at the limit passes.
        s.etcd = figures(1000, 5);
        assert!(verdict(&DrillKind::EtcdLeader, &s, &limits()).pass);
    }

    #[test]
    fn failed_requests_count_only_when_limited() {
        let mut l = limits();
        l.max_failed = Some(2);
        let v = verdict(&DrillKind::Apiserver("cp2".into()), &seen(), &l);
        assert_eq!(v.reasons, ["3 requests failed (allowed: 2)"]);
        l.max_failed = Some(3);
        assert!(verdict(&DrillKind::Apiserver("cp2".into()), &seen(), &l).pass);
    }

    #[test]
    fn a_drill_that_changed_nothing_or_never_recovered_fails() {
        let mut s = seen();
        s.moved_after = None;
        // The apiserver drill waits for no move; the others must see one.
        assert!(verdict(&DrillKind::Apiserver("cp2".into()), &s, &limits()).pass);
        assert!(!verdict(&DrillKind::VipHolder, &s, &limits()).pass);
        assert!(!verdict(&DrillKind::EtcdLeader, &s, &limits()).pass);
        let v = verdict(&DrillKind::Node("w1".into()), &s, &limits());
        assert!(
            v.reasons[0].contains("never marked Node w1 NotReady") && v.reasons[0].contains("50 s"),
            "{v:?}"
        );
        let mut s = seen();
        s.went_down = false;
        s.healthy_again = false;
        s.interrupted = true;
        let v = verdict(&DrillKind::VipHolder, &s, &limits());
        assert_eq!(v.reasons.len(), 3, "{v:?}");
    }

    #[test]
    fn the_default_gap_is_the_vrrp_takeover_plus_haproxys_checks() {
        assert_eq!(Thresholds::default_max_gap(), Duration::from_secs(6));
    }
}
