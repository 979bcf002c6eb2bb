//! Asking the operator to confirm a destructive command on the terminal.

use std::io::{BufRead, IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// stdin is not a terminal: nobody to ask.
    NoTerminal,
}

/// Show `plan` and `question` on stderr and read y/yes from stdin.
pub fn ask(plan: &str, question: &str) -> std::io::Result<Answer> {
    if !std::io::stdin().is_terminal() {
        return Ok(Answer::NoTerminal);
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{plan}{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        _ => Answer::No,
    })
}
