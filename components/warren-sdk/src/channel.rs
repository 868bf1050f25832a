//! Channels and `select`, as in the Lua `channel` module: local to this
//! process; [`inbox`], [`events`], [`listen`] and [`after`] give channels the
//! host feeds, and [`Select`] (or the [`select!`](crate::select) macro) waits
//! on any mix of them with an optional timeout.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::warren::process::channels::{self as wit, SelectCase};
use crate::bindings::warren::process::{host, types};
use crate::{Error, ErrorKind, Event, Message, Payload, decode, event, message, nanos, payload};

/// What a channel yields.
#[derive(Debug, Clone)]
pub enum Item {
    /// A value: from a channel this process made, a `listen` channel or a timer.
    Value(Payload),
    /// An inbox message.
    Message(Message),
    /// A lifecycle event.
    Event(Event),
}

impl Item {
    fn from_wit(item: types::Item) -> Self {
        match item {
            types::Item::Value(v) => Item::Value(v),
            types::Item::Message(m) => Item::Message(message(m)),
            types::Item::Event(e) => Item::Event(event(e)),
        }
    }

    /// The value, decoded as `T`; for a message, its first payload.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self {
            Item::Value(bytes) => decode(bytes),
            Item::Message(m) => m.data(),
            Item::Event(e) => Err(Error::new(
                ErrorKind::Invalid,
                format!("a {:?} event from {} is not a value", e.kind, e.from),
            )),
        }
    }
}

/// A channel.
#[derive(Debug)]
pub struct Channel(wit::Channel);

impl Channel {
    /// A channel buffering up to `capacity` values (0: unbuffered).
    pub fn new(capacity: u32) -> Self {
        Channel(wit::Channel::new(capacity))
    }

    /// Sends a value; an error on a closed channel or one the host feeds.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        Ok(self.0.send(&payload(value)?)?)
    }

    /// The next item; `None` once the channel is closed and drained.
    pub fn recv_item(&self) -> Result<Option<Item>, Error> {
        Ok(self.0.receive()?.map(Item::from_wit))
    }

    /// The next value decoded as `T` (for the inbox, the message's data);
    /// `None` once the channel is closed and drained.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.recv_item()?.map(|item| item.data()).transpose()
    }

    /// The next inbox message (an error if this channel yields something else).
    pub fn recv_message(&self) -> Result<Option<Message>, Error> {
        match self.recv_item()? {
            None => Ok(None),
            Some(Item::Message(m)) => Ok(Some(m)),
            Some(other) => Err(Error::new(
                ErrorKind::Invalid,
                format!("expected a message, got {other:?}"),
            )),
        }
    }

    /// Closes the channel; closing twice is a no-op.
    pub fn close(&self) {
        self.0.close();
    }
}

/// A channel of inbox messages (topics nobody listens to).
pub fn inbox() -> Channel {
    Channel(host::inbox())
}

/// A channel of lifecycle events.
pub fn events() -> Channel {
    Channel(host::events())
}

/// A channel of the payloads of messages on exactly `topic`.
pub fn listen(topic: &str) -> Result<Channel, Error> {
    Ok(Channel(host::listen(topic)?))
}

/// Stops a [`listen`]; the channel then reads as closed.
pub fn unlisten(channel: &Channel) {
    host::unlisten(&channel.0);
}

/// A channel that yields the time (unix ns) once, after `delay`.
pub fn after(delay: Duration) -> Channel {
    Channel(host::after(nanos(Some(delay)).unwrap_or(u64::MAX)))
}

/// What [`Select::wait`] did.
#[derive(Debug)]
pub enum Selected {
    /// Case `index` (in the order added) was taken; a receive's item, `None`
    /// when the channel is closed.
    Ready(usize, Option<Item>),
    /// [`Select::try_wait`] found nothing ready.
    WouldBlock,
    /// The timeout passed first.
    Timeout,
}

/// Waits on several channel operations at once; ready cases are taken in
/// the order they were added.
#[derive(Default)]
pub struct Select<'a> {
    cases: Vec<SelectCase<'a>>,
}

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Self {
        Select { cases: Vec::new() }
    }

    /// Adds a receive on `channel`; returns the case's index.
    pub fn recv(&mut self, channel: &'a Channel) -> usize {
        self.cases.push(SelectCase::Receive(&channel.0));
        self.cases.len() - 1
    }

    /// Adds a send of `value` on `channel`; returns the case's index.
    pub fn send<T: Serialize + ?Sized>(
        &mut self,
        channel: &'a Channel,
        value: &T,
    ) -> Result<usize, Error> {
        self.cases
            .push(SelectCase::Send((&channel.0, payload(value)?)));
        Ok(self.cases.len() - 1)
    }

    /// Blocks until a case is ready or `timeout` passes.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Selected, Error> {
        self.run(timeout, false)
    }

    /// Takes a ready case, or returns [`Selected::WouldBlock`] at once.
    pub fn try_wait(&self) -> Result<Selected, Error> {
        self.run(None, true)
    }

    fn run(&self, timeout: Option<Duration>, nonblocking: bool) -> Result<Selected, Error> {
        Ok(
            match wit::select(&self.cases, nanos(timeout), nonblocking)? {
                wit::Selected::Ready((i, item)) => {
                    Selected::Ready(i as usize, item.map(Item::from_wit))
                }
                wit::Selected::WouldBlock => Selected::WouldBlock,
                wit::Selected::Timeout => Selected::Timeout,
            },
        )
    }
}

/// Waits on several channels, like crossbeam's `select!`: each
/// `recv(channel) -> item => body` arm runs with the item it got (`None`:
/// closed); an optional last `timeout(duration) => body` arm runs when
/// nothing came in time. Evaluates to the arm's value, or to an
/// `Err(Error)` from the host wrapped as `Result<_, Error>`.
///
/// ```ignore
/// let got = warren_sdk::select! {
///     recv(inbox) -> item => Got::Message(item),
///     recv(events) -> item => Got::Event(item),
///     timeout(Duration::from_millis(50)) => Got::Nothing,
/// }?;
/// ```
#[macro_export]
macro_rules! select {
    ( $( recv($ch:expr) -> $item:pat => $body:expr ),+ $(, timeout($d:expr) => $tbody:expr )? $(,)? ) => {{
        let mut __select = $crate::Select::new();
        $( let _ = __select.recv(&$ch); )+
        match __select.wait($crate::__select_timeout!($( $d )?)) {
            Err(e) => Err(e),
            Ok($crate::Selected::Ready(__index, __got)) => {
                let mut __got = Some(__got);
                let mut __k = usize::MAX;
                let mut __out = None;
                $(
                    __k = __k.wrapping_add(1);
                    if __out.is_none() && __index == __k {
                        let $item = __got.take().flatten();
                        __out = Some($body);
                    }
                )+
                __out.ok_or_else(|| $crate::Error::new($crate::ErrorKind::Internal, "select: unknown case"))
            }
            Ok(_) => $crate::__select_timed_out!($( $tbody )?),
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_timeout {
    () => {
        None
    };
    ($d:expr) => {
        Some($d)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_timed_out {
    () => {
        Err($crate::Error::new(
            $crate::ErrorKind::Internal,
            "select: woke without a ready case or a timeout arm",
        ))
    };
    ($b:expr) => {
        Ok($b)
    };
}
