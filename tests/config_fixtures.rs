//! Every malformed config in tests/fixtures/config/ must produce its own diagnostic at the right
//! place. Each fixture starts with `# expect: <code> at <line>:<column>` (one line per expected
//! problem); the full rendered diagnostics are pinned as insta snapshots.

use std::path::Path;

use kinit::config;
use kinit::ui::config_report::render_problems;

struct Expectation {
    code: String,
    line: usize,
    column: usize,
}

fn expectations(text: &str, file: &str) -> Vec<Expectation> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (code, at) = e
                .split_once(" at ")
                .unwrap_or_else(|| panic!("{file}: expectation `{e}` lacks `at L:C`"));
            let (line, column) = at.trim().split_once(':').expect("L:C");
            Expectation {
                code: code.trim().to_string(),
                line: line.parse().expect("line"),
                column: column.parse().expect("column"),
            }
        })
        .collect()
}

#[test]
fn every_fixture_reports_its_problem_in_place() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "the corpus has {} fixtures", files.len());

    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let shown = Path::new("fixtures").join(path.file_name().unwrap());
        let (_, report) = config::check(&shown, text.clone());
        let expected = expectations(&text, &name);
        assert!(!expected.is_empty(), "{name}: no `# expect:` line");
        for e in &expected {
            let found = report.problems.iter().any(|p| {
                p.code == e.code
                    && report
                        .location(p)
                        .is_some_and(|l| (l.line, l.column) == (e.line, e.column))
            });
            if !found {
                let actual: Vec<String> = report
                    .problems
                    .iter()
                    .map(|p| {
                        let l = report.location(p);
                        format!(
                            "{} at {}",
                            p.code,
                            l.map_or("?".into(), |l| format!("{}:{}", l.line, l.column))
                        )
                    })
                    .collect();
                failures.push(format!(
                    "{name}: expected {} at {}:{}, got [{}]",
                    e.code,
                    e.line,
                    e.column,
                    actual.join(", ")
                ));
            }
        }
        insta::assert_snapshot!(name, render_problems(&report, false));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
