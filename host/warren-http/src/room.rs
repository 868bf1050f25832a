//! Where the bytes of response bodies are counted while the client holds
//! them: a body is read into host memory on behalf of a caller (a
//! process), so its bytes are taken, before each allocation grows, from
//! the caller's room ([`BodyRoom`]: what it may hold, shared with its
//! other calls in flight) and from its host's `memory_total`, and given
//! back when the body is dropped (delivered, failed, or its request
//! abandoned).
//!
//! The abuse this prevents: each request was bounded only by its own
//! `max_response_body`, so a process of 16 MiB could have 64 requests in
//! flight, or a `request_batch` of 64, each buffering up to 16 MiB on the
//! host, uncounted: one batch of 64 × 15 MiB bodies held 1.74 GB, six of
//! them from coroutines 6.6 GB, before the sum was ever checked.
//!
//! A batch shares one running cap on top of that ([`Batch`]): past it, a
//! member fails with `INVALID` (details `limit`) and its read stops. Room
//! goes to members in list order, so which ones fail does not depend on
//! which server answers first: a member that needs room a later member
//! holds takes it, failing the later one (whose body, read or not, is
//! dropped at once).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::Notify;
use url::Url;
use warren_core::{ErrorKind, HostQuota, ProcError, Room, RoomFull, Value};

use crate::error::redact;

/// What a caller's response bodies may take: its [`Room`] (what it may
/// hold with its other calls in flight, and its host's `memory_total`),
/// less what the call itself holds.
#[derive(Clone, Debug)]
pub struct BodyRoom {
    room: Room,
    /// What of the caller's held bytes the call itself holds (its copied
    /// arguments).
    own: u64,
}

impl BodyRoom {
    /// A room that counts nothing and never refuses (for callers that are
    /// not tenants: tools, benchmarks); bodies keep their own limit.
    pub fn unbounded() -> BodyRoom {
        BodyRoom {
            room: Room::unbounded(),
            own: 0,
        }
    }

    /// The room of a caller that may hold `limit` bytes, of which `held`
    /// counts what its calls in flight hold now (body bytes are added to
    /// it while read), on host `host` (whose `memory_total` they are also
    /// taken from).
    pub fn new(held: Arc<AtomicU64>, limit: u64, host: Option<Arc<HostQuota>>) -> BodyRoom {
        BodyRoom {
            room: Room::new(held, limit, host),
            own: 0,
        }
    }

    /// The room of one call that holds `bytes` of `held` itself (what it
    /// copied out of the caller): a body that would not fit even with no
    /// other call in flight is `INVALID`, as one over its limit, not
    /// `RATE_LIMITED`.
    pub fn for_call(mut self, bytes: u64) -> BodyRoom {
        self.own = bytes;
        self
    }

    /// Takes `n` more bytes for a body of `url` that holds `body` already:
    /// `INVALID` (details `limit`) if the call's own bytes alone pass the
    /// caller's limit; `RATE_LIMITED` (retryable) past it with what its
    /// other calls hold, or past its host's `memory_total`; nothing is
    /// taken on failure.
    fn take(&self, n: u64, body: u64, url: &Url) -> Result<(), ProcError> {
        let limit = self.room.limit();
        if self.own.saturating_add(body).saturating_add(n) > limit {
            return Err(crate::error::body_too_large(url, limit));
        }
        self.room.try_take(n).map_err(|full| {
            let message = match full {
                RoomFull::Caller { .. } => format!(
                    "the response body of {} needs {n} more bytes, and {full}",
                    redact(url)
                ),
                RoomFull::Host { .. } => {
                    format!(
                        "{full} for {n} more bytes of the response body of {}",
                        redact(url)
                    )
                }
            };
            no_room(message)
        })
    }

    /// Gives back `n` bytes taken with [`BodyRoom::take`].
    fn give(&self, n: u64) {
        self.room.give(n);
    }
}

/// `RATE_LIMITED`, retryable: the room is full now, and frees up as the
/// caller's other calls end.
fn no_room(message: String) -> ProcError {
    let mut err = ProcError::new(ErrorKind::RateLimited, message);
    err.retryable = true;
    err
}

/// `INVALID` for a batch member whose body, with the bodies of the
/// members before it, would pass the batch's `cap` (details
/// `{limit = cap}`, as for one body over its limit).
pub(crate) fn batch_too_large(url: &Url, cap: u64) -> ProcError {
    let mut err = ProcError::new(
        ErrorKind::Invalid,
        format!(
            "request_batch: the response body of {} would take the batch's bodies past what \
             the process may hold ({cap} bytes)",
            redact(url)
        ),
    );
    let limit = i64::try_from(cap).unwrap_or(i64::MAX);
    err.details = Some(Value::Map(vec![(Value::str("limit"), Value::Int(limit))]));
    err
}

