//! The connection cap of the accept loop and who gives way at it.
//!
//! [`Slots`] admits up to `max_connections` open connections. When a new one
//! arrives at the cap, the open connection that has **waited longest on its
//! client** (see [`super::activity`]: idle keep-alive, unfinished headers or
//! body, a silent or idle native session, a write the client does not read)
//! is evicted: its socket is closed at once, without an answer, and the new
//! connection takes its slot; connections that have sent more than 16 KiB
//! without finishing a first HTTP head (a header flood) go before all
//! others. Only when every open connection is busy (the server is working
//! on a request for each) is the new one shed with a 503.
//!
//! Why this order, thinking as an attacker:
//! - Holding connections costs an attacker nothing while they are idle or
//!   trickle headers; shedding the new connection at the cap would let a few
//!   hundred such sockets lock every client out for as long as the header
//!   timeout, again and again. Evicting the oldest waiter makes holding a
//!   slot worthless: a slow or silent connection is the first to go.
//! - An attacker can evict too, by opening connections. A fresh client that
//!   sends its request at once is the youngest waiter until its head
//!   arrives, then busy; to push it out the attacker must open
//!   `max_connections` new connections within that client's round trip, a
//!   connection flood that no slot policy absorbs (and which also closes
//!   its own connections as fast as it opens them). A native client needs
//!   two round trips (INIT, then its CALL); its INIT restarts its wait, so
//!   the second is as protected as the first.
//! - No connection is favoured for having spoken: that would let an
//!   attacker who sends one cheap request (or INIT) and then idles outrank
//!   every fresh client, which has not spoken yet. Age alone decides, and a
//!   fresh client is always among the youngest.
//! - Trickling bytes does not make a connection look younger: header bytes
//!   do not refresh its time, a body read counts from when the connection
//!   began waiting for that request, and a native PING does not count as a
//!   call. Only an answered request refreshes it, which is work the node's
//!   admission limits already bound (and a native INIT, once per session).
//! - Attackers whose connections end on their own (a header flood gets its
//!   431 once hyper's buffer is full) churn through the slots: the older
//!   connections leave by themselves and a fresh client soon becomes the
//!   oldest. Flooding connections go first, so the churn evicts flooders,
//!   not the client; a legitimate head never floods.
//! - Busy connections are never evicted: a task in progress (an HTTP handler
//!   running or a native call in flight) keeps its connection.
//! - An evicted connection's task is aborted; its file descriptor is closed
//!   when the runtime drops that task, promptly; meanwhile it is not
//!   counted, so the open sockets may briefly exceed the cap, never beyond
//!   twice it. At twice it the accept loop first lets the evicted tasks run
//!   and close (`serve.rs`, `admit`), and sheds the new connection only when
//!   none is closing.
//!
//! Choosing a victim scans the open connections (at most twice
//! `max_connections`) under a lock, only at the cap.

use super::activity::{Activity, Clock};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a new connection was admitted, or not.
pub(crate) enum Admission {
    /// Under the cap: it has a slot.
    Admitted(Slot),
    /// At the cap: the oldest waiter was evicted to make room.
    Evicted(Slot),
    /// No slot, but evicted connections are still closing: one may free
    /// when their tasks run (the caller lets them, then asks again).
    Closing,
    /// At the cap with every connection busy and none closing: shed it.
    Shed,
}

/// The open connections of one server.
pub(crate) struct Slots {
    max: usize,
    clock: Clock,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    /// Every connection whose task has not ended, evicted ones included.
    connections: HashMap<u64, Arc<Activity>>,
    /// Evicted connections whose task has not ended yet.
    evicting: usize,
}

/// One admitted connection's place: its [`Activity`], given back when
/// dropped (when the connection's task ends).
pub(crate) struct Slot {
    id: u64,
    activity: Arc<Activity>,
    open: Arc<Mutex<Open>>,
}

