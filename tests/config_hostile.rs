//! Issue 16, section 1: a value that could break out of the file it is rendered into (a newline,
//! a quote, a NUL, white space, `..`) is refused by validation, field by field, with the error
//! at the value's line and column.

use std::path::Path;

use kinit::config::{self, ConfigReport};

/// A valid cluster with every field these cases touch; `{field}` placeholders are replaced.
const BASE: &str = r#"apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    address: 192.168.9.100
    loadBalancer: haproxy-keepalived
    interface: eth0
  etcd:
    dataDir: /var/lib/etcd
    snapshots:
      dir: /var/lib/etcd-snapshots
  pki:
    extraSANs: [api.example.com]
  ssh:
    user: root
    bastion:
      address: bastion.example.com
  timeSync:
    servers: [pool.ntp.org]
  hosts:
    - {name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}
    - {name: cp2, address: 192.168.9.12, roles: [control-plane, etcd]}
    - {name: cp3, address: 192.168.9.13, roles: [control-plane, etcd]}
"#;

/// `needle` (text of BASE) replaced by `value`, a YAML double-quoted scalar (escapes allowed).
fn with(needle: &str, value: &str) -> (String, usize, usize) {
    let offset = BASE
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in BASE"));
    let text = format!(
        "{}{value}{}",
        &BASE[..offset],
        &BASE[offset + needle.len()..]
    );
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (text, line, column)
}

fn check(text: String) -> ConfigReport {
    let (_, report) = config::check(Path::new("cluster.yaml"), text);
    report
}

