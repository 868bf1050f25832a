//! A response body read piece by piece (option `stream`).
//!
//! Guarantees: each [`BodyStream::read`] waits at most the request's
//! timeout (`TIMEOUT` otherwise); the bytes read in total never pass the
//! request's `max_response_body` (`INVALID` with details `limit`, and the
//! connection is dropped); [`BodyStream::close`], or dropping the stream,
//! drops the connection at once.

use url::Url;
use warren_core::ProcError;

use crate::error::{body_too_large, from_reqwest, invalid, redact, timeout};

/// The body of a streamed response.
#[derive(Debug)]
pub struct BodyStream {
    state: State,
    /// Bytes received but not yet read, from `pos` on.
    pending: Vec<u8>,
    pos: usize,
    /// Bytes received so far.
    total: u64,
    limit: u64,
    read_timeout: std::time::Duration,
    url: Url,
}

#[derive(Debug)]
enum State {
    Open(reqwest::Response),
    Ended,
    Closed,
}

impl BodyStream {
    pub(crate) fn new(
        resp: reqwest::Response,
        url: Url,
        limit: u64,
        read_timeout: std::time::Duration,
    ) -> BodyStream {
        BodyStream {
            state: State::Open(resp),
            pending: Vec::new(),
            pos: 0,
            total: 0,
            limit,
            read_timeout,
            url,
        }
    }

    /// The next piece of the body, at most `max` bytes (`0`: all that is
    /// available, waiting for some if none is); `None` at the end. After
    /// [`BodyStream::close`] or a failure, `INVALID` "stream is closed".
    pub async fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, ProcError> {
        loop {
            if self.pos < self.pending.len() {
                return Ok(Some(self.take(max)));
            }
            let resp = match &mut self.state {
                State::Open(resp) => resp,
                State::Ended => return Ok(None),
                State::Closed => return Err(invalid("stream is closed")),
            };
            let chunk = match tokio::time::timeout(self.read_timeout, resp.chunk()).await {
                Err(_) => Err(timeout(format!(
                    "reading the body of {} timed out after {:?}",
                    redact(&self.url),
                    self.read_timeout
                ))),
                Ok(Err(e)) => Err(from_reqwest(&e, &self.url)),
                Ok(Ok(chunk)) => Ok(chunk),
            };
            match chunk {
                Ok(Some(bytes)) => self.receive(&bytes)?,
                Ok(None) => self.state = State::Ended,
                Err(e) => {
                    self.close();
                    return Err(e);
                }
            }
        }
    }

    /// Drops the connection; later reads fail. Idempotent.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.pending = Vec::new();
        self.pos = 0;
    }

    /// Stores a received chunk, within the limit.
    fn receive(&mut self, bytes: &[u8]) -> Result<(), ProcError> {
        let total = self.total.saturating_add(bytes.len() as u64);
        if total > self.limit {
            self.close();
            return Err(body_too_large(&self.url, self.limit));
        }
        self.total = total;
        self.pending.clear();
        self.pos = 0;
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn take(&mut self, max: usize) -> Vec<u8> {
        let available = self.pending.len() - self.pos;
        let n = if max == 0 {
            available
        } else {
            max.min(available)
        };
        let out = self.pending[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }
}
