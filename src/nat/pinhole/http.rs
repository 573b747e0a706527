//! HTTP to the IGD over IPv6, bounded like `BoundedSoap`: one timeout for
//! the whole exchange, at most [`MAX_SOAP_BYTES`](super::super::MAX_SOAP_BYTES)
//! read, no redirects, no proxy. Requests leave from our own IPv6 address:
//! an IGD grants a pinhole only to the address that asks (with a temporary
//! privacy address as the kernel's choice of source, it would refuse).

use crate::nat::MAX_SOAP_BYTES;
use crate::nat::upnp::read_bounded;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// A client for one IGD, sending from `local`.
#[derive(Debug, Clone)]
pub(super) struct IgdHttp {
    client: reqwest::Client,
}

/// An answer: the status and the body as text.
pub(super) struct Answer {
    pub status: u16,
    pub body: String,
}

impl IgdHttp {
    /// A client whose requests leave from `local` and end after `timeout`.
    pub(super) fn new(local: Ipv6Addr, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .local_address(IpAddr::V6(local))
            .build()
            .map_err(|e| format!("no HTTP client: {}", crate::outbound::root_cause(&e)))?;
        Ok(Self { client })
    }

    /// GETs `url` (the device description).
    pub(super) async fn get(&self, url: &url::Url) -> Result<Answer, String> {
        read(self.client.get(url.clone()).send().await).await
    }

    /// POSTs the SOAP `body` for `action` (`"<service type>#<action>"`).
    pub(super) async fn soap(
        &self,
        url: &url::Url,
        action: &str,
        body: String,
    ) -> Result<Answer, String> {
        let sent = self
            .client
            .post(url.clone())
            .header("SOAPAction", format!("\"{action}\""))
            .header("Content-Type", "text/xml; charset=\"utf-8\"")
            .body(body)
            .send()
            .await;
        read(sent).await
    }
}

async fn read(sent: reqwest::Result<reqwest::Response>) -> Result<Answer, String> {
    let resp = sent.map_err(|e| {
        if e.is_timeout() {
            "the IGD did not answer in time".to_owned()
        } else {
            format!(
                "the IGD did not answer: {}",
                crate::outbound::root_cause(&e)
            )
        }
    })?;
    let status = resp.status().as_u16();
    let body = read_bounded(resp, MAX_SOAP_BYTES)
        .await
        .map_err(|why| format!("the IGD's answer {why}"))?;
    let body = String::from_utf8(body).map_err(|_| "the IGD's answer is not UTF-8".to_owned())?;
    Ok(Answer { status, body })
}
