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
}

impl Snapshot {
    /// The view of `server` in `dir`, or `None` when the directory has no such server.
    pub fn new(dir: Arc<Directory>, server: &NotesName) -> Option<Snapshot> {
        let doc = dir.server(server)?.clone();
        let config = dir.config_for(server);
        Some(Snapshot {
            dir,
            config,
            server: doc,
        })
    }

    pub fn routing(&self) -> routing::Context<'_> {
        routing::Context {
            dir: &self.dir,
            config: &self.config,
            server: &self.server,
        }
    }
}
