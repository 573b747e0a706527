//! Native frames (PROTOCOL.md §7.1): the 12-byte header, [`Frame`], the
//! streaming [`FrameCodec`] for tokio-util's `Framed`, and [`decode_one`] for
//! a single buffer.
//!
//! ```text
//! 0..4  magic "IICP"   4 version   5 type   6 flags   7 reserved   8..12 length (u32 BE)
//! ```
//!
//! The length is compared with the codec's maximum before anything is
//! reserved for the payload. The reserved byte and unknown flag bits are
//! ignored; the version and type are handed up unchecked (version
//! negotiation and unknown types are the session's business).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::reason::CloseReason;

/// The four magic bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"IICP";
/// Header length in bytes (not the 11 of old prose, PROTOCOL.md §7.1).
pub const HEADER_LEN: usize = 12;
/// The framing version this SDK writes.
pub const FRAMING_VERSION: u8 = 1;
/// Default and upper bound of the payload size: 16 MiB.
pub const DEFAULT_MAX_FRAME_PAYLOAD: usize = 16 * 1024 * 1024;

/// While a frame is incomplete, the decoder reserves room for at most this
/// much of its missing payload at once, so that a peer announcing a large
/// frame and then stalling does not make us reserve the whole of it.
const MAX_EAGER_RESERVE: usize = 1024 * 1024;

/// Bits of the flags byte (header byte 6).
pub mod flags {
    /// The payload is gzip-compressed.
    pub const GZIP: u8 = 0x01;
    /// The frame is one fragment of a larger message.
    pub const FRAGMENT: u8 = 0x02;
    /// The payload is CX-encrypted (defined by the spec only).
    pub const CONF_ENCRYPTED: u8 = 0x04;
}

/// One native frame: header fields and the payload (CBOR, usually).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Framing version (header byte 4).
    pub version: u8,
    /// Message type (header byte 5), see [`super::kind`].
    pub kind: u8,
    /// Flag bits (header byte 6), see [`flags`]; unknown bits are kept as received.
    pub flags: u8,
    /// The payload, header excluded.
    pub payload: Bytes,
}

impl Frame {
    /// A frame of the current framing version with no flags.
    pub fn new(kind: u8, payload: impl Into<Bytes>) -> Self {
        Self {
            version: FRAMING_VERSION,
            kind,
            flags: 0,
            payload: payload.into(),
        }
    }
}

/// The fixed part of a frame, parsed from its first 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Framing version.
    pub version: u8,
    /// Message type.
    pub kind: u8,
    /// Flag bits.
    pub flags: u8,
    /// Payload length announced by the header.
    pub length: u32,
}

/// A frame that cannot be read or written. [`FrameError::reason`] gives the
/// PROTOCOL.md reason string to send in a CLOSE.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The first bytes are not `IICP`.
    #[error("invalid_magic: frame starts with {found:02x?}, expected \"IICP\"")]
    InvalidMagic {
        /// The bytes found where the magic belongs (up to four).
        found: Vec<u8>,
    },
    /// Fewer than 12 bytes were available for the header.
    #[error("truncated_header: {available} of {HEADER_LEN} header bytes")]
    TruncatedHeader {
        /// Bytes available.
        available: usize,
    },
    /// The payload ended before the length the header announced.
    #[error("truncated_payload: {available} of {expected} payload bytes")]
    TruncatedPayload {
        /// Payload length from the header.
        expected: usize,
        /// Payload bytes available.
        available: usize,
    },
    /// The payload is longer than the codec's maximum.
    #[error("frame_too_large: payload of {length} bytes, the maximum is {max}")]
    TooLarge {
        /// Announced (or, when encoding, actual) payload length.
        length: u64,
        /// The codec's maximum.
        max: usize,
    },
    /// Reading or writing the socket failed.
    #[error("transport I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The reason as PROTOCOL.md spells it. An I/O error has no wire reason
    /// of its own (the socket is gone); it reports `protocol_error`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidMagic { .. } => "invalid_magic",
            Self::TruncatedHeader { .. } => "truncated_header",
            Self::TruncatedPayload { .. } => "truncated_payload",
            Self::TooLarge { .. } => "frame_too_large",
            Self::Io(_) => "protocol_error",
        }
    }

    /// The reason as a [`CloseReason`], for the CLOSE frame.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::from(self.reason())
    }
}

impl FrameHeader {
    /// Parses and checks the header at the start of `buf`: the magic (as
    /// soon as any of it is there: `GET` fails at once), then the length
    /// against `max`. Fewer than 12 bytes with a matching start is
    /// `truncated_header`.
    pub fn parse(buf: &[u8], max: usize) -> Result<Self, FrameError> {
        let seen = buf.len().min(MAGIC.len());
        if buf[..seen] != MAGIC[..seen] {
            return Err(FrameError::InvalidMagic {
                found: buf[..seen].to_vec(),
            });
        }
        if buf.len() < HEADER_LEN {
            return Err(FrameError::TruncatedHeader {
                available: buf.len(),
            });
        }
        // Byte 7 is reserved and ignored on receive (vector
        // `reserved_byte_is_ignored_by_decoder`).
        let length = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if length as u64 > max as u64 {
            return Err(FrameError::TooLarge {
                length: length.into(),
                max,
            });
        }
        Ok(Self {
            version: buf[4],
            kind: buf[5],
            flags: buf[6],
            length,
        })
    }
}

