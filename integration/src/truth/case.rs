//! Case files: loading and checking them, the `{{kind:arg}}` placeholders, and the matrix
//! diff of what was expected against what was observed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use romana_core::NamedPort;

use super::{Case, CaseFile, Grid, Mark, Node, Observed, PodSpec, Probe, Results};

/// Hosts every case runs on: `cluster().racks(1).hosts(2)`.
pub const HOSTS: usize = 2;

/// Loads every `*.yaml` of `dir`, ordered by file name.
pub fn load_all(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|f| load(f)).collect()
}

/// Loads and checks one case file.
pub fn load(file: &Path) -> anyhow::Result<Case> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse_case(&text, file).with_context(|| format!("case {}", file.display()))
}

pub(super) fn parse_case(text: &str, file: &Path) -> anyhow::Result<Case> {
    let raw: CaseFile = serde_norway::from_str(text)?;
    let mut seen = BTreeSet::new();
    for p in &raw.pods {
        if !seen.insert(p.name.as_str()) {
            bail!("pod {} is listed twice", p.name);
        }
        if !raw.tenants.iter().any(|t| t.name == p.tenant) {
            bail!("pod {} names unknown tenant {}", p.name, p.tenant);
        }
        if p.host >= HOSTS {
            bail!(
                "pod {} is on host {}, but there are {HOSTS}",
                p.name,
                p.host
            );
        }
        for (name, port) in &p.ports {
            parse_named_port(name, port).map_err(anyhow::Error::msg)?;
        }
    }
    let probes: Vec<Probe> = raw
        .probes
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)?;
    let mut grids: BTreeMap<Probe, Grid> = BTreeMap::new();
    for (key, text) in &raw.expect {
        let grid =
            parse_grid(text, &raw.pods, HOSTS).map_err(|e| anyhow::anyhow!("grid {key:?}: {e}"))?;
        for probe in key.split(',') {
            let probe: Probe = probe.parse().map_err(anyhow::Error::msg)?;
            if !probes.contains(&probe) {
                bail!("grid {key:?} names {probe}, which is not in probes");
            }
            if grids.insert(probe, grid.clone()).is_some() {
                bail!("{probe} has two grids");
            }
        }
    }
    let mut expect = Vec::new();
    for probe in &probes {
        let grid = grids
            .remove(probe)
            .with_context(|| format!("no grid for {probe}"))?;
        expect.push((*probe, grid));
    }
    Ok(Case {
        file: file.to_path_buf(),
        name: raw.name,
        source: raw.source,
        needs: raw.needs,
        tenants: raw.tenants,
        pods: raw.pods,
        policies: raw.policies,
        probes,
        expect,
    })
}

/// A grid: a header of destinations after a corner `-` (which keeps a YAML block's
/// indentation that of the rows), then one row per source. Every pod must appear as a row
/// and as a column; hosts (`@hN`) are optional. A pod's own cell must be `-`.
pub fn parse_grid(text: &str, pods: &[PodSpec], hosts: usize) -> Result<Grid, String> {
    let mut lines = text
        .lines()
        .map(str::split_whitespace)
        .map(|w| w.collect::<Vec<_>>())
        .filter(|w| !w.is_empty());
    let header = lines.next().ok_or("the grid is empty")?;
    if header.first() != Some(&"-") {
        return Err("the header must start with the corner `-`".into());
    }
    let cols: Vec<Node> = header[1..]
        .iter()
        .map(|t| Node::parse(t, pods, hosts))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut cells = BTreeMap::new();
    for words in lines {
        let from = Node::parse(words[0], pods, hosts)?;
        if words.len() != cols.len() + 1 {
            return Err(format!(
                "row {from} has {} cells, the header {}",
                words.len() - 1,
                cols.len()
            ));
        }
        for (to, cell) in cols.iter().zip(&words[1..]) {
            let mark = match *cell {
                "." => Mark::Allowed,
                "X" => Mark::Blocked,
                "-" => Mark::Skipped,
                other => return Err(format!("cell {from} -> {to} is {other:?}, not . X or -")),
            };
            if *to == from && mark != Mark::Skipped {
                return Err(format!("{from} -> itself must be -"));
            }
            cells.insert((from.clone(), to.clone()), mark);
        }
        rows.push(from);
    }
    for p in pods {
        let node = Node::Pod(p.name.clone());
        if !rows.contains(&node) || !cols.contains(&node) {
            return Err(format!("pod {} needs a row and a column", p.name));
        }
    }
    let distinct = |v: &[Node]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
    if !distinct(&rows) || !distinct(&cols) {
        return Err("a row or column is listed twice".into());
    }
    Ok(Grid { rows, cols, cells })
}

