//! The domain's routing tables: edges from networks and connection
//! documents, raised costs, the least-cost path and its words.

use std::fmt::Write as _;
use std::path::Path;

use directory::{Directory, NotesName};
use proptest::prelude::*;
use routing::{CostRaises, EdgeKind, PathChoice, RESET_MS, RoutingTable};

/// A server: common name (organization Acme) and its networks.
type Srv<'a> = (&'a str, &'a [&'a str]);
/// A native connection: source, destination, cost, enabled.
type Conn<'a> = (&'a str, &'a str, u32, bool);

fn domain_text(servers: &[(String, Vec<String>)], conns: &[(String, String, u32, bool)]) -> String {
    let mut t = String::from("[domain]\nname = \"Acme\"\n");
    for (name, nets) in servers {
        let nets: Vec<String> = nets.iter().map(|n| format!("{n:?}")).collect();
        write!(
            t,
            "\n[[server]]\nname = \"{name}/Acme\"\nhostname = \"{}.acme.com\"\nnetworks = [{}]\n",
            name.to_lowercase(),
            nets.join(", ")
        )
        .unwrap();
    }
    for (src, dst, cost, enabled) in conns {
        write!(
            t,
            "\n[[connection]]\ntype = \"native\"\nsource = \"{src}/Acme\"\ndestination = \"{dst}/Acme\"\ncost = {cost}\nenabled = {enabled}\n"
        )
        .unwrap();
    }
    t
}

