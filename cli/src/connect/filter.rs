//! The frame filter: `cmd:X ch:X dir:in|out status:N type:text|binary|…` and free words.
//! `wsp proxy` uses it too (its `--intercept` and its frame list), where `dir:out` is what the
//! client sent (also `dir:up`, `dir:to_upstream`) and `dir:in` what the upstream sent (also
//! `dir:down`, `dir:to_client`).

use crate::connect::model::{Dir, FrameRecord};

/// A parsed filter line.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    cmd: Option<String>,
    channel: Option<String>,
    dir: Option<Dir>,
    status: Option<i64>,
    kind: Option<String>,
    words: Vec<String>,
}

impl Filter {
    /// Parses filter text; unknown `key:` prefixes are free words.
    pub fn parse(s: &str) -> Self {
        let mut f = Filter::default();
        for w in s.split_whitespace() {
            match w.split_once(':') {
                Some(("cmd", v)) => f.cmd = Some(v.to_string()),
                Some(("ch", v)) | Some(("channel", v)) => f.channel = Some(v.to_string()),
                Some(("dir", "in" | "down" | "to_client")) => f.dir = Some(Dir::In),
                Some(("dir", "out" | "up" | "to_upstream")) => f.dir = Some(Dir::Out),
                Some(("status", v)) if v.parse::<i64>().is_ok() => f.status = v.parse().ok(),
                Some(("type", v)) => f.kind = Some(v.to_string()),
                _ => f.words.push(w.to_lowercase()),
            }
        }
        f
    }

    /// Does the frame pass?
    pub fn matches(&self, r: &FrameRecord) -> bool {
        let s = &r.summary;
        if self
            .cmd
            .as_ref()
            .is_some_and(|c| s.cmd.as_deref() != Some(c.as_str()))
        {
            return false;
        }
        if self
            .channel
            .as_ref()
            .is_some_and(|c| !s.channels.iter().any(|x| x == c))
        {
            return false;
        }
        if self.dir.is_some_and(|d| d != r.dir) {
            return false;
        }
        if self.status.is_some_and(|st| s.status != Some(st)) {
            return false;
        }
        if self.kind.as_ref().is_some_and(|k| k != r.kind.name()) {
            return false;
        }
        if self.words.is_empty() {
            return true;
        }
        let mut hay = String::from_utf8_lossy(&r.data).to_lowercase();
        for part in [&s.cmd, &s.from, &s.to].into_iter().flatten() {
            hay.push(' ');
            hay.push_str(&part.to_lowercase());
        }
        self.words.iter().all(|w| hay.contains(w.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::model::Kind;

    fn text(dir: Dir, json: &str) -> FrameRecord {
        FrameRecord::new(dir, Kind::Text, bytes::Bytes::from(json.to_string()), None)
    }

    #[test]
    fn keys_select_and_words_search_the_frame() {
        let join = text(
            Dir::In,
            r#"{"cmd":"join","seqno":"1","status":0,"msg":"ok","data":{"channel":"news"}}"#,
        );
        let refused = text(
            Dir::In,
            r#"{"cmd":"join","seqno":"2","status":429,"msg":"too many","data":null}"#,
        );
        let out = text(Dir::Out, r#"{"cmd":"ping","seqno":"3"}"#);
        let pass = |f: &str, r: &FrameRecord| Filter::parse(f).matches(r);
        assert!(pass("", &join) && pass("", &out));
        assert!(pass("cmd:join", &join) && !pass("cmd:join", &out));
        assert!(pass("dir:out", &out) && !pass("dir:out", &join));
        assert!(pass("dir:to_upstream", &out) && pass("dir:down", &join));
        assert!(pass("status:429", &refused) && !pass("status:429", &join));
        assert!(pass("type:text", &join) && !pass("type:binary", &join));
        assert!(pass("NEWS", &join), "free words ignore case");
        assert!(!pass("news cmd:ping", &join), "every part must match");
        assert!(
            pass("odd:key", &text(Dir::In, "odd:key here")),
            "unknown keys are words"
        );
    }
}