#[test]
fn the_base_config_is_valid() {
    let report = check(BASE.to_string());
    let errors: Vec<_> = report.errors().collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Each field, each hostile value: one error, on that field, at the value's place.
#[test]
fn hostile_values_are_refused_at_their_line_and_column() {
    // (text in BASE, the field's path)
    let fields = [
        ("eth0", "spec.controlPlaneEndpoint.interface"),
        ("pool.ntp.org", "spec.timeSync.servers[0]"),
        ("/var/lib/etcd\n", "spec.etcd.dataDir"),
        ("/var/lib/etcd-snapshots", "spec.etcd.snapshots.dir"),
        ("api.example.com", "spec.pki.extraSANs[0]"),
        ("bastion.example.com", "spec.ssh.bastion.address"),
        ("user: root", "spec.ssh.user"),
        ("name: demo", "metadata.name"),
        ("name: cp1", "spec.hosts[0].name"),
    ];
    // Each breaks out of a line, a quoted string or a word in some file kinit renders.
    let values = [
        (
            "a newline",
            r#""x\nvrrp_script evil {""#,
            "config::control-character",
        ),
        (
            "a carriage return",
            r#""x\rcmdallow all""#,
            "config::control-character",
        ),
        ("a NUL", r#""x\0y""#, "config::control-character"),
        ("a tab", r#""x\ty""#, "config::control-character"),
        ("an escape", r#""x\ey""#, "config::control-character"),
        ("a double quote", r#""x\"y""#, ""),
        ("a single quote", r#""x'y""#, ""),
        ("a space", r#""x y""#, ""),
    ];
    for (needle, path) in fields {
        // For `key: value` needles, replace only the value.
        let (needle, value_prefix) = match needle.split_once(": ") {
            Some((key, v)) if !v.is_empty() => (needle, format!("{key}: ")),
            _ => (needle, String::new()),
        };
        let trailing = if needle.ends_with('\n') { "\n" } else { "" };
        for (what, value, code) in values {
            let (text, line, column) = with(needle, &format!("{value_prefix}{value}{trailing}"));
            let column = column + value_prefix.len();
            let report = check(text);
            let errors: Vec<_> = report.errors().collect();
            let on_field: Vec<_> = errors.iter().filter(|p| p.path == path).collect();
            assert_eq!(
                on_field.len(),
                1,
                "{path} with {what}: expected one error on the field, got {errors:#?}"
            );
            let problem = on_field[0];
            // The field's own rule names what it is; a field without one gets the general
            // control-character error.
            let _ = code;
            let at = report.location(problem).expect("located");
            assert_eq!(
                (at.line, at.column),
                (line, column),
                "{path} with {what}: {problem:?}"
            );
            // The message shows the value escaped, on one line.
            assert!(!problem.message.contains('\n'), "{}", problem.message);
        }
    }
}

#[test]
fn paths_on_the_hosts_are_absolute_and_normal() {
    for bad in [
        "var/lib/etcd",
        "/var/lib/../etc",
        "/var//lib/etcd",
        "/var/lib/etcd/",
        "/",
    ] {
        let (text, line, column) = with("/var/lib/etcd\n", &format!("{bad}\n"));
        let report = check(text);
        let problem = report
            .errors()
            .find(|p| p.path == "spec.etcd.dataDir")
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(problem.code, "config::etcd-data-dir");
        let at = report.location(problem).unwrap();
        assert_eq!((at.line, at.column), (line, column), "{bad}");
    }
}

#[test]
fn interfaces_sans_servers_and_the_external_endpoint_are_what_they_say() {
    let cases = [
        (
            "eth0",
            "eth0:1",
            "spec.controlPlaneEndpoint.interface",
            "config::interface",
        ),
        (
            "eth0",
            "averylonginterface0",
            "spec.controlPlaneEndpoint.interface",
            "config::interface",
        ),
        (
            "eth0",
            "eth/0",
            "spec.controlPlaneEndpoint.interface",
            "config::interface",
        ),
        (
            "pool.ntp.org",
            "ntp_server",
            "spec.timeSync.servers[0]",
            "config::time-server",
        ),
        (
            "api.example.com",
            "a.*.example.com",
            "spec.pki.extraSANs[0]",
            "config::san",
        ),
        (
            "api.example.com",
            "\"*.com\"",
            "spec.pki.extraSANs[0]",
            "config::san",
        ),
        (
            "bastion.example.com",
            "bast!on",
            "spec.ssh.bastion.address",
            "config::bastion",
        ),
        (
            "user: root",
            "user: -oProxyCommand=x",
            "spec.ssh.user",
            "config::ssh-user",
        ),
    ];
    for (needle, value, path, code) in cases {
        let (text, ..) = with(needle, value);
        let report = check(text);
        assert!(
            report.errors().any(|p| p.path == path && p.code == code),
            "{value}: {:#?}",
            report.problems
        );
    }
    // Wildcard SANs in the leftmost label are fine.
    let (text, ..) = with("api.example.com", "\"*.api.example.com\"");
    assert!(!check(text).has_errors());

    // The external load balancer's name is a DNS name or an IP.
    let external = BASE.replace("loadBalancer: haproxy-keepalived", "loadBalancer: external");
    let offset = external.find("192.168.9.100").unwrap();
    for (bad, code) in [
        ("lb_1.example.com", "config::endpoint-address"),
        ("\"lb.example.com\\nx\"", "config::endpoint-address"),
    ] {
        let text = external.replacen("192.168.9.100", bad, 1);
        let report = check(text);
        let problem = report
            .errors()
            .find(|p| p.path == "spec.controlPlaneEndpoint.address")
            .unwrap_or_else(|| panic!("{bad} accepted: {:#?}", report.problems));
        assert_eq!(problem.code, code);
        let at = report.location(problem).unwrap();
        assert_eq!(
            (at.line, at.column),
            (8, offset - external[..offset].rfind('\n').unwrap())
        );
    }
    let text = external.replacen("192.168.9.100", "lb.example.com", 1);
    assert!(!check(text).has_errors());
}

#[test]
fn a_control_character_in_any_other_string_field_is_refused() {
    for (field, path) in [
        ("  ssh:\n", "spec.ssh.knownHosts"),
        ("  ssh:\n", "spec.ssh.identityFile"),
        ("  pki:\n", "spec.pki.dir"),
    ] {
        let key = path.rsplit('.').next().unwrap();
        let text = BASE.replacen(field, &format!("{field}    {key}: \"x\\ny\"\n"), 1);
        let report = check(text);
        let problem = report
            .errors()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("{path}: {:#?}", report.problems));
        assert_eq!(problem.code, "config::control-character");
        let at = report.location(problem).unwrap();
        let line = BASE[..BASE.find(field).unwrap()].matches('\n').count() + 2;
        assert_eq!((at.line, at.column), (line, 5 + key.len() + 2), "{path}");
    }
}

#[test]
fn a_key_with_a_control_character_is_refused_at_the_key() {
    let text = BASE.replace(
        "  kubernetesVersion: v1.31.4\n",
        "  kubernetesVersion: v1.31.4\n  \"bad\\nkey\": 1\n",
    );
    let report = check(text);
    // Refused (an unknown field, here), located at the key, and shown escaped.
    let problem = report
        .errors()
        .find(|p| p.path.contains("bad"))
        .unwrap_or_else(|| panic!("{:#?}", report.problems));
    assert_eq!(report.location(problem).unwrap().line, 7);
    assert!(!problem.message.contains('\n'), "{}", problem.message);
}
