//! One attempt of a task on a node over HTTP: `POST {endpoint}/v1/task`,
//! its answer read within the response-size limit and judged.

use super::Inner;
use super::guard::refusal_in;
use super::judge::{Exchanged, Judged, judge_success_body};
use super::retry::{Verdict, retry_after_header, verdict_for};
use super::seal::Prepared;
use crate::error::IicpError;
use crate::outbound::{error_from_response, read_limited, transport_error};
use crate::secret::Secret;
use crate::wire::parse_error_body;
use reqwest::header::{CONTENT_TYPE, HeaderName};
use std::time::Duration;

/// Named once, not parsed from text on every request.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const CONSUMER_TOKEN: HeaderName = HeaderName::from_static("x-iicp-consumer-token");

/// Sends `prepared` to a node's `task_url` once, waiting at most `left`.
pub(super) async fn exchange(
    inner: &Inner,
    task_url: &reqwest::Url,
    prepared: &Prepared<'_>,
    consumer_token: Option<&Secret>,
    trace: &str,
    left: Duration,
    target: &str,
) -> Exchanged {
    let body = prepared.body().map_err(|e| Judged::new(Verdict::Fail, e))?;
    let mut request = inner
        .node_http
        .post(task_url.clone())
        .header(TRACEPARENT, trace)
        .header(CONTENT_TYPE, "application/json")
        .timeout(left)
        .body(body);
    if let Some(token) = consumer_token {
        request = request.header(CONSUMER_TOKEN, token.expose());
    }
    let resp = match request.send().await {
        Err(e) => {
            if let Some(refusal) = refusal_in(&e) {
                return Err(Judged::new(
                    Verdict::NextNode,
                    IicpError::Transport {
                        target: target.to_owned(),
                        reason: format!("endpoint refused: {refusal}"),
                    },
                ));
            }
            let verdict = if e.is_timeout() {
                Verdict::RetrySameNode
            } else {
                Verdict::NextNode
            };
            return Err(Judged::new(verdict, transport_error(target, &e, left)));
        }
        Ok(resp) => resp,
    };
    let status = resp.status().as_u16();
    let header_retry = retry_after_header(resp.headers());
    let limit = inner.options.max_response_bytes;
    let bytes = read_limited(resp, target, limit, left)
        .await
        .map_err(|e| Judged::new(Verdict::NextNode, e))?;
    if (200..300).contains(&status) {
        return judge_success_body(&bytes, target, prepared.sealed.as_ref());
    }
    let parsed = parse_error_body(&bytes);
    let body_retry = parsed
        .as_ref()
        .and_then(|p| p.retry_after_ms)
        .map(Duration::from_millis);
    Err(Judged {
        verdict: verdict_for(status, parsed.as_ref().map(|p| p.code.as_str())),
        error: error_from_response(status, &bytes),
        retry_after: header_retry.or(body_retry),
    })
}
