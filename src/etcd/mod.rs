//! An etcd v3 client for what kinit needs to know about a cluster: health, member status, the
//! member list, and a put/get to prove writes replicate. It speaks etcd's JSON gRPC gateway over
//! HTTPS with mutual TLS on the client port (etcd 3.4+), so no gRPC stack is pulled in.
//!
//! Library code: typed errors that name the endpoint, nothing printed, keys and values never in
//! errors or logs.

pub mod client;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod https;
pub mod snapshot_file;
pub mod tls;
pub mod version;
mod wire;

pub use client::{
    Member, MemberStatus, get, health, member_add, member_list, member_promote, member_remove,
    move_leader, put, status,
};
pub use endpoint::Endpoint;
pub use error::EtcdError;
pub use https::https_get;
pub use tls::ClientTls;
