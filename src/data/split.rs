//! Split labelled sentences into train / dev / test by article, so that no
//! article spans two splits, stratified by domain (or, without domains, by
//! each article's most frequent label) as far as whole articles allow.

use super::{normalise, LabelledSentence};
use crate::rng::Rng;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy)]
pub struct SplitConfig {
    pub dev: f64,
    pub test: f64,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct Split {
    pub train: Vec<LabelledSentence>,
    pub dev: Vec<LabelledSentence>,
    pub test: Vec<LabelledSentence>,
    /// Normalised sentences that occur in more than one split.
    pub cross_split_duplicates: Vec<String>,
}

impl Split {
    pub fn parts(&self) -> [(&'static str, &Vec<LabelledSentence>); 3] {
        [
            ("train", &self.train),
            ("dev", &self.dev),
            ("test", &self.test),
        ]
    }
}

pub fn split_by_article(rows: &[LabelledSentence], cfg: SplitConfig) -> Result<Split> {
    if !(0.0..1.0).contains(&cfg.dev)
        || !(0.0..1.0).contains(&cfg.test)
        || cfg.dev + cfg.test >= 1.0
    {
        return Err(Error::Invalid(format!(
            "--dev {} and --test {} must be fractions summing to less than 1",
            cfg.dev, cfg.test
        )));
    }
    // Articles in first-appearance order, then grouped into strata.
    let mut articles: Vec<(String, Vec<usize>)> = Vec::new();
    let mut pos: HashMap<String, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let k = r.article_key();
        let at = *pos.entry(k.clone()).or_insert_with(|| {
            articles.push((k, Vec::new()));
            articles.len() - 1
        });
        articles[at].1.push(i);
    }
    let mut strata: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (a, (_, members)) in articles.iter().enumerate() {
        strata.entry(stratum(rows, members)).or_default().push(a);
    }
    let mut rng = Rng::new(cfg.seed);
    let fracs = [1.0 - cfg.dev - cfg.test, cfg.dev, cfg.test];
    let mut assigned = vec![0usize; articles.len()];
    for (_, mut arts) in strata {
        rng.shuffle(&mut arts);
        let total: usize = arts.iter().map(|&a| articles[a].1.len()).sum();
        let mut filled = [0usize; 3];
        for a in arts {
            // Give the article to the split furthest below its quota.
            let deficit = |s: usize| fracs[s] * total as f64 - filled[s] as f64;
            let s = (0..3)
                .filter(|&s| fracs[s] > 0.0)
                .max_by(|&x, &y| deficit(x).total_cmp(&deficit(y)))
                .unwrap_or(0);
            filled[s] += articles[a].1.len();
            assigned[a] = s;
        }
    }
    let mut split = Split::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut dups = std::collections::BTreeSet::new();
    for (a, (_, members)) in articles.iter().enumerate() {
        for &i in members {
            let key = normalise(&rows[i].text);
            if let Some(&other) = seen.get(&key) {
                if other != assigned[a] {
                    dups.insert(key.clone());
                }
            }
            seen.insert(key, assigned[a]);
            let part = match assigned[a] {
                0 => &mut split.train,
                1 => &mut split.dev,
                _ => &mut split.test,
            };
            part.push(rows[i].clone());
        }
    }
    split.cross_split_duplicates = dups.into_iter().collect();
    Ok(split)
}

fn stratum(rows: &[LabelledSentence], members: &[usize]) -> String {
    if let Some(d) = &rows[members[0]].domain {
        return format!("domain:{d}");
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in members {
        *counts.entry(rows[i].label.as_str()).or_default() += 1;
    }
    let top = counts
        .iter()
        .max_by_key(|(l, c)| (**c, std::cmp::Reverse(*l)))
        .map(|(l, _)| *l)
        .unwrap_or("");
    format!("label:{top}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<LabelledSentence> {
        let mut v = Vec::new();
        for a in 0..40 {
            for i in 0..(5 + a % 4) {
                v.push(LabelledSentence {
                    id: None,
                    article: Some(format!("a{a}")),
                    index: Some(i),
                    text: format!("sentence {i} of article {a}"),
                    label: ["assertion", "context"][i % 2].into(),
                    domain: Some(["x", "y"][a % 2].into()),
                });
            }
        }
        v.push(LabelledSentence {
            id: None,
            article: Some("a0".into()),
            index: Some(99),
            text: "Shared line.".into(),
            label: "context".into(),
            domain: Some("x".into()),
        });
        v.push(LabelledSentence {
            id: None,
            article: Some("a1".into()),
            index: Some(99),
            text: "shared  LINE.".into(),
            label: "context".into(),
            domain: Some("y".into()),
        });
        v
    }

    #[test]
    fn disjoint_by_article_proportional_and_seeded() {
        let rows = corpus();
        let cfg = SplitConfig {
            dev: 0.1,
            test: 0.2,
            seed: 3,
        };
        let s = split_by_article(&rows, cfg).unwrap();
        assert_eq!(s.train.len() + s.dev.len() + s.test.len(), rows.len());
        let arts = |v: &Vec<LabelledSentence>| {
            v.iter()
                .map(|r| r.article.clone().unwrap())
                .collect::<std::collections::HashSet<_>>()
        };
        assert!(arts(&s.train).is_disjoint(&arts(&s.dev)));
        assert!(arts(&s.train).is_disjoint(&arts(&s.test)));
        assert!(arts(&s.dev).is_disjoint(&arts(&s.test)));
        let n = rows.len() as f64;
        assert!(
            (s.test.len() as f64 / n - 0.2).abs() < 0.05,
            "test share {}",
            s.test.len()
        );
        assert!(
            (s.dev.len() as f64 / n - 0.1).abs() < 0.05,
            "dev share {}",
            s.dev.len()
        );
        // both domains in every split
        for (_, part) in s.parts() {
            assert!(
                part.iter().any(|r| r.domain.as_deref() == Some("x"))
                    && part.iter().any(|r| r.domain.as_deref() == Some("y"))
            );
        }
        let again = split_by_article(&rows, cfg).unwrap();
        assert_eq!(again.test, s.test);
        let other = split_by_article(&rows, SplitConfig { seed: 4, ..cfg }).unwrap();
        assert_ne!(other.test, s.test);
        assert!(split_by_article(
            &rows,
            SplitConfig {
                dev: 0.6,
                test: 0.5,
                seed: 1
            }
        )
        .is_err());
    }

    #[test]
    fn reports_cross_split_duplicates() {
        let rows = corpus();
        for seed in 0..20 {
            let s = split_by_article(
                &rows,
                SplitConfig {
                    dev: 0.1,
                    test: 0.1,
                    seed,
                },
            )
            .unwrap();
            let a0 = s
                .parts()
                .iter()
                .position(|(_, p)| p.iter().any(|r| r.article.as_deref() == Some("a0")))
                .unwrap();
            let a1 = s
                .parts()
                .iter()
                .position(|(_, p)| p.iter().any(|r| r.article.as_deref() == Some("a1")))
                .unwrap();
            assert_eq!(
                s.cross_split_duplicates.len(),
                usize::from(a0 != a1),
                "seed {seed}"
            );
        }
    }
}
