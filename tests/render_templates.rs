//! Template overrides (`--templates DIR`) and template errors that name the template and line.

mod support;

use kinit::render::{self, RenderError, TemplateSource, Templates};

fn render_cp1(templates: &Templates) -> Result<Vec<kinit::render::RenderedFile>, RenderError> {
    let inv = support::render::inventory("stacked");
    render::render_host(&inv, inv.host("cp1").unwrap(), templates)
}

#[test]
fn a_file_in_the_override_directory_replaces_the_embedded_template() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sysctl-kubernetes.conf.tera");
    std::fs::write(
        &path,
        "# site policy for {{ host.name }}\nvm.swappiness = 0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a template").unwrap();
    let templates = Templates::with_overrides(dir.path()).unwrap();
    assert_eq!(
        templates.source("sysctl-kubernetes.conf.tera"),
        Some(&TemplateSource::Override(path.clone()))
    );
    assert_eq!(templates.overridden().count(), 1);
    let files = render_cp1(&templates).unwrap();
    let sysctl = files
        .iter()
        .find(|f| f.path == kinit::host_paths::SYSCTL_CONF)
        .unwrap();
    assert_eq!(sysctl.content, "# site policy for cp1\nvm.swappiness = 0\n");
    // The others are still the embedded ones.
    let embedded = render_cp1(&Templates::embedded().unwrap()).unwrap();
    let haproxy = |fs: &[kinit::render::RenderedFile]| {
        fs.iter()
            .find(|f| f.path == kinit::host_paths::HAPROXY_CFG)
            .unwrap()
            .content
            .clone()
    };
    assert_eq!(haproxy(&files), haproxy(&embedded));
}

#[test]
fn an_undefined_value_is_an_error_naming_template_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("haproxy.cfg.tera"),
        "global\n    daemon\n    maxconn {{ cluster.endpoint.maxconn }}\n",
    )
    .unwrap();
    let templates = Templates::with_overrides(dir.path()).unwrap();
    let err = render_cp1(&templates).unwrap_err();
    let RenderError::Template(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.template, "haproxy.cfg.tera");
    assert_eq!(e.line, Some(3));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "template haproxy.cfg.tera ({}), line 3: ",
            dir.path().join("haproxy.cfg.tera").display()
        )),
        "{message}"
    );
    assert!(message.contains("maxconn"), "{message}");
}

#[test]
fn a_syntax_error_is_reported_when_the_templates_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chrony.conf.tera"),
        "# ok\n# ok\n{% for s in cluster.time_servers %}\nserver {{ s }}\n",
    )
    .unwrap();
    let err = Templates::with_overrides(dir.path())
        .err()
        .expect("an error");
    let RenderError::Template(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.template, "chrony.conf.tera");
    assert!(e.line.is_some_and(|l| l >= 3), "{err}");
}

#[test]
fn an_unknown_template_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("haproxy.conf.tera"), "x").unwrap();
    let err = Templates::with_overrides(dir.path())
        .err()
        .expect("an error");
    assert!(
        matches!(err, RenderError::UnknownTemplate { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("haproxy.cfg.tera"), "{err}");
}

#[test]
fn the_keepalived_vip_must_be_an_address() {
    // Validation refuses this config already (config::vip); render, fed an inventory built
    // another way, refuses it too rather than writing a keepalived.conf without a VIP.
    let mut inv = support::render::inventory("stacked");
    inv.endpoint.address = "api.example.com".into();
    let err = render::render_all(&inv, &Templates::embedded().unwrap()).unwrap_err();
    assert!(matches!(err, RenderError::Unsupported(_)), "{err:?}");
    assert!(
        err.to_string().contains("controlPlaneEndpoint.address"),
        "{err}"
    );
}
