//! The host functions behind the `http_client` module
//! (modules/http_client.lua).
//!
//! Options are read raw from the caller's table (no metamethod runs), each
//! map bounded by [`MAX_OPTION_ENTRIES`]; the request is checked against
//! the caller's grants by warren-http before any connection. A streamed
//! body is a handle in the caller's table.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, LuaString, MultiValue, Table, Value as LuaValue};
use warren_core::{CoreRef, ErrorKind, Handle, Keep, OpValue, Pid, ProcError, Resource, Value};
use warren_http::{
    BodyHold, BodyRoom, BodyStream, FilePart, HttpClient, Request, Response, TlsOptions,
    check_destination,
};

use super::{CopyBudget, OrInvalid, grants_of, handle_id, invalid, pid, refused, started, take_if};

/// Entries one option map (`headers`, `query`, `form`, `cookies`) or the
/// `files` list may hold: each is copied out of the process and sent, so
/// a table of millions of keys would make the host do that much work.
pub(crate) const MAX_OPTION_ENTRIES: usize = 1_024;

/// Requests one `request_batch` may hold: all are sent at once.
pub(crate) const MAX_BATCH: usize = 64;

/// The longest `timeout` a request may ask for.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// The default `timeout` (modules.md).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Added to a request's own timeout for the host call's deadline: the
/// client enforces the timeout; this only backs it up.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The shared client, made on first use.
fn client() -> Result<&'static HttpClient, ProcError> {
    static CLIENT: OnceLock<Result<HttpClient, ProcError>> = OnceLock::new();
    CLIENT
        .get_or_init(HttpClient::new)
        .as_ref()
        .map_err(Clone::clone)
}

/// A streamed response body in a process's handle table.
struct StreamHandle {
    meta: Value,
    stream: tokio::sync::Mutex<Option<BodyStream>>,
}

impl Resource for StreamHandle {
    fn kind(&self) -> &'static str {
        "stream"
    }
    fn close(&self) {
        if let Ok(mut stream) = self.stream.try_lock()
            && let Some(mut s) = stream.take()
        {
            s.close();
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The text of option `what`, its bytes taken from `budget` first.
fn text(v: &LuaValue, what: &str, budget: &mut CopyBudget) -> Result<String, ProcError> {
    if let LuaValue::String(s) = v {
        budget.take(s.as_bytes().len())?;
    }
    match v {
        LuaValue::String(s) => s
            .to_str()
            .map(|s| s.to_owned())
            .map_err(|_| invalid(format!("http_client: {what} is not UTF-8 text"))),
        LuaValue::Integer(n) => Ok(n.to_string()),
        LuaValue::Number(x) => Ok(x.to_string()),
        LuaValue::Boolean(b) => Ok(b.to_string()),
        other => Err(invalid(format!(
            "http_client: {what} must be a string, got {}",
            other.type_name()
        ))),
    }
}

/// The bytes of option `what`, taken from `budget` first.
fn bytes(v: &LuaValue, what: &str, budget: &mut CopyBudget) -> Result<Vec<u8>, ProcError> {
    match v {
        LuaValue::String(s) => {
            let b = s.as_bytes();
            budget.take(b.len())?;
            Ok(b.to_vec())
        }
        other => Err(invalid(format!(
            "http_client: {what} must be a string, got {}",
            other.type_name()
        ))),
    }
}

/// A `{name = "value"}` option, raw and bounded.
fn string_map(
    v: LuaValue,
    what: &str,
    budget: &mut CopyBudget,
) -> Result<Vec<(String, String)>, ProcError> {
    let LuaValue::Table(t) = v else {
        return Err(invalid(format!("http_client: {what} must be a table")));
    };
    let mut out = Vec::new();
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| invalid(e.to_string()))?;
        if out.len() == MAX_OPTION_ENTRIES {
            return Err(invalid(format!(
                "http_client: {what} holds more than {MAX_OPTION_ENTRIES} entries"
            )));
        }
        let name = text(&k, &format!("a {what} name"), budget)?;
        let value = text(&v, &format!("{what} '{name}'"), budget)?;
        out.push((name, value));
    }
    Ok(out)
}

