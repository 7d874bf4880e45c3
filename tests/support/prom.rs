//! Reading Prometheus' text format in tests.

use std::collections::HashMap;

pub struct Scrape(pub HashMap<String, f64>);

pub async fn scrape(url: &str) -> Scrape {
    let text = reqwest::get(url)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    Scrape(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| v.parse::<f64>().ok().map(|v| (k.to_string(), v)))
            .collect(),
    )
}

impl Scrape {
    /// The sum of the series of `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .filter(|(k, _)| {
                labels
                    .iter()
                    .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// How many series `name` has.
    pub fn series(&self, name: &str) -> usize {
        self.0
            .keys()
            .filter(|k| k.split('{').next() == Some(name))
            .count()
    }
}
