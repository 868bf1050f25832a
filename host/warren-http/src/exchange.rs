//! One request on the wire: the grant checks of each hop, the hop loop and
//! the reqwest request of each hop.
//!
//! Guarantees: before anything is sent to a hop (the first URL or a
//! redirect target) its URL is checked against `http_client.request`, with
//! `tls.insecure_skip_verify` against `http_client.insecure_tls`, and an
//! IP-literal host against `http_client.private_ip`; a name is checked once
//! resolved, by the client's resolver. Option `unix_socket` is checked
//! first, as given (see [`crate::socket`]; its resolved path is checked
//! before the client is built). At most [`MAX_REDIRECTS`] redirects are
//! followed. Credentials leave with the first origin only.

use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::{Client, RequestBuilder};
use tokio::time::Instant;
use url::Url;
use warren_core::ProcError;
use warren_core::grants::{Grants, HTTP_INSECURE_TLS, HTTP_REQUEST};

use crate::Request;
use crate::error::{denied, from_reqwest, invalid, redact, unavailable};
use crate::redirect::{Hop, MAX_REDIRECTS, is_credential_header, next_hop};
use crate::resolve::AddressPolicy;
use crate::socket;
use crate::uri::encode_uri;

/// A request whose first URL passed every check, with the client to send it.
pub(crate) struct Prepared {
    pub(crate) url: Url,
    pub(crate) client: Client,
    pub(crate) policy: AddressPolicy,
    /// When the request's `timeout`, which began before its socket path
    /// was resolved, runs out.
    pub(crate) deadline: Instant,
}

/// `PERMISSION_DENIED` unless `req` may be sent to its first URL `url`;
/// and the policy of the caller holding `grants`.
pub(crate) fn check_first(
    req: &Request,
    url: &Url,
    grants: &Grants,
) -> Result<AddressPolicy, ProcError> {
    if let Some(path) = &req.unix_socket {
        socket::check_given(path, grants)?;
    }
    let policy = AddressPolicy::from_grants(grants);
    check_hop(req, url, grants, &policy)?;
    Ok(policy)
}

/// `PERMISSION_DENIED` unless `req` may go to `url` (a first URL or a hop).
fn check_hop(
    req: &Request,
    url: &Url,
    grants: &Grants,
    policy: &AddressPolicy,
) -> Result<(), ProcError> {
    if !grants.allows(HTTP_REQUEST, url.as_str()) {
        return Err(denied(format!(
            "http_client.request not granted for {}",
            redact(url)
        )));
    }
    let insecure = req.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
    if insecure && !grants.allows(HTTP_INSECURE_TLS, url.as_str()) {
        return Err(denied(format!(
            "http_client.insecure_tls not granted for {}",
            redact(url)
        )));
    }
    if req.unix_socket.is_none() {
        policy.check_url(url)?;
    }
    Ok(())
}

/// Sends `req`, following redirects; the final response (headers read,
/// body not) and its URL.
pub(crate) async fn exchange(
    p: &Prepared,
    req: &Request,
    grants: &Grants,
) -> Result<(reqwest::Response, Url), ProcError> {
    let mut hop = Hop::first(p.url.clone(), req.method()?);
    // One copy of the body for every hop (each took a copy of its own).
    let body = req.body.clone().map(bytes::Bytes::from);
    let mut redirects = 0;
    loop {
        let resp = build(&p.client, req, &hop, body.as_ref())?
            .send()
            .await
            .map_err(|e| from_reqwest(&e, &hop.url))?;
        let Some(next) = next_hop(&hop, &p.url, resp.status(), resp.headers()) else {
            return Ok((resp, hop.url));
        };
        drop(resp);
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(unavailable(format!(
                "too many redirects (more than {MAX_REDIRECTS}) from {}",
                redact(&p.url)
            )));
        }
        check_hop(req, &next.url, grants, &p.policy).map_err(|mut e| {
            e.message = format!("redirect from {}: {}", redact(&hop.url), e.message);
            e
        })?;
        hop = next;
    }
}

/// The reqwest request of `hop`.
fn build(
    client: &Client,
    req: &Request,
    hop: &Hop,
    body: Option<&bytes::Bytes>,
) -> Result<RequestBuilder, ProcError> {
    let mut url = hop.url.clone();
    if !hop.with_credentials {
        // reqwest would turn userinfo into an Authorization header.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let mut rb = client.request(hop.method.clone(), url);
    for (name, value) in &req.headers {
        let dropped = (!hop.with_credentials && is_credential_header(name))
            || (!hop.with_body && name.eq_ignore_ascii_case(CONTENT_TYPE.as_str()));
        if !dropped {
            rb = rb.header(name.as_str(), value.as_str());
        }
    }
    if hop.with_credentials {
        if !req.cookies.is_empty() {
            rb = rb.header(COOKIE, cookie_header(&req.cookies));
        }
        if let Some((user, pass)) = &req.auth {
            rb = rb.basic_auth(user, Some(pass));
        }
    }
    if hop.with_body {
        rb = with_body(rb, req, body)?;
    }
    Ok(rb)
}

fn cookie_header(cookies: &[(String, String)]) -> String {
    cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn with_body(
    rb: RequestBuilder,
    req: &Request,
    body: Option<&bytes::Bytes>,
) -> Result<RequestBuilder, ProcError> {
    if let Some(body) = body {
        return Ok(rb.body(body.clone()));
    }
    if !req.files.is_empty() {
        return Ok(rb.multipart(multipart(req)?));
    }
    if req.form.is_empty() {
        return Ok(rb);
    }
    let body = form_body(&req.form);
    let typed = req
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(CONTENT_TYPE.as_str()));
    let rb = if typed {
        rb
    } else {
        rb.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
    };
    Ok(rb.body(body))
}

/// `form` as an `application/x-www-form-urlencoded` body.
pub(crate) fn form_body(form: &[(String, String)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode_uri(k.as_bytes()), encode_uri(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&")
}

fn multipart(req: &Request) -> Result<reqwest::multipart::Form, ProcError> {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in &req.form {
        form = form.text(name.clone(), value.clone());
    }
    for file in &req.files {
        let content_type = file
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let mut part = reqwest::multipart::Part::bytes(file.content.clone())
            .mime_str(content_type)
            .map_err(|_| {
                invalid(format!(
                    "file {}: bad content_type",
                    crate::error::quoted(&file.name)
                ))
            })?;
        if let Some(filename) = &file.filename {
            part = part.file_name(filename.clone());
        }
        form = form.part(file.name.clone(), part);
    }
    Ok(form)
}
