//! Validates the hand-written corpus in data/: every line parses with a valid
//! label, ids are unique, articles are 8-30 sentences in order, the split
//! files partition the corpus by article, label and domain shares are within
//! bounds, and no two sentences share more than 80% of their word 3-grams.

use stance::data::{read_file, LabelledSentence};
use stance::labels::LabelSet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn corpus() -> Vec<LabelledSentence> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir().join("raw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| read_file(f, Some(&LabelSet::default_stance())).unwrap())
        .collect()
}

#[test]
fn corpus_is_well_formed_and_balanced() {
    let rows = corpus();
    assert!(rows.len() >= 4000, "{} sentences", rows.len());
    let mut ids = HashSet::new();
    let mut articles: BTreeMap<String, Vec<&LabelledSentence>> = BTreeMap::new();
    for r in &rows {
        let id = r.id.clone().expect("every sentence has an id");
        assert!(ids.insert(id.clone()), "duplicate id {id}");
        assert!(
            r.domain.is_some() && r.index.is_some(),
            "{id}: missing domain or index"
        );
        articles
            .entry(r.article.clone().expect("article"))
            .or_default()
            .push(r);
    }
    assert!(articles.len() >= 250, "{} articles", articles.len());
    for (a, s) in &articles {
        assert!((8..=30).contains(&s.len()), "{a}: {} sentences", s.len());
        let idx: Vec<usize> = s.iter().map(|r| r.index.unwrap()).collect();
        assert_eq!(
            idx,
            (0..s.len()).collect::<Vec<_>>(),
            "{a}: indices out of order"
        );
        assert_eq!(
            s.iter().map(|r| &r.domain).collect::<HashSet<_>>().len(),
            1,
            "{a}: mixed domains"
        );
    }
    let n = rows.len() as f64;
    let mut labels: HashMap<&str, usize> = HashMap::new();
    let mut domains: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *labels.entry(&r.label).or_default() += 1;
        *domains.entry(r.domain.as_deref().unwrap()).or_default() += 1;
    }
    for l in LabelSet::default_stance().names() {
        let share = labels.get(l.as_str()).copied().unwrap_or(0) as f64 / n;
        assert!(share >= 0.15, "{l}: {share:.3} of sentences");
    }
    assert!(domains.len() >= 12, "{} domains", domains.len());
    for (d, c) in &domains {
        assert!(*c as f64 / n <= 0.15, "{d}: {c} sentences is over 15%");
    }
}

fn trigrams(text: &str) -> HashSet<String> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    words.windows(3).map(|w| w.join(" ")).collect()
}

#[test]
fn no_near_duplicate_sentences() {
    let rows = corpus();
    let grams: Vec<HashSet<String>> = rows.iter().map(|r| trigrams(&r.text)).collect();
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, g) in grams.iter().enumerate() {
        for t in g {
            index.entry(t.as_str()).or_default().push(i);
        }
    }
    let mut bad = Vec::new();
    for (i, g) in grams.iter().enumerate() {
        let mut shared: HashMap<usize, usize> = HashMap::new();
        for t in g {
            for &j in &index[t.as_str()] {
                if j > i {
                    *shared.entry(j).or_default() += 1;
                }
            }
        }
        for (j, c) in shared {
            // Share of the smaller sentence's 3-grams found in the other.
            if c as f64 / g.len().min(grams[j].len()) as f64 > 0.8 {
                bad.push(format!("{:?} ~ {:?}", rows[i].text, rows[j].text));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} near-duplicate pairs:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn split_files_partition_the_corpus_by_article() {
    let rows = corpus();
    let all: HashSet<String> = rows.iter().map(|r| r.id.clone().unwrap()).collect();
    let mut seen_ids = HashSet::new();
    let mut article_split: HashMap<String, &str> = HashMap::new();
    let mut sizes = Vec::new();
    for part in ["train", "dev", "test"] {
        let path = data_dir().join(format!("stance.{part}.jsonl"));
        let split = read_file(&path, Some(&LabelSet::default_stance())).unwrap();
        sizes.push(split.len());
        for r in split {
            assert!(
                seen_ids.insert(r.id.clone().unwrap()),
                "{:?} in two splits",
                r.id
            );
            let prev = article_split.insert(r.article.clone().unwrap(), part);
            assert!(
                prev.is_none() || prev == Some(part),
                "article {:?} spans {prev:?} and {part}",
                r.article
            );
        }
    }
    assert_eq!(seen_ids, all, "the splits must hold exactly the corpus");
    let n = rows.len() as f64;
    assert!(
        (sizes[0] as f64 / n - 0.8).abs() < 0.03 && (sizes[1] as f64 / n - 0.1).abs() < 0.03,
        "{sizes:?}"
    );
}
