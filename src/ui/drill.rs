//! `kinit drill`: the plan shown before confirming, and the report as a short table or JSON.

use std::fmt::Write;
use std::time::Duration;

use crate::drill::{DrillKind, DrillReport, Target};

pub fn plan_text(kind: &DrillKind, target: &Target, duration: Duration) -> String {
    let noticed = match kind {
        DrillKind::Node(name) => {
            format!(" and the time until the control plane marks Node {name} NotReady")
        }
        _ => String::new(),
    };
    format!(
        "Drill {kind}: stop {} on {} for {} s, measuring requests through the VIP and etcd \
         writes meanwhile{noticed}; then start it again and wait until the cluster is healthy.\n",
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
        DrillKind::Node(_) => "Node Ready again after start",
    };
    let _ = writeln!(out);
    if let DrillKind::Node(_) = r.drill {
        let _ = writeln!(
            out,
            "  {:<28} {}",
            "Node NotReady after",
            ms(r.node_not_ready_after_ms)
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{DrillEvent, Placement};
    use crate::drill::series::LoopFigures;
    use crate::drill::{Thresholds, Verdict};

    fn report(pass: bool) -> DrillReport {
        DrillReport {
            cluster: "demo".into(),
            drill: DrillKind::EtcdLeader,
            target: Target {
                host: "cp1".into(),
                component: "etcd",
                unit: "etcd",
                no_block: true,
            },
            duration_ms: 4000,
            before: Placement::default(),
            during: Placement::default(),
            after: Placement::default(),
            unit_state_during: "inactive".into(),
            unit_state_after: "active".into(),
            recovered_after_ms: Some(812),
            node_not_ready_after_ms: None,
            healthy_after_ms: None,
            api: LoopFigures {
                requests: 120,
                failed: 2,
                longest_gap_ms: 310,
                first_error: None,
            },
            etcd_writes: LoopFigures::default(),
            thresholds: Thresholds {
                max_gap_ms: 6000,
                max_failed: Some(0),
                healthy_within_ms: 1000,
            },
            verdict: Verdict {
                pass,
                reasons: if pass {
                    vec![]
                } else {
                    vec!["2 requests failed (allowed: 0)".into()]
                },
            },
            interrupted: false,
            events: vec![DrillEvent {
                at_ms: 1001,
                what: "stopping etcd on cp1".into(),
            }],
        }
    }

    #[test]
    fn the_table_shows_the_figures_and_the_verdict_with_its_reasons() {
        let text = render_text(&report(false));
        assert!(text.contains("drill etcd-leader on cluster demo: stopped etcd on cp1 for 4 s"));
        assert!(text.contains("1001 ms  stopping etcd on cp1"), "{text}");
        let api = text
            .lines()
            .find(|l| l.contains("API through the VIP"))
            .unwrap();
        assert_eq!(
            api.split_whitespace().collect::<Vec<_>>()[4..],
            ["120", "2", "310", "ms"]
        );
        let line = |start: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap()
        };
        assert!(line("new leader after").ends_with(" 812 ms"), "{text}");
        assert!(line("healthy again at").ends_with(" -"), "{text}");
        assert!(text.contains("6000 ms, at most 0 failed"), "{text}");
        assert!(
            text.ends_with("FAIL\n  - 2 requests failed (allowed: 0)\n"),
            "{text}"
        );
        assert!(render_text(&report(true)).ends_with("PASS\n"));
        let json: serde_json::Value = serde_json::from_str(&render_json(&report(true))).unwrap();
        assert_eq!(json["verdict"]["pass"], true);
        assert_eq!(json["api"]["longestGapMs"], 310);
        assert_eq!(json["drill"]["kind"], "etcd-leader");
    }
}
