//! Sharding for CI matrices: `gates --shard K/N` runs one deterministic part of the selected
//! gates. Every shard computes the whole partition itself from the same inputs (the selection,
//! N and, optionally, the durations recorded in an earlier `report.json`), so matrix jobs need
//! no coordination; the shard's report records the full selection and its own part so that
//! `merge` can prove the shards cover the selection exactly once.
//!
//! Partition: with durations, greedy longest-processing-time (gates by estimate, longest first,
//! ties by id; each to the least-loaded shard, ties to the lowest shard number), which keeps a
//! single slow gate (the clean-worktree build) alone in its shard. Without durations, sorted ids
//! are dealt round-robin. Estimates are whole milliseconds so the arithmetic is exact and every
//! machine gets the same answer.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Estimate for a gate with no usable duration in the durations file when the file has no
/// usable duration at all (otherwise the median of the recorded ones is used).
pub const DEFAULT_ESTIMATE_MS: u64 = 60_000;

/// `K/N` from the command line: run part `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// K, 1 ≤ K ≤ N.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not K/N (e.g. 2/3)"))?;
        let num = |part: &str, what: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}`: {what} `{part}` is not a whole number"))
        };
        let (index, count) = (num(k, "K")?, num(n, "N")?);
        if count == 0 {
            return Err(format!("`{s}`: N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(format!("`{s}`: K must be between 1 and N ({count})"));
        }
        Ok(ShardSpec { index, count })
    }
}

/// How the selection was split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Greedy longest-processing-time over durations from an earlier report.
    Durations,
    /// Sorted ids dealt round-robin.
    RoundRobin,
}

/// Which part of a sharded run a report holds (`shard` in `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// K.
    pub index: usize,
    /// N.
    pub count: usize,
    /// Partition method.
    pub method: Method,
    /// The durations file, as given (`--durations`).
    pub durations_from: Option<String>,
    /// Every gate id selected by `--only`/`--tag` before sharding, in file order.
    pub selected: Vec<String>,
    /// The gate ids this shard runs, in file order.
    pub assigned: Vec<String>,
    /// Predicted wall time of this shard (sum of its estimates).
    pub estimated_s: f64,
}

impl ShardInfo {
    /// Whether gate `id` runs in this shard.
    pub fn runs(&self, id: &str) -> bool {
        self.assigned.iter().any(|a| a == id)
    }

    /// One line for the console: which part, how it was chosen, how big it is.
    pub fn summary(&self) -> String {
        let how = match self.method {
            Method::Durations => format!(
                "balanced by recorded durations, estimated {:.1} s",
                self.estimated_s
            ),
            Method::RoundRobin => "sorted ids round-robin".to_string(),
        };
        format!(
            "shard {}/{} ({how}): {} of {} selected gate(s)",
            self.index,
            self.count,
            self.assigned.len(),
            self.selected.len()
        )
    }
}

/// Per-gate durations (ms) recorded in an earlier report.
#[derive(Debug, Clone, Default)]
pub struct Durations {
    /// Gate id → recorded wall time in ms (only gates that actually ran).
    pub ms: BTreeMap<String, u64>,
}

impl Durations {
    /// Read `report.json` (or a run directory holding one). Skipped gates are ignored: their
    /// recorded 0 s says nothing about how long they take.
    pub fn read(path: &Path) -> Result<Durations, String> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read durations from {}: {e}", file.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
        let gates = v["gates"].as_array().ok_or_else(|| {
            format!(
                "{}: no `gates` array (expected a report.json)",
                file.display()
            )
        })?;
        let mut ms = BTreeMap::new();
        for g in gates {
            let (Some(id), Some(d)) = (g["id"].as_str(), g["duration_s"].as_f64()) else {
                continue;
            };
            if g["status"] != "skipped" && d.is_finite() && d >= 0.0 {
                ms.insert(id.to_string(), (d * 1000.0).round() as u64);
            }
        }
        Ok(Durations { ms })
    }

    /// Estimate for every id: its recorded duration, else the median recorded one (a new gate
    /// is assumed typical), else [`DEFAULT_ESTIMATE_MS`].
    pub fn estimates(&self, ids: &[String]) -> BTreeMap<String, u64> {
        let mut known: Vec<u64> = self.ms.values().copied().collect();
        known.sort_unstable();
        let fallback = known
            .get(known.len() / 2)
            .copied()
            .unwrap_or(DEFAULT_ESTIMATE_MS);
        ids.iter()
            .map(|id| (id.clone(), self.ms.get(id).copied().unwrap_or(fallback)))
            .collect()
    }
}

