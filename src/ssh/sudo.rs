//! Running commands as root from a non-root login: `sudo -n` when no password was given (so a
//! sudo that wants one fails at once instead of hanging), `sudo -k -S -p ''` with the password fed
//! on stdin otherwise (never on the command line, never logged).

use super::error::SshError;
use super::exec::{ExitStatus, RawCommand};
use super::session::Session;

/// How this session reaches root, found out once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SudoMode {
    /// The login is root already.
    Root,
    Passwordless,
    /// `-k` ignores cached credentials, so sudo always reads the password line we send and the
    /// line can never leak into the command's own stdin.
    WithPassword,
}

impl SudoMode {
    /// The words to put before a command that must run as root.
    pub fn prefix(self) -> &'static str {
        match self {
            SudoMode::Root => "",
            SudoMode::Passwordless => "sudo -n -- ",
            SudoMode::WithPassword => "sudo -k -S -p '' -- ",
        }
    }
}

impl Session {
    pub(crate) async fn sudo_mode(&self) -> Result<SudoMode, SshError> {
        self.sudo
            .get_or_try_init(|| async {
                if self.user == "root" {
                    return Ok(SudoMode::Root);
                }
                let probe = self
                    .run_raw(RawCommand::new("sudo -n true".into()), None)
                    .await?;
                if probe.status == ExitStatus::Code(0) {
                    return Ok(SudoMode::Passwordless);
                }
                let Some(password) = &self.sudo_password else {
                    return Err(SshError::SudoPasswordRequired {
                        host: self.host.clone(),
                        user: self.user.clone(),
                    });
                };
                let mut check = RawCommand::new(format!("{}true", SudoMode::WithPassword.prefix()));
                check.stdin_prefix = Some(format!("{}\n", password.expose()).into_bytes());
                let checked = self.run_raw(check, None).await?;
                if checked.status == ExitStatus::Code(0) {
                    Ok(SudoMode::WithPassword)
                } else {
                    Err(SshError::SudoPasswordRejected {
                        host: self.host.clone(),
                        user: self.user.clone(),
                    })
                }
            })
            .await
            .copied()
    }

    /// The password line sudo reads first, when this session's sudo needs one.
    pub(crate) fn sudo_stdin(&self, mode: SudoMode) -> Option<Vec<u8>> {
        match (mode, &self.sudo_password) {
            (SudoMode::WithPassword, Some(p)) => Some(format!("{}\n", p.expose()).into_bytes()),
            _ => None,
        }
    }
}
