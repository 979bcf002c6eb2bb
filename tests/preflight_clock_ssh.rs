//! The probe's clock exchange over a real OpenSSH sshd on loopback, through sudo (see
//! tests/support): however late the probe starts, its clock reading is placed within the one
//! round trip after kinit's answer, and the true offset (zero: one machine) lies within the bound
//! the finding states.

mod support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kinit::facts::probe::{ProbeRequest, READY, script};
use kinit::facts::{HostFacts, ProbeTimes};
use kinit::ssh::{
    ExecOptions, Handshake, HostTarget, KeyRing, KnownHostsFile, Session, SshOptions,
};
use support::sshd::*;

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_probe_reads_its_clock_within_one_round_trip() {
    let s = ssh_setup();
    let target = HostTarget {
        name: "h1".into(),
        address: "127.0.0.1".into(),
        port: s.sshd.port,
        user: s.user.name.clone(),
        identity_files: vec![s.key.private.clone()],
    };
    let mut opts = SshOptions::new(
        Arc::new(KnownHostsFile::new(s.dir.path().join("known_hosts"))),
        Arc::new(KeyRing::new(None)),
    );
    opts.agent_socket = None;
    let session = Session::connect(&target, &opts).await.unwrap();
    let handshake = Handshake {
        marker: READY.as_bytes().to_vec(),
        reply: b"\n".to_vec(),
    };
    let exec = ExecOptions {
        sudo: true,
        ..Default::default()
    };
    // A host slow to start its probe (sudo and a shell under emulation take seconds).
    let command = format!("sleep 2\n{}", script(&ProbeRequest::default()).unwrap());
    let out = session
        .exec_with_handshake(&command, &exec, &handshake)
        .await
        .unwrap();
    let finished = SystemTime::now();
    assert!(out.success(), "{}", out.stderr_text());
    let facts = HostFacts::parse(&out.stdout_text()).unwrap();
    assert!(facts.clock_after_answer, "{}", out.stdout_text());
    let t = out.timing;
    let (replied, answered) = (t.replied.unwrap(), t.answered.unwrap());
    assert!(t.sent <= replied && replied <= answered && answered <= finished);
    assert!(
        secs(replied) - secs(t.sent) >= 2.0,
        "the answer waited for the marker"
    );

    let skew = facts
        .clock_skew(&ProbeTimes {
            sent: secs(t.sent),
            finished: secs(finished),
            exchange: Some((secs(replied), secs(answered))),
        })
        .unwrap();
    // One clock: the true offset is 0, and it must lie within the stated bound, which the late
    // start does not widen.
    assert!(skew.offset.abs() <= skew.uncertainty, "{skew:?}");
    assert!(skew.uncertainty < 0.5, "{skew:?}");

    // A command that never prints the marker gets no answer.
    let out = session
        .exec_with_handshake("echo done", &exec, &handshake)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "done\n");
    assert_eq!((out.timing.replied, out.timing.answered), (None, None));
}