/// Split `ids` into `n` bins. With `estimates` (ms per id): greedy LPT, ties by id and then by
/// lowest bin. Without: sorted ids dealt round-robin. Each bin lists its ids sorted.
pub fn partition(
    ids: &[String],
    n: usize,
    estimates: Option<&BTreeMap<String, u64>>,
) -> Vec<Vec<String>> {
    let n = n.max(1);
    let mut bins: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut order: Vec<&String> = ids.iter().collect();
    match estimates {
        Some(est) => {
            let of = |id: &String| est.get(id).copied().unwrap_or(DEFAULT_ESTIMATE_MS);
            order.sort_by(|a, b| of(b).cmp(&of(a)).then_with(|| a.cmp(b)));
            let mut loads = vec![0u64; n];
            for id in order {
                // min_by_key returns the first minimum: the lowest bin wins ties.
                let (bin, _) = loads
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, l)| **l)
                    .unwrap_or((0, &0));
                loads[bin] += of(id);
                bins[bin].push(id.clone());
            }
        }
        None => {
            order.sort();
            for (i, id) in order.into_iter().enumerate() {
                bins[i % n].push(id.clone());
            }
        }
    }
    for b in &mut bins {
        b.sort();
    }
    bins
}

/// The plan for shard `spec` of `selected` (gate ids in file order).
pub fn plan(
    selected: &[String],
    spec: ShardSpec,
    durations: Option<(&Durations, &str)>,
) -> ShardInfo {
    let estimates = durations.map(|(d, _)| d.estimates(selected));
    let bins = partition(selected, spec.count, estimates.as_ref());
    let mine = &bins[spec.index - 1];
    let assigned: Vec<String> = selected
        .iter()
        .filter(|id| mine.contains(id))
        .cloned()
        .collect();
    let estimated_s = estimates
        .as_ref()
        .map(|e| assigned.iter().map(|id| e[id]).sum::<u64>() as f64 / 1000.0)
        .unwrap_or(0.0);
    ShardInfo {
        index: spec.index,
        count: spec.count,
        method: if durations.is_some() {
            Method::Durations
        } else {
            Method::RoundRobin
        },
        durations_from: durations.map(|(_, src)| src.to_string()),
        selected: selected.to_vec(),
        assigned,
        estimated_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shard_spec_parses_and_rejects() {
        assert_eq!(
            "2/3".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 3 })
        );
        assert_eq!(
            "1/1".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 1, count: 1 })
        );
        for bad in [
            "0/3", "4/3", "1/0", "0/0", "3", "a/3", "1/b", "-1/3", "1/3/5", "",
        ] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn lpt_puts_the_slow_gate_alone() {
        let all = ids(&["a", "b", "c", "d", "worktree"]);
        let est: BTreeMap<String, u64> = [
            ("a", 10_000),
            ("b", 20_000),
            ("c", 30_000),
            ("d", 40_000),
            ("worktree", 360_000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bins = partition(&all, 3, Some(&est));
        assert_eq!(bins[0], ids(&["worktree"]));
        // 40 → bin 2, 30 → bin 3, 20 → bin 3 (30 < 40), 10 → bin 2.
        assert_eq!(bins[1], ids(&["a", "d"]));
        assert_eq!(bins[2], ids(&["b", "c"]));
    }

    #[test]
    fn equal_estimates_tie_break_by_id_not_input_order() {
        let est: BTreeMap<String, u64> = ["x", "y", "z"]
            .into_iter()
            .map(|k| (k.to_string(), 5))
            .collect();
        let a = partition(&ids(&["z", "x", "y"]), 2, Some(&est));
        let b = partition(&ids(&["y", "z", "x"]), 2, Some(&est));
        assert_eq!(a, b);
        assert_eq!(a[0], ids(&["x", "z"]));
    }

    #[test]
    fn round_robin_deals_sorted_ids() {
        let bins = partition(&ids(&["d", "b", "a", "c", "e"]), 2, None);
        assert_eq!(bins, vec![ids(&["a", "c", "e"]), ids(&["b", "d"])]);
    }

    #[test]
    fn unknown_gates_get_the_median_estimate() {
        let d = Durations {
            ms: [("a", 1), ("b", 100), ("c", 7)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        let e = d.estimates(&ids(&["a", "new"]));
        assert_eq!(e["a"], 1);
        assert_eq!(e["new"], 7);
        let none = Durations::default().estimates(&ids(&["new"]));
        assert_eq!(none["new"], DEFAULT_ESTIMATE_MS);
    }

    #[test]
    fn durations_ignore_skipped_gates_and_reject_non_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        std::fs::write(
            &p,
            r#"{"gates":[{"id":"a","status":"pass","duration_s":1.5},
                         {"id":"b","status":"skipped","duration_s":0.0}]}"#,
        )
        .unwrap();
        let d = Durations::read(dir.path()).unwrap();
        assert_eq!(d.ms.get("a"), Some(&1500));
        assert_eq!(d.ms.get("b"), None);
        std::fs::write(&p, r#"{"totals":{}}"#).unwrap();
        assert!(Durations::read(&p).unwrap_err().contains("no `gates`"));
        assert!(Durations::read(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn plan_keeps_file_order_and_records_the_selection() {
        let sel = ids(&["z", "a", "m"]);
        let p = plan(&sel, ShardSpec { index: 1, count: 2 }, None);
        assert_eq!(p.selected, sel);
        assert_eq!(p.assigned, ids(&["z", "a"]));
        assert_eq!(p.method, Method::RoundRobin);
        assert!(p.runs("a") && !p.runs("m"));
        assert_eq!(
            p.summary(),
            "shard 1/2 (sorted ids round-robin): 2 of 3 selected gate(s)"
        );
    }

    proptest! {
        #[test]
        fn shards_cover_the_selection_exactly_once(
            set in proptest::collection::btree_map("[a-z0-9-]{1,8}", 0u64..500_000, 0..30),
            n in 1usize..8,
            with_durations in any::<bool>(),
        ) {
            let sel: Vec<String> = set.keys().cloned().collect();
            let d = Durations { ms: set.clone() };
            let plans: Vec<ShardInfo> = (1..=n)
                .map(|k| {
                    let spec = ShardSpec { index: k, count: n };
                    plan(&sel, spec, with_durations.then_some((&d, "r.json")))
                })
                .collect();
            let mut seen = BTreeSet::new();
            for p in &plans {
                for id in &p.assigned {
                    prop_assert!(seen.insert(id.clone()), "{id} in two shards");
                }
            }
            prop_assert_eq!(seen, sel.iter().cloned().collect::<BTreeSet<_>>());
            // LPT's classic bound: no shard exceeds the mean load plus the longest gate.
            if with_durations {
                let total: u64 = set.values().sum();
                let longest = set.values().max().copied().unwrap_or(0);
                for p in &plans {
                    let load: u64 = p.assigned.iter().map(|id| set[id]).sum();
                    prop_assert!(load <= total / n as u64 + 1 + longest, "{load} > bound");
                }
            }
            // Round-robin is balanced by count: shard sizes differ by at most one.
            if !with_durations {
                let sizes: Vec<usize> = plans.iter().map(|p| p.assigned.len()).collect();
                let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                prop_assert!(hi.unwrap() - lo.unwrap() <= 1, "{sizes:?}");
            }
        }
    }
}