fn parse(text: &str) -> Directory {
    directory::parse_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn domain(servers: &[Srv<'_>], conns: &[Conn<'_>]) -> Directory {
    let servers: Vec<(String, Vec<String>)> = servers
        .iter()
        .map(|(n, nets)| (n.to_string(), nets.iter().map(|s| s.to_string()).collect()))
        .collect();
    let conns: Vec<(String, String, u32, bool)> = conns
        .iter()
        .map(|(a, b, c, e)| (a.to_string(), b.to_string(), *c, *e))
        .collect();
    parse(&domain_text(&servers, &conns))
}

fn n(common: &str) -> NotesName {
    format!("{common}/Acme").parse().unwrap()
}

fn path(d: &Directory, from: &str, to: &str, raises: &CostRaises, now: i64) -> Option<PathChoice> {
    RoutingTable::build(d).least_cost(&n(from), &n(to), raises, now)
}

fn plain(d: &Directory, from: &str, to: &str) -> Option<PathChoice> {
    path(d, from, to, &CostRaises::default(), 0)
}

/// The path as "A > B > C" of common names.
fn names(p: &PathChoice) -> String {
    p.servers()
        .iter()
        .map(|s| s.common_name().to_owned())
        .collect::<Vec<_>>()
        .join(" > ")
}

#[test]
fn direct_within_a_network() {
    let d = domain(&[("Mail", &["LAN"]), ("Hub", &["lan"])], &[]);
    let p = plain(&d, "Mail", "Hub").unwrap();
    assert_eq!(names(&p), "Mail > Hub");
    assert_eq!(p.total, 1);
    assert_eq!(p.next_hop(), Some(&n("Hub")));
    assert_eq!(p.hops[0].kind, EdgeKind::Network("LAN".into()));
    assert_eq!(
        p.describe(),
        [
            "Router: Least cost route to Hub/Acme: Mail/Acme -> Hub/Acme, cost 1, 1 hop",
            "Router: Hop 1: Mail/Acme -> Hub/Acme cost 1 via network LAN",
        ]
    );
    // both ways, names as Notes names (canonical, any case)
    let t = RoutingTable::build(&d);
    let back = t
        .least_cost(
            &"cn=hub/o=acme".parse().unwrap(),
            &"MAIL/ACME".parse().unwrap(),
            &CostRaises::default(),
            0,
        )
        .unwrap();
    assert_eq!(names(&back), "Hub > Mail");
    assert_eq!(
        t.describe(&CostRaises::default(), 0),
        [
            "Router: Routing table: Hub/Acme -> Mail/Acme cost 1 via network LAN",
            "Router: Routing table: Mail/Acme -> Hub/Acme cost 1 via network LAN",
        ]
    );
}

#[test]
fn across_networks_through_a_bridge() {
    let d = domain(
        &[("A", &["LAN1"]), ("B", &["LAN1", "LAN2"]), ("C", &["LAN2"])],
        &[],
    );
    let p = plain(&d, "A", "C").unwrap();
    assert_eq!(names(&p), "A > B > C");
    assert_eq!(p.next_hop(), Some(&n("B")));
    assert_eq!((p.total, p.hops.len()), (2, 2));
    assert_eq!(p.hops[0].kind, EdgeKind::Network("LAN1".into()));
    assert_eq!(p.hops[1].kind, EdgeKind::Network("LAN2".into()));
    assert_eq!(names(&plain(&d, "C", "A").unwrap()), "C > B > A");
    assert_eq!(
        p.describe()[0],
        "Router: Least cost route to C/Acme: A/Acme -> B/Acme -> C/Acme, cost 2, 2 hops"
    );
}

#[test]
fn cheap_two_hops_beat_a_costly_direct_connection_and_the_reverse() {
    // A -(LAN 1)- B -(conn 1)-> C, and A -(conn 5)-> C.
    let d = domain(
        &[("A", &["LAN"]), ("B", &["LAN"]), ("C", &[])],
        &[("B", "C", 1, true), ("A", "C", 5, true)],
    );
    let p = plain(&d, "A", "C").unwrap();
    assert_eq!(names(&p), "A > B > C");
    assert_eq!(p.total, 2);
    assert_eq!(p.hops[1].kind, EdgeKind::Connection(0));
    assert_eq!(p.passed_over.len(), 1);
    assert_eq!(p.passed_over[0].kind, EdgeKind::Connection(1));
    assert_eq!(
        p.describe(),
        [
            "Router: Least cost route to C/Acme: A/Acme -> B/Acme -> C/Acme, cost 2, 2 hops",
            "Router: Hop 1: A/Acme -> B/Acme cost 1 via network LAN",
            "Router: Hop 2: B/Acme -> C/Acme cost 1 via connection B/Acme to C/Acme",
            "Router: Not using A/Acme -> C/Acme cost 5 via connection A/Acme to C/Acme: cost 5 is more than 2",
        ]
    );

    // The direct one cheaper: A -(conn 2)-> C beats A -(LAN 1)- B -(conn 4)-> C.
    let d = domain(
        &[("A", &["LAN"]), ("B", &["LAN"]), ("C", &[])],
        &[("B", "C", 4, true), ("A", "C", 2, true)],
    );
    let p = plain(&d, "A", "C").unwrap();
    assert_eq!(names(&p), "A > C");
    assert_eq!(p.total, 2);
    assert_eq!(p.hops[0].kind, EdgeKind::Connection(1));
    assert!(p.passed_over.is_empty());
}

#[test]
fn equal_cost_fewer_hops() {
    // A -> C direct at 2, or A -> B -> C at 1 + 1.
    let d = domain(
        &[("A", &[]), ("B", &[]), ("C", &[])],
        &[
            ("A", "B", 1, true),
            ("B", "C", 1, true),
            ("A", "C", 2, true),
        ],
    );
    let p = plain(&d, "A", "C").unwrap();
    assert_eq!(names(&p), "A > C");
    assert_eq!((p.total, p.hops.len()), (2, 1));
}

#[test]
fn equal_cost_and_hops_name_order() {
    // Through "Charlie" or through "alpha", both cost 2 in 2 hops; Charlie
    // comes first in the directory, and before "alpha" in byte order, but
    // names compare ignoring case.
    let d = domain(
        &[
            ("Start", &[]),
            ("Charlie", &["LAN1"]),
            ("alpha", &["LAN2"]),
            ("End", &["LAN1", "LAN2"]),
        ],
        &[("Start", "Charlie", 1, true), ("Start", "alpha", 1, true)],
    );
    let p = plain(&d, "Start", "End").unwrap();
    assert_eq!(names(&p), "Start > alpha > End");
    assert_eq!(p.next_hop(), Some(&n("Alpha")));

    // Two edges between the same two servers at the same cost: the network
    // comes first, and the connection is reported as passed over.
    let d = domain(&[("A", &["LAN"]), ("B", &["LAN"])], &[("A", "B", 1, true)]);
    let p = plain(&d, "A", "B").unwrap();
    assert_eq!(p.hops[0].kind, EdgeKind::Network("LAN".into()));
    assert_eq!(
        p.describe()[2],
        "Router: Not using A/Acme -> B/Acme cost 1 via connection A/Acme to B/Acme: same cost and hops, via network LAN comes first"
    );
}

#[test]
fn a_disabled_connection_is_not_used() {
    let d = domain(
        &[("A", &[]), ("B", &[]), ("C", &[])],
        &[
            ("A", "C", 1, false),
            ("A", "B", 2, true),
            ("B", "C", 2, true),
        ],
    );
    let p = plain(&d, "A", "C").unwrap();
    assert_eq!(names(&p), "A > B > C");
    assert_eq!(p.total, 4);
    assert!(p.passed_over.is_empty());
    let t = RoutingTable::build(&d);
    assert!(t.edges().iter().all(|e| e.kind != EdgeKind::Connection(0)));
    assert_eq!(t.edges().len(), 2);
}

#[test]
fn a_raised_cost_forces_the_alternative_until_cleared_or_reset() {
    // Through Bravo or Charlie at 2 in 2 hops: Bravo by name order.
    let d = domain(
        &[
            ("A", &["LAN1", "LAN2"]),
            ("Charlie", &["LAN2"]),
            ("Bravo", &["LAN1"]),
            ("D", &[]),
        ],
        &[("Bravo", "D", 1, true), ("Charlie", "D", 1, true)],
    );
    let t = RoutingTable::build(&d);
    let none = CostRaises::default();
    assert!(none.is_empty());
    let first = t.least_cost(&n("A"), &n("D"), &none, 0).unwrap();
    assert_eq!(names(&first), "A > Bravo > D");

    let t0 = 1_000_000;
    let mut raises = CostRaises::default();
    raises.raise(&"CN=bravo/O=acme".parse().unwrap(), &n("D"), t0);
    // a raise on another edge than the one failed
    assert_eq!(raises.extra(&n("A"), &n("Bravo"), t0), 0);
    raises.raise(&n("A"), &n("Bravo"), t0);
    assert!(!raises.is_empty());
    assert_eq!(raises.extra(&n("A"), &n("Bravo"), t0), 1);
    assert_eq!(raises.extra(&n("Bravo"), &n("A"), t0), 0, "one way");
    let p = t
        .least_cost(&n("A"), &n("D"), &raises, t0 + 60_000)
        .unwrap();
    assert_eq!(names(&p), "A > Charlie > D");
    assert_eq!(p.total, 2);
    // the table shows the raise
    let table = t.describe(&raises, t0);
    assert!(
        table.contains(
            &"Router: Routing table: A/Acme -> Bravo/Acme cost 2 via network LAN1 (cost 1, raised +1)"
                .to_owned()
        ),
        "{table:#?}"
    );
    assert!(table.contains(
        &"Router: Routing table: Bravo/Acme -> D/Acme cost 2 via connection Bravo/Acme to D/Acme (cost 1, raised +1)"
            .to_owned()
    ));

    // a transfer over it succeeds: back to the first path
    let mut cleared = raises.clone();
    cleared.clear(&n("A"), &n("Bravo"));
    cleared.clear(&n("Bravo"), &n("D"));
    assert!(cleared.is_empty());
    assert_eq!(
        t.least_cost(&n("A"), &n("D"), &cleared, t0),
        Some(first.clone())
    );

    // or the reset interval passes
    assert_eq!(raises.extra(&n("A"), &n("Bravo"), t0 + RESET_MS - 1), 1);
    assert_eq!(raises.extra(&n("A"), &n("Bravo"), t0 + RESET_MS), 0);
    assert_eq!(
        t.least_cost(&n("A"), &n("D"), &raises, t0 + RESET_MS),
        Some(first)
    );
    let mut pruned = raises.clone();
    pruned.prune(t0 + RESET_MS);
    assert!(pruned.is_empty());
}

#[test]
fn raises_add_up_and_restart_after_the_reset() {
    // Direct A -> C at 1 against A -> B -> C at 2: one failure ties on cost
    // (the direct one still wins on hops), two make the way round cheaper.
    let d = domain(
        &[("A", &["LAN"]), ("B", &["LAN", "WAN"]), ("C", &["WAN"])],
        &[("A", "C", 1, true)],
    );
    let t = RoutingTable::build(&d);
    let mut raises = CostRaises::default();
    raises.raise(&n("A"), &n("C"), 0);
    assert_eq!(
        names(&t.least_cost(&n("A"), &n("C"), &raises, 0).unwrap()),
        "A > C"
    );
    raises.raise(&n("A"), &n("C"), 10);
    assert_eq!(raises.extra(&n("A"), &n("C"), 10), 2);
    let p = t.least_cost(&n("A"), &n("C"), &raises, 10).unwrap();
    assert_eq!(names(&p), "A > B > C");
    assert_eq!(
        p.describe()[3],
        "Router: Not using A/Acme -> C/Acme cost 3 via connection A/Acme to C/Acme (cost 1, raised +2): cost 3 is more than 2"
    );
    // the interval runs from the last raise
    assert_eq!(raises.extra(&n("A"), &n("C"), RESET_MS), 2);
    assert_eq!(raises.extra(&n("A"), &n("C"), 10 + RESET_MS), 0);
    // a failure after the reset starts again at 1
    raises.raise(&n("A"), &n("C"), 10 + RESET_MS);
    assert_eq!(raises.extra(&n("A"), &n("C"), 10 + RESET_MS), 1);
}

#[test]
fn no_path_unknown_servers_and_zero_hops() {
    let d = domain(&[("A", &["LAN"]), ("B", &["LAN"]), ("Far", &["FAR"])], &[]);
    assert_eq!(plain(&d, "A", "Far"), None);
    assert_eq!(plain(&d, "Far", "A"), None);
    assert_eq!(plain(&d, "A", "Nowhere"), None);
    assert_eq!(plain(&d, "Nowhere", "A"), None);
    let p = plain(&d, "A", "A").unwrap();
    assert!(p.hops.is_empty());
    assert_eq!((p.total, p.next_hop()), (0, None));
    assert_eq!(
        p.describe(),
        ["Router: Least cost route to A/Acme: A/Acme, cost 0, 0 hops"]
    );
}

#[test]
fn one_way_connections_are_one_way() {
    let d = domain(&[("A", &[]), ("B", &[])], &[("A", "B", 3, true)]);
    let p = plain(&d, "A", "B").unwrap();
    assert_eq!((names(&p).as_str(), p.total), ("A > B", 3));
    assert_eq!(plain(&d, "B", "A"), None);
    assert_eq!(
        RoutingTable::build(&d).describe(&CostRaises::default(), 0),
        ["Router: Routing table: A/Acme -> B/Acme cost 3 via connection A/Acme to B/Acme"]
    );
}

#[test]
fn route_to_server_takes_the_tables_next_hop() {
    let d = domain(
        &[("A", &["LAN1"]), ("B", &["LAN1", "LAN2"]), ("C", &["LAN2"])],
        &[],
    );
    let config = d.config_for(&n("A"));
    let ctx = routing::Context::new(&d, &config, d.server(&n("A")).unwrap());
    assert_eq!(
        routing::route_to_server(ctx, &n("C")),
        routing::Route::Server {
            destination: "C/Acme".into(),
            next_hop: "B/Acme".into(),
        }
    );
    // A failed hop A -> B raises its cost; with no other path B stays the next hop.
    let table = routing::RoutingTable::build(&d);
    let mut raises = routing::CostRaises::default();
    raises.raise(&n("A"), &n("B"), 1_000);
    let raised = routing::Context {
        table: Some(&table),
        raises: Some((&raises, 2_000)),
        ..ctx
    };
    assert_eq!(
        routing::route_to_server(raised, &n("C")),
        routing::Route::Server {
            destination: "C/Acme".into(),
            next_hop: "B/Acme".into(),
        }
    );
}

#[test]
fn a_raised_cost_in_the_context_moves_the_route() {
    // A reaches C directly (cost 2) or through B (1 + 1): equal cost, fewer hops wins.
    let d = domain(
        &[("A", &["LAN1"]), ("B", &["LAN1", "LAN2"]), ("C", &["LAN2"])],
        &[("A", "C", 2, true)],
    );
    let config = d.config_for(&n("A"));
    let table = routing::RoutingTable::build(&d);
    let none = routing::CostRaises::default();
    let ctx = routing::Context {
        table: Some(&table),
        raises: Some((&none, 0)),
        ..routing::Context::new(&d, &config, d.server(&n("A")).unwrap())
    };
    let hop = |ctx| match routing::route_to_server(ctx, &n("C")) {
        routing::Route::Server { next_hop, .. } => next_hop,
        other => panic!("{other:?}"),
    };
    assert_eq!(hop(ctx), "C/Acme");
    let mut raises = routing::CostRaises::default();
    raises.raise(&n("A"), &n("C"), 0);
    let raised = routing::Context {
        raises: Some((&raises, 1)),
        ..ctx
    };
    assert_eq!(hop(raised), "B/Acme");
}

// ---- properties over random small domains ----

const POOL: [&str; 8] = [
    "alpha", "Bravo", "charlie", "Delta", "echo", "Foxtrot", "golf", "Hotel",
];
const NETS: [&str; 3] = ["Net0", "net1", "NET2"];

#[derive(Debug, Clone)]
struct Spec {
    /// Common names, in directory order.
    names: Vec<&'static str>,
    /// Per server: which of NETS it is on.
    nets: Vec<Vec<usize>>,
    /// (source, destination, cost, enabled) by server index.
    conns: Vec<(usize, usize, u32, bool)>,
    /// (from, to, failures) by server index.
    raises: Vec<(usize, usize, u32)>,
}

impl Spec {
    fn directory(&self, extra_server: Option<(usize, &str)>) -> Directory {
        let mut servers: Vec<(String, Vec<String>)> = self
            .names
            .iter()
            .zip(&self.nets)
            .map(|(name, nets)| {
                (
                    name.to_string(),
                    nets.iter().map(|&i| NETS[i].to_string()).collect(),
                )
            })
            .collect();
        if let Some((at, name)) = extra_server {
            servers.insert(
                at.min(servers.len()),
                (name.to_owned(), vec!["Island".into()]),
            );
        }
        let conns: Vec<(String, String, u32, bool)> = self
            .conns
            .iter()
            .map(|&(a, b, c, e)| (self.names[a].to_owned(), self.names[b].to_owned(), c, e))
            .collect();
        parse(&domain_text(&servers, &conns))
    }

    fn raises(&self, now: i64) -> CostRaises {
        let mut r = CostRaises::default();
        for &(a, b, times) in &self.raises {
            for _ in 0..times {
                r.raise(&n(self.names[a]), &n(self.names[b]), now);
            }
        }
        r
    }

    fn extra(&self, a: usize, b: usize) -> u32 {
        (self.raises.iter())
            .filter(|r| (r.0, r.1) == (a, b))
            .map(|r| r.2)
            .sum()
    }

    /// The cheapest edge a → b with raises, straight from the spec.
    fn edge_cost(&self, a: usize, b: usize, raised: bool) -> Option<u32> {
        let net = self.nets[a].iter().any(|x| self.nets[b].contains(x));
        let conn = (self.conns.iter())
            .filter(|c| c.0 == a && c.1 == b && c.3)
            .map(|c| c.2)
            .min();
        let base = match (net, conn) {
            (true, Some(c)) => Some(c.min(1)),
            (true, None) => Some(1),
            (false, c) => c,
        }?;
        Some(base + if raised { self.extra(a, b) } else { 0 })
    }

    /// Every simple path a → b, the least by (cost, hops, names).
    fn brute_force(&self, a: usize, b: usize, raised: bool) -> Option<(u64, usize, Vec<String>)> {
        fn walk(
            s: &Spec,
            at: usize,
            to: usize,
            raised: bool,
            seen: &mut Vec<usize>,
            cost: u64,
            best: &mut Option<(u64, usize, Vec<String>)>,
        ) {
            if at == to {
                let names = seen[1..]
                    .iter()
                    .map(|&i| s.names[i].to_lowercase())
                    .collect();
                let cand = (cost, seen.len() - 1, names);
                if best.as_ref().is_none_or(|b| cand < *b) {
                    *best = Some(cand);
                }
                return;
            }
            for next in 0..s.names.len() {
                if seen.contains(&next) {
                    continue;
                }
                if let Some(c) = s.edge_cost(at, next, raised) {
                    seen.push(next);
                    walk(s, next, to, raised, seen, cost + u64::from(c), best);
                    seen.pop();
                }
            }
        }
        let mut best = None;
        walk(self, a, b, raised, &mut vec![a], 0, &mut best);
        best
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..=7)
        .prop_flat_map(|count| {
            (
                Just(POOL.to_vec()).prop_shuffle(),
                proptest::collection::vec(
                    proptest::sample::subsequence(vec![0, 1, 2], 0..=2),
                    count,
                ),
                proptest::collection::vec(
                    (0..count, 0..count, 1u32..=6, proptest::bool::weighted(0.8)),
                    0..=10,
                ),
                proptest::collection::vec((0..count, 0..count, 1u32..=3), 0..=4),
            )
        })
        .prop_map(|(pool, nets, conns, raises)| {
            let count = nets.len();
            Spec {
                names: pool[..count].to_vec(),
                nets,
                conns: conns.into_iter().filter(|c| c.0 != c.1).collect(),
                raises,
            }
        })
}

fn key(p: &PathChoice) -> (u64, usize, Vec<String>) {
    (
        p.total,
        p.hops.len(),
        p.hops
            .iter()
            .map(|h| h.to.common_name().to_lowercase())
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn least_cost_agrees_with_brute_force_and_is_a_real_path(s in spec(), raised in any::<bool>()) {
        let d = s.directory(None);
        let t = RoutingTable::build(&d);
        let now = 5_000;
        let raises = if raised { s.raises(now) } else { CostRaises::default() };
        for a in 0..s.names.len() {
            for b in 0..s.names.len() {
                let got = t.least_cost(&n(s.names[a]), &n(s.names[b]), &raises, now + 1);
                let want = s.brute_force(a, b, raised);
                prop_assert_eq!(got.as_ref().map(key), want, "{} -> {}", s.names[a], s.names[b]);
                let Some(p) = got else { continue };
                // a real path of edges, from a to b, each at its cost now
                prop_assert_eq!(&p.from, &n(s.names[a]));
                prop_assert_eq!(&p.to, &n(s.names[b]));
                let mut at = p.from.clone();
                let mut total = 0u64;
                for hop in &p.hops {
                    prop_assert_eq!(&hop.from, &at);
                    let (i, j) = (
                        s.names.iter().position(|x| n(x) == hop.from).unwrap(),
                        s.names.iter().position(|x| n(x) == hop.to).unwrap(),
                    );
                    let extra = if raised { s.extra(i, j) } else { 0 };
                    prop_assert_eq!(hop.raised, extra);
                    match &hop.kind {
                        EdgeKind::Network(net) => {
                            let k = NETS.iter().position(|x| x == net).unwrap();
                            prop_assert!(s.nets[i].contains(&k) && s.nets[j].contains(&k));
                            prop_assert_eq!(hop.cost, 1 + extra);
                        }
                        EdgeKind::Connection(ci) => {
                            let c = s.conns[*ci];
                            prop_assert_eq!((c.0, c.1, c.3), (i, j, true));
                            prop_assert_eq!(hop.cost, c.2 + extra);
                        }
                    }
                    total += u64::from(hop.cost);
                    at = hop.to.clone();
                }
                prop_assert_eq!(&at, &p.to);
                prop_assert_eq!(total, p.total);
                prop_assert_eq!(p.next_hop(), p.hops.first().map(|h| &h.to));
                // every direct edge not taken is listed, none taken is
                for alt in &p.passed_over {
                    prop_assert_eq!((&alt.from, &alt.to), (&p.from, &p.to));
                    prop_assert!(u64::from(alt.cost) >= p.total);
                    prop_assert!(p.hops.len() != 1 || p.hops[0].kind != alt.kind);
                }
                prop_assert_eq!(p.describe().len(), 1 + p.hops.len() + p.passed_over.len());
            }
        }
    }

    #[test]
    fn an_unrelated_isolated_server_changes_no_path(
        s in spec(),
        at in 0usize..8,
        first in any::<bool>(),
    ) {
        let lonely = if first { "Aardvark" } else { "zulu" };
        let (d, d2) = (s.directory(None), s.directory(Some((at, lonely))));
        let (t, t2) = (RoutingTable::build(&d), RoutingTable::build(&d2));
        let none = CostRaises::default();
        for a in &s.names {
            for b in &s.names {
                prop_assert_eq!(
                    t.least_cost(&n(a), &n(b), &none, 0),
                    t2.least_cost(&n(a), &n(b), &none, 0),
                    "{} -> {}", a, b
                );
            }
            prop_assert_eq!(t2.least_cost(&n(a), &n(lonely), &none, 0), None);
            prop_assert_eq!(t2.least_cost(&n(lonely), &n(a), &none, 0), None);
        }
    }

    #[test]
    fn raising_a_cost_never_lowers_a_total(s in spec()) {
        let d = s.directory(None);
        let t = RoutingTable::build(&d);
        let now = 77;
        let raises = s.raises(now);
        let mut cleared = raises.clone();
        for &(a, b, _) in &s.raises {
            cleared.clear(&n(s.names[a]), &n(s.names[b]));
        }
        prop_assert!(cleared.is_empty());
        for a in &s.names {
            for b in &s.names {
                let before = t.least_cost(&n(a), &n(b), &CostRaises::default(), now);
                let after = t.least_cost(&n(a), &n(b), &raises, now);
                prop_assert_eq!(before.is_some(), after.is_some());
                if let (Some(x), Some(y)) = (&before, &after) {
                    prop_assert!(y.total >= x.total, "{} -> {}: {} < {}", a, b, y.total, x.total);
                }
                // cleared or expired, the path is the unraised one again
                prop_assert_eq!(&t.least_cost(&n(a), &n(b), &cleared, now), &before);
                prop_assert_eq!(&t.least_cost(&n(a), &n(b), &raises, now + RESET_MS), &before);
            }
        }
    }
}
