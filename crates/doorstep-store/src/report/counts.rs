//! The report's counts collected per group (child-node keys rolled up from node paths), and the
//! resolution-time percentiles.

use super::sql::BUCKET_MS;
use super::{ReportCounts, ReportGroup, ReportQuery};

/// The path of the child of `subtree` that `node_path` lies under (`subtree` itself for a ticket at
/// the root).
pub(super) fn child_key(subtree: &str, node_path: &str) -> String {
    match node_path
        .strip_prefix(subtree)
        .and_then(|rest| rest.find('|'))
    {
        Some(end) => node_path[..subtree.len() + end + 1].to_owned(),
        None => subtree.to_owned(),
    }
}

/// Groups collected by key, in key order; child-node keys rolled up from node paths.
#[derive(Debug)]
pub(super) struct Rows<'q> {
    pub(super) query: &'q ReportQuery,
    pub(super) rows: std::collections::BTreeMap<String, ReportCounts>,
    pub(super) resolve_ms_sum: std::collections::BTreeMap<String, i64>,
    /// Per key: durations per hour bucket.
    pub(super) histogram: std::collections::BTreeMap<String, std::collections::BTreeMap<i64, i64>>,
    /// Per key: the durations read from the buckets holding its percentiles.
    pub(super) durations: std::collections::BTreeMap<String, Vec<i64>>,
}

impl<'q> Rows<'q> {
    pub(super) fn new(query: &'q ReportQuery) -> Self {
        Rows {
            query,
            rows: Default::default(),
            resolve_ms_sum: Default::default(),
            histogram: Default::default(),
            durations: Default::default(),
        }
    }

    pub(super) fn key(&self, key: String) -> String {
        match self.query.group {
            ReportGroup::ChildNode => child_key(&self.query.subtree, &key),
            _ => key,
        }
    }

    pub(super) fn row(&mut self, key: String) -> &mut ReportCounts {
        let key = self.key(key);
        self.rows
            .entry(key.clone())
            .or_insert_with(|| ReportCounts {
                key,
                ..ReportCounts::default()
            })
    }

    pub(super) fn finish(mut self) -> Vec<ReportCounts> {
        for (key, sum) in std::mem::take(&mut self.resolve_ms_sum) {
            let row = self.row(key);
            if row.resolved > 0 {
                row.resolve_ms_mean = Some(sum as f64 / row.resolved as f64);
            }
        }
        let histogram = std::mem::take(&mut self.histogram);
        for (key, buckets) in histogram {
            let mut values = self.durations.remove(&key).unwrap_or_default();
            values.sort_unstable();
            let pick = |p: i64| {
                let (bucket, rank) = rank_in_bucket(&buckets, p)?;
                let lo = bucket * BUCKET_MS;
                let first = values.partition_point(|v| *v < lo);
                values.get(first + rank as usize - 1).copied()
            };
            let (p50, p90) = (pick(50), pick(90));
            let row = self.row(key);
            row.resolve_ms_p50 = p50;
            row.resolve_ms_p90 = p90;
        }
        self.rows.into_values().collect()
    }

    /// The hour buckets any key's percentiles fall in.
    pub(super) fn percentile_buckets(&self) -> std::collections::BTreeSet<i64> {
        self.histogram
            .values()
            .flat_map(|b| [50, 90].map(|p| rank_in_bucket(b, p).map(|(bucket, _)| bucket)))
            .flatten()
            .collect()
    }
}

/// The nearest-rank `p`th percentile's bucket, and its 1-based rank within the bucket.
pub(super) fn rank_in_bucket(
    buckets: &std::collections::BTreeMap<i64, i64>,
    p: i64,
) -> Option<(i64, i64)> {
    let n: i64 = buckets.values().sum();
    let mut rank = (p * n + 99) / 100;
    for (bucket, count) in buckets {
        if rank <= *count {
            return Some((*bucket, rank));
        }
        rank -= count;
    }
    None
}
