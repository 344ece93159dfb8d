//! Article context for a sentence: its neighbours, fed to the model as the
//! second segment (token type 1) when a checkpoint was trained with
//! `--context N`, so that "Responding to these allegations, ..." can be
//! judged in place.

/// The context segment of sentence `i` of `article`: up to `k` sentences
/// before it, a `[SEP]`-free marker, then up to `k` after it.
pub fn context_for(article: &[&str], i: usize, k: usize) -> String {
    let before = article[i.saturating_sub(k)..i].join(" ");
    let after = article[(i + 1).min(article.len())..(i + 1 + k).min(article.len())].join(" ");
    format!("{before} >> {after}").trim().to_string()
}

/// Contexts for every sentence, given each sentence's article key in data
/// order (sentences of one article must be listed in reading order).
pub fn contexts(texts: &[&str], articles: &[String], k: usize) -> Vec<String> {
    let mut out = vec![String::new(); texts.len()];
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, a) in articles.iter().enumerate() {
        let g = *at.entry(a.as_str()).or_insert_with(|| {
            groups.push((a.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    for (_, members) in groups {
        let art: Vec<&str> = members.iter().map(|&i| texts[i]).collect();
        for (pos, &i) in members.iter().enumerate() {
            out[i] = context_for(&art, pos, k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_in_article_order() {
        let a = ["A.", "B.", "C.", "D."];
        assert_eq!(context_for(&a, 0, 1), ">> B.");
        assert_eq!(context_for(&a, 2, 1), "B. >> D.");
        assert_eq!(context_for(&a, 3, 2), "B. C. >>");
        let c = contexts(
            &["x1", "y1", "x2"],
            &["x".into(), "y".into(), "x".into()],
            1,
        );
        assert_eq!(c, vec![">> x2", ">>", "x1 >>"]);
    }
}
