//! Command arguments as people type them, shared by `wsp api` and the `wsp connect` composer
//! (httpie's convention): `key=value` is a string, `key:=JSON` any JSON value, and dots nest
//! (`data.title=hi` → `{"data":{"title":"hi"}}`). In the composer a JSON object is accepted as
//! well, and words are split like a shell's (`title='two words'`).

use serde_json::{Map, Value};

/// Builds `data` from `key=value` and `key:=JSON` arguments.
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Value, String> {
    let mut data = Map::new();
    for a in args {
        let a = a.as_ref();
        let (key, value) = if let Some((k, v)) = a.split_once(":=") {
            let v: Value = serde_json::from_str(v)
                .map_err(|e| format!("{a:?}: the part after := must be JSON ({e})"))?;
            (k, v)
        } else if let Some((k, v)) = a.split_once('=') {
            (k, Value::String(v.to_string()))
        } else {
            return Err(format!(
                "argument {a:?}: write key=value (a string) or key:=JSON"
            ));
        };
        if key.is_empty() {
            return Err(format!("argument {a:?} has no key"));
        }
        set_path(&mut data, key, value)?;
    }
    Ok(Value::Object(data))
}

/// The arguments of a composer line: a JSON value when it starts with `{` or `[`, else
/// shell-like words of `key=value` / `key:=JSON`; `{}` when empty.
pub fn parse_line(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    if text.starts_with('{') || text.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("JSON arguments: {e}"));
    }
    let words = shlex::split(text).ok_or("unbalanced quotes in the arguments")?;
    parse(&words)
}

fn set_path(map: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    match key.split_once('.') {
        None => {
            map.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(inner) => set_path(inner, rest, value)?,
                _ => {
                    return Err(format!(
                        "{key:?}: {head:?} is already a value, not an object"
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_build_nested_json() {
        let args = [
            "channel=news",
            "data.title=hi",
            "data.n:=3",
            "code:=4000",
            "tags:=[1,2]",
        ];
        assert_eq!(
            parse(&args).unwrap(),
            json!({"channel": "news", "data": {"title": "hi", "n": 3}, "code": 4000, "tags": [1, 2]})
        );
        assert!(parse(&["novalue"]).is_err());
        assert!(parse(&["x:={bad"]).is_err());
        assert!(parse(&["a=1", "a.b=2"]).is_err());
    }

    #[test]
    fn a_composer_line_takes_words_or_json() {
        assert_eq!(
            parse_line("channel=news title='two words'").unwrap(),
            json!({"channel": "news", "title": "two words"})
        );
        assert_eq!(
            parse_line(r#"{"channel":"news"}"#).unwrap(),
            json!({"channel": "news"})
        );
        assert_eq!(parse_line("").unwrap(), json!({}));
        assert!(parse_line("title='open").is_err());
    }
}
