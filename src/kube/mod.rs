//! The few Kubernetes API requests kinit makes itself, over the same HTTPS client it talks to
//! etcd with (rustls on aws-lc-rs, the cluster CA as the only trust root): whether an
//! apiserver is ready (`/readyz?verbose`, with the names of the failing checks), who holds the
//! controller-manager's and scheduler's leases, and the one RBAC object kinit's certificates
//! rely on (`kubeadm:cluster-admins`, the group of admin.conf's user).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::etcd::https::{Request, call};
use crate::etcd::tls::client_config;
use crate::etcd::{Endpoint, EtcdError};

pub mod coredns;
pub mod drain;
pub mod nodes;
pub mod rbac;

/// The group kubeadm (≥ 1.29) puts admin.conf's user in, bound to cluster-admin.
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";
/// The leases whose holder is the active instance of each leader-elected component.
pub const LEADER_LEASES: &[&str] = &["kube-controller-manager", "kube-scheduler"];

#[derive(Debug, thiserror::Error)]
pub enum KubeApiError {
    #[error("cannot read {}: {source}; run `kinit certs generate`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    #[error(transparent)]
    Http(#[from] EtcdError),
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected answer: {message}")]
    Decode { url: String, message: String },
    /// Ctrl-C or SIGTERM while the drain of `node` waited for its pods to go.
    #[error("interrupted while draining {node} (it stays cordoned until the run puts it back)")]
    Interrupted { node: String },
}

/// Credentials and a server to send requests to.
#[derive(Clone)]
pub struct ApiClient {
    config: Arc<rustls::ClientConfig>,
    server: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TLS config holds a private key: show only where it talks to.
        write!(f, "ApiClient {{ server: {} }}", self.server)
    }
}

impl ApiClient {
    /// The credentials of a kubeconfig kinit wrote into the PKI dir (`admin.conf`,
    /// `super-admin.conf`), talking to its own server.
    pub fn from_pki_kubeconfig(pki_dir: &Path, file: &str) -> Result<ApiClient, KubeApiError> {
        let path = pki_dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|source| KubeApiError::Read {
            path: path.clone(),
            source,
        })?;
        let kc = crate::pki::kubeconfig::parse(&text)
            .map_err(|message| KubeApiError::Kubeconfig { path, message })?;
        let config = client_config(
            kc.ca_pem.as_bytes(),
            Some((kc.cert_pem.as_bytes(), kc.key_pem.as_bytes())),
        )?;
        Ok(ApiClient {
            config: Arc::new(config),
            server: kc.server.trim_end_matches('/').to_string(),
        })
    }

    /// Anonymous requests (health endpoints), trusting only `ca_pem`.
    pub fn anonymous(ca_pem: &[u8], server: &str) -> Result<ApiClient, KubeApiError> {
        Ok(ApiClient {
            config: Arc::new(client_config(ca_pem, None)?),
            server: server.trim_end_matches('/').to_string(),
        })
    }

    /// The same credentials against another server (one apiserver instead of the endpoint).
    pub fn at(&self, server: &str) -> ApiClient {
        ApiClient {
            config: self.config.clone(),
            server: server.trim_end_matches('/').to_string(),
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// One request (a JSON body, if any); the status and body whatever the status.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), KubeApiError> {
        self.send_typed(method, path, body, crate::etcd::http::JSON, timeout)
            .await
    }

    /// One request whose body has `content_type`.
    pub async fn send_typed(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), KubeApiError> {
        let endpoint = Endpoint::parse(&self.server)?;
        let request = Request {
            method,
            path,
            body,
            content_type,
        };
        let r = call(self.config.clone(), &endpoint, None, request, timeout).await?;
        Ok((r.status, r.body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// GET `path` as JSON; a status other than 200 is an error carrying the API's message.
    pub async fn get_json(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, KubeApiError> {
        let (status, body) = self.send("GET", path, None, timeout).await?;
        if status != 200 {
            return Err(status_error(self.url(path), status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| KubeApiError::Decode {
            url: self.url(path),
            message: e.to_string(),
        })
    }
}

/// The API's own `message` (a Status object), else the start of the body.
pub(crate) fn status_error(url: String, status: u16, body: &[u8]) -> KubeApiError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string()
        });
    KubeApiError::Status {
        url,
        status,
        message,
    }
}

/// An apiserver's `/readyz?verbose`: ready, or the checks that fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The names of the failing checks (`etcd`, `poststarthook/rbac/bootstrap-roles`).
    pub failing: Vec<String>,
}

/// Ask `client`'s server whether it is ready.
pub async fn readyz(client: &ApiClient, timeout: Duration) -> Result<Readiness, KubeApiError> {
    let (status, body) = client.send("GET", "/readyz?verbose", None, timeout).await?;
    let text = String::from_utf8_lossy(&body);
    Ok(Readiness {
        ready: status == 200,
        failing: failing_checks(&text),
    })
}

/// The names of the `[-]name failed: ...` lines of a verbose health answer.
pub fn failing_checks(verbose: &str) -> Vec<String> {
    verbose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[-]"))
        .map(|rest| {
            rest.split_once(" failed")
                .map_or(rest, |(name, _)| name)
                .trim()
                .to_string()
        })
        .collect()
}

/// The release a server runs (`/version`'s gitVersion, readable without credentials).
pub async fn server_version(
    client: &ApiClient,
    timeout: Duration,
) -> Result<crate::bundle::version::Version, KubeApiError> {
    let v = client.get_json("/version", timeout).await?;
    let text = v.get("gitVersion").and_then(|g| g.as_str()).unwrap_or("");
    crate::bundle::version::Version::parse(text).ok_or_else(|| KubeApiError::Decode {
        url: client.url("/version"),
        message: format!("gitVersion {text:?} is not a release"),
    })
}

/// Who holds a kube-system lease (`None`: nobody, or the lease does not exist yet).
pub async fn lease_holder(
    client: &ApiClient,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, KubeApiError> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}");
    let (status, body) = client.send("GET", &path, None, timeout).await?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(status_error(client.url(&path), status, &body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| KubeApiError::Decode {
        url: client.url(&path),
        message: e.to_string(),
    })?;
    Ok(v.pointer("/spec/holderIdentity")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(|h| h.to_string()))
}

/// The host part of a lease holder's identity (`cp1_6c0f...` → `cp1`).
pub fn holder_host(identity: &str) -> &str {
    identity.split_once('_').map_or(identity, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_checks_are_named() {
        let text = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[-]poststarthook/rbac/bootstrap-roles failed: not finished\n[+]shutdown ok\nreadyz check failed\n";
        assert_eq!(
            failing_checks(text),
            vec!["etcd", "poststarthook/rbac/bootstrap-roles"]
        );
        assert!(failing_checks("[+]ping ok\nreadyz check passed\n").is_empty());
    }

    #[test]
    fn lease_holders_name_their_host() {
        assert_eq!(
            holder_host("cp2_0b6f4a9e-5d1c-4a4c-9e57-2b1d3c9f0a11"),
            "cp2"
        );
        assert_eq!(holder_host("cp3"), "cp3");
    }
}