fn timeout(v: LuaValue) -> Result<Duration, ProcError> {
    let bad = || {
        invalid("http_client: timeout must be a positive number of seconds or a duration string")
    };
    let d = match v {
        LuaValue::Nil => return Ok(DEFAULT_TIMEOUT),
        LuaValue::Integer(n) => Duration::from_secs(u64::try_from(n).map_err(|_| bad())?),
        LuaValue::Number(x) if x.is_finite() && x > 0.0 => {
            Duration::try_from_secs_f64(x.min(MAX_TIMEOUT.as_secs_f64())).map_err(|_| bad())?
        }
        LuaValue::String(s) => {
            let ns = warren_core::duration::parse(&s.to_string_lossy()).map_err(|_| bad())?;
            Duration::from_nanos(u64::try_from(ns).map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d.min(MAX_TIMEOUT))
}

fn files(v: LuaValue, budget: &mut CopyBudget) -> Result<Vec<FilePart>, ProcError> {
    let LuaValue::Table(t) = v else {
        return Err(invalid("http_client: files must be an array"));
    };
    let n = t.raw_len();
    if n > MAX_OPTION_ENTRIES {
        return Err(invalid(format!(
            "http_client: more than {MAX_OPTION_ENTRIES} files"
        )));
    }
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let LuaValue::Table(f) = t.raw_get::<LuaValue>(i).or_invalid()? else {
            return Err(invalid(format!("http_client: files[{i}] must be a table")));
        };
        if !matches!(f.raw_get::<LuaValue>("reader").or_invalid()?, LuaValue::Nil) {
            return Err(invalid(
                "http_client: files[].reader is not supported yet: give content",
            ));
        }
        let opt = |key: &str, budget: &mut CopyBudget| -> Result<Option<String>, ProcError> {
            match f.raw_get::<LuaValue>(key).or_invalid()? {
                LuaValue::Nil => Ok(None),
                v => text(&v, &format!("files[{i}].{key}"), budget).map(Some),
            }
        };
        out.push(FilePart {
            name: text(
                &f.raw_get::<LuaValue>("name").or_invalid()?,
                &format!("files[{i}].name"),
                budget,
            )?,
            filename: opt("filename", budget)?,
            content: bytes(
                &f.raw_get::<LuaValue>("content").or_invalid()?,
                &format!("files[{i}].content"),
                budget,
            )?,
            content_type: opt("content_type", budget)?,
        });
    }
    Ok(out)
}

fn tls(v: LuaValue, budget: &mut CopyBudget) -> Result<TlsOptions, ProcError> {
    let LuaValue::Table(t) = v else {
        return Err(invalid("http_client: tls must be a table"));
    };
    let mut opt = |key: &str| -> Result<Option<String>, ProcError> {
        match t.raw_get::<LuaValue>(key).or_invalid()? {
            LuaValue::Nil => Ok(None),
            v => text(&v, &format!("tls.{key}"), budget).map(Some),
        }
    };
    Ok(TlsOptions {
        cert: opt("cert")?,
        key: opt("key")?,
        ca: opt("ca")?,
        server_name: opt("server_name")?,
        insecure_skip_verify: matches!(
            t.raw_get::<LuaValue>("insecure_skip_verify").or_invalid()?,
            LuaValue::Boolean(true)
        ),
    })
}

/// The request `method url opts` describes, checked on the worker but for
/// the full parse of a well-formed-looking URL
/// (`Request::validate_cheaply`): `HttpClient::request` validates it all
/// on the I/O thread (an `INVALID` result before any grant check or
/// connection), which keeps the URL parse (about 8% of the worker's time
/// per request) off the worker while garbage still fails at once.
/// The request `method` `url` with options `opts`, every byte copied
/// from them taken from `budget` first.
fn request(
    method: &str,
    url: &str,
    opts: Option<&Table>,
    budget: &mut CopyBudget,
) -> Result<Request, ProcError> {
    let mut req = Request::new(method, url);
    req.timeout = DEFAULT_TIMEOUT;
    let Some(o) = opts else {
        req.validate_cheaply()?;
        return Ok(req);
    };
    let get = |k: &str| -> Result<LuaValue, ProcError> { o.raw_get::<LuaValue>(k).or_invalid() };
    let present = |v: &LuaValue| !matches!(v, LuaValue::Nil);
    if present(&get("overlay_network")?) {
        return Err(invalid("http_client: overlay_network is not supported"));
    }
    for (key, field) in [
        ("headers", &mut req.headers),
        ("query", &mut req.query),
        ("form", &mut req.form),
        ("cookies", &mut req.cookies),
    ] {
        let v = get(key)?;
        if present(&v) {
            *field = string_map(v, key, budget)?;
        }
    }
    let body = get("body")?;
    if present(&body) {
        req.body = Some(bytes(&body, "body", budget)?);
    }
    let files_v = get("files")?;
    if present(&files_v) {
        req.files = files(files_v, budget)?;
    }
    if let LuaValue::Table(a) = get("auth")? {
        let user = text(
            &a.raw_get::<LuaValue>("user").or_invalid()?,
            "auth.user",
            budget,
        )?;
        let pass = match a.raw_get::<LuaValue>("pass").or_invalid()? {
            LuaValue::Nil => String::new(),
            v => text(&v, "auth.pass", budget)?,
        };
        req.auth = Some((user, pass));
    }
    req.timeout = timeout(get("timeout")?)?;
    req.max_response_body = match get("max_response_body")? {
        LuaValue::Nil => 0,
        LuaValue::Integer(n) if n >= 0 => n.unsigned_abs(),
        _ => {
            return Err(invalid(
                "http_client: max_response_body must be a non-negative integer",
            ));
        }
    };
    req.stream = matches!(get("stream")?, LuaValue::Boolean(true));
    let tls_v = get("tls")?;
    if present(&tls_v) {
        req.tls = Some(tls(tls_v, budget)?);
    }
    let socket = get("unix_socket")?;
    if present(&socket) {
        req.unix_socket = Some(text(&socket, "unix_socket", budget)?);
    }
    req.validate_cheaply()?;
    // Here, in the caller's run, not on the shared I/O threads.
    req.encode_form();
    Ok(req)
}

fn pairs_value(list: &[(String, String)]) -> Value {
    Value::Map(
        list.iter()
            .map(|(k, v)| (Value::str(k.as_str()), Value::str(v.as_str())))
            .collect(),
    )
}

/// The response as the table the process gets (without its stream); the
/// body moves into it.
fn response_value(resp: &mut Response) -> Value {
    let mut fields = vec![
        (
            Value::str("status_code"),
            Value::Int(i64::from(resp.status_code)),
        ),
        (Value::str("headers"), pairs_value(&resp.headers)),
        (Value::str("cookies"), pairs_value(&resp.cookies)),
        (Value::str("body_size"), Value::Int(resp.body_size())),
        (Value::str("url"), Value::str(resp.url.as_str())),
    ];
    if !resp.body.is_empty() {
        fields.push((
            Value::str("body"),
            Value::Str(std::mem::take(&mut resp.body)),
        ));
    }
    Value::Map(fields)
}

/// The result of one request: its body stays counted against the
/// process's room (the hold moves with it) until the process has it.
fn op_value(mut resp: Response) -> OpValue {
    let meta = response_value(&mut resp); // body_size -1 while the stream is in it
    match (resp.stream.take(), resp.take_hold()) {
        (Some(stream), _) => OpValue::Handle(Handle(Arc::new(StreamHandle {
            meta,
            stream: tokio::sync::Mutex::new(Some(stream)),
        }))),
        (None, Some(hold)) => OpValue::Kept(meta, Keep::new(hold)),
        (None, None) => OpValue::Value(meta),
    }
}

/// The most bytes of response bodies one call may bring back as a result:
/// what the process may hold at all (modules.md: results count against
/// `memory_per_process`, and one that would not fit is `INVALID`), as for
/// SQL results. Without it the default `max_response_body` (120 MiB) let
/// every call in flight make the host buffer 120 MiB, unaccounted, for a
/// process that could never receive it (delivering it then ended the
/// process instead of returning `INVALID`). Streamed bodies reach the
/// process piece by piece and keep their own limit.
fn result_cap(core: &CoreRef, me: Pid) -> u64 {
    core.borrow().quota_of(me).limits.memory_per_process
}

/// `req` with its body limit lowered to `cap` unless it streams.
fn capped(mut req: Request, cap: u64) -> Request {
    if !req.stream && req.body_limit() > cap {
        req.max_response_body = cap;
    }
    req
}

/// Where `me`'s response bodies are counted while the host reads them:
/// with the bytes its calls in flight hold copied out of it (see
/// [`CopyBudget`]), at most its `memory_per_process`, and against its
/// host's `memory_total`. Without it each request in flight (64 of them,
/// or 64 members of a batch) buffered up to `memory_per_process`,
/// uncounted: 1.74 GB for one batch of a 16 MiB process.
fn body_room(core: &CoreRef, me: Pid) -> BodyRoom {
    let (held, limit, quota) = super::room_parts(core, me);
    BodyRoom::new(held, limit, Some(quota))
}

/// The grants of `entry` running as `me`, and `PERMISSION_DENIED` unless
/// they reach `url`'s destination: checked before anything else is copied
/// out of the process, an operation slot is taken or a task spawned (the
/// full checks run again when the request is sent).
fn granted_for(
    core: &CoreRef,
    me: Pid,
    entry: &str,
    url: &str,
) -> Result<Arc<warren_core::Grants>, ProcError> {
    let grants = grants_of(&core.borrow(), me, entry);
    check_destination(url, &grants)?;
    Ok(grants)
}

/// Starts `req` for `me` holding `grants`; the bytes `budget` took (copied
/// out of the process for it) stay counted as long as the request lives.
fn start_request(
    core: &CoreRef,
    me: Pid,
    grants: Arc<warren_core::Grants>,
    req: Request,
    budget: CopyBudget,
) -> Result<u64, ProcError> {
    let own = budget.taken;
    let held = budget.hold();
    let client = client()?;
    let req = capped(req, result_cap(core, me));
    let room = body_room(core, me).for_call(own);
    let deadline = req.timeout + DEADLINE_MARGIN;
    let make = move || async move {
        let _held = held;
        client
            .request_within(req, &grants, &room, me.host())
            .await
            .map(op_value)
    };
    core.borrow_mut()
        .start_op(me, "http_client request", deadline, make)
}

/// `H.http_request_plain(me, entry, method, url)`: `H.http_request`
/// without options, the usual call, as a raw start (see [`super::raw`]).
///
/// # Safety
///
/// Called by Lua as a closure made by [`super::raw::push`].
pub(super) unsafe extern "C-unwind" fn http_request_plain(
    l: *mut mlua::ffi::lua_State,
) -> std::ffi::c_int {
    // SAFETY: see above.
    unsafe { super::raw::start(l, "http_client", plain_start) }
}

fn plain_start(stepper: &crate::step::Stepper, args: &super::raw::Args) -> Result<u64, ProcError> {
    let core = stepper.core();
    let me = pid(args.int(1)?);
    let entry = args.text(2)?;
    let (method, url) = (args.bytes(3)?, args.bytes(4)?);
    let url = String::from_utf8_lossy(url);
    let grants = granted_for(core, me, entry, &url)?;
    let mut budget = CopyBudget::of(core, me, "http_client");
    budget.take(method.len().saturating_add(url.len()))?;
    let method = String::from_utf8_lossy(method);
    let req = request(&method, &url, None, &mut budget)?;
    start_request(core, me, grants, req, budget)
}

/// One member of a batch's result; its body's hold goes to `holds`.
fn batch_item(result: Result<Response, ProcError>, holds: &mut Vec<BodyHold>) -> Value {
    match result {
        Ok(mut resp) => {
            holds.extend(resp.take_hold());
            Value::Map(vec![(Value::str("response"), response_value(&mut resp))])
        }
        Err(err) => {
            let mut e = vec![
                (Value::str("kind"), Value::str(err.kind.name())),
                (Value::str("message"), Value::str(err.message.as_str())),
                (Value::str("retryable"), Value::Bool(err.retryable)),
            ];
            if let Some(d) = err.details {
                e.push((Value::str("details"), d));
            }
            Value::Map(vec![(Value::str("error"), Value::Map(e))])
        }
    }
}

/// The requests of a `request_batch` list, raw and bounded; one `budget`
/// for all of them.
fn batch(list: &Table, budget: &mut CopyBudget) -> Result<Vec<Request>, ProcError> {
    let n = list.raw_len();
    if n == 0 {
        return Err(invalid("http_client.request_batch: the list is empty"));
    }
    if n > MAX_BATCH {
        return Err(invalid(format!(
            "http_client.request_batch: more than {MAX_BATCH} requests"
        )));
    }
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let LuaValue::Table(r) = list.raw_get::<LuaValue>(i).or_invalid()? else {
            return Err(invalid(format!(
                "http_client.request_batch: request {i} must be a table"
            )));
        };
        let method = text(
            &r.raw_get::<LuaValue>(1).or_invalid()?,
            &format!("request {i}'s method"),
            budget,
        )?;
        let url = text(
            &r.raw_get::<LuaValue>(2).or_invalid()?,
            &format!("request {i}'s URL"),
            budget,
        )?;
        let opts = match r.raw_get::<LuaValue>(3).or_invalid()? {
            LuaValue::Table(t) => Some(t),
            LuaValue::Nil => None,
            _ => {
                return Err(invalid(format!(
                    "http_client.request_batch: request {i}'s options must be a table"
                )));
            }
        };
        let req = request(&method, &url, opts.as_ref(), budget)?;
        req.validate()?;
        out.push(req);
    }
    Ok(out)
}

