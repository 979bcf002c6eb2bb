//! kinit: bootstrap a highly available Kubernetes control plane over SSH.
//!
//! The core (config, inventory, and later preflight rules, PKI, rendering, planning) is pure: data
//! in, data out. Effects live at the edges (SSH, the lab). Only `ui` and `commands` print.

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod components;
pub mod config;
pub mod drill;
pub mod engine;
pub mod etcd;
pub mod facts;
pub mod fanout;
pub mod fsutil;
pub mod host_paths;
pub mod inventory;
pub mod kube;
pub mod kubeconfig;
pub mod lab;
pub mod lifecycle;
pub mod pki;
pub mod planning;
pub mod preflight;
pub mod render;
pub mod selector;
pub mod ssh;
pub mod status;
pub mod ui;
