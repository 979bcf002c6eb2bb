//! The templates' second line of defence: filters that make one value one token of the file's
//! syntax, whatever it holds. Validation already refuses such values; these hold for a context
//! built some other way and for override templates, so that no value can add a line to a
//! rendered file.
//!
//! - `yaml(prefix="", suffix="")`: a YAML scalar (prefix + value + suffix): as written when it
//!   reads back as the same string, else double-quoted with escapes (never a raw line break).
//! - `word`: one word of a keepalived, haproxy, chrony or systemd file, or of a single-quoted
//!   shell string; a value with white space, control characters, quotes, backslashes or the
//!   comment and block characters of those files is refused (the render fails) rather than
//!   emitted.
//! - `unit_arg`: one argument of a systemd `ExecStart=` line: refused like `word` (white space,
//!   quotes, backslashes, `$`, `;` would split or expand it), with `%` doubled (systemd's
//!   specifier escape).
//! - `line`: text within one line (a comment, a unit's description): control characters refused.
//! - `toml`: a TOML basic string, quoted, every quote, backslash and control character escaped
//!   (JSON's escapes, which TOML shares).

use tera::{Kwargs, State, TeraResult};

pub(super) fn register(tera: &mut tera::Tera) {
    tera.register_filter("yaml", yaml);
    tera.register_filter("word", word);
    tera.register_filter("line", line);
    tera.register_filter("unit_arg", unit_arg);
    tera.register_filter("toml", toml);
}

fn toml(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    serde_json::to_string(value).map_err(|e| tera::Error::message(e.to_string()))
}

fn yaml(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let prefix = kwargs.get::<&str>("prefix")?.unwrap_or("");
    let suffix = kwargs.get::<&str>("suffix")?.unwrap_or("");
    Ok(yaml_scalar(&format!("{prefix}{value}{suffix}")))
}

fn word(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    check_word(value).map_err(tera::Error::message)?;
    Ok(value.to_string())
}

fn unit_arg(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    check_word(value).map_err(tera::Error::message)?;
    Ok(value.replace('%', "%%"))
}

fn line(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(tera::Error::message(format!(
            "refusing to render {value:?}: it holds the control character U+{:04X}, which would break the line",
            u32::from(c)
        )));
    }
    Ok(value.to_string())
}

/// `text` as a YAML scalar on one line: plain when YAML reads it back as this same string,
/// else a double-quoted scalar (JSON's escaping is valid YAML).
pub fn yaml_scalar(text: &str) -> String {
    let plain_chars = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '#' | '\'' | '"' | '\\' | '`'));
    if plain_chars
        && let Ok(serde_yaml::Value::String(back)) =
            serde_yaml::from_str::<serde_yaml::Value>(&format!("k: {text}\n"))
                .map(|v| v.get("k").cloned().unwrap_or_default())
        && back == text
    {
        return text.to_string();
    }
    serde_json::to_string(text).expect("a string always serializes")
}

/// What [`word`] refuses, with why.
pub fn check_word(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("refusing to render an empty word".into());
    }
    if let Some(c) = value.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\'' | '"' | '`' | '\\' | '#' | '!' | ';' | '{' | '}' | '$'
            )
    }) {
        return Err(format!(
            "refusing to render {value:?} as one word: it holds {c:?}, which could end the word or the line"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_stay_plain_when_safe_and_quote_otherwise() {
        for plain in [
            "/var/lib/etcd",
            "--data-dir=/var/lib/etcd",
            "cp1=https://10.0.0.1:2380,cp2=https://[fd00::2]:2380",
            "registry.k8s.io/etcd:3.5.24-0",
        ] {
            assert_eq!(yaml_scalar(plain), plain);
        }
        for (text, quoted) in [
            ("/x\nhostPID: true", r#""/x\nhostPID: true""#),
            ("a: b", r#""a: b""#),
            ("true", r#""true""#),
            ("x\0", r#""x\u0000""#),
            ("", r#""""#),
            ("# c", r##""# c""##),
        ] {
            let out = yaml_scalar(text);
            assert_eq!(out, quoted);
            let back: String = serde_yaml::from_str(&out).unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn words_refuse_separators() {
        assert!(check_word("eth0").is_ok());
        assert!(check_word("192.168.9.100/24").is_ok());
        for bad in [
            "",
            "a b",
            "eth0\nvrrp_script x {",
            "a\"b",
            "a'b",
            "a#b",
            "a}",
            "a\tb",
            "a;b",
        ] {
            assert!(check_word(bad).is_err(), "{bad:?} accepted");
        }
    }
}
