//! Rolling restarts, the pure part: in which order hosts restart a component, and whether etcd
//! stays writable while one more member is down for a moment. `src/engine/rolling.rs` carries
//! the restarts out.

use serde::Serialize;

use crate::components::GoesLast;
use crate::planning::quorum::{self, Fate, Seat};

/// The hosts in the order they restart: config order, with the one that would disturb clients
/// most (the etcd leader, the VIP holder) moved to the end.
pub fn restart_order(hosts: &[String], last: GoesLast, special: Option<&str>) -> Vec<String> {
    let mut order: Vec<String> = hosts.to_vec();
    if last != GoesLast::None
        && let Some(name) = special
        && let Some(i) = order.iter().position(|h| h == name)
    {
        let h = order.remove(i);
        order.push(h);
    }
    order
}

/// The turns of a roll: every host of `order` alone, in order, except those `together` says may
/// go together (workers: nothing else waits on their kubelets), which follow every other host
/// `size` at a time. With `size` 1 the order is kept as it is.
pub fn turns(order: &[String], together: impl Fn(&str) -> bool, size: usize) -> Vec<Vec<String>> {
    if size <= 1 {
        return order.iter().map(|h| vec![h.clone()]).collect();
    }
    let (batched, alone): (Vec<&String>, Vec<&String>) =
        order.iter().partition(|h| together(h.as_str()));
    let mut turns: Vec<Vec<String>> = alone.into_iter().map(|h| vec![h.clone()]).collect();
    turns.extend(
        batched
            .chunks(size)
            .map(|c| c.iter().map(|h| (*h).clone()).collect()),
    );
    turns
}

/// Why the last host of an order is last, for the plan and the events.
pub fn why_last(last: GoesLast, special: Option<&str>, order: &[String]) -> Option<String> {
    let name = special?;
    if order.last().map(String::as_str) != Some(name) {
        return None;
    }
    match last {
        GoesLast::None => None,
        GoesLast::EtcdLeader | GoesLast::StaticPodEtcdLeader => Some(format!(
            "{name} last: it leads etcd, and hands leadership to a restarted member first"
        )),
        GoesLast::VipHolder => Some(format!("{name} last: it holds the VIP")),
    }
}

/// A member of etcd as the guard sees it (a learner is listed, and counted nowhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voter {
    pub name: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
}

/// What the guard allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardVerdict {
    /// A majority stays healthy while the member restarts.
    Safe,
    /// etcd has this one member: it cannot serve while it restarts, and there is nothing else
    /// to keep.
    SingleMember,
}

/// The guard's refusal, with the arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumRefusal {
    pub host: String,
    pub members: usize,
    pub healthy_after: usize,
    pub quorum: usize,
    /// The unhealthy members other than `host`.
    pub down: Vec<String>,
}

impl std::error::Error for QuorumRefusal {}

impl std::fmt::Display for QuorumRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let QuorumRefusal {
            host,
            members,
            healthy_after,
            quorum,
            down,
        } = self;
        write!(
            f,
            "restarting etcd on {host} now would leave {healthy_after} of {members} voting \
             member(s) healthy"
        )?;
        if !down.is_empty() {
            let verb = if down.len() == 1 { "is" } else { "are" };
            write!(f, " ({} {verb} not)", down.join(", "))?;
        }
        write!(
            f,
            "; etcd needs a majority of {members}, which is {quorum}, to stay writable. "
        )?;
        if down.is_empty() {
            write!(
                f,
                "A cluster of {members} members cannot lose one (3 or 5 members can)"
            )?;
        } else {
            write!(
                f,
                "Bring {} back first (`kinit status` shows it)",
                down.join(", ")
            )?;
        }
        write!(f, ", or pass --force to restart anyway")
    }
}

