use std::path::Path;

use super::*;
use crate::config::Topology;
use crate::config::template::{InitShape, render};

/// cp1..cp5 (192.168.9.11-15), every one control-plane + etcd.
fn five() -> Inventory {
    let text = render(InitShape {
        topology: Topology::Stacked,
        control_planes: 5,
        workers: 0,
        etcd_hosts: 0,
    })
    .unwrap();
    let (cfg, report) = crate::config::check(Path::new("c.yaml"), text);
    assert!(!report.has_errors(), "{report:?}");
    Inventory::from_config(&cfg.unwrap(), Path::new("/srv"), None).unwrap()
}

fn member(id: u64, name: &str, last_octet: u8, is_learner: bool) -> Member {
    Member {
        id,
        name: name.into(),
        peer_urls: vec![format!("https://192.168.9.{last_octet}:2380")],
        client_urls: if name.is_empty() {
            vec![]
        } else {
            vec![format!("https://192.168.9.{last_octet}:2379")]
        },
        is_learner,
    }
}

fn three() -> Vec<Member> {
    vec![
        member(1, "cp1", 11, false),
        member(2, "cp2", 12, false),
        member(3, "cp3", 13, false),
    ]
}

fn hosts(p: &JoinPlan) -> Vec<&str> {
    p.joiners.iter().map(|j| j.host.as_str()).collect()
}

#[test]
fn new_hosts_join_one_after_another_in_config_order() {
    let p = plan(&five(), &three()).unwrap();
    assert_eq!(p.members, ["cp1", "cp2", "cp3"]);
    assert_eq!(hosts(&p), ["cp4", "cp5"]);
    assert!(
        p.joiners
            .iter()
            .all(|j| j.stale.is_none() && j.learner.is_none())
    );
    assert_eq!(p.joiners[0].peer_url, "https://192.168.9.14:2380");
    assert!(p.strangers.is_empty());
    assert!(!p.is_settled());
}

#[test]
fn a_converged_cluster_has_nothing_to_join() {
    let mut live = three();
    live.push(member(4, "cp4", 14, false));
    live.push(member(5, "cp5", 15, false));
    let p = plan(&five(), &live).unwrap();
    assert!(p.is_settled());
    assert_eq!(p.members.len(), 5);
}

#[test]
fn a_member_added_but_never_started_is_removed_and_added_again() {
    let mut live = three();
    // A failed run added cp4 (no name yet: it never started).
    live.push(member(40, "", 14, true));
    let p = plan(&five(), &live).unwrap();
    assert_eq!(hosts(&p), ["cp4", "cp5"]);
    assert_eq!(p.joiners[0].stale, Some(40));
    assert_eq!(p.joiners[1].stale, None);
    assert!(p.strangers.is_empty(), "{:?}", p.strangers);
}

#[test]
fn a_learner_that_runs_is_promoted_not_added_again() {
    let mut live = three();
    live.push(member(40, "cp4", 14, true));
    let p = plan(&five(), &live).unwrap();
    assert_eq!(p.joiners[0].learner, Some(40));
    assert_eq!(p.joiners[0].stale, None);
    // Never removed: it serves data.
    assert!(p.joiners.iter().all(|j| j.stale != Some(40)));
}

#[test]
fn an_address_that_is_a_member_under_another_name_is_refused() {
    let mut live = three();
    live.push(member(9, "old4", 14, false));
    let e = plan(&five(), &live).unwrap_err();
    assert!(
        matches!(&e, JoinRefusal::AddressTaken { host, member, .. } if host == "cp4" && member == "old4"),
        "{e:?}"
    );
    assert!(e.to_string().contains("already etcd member old4"), "{e}");
}

#[test]
fn a_member_whose_address_moved_is_refused() {
    let mut live = three();
    live[2] = member(3, "cp3", 99, false);
    let e = plan(&five(), &live).unwrap_err();
    assert!(matches!(e, JoinRefusal::AddressChanged { ref host, .. } if host == "cp3"));
}

#[test]
fn live_members_not_in_the_config_are_strangers_never_joiners() {
    let mut live = three();
    live.push(member(77, "gone", 50, false));
    live.push(member(78, "", 51, true));
    let p = plan(&five(), &live).unwrap();
    let ids: Vec<&str> = p.strangers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["4d", "4e"]);
    assert_eq!(p.strangers[1].name, "(not started)");
    assert_eq!(hosts(&p), ["cp4", "cp5"]);
}

#[test]
fn a_joiner_starts_with_every_member_and_itself() {
    let mut live = three();
    // As member add answers: the new member, not started, has no name yet.
    live.push(member(50, "", 15, true));
    let p = plan(&five(), &three()).unwrap();
    assert_eq!(
        JoinPlan::initial_cluster(&live, &p.joiners[1]),
        "cp1=https://192.168.9.11:2380,cp2=https://192.168.9.12:2380,\
         cp3=https://192.168.9.13:2380,cp5=https://192.168.9.15:2380"
    );
}
