//! Reading `mailvet check --file`'s list: from a file or standard input,
//! with the one CSV reader of address lists, in chunks on a thread of
//! their own.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

use super::CHUNK_SIZE;
use crate::jobs::input::{CsvAddresses, InputError};

/// Where the addresses come from.
#[derive(Debug, Clone)]
pub(super) enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub(super) fn new(path: &Path) -> Self {
        if path.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::File(path.to_owned())
        }
    }

    fn name(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_owned(),
            Input::File(path) => path.display().to_string(),
        }
    }

    pub(super) fn open(&self) -> anyhow::Result<Addresses> {
        let reader: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(std::io::stdin()),
            Input::File(path) => Box::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
        };
        Ok(Addresses {
            reader: CsvAddresses::new(reader, self.name()),
            name: self.name(),
        })
    }
}

/// Whether two paths name one existing file.
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The addresses of the input, read by the one CSV reader of address
/// lists; its errors name the input.
pub(super) struct Addresses {
    reader: CsvAddresses<Box<dyn Read + Send>>,
    name: String,
}

impl Addresses {
    /// Up to `size` addresses; empty at the end.
    fn next_chunk(&mut self, size: usize) -> anyhow::Result<Vec<String>> {
        let name = &self.name;
        self.reader
            .next_batch(size)
            .map_err(|err| read_error(err, name))
    }

    /// How many addresses there are (reads to the end).
    pub(super) fn count(self) -> anyhow::Result<u64> {
        let name = self.name;
        self.reader.count().map_err(|err| read_error(err, &name))
    }
}

/// A reading error as `check` reports it: the reader's own messages name
/// the input already; a failed read says which input failed.
fn read_error(err: InputError, name: &str) -> anyhow::Error {
    match err {
        InputError::Io(err) => anyhow::Error::new(err).context(format!("cannot read {name}")),
        other => anyhow::Error::new(other),
    }
}

/// Chunks of addresses read on a thread of their own, at most two ahead of
/// the verifier: memory stays bounded whatever the input's size, and a
/// stalled standard input never holds up the runtime's shutdown.
pub(super) struct Chunks {
    receiver: tokio::sync::mpsc::Receiver<anyhow::Result<Vec<String>>>,
    skipped: Arc<AtomicU64>,
}

impl Chunks {
    /// The next chunk; `None` at the end.
    pub(super) async fn recv(&mut self) -> Option<anyhow::Result<Vec<String>>> {
        self.receiver.recv().await
    }

    /// Rows without an address, so far.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::SeqCst)
    }
}

pub(super) fn read_chunks(mut addresses: Addresses) -> Chunks {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let skipped = Arc::new(AtomicU64::new(0));
    let counter = skipped.clone();
    std::thread::spawn(move || {
        loop {
            let chunk = addresses.next_chunk(CHUNK_SIZE);
            counter.store(addresses.reader.skipped(), Ordering::SeqCst);
            match chunk {
                Ok(chunk) if chunk.is_empty() => return,
                Ok(chunk) => {
                    if sender.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = sender.blocking_send(Err(err));
                    return;
                }
            }
        }
    });
    Chunks { receiver, skipped }
}
