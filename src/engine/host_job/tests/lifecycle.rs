//! Lifecycle steps in a host job: what they say, and a step the next ones rely on.

use super::*;

#[tokio::test]
async fn a_lifecycle_step_says_what_went_and_a_dry_run_takes_nothing() {
    let host = MemoryHost::default();
    for path in ["/etc/a", "/etc/b"] {
        host.write_file(&file(path, "x", &[])).await.unwrap();
    }
    host.take_log();
    let step = || {
        Step::Lifecycle(LifecycleStep::Files(vec![
            "/etc/a".into(),
            "/etc/gone".into(),
        ]))
    };
    let job = |dry_run| HostJob {
        phase: "hosts".into(),
        host: "cp1".into(),
        steps: vec![step()],
        dry_run,
        hold_restarts: false,
        dry_notes: DryNotes::default(),
        observer: Arc::new(Quiet),
    };
    let said = vec![StepOutcome::Lifecycle {
        actions: vec![HostAction::Remove("/etc/a".into())],
    }];
    assert_eq!(job(true).run(&host).await.unwrap(), said);
    assert!(host.take_log().is_empty(), "a dry run changed the host");
    assert_eq!(job(false).run(&host).await.unwrap(), said);
    assert_eq!(host.take_log(), ["remove /etc/a"]);
    assert_eq!(step().label(), "remove files and binaries");
    // A step the next ones rely on stops the job when it cannot be done.
    let relied_on = LifecycleStep::PrivateDir("/etc/b/scratch".into());
    let steps = vec![
        Step::Lifecycle(relied_on),
        Step::Lifecycle(LifecycleStep::Files(vec!["/etc/b".into()])),
    ];
    let stopped = HostJob {
        steps,
        ..job(false)
    }
    .run(&host)
    .await
    .unwrap_err();
    assert_eq!(stopped.step, "private dir /etc/b/scratch", "{stopped}");
    assert!(host.take_log().is_empty(), "the job went on");
}
