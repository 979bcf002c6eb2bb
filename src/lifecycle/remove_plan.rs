//! Which etcd members `kinit remove` takes away, in which order, through which member, who
//! leads afterwards, and whether etcd keeps a majority at every step given the members that are
//! unhealthy right now. Pure: the live member list comes in, a plan or a refusal goes out.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::planning::quorum::{self, Fate, Seat};

/// A live member as the removal plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    #[serde(skip)]
    pub raw_id: u64,
    /// Hex, as etcdctl prints it.
    pub id: String,
    pub name: String,
    /// The inventory host it belongs to.
    pub host: Option<String>,
    pub healthy: bool,
    pub leader: bool,
    /// A learner: no voter, counted in no majority, never carries a removal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
}

/// The figures the quorum guard decided on (shown in the plan and in a refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumFigures {
    /// Voting members now (learners are no voters).
    pub members_now: usize,
    /// Members that stay but are unhealthy right now.
    pub unhealthy_staying: Vec<String>,
    pub remaining: usize,
    pub healthy_remaining: usize,
    /// A majority of `remaining`: `remaining / 2 + 1`.
    pub needed: usize,
    /// Learners, counted nowhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<String>,
}

impl QuorumFigures {
    fn of(t: quorum::Tally) -> QuorumFigures {
        QuorumFigures {
            members_now: t.voters_now,
            unhealthy_staying: t.down,
            remaining: t.voters_after,
            healthy_remaining: t.healthy_after,
            needed: t.needed,
            learners: t.learners,
        }
    }

    /// The arithmetic, in words: "3 - 1 = 2 members stay, 1 of them healthy (cp2 is not);
    /// a majority of 2 is 2".
    pub fn arithmetic(&self) -> String {
        let going = self.members_now - self.remaining;
        let unhealthy = if self.unhealthy_staying.is_empty() {
            String::new()
        } else {
            format!(
                " ({} {} not)",
                self.unhealthy_staying.join(", "),
                if self.unhealthy_staying.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            )
        };
        let learners = if self.learners.is_empty() {
            String::new()
        } else {
            format!(
                " (learner(s) {} not counted: they do not vote)",
                self.learners.join(", ")
            )
        };
        format!(
            "{} - {going} = {} member(s) stay, {} of them healthy{unhealthy}; a majority of {} is \
             {}{learners}",
            self.members_now, self.remaining, self.healthy_remaining, self.remaining, self.needed
        )
    }

    fn keeps_majority(&self) -> bool {
        self.remaining > 0 && self.healthy_remaining >= self.needed
    }
}

/// A removal etcd would survive, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRemoval {
    /// In the order they are removed: unhealthy members first (that only shrinks what a
    /// majority needs), the leader last.
    pub members: Vec<MemberView>,
    /// The healthy member that stays, through which the removals go; it takes over the
    /// leadership when a removed member leads.
    pub via: MemberView,
    /// The leader that hands its leadership to `via` before it is removed.
    pub hand_over: Option<String>,
    pub quorum: QuorumFigures,
    /// What `--force` let through.
    pub forced: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    #[error(
        "refusing to remove the etcd member(s) of {hosts}: {arithmetic}, so etcd could not keep a \
         majority. Bring the unhealthy members back first (`kinit status` shows them), or pass \
         --force to remove anyway (etcd stops taking writes until enough members are back)",
        arithmetic = figures.arithmetic()
    )]
    Quorum {
        hosts: String,
        figures: Box<QuorumFigures>,
    },
    #[error(
        "refusing to remove the etcd member(s) of {hosts}: removing {member} commits in a \
         cluster of {size} member(s) with {healthy} healthy ({down} not), and a majority of \
         {size} is {needed}. Bring the unhealthy members back first, or pass --force to try \
         anyway",
        size = figures.remaining,
        healthy = figures.healthy_remaining,
        down = figures.unhealthy_staying.join(", "),
        needed = figures.needed
    )]
    Step {
        hosts: String,
        member: String,
        figures: Box<QuorumFigures>,
    },
    #[error(
        "removing the etcd member(s) of {hosts} would leave a single member: etcd then survives \
         no failure at all. Pass --force to go down to one member"
    )]
    DownToOne { hosts: String },
    #[error(
        "removing {hosts} would remove every etcd member: that is the end of the cluster, not a \
         removal; use `kinit reset` for that"
    )]
    EveryMember { hosts: String },
    #[error(
        "no voting etcd member that stays is healthy, so nothing can carry the removal of \
         {hosts}; bring one back first"
    )]
    NoHealthyMember { hosts: String },
}

