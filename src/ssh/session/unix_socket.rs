//! A request to a unix socket on the host, through the SSH connection itself (OpenSSH's
//! `direct-streamlocal` channel, what `ssh -L local:/path` uses): no program on the host is
//! needed to talk to, say, haproxy's admin socket, whose commands are lines of text. The
//! socket's permissions apply to the login user (root, or a member of its group).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Session;
use crate::ssh::SshError;

/// Answers longer than this are cut (haproxy's answers to commands are a few lines).
const MAX_ANSWER: usize = 1 << 20;

impl Session {
    /// Send `request` to the unix socket `socket` and read what comes back until the other
    /// side closes, all within `timeout`.
    pub async fn unix_socket_exchange(
        &self,
        socket: &str,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, SshError> {
        let fail = |reason: String| SshError::UnixSocket {
            host: self.host.clone(),
            socket: socket.to_string(),
            reason,
        };
        let work = async {
            let channel = self
                .handle
                .channel_open_direct_streamlocal(socket)
                .await
                .map_err(|e| fail(format!("the host refused to open it ({e})")))?;
            let mut stream = channel.into_stream();
            stream
                .write_all(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            stream.flush().await.map_err(|e| fail(e.to_string()))?;
            let mut answer = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if n == 0 || answer.len() >= MAX_ANSWER {
                    break;
                }
                answer.extend_from_slice(&chunk[..n]);
            }
            Ok(answer)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs_f32())))?
    }
}
