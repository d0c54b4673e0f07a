//! The domain's routing tables (SPEC §3 step 6, §8 `DebugRouter` level 2).
//!
//! Owns: the graph of the domain's servers built from the directory — an
//! edge of cost 1 both ways between servers that share a Notes named network
//! (one edge per shared network), and a one-way edge for every enabled
//! `native` connection document, source → destination, at its cost (at
//! least 1) — the raised costs of failed hops ([`CostRaises`]), the
//! least-cost path between two servers ([`RoutingTable::least_cost`]) and the
//! words `DebugRouter` and `trace` print about them.
//!
//! Must not touch: I/O of any kind, the clock (times are passed in as
//! milliseconds, `now_ms`), the directory (read only), queues, connection
//! schedules and `route_at_once_if` (when to route is the router's business,
//! not which way), and the choice between native transfer and SMTP within the
//! domain (`smtp_within_local_domain`, made by the caller after the path).
//! The router keeps one [`CostRaises`] per server and passes it in; this
//! module never stores it.
//!
//! The order of paths: lower total cost first, then fewer hops, then name
//! order of the servers along the path (compared hop by hop, by abbreviated
//! name ignoring case, `Bridge/Acme` before `hub/acme`). Between the same two
//! servers, a network edge comes before a connection (networks in name
//! order, connections in directory order) when their costs are equal.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use directory::{ConnectionType, Directory, NotesName};

/// How long a raised cost lasts after the last failure that raised it: one
/// hour. Domino keeps a failed route's cost raised until a transfer over it
/// succeeds or the router recomputes its tables; an hour is long enough for
/// the alternative path to carry the waiting mail and short enough that a
/// recovered link is tried again the same day, even if no administrator
/// runs `tell router update config`.
pub const RESET_MS: i64 = 60 * 60 * 1000;

/// What joins two servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// A Notes named network both servers are on (spelled as the first
    /// server document in the directory that names it).
    Network(String),
    /// A native connection document: its index in `Directory::connections`.
    Connection(usize),
}

/// One edge of the table, at its cost from the directory (raises not
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: NotesName,
    pub to: NotesName,
    pub kind: EdgeKind,
    pub cost: u32,
}

/// One hop of a path: an edge at its cost now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub from: NotesName,
    /// The server this hop reaches.
    pub to: NotesName,
    pub kind: EdgeKind,
    /// The edge's cost including raises.
    pub cost: u32,
    /// How much of `cost` is raised (0 for an edge that has not failed).
    pub raised: u32,
}

/// The least-cost path between two servers, and the direct edges that lost
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChoice {
    pub from: NotesName,
    pub to: NotesName,
    /// Empty when `from` is `to`.
    pub hops: Vec<Hop>,
    /// The sum of the hops' costs.
    pub total: u64,
    /// Direct edges `from` → `to` that were not chosen, in table order.
    pub passed_over: Vec<Hop>,
}

impl PathChoice {
    /// The first server on the path: where the message goes next. `None`
    /// for a path of zero hops (already there).
    pub fn next_hop(&self) -> Option<&NotesName> {
        self.hops.first().map(|h| &h.to)
    }

    /// The servers along the path, `from` first and `to` last.
    pub fn servers(&self) -> Vec<&NotesName> {
        std::iter::once(&self.from)
            .chain(self.hops.iter().map(|h| &h.to))
            .collect()
    }