/// Whether `host`'s member may restart now, given every member's health: counted by
/// [`quorum::tally`] (the one count of every guard), `host` paused, learners left out.
pub fn restart_guard(host: &str, voters: &[Voter]) -> Result<GuardVerdict, QuorumRefusal> {
    let seats: Vec<Seat> = voters
        .iter()
        .map(|v| Seat {
            name: v.name.clone(),
            healthy: v.healthy,
            learner: v.learner,
            fate: if v.name == host {
                Fate::Pauses
            } else {
                Fate::Stays
            },
        })
        .collect();
    let tally = quorum::tally(&seats);
    if tally.voters_now <= 1 {
        return Ok(GuardVerdict::SingleMember);
    }
    if tally.keeps_majority() {
        return Ok(GuardVerdict::Safe);
    }
    Err(QuorumRefusal {
        host: host.to_string(),
        members: tally.voters_after,
        healthy_after: tally.healthy_after,
        quorum: tally.needed,
        down: tally.down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn workers_go_after_every_other_host_in_batches_of_the_size_asked() {
        let order = names(&["w1", "cp1", "w2", "cp2", "w3"]);
        let worker = |h: &str| h.starts_with('w');
        assert_eq!(
            turns(&order, worker, 2),
            vec![
                names(&["cp1"]),
                names(&["cp2"]),
                names(&["w1", "w2"]),
                names(&["w3"])
            ]
        );
        assert_eq!(
            turns(&order, worker, 5),
            vec![names(&["cp1"]), names(&["cp2"]), names(&["w1", "w2", "w3"])]
        );
    }

    #[test]
    fn one_at_a_time_keeps_the_order_as_it_is() {
        let order = names(&["w1", "cp1", "w2"]);
        assert_eq!(
            turns(&order, |h| h.starts_with('w'), 1),
            vec![names(&["w1"]), names(&["cp1"]), names(&["w2"])]
        );
        assert!(turns(&[], |_| true, 3).is_empty());
    }

    fn voters(v: &[(&str, bool)]) -> Vec<Voter> {
        v.iter()
            .map(|(n, h)| Voter {
                name: n.to_string(),
                healthy: *h,
                learner: false,
            })
            .collect()
    }

    #[test]
    fn the_etcd_leader_restarts_last_and_the_others_keep_config_order() {
        let hosts = names(&["cp1", "cp2", "cp3"]);
        assert_eq!(
            restart_order(&hosts, GoesLast::EtcdLeader, Some("cp1")),
            names(&["cp2", "cp3", "cp1"])
        );
        assert_eq!(
            restart_order(&hosts, GoesLast::EtcdLeader, Some("cp3")),
            names(&["cp1", "cp2", "cp3"])
        );
        assert_eq!(
            why_last(
                GoesLast::EtcdLeader,
                Some("cp1"),
                &names(&["cp2", "cp3", "cp1"])
            )
            .unwrap(),
            "cp1 last: it leads etcd, and hands leadership to a restarted member first"
        );
    }

    #[test]
    fn the_vip_holder_restarts_last() {
        let hosts = names(&["cp1", "cp2", "cp3"]);
        assert_eq!(
            restart_order(&hosts, GoesLast::VipHolder, Some("cp2")),
            names(&["cp1", "cp3", "cp2"])
        );
    }

    #[test]
    fn a_special_host_without_a_restart_or_unknown_changes_nothing() {
        let hosts = names(&["cp1", "cp3"]);
        // The leader's member does not restart this time.
        assert_eq!(
            restart_order(&hosts, GoesLast::EtcdLeader, Some("cp2")),
            hosts
        );
        assert_eq!(restart_order(&hosts, GoesLast::VipHolder, None), hosts);
        // Config order when no host is special.
        assert_eq!(restart_order(&hosts, GoesLast::None, Some("cp1")), hosts);
        assert_eq!(why_last(GoesLast::None, Some("cp3"), &hosts), None);
        assert_eq!(why_last(GoesLast::VipHolder, Some("cp1"), &hosts), None);
    }

    #[test]
    fn a_healthy_cluster_may_lose_one_member_for_a_moment() {
        let three = voters(&[("cp1", true), ("cp2", true), ("cp3", true)]);
        assert_eq!(restart_guard("cp1", &three), Ok(GuardVerdict::Safe));
        // Five members, one down: restarting another still leaves 3 of 5.
        let five = voters(&[
            ("a", true),
            ("b", true),
            ("c", true),
            ("d", true),
            ("e", false),
        ]);
        assert_eq!(restart_guard("a", &five), Ok(GuardVerdict::Safe));
        // The unhealthy member itself may restart: no healthy member goes away.
        let degraded = voters(&[("cp1", true), ("cp2", true), ("cp3", false)]);
        assert_eq!(restart_guard("cp3", &degraded), Ok(GuardVerdict::Safe));
    }

    #[test]
    fn a_restart_that_would_cost_the_majority_is_refused_with_the_arithmetic() {
        let degraded = voters(&[("cp1", true), ("cp2", true), ("cp3", false)]);
        let refusal = restart_guard("cp1", &degraded).unwrap_err();
        assert_eq!(
            (refusal.members, refusal.healthy_after, refusal.quorum),
            (3, 1, 2)
        );
        assert_eq!(
            refusal.to_string(),
            "restarting etcd on cp1 now would leave 1 of 3 voting member(s) healthy (cp3 is \
             not); etcd needs a majority of 3, which is 2, to stay writable. Bring cp3 back \
             first (`kinit status` shows it), or pass --force to restart anyway"
        );
        let five = voters(&[
            ("a", true),
            ("b", true),
            ("c", true),
            ("d", false),
            ("e", false),
        ]);
        let refusal = restart_guard("a", &five).unwrap_err();
        assert_eq!((refusal.healthy_after, refusal.quorum), (2, 3));
        assert!(refusal.to_string().contains("(d, e are not)"));
        // Two members: neither may restart while the other is down...
        let two = voters(&[("a", true), ("b", false)]);
        assert!(restart_guard("a", &two).is_err());
        // ...and even when both are up, one restart leaves 1 of 2, below a majority of 2.
        let two_up = voters(&[("a", true), ("b", true)]);
        assert_eq!(
            restart_guard("a", &two_up).unwrap_err().to_string(),
            "restarting etcd on a now would leave 1 of 2 voting member(s) healthy; etcd needs a \
             majority of 2, which is 2, to stay writable. A cluster of 2 members cannot lose \
             one (3 or 5 members can), or pass --force to restart anyway"
        );
    }

    /// Three voters, one down, a healthy learner: restarting a healthy voter leaves 1 of 3
    /// voters serving; the learner makes no difference.
    #[test]
    fn a_learner_does_not_vote_in_the_guard() {
        let mut v = voters(&[("cp1", true), ("cp2", true), ("cp3", false), ("cp4", true)]);
        v[3].learner = true;
        let refusal = restart_guard("cp1", &v).unwrap_err();
        assert_eq!(
            (refusal.members, refusal.healthy_after, refusal.quorum),
            (3, 1, 2)
        );
        assert_eq!(refusal.down, ["cp3"]);
        // The learner itself may always restart while the voters are healthy enough.
        assert_eq!(restart_guard("cp4", &v), Ok(GuardVerdict::Safe));
        // One voter and a learner: a single voting member.
        let mut one = voters(&[("cp1", true), ("cp2", true)]);
        one[1].learner = true;
        assert_eq!(restart_guard("cp1", &one), Ok(GuardVerdict::SingleMember));
    }

    #[test]
    fn a_single_member_cluster_is_said_not_refused() {
        let one = voters(&[("cp1", true)]);
        assert_eq!(restart_guard("cp1", &one), Ok(GuardVerdict::SingleMember));
    }
}
