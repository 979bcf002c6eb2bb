//! The operator's `~/.ssh/config`, read for the keywords kinit uses: HostName, User, Port,
//! IdentityFile and ProxyJump. As in OpenSSH, the first value found for a keyword wins (except
//! IdentityFile, which accumulates), `Host` patterns may use `*`, `?` and `!`, and `Match` blocks
//! (which kinit does not evaluate) are skipped.

use std::path::{Path, PathBuf};

use super::known_hosts::pattern_list_matches;

#[derive(Debug, Default, Clone)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Default, Clone)]
struct Block {
    /// None for a `Match` block (never applies).
    patterns: Option<Vec<String>>,
    settings: Vec<(String, String)>,
}

/// What `~/.ssh/config` says about one host alias.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    /// `[user@]host[:port]`, the first hop only; `none` is dropped.
    pub proxy_jump: Option<String>,
}

impl SshConfig {
    /// `~/.ssh/config`, or an empty config when it does not exist.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SshConfig::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> Self {
        // Lines before the first Host apply to every host.
        let mut blocks = vec![Block {
            patterns: Some(vec!["*".into()]),
            settings: Vec::new(),
        }];
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = split_keyword(line);
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "host" => blocks.push(Block {
                    patterns: Some(value.split_whitespace().map(str::to_string).collect()),
                    settings: Vec::new(),
                }),
                "match" => blocks.push(Block::default()),
                _ => {
                    let value = value.trim().trim_matches('"').to_string();
                    blocks
                        .last_mut()
                        .expect("one block")
                        .settings
                        .push((key, value));
                }
            }
        }
        SshConfig { blocks }
    }

    /// The settings for `alias`, `~` expanded against `home`.
    pub fn resolve(&self, alias: &str, home: Option<&Path>) -> HostConfig {
        let mut out = HostConfig::default();
        let alias_lower = alias.to_ascii_lowercase();
        for block in &self.blocks {
            let Some(patterns) = &block.patterns else {
                continue;
            };
            if !pattern_list_matches(patterns, &alias_lower) {
                continue;
            }
            for (key, value) in &block.settings {
                match key.as_str() {
                    "hostname" if out.host_name.is_none() => {
                        out.host_name = Some(value.replace("%h", alias))
                    }
                    "user" if out.user.is_none() => out.user = Some(value.clone()),
                    "port" if out.port.is_none() => out.port = value.parse().ok(),
                    "identityfile" => out.identity_files.push(expand(value, home)),
                    // Whole, hops and all: cutting `a,b` to `a` would connect somewhere else
                    // than `ssh` does (the caller refuses what it cannot follow).
                    "proxyjump" if out.proxy_jump.is_none() => {
                        out.proxy_jump = Some(value.trim().to_string());
                    }
                    _ => {}
                }
            }
        }
        if out.proxy_jump.as_deref() == Some("none") {
            out.proxy_jump = None;
        }
        out
    }
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (key, rest)
}

fn expand(value: &str, home: Option<&Path>) -> PathBuf {
    match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => match (value.strip_prefix("%d/"), home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(value),
        },
    }
}

/// `[user@]host[:port]` from a ProxyJump value.
pub fn parse_jump(spec: &str) -> (Option<String>, String, Option<u16>) {
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    if let Some(inner) = rest.strip_prefix('[')
        && let Some((host, port)) = inner.split_once("]:")
    {
        return (user, host.to_string(), port.parse().ok());
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (user, host.to_string(), port.parse().ok()),
        _ => (user, rest.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_identities_accumulate() {
        let cfg = SshConfig::parse(
            "User global\n\
             Host cp* !cp9\n  HostName 10.0.0.%h\n  Port=2222\n  IdentityFile ~/.ssh/k1\n  ProxyJump ops@jump:2200,other\n\
             Match host x\n  User never\n\
             Host *\n  User late\n  IdentityFile /abs/k2\n",
        );
        let home = Path::new("/home/op");
        let cp1 = cfg.resolve("cp1", Some(home));
        assert_eq!(cp1.user.as_deref(), Some("global"));
        assert_eq!(cp1.port, Some(2222));
        assert_eq!(cp1.host_name.as_deref(), Some("10.0.0.cp1"));
        assert_eq!(
            cp1.identity_files,
            [PathBuf::from("/home/op/.ssh/k1"), PathBuf::from("/abs/k2")]
        );
        assert_eq!(cp1.proxy_jump.as_deref(), Some("ops@jump:2200,other"));
        let cp9 = cfg.resolve("cp9", Some(home));
        assert_eq!(cp9.port, None);
        assert_eq!(cp9.proxy_jump, None);
        assert_eq!(
            parse_jump("ops@jump:2200"),
            (Some("ops".into()), "jump".into(), Some(2200))
        );
        assert_eq!(parse_jump("jump"), (None, "jump".into(), None));
    }
}