    /// The least-cost calculation, for `DebugRouter` 2 and `trace`:
    ///
    /// ```text
    /// Router: Least cost route to Hub/Acme: Mail/Acme -> Bridge/Acme -> Hub/Acme, cost 2, 2 hops
    /// Router: Hop 1: Mail/Acme -> Bridge/Acme cost 1 via network LAN
    /// Router: Hop 2: Bridge/Acme -> Hub/Acme cost 1 via connection Bridge/Acme to Hub/Acme
    /// Router: Not using Mail/Acme -> Hub/Acme cost 6 via connection Mail/Acme to Hub/Acme (cost 5, raised +1): cost 6 is more than 2
    /// ```
    ///
    /// A direct edge loses either on cost (`cost C is more than T`) or, at
    /// equal cost between the same two servers, on order (`same cost and
    /// hops, via network LAN comes first`).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(1 + self.hops.len() + self.passed_over.len());
        let path = self
            .servers()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" -> ");
        lines.push(format!(
            "Router: Least cost route to {}: {path}, cost {}, {}",
            self.to,
            self.total,
            hops_word(self.hops.len())
        ));
        for (i, hop) in self.hops.iter().enumerate() {
            lines.push(format!("Router: Hop {}: {}", i + 1, hop_phrase(hop)));
        }
        for alt in &self.passed_over {
            let why = if u64::from(alt.cost) > self.total {
                format!("cost {} is more than {}", alt.cost, self.total)
            } else if let [chosen] = self.hops.as_slice() {
                format!(
                    "same cost and hops, via {} comes first",
                    kind_phrase(&chosen.kind, &chosen.from, &chosen.to)
                )
            } else {
                // Not reachable: a direct edge at no more than the total has
                // fewer hops than any longer path.
                format!("not the least cost route (total {})", self.total)
            };
            lines.push(format!("Router: Not using {}: {why}", hop_phrase(alt)));
        }
        lines
    }
}

fn hops_word(n: usize) -> String {
    if n == 1 {
        "1 hop".to_owned()
    } else {
        format!("{n} hops")
    }
}

fn kind_phrase(kind: &EdgeKind, from: &NotesName, to: &NotesName) -> String {
    match kind {
        EdgeKind::Network(n) => format!("network {n}"),
        EdgeKind::Connection(_) => format!("connection {from} to {to}"),
    }
}

/// `A -> B cost C via network N` / `... via connection A to B`, with
/// ` (cost B, raised +E)` when raised.
fn hop_phrase(hop: &Hop) -> String {
    let mut s = format!(
        "{} -> {} cost {} via {}",
        hop.from,
        hop.to,
        hop.cost,
        kind_phrase(&hop.kind, &hop.from, &hop.to)
    );
    if hop.raised > 0 {
        let _ = write!(
            s,
            " (cost {}, raised +{})",
            hop.cost - hop.raised,
            hop.raised
        );
    }
    s
}

/// One raised edge: how many failures, and when the last one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raise {
    by: u32,
    last_ms: i64,
}

/// The raised costs of failed hops, as Domino keeps them: each failed
/// transfer from one server to the next raises the cost of every edge
/// between the two (in that direction) by 1 more, until a transfer to that
/// server succeeds ([`CostRaises::clear`]) or [`RESET_MS`] passes after the
/// last raise. Server names compare as Notes names (case- and
/// form-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostRaises {
    /// Keyed by the two names' [`NotesName::key`].
    raised: BTreeMap<(String, String), Raise>,
}

impl CostRaises {
    /// A transfer `from` → `to` failed at `now_ms`: its cost goes up by 1
    /// (counting from 0 again when the previous raise had expired).
    pub fn raise(&mut self, from: &NotesName, to: &NotesName, now_ms: i64) {
        let key = (from.key().to_owned(), to.key().to_owned());
        let entry = self.raised.entry(key).or_insert(Raise {
            by: 0,
            last_ms: now_ms,
        });
        if expired(entry.last_ms, now_ms) {
            entry.by = 0;
        }
        entry.by = entry.by.saturating_add(1);
        entry.last_ms = entry.last_ms.max(now_ms);
    }

    /// A transfer `from` → `to` succeeded: back to the directory's cost.
    pub fn clear(&mut self, from: &NotesName, to: &NotesName) {
        self.raised
            .remove(&(from.key().to_owned(), to.key().to_owned()));
    }

    /// The raise on `from` → `to` at `now_ms`; 0 when none, or once
    /// [`RESET_MS`] has passed since the last raise.
    pub fn extra(&self, from: &NotesName, to: &NotesName, now_ms: i64) -> u32 {
        self.extra_by_key(from.key(), to.key(), now_ms)
    }

    fn extra_by_key(&self, from: &str, to: &str, now_ms: i64) -> u32 {
        match self.raised.get(&(from.to_owned(), to.to_owned())) {
            Some(r) if !expired(r.last_ms, now_ms) => r.by,
            _ => 0,
        }
    }

    /// True when nothing has been raised (expired raises not yet pruned
    /// still count).
    pub fn is_empty(&self) -> bool {
        self.raised.is_empty()
    }