/// The running cap of one `request_batch`: at most `cap` bytes of bodies
/// for all its members together, given in list order (see the module
/// documentation).
pub(crate) struct Batch {
    cap: u64,
    state: Mutex<State>,
    /// Woken when bytes are given back or a member is failed.
    freed: Notify,
    /// One per member: woken when it is failed to make room.
    evict: Vec<Notify>,
}

#[derive(Default)]
struct State {
    taken: u64,
    members: Vec<Member>,
}

#[derive(Default)]
struct Member {
    /// Bytes of the cap it holds.
    held: u64,
    /// Failed to make room for an earlier member.
    evicted: bool,
    /// Its body once read, kept here (not in its result) until the batch
    /// ends, so that an earlier member can still take its room.
    parked: Option<(Vec<u8>, Hold)>,
}

impl Batch {
    /// The cap of a batch of `members` requests.
    pub(crate) fn new(members: usize, cap: u64) -> Arc<Batch> {
        let mut state = State::default();
        state.members.resize_with(members, Member::default);
        Arc::new(Batch {
            cap,
            state: Mutex::new(state),
            freed: Notify::new(),
            evict: (0..members).map(|_| Notify::new()).collect(),
        })
    }

    /// Its cap, in bytes.
    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether member `i` was failed to make room.
    fn evicted(&self, i: usize) -> bool {
        self.state().members.get(i).is_none_or(|m| m.evicted)
    }

    /// Resolves once member `i` is failed to make room.
    pub(crate) async fn until_evicted(&self, i: usize) {
        let Some(notify) = self.evict.get(i) else {
            return;
        };
        loop {
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.evicted(i) {
                return;
            }
            woken.await;
        }
    }

    /// Takes `n` more bytes of the cap for member `i` (whose body is
    /// `url`'s), failing later members if that is what it takes and
    /// `evict` allows it: `INVALID` when even that leaves no room, or when
    /// `i` itself was failed. Room a body only may grow into (`evict`
    /// false) fails no other member: a speculative doubling that failed a
    /// later member whose body was still to come let the member after it
    /// take the freed room, so which member failed depended on which
    /// server answered first.
    async fn take(&self, i: usize, n: u64, url: &Url, evict: bool) -> Result<(), ProcError> {
        loop {
            let woken = self.freed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let dropped = {
                let mut st = self.state();
                let State { taken, members } = &mut *st;
                let Some(me) = members.get(i) else {
                    return Err(batch_too_large(url, self.cap));
                };
                if me.evicted {
                    return Err(batch_too_large(url, self.cap));
                }
                if taken.saturating_add(n) <= self.cap {
                    *taken += n;
                    members[i].held += n;
                    return Ok(());
                }
                if !evict {
                    return Err(batch_too_large(url, self.cap));
                }
                let later = members.iter().enumerate().skip(i + 1).rev();
                // Room that later members already failed still hold and
                // are about to give back: if it is enough, wait for it
                // rather than fail one more (a second look while the
                // first victim's reader had not yet let go failed the
                // member before it, out of list order).
                let returning: u64 = later
                    .clone()
                    .filter(|(_, m)| m.evicted)
                    .map(|(_, m)| m.held)
                    .sum();
                let short = taken.saturating_sub(returning).saturating_add(n) > self.cap;
                let victim = later
                    .clone()
                    .find(|(_, m)| short && m.held > 0 && !m.evicted)
                    .map(|(k, _)| k);
                match victim {
                    Some(k) => {
                        members[k].evicted = true;
                        if let Some(e) = self.evict.get(k) {
                            e.notify_one();
                        }
                        // A member waiting for room itself learns it failed.
                        self.freed.notify_waiters();
                        members[k].parked.take()
                    }
                    // Failed members about to give their room back: wait.
                    None if returning > 0 => None,
                    None => return Err(batch_too_large(url, self.cap)),
                }
            };
            // Dropped outside the lock: its `Hold` gives its bytes back.
            if dropped.is_some() {
                drop(dropped);
                continue;
            }
            woken.await;
        }
    }

    /// Gives back `n` bytes of member `i`.
    fn give(&self, i: usize, n: u64) {
        {
            let mut st = self.state();
            st.taken = st.taken.saturating_sub(n);
            if let Some(m) = st.members.get_mut(i) {
                m.held = m.held.saturating_sub(n);
            }
        }
        self.freed.notify_waiters();
    }

