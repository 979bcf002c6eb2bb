//! `spec.registries`: each becomes containerd's `certs.d/<name>/hosts.toml`, so its name is a
//! registry host (the directory's name), its mirrors are endpoints containerd can reach, and a
//! plain-HTTP endpoint is the operator's explicit choice (`insecure: true`).

use std::collections::HashMap;

use super::super::model::*;
use super::super::problem::ConfigProblem;
use super::image_repository::check_image_repository;
use super::text::shown;

pub(super) fn registries(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, reg) in spec.registries.iter().enumerate() {
        let p = format!("spec.registries[{i}]");
        if let Some(name) = &reg.name {
            if let Err(why) = check_registry_name(name) {
                out.push(
                    ConfigProblem::error("config::registry", format!("{p}.name"), format!("`{}` {why}", shown(name)))
                        .help("the registry as image references begin with it: a host and optional :port, e.g. registry.k8s.io or 10.0.0.5:5000"),
                );
            } else if let Some(first) = names.insert(name.clone(), i) {
                out.push(
                    ConfigProblem::error(
                        "config::duplicate-registry",
                        format!("{p}.name"),
                        format!("registry `{name}` is listed twice"),
                    )
                    .also(
                        format!("spec.registries[{first}].name"),
                        "first listed here",
                    )
                    .help("list each registry once, with all its mirrors"),
                );
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (j, mirror) in reg.mirrors.iter().enumerate() {
            let mp = format!("{p}.mirrors[{j}]");
            match check_mirror(mirror) {
                Err(why) => out.push(
                    ConfigProblem::error("config::registry-mirror", mp, format!("`{}` {why}", shown(mirror)))
                        .help("an endpoint with its scheme, e.g. https://mirror.internal:5000 or http://10.0.0.5:5000"),
                ),
                Ok(Scheme::Http) if !reg.insecure => out.push(
                    ConfigProblem::error(
                        "config::registry-insecure",
                        mp,
                        format!("`{mirror}` is plain HTTP, which images would cross unprotected"),
                    )
                    .help("use an https:// endpoint, or set `insecure: true` on this registry to allow plain HTTP"),
                ),
                Ok(_) if seen.contains(&mirror.as_str()) => out.push(
                    ConfigProblem::error(
                        "config::registry-mirror",
                        mp,
                        format!("`{mirror}` is listed twice"),
                    )
                    .help("list each mirror once; containerd tries them in order"),
                ),
                Ok(_) => {}
            }
            seen.push(mirror);
        }
        if let Some(ca) = &reg.ca_file
            && (ca.is_empty() || ca.chars().any(char::is_control))
        {
            out.push(
                ConfigProblem::error(
                    "config::registry-ca",
                    format!("{p}.caFile"),
                    format!("`{}` is not a file path", shown(ca)),
                )
                .help("a PEM file of CA certificates on this machine, relative to cluster.yaml"),
            );
        }
    }
}

#[derive(Debug, PartialEq)]
enum Scheme {
    Http,
    Https,
}

/// A registry host as a `certs.d` directory and image references name it: `host[:port]`.
fn check_registry_name(name: &str) -> Result<(), String> {
    if name.contains('/') {
        return Err(
            "has a `/`; name the registry's host (and port) only, without scheme or path".into(),
        );
    }
    check_image_repository(name)
}

/// `http(s)://host[:port][/path]`, the path written as image repositories write theirs.
fn check_mirror(url: &str) -> Result<Scheme, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err("does not start with https:// or http://".into());
    };
    check_image_repository(rest)?;
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_hosts_with_an_optional_port() {
        for good in [
            "registry.k8s.io",
            "10.0.0.5:5000",
            "localhost:5000",
            "docker.io",
        ] {
            assert_eq!(check_registry_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "registry.k8s.io/path",
            "https://registry.k8s.io",
            "a b",
            "x\ny",
            "x\"y",
            "x:0",
        ] {
            assert!(check_registry_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mirrors_carry_their_scheme() {
        assert_eq!(
            check_mirror("https://mirror.internal:5000"),
            Ok(Scheme::Https)
        );
        assert_eq!(check_mirror("http://10.0.0.5:5000/k8s"), Ok(Scheme::Http));
        for bad in [
            "mirror.internal:5000",
            "ftp://mirror",
            "https://",
            "https://mirror/",
            "https://mirror\"\n[host.\"x\"]",
            "https://mirror withspace",
            "https://mirror:5000:1",
        ] {
            assert!(check_mirror(bad).is_err(), "{bad:?} accepted");
        }
    }
}
