//! The streaming frame decoder (`FrameCodec` as `Framed` drives it) on
//! arbitrary bytes cut into arbitrary reads, every decoded frame through
//! `Message::from_frame`, and the one-buffer `decode_one` as an oracle: when
//! it reads a first frame, the stream must yield the same one.

#![no_main]

use bytes::BytesMut;
use iicp_client_fuzz::transport::{Frame, FrameCodec, Message};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size; the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(cut % 64) + 1;
    let mut codec = FrameCodec::with_max_payload(MAX);
    let mut buf = BytesMut::new();
    let mut first: Option<Frame> = None;
    let mut failed = false;
    'feed: for piece in stream.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let _ = Message::from_frame(&frame);
                    first.get_or_insert(frame);
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'feed;
                }
            }
        }
        // Nothing beyond the maximum frame is ever reserved.
        assert!(buf.capacity() <= 4 * (MAX + 12), "{}", buf.capacity());
    }
    if !failed {
        let _ = codec.decode_eof(&mut buf);
    }
    if let Ok((frame, used)) = codec.decode_one(stream) {
        assert!(used <= stream.len());
        assert_eq!(
            first.as_ref(),
            Some(&frame),
            "stream and decode_one disagree"
        );
    }
});
