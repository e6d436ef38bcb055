//! Intercepting: a data message (text or binary) that matches is held, not relayed, until the
//! user forwards it, replaces it with an edited one, or drops it. What matches: the
//! `--intercept EXPR` expression (the frame filter's syntax: `cmd:X ch:X dir:up|down type:…`
//! and words), or every message of a connection whose interception was turned on (a key in
//! the UI, `N /intercept on` on stdin).
//!
//! While a message is held, its side of its connection is not read any further (what comes
//! behind it waits in the socket, in order, and TCP slows the sender); the other direction,
//! and every other connection, keep flowing. So at most two messages are held per connection.
//! When nothing would hold a message any more (the expression is turned off and its connection
//! is not intercepted), it is forwarded; when its connection ends, it is lost with it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::connect::compose::Outgoing;
use crate::connect::filter::Filter;
use crate::connect::model::{FrameRecord, Kind};

/// What becomes of a held message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Relay it as it came.
    Forward,
    /// Relay this instead.
    Replace(Outgoing),
    /// Relay nothing.
    Drop,
}

/// A held message's ticket: its number and where its verdict arrives.
pub struct Ticket {
    /// The hold's number (`/forward K`).
    pub hold: u64,
    /// The verdict; a dropped sender means forward.
    pub verdict: oneshot::Receiver<Verdict>,
}

#[derive(Default)]
struct Rules {
    /// `--intercept EXPR` (or `/intercept EXPR`): the text and its parsed form.
    expr: Option<(String, Filter)>,
    /// Connections whose every message is held.
    conns: HashSet<u64>,
}

/// The interception rules and the messages held now.
#[derive(Default)]
pub struct Intercept {
    /// Any rule at all (read per message without a lock).
    on: AtomicBool,
    rules: Mutex<Rules>,
    /// Hold number → its connection and its verdict's sender.
    held: Mutex<BTreeMap<u64, (u64, oneshot::Sender<Verdict>)>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Intercept {
    /// Rules from `--intercept EXPR` (none without it).
    pub fn new(expr: Option<&str>) -> Self {
        let me = Self::default();
        me.set_expr(expr);
        me
    }

    /// Could anything be held?
    pub fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Does connection `conn`'s message `r` get held?
    pub fn matches(&self, conn: u64, r: &FrameRecord) -> bool {
        if !self.on() || !matches!(r.kind, Kind::Text | Kind::Binary) {
            return false;
        }
        let rules = lock(&self.rules);
        rules.conns.contains(&conn) || rules.expr.as_ref().is_some_and(|(_, f)| f.matches(r))
    }

    /// Holds a message of connection `conn`: its ticket.
    pub fn hold(&self, conn: u64) -> Ticket {
        let hold = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, verdict) = oneshot::channel();
        lock(&self.held).insert(hold, (conn, tx));
        Ticket { hold, verdict }
    }

    /// Decides hold `hold`; its connection.
    pub fn decide(&self, hold: u64, verdict: Verdict) -> Result<u64, String> {
        let (conn, tx) = lock(&self.held)
            .remove(&hold)
            .ok_or(format!("nothing is held as #{hold}"))?;
        tx.send(verdict)
            .map_err(|_| format!("#{hold}: its connection has ended"))?;
        Ok(conn)
    }

    /// Decides every hold the same way; how many there were.
    pub fn decide_all(&self, verdict: &Verdict) -> usize {
        let all = std::mem::take(&mut *lock(&self.held));
        let n = all.len();
        for (_, (_, tx)) in all {
            let _ = tx.send(verdict.clone());
        }
        n
    }

    /// Sets (or with `None`, or an empty text, clears) the expression.
    pub fn set_expr(&self, expr: Option<&str>) {
        let mut rules = lock(&self.rules);
        rules.expr = expr
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| (e.to_string(), Filter::parse(e)));
        self.changed(&rules);
    }

    /// Turns holding every message of connection `conn` on or off.
    pub fn set_conn(&self, conn: u64, on: bool) {
        let mut rules = lock(&self.rules);
        if on {
            rules.conns.insert(conn);
        } else {
            rules.conns.remove(&conn);
        }
        self.changed(&rules);
    }

    /// No rule any more; everything held is forwarded.
    pub fn off(&self) {
        let mut rules = lock(&self.rules);
        rules.expr = None;
        rules.conns.clear();
        self.changed(&rules);
    }

    /// Is every message of connection `conn` held?
    pub fn conn_on(&self, conn: u64) -> bool {
        lock(&self.rules).conns.contains(&conn)
    }

    /// The expression, if any.
    pub fn expr(&self) -> Option<String> {
        lock(&self.rules).expr.as_ref().map(|(e, _)| e.clone())
    }

    /// Connection `conn` ended: its holds and its rule go.
    pub fn forget(&self, conn: u64) {
        lock(&self.held).retain(|_, (c, _)| *c != conn);
        let mut rules = lock(&self.rules);
        rules.conns.remove(&conn);
        self.changed(&rules);
    }

    /// After a rule change: forward what nothing would hold any more.
    fn changed(&self, rules: &Rules) {
        self.on.store(
            rules.expr.is_some() || !rules.conns.is_empty(),
            Ordering::Relaxed,
        );
        if rules.expr.is_some() {
            return;
        }
        let mut held = lock(&self.held);
        let free: Vec<u64> = held
            .iter()
            .filter(|(_, (c, _))| !rules.conns.contains(c))
            .map(|(h, _)| *h)
            .collect();
        for h in free {
            if let Some((_, tx)) = held.remove(&h) {
                let _ = tx.send(Verdict::Forward);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::model::Dir;

    fn text(dir: Dir, t: &str) -> FrameRecord {
        FrameRecord::new(dir, Kind::Text, bytes::Bytes::from(t.to_string()), None)
    }

    #[test]
    fn an_expression_or_a_connection_holds_and_turning_off_forwards() {
        let i = Intercept::new(Some("dir:up secret"));
        assert!(i.matches(1, &text(Dir::Out, "the secret")));
        assert!(!i.matches(1, &text(Dir::In, "the secret")), "dir:up");
        assert!(!i.matches(1, &text(Dir::Out, "public")));
        let close = FrameRecord::new(
            Dir::Out,
            Kind::Close,
            Default::default(),
            Some((1000, "secret".into())),
        );
        assert!(!i.matches(1, &close), "only data messages are held");
        i.set_conn(2, true);
        assert!(i.matches(2, &text(Dir::In, "anything")));

        let mut a = i.hold(1);
        let mut b = i.hold(2);
        assert_eq!(i.decide(a.hold, Verdict::Drop), Ok(1));
        assert_eq!(a.verdict.try_recv(), Ok(Verdict::Drop));
        assert!(i.decide(a.hold, Verdict::Forward).is_err(), "decided once");
        i.set_expr(None);
        assert!(
            b.verdict.try_recv().is_err(),
            "connection 2 is still intercepted"
        );
        i.set_conn(2, false);
        assert_eq!(b.verdict.try_recv(), Ok(Verdict::Forward));
        assert!(!i.on());
    }
}
