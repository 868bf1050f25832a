//! Turns between hosts for a PostgreSQL entry's connections.
//!
//! The pool alone lends connections first come, first served: a tenant
//! that queued a hundred slow statements on an entry it shares with
//! another made the other's `SELECT 1` wait behind all of them, and one
//! that opened `max_open` transactions left the other nothing until its
//! `acquire_timeout`. Every borrow now passes this gate first, which holds
//! one permit per connection (`max_open`) and lends them as SQLite's
//! queue runs statements (`sqlite/queue.rs`): the waiting callers' hosts
//! take turns, so a host's backlog delays another host's call by one
//! statement of each host ahead of it, not by the backlog.
//!
//! Once two hosts have used the entry, or from the first call when the
//! application has several hosts, the last [`reserve`] free permits go
//! only to hosts holding none, so no tenant can hold every connection
//! (with transactions left open, say): each other host still gets one.
//! Waiting for a second host let the first one, alone at the start, take
//! every connection with idle transactions, and the second one's first
//! call then waited out its `acquire_timeout` (red team I). The entry of
//! an application with one host lends it every connection.
//!
//! Guarantees: at most `max_open` permits are out; a permit is handed to
//! one waiter only, and a waiter that gives up (its call dropped, or its
//! `acquire_timeout` passed) after being handed one gives it back; a
//! closed gate refuses new borrows and ends every wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Free permits kept for hosts holding none, once two hosts have used the
/// entry: a quarter of the pool (none below four connections, where a
/// reserve would leave a tenant too few to work with).
pub(crate) fn reserve(max_open: usize) -> usize {
    max_open / 4
}

/// A borrow's right to one connection: given back when dropped.
pub(crate) struct Permit {
    gate: Arc<Gate>,
    host: u16,
    /// Whether the borrow waited for its turn.
    pub(crate) waited: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.give_back(self.host);
    }
}

/// Why a borrow got no permit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The gate is closed (the entry was shut down).
    Closed,
}

/// The permits of one entry (see the module documentation).
pub(crate) struct Gate {
    state: Mutex<State>,
}

/// A host's waiting borrows, oldest first.
type Waiters = VecDeque<oneshot::Sender<()>>;

struct State {
    free: usize,
    reserve: usize,
    /// Permits each host holds (hosts holding none are removed).
    held: Vec<(u16, usize)>,
    /// Hosts with waiting borrows, in turn order.
    turn: VecDeque<(u16, Waiters)>,
    /// A host that has used the entry, until a second one does.
    first: Option<u16>,
    /// Whether the reserve applies: the application has several hosts,
    /// or two hosts have used the entry.
    shared: bool,
    closed: bool,
}

impl State {
    fn held(&self, host: u16) -> usize {
        self.held
            .iter()
            .find(|(h, _)| *h == host)
            .map_or(0, |(_, n)| *n)
    }

    fn note_user(&mut self, host: u16) {
        match self.first {
            None => self.first = Some(host),
            Some(h) if h != host => self.shared = true,
            Some(_) => {}
        }
    }

    /// Whether `host` may take a free permit now.
    fn may_take(&self, host: u16) -> bool {
        self.free > 0 && (!self.shared || self.free > self.reserve || self.held(host) == 0)
    }

    fn take(&mut self, host: u16) {
        self.free -= 1;
        match self.held.iter_mut().find(|(h, _)| *h == host) {
            Some((_, n)) => *n += 1,
            None => self.held.push((host, 1)),
        }
    }

    fn put(&mut self, host: u16) {
        self.free += 1;
        if let Some(i) = self.held.iter().position(|(h, _)| *h == host) {
            self.held[i].1 -= 1;
            if self.held[i].1 == 0 {
                self.held.swap_remove(i);
            }
        }
    }

    /// Hands free permits to waiters, hosts in turn, while one may take
    /// one; a host served goes to the back of the turn.
    fn hand_out(&mut self) {
        let mut passed = 0;
        while self.free > 0 && passed < self.turn.len() {
            let Some((host, mut waiters)) = self.turn.pop_front() else {
                return;
            };
            if !self.may_take(host) {
                self.turn.push_back((host, waiters));
                passed += 1;
                continue;
            }
            while let Some(w) = waiters.pop_front() {
                self.take(host);
                if w.send(()).is_ok() {
                    break;
                }
                self.put(host); // that waiter gave up: the next one
            }
            if !waiters.is_empty() {
                self.turn.push_back((host, waiters));
            }
            passed = 0;
        }
    }
}

impl Gate {
    /// A gate of `max_open` permits, keeping its reserve from the start
    /// when `shared` (the application has several hosts).
    pub(crate) fn new(max_open: usize, shared: bool) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State {
                free: max_open,
                reserve: reserve(max_open),
                held: Vec::new(),
                turn: VecDeque::new(),
                first: None,
                shared,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit for a borrow by `host`, waiting for its turn. The caller
    /// bounds the wait (dropping this future gives up the place, and a
    /// permit handed over meanwhile goes back).
    pub(crate) async fn enter(self: &Arc<Self>, host: u16) -> Result<Permit, Refused> {
        let rx = {
            let mut st = self.lock();
            if st.closed {
                return Err(Refused::Closed);
            }
            st.note_user(host);
            if st.turn.is_empty() && st.may_take(host) {
                st.take(host);
                return Ok(self.permit(host, false));
            }
            let (tx, rx) = oneshot::channel();
            match st.turn.iter_mut().find(|(h, _)| *h == host) {
                Some((_, waiters)) => waiters.push_back(tx),
                None => st.turn.push_back((host, VecDeque::from([tx]))),
            }
            st.hand_out();
            rx
        };
        let mut wait = Waiting {
            rx,
            gate: self,
            host,
        };
        match (&mut wait.rx).await {
            Ok(()) => {
                wait.rx.close();
                Ok(self.permit(host, true))
            }
            Err(_) => Err(Refused::Closed),
        }
    }

    fn permit(self: &Arc<Self>, host: u16, waited: bool) -> Permit {
        Permit {
            gate: self.clone(),
            host,
            waited,
        }
    }

    fn give_back(&self, host: u16) {
        let mut st = self.lock();
        st.put(host);
        st.hand_out();
    }

    /// Refuses every borrow from now on and ends every wait.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.turn.clear();
    }

    /// Borrows waiting at the gate.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().turn.iter().map(|(_, w)| w.len()).sum()
    }
}

/// A borrow waiting for its permit: dropped after one was handed to it
/// but before it was taken (the caller gave up just then), it gives the
/// permit back.
struct Waiting<'a> {
    rx: oneshot::Receiver<()>,
    gate: &'a Arc<Gate>,
    host: u16,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.gate.give_back(self.host);
        }
    }
}

#[cfg(test)]
mod tests;
