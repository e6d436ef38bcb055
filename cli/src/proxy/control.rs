//! What a user tells the proxy: a line from stdin (pipe mode) or from the UI's composer (which
//! puts the selected connection's number in front when the line names none).
//!
//! | line | does |
//! |---|---|
//! | `N> INPUT`, `N /to-server INPUT` | sends INPUT to connection N's upstream, as if its client had |
//! | `N< INPUT`, `N /to-client INPUT` | sends INPUT to connection N's client, as if the upstream had |
//! | `N /close [CODE [REASON]]` | closes connection N both ways with CODE (1000) and REASON |
//! | `N /intercept on\|off` | holds every message of connection N, or stops |
//! | `/intercept EXPR`, `/intercept off` | holds the messages that match EXPR (filter syntax), or stops |
//! | `/forward K\|all`, `/drop K\|all` | decides held message K (or every held message) |
//! | `/edit K INPUT` | relays INPUT instead of held message K |
//!
//! INPUT is the `wsp connect` composer's syntax (`/json ping`, `/ch news hi`, a SendMsg as JSON,
//! `/text raw`, `/b64 AAE=`, `/close 4000 bye`). Each connection's queue holds 16 commands; a
//! line for a full queue or an unknown connection is refused with the reason.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::intercept::{Intercept, Verdict};
use crate::connect::compose::{self, Outgoing};
use crate::connect::model::Dir;

/// What a connection's relay is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send a frame one way (injected): `Dir::Out` to the upstream, `Dir::In` to the client.
    Send(Dir, Outgoing),
    /// Close both sides with this code and reason.
    Close(u16, String),
}

/// Commands waiting for one connection's relay.
pub type Queue = mpsc::Receiver<Command>;

/// Commands a connection's queue holds.
const QUEUED: usize = 16;

/// Every open connection's command queue.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<u64, mpsc::Sender<Command>>>);

impl Connections {
    /// Opens connection `id`'s queue; [`Connections::close`] when it ends.
    pub fn open(&self, id: u64) -> Queue {
        let (tx, rx) = mpsc::channel(QUEUED);
        self.lock().insert(id, tx);
        rx
    }

    /// Forgets connection `id`.
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Command>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, id: u64, c: Command) -> Result<(), String> {
        let tx = self
            .lock()
            .get(&id)
            .cloned()
            .ok_or(format!("no open connection {id}"))?;
        tx.try_send(c)
            .map_err(|_| format!("connection {id}: {QUEUED} commands are waiting already"))
    }
}

/// Carries out one line; what was done (for the UI's notice), or what is wrong with it.
pub fn execute(
    line: &str,
    conns: &Connections,
    intercept: &Intercept,
    next_id: &mut u64,
) -> Result<String, String> {
    let line = line.trim();
    let digits = line
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(line.len());
    if digits > 0 {
        let id: u64 = line[..digits]
            .parse()
            .map_err(|_| format!("{:?} is not a connection number", &line[..digits]))?;
        return for_connection(id, line[digits..].trim_start(), conns, intercept, next_id);
    }
    let (word, args) = split_word(line);
    let hold = |args: &str| -> Result<Option<u64>, String> {
        match args {
            "all" => Ok(None),
            k => k
                .trim_start_matches('#')
                .parse()
                .map(Some)
                .map_err(|_| format!("{word}: give a held message's number (#K) or `all`")),
        }
    };
    match word {
        "/forward" | "/drop" => {
            let verdict = if word == "/forward" {
                Verdict::Forward
            } else {
                Verdict::Drop
            };
            let done = if word == "/forward" {
                "forwarded"
            } else {
                "dropped"
            };
            match hold(args)? {
                None => Ok(format!("{} held messages {done}", intercept.decide_all(&verdict))),
                Some(k) => {
                    let conn = intercept.decide(k, verdict)?;
                    Ok(format!("#{k} of connection {conn} {done}"))
                }
            }
        }
        "/edit" => {
            let (k, input) = split_word(args);
            let k = hold(k)?.ok_or("/edit: give one held message's number")?;
            let frame = compose::parse(input, next_id)
                .map_err(|e| format!("/edit #{k}: {e}"))?
                .frame;
            let conn = intercept.decide(k, Verdict::Replace(frame))?;
            Ok(format!("#{k} of connection {conn} replaced by the edited message"))
        }
        "/intercept" => {
            if args.is_empty() {
                return Err("/intercept EXPR (filter syntax: cmd:X ch:X dir:up|down words), or /intercept off".into());
            }
            if args == "on" {
                return Err("`/intercept on` is for one connection: `N /intercept on` (key i in the UI); `/intercept EXPR` holds what matches EXPR on every connection".into());
            }
            let off = args == "off";
            intercept.set_expr((!off).then_some(args));
            Ok(if off {
                "intercepting by expression: off".into()
            } else {
                format!("holding what matches {args:?}")
            })
        }
        _ => Err("write `N> INPUT` (to connection N's upstream), `N< INPUT` (to its client), `N /close CODE REASON`, `/intercept EXPR`, `/forward K`, `/drop K` or `/edit K INPUT`".into()),
    }
}

