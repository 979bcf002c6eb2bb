//! `--hosts cp1,etcd`: host names and role names, comma separated, resolved against the inventory.

use crate::config::Role;
use crate::config::choice::Choice;
use crate::inventory::{Host, Inventory};

#[derive(Debug, thiserror::Error)]
#[error("--hosts: `{word}` is neither a host nor a role (hosts: {hosts}; roles: {roles})")]
pub struct UnknownSelector {
    word: String,
    hosts: String,
    roles: String,
}

/// The selected hosts in inventory order, each once. `None` or an empty selector selects all.
pub fn select<'a>(
    inventory: &'a Inventory,
    selector: Option<&str>,
) -> Result<Vec<&'a Host>, UnknownSelector> {
    let words: Vec<&str> = selector
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Ok(inventory.hosts.iter().collect());
    }
    let mut wanted = vec![false; inventory.hosts.len()];
    for word in words {
        let by_name = inventory.hosts.iter().position(|h| h.name == word);
        let role = Role::parse(word);
        match (by_name, role) {
            (Some(i), _) => wanted[i] = true,
            (None, Some(role)) => {
                for (i, h) in inventory.hosts.iter().enumerate() {
                    wanted[i] |= h.has(role);
                }
            }
            (None, None) => {
                return Err(UnknownSelector {
                    word: word.to_string(),
                    hosts: inventory
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    roles: Role::ALL
                        .iter()
                        .map(|(_, s)| *s)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(inventory
        .hosts
        .iter()
        .zip(wanted)
        .filter_map(|(h, w)| w.then_some(h))
        .collect())
}