/// Decide how the members of `going` (host names) leave. `force` turns the quorum refusals
/// into warnings (the removal of the last member never goes).
pub fn plan(
    members: &[MemberView],
    going: &BTreeSet<String>,
    force: bool,
) -> Result<Option<MemberRemoval>, RemovalRefused> {
    let leaving = |m: &MemberView| m.host.as_ref().is_some_and(|h| going.contains(h));
    let mut removed: Vec<MemberView> = members.iter().filter(|m| leaving(m)).cloned().collect();
    if removed.is_empty() {
        return Ok(None);
    }
    let hosts = going.iter().cloned().collect::<Vec<_>>().join(", ");
    let staying: Vec<&MemberView> = members.iter().filter(|m| !leaving(m)).collect();
    if staying.iter().all(|m| m.learner) {
        // A learner cannot carry the cluster on its own.
        return Err(RemovalRefused::EveryMember { hosts });
    }
    // Learners first (they cost no vote), then unhealthy voters, then healthy followers, the
    // leader last; config order otherwise.
    removed.sort_by_key(|m| (!m.learner, m.healthy, m.leader));
    // The one count ([`quorum::tally`]): `left` stay, the rest of `of` leave.
    let figures = |of: &[&MemberView], left: &dyn Fn(&MemberView) -> bool| {
        let seats: Vec<Seat> = of
            .iter()
            .map(|m| Seat {
                name: m.name.clone(),
                healthy: m.healthy,
                learner: m.learner,
                fate: if left(m) { Fate::Stays } else { Fate::Leaves },
            })
            .collect();
        QuorumFigures::of(quorum::tally(&seats))
    };
    let everyone: Vec<&MemberView> = members.iter().collect();
    let quorum = figures(&everyone, &|m| !leaving(m));
    let mut forced = Vec::new();
    if !quorum.keeps_majority() {
        let refusal = RemovalRefused::Quorum {
            hosts: hosts.clone(),
            figures: Box::new(quorum.clone()),
        };
        if !force {
            return Err(refusal);
        }
        forced.push(refusal.to_string());
    }
    // Each removal commits in the configuration it leaves: a majority of that one must be
    // healthy, including the member that is going if it is healthy.
    for (i, m) in removed.iter().enumerate() {
        let before: Vec<&MemberView> = staying.iter().copied().chain(removed[i..].iter()).collect();
        let step = figures(&before, &|_| true);
        if !step.keeps_majority() {
            let refusal = RemovalRefused::Step {
                hosts: hosts.clone(),
                member: m.name.clone(),
                figures: Box::new(QuorumFigures {
                    members_now: quorum.members_now,
                    ..step
                }),
            };
            if !force {
                return Err(refusal);
            }
            forced.push(refusal.to_string());
            break;
        }
    }
    if quorum.remaining == 1 {
        let refusal = RemovalRefused::DownToOne {
            hosts: hosts.clone(),
        };
        if !force {
            return Err(refusal);
        }
        forced.push(refusal.to_string());
    }
    // Leadership goes to the current leader when it stays, else to the first healthy member.
    let via = staying
        .iter()
        .find(|m| m.healthy && !m.learner && m.leader)
        .or_else(|| staying.iter().find(|m| m.healthy && !m.learner))
        .ok_or(RemovalRefused::NoHealthyMember {
            hosts: hosts.clone(),
        })?;
    let hand_over = removed.iter().find(|m| m.leader).map(|m| m.name.clone());
    Ok(Some(MemberRemoval {
        members: removed,
        via: (*via).clone(),
        hand_over,
        quorum,
        forced,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u64, healthy: bool, leader: bool) -> MemberView {
        MemberView {
            raw_id: n,
            id: format!("{n:x}"),
            name: format!("cp{n}"),
            host: Some(format!("cp{n}")),
            healthy,
            leader,
            learner: false,
        }
    }

    fn going(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_healthy_member_of_three_goes_while_all_are_healthy() {
        let m = [
            member(1, true, true),
            member(2, true, false),
            member(3, true, false),
        ];
        let p = plan(&m, &going(&["cp3"]), false).unwrap().unwrap();
        assert_eq!(p.members, vec![m[2].clone()]);
        assert_eq!(
            p.via.name, "cp1",
            "the leader that stays carries the removal"
        );
        assert_eq!(p.hand_over, None);
        assert_eq!(p.quorum.remaining, 2);
        assert_eq!(p.quorum.needed, 2);
        assert!(p.forced.is_empty());
    }

    #[test]
    fn removing_a_healthy_member_of_three_while_another_is_down_is_refused_with_the_arithmetic() {
        let m = [
            member(1, true, true),
            member(2, false, false),
            member(3, true, false),
        ];
        let err = plan(&m, &going(&["cp3"]), false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "3 - 1 = 2 member(s) stay, 1 of them healthy (cp2 is not); a majority of 2 is 2"
            ),
            "{text}"
        );
        assert!(text.contains("--force"), "{text}");
        let forced = plan(&m, &going(&["cp3"]), true).unwrap().unwrap();
        assert_eq!(forced.forced.len(), 1, "{forced:?}");
    }

    #[test]
    fn the_down_member_itself_may_go() {
        let m = [
            member(1, true, true),
            member(2, false, false),
            member(3, true, false),
        ];
        let p = plan(&m, &going(&["cp2"]), false).unwrap().unwrap();
        assert_eq!(p.quorum.healthy_remaining, 2);
        assert_eq!(p.members[0].name, "cp2");
    }

    #[test]
    fn four_members_one_down_one_healthy_going_keeps_a_majority_of_three() {
        let m = [
            member(1, true, false),
            member(2, true, true),
            member(3, false, false),
            member(4, true, false),
        ];
        let p = plan(&m, &going(&["cp4"]), false).unwrap().unwrap();
        assert_eq!((p.quorum.remaining, p.quorum.healthy_remaining), (3, 2));
        // Two of four down and one more going: 1 healthy of 2.
        let m2 = [
            member(1, true, true),
            member(2, false, false),
            member(3, false, false),
            member(4, true, false),
        ];
        assert!(matches!(
            plan(&m2, &going(&["cp4"]), false),
            Err(RemovalRefused::Quorum { .. })
        ));
    }

    #[test]
    fn the_leader_goes_last_and_hands_over_to_a_healthy_member_that_stays() {
        let m = [
            member(1, true, false),
            member(2, false, false),
            member(3, true, false),
            member(4, true, true),
            member(5, true, false),
        ];
        let p = plan(&m, &going(&["cp4", "cp2"]), false).unwrap().unwrap();
        let order: Vec<&str> = p.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(order, ["cp2", "cp4"], "unhealthy first, leader last");
        assert_eq!(p.hand_over.as_deref(), Some("cp4"));
        assert_eq!(p.via.name, "cp1");
        assert!(p.via.healthy);
    }

    #[test]
    fn a_removal_that_cannot_commit_now_is_refused_even_if_the_end_state_would_be_fine() {
        // Two of three down: the end state (cp1 alone) is healthy, but no removal can commit.
        let m = [
            member(1, true, true),
            member(2, false, false),
            member(3, false, false),
        ];
        let err = plan(&m, &going(&["cp2", "cp3"]), false).unwrap_err();
        assert!(matches!(err, RemovalRefused::Step { .. }), "{err}");
        assert!(
            err.to_string().contains(
                "a cluster of 3 member(s) with 1 healthy (cp2, cp3 not), and a majority of 3 is 2"
            ),
            "{err}"
        );
    }

    #[test]
    fn down_to_one_member_asks_for_force_and_every_member_is_never_removed() {
        let m = [member(1, true, true), member(2, true, false)];
        let err = plan(&m, &going(&["cp2"]), false).unwrap_err();
        assert!(matches!(err, RemovalRefused::DownToOne { .. }), "{err}");
        let p = plan(&m, &going(&["cp2"]), true).unwrap().unwrap();
        assert_eq!(p.forced.len(), 1);
        assert!(matches!(
            plan(&m, &going(&["cp1", "cp2"]), true),
            Err(RemovalRefused::EveryMember { .. })
        ));
    }

    #[test]
    fn hosts_without_a_member_ask_nothing_of_etcd() {
        let m = [member(1, true, true), member(2, true, false)];
        assert_eq!(plan(&m, &going(&["w1"]), false).unwrap(), None);
    }

    fn learner(n: u64, healthy: bool) -> MemberView {
        MemberView {
            learner: true,
            ..member(n, healthy, false)
        }
    }

    /// The case: three voters with cp2 down, plus a healthy learner cp4. Removing the
    /// healthy voter cp3 leaves 1 healthy of 2 voters: refused. Counting the learner said
    /// "2 of 3 healthy" and let it go.
    #[test]
    fn a_learner_is_not_counted_as_a_voter() {
        let m = [
            member(1, true, true),
            member(2, false, false),
            member(3, true, false),
            learner(4, true),
        ];
        let err = plan(&m, &going(&["cp3"]), false).unwrap_err();
        let RemovalRefused::Quorum { figures, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(
            (
                figures.members_now,
                figures.remaining,
                figures.healthy_remaining,
                figures.needed
            ),
            (3, 2, 1, 2)
        );
        assert!(
            err.to_string().contains(
                "3 - 1 = 2 member(s) stay, 1 of them healthy (cp2 is not); a majority of 2 is 2 \
                 (learner(s) cp4 not counted: they do not vote)"
            ),
            "{err}"
        );
        // With every voter healthy the same removal goes, and the learner never carries it.
        let m = [
            member(1, true, false),
            member(2, true, false),
            member(3, true, false),
            MemberView {
                leader: false,
                ..learner(4, true)
            },
        ];
        let p = plan(&m, &going(&["cp3"]), false).unwrap().unwrap();
        assert_ne!(p.via.name, "cp4");
        assert_eq!((p.quorum.remaining, p.quorum.healthy_remaining), (2, 2));
    }

    #[test]
    fn removing_a_learner_costs_no_vote_and_a_learner_alone_is_no_cluster() {
        let m = [
            member(1, true, true),
            member(2, false, false),
            member(3, true, false),
            learner(4, false),
        ];
        let p = plan(&m, &going(&["cp4"]), false).unwrap().unwrap();
        assert_eq!(p.members[0].name, "cp4");
        assert_eq!((p.quorum.remaining, p.quorum.healthy_remaining), (3, 2));
        // Every voter going leaves only a learner: that is the end of the cluster.
        let m = [member(1, true, true), learner(2, true)];
        assert!(matches!(
            plan(&m, &going(&["cp1"]), true),
            Err(RemovalRefused::EveryMember { .. })
        ));
        // Two voters and a learner: removing a voter leaves one voter.
        let m = [
            member(1, true, true),
            member(2, true, false),
            learner(3, true),
        ];
        assert!(matches!(
            plan(&m, &going(&["cp2"]), false),
            Err(RemovalRefused::DownToOne { .. })
        ));
    }
}