    /// Forget the raises that have expired at `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        self.raised.retain(|_, r| !expired(r.last_ms, now_ms));
    }
}

fn expired(last_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(last_ms) >= RESET_MS
}

/// The routing table of a domain: its servers and the edges between them.
/// Built from one directory snapshot; rebuild it when the directory changes.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    servers: Vec<NotesName>,
    /// Each server's place in name order.
    rank: Vec<usize>,
    /// Sorted by (from rank, to rank, kind order).
    edges: Vec<IndexedEdge>,
    /// Indexes into `edges`, per source server, in `edges` order.
    out: Vec<Vec<usize>>,
}

#[derive(Debug, Clone)]
struct IndexedEdge {
    from: usize,
    to: usize,
    kind: EdgeKind,
    cost: u32,
}

/// The order of edges between the same two servers: networks (by name,
/// ignoring case) before connections (by index).
fn kind_order(kind: &EdgeKind) -> (u8, String, usize) {
    match kind {
        EdgeKind::Network(n) => (0, n.to_lowercase(), 0),
        EdgeKind::Connection(i) => (1, String::new(), *i),
    }
}

impl RoutingTable {
    /// The table of the directory's domain (SPEC §3 step 6).
    pub fn build(dir: &Directory) -> RoutingTable {
        let servers: Vec<NotesName> = dir.servers.iter().map(|s| s.name.clone()).collect();
        let n = servers.len();
        let mut by_name: Vec<usize> = (0..n).collect();
        by_name.sort_by(|&a, &b| name_cmp(&servers[a], &servers[b]));
        let mut rank = vec![0; n];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i] = r;
        }

        // Networks: the first spelling in the directory names it; each
        // server's members once.
        let mut networks: Vec<(String, String, Vec<usize>)> = Vec::new(); // (lower, shown, members)
        for (i, s) in dir.servers.iter().enumerate() {
            for net in &s.networks {
                let lower = net.to_lowercase();
                match networks.iter_mut().find(|(l, _, _)| *l == lower) {
                    Some((_, _, members)) => {
                        if !members.contains(&i) {
                            members.push(i);
                        }
                    }
                    None => networks.push((lower, net.clone(), vec![i])),
                }
            }
        }
        let mut edges = Vec::new();
        for (_, shown, members) in &networks {
            for &a in members {
                for &b in members {
                    if a != b {
                        edges.push(IndexedEdge {
                            from: a,
                            to: b,
                            kind: EdgeKind::Network(shown.clone()),
                            cost: 1,
                        });
                    }
                }
            }
        }
        let index_of = |name: &NotesName| servers.iter().position(|s| s == name);
        for (ci, c) in dir.connections.iter().enumerate() {
            if c.kind != ConnectionType::Native || !c.enabled {
                continue;
            }
            let (Some(a), Some(b)) = (index_of(&c.source), index_of(&c.destination)) else {
                continue;
            };
            if a == b {
                continue;
            }
            edges.push(IndexedEdge {
                from: a,
                to: b,
                kind: EdgeKind::Connection(ci),
                cost: c.cost.max(1),
            });
        }
        edges.sort_by(|x, y| {
            (rank[x.from], rank[x.to])
                .cmp(&(rank[y.from], rank[y.to]))
                .then_with(|| kind_order(&x.kind).cmp(&kind_order(&y.kind)))
        });
        let mut out = vec![Vec::new(); n];
        for (ei, e) in edges.iter().enumerate() {
            out[e.from].push(ei);
        }
        RoutingTable {
            servers,
            rank,
            edges,
            out,
        }
    }

    /// The domain's servers, in directory order.
    pub fn servers(&self) -> &[NotesName] {
        &self.servers
    }

    /// Every edge, ordered by source then destination (name order), then
    /// networks before connections.
    pub fn edges(&self) -> Vec<Edge> {
        self.edges
            .iter()
            .map(|e| Edge {
                from: self.servers[e.from].clone(),
                to: self.servers[e.to].clone(),
                kind: e.kind.clone(),
                cost: e.cost,
            })
            .collect()
    }

    fn index_of(&self, name: &NotesName) -> Option<usize> {
        self.servers.iter().position(|s| s == name)
    }

    fn hop(&self, e: &IndexedEdge, raises: &CostRaises, now_ms: i64) -> Hop {
        let (from, to) = (&self.servers[e.from], &self.servers[e.to]);
        let raised = raises.extra_by_key(from.key(), to.key(), now_ms);
        Hop {
            from: from.clone(),
            to: to.clone(),
            kind: e.kind.clone(),
            cost: e.cost.saturating_add(raised),
            raised,
        }
    }

    /// The least-cost path `from` → `to` with the costs raised as `raises`
    /// says at `now_ms`: lowest total, then fewest hops, then name order of
    /// the servers along it. `from == to` is a path of zero hops; `None`
    /// when either is not a server of the directory or no path joins them.
    pub fn least_cost(
        &self,
        from: &NotesName,
        to: &NotesName,
        raises: &CostRaises,
        now_ms: i64,
    ) -> Option<PathChoice> {
        let src = self.index_of(from)?;
        let dst = self.index_of(to)?;
        let costs: Vec<u32> = self
            .edges
            .iter()
            .map(|e| self.hop(e, raises, now_ms).cost)
            .collect();

        // Dijkstra over labels (cost, hops, ranks of the servers after
        // `src`): the order is kept by extending a path by one edge, so the
        // best label of a server extends the best label of its predecessor.
        let n = self.servers.len();
        let mut best: Vec<Option<Label>> = vec![None; n];
        let mut pred: Vec<Option<usize>> = vec![None; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::new();
        best[src] = Some(Label::default());
        heap.push(std::cmp::Reverse((Label::default(), src)));
        while let Some(std::cmp::Reverse((label, cur))) = heap.pop() {
            if done[cur] || best[cur].as_ref() != Some(&label) {
                continue;
            }
            done[cur] = true;
            if cur == dst {
                break;
            }
            for &ei in &self.out[cur] {
                let next = self.edges[ei].to;
                if done[next] {
                    continue;
                }
                let mut names = label.names.clone();
                names.push(self.rank[next]);
                let cand = Label {
                    cost: label.cost + u64::from(costs[ei]),
                    hops: label.hops + 1,
                    names,
                };
                if best[next].as_ref().is_none_or(|b| cand < *b) {
                    best[next] = Some(cand.clone());
                    pred[next] = Some(ei);
                    heap.push(std::cmp::Reverse((cand, next)));
                }
            }
        }
        let total = best[dst].as_ref()?.cost;
        let mut path = Vec::new();
        let mut at = dst;
        while at != src {
            let ei = pred[at]?;
            path.push(ei);
            at = self.edges[ei].from;
        }
        path.reverse();
        let passed_over = self.out[src]
            .iter()
            .filter(|&&ei| self.edges[ei].to == dst && path.first() != Some(&ei))
            .map(|&ei| self.hop(&self.edges[ei], raises, now_ms))
            .collect();
        Some(PathChoice {
            from: self.servers[src].clone(),
            to: self.servers[dst].clone(),
            hops: path
                .iter()
                .map(|&ei| self.hop(&self.edges[ei], raises, now_ms))
                .collect(),
            total,
            passed_over,
        })
    }

    /// The table for `DebugRouter` 2, one line per edge, in [`edges`] order:
    ///
    /// ```text
    /// Router: Routing table: Mail/Acme -> Hub/Acme cost 1 via network LAN
    /// Router: Routing table: Mail/Acme -> Hub/Acme cost 6 via connection Mail/Acme to Hub/Acme (cost 5, raised +1)
    /// ```
    ///
    /// [`edges`]: RoutingTable::edges
    pub fn describe(&self, raises: &CostRaises, now_ms: i64) -> Vec<String> {
        self.edges
            .iter()
            .map(|e| {
                format!(
                    "Router: Routing table: {}",
                    hop_phrase(&self.hop(e, raises, now_ms))
                )
            })
            .collect()
    }
}

/// A path's place in the order: (cost, hops, server ranks after the start).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Label {
    cost: u64,
    hops: usize,
    names: Vec<usize>,
}

/// Name order: abbreviated names ignoring case, then the canonical key (two
/// different names can abbreviate alike).
fn name_cmp(a: &NotesName, b: &NotesName) -> Ordering {
    a.abbreviated()
        .to_lowercase()
        .cmp(&b.abbreviated().to_lowercase())
        .then_with(|| a.key().cmp(b.key()))
}
