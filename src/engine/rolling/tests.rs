use super::*;

fn phase(name: &str) -> Phase {
    let book = crate::engine::playbook::load(None).unwrap();
    book.phases.into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn the_built_in_playbook_rolls_what_serves_the_cluster() {
    assert!(matches!(
        RollingPhase::of(&phase("etcd")),
        RollingPhase::Units
    ));
    assert!(matches!(
        RollingPhase::of(&phase("load-balancer")),
        RollingPhase::Units
    ));
    assert!(matches!(
        RollingPhase::of(&phase("control-plane")),
        RollingPhase::StaticPods(c) if c.id == ComponentId::ControlPlane
    ));
    assert!(matches!(
        RollingPhase::of(&phase("etcd-static-pod")),
        RollingPhase::StaticPods(c) if c.id == ComponentId::EtcdStaticPod
    ));
    assert!(matches!(
        RollingPhase::of(&phase("node")),
        RollingPhase::Units
    ));
    for other in ["time-sync", "certificates", "etcd-snapshots", "pki"] {
        assert!(
            matches!(RollingPhase::of(&phase(other)), RollingPhase::No),
            "{other}"
        );
    }
}
