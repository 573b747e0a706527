//! `multipart/form-data` (RFC 7578) for the one upload route an engine has,
//! `/audio/transcriptions`: a file part and text parts. The field names and
//! the file name come from the consumer's payload, so a name that could end
//! its header line or its quoted string (`"`, `\`, control characters) is
//! refused rather than escaped; the boundary is random per request, so no
//! part can end the body early.

use super::error::BackendError;
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// A form being written.
pub(crate) struct Form {
    boundary: String,
    body: BytesMut,
}

impl Form {
    /// An empty form with a fresh random boundary.
    pub fn new() -> Self {
        Self {
            boundary: format!("iicp-{:032x}", rand::random::<u128>()),
            body: BytesMut::new(),
        }
    }

    fn head(&mut self, name: &str, filename: Option<&str>) -> Result<(), BackendError> {
        check("field name", name)?;
        self.body.put_slice(b"--");
        self.body.put_slice(self.boundary.as_bytes());
        self.body
            .put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        self.body.put_slice(name.as_bytes());
        self.body.put_slice(b"\"");
        if let Some(filename) = filename {
            check("file name", filename)?;
            self.body.put_slice(b"; filename=\"");
            self.body.put_slice(filename.as_bytes());
            self.body
                .put_slice(b"\"\r\nContent-Type: application/octet-stream");
        }
        self.body.put_slice(b"\r\n\r\n");
        Ok(())
    }

    /// A file part.
    pub fn file(mut self, name: &str, filename: &str, bytes: &[u8]) -> Result<Self, BackendError> {
        self.head(name, Some(filename))?;
        self.body.put_slice(bytes);
        self.body.put_slice(b"\r\n");
        Ok(self)
    }

    /// A text part.
    pub fn text(mut self, name: &str, value: &str) -> Result<Self, BackendError> {
        self.head(name, None)?;
        self.body.put_slice(value.as_bytes());
        self.body.put_slice(b"\r\n");
        Ok(self)
    }

    /// Its `Content-Type` and body.
    pub fn finish(mut self) -> (HeaderValue, Bytes) {
        self.body.put_slice(b"--");
        self.body.put_slice(self.boundary.as_bytes());
        self.body.put_slice(b"--\r\n");
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={}", self.boundary))
                .expect("the boundary is hex");
        (content_type, self.body.freeze())
    }
}

fn check(what: &str, name: &str) -> Result<(), BackendError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(BackendError::InvalidRequest(format!(
            "a transcription's {what} must be non-empty, without quotes, backslashes or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_framed_by_the_boundary_and_the_body_ends_with_it() {
        let form = Form::new()
            .file("file", "a.wav", b"RIFF\r\n--x")
            .unwrap()
            .text("model", "whisper")
            .unwrap();
        let boundary = form.boundary.clone();
        let (content_type, body) = form.finish();
        assert_eq!(
            content_type,
            format!("multipart/form-data; boundary={boundary}").as_str()
        );
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
             Content-Type: application/octet-stream\r\n\r\nRIFF\r\n--x\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n\
             --{boundary}--\r\n"
        );
        assert_eq!(body, expected.as_bytes());
        assert_ne!(Form::new().boundary, boundary, "a fresh boundary per form");
    }

    #[test]
    fn names_that_could_break_a_header_are_refused() {
        for bad in ["", "a\"b", "a\r\nX-Injected: 1", "a\\", "tab\tname"] {
            assert!(
                matches!(
                    Form::new().text(bad, "v"),
                    Err(BackendError::InvalidRequest(_))
                ),
                "{bad:?}"
            );
            assert!(
                matches!(
                    Form::new().file("file", bad, b""),
                    Err(BackendError::InvalidRequest(_))
                ),
                "{bad:?}"
            );
        }
        assert!(
            Form::new().text("language", "en\r\n\"quoted\"").is_ok(),
            "values are data"
        );
    }
}
