//! One consistent view of the directory for one server.

use std::sync::Arc;

use directory::{Config, Directory, NotesName, ServerDoc};

/// The directory as one server sees it: the documents, its merged
/// configuration and its own server document. Swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: Arc<Directory>,
    pub config: Config,
    pub server: ServerDoc,
    /// The domain's routing table, built once per directory (SPEC §3 step 9).
    pub table: Arc<routing::RoutingTable>,
    /// The DKIM signers of `config.outbound.dkim_sign`, built once per directory.
    pub dkim: Arc<crate::dkim::Signers>,
}

impl Snapshot {
    /// The view of `server` in `dir`, or `None` when the directory has no such server.
    pub fn new(dir: Arc<Directory>, server: &NotesName) -> Option<Snapshot> {
        let doc = dir.server(server)?.clone();
        let config = dir.config_for(server);
        let table = Arc::new(routing::RoutingTable::build(&dir));
        let dkim = Arc::new(crate::dkim::Signers::new(&config.outbound.dkim_sign));
        Some(Snapshot {
            dir,
            config,
            server: doc,
            table,
            dkim,
        })
    }

    /// The routing context of this snapshot, with no raised costs.
    pub fn routing(&self) -> routing::Context<'_> {
        routing::Context {
            table: Some(&self.table),
            ..routing::Context::new(&self.dir, &self.config, &self.server)
        }
    }

    /// The routing context with the costs raised by failed hops, as judged at `now`.
    pub fn routing_with<'a>(
        &'a self,
        raises: &'a routing::CostRaises,
        now: i64,
    ) -> routing::Context<'a> {
        routing::Context {
            raises: Some((raises, now)),
            ..self.routing()
        }
    }
}
