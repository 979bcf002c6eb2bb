//! kinit: bootstrap a highly available Kubernetes control plane over SSH.
//!
//! The core (config, inventory, and later preflight rules, PKI, rendering, planning) is pure: data
//! in, data out. Effects live at the edges (SSH, the lab). Only `ui` and `commands` print.

pub mod cli;
pub mod commands;
pub mod config;
pub mod fsutil;
pub mod inventory;
pub mod pki;
pub mod ui;
