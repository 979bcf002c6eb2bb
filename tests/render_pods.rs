//! The rendered static pod manifests are Kubernetes Pods: no unknown fields, no wrong types.
//!
//! Method: YAML -> JSON value -> `k8s_openapi::api::core::v1::Pod` (the v1.31 API schema) -> JSON
//! value, then compare with the original. k8s-openapi's deserializers skip fields they do not know
//! and reject wrong types, so an unknown or misspelt field (the failure that matters: the kubelet
//! would ignore it too) disappears from the round trip and the comparison fails, naming it. A
//! plain `deserialize` would accept it silently; serde_ignored would catch unknown fields but not
//! values the schema normalizes. The last test shows the check catching a misspelt field.

mod support;

use k8s_openapi::api::core::v1::Pod;
use support::render::{EXAMPLES, rendered};

fn round_trip_differences(yaml: &str) -> Result<Vec<String>, String> {
    let original: serde_json::Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let pod: Pod = serde_json::from_value(original.clone()).map_err(|e| e.to_string())?;
    let again = serde_json::to_value(&pod).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    diff("", &original, &again, &mut diffs);
    Ok(diffs)
}

/// Paths where `a` (rendered) and `b` (re-serialized) differ.
fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}: not a field of the Pod schema")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: added by the schema"));
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {a} became {b}")),
    }
}

#[test]
fn static_pods_are_pods_without_unknown_fields() {
    let mut checked = 0;
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            for f in files
                .iter()
                .filter(|f| f.path.starts_with("/etc/kubernetes/manifests/"))
            {
                let diffs = round_trip_differences(&f.content)
                    .unwrap_or_else(|e| panic!("{example}/{host}{}: {e}", f.path));
                assert!(diffs.is_empty(), "{example}/{host}{}: {diffs:#?}", f.path);
                checked += 1;
            }
        }
    }
    // stacked and ipv6: 3 hosts x 4 pods (etcd static pod); external: none (its control
    // plane runs as systemd units, etcd under systemd).
    assert_eq!(checked, 12 + 12);
}

#[test]
fn the_check_catches_a_misspelt_field_and_a_wrong_type() {
    let (_, files) = rendered("stacked").remove(0);
    let scheduler = files
        .iter()
        .find(|f| f.path.ends_with("kube-scheduler.yaml"))
        .unwrap();
    let typo = scheduler.content.replace("livenessProbe:", "livenesProbe:");
    let diffs = round_trip_differences(&typo).unwrap();
    assert_eq!(
        diffs,
        vec![".spec.containers[0].livenesProbe: not a field of the Pod schema"]
    );
    let wrong_type = scheduler
        .content
        .replace("hostNetwork: true", "hostNetwork: [yes]");
    assert!(round_trip_differences(&wrong_type).is_err());
}
