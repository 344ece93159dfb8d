//! The sentence splitter on hard news text: a fixture of abbreviations,
//! initials, decimals, times, quotes and attribution tails, and every
//! article of the project's corpus.

use stance::splitter::split_sentences;

fn paragraphs() -> Vec<Vec<String>> {
    let text = include_str!("../fixtures/hard_sentences.txt");
    let mut out = vec![Vec::new()];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            out.push(Vec::new());
        } else {
            out.last_mut().unwrap().push(line.to_string());
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

#[test]
fn hard_news_sentences() {
    let paras = paragraphs();
    assert!(paras.len() >= 6);
    for expected in paras {
        let article = expected.join(" ");
        let got: Vec<String> = split_sentences(&article)
            .into_iter()
            .map(|s| s.text)
            .collect();
        assert_eq!(got, expected, "\narticle: {article}");
    }
}

#[test]
fn offsets_point_into_the_input_and_blank_lines_split() {
    let text = "Iran denies hacking claims\n\nOfficials said on Monday that Iran was responsible.\nThe claim was\nrejected.";
    let s = split_sentences(text);
    let got: Vec<&str> = s.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "Iran denies hacking claims",
            "Officials said on Monday that Iran was responsible.",
            "The claim was\nrejected."
        ]
    );
    let chars: Vec<char> = text.chars().collect();
    for x in &s {
        assert_eq!(chars[x.start..x.end].iter().collect::<String>(), x.text);
    }
    assert!(split_sentences("   \n ").is_empty());
}

#[test]
fn lines_without_final_punctuation_stand_alone() {
    let text = "Iran denies hacking claims\nBy Ellen Marsh\nWASHINGTON (Reuters)\nOfficials said on Monday that Iran was responsible.\nHighlights:\n- Shares fell\n- Bonds rose\nThe claim was\nrejected by the mission.";
    let got: Vec<String> = split_sentences(text).into_iter().map(|s| s.text).collect();
    assert_eq!(
        got,
        vec![
            "Iran denies hacking claims",
            "By Ellen Marsh",
            "WASHINGTON (Reuters)",
            "Officials said on Monday that Iran was responsible.",
            "Highlights:",
            "- Shares fell",
            "- Bonds rose",
            "The claim was\nrejected by the mission."
        ]
    );
}

#[test]
fn cjk_and_full_width_terminators_end_sentences() {
    let got: Vec<String> =
        split_sentences("政府は疑惑を否定した。警察は捜査を続けている！本当か？")
            .into_iter()
            .map(|s| s.text)
            .collect();
    assert_eq!(
        got,
        vec![
            "政府は疑惑を否定した。",
            "警察は捜査を続けている！",
            "本当か？"
        ]
    );
}

/// Every corpus article, joined with spaces, splits back into its sentences.
#[test]
fn corpus_articles_split_back_into_their_sentences() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raw");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("no corpus at {}", dir.display())
    };
    let mut articles: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in entries {
        let p = e.unwrap().path();
        for row in stance::data::read_file(&p, None).unwrap() {
            articles
                .entry(row.article.clone().unwrap())
                .or_default()
                .push(row.text);
        }
    }
    let (mut ok, mut total, mut failures) = (0, 0, Vec::new());
    for (id, sentences) in &articles {
        let got: Vec<String> = split_sentences(&sentences.join(" "))
            .into_iter()
            .map(|s| s.text)
            .collect();
        let agree = got == *sentences;
        total += 1;
        if agree {
            ok += 1;
        } else if failures.len() < 10 {
            let first_bad = got
                .iter()
                .zip(sentences)
                .find(|(g, e)| g != e)
                .map(|(g, e)| format!("got {g:?}\n  want {e:?}"))
                .unwrap_or_default();
            failures.push(format!("{id}: {first_bad}"));
        }
    }
    // Every article must come back exactly.
    assert_eq!(
        ok,
        total,
        "{} of {total} articles split differently:\n{}",
        total - ok,
        failures.join("\n")
    );
}
