//! Asking the operator for a password or passphrase on the terminal, without echo.

use std::io::IsTerminal;

/// `None` when there is no terminal to ask on.
pub fn ask(prompt: &str) -> std::io::Result<Option<String>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password(prompt).map(Some)
}