    /// Keeps member `i`'s finished body until the batch ends; `INVALID`
    /// (and the body dropped) if it was failed meanwhile.
    pub(crate) fn park(
        &self,
        i: usize,
        body: Vec<u8>,
        hold: Hold,
        url: &Url,
    ) -> Result<(), ProcError> {
        let mut st = self.state();
        match st.members.get_mut(i) {
            Some(m) if !m.evicted => {
                m.parked = Some((body, hold));
                Ok(())
            }
            _ => {
                drop(st);
                drop((body, hold));
                Err(batch_too_large(url, self.cap))
            }
        }
    }

    /// Member `i`'s parked body, taken back when the batch ends; `INVALID`
    /// if it was failed to make room.
    pub(crate) fn unpark(&self, i: usize, url: &Url) -> Result<(Vec<u8>, Hold), ProcError> {
        let parked = self
            .state()
            .members
            .get_mut(i)
            .and_then(|m| m.parked.take());
        parked.ok_or_else(|| batch_too_large(url, self.cap))
    }
}

/// Bytes of a body taken from a [`BodyRoom`] (and, for a batch member,
/// from its batch's cap), given back when dropped.
#[derive(Debug)]
pub(crate) struct Hold {
    room: BodyRoom,
    member: Option<(Weak<Batch>, usize)>,
    bytes: u64,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch(cap {})", self.cap)
    }
}

impl Hold {
    /// Nothing held yet from `room`, for member `member` of a batch if any.
    pub(crate) fn new(room: &BodyRoom, member: Option<(&Arc<Batch>, usize)>) -> Hold {
        Hold {
            room: room.clone(),
            member: member.map(|(b, i)| (Arc::downgrade(b), i)),
            bytes: 0,
        }
    }

    /// The batch this is a member of, and its position.
    pub(crate) fn member(&self) -> Option<(Arc<Batch>, usize)> {
        let (batch, i) = self.member.as_ref()?;
        Some((batch.upgrade()?, *i))
    }

    /// Holds at least `total` bytes for a body of `url`; the error (and
    /// nothing more held) when there is no room for them.
    pub(crate) async fn grow_to(&mut self, total: u64, url: &Url) -> Result<(), ProcError> {
        self.grow(total, url, true).await
    }

    /// [`Hold::grow_to`] for room the body only may grow into: in a batch,
    /// only free room, never a later member's.
    pub(crate) async fn try_grow_to(&mut self, total: u64, url: &Url) -> Result<(), ProcError> {
        self.grow(total, url, false).await
    }