/// A case's `NAME: PROTO/NUMBER`, read as the CNI plugin reads `ROMANA_PORTS`.
pub(super) fn parse_named_port(name: &str, text: &str) -> Result<NamedPort, String> {
    romana_core::labels::parse_named_port(&format!("{name}={text}")).map_err(|e| e.to_string())
}

/// Replaces `{{kind:arg}}` placeholders with `lookup(kind, arg)`.
pub fn render(text: &str, lookup: impl Fn(&str, &str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder at {:?}", &rest[start..]))?;
        let inner = &rest[start + 2..start + end];
        let (kind, arg) = inner
            .split_once(':')
            .ok_or_else(|| format!("placeholder {{{{{inner}}}}} is not KIND:ARG"))?;
        let value = lookup(kind.trim(), arg.trim())
            .ok_or_else(|| format!("placeholder {{{{{inner}}}}} names nothing known"))?;
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// === impl Case ===

impl Case {
    /// Segments of a tenant in number order: `default`, the listed ones, then pods' others.
    pub fn segments_of(&self, tenant: &str) -> Vec<String> {
        let mut out = vec!["default".to_string()];
        let listed = self
            .tenants
            .iter()
            .filter(|t| t.name == tenant)
            .flat_map(|t| t.segments.iter().cloned());
        let used = self
            .pods
            .iter()
            .filter(|p| p.tenant == tenant)
            .map(|p| p.segment.clone());
        for s in listed.chain(used) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Every (probe, from, to) the grids ask for, with the expected verdict.
    pub fn expected(&self) -> Vec<(Probe, Node, Node, bool)> {
        let mut out = Vec::new();
        for (probe, grid) in &self.expect {
            for from in &grid.rows {
                for to in &grid.cols {
                    match grid.cells[&(from.clone(), to.clone())] {
                        Mark::Allowed => out.push((*probe, from.clone(), to.clone(), true)),
                        Mark::Blocked => out.push((*probe, from.clone(), to.clone(), false)),
                        Mark::Skipped => {}
                    }
                }
            }
        }
        out
    }

    /// The grids with what was observed, or `None` when everything matched.
    pub fn diff(&self, got: &Results) -> Option<String> {
        let mut out = String::new();
        let mut mismatches = Vec::new();
        for (probe, grid) in &self.expect {
            let wrong = |from: &Node, to: &Node| -> Option<&Observed> {
                let want = grid.cells[&(from.clone(), to.clone())];
                let o = got.get(&(*probe, from.clone(), to.clone()))?;
                let bad = match want {
                    Mark::Allowed => !o.allowed,
                    Mark::Blocked => o.allowed,
                    Mark::Skipped => false,
                };
                bad.then_some(o)
            };
            let count = grid
                .rows
                .iter()
                .flat_map(|f| grid.cols.iter().map(move |t| (f, t)))
                .filter(|(f, t)| wrong(f, t).is_some())
                .count();
            if count == 0 {
                continue;
            }
            let width = grid
                .rows
                .iter()
                .chain(&grid.cols)
                .map(|n| n.to_string().len())
                .max()
                .unwrap_or(1)
                + 2;
            let _ = writeln!(
                out,
                "  {probe}: {count} mismatch(es); expected | got (* marks a mismatch)"
            );
            let header: String = grid
                .cols
                .iter()
                .map(|c| format!("{:>width$}", c.to_string()))
                .collect();
            let _ = writeln!(out, "    {:width$}{header}  | {:width$}{header}", "", "");
            for from in &grid.rows {
                let mut want = format!("    {:width$}", from.to_string());
                let mut seen = format!("{:width$}", from.to_string());
                for to in &grid.cols {
                    let mark = grid.cells[&(from.clone(), to.clone())];
                    let w = match mark {
                        Mark::Allowed => ".",
                        Mark::Blocked => "X",
                        Mark::Skipped => "-",
                    };
                    let g = match (mark, got.get(&(*probe, from.clone(), to.clone()))) {
                        (Mark::Skipped, _) | (_, None) => "-".to_string(),
                        (_, Some(o)) => {
                            let m = if o.allowed { "." } else { "X" };
                            if wrong(from, to).is_some() {
                                format!("{m}*")
                            } else {
                                m.to_string()
                            }
                        }
                    };
                    let _ = write!(want, "{w:>width$}");
                    let _ = write!(seen, "{g:>width$}");
                }
                let _ = writeln!(out, "{want}  | {seen}");
            }
            for from in &grid.rows {
                for to in &grid.cols {
                    if let Some(o) = wrong(from, to) {
                        mismatches.push(format!(
                            "  {from} -> {to} {probe}: expected {}, got {}: {}",
                            if o.allowed { "blocked" } else { "allowed" },
                            if o.allowed { "allowed" } else { "blocked" },
                            o.reason
                        ));
                    }
                }
            }
        }
        if mismatches.is_empty() {
            return None;
        }
        Some(format!(
            "case {} ({})\n  source: {}\n{out}{}\n",
            self.name,
            self.file.display(),
            self.source,
            mismatches.join("\n")
        ))
    }
}

/// What a placeholder stands for in a placement: `ip`, `id` (of a pod), `host_ip`,
/// `host_prefix` (of a host index).
pub(super) fn lookup(
    kind: &str,
    arg: &str,
    addresses: &BTreeMap<Node, IpAddr>,
    id: &dyn Fn(&str) -> Option<String>,
    host_prefix: &dyn Fn(usize) -> Option<String>,
) -> Option<String> {
    match kind {
        "ip" => addresses
            .get(&Node::Pod(arg.to_string()))
            .map(ToString::to_string),
        "id" => addresses
            .contains_key(&Node::Pod(arg.to_string()))
            .then(|| id(arg))
            .flatten(),
        "host_ip" => addresses
            .get(&Node::Host(arg.parse().ok()?))
            .map(ToString::to_string),
        "host_prefix" => host_prefix(arg.parse().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_pods(names: &[&str]) -> Vec<PodSpec> {
        names
            .iter()
            .map(|n| PodSpec {
                name: n.to_string(),
                tenant: "t".into(),
                segment: "default".into(),
                labels: BTreeMap::new(),
                ports: BTreeMap::new(),
                host: 0,
            })
            .collect()
    }

    #[test]
    fn grids_read_rows_as_sources_and_columns_as_destinations() {
        let pods = mk_pods(&["a", "b"]);
        let g = parse_grid("  - a b @h1\n a  - X .\n b  . - X\n", &pods, 2).unwrap();
        let a = Node::Pod("a".into());
        let b = Node::Pod("b".into());
        assert_eq!(g.cells[&(a.clone(), b.clone())], Mark::Blocked);
        assert_eq!(g.cells[&(b.clone(), a.clone())], Mark::Allowed);
        assert_eq!(g.cells[&(b, Node::Host(1))], Mark::Blocked);
        assert_eq!(g.rows.len(), 2);
    }

    #[test]
    fn grids_missing_a_pod_or_probing_a_pod_itself_are_refused() {
        let pods = mk_pods(&["a", "b"]);
        assert!(parse_grid("- a\n a -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b\n a . .\n b . -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b\n a - ?\n b . -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b @h2\n a - . .\n b . - .\n", &pods, 2).is_err());
        assert!(parse_grid("a b\n a - .\n b . -\n", &pods, 2).is_err());
    }

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_refused() {
        let look = |k: &str, a: &str| (k == "ip" && a == "x").then(|| "10.0.0.2".to_string());
        assert_eq!(
            render("cidr: {{ip:x}}/32", look).unwrap(),
            "cidr: 10.0.0.2/32"
        );
        assert!(render("{{ip:y}}", look).is_err());
        assert!(render("{{ip:x", look).is_err());
    }

    #[test]
    fn probes_parse_as_written_in_cases() {
        assert_eq!("tcp/80".parse::<Probe>(), Ok(Probe::Tcp(80)));
        assert_eq!(" udp/53".parse::<Probe>(), Ok(Probe::Udp(53)));
        assert_eq!("icmp".parse::<Probe>(), Ok(Probe::Icmp));
        assert!("tcp/0".parse::<Probe>().is_err());
        assert!("sctp/9".parse::<Probe>().is_err());
    }
}
