//! The JSON shapes of `stance serve`: what a request may hold, what a
//! response holds, and the errors, each naming the problem.
//!
//! A request is `{"text": "..."}` or `{"articles": [{"id": ..., "text":
//! "..."}, ...]}`; an article may say `"format": "text" | "html" | "auto"`
//! (default `auto`, as `predict --input-format auto` decides by content),
//! and the request may set `"threshold"` and `"top_k"` as the CLI flags do.
//! Ids come back exactly as sent (a number stays a number).

use crate::input::article_from_json;
use crate::predict::{Article, Prediction};
use serde_json::{json, Value};

/// Most articles one request may carry.
pub const MAX_ARTICLES: usize = 1000;

/// A parsed request: the articles with their ids and the output options.
#[derive(Debug)]
pub struct PredictRequest {
    pub ids: Vec<Value>,
    pub articles: Vec<Article>,
    pub sentences: usize,
    pub threshold: Option<f32>,
    pub top_k: usize,
}

/// Parse a `/v1/predict` JSON body. Errors say what is wrong and where.
pub fn parse_request(body: &[u8]) -> Result<PredictRequest, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("body must be a JSON object: {\"text\": ...} or {\"articles\": [...]}".into());
    };
    for k in obj.keys() {
        if !["text", "id", "format", "articles", "threshold", "top_k"].contains(&k.as_str()) {
            return Err(format!(
                "unknown field {k:?} (expected text, id, format, articles, threshold, top_k)"
            ));
        }
    }
    let threshold = match obj.get("threshold") {
        None | Some(Value::Null) => None,
        Some(t) => match t.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Some(t as f32),
            _ => return Err(format!("\"threshold\" must be a number in [0, 1], not {t}")),
        },
    };
    let top_k = match obj.get("top_k") {
        None | Some(Value::Null) => 0,
        Some(k) => match k.as_u64() {
            Some(k) if k <= 64 => k as usize,
            _ => return Err(format!("\"top_k\" must be an integer in 0..=64, not {k}")),
        },
    };
    let items: Vec<(Value, &Value, String)> = match (obj.get("text"), obj.get("articles")) {
        (Some(_), Some(_)) => return Err("give either \"text\" or \"articles\", not both".into()),
        (None, None) => {
            return Err("missing \"text\" (one article) or \"articles\" (a list)".into())
        }
        (Some(_), None) => vec![(
            obj.get("id").cloned().unwrap_or(Value::Null),
            &v,
            "body".to_string(),
        )],
        (None, Some(a)) => {
            if obj.contains_key("id") || obj.contains_key("format") {
                return Err(
                    "with \"articles\", \"id\" and \"format\" go inside each article".into(),
                );
            }
            let Some(list) = a.as_array() else {
                return Err("\"articles\" must be a list of {\"id\": ..., \"text\": ...}".into());
            };
            if list.is_empty() {
                return Err("\"articles\" is empty".into());
            }
            if list.len() > MAX_ARTICLES {
                return Err(format!(
                    "{} articles in one request; at most {MAX_ARTICLES}",
                    list.len()
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, x)| {
                    (
                        x.get("id").cloned().unwrap_or_else(|| json!(i)),
                        x,
                        format!("articles[{i}]"),
                    )
                })
                .collect()
        }
    };
    let mut req = PredictRequest {
        ids: Vec::new(),
        articles: Vec::new(),
        sentences: 0,
        threshold,
        top_k,
    };
    for (id, item, place) in items {
        let (article, n) = parse_article(id.clone(), item, &place)?;
        req.ids.push(id);
        req.sentences += n;
        req.articles.push(article);
    }
    Ok(req)
}

/// One article object (`text`, optional `id` and `format`), checked to have
/// something to label. Returns it with its sentence count.
pub fn parse_article(id: Value, item: &Value, place: &str) -> Result<(Article, usize), String> {
    let Some(obj) = item.as_object() else {
        return Err(format!(
            "{place}: expected an object {{\"id\": ..., \"text\": ...}}"
        ));
    };
    article_from_json(obj, &id).map_err(|m| format!("{place}: {m}"))
}

/// One article of a response: its id and sentences (without the repeated
/// article name).
pub fn article_json(id: &Value, preds: &[Prediction], top_k: usize) -> Value {
    let sentences: Vec<Value> = preds
        .iter()
        .map(|p| {
            let mut s = p.to_json(top_k);
            if let Some(o) = s.as_object_mut() {
                o.remove("article");
            }
            s
        })
        .collect();
    json!({"id": id, "sentences": sentences})
}

/// An error body: `{"error": "..."}`.
pub fn error_json(message: &str) -> Value {
    json!({ "error": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_errors() {
        let r = parse_request(br#"{"text": "The mayor denied it. Police said so."}"#).unwrap();
        assert_eq!(
            (r.articles.len(), r.sentences, r.ids[0].clone()),
            (1, 2, Value::Null)
        );
        let r = parse_request(br#"{"articles": [{"id": 7, "text": "<p>One.</p><p>Two.</p>"}, {"text": "Three."}], "top_k": 2}"#).unwrap();
        assert_eq!(r.ids, vec![json!(7), json!(1)]);
        assert_eq!(r.articles[0].text, "One.\n\nTwo.");
        assert_eq!(r.top_k, 2);
        for (body, want) in [
            (&b"{"[..], "not valid JSON"),
            (b"[]", "must be a JSON object"),
            (b"{}", "missing \"text\""),
            (br#"{"text": "  "}"#, "empty"),
            (br#"{"text": 3}"#, "missing string field"),
            (br#"{"text": "a", "articles": []}"#, "not both"),
            (br#"{"articles": []}"#, "is empty"),
            (
                br#"{"articles": [{"text": "ok."}, {"id": 1}]}"#,
                "articles[1]",
            ),
            (br#"{"text": "a.", "threshold": 2}"#, "threshold"),
            (br#"{"text": "a.", "top_k": -1}"#, "top_k"),
            (br#"{"text": "a.", "colour": 1}"#, "unknown field"),
            (br#"{"text": "a.", "format": "jsonl"}"#, "format"),
            (
                br#"{"text": "<script>x</script>", "format": "html"}"#,
                "no text outside markup",
            ),
        ] {
            let e = parse_request(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
