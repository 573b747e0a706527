//! What the node's and the directory's `GET /metrics` share: the text
//! exposition of a `prometheus-client` registry, its content type, and the
//! label-value encoding of their closed-vocabulary label enums.

use prometheus_client::registry::Registry;
use std::fmt::Write as _;

/// The `Content-Type` of `GET /metrics` (Prometheus text 0.0.4).
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The text exposition of `registry`; a registry that cannot be encoded
/// (it cannot fail for the metric types used) gives one comment line.
pub(crate) fn encode(registry: &Registry, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    if prometheus_client::encoding::prometheus_text::encode(&mut out, registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# encoding failed");
    }
    out
}

/// Encodes a label enum as its `as_str()`.
macro_rules! label_value {
    ($t:ty) => {
        impl prometheus_client::encoding::EncodeLabelValue for $t {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}
pub(crate) use label_value;