/// `PERMISSION_DENIED` (numbered as the client numbers it) for the first
/// request of a `request_batch` list whose URL is not granted, before any
/// request's options are copied; requests whose shape is wrong are left to
/// [`batch`], which refuses them.
fn batch_granted(list: &Table, grants: &warren_core::Grants) -> Result<(), ProcError> {
    for i in 1..=list.raw_len().min(MAX_BATCH) {
        let LuaValue::Table(r) = list.raw_get::<LuaValue>(i).or_invalid()? else {
            continue;
        };
        if let LuaValue::String(url) = r.raw_get::<LuaValue>(2).or_invalid()? {
            check_destination(&url.to_string_lossy(), grants).map_err(|mut e| {
                e.message = format!("request_batch: request {i}: {}", e.message);
                e
            })?;
        }
    }
    Ok(())
}

/// Registers the `H.http_*` functions.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type ReqArgs = (i64, String, LuaString, LuaString, Option<Table>);
    let req = move |lua: &Lua, (me, entry, method, url, opts): ReqArgs| {
        let start = || -> Result<u64, ProcError> {
            let me = pid(me);
            let grants = granted_for(&c, me, &entry, &url.to_string_lossy())?;
            let mut budget = CopyBudget::of(&c, me, "http_client");
            budget.take(method.as_bytes().len().saturating_add(url.as_bytes().len()))?;
            let (method, url) = (method.to_string_lossy(), url.to_string_lossy());
            let req = request(&method, &url, opts.as_ref(), &mut budget)?;
            start_request(&c, me, grants, req, budget)
        };
        started(lua, start())
    };
    h.set("http_request", lua.create_function(req)?)?;
    let c = core.clone();
    let batch_fn = move |lua: &Lua, (me, entry, list): (i64, String, Table)| {
        let me = pid(me);
        let start = || -> Result<u64, ProcError> {
            let grants = grants_of(&c.borrow(), me, &entry);
            batch_granted(&list, &grants)?;
            let cap = result_cap(&c, me);
            let mut budget = CopyBudget::of(&c, me, "http_client");
            let reqs: Vec<Request> = batch(&list, &mut budget)?
                .into_iter()
                .map(|r| capped(r, cap))
                .collect();
            let client = client()?;
            // `taken`: the bytes copied for this call (a field of the
            // parent module's budget), which the room counts as its own.
            let room = body_room(&c, me).for_call(budget.taken);
            let held = budget.hold();
            let longest = reqs
                .iter()
                .map(|r| r.timeout)
                .max()
                .unwrap_or(DEFAULT_TIMEOUT);
            let make = move || async move {
                // All the bodies are one result: together they fit in `cap`.
                let results = client
                    .request_batch_within(reqs, &grants, &room, cap, me.host())
                    .await;
                drop(held);
                let mut holds = Vec::new();
                let items = results?
                    .into_iter()
                    .map(|r| batch_item(r, &mut holds))
                    .collect();
                // Every body stays counted until the process has them.
                Ok(OpValue::Kept(Value::Array(items), Keep::new(holds)))
            };
            c.borrow_mut().start_op(
                me,
                "http_client request_batch",
                longest + DEADLINE_MARGIN,
                make,
            )
        };
        started(lua, start())
    };
    h.set("http_batch", lua.create_function(batch_fn)?)?;
    register_stream(lua, h, core)?;
    register_uri(lua, h)
}