/// Decodes the frame at the start of `buf` with the default maximum. Returns
/// the frame and the bytes it used; trailing bytes are left alone.
///
/// Unlike the streaming decoder, a short buffer is an error here
/// (`truncated_header` / `truncated_payload`).
pub fn decode_one(buf: &[u8]) -> Result<(Frame, usize), FrameError> {
    FrameCodec::new().decode_one(buf)
}

/// The native frame codec for tokio-util's `Framed`, `FramedRead` and
/// `FramedWrite`.
///
/// Decoding returns `Ok(None)` while a frame is incomplete; at end of stream,
/// leftover bytes become `truncated_header` or `truncated_payload`. Payloads
/// are split off the read buffer without copying.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_payload: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec accepting payloads up to [`DEFAULT_MAX_FRAME_PAYLOAD`] (16 MiB).
    pub fn new() -> Self {
        Self {
            max_payload: DEFAULT_MAX_FRAME_PAYLOAD,
        }
    }

    /// A codec with a lower payload maximum; values above 16 MiB are
    /// lowered to it, since peers never accept more.
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.min(DEFAULT_MAX_FRAME_PAYLOAD),
        }
    }

    /// The largest payload this codec reads or writes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// [`decode_one`] with this codec's maximum.
    pub fn decode_one(&self, buf: &[u8]) -> Result<(Frame, usize), FrameError> {
        let header = FrameHeader::parse(buf, self.max_payload)?;
        let expected = header.length as usize;
        let available = buf.len() - HEADER_LEN;
        if available < expected {
            return Err(FrameError::TruncatedPayload {
                expected,
                available,
            });
        }
        let consumed = HEADER_LEN + expected;
        let frame = Frame {
            version: header.version,
            kind: header.kind,
            flags: header.flags,
            payload: Bytes::copy_from_slice(&buf[HEADER_LEN..consumed]),
        };
        Ok((frame, consumed))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let header = match FrameHeader::parse(src, self.max_payload) {
            Ok(header) => header,
            Err(FrameError::TruncatedHeader { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = HEADER_LEN + header.length as usize;
        if src.len() < total {
            let missing = total - src.len();
            src.reserve(missing.min(MAX_EAGER_RESERVE));
            return Ok(None);
        }
        let mut whole = src.split_to(total);
        whole.advance(HEADER_LEN);
        Ok(Some(Frame {
            version: header.version,
            kind: header.kind,
            flags: header.flags,
            payload: whole.freeze(),
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            // A peer that stopped mid-frame: name where it stopped.
            None => Err(self
                .decode_one(src)
                .err()
                .unwrap_or(FrameError::TruncatedHeader {
                    available: src.len(),
                })),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(self.max_payload, &frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(self.max_payload, frame, dst)
    }
}

fn encode_frame(max: usize, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    let length = frame.payload.len();
    if length > max {
        return Err(FrameError::TooLarge {
            length: length as u64,
            max,
        });
    }
    dst.reserve(HEADER_LEN + length);
    dst.put_slice(&MAGIC);
    dst.put_u8(frame.version);
    dst.put_u8(frame.kind);
    dst.put_u8(frame.flags);
    dst.put_u8(0);
    // `max` is at most 16 MiB, so the length fits in a u32.
    dst.put_u32(length as u32);
    dst.put_slice(&frame.payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: u32) -> Vec<u8> {
        let mut h = b"IICP\x01\x05\x00\x00".to_vec();
        h.extend_from_slice(&length.to_be_bytes());
        h
    }

    #[test]
    fn the_length_is_refused_before_anything_is_reserved() {
        let mut codec = FrameCodec::with_max_payload(1024);
        let mut buf = BytesMut::from(&header(1025)[..]);
        let capacity = buf.capacity();
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(err.reason(), "frame_too_large");
        assert_eq!(buf.capacity(), capacity, "reserved for a refused frame");
        // u32::MAX against the default 16 MiB as well.
        let err = decode_one(&header(u32::MAX)).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { length, .. } if length == u32::MAX as u64));
    }

    #[test]
    fn an_incomplete_large_frame_reserves_at_most_one_chunk() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&header(16 * 1024 * 1024)[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= HEADER_LEN + MAX_EAGER_RESERVE);
        assert!(buf.capacity() < 4 * MAX_EAGER_RESERVE, "{}", buf.capacity());
    }

    #[test]
    fn bad_magic_is_seen_before_the_header_is_complete() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&b"GET"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap_err().reason(),
            "invalid_magic"
        );
        let mut buf = BytesMut::from(&b"II"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn max_payload_cannot_exceed_sixteen_mib() {
        let codec = FrameCodec::with_max_payload(usize::MAX);
        assert_eq!(codec.max_payload(), DEFAULT_MAX_FRAME_PAYLOAD);
    }

    #[test]
    fn the_encoder_refuses_payloads_over_its_maximum() {
        let mut codec = FrameCodec::with_max_payload(3);
        let mut dst = BytesMut::new();
        let err = codec
            .encode(Frame::new(0x05, vec![0u8; 4]), &mut dst)
            .unwrap_err();
        assert_eq!(err.reason(), "frame_too_large");
        assert!(dst.is_empty());
    }

    #[test]
    fn eof_inside_a_frame_names_where_it_stopped() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&b"IICP\x01\x09"[..]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(err.reason(), "truncated_header");
        let mut buf = BytesMut::from(&[header(3), vec![0xa1]].concat()[..]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(err.reason(), "truncated_payload");
        let mut empty = BytesMut::new();
        assert!(codec.decode_eof(&mut empty).unwrap().is_none());
    }
}
