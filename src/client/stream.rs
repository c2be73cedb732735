//! Reading `GET /v1/admin/state/stream` (Server-Sent Events) one state at a time.

use super::{ClientError, ClientResult};
use crate::wire::overview::StateResponse;

pub struct StateStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl StateStream {
    pub(super) fn new(resp: reqwest::Response) -> Self {
        Self { resp, buf: vec![] }
    }

    /// The next state; None when the server ended the stream (reconnect to go on).
    pub async fn next(&mut self) -> ClientResult<Option<StateResponse>> {
        loop {
            // events end with a blank line; comment lines (keep-alives) carry no data
            if let Some(end) = find_blank_line(&self.buf) {
                let event: Vec<u8> = self.buf.drain(..end.1).collect();
                let text = String::from_utf8_lossy(&event[..end.0]);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let state =
                    serde_json::from_str(&data.join("\n")).map_err(|e| ClientError::Decode {
                        url: self.resp.url().to_string(),
                        status: 200,
                        reason: e.to_string(),
                    })?;
                return Ok(Some(state));
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.resp.url().to_string(),
                        reason: super::error::transport_reason(&e),
                    })
                }
            }
        }
    }
}

/// (end of the event's text, end of the separator) of the first event in `buf`.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::find_blank_line;

    #[test]
    fn events_end_at_the_first_blank_line() {
        assert_eq!(find_blank_line(b"data: 1\n\ndata: 2\n\n"), Some((7, 9)));
        assert_eq!(find_blank_line(b"data: 1\r\n\r\n"), Some((7, 11)));
        assert_eq!(find_blank_line(b"data: 1\n"), None);
    }
}