fn stream_of(core: &CoreRef, me: Pid, hid: i64) -> Option<Handle> {
    let handle = handle_id(hid).and_then(|h| core.borrow().handle(me, h))?;
    handle
        .downcast::<StreamHandle>()
        .is_some()
        .then_some(handle)
}

fn closed_stream() -> ProcError {
    ProcError::new(ErrorKind::Invalid, "the response stream is closed")
}

/// `H.http_stream_meta`, `H.http_stream_read`, `H.http_close`.
fn register_stream(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let meta = move |lua: &Lua, (me, hid): (i64, i64)| -> mlua::Result<MultiValue> {
        match stream_of(&c, pid(me), hid) {
            Some(handle) => match handle.downcast::<StreamHandle>() {
                Some(s) => crate::convert::to_lua(lua, &s.meta)?.into_lua_multi(lua),
                None => refused(lua, &closed_stream()),
            },
            None => refused(lua, &closed_stream()),
        }
    };
    h.set("http_stream_meta", lua.create_function(meta)?)?;
    let c = core.clone();
    let read = move |lua: &Lua, (me, hid, n): (i64, i64, i64)| {
        let me = pid(me);
        let start = || -> Result<u64, ProcError> {
            let handle = stream_of(&c, me, hid).ok_or_else(closed_stream)?;
            let max = usize::try_from(n).unwrap_or(0);
            let make = move || async move {
                let Some(s) = handle.downcast::<StreamHandle>() else {
                    return Err(closed_stream());
                };
                let mut guard = s.stream.lock().await;
                let stream = guard.as_mut().ok_or_else(closed_stream)?;
                Ok(OpValue::Value(match stream.read(max).await? {
                    Some(data) => Value::Str(data),
                    None => Value::Bool(false),
                }))
            };
            c.borrow_mut()
                .start_op(me, "http_client stream read", MAX_TIMEOUT, make)
        };
        started(lua, start())
    };
    h.set("http_stream_read", lua.create_function(read)?)?;
    let c = core.clone();
    let close = move |_: &Lua, (me, hid): (i64, i64)| {
        // Only a stream: see `take_if`.
        if let Some(handle) = take_if::<StreamHandle>(&c, pid(me), hid) {
            handle.0.close();
        }
        Ok(())
    };
    h.set("http_close", lua.create_function(close)?)
}

/// `H.http_encode_uri` and `H.http_decode_uri`.
fn register_uri(lua: &Lua, h: &Table) -> mlua::Result<()> {
    let encode = |_: &Lua, s: LuaString| Ok(warren_http::encode_uri(&s.as_bytes()));
    h.set("http_encode_uri", lua.create_function(encode)?)?;
    let decode = |lua: &Lua, s: LuaString| -> mlua::Result<MultiValue> {
        match warren_http::decode_uri(&s.to_string_lossy()) {
            Ok(bytes) => lua.create_string(bytes)?.into_lua_multi(lua),
            Err(err) => refused(lua, &err),
        }
    };
    h.set("http_decode_uri", lua.create_function(decode)?)
}
