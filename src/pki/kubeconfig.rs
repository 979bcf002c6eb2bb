//! kubeconfig files as kubeadm writes them: one cluster, one user named after the certificate's
//! CN, one context `<user>@<cluster>`, with the CA, certificate and key embedded.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub clusters: Vec<NamedCluster>,
    pub contexts: Vec<NamedContext>,
    pub current_context: String,
    #[serde(default)]
    pub preferences: serde_yaml::Mapping,
    pub users: Vec<NamedUser>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NamedCluster {
    pub cluster: Cluster,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub certificate_authority_data: String,
    pub server: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NamedContext {
    pub context: Context,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    pub client_certificate_data: String,
    pub client_key_data: String,
}

/// The YAML of a kubeconfig for `user` (the certificate's CN) on `cluster` at `server`.
pub fn render(
    cluster: &str,
    server: &str,
    user: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let context = format!("{user}@{cluster}");
    let doc = Kubeconfig {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            cluster: Cluster {
                certificate_authority_data: STANDARD.encode(ca_pem),
                server: server.into(),
            },
            name: cluster.into(),
        }],
        contexts: vec![NamedContext {
            context: Context {
                cluster: cluster.into(),
                user: user.into(),
            },
            name: context.clone(),
        }],
        current_context: context,
        preferences: serde_yaml::Mapping::new(),
        users: vec![NamedUser {
            name: user.into(),
            user: User {
                client_certificate_data: STANDARD.encode(cert_pem),
                client_key_data: STANDARD.encode(key_pem),
            },
        }],
    };
    serde_yaml::to_string(&doc).expect("a kubeconfig always serializes")
}

/// What kinit needs back from a kubeconfig it wrote.
pub struct Embedded {
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Read back the first cluster and user. Errors never quote the file's contents.
pub fn parse(yaml: &str) -> Result<Embedded, String> {
    let doc: Kubeconfig =
        serde_yaml::from_str(yaml).map_err(|_| "not a kubeconfig kinit wrote".to_string())?;
    let cluster = doc.clusters.first().ok_or("no cluster")?;
    let user = doc.users.first().ok_or("no user")?;
    let decode = |field: &str, b64: &str| -> Result<String, String> {
        STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(format!("{field} is not base64 PEM"))
    };
    Ok(Embedded {
        server: cluster.cluster.server.clone(),
        ca_pem: decode(
            "certificate-authority-data",
            &cluster.cluster.certificate_authority_data,
        )?,
        cert_pem: decode(
            "client-certificate-data",
            &user.user.client_certificate_data,
        )?,
        key_pem: decode("client-key-data", &user.user.client_key_data)?,
    })
}