/// The first word of `s` and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    s.split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((s, ""))
}

fn for_connection(
    id: u64,
    rest: &str,
    conns: &Connections,
    intercept: &Intercept,
    next_id: &mut u64,
) -> Result<String, String> {
    let (dir, input) = if let Some(i) = rest.strip_prefix('>') {
        (Dir::Out, i)
    } else if let Some(i) = rest.strip_prefix('<') {
        (Dir::In, i)
    } else {
        match split_word(rest) {
            ("/to-server", i) => (Dir::Out, i),
            ("/to-client", i) => (Dir::In, i),
            ("/intercept", on) => {
                let on = match on {
                    "on" | "" => true,
                    "off" => false,
                    other => return Err(format!("{id} /intercept: say on or off, not {other:?}")),
                };
                if conns.lock().get(&id).is_none() {
                    return Err(format!("no open connection {id}"));
                }
                intercept.set_conn(id, on);
                return Ok(format!(
                    "connection {id}: every message {}",
                    if on { "held" } else { "relayed" }
                ));
            }
            ("/close", _) => {
                let Outgoing::Close(code, reason) = compose::parse(rest, next_id)?.frame else {
                    unreachable!("/close parses to a close frame")
                };
                conns.send(id, Command::Close(code, reason))?;
                return Ok(format!("closing connection {id} with {code}"));
            }
            _ => return Err(format!(
                "after the connection number: > INPUT, < INPUT, /to-server INPUT, /to-client INPUT, /close CODE REASON or /intercept on|off (not {rest:?})"
            )),
        }
    };
    let frame = compose::parse(input.trim(), next_id)?.frame;
    conns.send(id, Command::Send(dir, frame))?;
    Ok(format!(
        "sent to connection {id}'s {}",
        match dir {
            Dir::Out => "upstream",
            Dir::In => "client",
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_a_connection_and_a_direction_or_a_hold() {
        let conns = Connections::default();
        let intercept = Intercept::default();
        let mut n = 0;
        let mut rx = conns.open(3);
        let mut run = |l: &str| execute(l, &conns, &intercept, &mut n);
        run("3> /text up").unwrap();
        run("3 /to-client /text down").unwrap();
        run("3 /close 4000 bye now").unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            Command::Send(Dir::Out, Outgoing::Text("up".into()))
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Command::Send(Dir::In, Outgoing::Text("down".into()))
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Command::Close(4000, "bye now".into())
        );
        assert!(run("4> /text x")
            .unwrap_err()
            .contains("no open connection 4"));
        assert!(run("3 hello").is_err());
        assert!(run("/text x").is_err(), "a frame needs a connection");
        assert!(run("/forward 9").unwrap_err().contains("#9"));
        run("3 /intercept on").unwrap();
        assert!(intercept.conn_on(3));
        assert!(run("/intercept on")
            .unwrap_err()
            .contains("N /intercept on"));
        run("/intercept cmd:join").unwrap();
        assert_eq!(intercept.expr().as_deref(), Some("cmd:join"));
        run("/intercept off").unwrap();
        assert_eq!(intercept.expr(), None);
        for _ in 0..QUEUED {
            run("3> /text fill").unwrap();
        }
        assert!(run("3> /text one too many")
            .unwrap_err()
            .contains("waiting"));
    }

    #[test]
    fn held_messages_are_forwarded_edited_or_dropped() {
        let conns = Connections::default();
        let intercept = Intercept::default();
        let mut n = 0;
        intercept.set_conn(1, true);
        let mut a = intercept.hold(1);
        let mut b = intercept.hold(1);
        let mut c = intercept.hold(1);
        let mut run = |l: &str| execute(l, &conns, &intercept, &mut n);
        run(&format!("/edit {} /text edited", a.hold)).unwrap();
        run(&format!("/drop #{}", b.hold)).unwrap();
        assert_eq!(run("/forward all").unwrap(), "1 held messages forwarded");
        assert_eq!(
            a.verdict.try_recv(),
            Ok(Verdict::Replace(Outgoing::Text("edited".into())))
        );
        assert_eq!(b.verdict.try_recv(), Ok(Verdict::Drop));
        assert_eq!(c.verdict.try_recv(), Ok(Verdict::Forward));
    }
}
