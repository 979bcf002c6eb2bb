//! Shared by the render tests: the example configs as inventories, rendered.

use std::path::{Path, PathBuf};

use kinit::inventory::Inventory;
use kinit::render::{self, RenderedFile, Templates};

pub const EXAMPLES: &[&str] = &["stacked", "external", "ipv6"];

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/render/{name}.yaml"))
}

pub fn inventory_from(path: &Path) -> Inventory {
    let loaded = kinit::config::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Inventory::from_config(&loaded.config, path.parent().unwrap(), None).unwrap()
}

pub fn inventory(example: &str) -> Inventory {
    inventory_from(&fixture(example))
}

/// Every host's files for an example, with the built-in templates.
pub fn rendered(example: &str) -> Vec<(String, Vec<RenderedFile>)> {
    render::render_all(&inventory(example), &Templates::embedded().unwrap()).unwrap()
}

/// `cp1` + `/etc/haproxy/haproxy.cfg` -> `cp1__etc_haproxy_haproxy.cfg`.
pub fn snapshot_name(example: &str, host: &str, path: &str) -> String {
    format!("{example}__{host}{}", path.replace('/', "_"))
}
