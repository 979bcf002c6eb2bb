//! The one place that decides whether a change leaves etcd a healthy majority of voters: removing
//! members (`kinit remove`, a partial `kinit reset`) and restarting one (rolling restarts), and
//! later drills, all count here. Learners are no voters: they neither make a majority nor need
//! one, so they are left out of every figure. Pure: member health comes in, figures go out.

use serde::Serialize;

/// What happens to a member in the change being judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fate {
    /// Stays in the cluster, as healthy as it is now.
    Stays,
    /// Leaves the cluster (removed): the configuration shrinks.
    Leaves,
    /// Stays in the configuration but serves nothing for a while (restarted).
    Pauses,
}

/// A member as the arithmetic sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub name: String,
    pub healthy: bool,
    pub learner: bool,
    pub fate: Fate,
}

/// The figures of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Voting members now.
    pub voters_now: usize,
    /// Voting members in the configuration after the change (a restart keeps them all).
    pub voters_after: usize,
    /// Of those, healthy and serving during the change.
    pub healthy_after: usize,
    /// A majority of `voters_after`.
    pub needed: usize,
    /// Voters that stay but are unhealthy now (not the ones paused or leaving).
    pub down: Vec<String>,
    /// Learners, counted nowhere.
    pub learners: Vec<String>,
}

impl Tally {
    /// Whether etcd keeps a healthy majority of voters (and any voter at all).
    pub fn keeps_majority(&self) -> bool {
        self.voters_after > 0 && self.healthy_after >= self.needed
    }
}

/// Counts `seats`: the voters of the configuration after the change, the healthy ones among
/// them that serve during it, and the majority they need. Learners count nowhere.
pub fn tally(seats: &[Seat]) -> Tally {
    let voters: Vec<&Seat> = seats.iter().filter(|s| !s.learner).collect();
    let after: Vec<&Seat> = voters
        .iter()
        .copied()
        .filter(|s| s.fate != Fate::Leaves)
        .collect();
    let healthy_after = after
        .iter()
        .filter(|s| s.healthy && s.fate == Fate::Stays)
        .count();
    Tally {
        voters_now: voters.len(),
        voters_after: after.len(),
        healthy_after,
        needed: after.len() / 2 + 1,
        down: after
            .iter()
            .filter(|s| !s.healthy && s.fate == Fate::Stays)
            .map(|s| s.name.clone())
            .collect(),
        learners: seats
            .iter()
            .filter(|s| s.learner)
            .map(|s| s.name.clone())
            .collect(),
    }
}

/// Why the members could not be judged: every guard refuses then (unless forced), it never
/// goes on unguarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unjudged {
    #[error("there is no etcd client certificate in the PKI dir ({pki_dir}) to ask etcd with")]
    NoClient { pki_dir: String },
    #[error("no etcd member answered with the member list ({endpoints})")]
    NoAnswer { endpoints: String },
    #[error(transparent)]
    Ambiguous(#[from] AmbiguousMember),
}

/// One live member that two hosts of the config claim: one by its name, another by its peer
/// URL. Which host it is cannot be told, so nothing that counts it goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "etcd member {member} ({id}) is host {by_name} by its name but host {by_peer} by its peer URL \
     {peer_url}: fix cluster.yaml so that each host has its own member's name and address (`kinit \
     status` lists the members)"
)]
pub struct AmbiguousMember {
    pub member: String,
    pub id: String,
    pub by_name: String,
    pub by_peer: String,
    pub peer_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(name: &str, healthy: bool, learner: bool, fate: Fate) -> Seat {
        Seat {
            name: name.into(),
            healthy,
            learner,
            fate,
        }
    }

    /// The case: three voters, one down, and a healthy learner. Removing a healthy
    /// voter leaves 1 healthy of 2 voters, not "2 of 3 healthy".
    #[test]
    fn a_learner_is_no_voter() {
        let seats = [
            seat("cp1", true, false, Fate::Stays),
            seat("cp2", false, false, Fate::Stays),
            seat("cp3", true, false, Fate::Leaves),
            seat("cp4", true, true, Fate::Stays),
        ];
        let t = tally(&seats);
        assert_eq!(
            (t.voters_now, t.voters_after, t.healthy_after, t.needed),
            (3, 2, 1, 2)
        );
        assert!(!t.keeps_majority());
        assert_eq!(t.down, ["cp2"]);
        assert_eq!(t.learners, ["cp4"]);
        // Counting the learner as a voter would have said 2 healthy of 3: a majority.
        let wrong = tally(&[
            seat("cp1", true, false, Fate::Stays),
            seat("cp2", false, false, Fate::Stays),
            seat("cp3", true, false, Fate::Leaves),
            seat("cp4", true, false, Fate::Stays),
        ]);
        assert!(wrong.keeps_majority());
    }

    #[test]
    fn a_restart_keeps_the_configuration_but_not_the_member() {
        let seats = [
            seat("cp1", true, false, Fate::Pauses),
            seat("cp2", true, false, Fate::Stays),
            seat("cp3", false, false, Fate::Stays),
            seat("cp4", true, true, Fate::Stays),
        ];
        let t = tally(&seats);
        assert_eq!((t.voters_after, t.healthy_after, t.needed), (3, 1, 2));
        assert!(!t.keeps_majority());
        let all_up = [
            seat("cp1", true, false, Fate::Pauses),
            seat("cp2", true, false, Fate::Stays),
            seat("cp3", true, false, Fate::Stays),
        ];
        assert!(tally(&all_up).keeps_majority());
    }

    #[test]
    fn removing_only_learners_costs_nothing_and_no_voter_left_is_no_majority() {
        let seats = [
            seat("cp1", true, false, Fate::Stays),
            seat("cp2", false, false, Fate::Stays),
            seat("cp3", true, false, Fate::Stays),
            seat("cp4", false, true, Fate::Leaves),
        ];
        let t = tally(&seats);
        assert_eq!((t.voters_after, t.healthy_after, t.needed), (3, 2, 2));
        assert!(t.keeps_majority());
        let only_learner_stays = [
            seat("cp1", true, false, Fate::Leaves),
            seat("cp4", true, true, Fate::Stays),
        ];
        assert!(!tally(&only_learner_stays).keeps_majority());
    }
}
