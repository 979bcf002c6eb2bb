//! `kinit certs generate` and `renew`: bring the PKI dir in line with the table. Valid existing
//! certificates are kept; only what the config change affects is re-issued; CAs are created when
//! missing and never replaced. Keys are generated in parallel, and every file lands in one batch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, PublicKeyData};
use serde::Serialize;

use super::authority::{self, Authority};
use super::issue::{self, Subject};
use super::profiles::Profiles;
use super::store::{Batch, Store};
use super::table::{self, CaId, CertSpec, Output};
use super::{PkiError, algorithm, inspect, kubeconfig, parallel};
use crate::config::KeyAlgorithm;
use crate::inventory::Inventory;

/// What to do with certificates that exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Create what is missing, re-issue what no longer fits the table, keep the rest.
    Generate,
    /// Re-issue these certificates (kubeadm names, e.g. `apiserver`, `admin.conf`) from the
    /// existing CAs, whatever their state; touch nothing else. Empty means all.
    Renew(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "kebab-case")]
pub enum Action {
    Created,
    Kept,
    Reissued(String),
    /// The certificate is kept; the file around it (a kubeconfig's server) is rewritten.
    Rewritten(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `ca`, `sa`, `apiserver (cp1)`, `admin.conf`.
    pub item: String,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateReport {
    pub dir: std::path::PathBuf,
    pub events: Vec<Event>,
    /// Files written, host copies included.
    pub files_written: usize,
    /// Host trees under `hosts/` for hosts no longer in the config (left in place).
    pub stale_hosts: Vec<String>,
}

impl GenerateReport {
    pub fn changed(&self) -> bool {
        self.files_written > 0
    }
}

/// Keys that are not for leaf certificates.
enum Job {
    Ca(CaId),
    ServiceAccount,
}

struct Planner<'a> {
    inv: &'a Inventory,
    profiles: &'a Profiles,
    store: &'a Store,
    algorithm: KeyAlgorithm,
    cert_validity: Duration,
    now: SystemTime,
    batch: Batch,
    /// What each store path will hold after the commit, for the host copies.
    overlay: BTreeMap<String, Vec<u8>>,
    events: Vec<Event>,
}

impl Planner<'_> {
    fn put(&mut self, rel: String, bytes: Vec<u8>, mode: u32) {
        self.batch.put(self.store.path(&rel), bytes.clone(), mode);
        self.overlay.insert(rel, bytes);
    }

    fn event(&mut self, item: String, action: Action) {
        self.events.push(Event { item, action });
    }

    fn subject(spec: &CertSpec) -> Subject<'_> {
        Subject {
            common_name: &spec.common_name,
            organizations: &spec.organizations,
            sans: &spec.sans,
        }
    }

    /// Decide for one existing certificate: `Ok(None)` keep as is, `Ok(Some(rewrite))` keep the
    /// certificate but rewrite the file, `Err(reason)` re-issue.
    fn judge(&self, spec: &CertSpec, ca: &Authority) -> Result<Option<String>, String> {
        let usages = self
            .profiles
            .usages(spec.profile)
            .map_err(|e| e.to_string())?;
        let (cert_pem, key_pem, rewrite) = match &spec.output {
            Output::Pair { .. } => {
                let cert = self
                    .store
                    .read_text(&spec.stored("crt"))
                    .map_err(|e| e.to_string())?;
                let key = self
                    .store
                    .read_text(&spec.stored("key"))
                    .map_err(|e| e.to_string())?;
                match (cert, key) {
                    (Some(c), Some(k)) => (c, k, None),
                    _ => return Err(String::new()),
                }
            }
            Output::Kubeconfig { server, .. } => {
                let Some(text) = self
                    .store
                    .read_text(&spec.stored(""))
                    .map_err(|e| e.to_string())?
                else {
                    return Err(String::new());
                };
                let embedded = kubeconfig::parse(&text)?;
                let rewrite = if embedded.server != *server {
                    Some(format!("server {} -> {server}", embedded.server))
                } else if embedded.ca_pem != ca.cert_pem {
                    Some("CA certificate updated".to_string())
                } else {
                    None
                };
                (embedded.cert_pem, embedded.key_pem, rewrite)
            }
        };
        let info = inspect::read(cert_pem.as_bytes(), Some(&ca.spki_der))?;
        let key_spki = KeyPair::from_pem(&key_pem)
            .ok()
            .map(|k| k.subject_public_key_info());
        match inspect::reissue_reason(
            &info,
            key_spki.as_deref(),
            &Self::subject(spec),
            &usages,
            self.algorithm,
            self.now,
        ) {
            Some(reason) => Err(reason),
            None => Ok(rewrite),
        }
    }

    fn write_leaf(&mut self, spec: &CertSpec, ca: &Authority, cert_pem: &str, key_pem: &str) {
        match &spec.output {
            Output::Pair { .. } => {
                self.put(
                    spec.stored("key"),
                    key_pem.as_bytes().to_vec(),
                    table::KEY_MODE,
                );
                self.put(
                    spec.stored("crt"),
                    cert_pem.as_bytes().to_vec(),
                    table::CERT_MODE,
                );
            }
            Output::Kubeconfig { server, .. } => {
                let yaml = kubeconfig::render(
                    &self.inv.name,
                    server,
                    &spec.common_name,
                    &ca.cert_pem,
                    cert_pem,
                    key_pem,
                );
                self.put(spec.stored(""), yaml.into_bytes(), table::KEY_MODE);
            }
        }
    }
}

