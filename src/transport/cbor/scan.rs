//! The allocation-free pre-pass over a CBOR payload: walks item headers with
//! ciborium-ll, skips string contents, and refuses nesting deeper than
//! `max_depth`, more than `max_items` items, and bytes after the one
//! top-level item.
//!
//! It uses an explicit stack (at most `max_depth` entries) instead of
//! recursion, so hostile nesting cannot exhaust the thread's stack.

use ciborium_ll::{Decoder, Header};

use super::CborLimits;
use crate::transport::message::MessageError;

/// Items an open container still expects; `None` for indefinite length
/// (ended by a break).
type Open = Option<u64>;

fn malformed(e: ciborium_ll::Error<std::io::Error>) -> MessageError {
    match e {
        ciborium_ll::Error::Io(_) => MessageError::Malformed("CBOR item ends early".into()),
        ciborium_ll::Error::Syntax(at) => {
            MessageError::Malformed(format!("invalid CBOR at byte {at}"))
        }
    }
}

/// Checks the shape of the single CBOR item in `bytes`, reading string
/// segments through `scratch` (any non-empty buffer).
pub(super) fn check(
    bytes: &[u8],
    limits: &CborLimits,
    scratch: &mut [u8],
) -> Result<(), MessageError> {
    let mut decoder = Decoder::from(bytes);
    let mut open: Vec<Open> = Vec::new();
    let mut items = 0usize;

    loop {
        let header = decoder.pull().map_err(malformed)?;
        items += 1;
        if items > limits.max_items {
            return Err(MessageError::TooManyItems {
                max: limits.max_items,
            });
        }
        let push = |open: &mut Vec<Open>, expect: Open| {
            if open.len() >= limits.max_depth {
                return Err(MessageError::TooDeep {
                    max: limits.max_depth,
                });
            }
            open.push(expect);
            Ok(())
        };
        let complete = match header {
            Header::Break => match open.pop() {
                // The indefinite container is now one whole item of its parent.
                Some(None) => true,
                _ => return Err(MessageError::Malformed("unexpected CBOR break".into())),
            },
            // A tag wraps the next item: one level holding one item.
            Header::Tag(_) => {
                push(&mut open, Some(1))?;
                false
            }
            Header::Bytes(len) => {
                let mut segments = decoder.bytes(len);
                while let Some(mut segment) = segments.pull().map_err(malformed)? {
                    while segment.pull(scratch).map_err(malformed)?.is_some() {}
                }
                true
            }
            Header::Text(len) => {
                let mut segments = decoder.text(len);
                while let Some(mut segment) = segments.pull().map_err(malformed)? {
                    while segment.pull(scratch).map_err(malformed)?.is_some() {}
                }
                true
            }
            Header::Array(Some(0)) | Header::Map(Some(0)) => true,
            Header::Array(Some(n)) => {
                push(&mut open, Some(n as u64))?;
                false
            }
            Header::Map(Some(n)) => {
                push(&mut open, Some((n as u64).saturating_mul(2)))?;
                false
            }
            Header::Array(None) | Header::Map(None) => {
                push(&mut open, None)?;
                false
            }
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {
                true
            }
        };
        if !complete {
            continue;
        }
        // One item is complete: count it against its container, closing every
        // definite container it fills.
        loop {
            match open.last_mut() {
                None => {
                    let end = decoder.offset();
                    if end != bytes.len() {
                        return Err(MessageError::TrailingBytes(bytes.len() - end));
                    }
                    return Ok(());
                }
                Some(Some(left)) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
                Some(None) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan with a small scratch buffer: strings longer than it are read
    /// in several pieces.
    fn check(bytes: &[u8], limits: &CborLimits) -> Result<(), MessageError> {
        super::check(bytes, limits, &mut [0; 7])
    }

    fn limits(max_depth: usize, max_items: usize) -> CborLimits {
        CborLimits {
            max_depth,
            max_items,
        }
    }

    #[test]
    fn accepts_nesting_up_to_the_limit_and_refuses_one_more() {
        // [[[…0…]]] with `depth` arrays.
        let nested = |depth: usize| [vec![0x81; depth], vec![0x00]].concat();
        check(&nested(4), &limits(4, 100)).unwrap();
        assert!(matches!(
            check(&nested(5), &limits(4, 100)),
            Err(MessageError::TooDeep { max: 4 })
        ));
        // Tags count as levels: 6(6(6(0))).
        assert!(matches!(
            check(&[0xc6, 0xc6, 0xc6, 0x00], &limits(2, 100)),
            Err(MessageError::TooDeep { .. })
        ));
    }

    #[test]
    fn counts_every_item() {
        // [1, 2, 3] is four items.
        check(&[0x83, 1, 2, 3], &limits(4, 4)).unwrap();
        assert!(matches!(
            check(&[0x83, 1, 2, 3], &limits(4, 3)),
            Err(MessageError::TooManyItems { max: 3 })
        ));
    }

    #[test]
    fn a_declared_length_alone_allocates_nothing_and_fails_cleanly() {
        // An array claiming 2^32 items, a map claiming 2^63 pairs, a byte
        // string claiming 4 GiB: all end early.
        for bytes in [
            &[0x9a, 0xff, 0xff, 0xff, 0xff, 0x00][..],
            &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00][..],
        ] {
            assert!(
                matches!(
                    check(bytes, &CborLimits::default()),
                    Err(MessageError::Malformed(_))
                ),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn indefinite_containers_and_segmented_strings_are_walked() {
        // [_ 1, (_ h'01', h'02'), {_ "a": 1}]
        let bytes = [
            0x9f, 0x01, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0xbf, 0x61, b'a', 0x01, 0xff, 0xff,
        ];
        check(&bytes, &CborLimits::default()).unwrap();
        // A break with nothing open, and a break closing a definite array.
        assert!(check(&[0xff], &CborLimits::default()).is_err());
        assert!(check(&[0x82, 0x01, 0xff], &CborLimits::default()).is_err());
    }

    #[test]
    fn refuses_trailing_bytes_and_empty_input() {
        assert!(matches!(
            check(&[0xa0, 0x00, 0x00], &CborLimits::default()),
            Err(MessageError::TrailingBytes(2))
        ));
        assert!(check(&[], &CborLimits::default()).is_err());
    }
}
