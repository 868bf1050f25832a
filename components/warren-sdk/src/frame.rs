//! Reads the frame `receive-frame` hands a message over in
//! (`wit/process.wit`): its topic, its sender's pid and its payloads, each
//! piece a little-endian `u32` length and its bytes, the payloads preceded
//! by their count. One list where a WIT `message` is four, so one call of
//! `cabi_realloc` by the host instead of four (each a call into this
//! component from outside, several hundred instructions).
//!
//! Guarantees: every length is checked against what is left of the frame
//! (a frame that lies is an `Internal` error naming the piece, never a
//! panic or a read past its end), and nothing is allocated for a count
//! before its pieces are read.

use crate::{Error, ErrorKind, Message};

/// Bytes of a piece's length.
const LEN: usize = 4;

/// What was wrong with a frame (made an [`Error`] once, at the end: a
/// `Result` carrying the full error from each small read cost the reads
/// more than the bytes they read).
#[derive(Clone, Copy)]
enum Bad {
    /// The frame ended before the length of this piece.
    Ends(&'static str),
    /// This piece's length runs past the frame.
    Past(&'static str, usize),
    /// This text piece is not UTF-8.
    NotText(&'static str),
    /// Bytes follow the last payload.
    Trailing,
}

/// The message in `frame`.
pub(crate) fn message(frame: &[u8]) -> Result<Message, Error> {
    read(frame).map_err(error)
}

/// [`message`], its error left as a [`Bad`].
fn read(frame: &[u8]) -> Result<Message, Bad> {
    let mut r = Reader { rest: frame };
    let topic = r.text("topic")?;
    let from = r.text("sender")?;
    let count = r.len("payload count")?;
    // No more payloads than the frame has lengths for: a count that lies
    // allocates nothing beyond the frame's own size.
    let mut payloads = Vec::with_capacity(count.min(r.rest.len() / LEN));
    for _ in 0..count {
        payloads.push(r.piece("payload")?.to_vec());
    }
    if !r.rest.is_empty() {
        return Err(Bad::Trailing);
    }
    Ok(Message {
        topic,
        from,
        payloads,
    })
}

/// What is left of a frame.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next length.
    #[inline]
    fn len(&mut self, what: &'static str) -> Result<usize, Bad> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<LEN>()
            .ok_or(Bad::Ends(what))?;
        self.rest = rest;
        // A u32 always fits a usize on the 32- and 64-bit targets the
        // SDK builds for; saturating keeps a 16-bit one honest (the
        // piece then runs past the frame).
        Ok(usize::try_from(u32::from_le_bytes(*head)).unwrap_or(usize::MAX))
    }

    /// The next piece.
    #[inline]
    fn piece(&mut self, what: &'static str) -> Result<&'a [u8], Bad> {
        let n = self.len(what)?;
        let (piece, rest) = self.rest.split_at_checked(n).ok_or(Bad::Past(what, n))?;
        self.rest = rest;
        Ok(piece)
    }

    /// The next piece, which is text. ASCII (every topic and pid in
    /// practice) is checked with `is_ascii`, a few instructions where
    /// `from_utf8` costs a hundred on a short string in WebAssembly.
    #[inline]
    fn text(&mut self, what: &'static str) -> Result<String, Bad> {
        let bytes = self.piece(what)?;
        if bytes.is_ascii() {
            // SAFETY: ASCII bytes are UTF-8.
            return Ok(unsafe { String::from_utf8_unchecked(bytes.to_vec()) });
        }
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Bad::NotText(what))
    }
}

/// The error of a frame that is not one.
#[cold]
fn error(bad: Bad) -> Error {
    let why = match bad {
        Bad::Ends(what) => format!("the frame ends before the {what}"),
        Bad::Past(what, n) => format!("a {what} of {n} bytes runs past the frame"),
        Bad::NotText(what) => format!("the {what} is not UTF-8"),
        Bad::Trailing => "bytes after the last payload".to_owned(),
    };
    Error::new(
        ErrorKind::Internal,
        format!("a malformed message frame: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_le_bytes());
        out.extend_from_slice(bytes);
    }

    fn frame(topic: &str, sender: &str, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        piece(&mut out, topic.as_bytes());
        piece(&mut out, sender.as_bytes());
        out.extend_from_slice(&u32::try_from(payloads.len()).unwrap().to_le_bytes());
        for p in payloads {
            piece(&mut out, p);
        }
        out
    }

    #[test]
    fn reads_topic_sender_and_payloads_in_order() {
        let m = message(&frame("put", "<1.7>", &[b"\x81\xa1k\xa1v", b"\xc0"])).unwrap();
        assert_eq!(m.topic, "put");
        assert_eq!(m.from, "<1.7>");
        assert_eq!(
            m.payloads,
            vec![b"\x81\xa1k\xa1v".to_vec(), b"\xc0".to_vec()]
        );
        let m = message(&frame("stop", "<1.7>", &[])).unwrap();
        assert!(m.payloads.is_empty());
    }

    #[test]
    fn a_frame_that_lies_is_an_error_not_a_panic() {
        let good = frame("put", "<1.7>", &[b"\x01\x02\x03"]);
        // Every cut of a good frame runs out somewhere.
        for cut in 0..good.len() {
            let e = message(&good[..cut]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Internal, "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(
            message(&long)
                .unwrap_err()
                .message
                .contains("after the last payload")
        );
        // A count of four billion payloads in a frame of a few bytes.
        let mut huge = frame("t", "s", &[]);
        let at = huge.len() - LEN;
        huge[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message(&huge).unwrap_err().message.contains("ends before"));
        let mut bad_bytes = frame("x", "s", &[]);
        bad_bytes[LEN] = 0xff;
        assert!(
            message(&bad_bytes)
                .unwrap_err()
                .message
                .contains("topic is not UTF-8")
        );
    }
}
