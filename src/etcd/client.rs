//! The etcd calls kinit makes, each one HTTPS request to one member with a deadline.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::endpoint::Endpoint;
use super::error::EtcdError;
use super::https::{Request, call};
use super::tls::ClientTls;
use super::wire;

/// One member's own view (`/v3/maintenance/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub member_id: u64,
    /// Which cluster the member belongs to: a restore from a snapshot makes a new one.
    pub cluster_id: u64,
    /// The store's revision as this member sees it.
    pub revision: i64,
    /// The member id of the leader this member follows (0: none).
    pub leader: u64,
    pub db_size: u64,
    pub version: String,
    pub raft_term: u64,
}

/// One entry of `/v3/cluster/member/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: u64,
    /// Empty for a member that was added but has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// A learner: it receives the log but does not vote until promoted.
    #[serde(default)]
    pub is_learner: bool,
}

impl From<wire::Member> for Member {
    fn from(m: wire::Member) -> Member {
        Member {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
            is_learner: m.is_learner,
        }
    }
}

/// The bytes of an error body worth showing: its start, as text.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    if body.len() > MAX {
        format!("{text}...")
    } else {
        text.to_string()
    }
}

async fn post<T: DeserializeOwned>(
    tls: &ClientTls,
    endpoint: &str,
    path: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<T, EtcdError> {
    let ep = Endpoint::parse(endpoint)?;
    let body = body.to_string();
    let request = Request {
        method: "POST",
        path,
        body: Some(body.as_bytes()),
        content_type: crate::etcd::http::JSON,
    };
    let r = call(tls.config.clone(), &ep, None, request, timeout).await?;
    if r.status != 200 {
        return Err(EtcdError::Http {
            endpoint: endpoint.to_string(),
            status: r.status,
            body: snippet(&r.body),
        });
    }
    decode(endpoint, path, &r.body)
}

fn decode<T: DeserializeOwned>(endpoint: &str, path: &str, body: &[u8]) -> Result<T, EtcdError> {
    serde_json::from_slice(body).map_err(|e| EtcdError::Protocol {
        endpoint: endpoint.to_string(),
        message: format!("{path}: {e}"),
    })
}

/// Whether the member answers `/health` with `"health":"true"` (it has a leader and can serve).
/// An unhealthy member answers 503 with `"false"`: that is `Ok(false)`, not an error.
pub async fn health(tls: &ClientTls, endpoint: &str, timeout: Duration) -> Result<bool, EtcdError> {
    let ep = Endpoint::parse(endpoint)?;
    let request = Request {
        method: "GET",
        path: "/health",
        body: None,
        content_type: crate::etcd::http::JSON,
    };
    let r = call(tls.config.clone(), &ep, None, request, timeout).await?;
    if r.status != 200 && r.status != 503 {
        return Err(EtcdError::Http {
            endpoint: endpoint.to_string(),
            status: r.status,
            body: snippet(&r.body),
        });
    }
    let h: wire::Health = decode(endpoint, "/health", &r.body)?;
    Ok(h.health == "true")
}

pub async fn status(
    tls: &ClientTls,
    endpoint: &str,
    timeout: Duration,
) -> Result<MemberStatus, EtcdError> {
    let s: wire::Status = post(
        tls,
        endpoint,
        "/v3/maintenance/status",
        &serde_json::json!({}),
        timeout,
    )
    .await?;
    Ok(MemberStatus {
        member_id: s.header.member_id,
        cluster_id: s.header.cluster_id,
        revision: s.header.revision,
        leader: s.leader,
        db_size: s.db_size,
        version: s.version,
        raft_term: s.raft_term,
    })
}

pub async fn member_list(
    tls: &ClientTls,
    endpoint: &str,
    timeout: Duration,
) -> Result<Vec<Member>, EtcdError> {
    let l: wire::MemberList = post(
        tls,
        endpoint,
        "/v3/cluster/member/list",
        &serde_json::json!({}),
        timeout,
    )
    .await?;
    Ok(l.members.into_iter().map(Member::from).collect())
}

/// Add a member with these peer URLs (asked of any healthy member): the new member, and the
/// member list that now holds it. A learner receives the log but does not vote until promoted.
pub async fn member_add(
    tls: &ClientTls,
    endpoint: &str,
    peer_urls: &[String],
    is_learner: bool,
    timeout: Duration,
) -> Result<(Member, Vec<Member>), EtcdError> {
    let body = serde_json::json!({"peerURLs": peer_urls, "isLearner": is_learner});
    let a: wire::MemberAdd = post(tls, endpoint, "/v3/cluster/member/add", &body, timeout).await?;
    Ok((
        a.member.into(),
        a.members.into_iter().map(Member::from).collect(),
    ))
}

/// Make learner `id` a voting member. etcd refuses while the learner lags the leader
/// ([`EtcdError::is_learner_not_in_sync`]).
pub async fn member_promote(
    tls: &ClientTls,
    endpoint: &str,
    id: u64,
    timeout: Duration,
) -> Result<(), EtcdError> {
    let body = serde_json::json!({"ID": id.to_string()});
    let _: serde_json::Value =
        post(tls, endpoint, "/v3/cluster/member/promote", &body, timeout).await?;
    Ok(())
}

/// Remove member `id` from the cluster (asked of any healthy member).
pub async fn member_remove(
    tls: &ClientTls,
    endpoint: &str,
    id: u64,
    timeout: Duration,
) -> Result<(), EtcdError> {
    // The gateway takes 64-bit integers as strings.
    let body = serde_json::json!({"ID": id.to_string()});
    let _: serde_json::Value =
        post(tls, endpoint, "/v3/cluster/member/remove", &body, timeout).await?;
    Ok(())
}

/// Hand leadership to member `target`; asked of the current leader.
pub async fn move_leader(
    tls: &ClientTls,
    leader_endpoint: &str,
    target: u64,
    timeout: Duration,
) -> Result<(), EtcdError> {
    let body = serde_json::json!({"targetID": target.to_string()});
    let _: serde_json::Value = post(
        tls,
        leader_endpoint,
        "/v3/maintenance/transfer-leadership",
        &body,
        timeout,
    )
    .await?;
    Ok(())
}

pub async fn put(
    tls: &ClientTls,
    endpoint: &str,
    key: &[u8],
    value: &[u8],
    timeout: Duration,
) -> Result<(), EtcdError> {
    let body = serde_json::json!({"key": B64.encode(key), "value": B64.encode(value)});
    let _: serde_json::Value = post(tls, endpoint, "/v3/kv/put", &body, timeout).await?;
    Ok(())
}

/// The value stored under `key`, `None` when there is none.
pub async fn get(
    tls: &ClientTls,
    endpoint: &str,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<Vec<u8>>, EtcdError> {
    let body = serde_json::json!({"key": B64.encode(key)});
    let r: wire::Range = post(tls, endpoint, "/v3/kv/range", &body, timeout).await?;
    let Some(kv) = r.kvs.into_iter().next() else {
        return Ok(None);
    };
    B64.decode(kv.value.as_bytes())
        .map(Some)
        .map_err(|e| EtcdError::Protocol {
            endpoint: endpoint.to_string(),
            message: format!("/v3/kv/range: the value is not base64: {e}"),
        })
}
