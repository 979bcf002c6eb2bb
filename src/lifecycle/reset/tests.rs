use super::*;
use crate::engine::lifecycle_step::LifecycleStep;
use crate::engine::plan::Step;

#[test]
fn the_data_dir_goes_next_to_itself() {
    assert_eq!(
        aside_path("/var/lib/etcd/", "20261127T101500Z", "reset"),
        "/var/lib/etcd.reset-20261127T101500Z"
    );
}

fn settings(dry_run: bool) -> ResetSettings {
    ResetSettings {
        dry_run,
        purge: false,
        concurrency: 4,
        stamp: "20261127T101500Z".into(),
        etcd_timeout: Duration::from_secs(1),
        locked_by_caller: false,
        break_lock: false,
    }
}

#[test]
fn a_hosts_reset_takes_manifests_first_and_reloads_systemd_last() {
    let plan = HostReset {
        host: "cp1".into(),
        units: vec!["keepalived", "etcd"],
        manifests: vec!["/etc/kubernetes/manifests/kube-apiserver.yaml".into()],
        pod_ports: vec![6443],
        runtime_state: Vec::new(),
        files: vec!["/etc/etcd/etcd.conf.yml".into()],
        state_dirs: Vec::new(),
        dirs: vec!["/etc/etcd".into()],
        data_dir: Some("/var/lib/etcd".into()),
        kept: Vec::new(),
    };
    let labels = |dry| -> Vec<String> {
        take_off_steps(&plan, &settings(dry))
            .iter()
            .map(Step::label)
            .collect()
    };
    assert_eq!(
        labels(false),
        [
            "remove static pod manifests",
            "wait for the static pods to stop",
            "stop and disable units",
            "stop pods, remove runtime state",
            "etcd data dir /var/lib/etcd",
            "remove files and binaries",
            "remove empty directories",
            "systemd daemon-reload"
        ]
    );
    // A dry run waits for nothing and reloads nothing.
    assert_eq!(labels(true).len(), 6);
    let moved = take_off_steps(&plan, &settings(false))
        .into_iter()
        .find_map(|s| match s {
            Step::Lifecycle(LifecycleStep::EtcdData { aside, .. }) => Some(aside),
            _ => None,
        });
    assert_eq!(
        moved.as_deref(),
        Some("/var/lib/etcd.reset-20261127T101500Z")
    );
}