impl Slots {
    /// Slots for at most `max` connections (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            clock: Clock::new(),
            open: Arc::default(),
        }
    }

    /// Decides on a connection accepted now.
    pub(crate) fn admit(&self) -> Admission {
        let mut open = crate::sync::lock(&self.open);
        let counted = open.connections.len() - open.evicting;
        if counted < self.max {
            return Admission::Admitted(self.slot(&mut open));
        }
        let no_slot = if open.evicting > 0 {
            Admission::Closing
        } else {
            Admission::Shed
        };
        if open.connections.len() >= self.max.saturating_mul(2) {
            return no_slot;
        }
        // A victim may turn busy between the look and the eviction: then
        // the next oldest is tried.
        loop {
            let oldest = open
                .connections
                .values()
                .filter_map(|a| Some((a, a.waiting()?)))
                .min_by_key(|(_, w)| w.order());
            let Some((victim, seen)) = oldest else {
                return no_slot;
            };
            if victim.evict(seen) {
                open.evicting += 1;
                return Admission::Evicted(self.slot(&mut open));
            }
        }
    }

    fn slot(&self, open: &mut Open) -> Slot {
        let id = open.next_id;
        open.next_id += 1;
        let activity = Activity::accepted(self.clock);
        open.connections.insert(id, activity.clone());
        Slot {
            id,
            activity,
            open: self.open.clone(),
        }
    }
}

impl Slot {
    /// What its connection is doing, for the connection's task to update.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = crate::sync::lock(&self.open);
        open.connections.remove(&self.id);
        if self.activity.was_evicted() {
            open.evicting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> Slot {
        match a {
            Admission::Admitted(s) | Admission::Evicted(s) => s,
            Admission::Closing | Admission::Shed => panic!("no slot"),
        }
    }

    #[test]
    fn at_the_cap_the_oldest_waiter_goes_and_busy_ones_stay() {
        let slots = Slots::new(3);
        let oldest = admitted(slots.admit());
        let busy = admitted(slots.admit());
        busy.activity().request_started();
        let young = admitted(slots.admit());

        let Admission::Evicted(fourth) = slots.admit() else {
            panic!("at the cap a waiter is evicted");
        };
        assert!(oldest.activity().was_evicted());
        assert!(!busy.activity().was_evicted());
        assert!(!young.activity().was_evicted());
        drop(oldest);

        fourth.activity().request_started();
        let Admission::Evicted(_fifth) = slots.admit() else {
            panic!("the young waiter gives way");
        };
        assert!(young.activity().was_evicted());
        assert!(!busy.activity().was_evicted());
    }

    #[test]
    fn a_flooding_connection_goes_before_an_older_quiet_one() {
        let slots = Slots::new(2);
        let quiet = admitted(slots.admit());
        let flooding = admitted(slots.admit());
        flooding.activity().read(64 * 1024);
        let _third = admitted(slots.admit());
        assert!(flooding.activity().was_evicted());
        assert!(!quiet.activity().was_evicted(), "older, but quiet");
    }

    #[test]
    fn when_all_are_busy_the_new_one_is_shed_and_slots_come_back() {
        let slots = Slots::new(2);
        let a = admitted(slots.admit());
        let b = admitted(slots.admit());
        a.activity().request_started();
        b.activity().request_started();
        assert!(matches!(slots.admit(), Admission::Shed));
        drop(a);
        assert!(matches!(slots.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn evicted_sockets_not_yet_closed_are_bounded_by_twice_the_cap() {
        let slots = Slots::new(1);
        let first = admitted(slots.admit());
        // Evicted but its task has not ended: it no longer counts, up to
        // twice the cap of sockets open.
        let second = admitted(slots.admit());
        assert!(first.activity().was_evicted());
        assert!(
            matches!(slots.admit(), Admission::Closing),
            "twice the cap of sockets are open, one of them closing"
        );
        drop(first);
        let third = admitted(slots.admit());
        assert!(second.activity().was_evicted());
        drop(second);
        drop(third);
        let Admission::Admitted(_) = slots.admit() else {
            panic!("every slot came back");
        };
    }
}
