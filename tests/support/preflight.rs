//! Preflight rule tests' shared helpers: an inventory, the captured clean probe output made to
//! look like each of its hosts, one host's output edited into a fault, and the findings.

use std::collections::BTreeMap;
use std::path::Path;

use kinit::config::template::{InitShape, render};
use kinit::config::{self, Topology};
use kinit::facts::{ClockSkew, HostFacts};
use kinit::inventory::Inventory;
use kinit::preflight::{
    HostObservation, IgnoreSet, OperatorView, PreflightReport, Status, evaluate,
};

pub const CLEAN: &str = include_str!("../fixtures/probe/clean-node.txt");

pub fn inventory(topology: Topology, workers: u32) -> Inventory {
    let text = render(InitShape {
        topology,
        control_planes: 3,
        workers,
        etcd_hosts: 3,
    })
    .unwrap();
    let (cfg, report) = config::check(Path::new("c.yaml"), text);
    assert!(!report.has_errors());
    Inventory::from_config(&cfg.unwrap(), Path::new("/tmp"), None).unwrap()
}

/// The clean node's output made to look like host `i` of the inventory (own name, id, MAC, address).
pub fn node_output(inv: &Inventory, i: usize) -> String {
    let h = &inv.hosts[i];
    // Before `kinit up` nothing listens: every connect to another host is refused.
    let reach: String = kinit::components::connects_from(inv, h)
        .iter()
        .map(|(o, p)| {
            format!(
                "{a} {port} timeout\nbash: line 1: /dev/tcp/{a}/{port}: Connection refused\n",
                a = o.address,
                port = p.port
            )
        })
        .collect();
    let clean = CLEAN.replace("==kinit:reach==\n", &format!("==kinit:reach==\n{reach}"));
    clean
        .replace(
            "==kinit:hostname==\ncp1",
            &format!("==kinit:hostname==\n{}", h.name),
        )
        .replace(
            "6a1d2d0f8a2b4e0c9b5e3f1a2c4d6e81",
            &format!("6a1d2d0f8a2b4e0c9b5e3f1a2c4d6e{i:02}"),
        )
        .replace("2a:1b:3c:00:00:11", &format!("2a:1b:3c:00:00:{i:02}"))
        .replace("192.168.9.11/24", &format!("{}/24", h.address))
}

pub fn observe(outputs: Vec<String>, inv: &Inventory) -> BTreeMap<String, HostObservation> {
    inv.hosts
        .iter()
        .zip(outputs)
        .map(|(h, out)| {
            let facts = HostFacts::parse(&out).unwrap();
            (
                h.name.clone(),
                HostObservation::Reached {
                    facts: Box::new(facts),
                    clock_skew: Some(ClockSkew {
                        offset: 0.01,
                        uncertainty: 0.002,
                    }),
                },
            )
        })
        .collect()
}

pub fn run(inv: &Inventory, obs: &BTreeMap<String, HostObservation>) -> PreflightReport {
    evaluate(inv, obs, &OperatorView::default(), &IgnoreSet::default())
}

/// Outputs for every host of `inv`, with `edit` applied to host `target`'s.
pub fn with_fault(
    inv: &Inventory,
    target: usize,
    edit: impl Fn(String) -> String,
) -> BTreeMap<String, HostObservation> {
    let outputs = (0..inv.hosts.len())
        .map(|i| {
            if i == target {
                edit(node_output(inv, i))
            } else {
                node_output(inv, i)
            }
        })
        .collect();
    observe(outputs, inv)
}

pub fn failures(r: &PreflightReport) -> Vec<(String, String, String)> {
    r.findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| (f.host.clone(), f.check.clone(), f.message.clone()))
        .collect()
}

pub fn only_failure(r: &PreflightReport) -> (String, String, String) {
    let f = failures(r);
    assert_eq!(f.len(), 1, "expected exactly one failure, got {f:#?}");
    f.into_iter().next().unwrap()
}
