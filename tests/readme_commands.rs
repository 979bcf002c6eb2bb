//! Every `kinit` command line in the READMEs' shell blocks parses: `kinit <its args> --help`
//! succeeds, so the quickstarts (English and Chinese) never show a command that does not exist.
//! `--help` goes before a `--`, so nothing after it (a remote command) is ever run.

use std::path::Path;
use std::process::Command;

/// The `kinit` invocations of a README's ```sh blocks: the words after `kinit` (or `.../kinit`).
fn invocations(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = t == "```sh";
            continue;
        }
        if !in_sh || t.starts_with('#') {
            continue;
        }
        let code = t.split(" #").next().unwrap_or("");
        for part in code
            .split("&&")
            .flat_map(|p| p.split(';'))
            .flat_map(|p| p.split('|'))
        {
            let Some(words) = shlex::split(part.trim()) else {
                panic!("unparsable shell line: {line}");
            };
            if let Some(at) = words
                .iter()
                .position(|w| w == "kinit" || w.ends_with("/kinit"))
            {
                // Up to a redirection: that is the shell's, not kinit's.
                let args = words[at + 1..]
                    .iter()
                    .take_while(|w| {
                        !w.starts_with('>') && !w.starts_with('<') && !w.starts_with("2>")
                    })
                    .cloned()
                    .collect();
                out.push(args);
            }
        }
    }
    out
}

#[test]
fn every_kinit_line_in_both_readmes_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for readme in ["README.md", "README.zh-CN.md"] {
        let text = std::fs::read_to_string(root.join(readme)).unwrap();
        let lines = invocations(&text);
        assert!(
            lines.len() >= 5,
            "{readme}: only {} kinit lines found",
            lines.len()
        );
        for args in lines {
            let mut with_help = args.clone();
            let at = with_help
                .iter()
                .position(|w| w == "--")
                .unwrap_or(with_help.len());
            with_help.insert(at, "--help".into());
            let out = Command::new(env!("CARGO_BIN_EXE_kinit"))
                .args(&with_help)
                .env_remove("KINIT_CONFIG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{readme}: `kinit {}` does not parse: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked}");
}

#[test]
fn the_chinese_quickstart_shows_the_same_two_top_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let first_block = |name: &str| {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let start = text.find("```sh\n").unwrap() + 6;
        let end = start + text[start..].find("```").unwrap();
        text[start..end]
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(first_block("README.md"), first_block("README.zh-CN.md"));
}
