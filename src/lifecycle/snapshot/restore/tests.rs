use std::collections::BTreeMap;

use super::old_data::{OldData, half_way};
use crate::lifecycle::snapshot::SnapshotError;

#[test]
fn a_half_way_failure_says_where_each_hosts_old_data_is() {
    let old: BTreeMap<String, OldData> = [
        ("cp1", OldData::Moved("/var/lib/etcd.restore-X".into())),
        ("cp2", OldData::Untouched),
        ("cp3", OldData::Unknown("/var/lib/etcd.restore-X".into())),
    ]
    .into_iter()
    .map(|(h, o)| (h.to_string(), o))
    .collect();
    let e = half_way(
        SnapshotError::host("cp3", "snapshot restore", "exit 1: boom"),
        "/var/lib/etcd",
        &old,
    )
    .to_string();
    for want in [
        "host cp3: snapshot restore: exit 1: boom",
        "cp1: moved to /var/lib/etcd.restore-X",
        "cp2: not moved",
        "cp3: at /var/lib/etcd, or moved to /var/lib/etcd.restore-X",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
}
