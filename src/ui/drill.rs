//! `kinit drill`: the plan shown before confirming, and the report as a short table or JSON.

use std::fmt::Write;
use std::time::Duration;

use crate::drill::{DrillKind, DrillReport, Target};

pub fn plan_text(kind: &DrillKind, target: &Target, duration: Duration) -> String {
    format!(
        "Drill {kind}: stop {} on {} for {} s, measuring requests through the VIP and etcd \
         writes meanwhile; then start it again and wait until the cluster is healthy.\n",
        target.unit,
        target.host,
        duration.as_secs()
    )
}

pub fn render_json(report: &DrillReport) -> String {
    serde_json::to_string_pretty(report).expect("serializable")
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"))
}

pub fn render_text(r: &DrillReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "drill {} on cluster {}: stopped {} on {} for {} s",
        r.drill,
        r.cluster,
        r.target.unit,
        r.target.host,
        r.duration_ms / 1000
    );
    for e in &r.events {
        let _ = writeln!(out, "  {:>7} ms  {}", e.at_ms, e.what);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<28} {:>10} {:>8} {:>16}",
        "", "requests", "failed", "longest gap"
    );
    for (name, f) in [
        ("API through the VIP", &r.api),
        ("etcd writes", &r.etcd_writes),
    ] {
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>8} {:>13} ms",
            name, f.requests, f.failed, f.longest_gap_ms
        );
    }
    let recovered = match r.drill {
        DrillKind::VipHolder => "VIP moved after",
        DrillKind::EtcdLeader => "new leader after",
        DrillKind::Apiserver(_) => "API answered again after",
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "  {recovered:<28} {}", ms(r.recovered_after_ms));
    let _ = writeln!(
        out,
        "  {:<28} {}",
        "healthy again at",
        ms(r.healthy_after_ms)
    );
    let _ = writeln!(
        out,
        "  {:<28} {} ms{}",
        "allowed gap",
        r.thresholds.max_gap_ms,
        r.thresholds
            .max_failed
            .map(|n| format!(", at most {n} failed"))
            .unwrap_or_default()
    );
    let _ = writeln!(out);
    if r.verdict.pass {
        let _ = writeln!(out, "PASS");
    } else {
        let _ = writeln!(out, "FAIL");
        for reason in &r.verdict.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
    }
    out
}
