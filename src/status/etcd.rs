//! The etcd part of the status: every expected member asked for its health and status over
//! mutual TLS (all at once), the member list from the first member that gives one, and the list
//! compared with the inventory. Needs only endpoints, so it runs without SSH.

use std::collections::BTreeSet;
use std::time::Duration;

use super::report::{EtcdMemberStatus, EtcdStatus};
use crate::etcd::{self, ClientTls, Member, MemberStatus};

/// One member as the inventory names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMember {
    pub name: String,
    /// `https://10.0.0.11:2379`
    pub endpoint: String,
}

async fn probe(
    tls: &ClientTls,
    name: String,
    endpoint: String,
    in_inventory: bool,
    timeout: Duration,
) -> (EtcdMemberStatus, Option<MemberStatus>) {
    let (health, status) = tokio::join!(
        etcd::health(tls, &endpoint, timeout),
        etcd::status(tls, &endpoint, timeout)
    );
    let mut m = EtcdMemberStatus {
        name,
        endpoint,
        id: None,
        healthy: false,
        leader: false,
        db_size: None,
        version: None,
        raft_term: None,
        learner: false,
        in_inventory,
        error: None,
    };
    match health {
        Ok(true) => m.healthy = true,
        Ok(false) => m.error = Some("/health says false (no leader, or an alarm)".into()),
        Err(e) => m.error = Some(e.to_string()),
    }
    let status = match status {
        Ok(s) => {
            m.id = Some(format!("{:x}", s.member_id));
            m.leader = s.leader != 0 && s.leader == s.member_id;
            m.db_size = Some(s.db_size);
            m.version = Some(s.version.clone());
            m.raft_term = Some(s.raft_term);
            Some(s)
        }
        Err(e) => {
            if m.error.is_none() {
                m.healthy = false;
                m.error = Some(e.to_string());
            }
            None
        }
    };
    (m, status)
}

/// The member's name in reports: its name, or its id while it has not started.
fn listed_name(m: &Member) -> String {
    if m.name.is_empty() {
        format!("{:x} (not started)", m.id)
    } else {
        m.name.clone()
    }
}

/// Ask the `expected` members; `tls` is the operator's etcd client (an `Err` is reported as
/// the reason etcd could not be asked).
pub async fn gather(
    expected: &[ExpectedMember],
    tls: Result<&ClientTls, String>,
    timeout: Duration,
) -> EtcdStatus {
    let tls = match tls {
        Ok(tls) => tls,
        Err(e) => {
            return EtcdStatus {
                error: Some(e),
                ..EtcdStatus::default()
            };
        }
    };
    let wanted = expected
        .iter()
        .map(|e| (e.name.clone(), e.endpoint.clone(), true))
        .collect();
    let mut results = probe_all(tls, wanted, timeout).await;

    // The member list from a member that answered its status, healthy ones first (asking the
    // ones that did not answer would only wait out their timeouts one after another).
    let mut order: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].1.is_some())
        .collect();
    order.sort_by_key(|&i| !results[i].0.healthy);
    let mut listed = None;
    let mut list_errors = Vec::new();
    for i in order {
        let endpoint = &results[i].0.endpoint;
        match etcd::member_list(tls, endpoint, timeout).await {
            Ok(list) => {
                listed = Some((results[i].0.name.clone(), list));
                break;
            }
            Err(e) => list_errors.push(e.to_string()),
        }
    }
    let mut report = EtcdStatus::default();
    if let Some((by, list)) = listed {
        report.listed_by = Some(by);
        let listed_names: BTreeSet<String> = list.iter().map(listed_name).collect();
        report.missing_from_list = expected
            .iter()
            .filter(|e| !listed_names.contains(&e.name))
            .map(|e| e.name.clone())
            .collect();
        let extra: Vec<&Member> = list
            .iter()
            .filter(|m| !expected.iter().any(|e| e.name == m.name))
            .collect();
        report.not_in_inventory = extra.iter().map(|m| listed_name(m)).collect();
        for (m, _) in results.iter_mut() {
            m.learner = list.iter().any(|l| l.is_learner && l.name == m.name);
        }
        // Members the inventory does not know are still members: ask them too.
        let extra_wanted = extra
            .iter()
            .filter_map(|m| Some((listed_name(m), m.client_urls.first()?.clone(), false)))
            .collect();
        let mut extra_results = probe_all(tls, extra_wanted, timeout).await;
        for (m, _) in extra_results.iter_mut() {
            m.learner = extra
                .iter()
                .any(|l| l.is_learner && listed_name(l) == m.name);
        }
        results.extend(extra_results);
    } else {
        report.error = Some(match list_errors.first() {
            Some(e) => format!("no member gave its member list; first error: {e}"),
            None if expected.is_empty() => "the inventory names no etcd member".to_string(),
            None => "no member answered (each member's error is listed)".to_string(),
        });
    }
    let mut leaders: Vec<String> = Vec::new();
    for (m, status) in &results {
        let Some(s) = status else { continue };
        if !m.healthy || s.leader == 0 {
            continue;
        }
        let leader_name = results
            .iter()
            .find(|(_, other)| other.as_ref().is_some_and(|o| o.member_id == s.leader))
            .map(|(o, _)| o.name.clone())
            .unwrap_or_else(|| format!("{:x}", s.leader));
        if !leaders.contains(&leader_name) {
            leaders.push(leader_name);
        }
    }
    report.leaders = leaders;
    report.members = results.into_iter().map(|(m, _)| m).collect();
    report
}

/// Probe every `(name, endpoint, in_inventory)` at once, results in input order.
async fn probe_all(
    tls: &ClientTls,
    members: Vec<(String, String, bool)>,
    timeout: Duration,
) -> Vec<(EtcdMemberStatus, Option<MemberStatus>)> {
    let mut tasks = tokio::task::JoinSet::new();
    let count = members.len();
    for (i, (name, endpoint, in_inventory)) in members.into_iter().enumerate() {
        let tls = tls.clone();
        tasks.spawn(async move { (i, probe(&tls, name, endpoint, in_inventory, timeout).await) });
    }
    let mut out: Vec<Option<_>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    out.into_iter().flatten().collect()
}
