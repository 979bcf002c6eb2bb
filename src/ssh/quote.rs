//! Every value that goes into a remote command line goes through here.

use super::error::SshError;

/// `value` as one shell word (shlex 2 refuses NUL bytes, which no shell word can carry).
pub fn quote(value: &str) -> Result<String, SshError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| SshError::Unquotable {
            value: value.replace('\0', "\\0"),
        })
}

/// Several values as shell words joined by spaces.
pub fn join<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<String, SshError> {
    let words: Result<Vec<String>, SshError> = values.into_iter().map(quote).collect();
    Ok(words?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_split_back_unchanged() {
        for value in [
            "plain",
            "two words",
            "it's",
            "$(rm -rf /)",
            "a\"b`c",
            "",
            "ü\n\t*",
        ] {
            let quoted = quote(value).unwrap();
            assert_eq!(
                shlex::split(&quoted),
                Some(vec![value.to_string()]),
                "{quoted}"
            );
        }
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(quote("a\0b"), Err(SshError::Unquotable { .. })));
    }
}