fn ca_subject_of(
    profiles: &Profiles,
    id: CaId,
) -> Result<(String, Vec<String>, Vec<table::San>), PkiError> {
    let csr = profiles.csr(id.csr())?;
    Ok((
        csr.cn.clone(),
        csr.organizations(),
        csr.hosts.iter().map(|h| table::San::parse(h)).collect(),
    ))
}

/// Bring the PKI dir of `inv` in line with the table (see [`Mode`]).
pub fn generate(inv: &Inventory, mode: &Mode, now: SystemTime) -> Result<GenerateReport, PkiError> {
    let profiles = Profiles::embedded()?;
    let specs = table::certificates(inv, &profiles)?;
    if let Mode::Renew(names) = mode {
        let mut known: Vec<&str> = Vec::new();
        for spec in &specs {
            if !known.contains(&spec.name) {
                known.push(spec.name);
            }
        }
        if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(PkiError::Refused(format!(
                "`{unknown}` is not a certificate of this cluster; renewable: all, {}",
                known.join(", ")
            )));
        }
    }
    let store = Store::new(&inv.pki_dir);
    let mut p = Planner {
        inv,
        profiles: &profiles,
        store: &store,
        algorithm: inv.pki.key_algorithm,
        cert_validity: inv.pki.cert_validity.as_duration(),
        now,
        batch: Batch::default(),
        overlay: BTreeMap::new(),
        events: Vec::new(),
    };

    // Decide first, then generate every key in one pool (key generation is the slow part, and
    // one pool keeps both cores busy to the end), then sign.
    let mut cas: BTreeMap<CaId, Authority> = BTreeMap::new();
    let mut jobs = Vec::new();
    for id in CaId::ALL {
        match authority::load(&store, id, now)? {
            Some(ca) => {
                cas.insert(id, ca);
                p.event(id.name().into(), Action::Kept);
            }
            None if matches!(mode, Mode::Renew(_)) => {
                return Err(PkiError::Refused(format!(
                    "CA {id} does not exist in {}: run `kinit certs generate` first",
                    store.root().display()
                )));
            }
            None => jobs.push(Job::Ca(id)),
        }
    }
    let sa_key = store.read_text("sa.key")?;
    if sa_key.is_none() && matches!(mode, Mode::Generate) {
        jobs.push(Job::ServiceAccount);
    }
    let mut to_issue: Vec<(&CertSpec, Action)> = Vec::new();
    for spec in &specs {
        match (mode, cas.get(&spec.ca)) {
            (Mode::Renew(names), _) => {
                if names.is_empty() || names.contains(spec.name) {
                    to_issue.push((spec, Action::Reissued("renewal requested".into())));
                }
            }
            (Mode::Generate, None) => {
                let existing = match spec.output {
                    Output::Pair { .. } => spec.stored("crt"),
                    Output::Kubeconfig { .. } => spec.stored(""),
                };
                let action = if store.path(&existing).exists() {
                    Action::Reissued(format!("its CA {} is new", spec.ca))
                } else {
                    Action::Created
                };
                to_issue.push((spec, action));
            }
            (Mode::Generate, Some(ca)) => match p.judge(spec, ca) {
                Ok(None) => p.event(spec.label(), Action::Kept),
                Ok(Some(why)) => {
                    let embedded =
                        kubeconfig::parse(&store.read_text(&spec.stored(""))?.unwrap_or_default())
                            .map_err(|e| PkiError::invalid(store.path(&spec.stored("")), e))?;
                    p.write_leaf(spec, ca, &embedded.cert_pem, &embedded.key_pem);
                    p.event(spec.label(), Action::Rewritten(why));
                }
                Err(why) if why.is_empty() => to_issue.push((spec, Action::Created)),
                Err(why) => to_issue.push((spec, Action::Reissued(why))),
            },
        }
    }
    let key_count = jobs.len() + to_issue.len();
    let mut keys = parallel::map(&vec![(); key_count], |()| {
        algorithm::generate(p.algorithm).map_err(PkiError::crypto("key generation"))
    })
    .into_iter();

    let ca_validity = inv.pki.ca_validity.as_duration();
    let ca_usages = profiles.usages("ca")?;
    for job in &jobs {
        let key = keys.next().expect("one key per job")?;
        let key_pem = key.serialize_pem();
        match job {
            Job::Ca(id) => {
                let (cn, orgs, sans) = ca_subject_of(&profiles, *id)?;
                let subject = Subject {
                    common_name: &cn,
                    organizations: &orgs,
                    sans: &sans,
                };
                let cert = issue::self_signed_ca(&subject, &ca_usages, &key, now, ca_validity)?;
                let (crt, keyfile) = authority::files(*id);
                p.batch.put_new(
                    store.path(&keyfile),
                    key_pem.clone().into_bytes(),
                    table::KEY_MODE,
                );
                p.batch.put_new(
                    store.path(&crt),
                    cert.clone().into_bytes(),
                    table::CERT_MODE,
                );
                p.overlay.insert(keyfile, key_pem.clone().into_bytes());
                p.overlay.insert(crt, cert.clone().into_bytes());
                cas.insert(*id, authority::from_pem_parts(&store, *id, cert, &key_pem)?);
                p.event(id.name().into(), Action::Created);
            }
            Job::ServiceAccount => {
                p.put("sa.key".into(), key_pem.into_bytes(), table::KEY_MODE);
                p.put(
                    "sa.pub".into(),
                    key.public_key_pem().into_bytes(),
                    table::CERT_MODE,
                );
                p.event("sa".into(), Action::Created);
            }
        }
    }
    if let Some(sa) = &sa_key {
        // sa.pub is derived from sa.key: restore it if it is missing or does not match.
        let key = KeyPair::from_pem(sa).map_err(|_| {
            PkiError::invalid(store.path("sa.key"), "not a private key kinit can read")
        })?;
        let public = key.public_key_pem();
        if store.read_text("sa.pub")?.as_deref() != Some(public.as_str()) {
            p.put("sa.pub".into(), public.into_bytes(), table::CERT_MODE);
            p.event(
                "sa".into(),
                Action::Rewritten("sa.pub restored from sa.key".into()),
            );
        } else {
            p.event("sa".into(), Action::Kept);
        }
    }

    let leaf_keys: Vec<KeyPair> = keys.collect::<Result<_, _>>()?;
    let signing: Vec<(&CertSpec, &KeyPair)> = to_issue
        .iter()
        .map(|(spec, _)| *spec)
        .zip(&leaf_keys)
        .collect();
    let signed = parallel::map(&signing, |(spec, key)| -> Result<String, PkiError> {
        let ca = &cas[&spec.ca];
        let usages = profiles.usages(spec.profile)?;
        issue::signed_leaf(
            &Planner::subject(spec),
            &usages,
            key,
            &ca.issuer,
            ca.not_after,
            now,
            p.cert_validity,
        )
    });
    for (((spec, action), key), cert) in to_issue.iter().zip(&leaf_keys).zip(signed) {
        let cert = cert?;
        p.write_leaf(spec, &cas[&spec.ca], &cert, &key.serialize_pem());
        p.event(spec.label(), action.clone());
    }

    // Host trees: copies of the shared files, written only where they differ.
    for placement in table::placements(inv, &specs) {
        let source = match p.overlay.get(&placement.from) {
            Some(bytes) => bytes.clone(),
            None => store.read(&placement.from)?.ok_or_else(|| {
                PkiError::invalid(
                    store.path(&placement.from),
                    "missing (run `kinit certs generate`)",
                )
            })?,
        };
        let dest = format!("{}/{}", table::host_root(&placement.host), placement.to);
        if store.read(&dest)?.as_deref() != Some(source.as_slice())
            || !mode_is(&store, &dest, placement.mode)
        {
            p.put(dest, source, placement.mode);
        }
    }

    let files_written = p.overlay.len();
    let stale_hosts = stale_hosts(&store, inv);
    let Planner { batch, events, .. } = p;
    batch.commit(store.root())?;
    Ok(GenerateReport {
        dir: store.root().to_path_buf(),
        events,
        files_written,
        stale_hosts,
    })
}

fn mode_is(store: &Store, rel: &str, mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(store.path(rel)).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode)
}

fn stale_hosts(store: &Store, inv: &Inventory) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store.path("hosts")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| inv.host(name).is_none())
        .collect();
    out.sort();
    out
}