    async fn grow(&mut self, total: u64, url: &Url, evict: bool) -> Result<(), ProcError> {
        let Some(n) = total.checked_sub(self.bytes).filter(|n| *n > 0) else {
            return Ok(());
        };
        let member = self.member();
        if let Some((batch, i)) = &member {
            batch.take(*i, n, url, evict).await?;
        }
        if let Err(err) = self.room.take(n, self.bytes, url) {
            if let Some((batch, i)) = &member {
                batch.give(*i, n);
            }
            return Err(err);
        }
        self.bytes += n;
        Ok(())
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.room.give(self.bytes);
        if let Some((batch, i)) = self.member() {
            batch.give(i, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn url() -> Url {
        Url::parse("http://example.org/").expect("url")
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_room_refuses_past_its_limit_and_gets_its_bytes_back() {
        block(async {
            let held = Arc::new(AtomicU64::new(3));
            let room = BodyRoom::new(held.clone(), 10, None);
            let mut a = Hold::new(&room, None);
            a.grow_to(5, &url()).await.expect("3 + 5 fits in 10");
            let mut b = Hold::new(&room, None);
            let err = b.grow_to(3, &url()).await.expect_err("3 + 5 + 3 does not");
            assert_eq!(err.kind, ErrorKind::RateLimited);
            assert!(err.retryable);
            assert!(err.message.contains("(10 bytes)"), "{}", err.message);
            assert_eq!(held.load(Ordering::Acquire), 8);
            drop(a);
            assert_eq!(held.load(Ordering::Acquire), 3);
            b.grow_to(7, &url()).await.expect("fits again");
            drop(b);
            assert_eq!(held.load(Ordering::Acquire), 3);
        });
    }

    #[test]
    fn a_body_that_cannot_fit_beside_its_own_call_is_invalid() {
        block(async {
            let held = Arc::new(AtomicU64::new(4));
            let room = BodyRoom::new(held.clone(), 10, None).for_call(4);
            let mut a = Hold::new(&room, None);
            a.grow_to(5, &url()).await.expect("4 + 5 fits in 10");
            let err = a.grow_to(7, &url()).await.expect_err("4 + 7 does not");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert_eq!(
                err.details.as_ref().and_then(|d| d.get("limit")),
                Some(&Value::Int(10))
            );
            assert_eq!(held.load(Ordering::Acquire), 9);
        });
    }

    #[test]
    fn a_room_takes_from_the_hosts_memory_total() {
        block(async {
            let mut quota = HostQuota::default();
            quota.limits.memory_total = 100;
            quota.name = "h".into();
            let quota = Arc::new(quota);
            assert!(quota.reserve_memory(90));
            let room = BodyRoom::new(Arc::default(), 1000, Some(quota.clone()));
            let mut a = Hold::new(&room, None);
            let err = a.grow_to(20, &url()).await.expect_err("past memory_total");
            assert_eq!(err.kind, ErrorKind::RateLimited);
            assert!(
                err.message.contains("memory_total (100 bytes)"),
                "{}",
                err.message
            );
            assert_eq!(quota.memory_used(), 90);
            a.grow_to(10, &url()).await.expect("fits");
            assert_eq!(quota.memory_used(), 100);
            drop(a);
            assert_eq!(quota.memory_used(), 90);
        });
    }

    #[test]
    fn room_in_a_batch_goes_to_earlier_members_first() {
        block(async {
            let held = Arc::new(AtomicU64::new(0));
            let room = BodyRoom::new(held.clone(), 100, None);
            let batch = Batch::new(3, 10);
            let mut last = Hold::new(&room, Some((&batch, 2)));
            last.grow_to(6, &url()).await.expect("room");
            batch.park(2, vec![1; 6], last, &url()).expect("parked");
            let mut middle = Hold::new(&room, Some((&batch, 1)));
            middle.grow_to(4, &url()).await.expect("room");
            // The first member takes the last one's room; the last one's
            // parked body is dropped at once.
            let mut first = Hold::new(&room, Some((&batch, 0)));
            first.grow_to(6, &url()).await.expect("taken from the last");
            assert_eq!(held.load(Ordering::Acquire), 10);
            let err = batch.unpark(2, &url()).expect_err("failed");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert!(err.message.contains("(10 bytes)"), "{}", err.message);
            // The middle one cannot take the first one's room.
            let err = middle
                .grow_to(5, &url())
                .await
                .expect_err("no later member");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert_eq!(middle.bytes(), 4);
            drop((first, middle));
            assert_eq!(held.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn room_a_body_only_may_grow_into_fails_no_other_member() {
        block(async {
            let held = Arc::new(AtomicU64::new(0));
            let room = BodyRoom::new(held.clone(), 100, None);
            let batch = Batch::new(3, 8);
            let mut first = Hold::new(&room, Some((&batch, 0)));
            first.grow_to(2, &url()).await.expect("room");
            let mut middle = Hold::new(&room, Some((&batch, 1)));
            middle.grow_to(3, &url()).await.expect("room");
            // A doubling past the free room fails the doubling only: the
            // last member, whose body has not come yet, would otherwise be
            // the one left with room.
            let err = first
                .try_grow_to(6, &url())
                .await
                .expect_err("no free room");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert!(!batch.evicted(1), "the middle member was failed");
            assert_eq!(first.bytes(), 2);
            first.grow_to(5, &url()).await.expect("what it needs fits");
            let mut last = Hold::new(&room, Some((&batch, 2)));
            let err = last.grow_to(1, &url()).await.expect_err("in list order");
            assert_eq!(err.kind, ErrorKind::Invalid);
            assert!(!batch.evicted(1));
            drop((first, middle, last));
            assert_eq!(held.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn a_second_look_waits_for_room_a_failed_member_still_holds() {
        block(async {
            let held = Arc::new(AtomicU64::new(0));
            let room = BodyRoom::new(held.clone(), 100, None);
            let batch = Batch::new(3, 8);
            let mut middle = Hold::new(&room, Some((&batch, 1)));
            middle.grow_to(3, &url()).await.expect("room");
            let mut last = Hold::new(&room, Some((&batch, 2)));
            last.grow_to(3, &url()).await.expect("room");
            let (b, r) = (batch.clone(), room.clone());
            let first = tokio::spawn(async move {
                let mut first = Hold::new(&r, Some((&b, 0)));
                first.grow_to(3, &url()).await.map(|()| first)
            });
            // The first member fails the last one, whose reader has not
            // let go yet, and waits.
            while !batch.evicted(2) {
                tokio::task::yield_now().await;
            }
            // A wake-up before the last one's room comes back (an empty
            // hold of the middle member dropped): the first must not fail
            // the middle one too.
            drop(Hold::new(&room, Some((&batch, 1))));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(!batch.evicted(1), "the middle member was failed too");
            drop(last);
            let first = first.await.expect("task").expect("room came back");
            assert_eq!(first.bytes(), 3);
            assert!(!batch.evicted(1));
            drop((first, middle));
            assert_eq!(held.load(Ordering::Acquire), 0);
        });
    }
}
