//! `spec.imageRepository`: the registry and path every static pod's image starts with.

use super::super::model::*;
use super::super::problem::ConfigProblem;
use super::text::{describe_char, shown};

/// `spec.imageRepository`: it becomes the start of every static pod's `image:`, so it is held to
/// what an image reference's registry and repository path may be.
pub(super) fn image_repository(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    if let Err(why) = check_image_repository(&spec.image_repository) {
        out.push(
            ConfigProblem::error(
                "config::image-repository",
                "spec.imageRepository",
                format!("`{}` {why}", shown(&spec.image_repository)),
            )
            .help(format!(
                "a registry host (optionally with :port) and path, without scheme or trailing `/`, \
                 e.g. {DEFAULT_IMAGE_REPOSITORY} or registry.aliyuncs.com/google_containers"
            )),
        );
    }
}

const MAX_IMAGE_REPOSITORY: usize = 255;

/// A registry and repository path as image references write them (the distribution reference
/// grammar, lowercase): `host[:port]` then `/`-separated path components. Host labels are
/// letters, digits and inner `-`; path components are letters and digits joined by `.`, `_`,
/// `__` or runs of `-`.
pub(super) fn check_image_repository(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains {}, which an image repository cannot",
            describe_char(c)
        ));
    }
    let n = s.chars().count();
    if n > MAX_IMAGE_REPOSITORY {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_IMAGE_REPOSITORY}"
        ));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "starts with the scheme `{scheme}://`; images are pulled by registry name alone"
        ));
    }
    if s.ends_with('/') {
        return Err("ends with `/`; the image names are appended after one".into());
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("has uppercase letters; image references are lowercase".into());
    }
    if let Some(c) = s.chars().find(|c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/' | ':'))
    }) {
        return Err(format!(
            "contains {}; only lowercase letters, digits, `.`, `-`, `_`, `/` and a `:port` \
             after the host are allowed",
            describe_char(c)
        ));
    }
    let (host_port, path) = match s.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if host.is_empty() {
        return Err("has no registry host".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!(
                "has an empty label in the registry host `{host}` (two dots, or a leading or \
                 trailing dot)"
            ));
        }
        if label.contains('_') {
            return Err(format!(
                "has `_` in the registry host `{host}`; host names cannot"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has a label starting or ending with `-` in the registry host `{host}`"
            ));
        }
    }
    if let Some(port) = port {
        if port.contains(':') {
            return Err("has more than one `:`; only the registry's port follows one".into());
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(format!(
                    "has `{port}` after the registry host's `:`, which is not a port (1-65535)"
                ));
            }
        }
    }
    let Some(path) = path else {
        return Ok(());
    };
    if path.contains(':') {
        return Err(
            "has `:` in the path; only the registry's port follows one (the tags are kinit's)"
                .into(),
        );
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err("has an empty path component (`//`)".into());
        }
        if let Err(why) = check_path_component(component) {
            return Err(format!("has the path component `{component}`, which {why}"));
        }
    }
    Ok(())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path_component(c: &str) -> Result<(), &'static str> {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let first = c.chars().next().is_some_and(alnum);
    let last = c.chars().next_back().is_some_and(alnum);
    if !first || !last {
        return Err("must start and end with a letter or digit");
    }
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i] as char) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i] as char) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return Err("joins letters and digits with something other than `.`, `_`, `__` or `-`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repositories() {
        for good in [
            "registry.k8s.io",
            "registry.aliyuncs.com/google_containers",
            "localhost:5000",
            "mirror.example.internal:5000/k8s/images",
            "10.0.0.5:443/kube-system",
            "harbor.corp/library/a__b.c-d---e",
            "myregistry",
            &format!("r.io/{}", "a".repeat(MAX_IMAGE_REPOSITORY - 5)),
        ] {
            assert_eq!(check_image_repository(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "https://registry.k8s.io",
            "registry.k8s.io/",
            "Registry.k8s.io",
            "registry.k8s.io/Google",
            "registry.k8s.io/x y",
            "registry.k8s.io\n",
            "registry.k8s.io\tx",
            "registry.k8s.io/a:b",
            "registry:5000:6000",
            "registry:http/x",
            "registry:0",
            "registry:99999",
            ":5000/x",
            "/x",
            "registry..k8s.io",
            ".registry.k8s.io",
            "reg_istry.io/x",
            "-registry.io",
            "registry.io//x",
            "registry.io/-x",
            "registry.io/x-",
            "registry.io/a._b",
            "registry.io/a___b",
            "registry.io/$(reboot)",
            "registry.io/x\"",
            "registry.io/ä",
            &format!("r.io/{}", "a".repeat(MAX_IMAGE_REPOSITORY - 4)),
        ] {
            assert!(check_image_repository(bad).is_err(), "{bad:?} accepted");
        }
    }
}
