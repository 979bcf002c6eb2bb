//! etcd's gRPC-gateway JSON, as 3.4 and later send it. The gateway writes 64-bit integers as
//! JSON strings and leaves out zero values, so every field has a default and numbers accept
//! either form.

use serde::{Deserialize, Deserializer};

fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Text(String),
        Int(u64),
    }
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Text(String),
        Int(i64),
    }
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Header {
    #[serde(default, alias = "memberId", deserialize_with = "u64_lenient")]
    pub member_id: u64,
    #[serde(default, alias = "clusterId", deserialize_with = "u64_lenient")]
    pub cluster_id: u64,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub revision: i64,
}

#[derive(Debug, Deserialize)]
pub struct Health {
    /// `"true"` or `"false"`.
    pub health: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub version: String,
    #[serde(default, alias = "db_size", deserialize_with = "u64_lenient")]
    pub db_size: u64,
    #[serde(default, deserialize_with = "u64_lenient")]
    pub leader: u64,
    #[serde(default, alias = "raft_term", deserialize_with = "u64_lenient")]
    pub raft_term: u64,
}

#[derive(Debug, Deserialize)]
pub struct MemberList {
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", alias = "id", default, deserialize_with = "u64_lenient")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", alias = "peer_urls", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", alias = "client_urls", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", alias = "is_learner", default)]
    pub is_learner: bool,
}

/// `/v3/cluster/member/add`'s answer: the new member and the list it now belongs to.
#[derive(Debug, Deserialize)]
pub struct MemberAdd {
    pub member: Member,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Deserialize)]
pub struct Range {
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct KeyValue {
    /// base64; absent for an empty value.
    #[serde(default)]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcd_3_4_status_with_string_numbers() {
        let s: Status = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","member_id":"10276657743932975437","revision":"1","raft_term":"2"},
                "version":"3.4.23","dbSize":"20480","leader":"10276657743932975437","raftIndex":"4","raftTerm":"2"}"#,
        )
        .unwrap();
        assert_eq!(s.header.member_id, 10276657743932975437);
        assert_eq!((s.header.cluster_id, s.header.revision), (1, 1));
        assert_eq!(
            (s.db_size, s.leader, s.raft_term),
            (20480, 10276657743932975437, 2)
        );
        assert_eq!(s.version, "3.4.23");
    }

    #[test]
    fn reads_members_with_missing_fields() {
        let m: MemberList = serde_json::from_str(
            r#"{"members":[{"ID":"42","name":"cp1","peerURLs":["https://a:2380"],"clientURLs":["https://a:2379"]},
                           {"ID":"7","peerURLs":["https://b:2380"]}]}"#,
        )
        .unwrap();
        assert_eq!(m.members.len(), 2);
        assert_eq!((m.members[0].id, m.members[0].name.as_str()), (42, "cp1"));
        assert!(m.members[1].name.is_empty() && m.members[1].client_urls.is_empty());
    }
}
