//! A named thread fed by a channel. Dropping the handle closes the channel,
//! lets the thread finish what it was given and waits for it. Owns no data.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use crate::error::StoreError;

pub(crate) struct Worker<T> {
    sender: Option<Sender<T>>,
    thread: Option<JoinHandle<()>>,
    name: &'static str,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts `body` on a thread called `name`; `path` names the store in errors.
    pub(crate) fn spawn(
        name: &'static str,
        path: &Path,
        body: impl FnOnce(Receiver<T>) + Send + 'static,
    ) -> Result<Worker<T>, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(receiver))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: format!("cannot start thread {name}: {e}"),
            })?;
        Ok(Worker {
            sender: Some(sender),
            thread: Some(thread),
            name,
        })
    }

    /// Hands `item` to the thread; `Closed` if the thread is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), StoreError> {
        self.sender
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(item)
            .map_err(|_| StoreError::Closed)
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("store thread {} panicked", self.name);
        }
    }
}
