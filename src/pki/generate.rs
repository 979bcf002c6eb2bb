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

/// Refuse a renewal that names a certificate this cluster does not have.
fn check_renewable(specs: &[CertSpec], mode: &Mode) -> Result<(), PkiError> {
    let Mode::Renew(names) = mode else {
        return Ok(());
    };
    let mut known: Vec<&str> = Vec::new();
    for spec in specs {
        if !known.contains(&spec.name) {
            known.push(spec.name);
        }
    }
    match names.iter().find(|n| !known.contains(&n.as_str())) {
        Some(unknown) => Err(PkiError::Refused(format!(
            "`{unknown}` is not a certificate of this cluster; renewable: all, {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// What [`Planner::decide`] found: the CAs that exist, the keys to make, the leaves to issue.
struct Decided<'s> {
    cas: BTreeMap<CaId, Authority>,
    jobs: Vec<Job>,
    to_issue: Vec<(&'s CertSpec, Action)>,
    /// The service-account key, when there is one.
    sa_key: Option<String>,
}

/// Bring the PKI dir of `inv` in line with the table (see [`Mode`]).
pub fn generate(inv: &Inventory, mode: &Mode, now: SystemTime) -> Result<GenerateReport, PkiError> {
    let profiles = Profiles::embedded()?;
    let specs = table::certificates(inv, &profiles)?;
    check_renewable(&specs, mode)?;
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
    let Decided {
        mut cas,
        jobs,
        to_issue,
        sa_key,
    } = p.decide(&specs, mode)?;
    let key_count = jobs.len() + to_issue.len();
    let mut keys = parallel::map(&vec![(); key_count], |()| {
        algorithm::generate(p.algorithm).map_err(PkiError::crypto("key generation"))
    })
    .into_iter();
    for job in &jobs {
        let key = keys.next().expect("one key per job")?;
        p.create(job, &key, &mut cas)?;
    }
    if let Some(sa) = &sa_key {
        p.service_account_public(sa)?;
    }
    let leaf_keys: Vec<KeyPair> = keys.collect::<Result<_, _>>()?;
    p.sign(&to_issue, &leaf_keys, &cas)?;
    p.host_copies(&specs)?;

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

impl Planner<'_> {
    /// Which CAs exist, which keys are missing, and which leaves to issue (and why); a leaf
    /// that is kept but whose kubeconfig no longer fits is rewritten here.
    fn decide<'s>(&mut self, specs: &'s [CertSpec], mode: &Mode) -> Result<Decided<'s>, PkiError> {
        let store = self.store;
        let mut cas: BTreeMap<CaId, Authority> = BTreeMap::new();
        let mut jobs = Vec::new();
        for id in CaId::ALL {
            match authority::load(store, id, self.now)? {
                Some(ca) => {
                    cas.insert(id, ca);
                    self.event(id.name().into(), Action::Kept);
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
        for spec in specs {
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
                (Mode::Generate, Some(ca)) => match self.judge(spec, ca) {
                    Ok(None) => self.event(spec.label(), Action::Kept),
                    Ok(Some(why)) => {
                        let text = store.read_text(&spec.stored(""))?.unwrap_or_default();
                        let embedded = kubeconfig::parse(&text)
                            .map_err(|e| PkiError::invalid(store.path(&spec.stored("")), e))?;
                        self.write_leaf(spec, ca, &embedded.cert_pem, &embedded.key_pem);
                        self.event(spec.label(), Action::Rewritten(why));
                    }
                    Err(why) if why.is_empty() => to_issue.push((spec, Action::Created)),
                    Err(why) => to_issue.push((spec, Action::Reissued(why))),
                },
            }
        }
        Ok(Decided {
            cas,
            jobs,
            to_issue,
            sa_key,
        })
    }

    /// A new CA (self-signed, files never replaced) or the service-account key pair.
    fn create(
        &mut self,
        job: &Job,
        key: &KeyPair,
        cas: &mut BTreeMap<CaId, Authority>,
    ) -> Result<(), PkiError> {
        let store = self.store;
        let key_pem = key.serialize_pem();
        match job {
            Job::Ca(id) => {
                let (cn, orgs, sans) = ca_subject_of(self.profiles, *id)?;
                let subject = Subject {
                    common_name: &cn,
                    organizations: &orgs,
                    sans: &sans,
                };
                let ca_validity = self.inv.pki.ca_validity.as_duration();
                let ca_usages = self.profiles.usages("ca")?;
                let cert = issue::self_signed_ca(&subject, &ca_usages, key, self.now, ca_validity)?;
                let (crt, keyfile) = authority::files(*id);
                self.batch.put_new(
                    store.path(&keyfile),
                    key_pem.clone().into_bytes(),
                    table::KEY_MODE,
                );
                self.batch.put_new(
                    store.path(&crt),
                    cert.clone().into_bytes(),
                    table::CERT_MODE,
                );
                self.overlay.insert(keyfile, key_pem.clone().into_bytes());
                self.overlay.insert(crt, cert.clone().into_bytes());
                cas.insert(*id, authority::from_pem_parts(store, *id, cert, &key_pem)?);
                self.event(id.name().into(), Action::Created);
            }
            Job::ServiceAccount => {
                self.put("sa.key".into(), key_pem.into_bytes(), table::KEY_MODE);
                self.put(
                    "sa.pub".into(),
                    key.public_key_pem().into_bytes(),
                    table::CERT_MODE,
                );
                self.event("sa".into(), Action::Created);
            }
        }
        Ok(())
    }

    /// sa.pub is derived from sa.key: restored when it is missing or does not match.
    fn service_account_public(&mut self, sa_key: &str) -> Result<(), PkiError> {
        let key = KeyPair::from_pem(sa_key).map_err(|_| {
            PkiError::invalid(
                self.store.path("sa.key"),
                "not a private key kinit can read",
            )
        })?;
        let public = key.public_key_pem();
        if self.store.read_text("sa.pub")?.as_deref() != Some(public.as_str()) {
            self.put("sa.pub".into(), public.into_bytes(), table::CERT_MODE);
            self.event(
                "sa".into(),
                Action::Rewritten("sa.pub restored from sa.key".into()),
            );
        } else {
            self.event("sa".into(), Action::Kept);
        }
        Ok(())
    }

    /// Sign every leaf to issue (in parallel) and write it with its key.
    fn sign(
        &mut self,
        to_issue: &[(&CertSpec, Action)],
        keys: &[KeyPair],
        cas: &BTreeMap<CaId, Authority>,
    ) -> Result<(), PkiError> {
        let signing: Vec<(&CertSpec, &KeyPair)> =
            to_issue.iter().map(|(spec, _)| *spec).zip(keys).collect();
        let (profiles, now, validity) = (self.profiles, self.now, self.cert_validity);
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
                validity,
            )
        });
        for (((spec, action), key), cert) in to_issue.iter().zip(keys).zip(signed) {
            let cert = cert?;
            self.write_leaf(spec, &cas[&spec.ca], &cert, &key.serialize_pem());
            self.event(spec.label(), action.clone());
        }
        Ok(())
    }

    /// Host trees: copies of the shared files, written only where they differ.
    fn host_copies(&mut self, specs: &[CertSpec]) -> Result<(), PkiError> {
        let store = self.store;
        for placement in table::placements(self.inv, specs) {
            let source = match self.overlay.get(&placement.from) {
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
                || !mode_is(store, &dest, placement.mode)
            {
                self.put(dest, source, placement.mode);
            }
        }
        Ok(())
    }
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
