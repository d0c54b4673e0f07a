//! A real authoritative DNS server for the zone `test.` on a loopback port
//! (UDP and TCP), built with hickory-server.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// Records to publish in `test.` (or in the zones of [`Dns::start_zones`]).
pub enum Rr {
    Mx(&'static str, u16, &'static str),
    A(&'static str, Ipv4Addr),
    /// `Ptr("1.0.0.127.in-addr.arpa.", "mx.bad.example.")`.
    Ptr(&'static str, &'static str),
    /// `Txt("9.0.0.127.bl.test.", "listed for testing")`.
    Txt(&'static str, &'static str),
    /// A TXT record made at run time, of one or more character-strings
    /// (each at most 255 bytes; a DKIM key's record is cut into several),
    /// e.g. `TxtStrings("s._domainkey.sender.test.".into(), vec![...])`.
    TxtStrings(String, Vec<String>),
}

impl Rr {
    fn record(self) -> Record {
        match self {
            Rr::Mx(owner, preference, exchange) => Record::from_rdata(
                name(owner),
                60,
                RData::MX(MX::new(preference, name(exchange))),
            ),
            Rr::A(owner, ip) => Record::from_rdata(name(owner), 60, RData::A(A(ip))),
            Rr::Ptr(owner, target) => {
                Record::from_rdata(name(owner), 60, RData::PTR(PTR(name(target))))
            }
            Rr::Txt(owner, text) => {
                Record::from_rdata(name(owner), 60, RData::TXT(TXT::new(vec![text.to_owned()])))
            }
            Rr::TxtStrings(owner, strings) => {
                Record::from_rdata(name(&owner), 60, RData::TXT(TXT::new(strings)))
            }
        }
    }
}

pub struct Dns {
    pub addr: SocketAddr,
    _server: Server<Catalog>,
}

fn name(text: &str) -> Name {
    Name::from_str(text).expect("test name")
}

impl Dns {
    /// An authoritative server for the zone `test.`.
    pub async fn start(records: Vec<Rr>) -> Self {
        Self::start_zones(vec![("test.", records)]).await
    }

    /// An authoritative server for several zones, e.g. `("bad.example.", ...)`
    /// and `("127.in-addr.arpa.", ...)` for forward-confirmed reverse DNS.
    pub async fn start_zones(zones: Vec<(&'static str, Vec<Rr>)>) -> Self {
        let mut catalog = Catalog::new();
        for (origin, records) in zones {
            let origin = name(origin);
            let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
            let soa = SOA::new(
                name("ns.test."),
                name("hostmaster.test."),
                1,
                3600,
                600,
                86400,
                60,
            );
            zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
            for record in records {
                assert!(zone.upsert_mut(record.record(), 1), "record not added");
            }
            catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        }
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let port = udp.local_addr().expect("udp address").port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("udp address");
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Self {
            addr,
            _server: server,
        }
    }
}
