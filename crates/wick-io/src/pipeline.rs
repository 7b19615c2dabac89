//! Overlapping I/O with work: a thread reading batches of lines ahead, and a thread writing
//! finished chunks behind, so the cores spend their time on the work itself.

use std::sync::mpsc::{sync_channel, SyncSender};

use crate::{Error, Line, LineReader, Output, Result};

/// Reads `reader` in batches (see [`LineReader::read_batch`]) on its own thread and hands each
/// to `f` in order.
pub fn for_each_batch(
    mut reader: LineReader,
    max_lines: usize,
    max_bytes: usize,
    mut f: impl FnMut(Vec<Line>) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(2);
        s.spawn(move || loop {
            let batch = reader.read_batch(max_lines, max_bytes);
            let last = !matches!(&batch, Ok(b) if !b.is_empty());
            if tx.send(batch).is_err() || last {
                break;
            }
        });
        // Returning early drops `rx`, which ends the reader thread.
        for batch in rx {
            let batch = batch?;
            if batch.is_empty() {
                break;
            }
            f(batch)?;
        }
        Ok(())
    })
}

/// Sends chunks to the writer thread of [`write_behind`].
pub struct ChunkSender(SyncSender<Vec<u8>>);

impl ChunkSender {
    /// Queues a chunk; fails when the writer has stopped (its own error is reported instead).
    pub fn send(&self, chunk: Vec<u8>) -> Result<()> {
        self.0
            .send(chunk)
            .map_err(|_| Error::msg("output writer stopped"))
    }
}

/// Runs `f` with a sender whose chunks are written to `out`, in order, on another thread. A
/// write error (a closed pipe included) is returned in preference to the error it caused in `f`.
pub fn write_behind<R>(out: &mut Output, f: impl FnOnce(&ChunkSender) -> Result<R>) -> Result<R> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let writer = s.spawn(move || -> Result<()> {
            for chunk in rx {
                out.put(&chunk)?;
            }
            Ok(())
        });
        let result = f(&ChunkSender(tx));
        // `f` has returned and its sender is gone, so the writer drains and ends.
        let written = writer.join().expect("writer thread does not panic");
        written.and(result)
    })
}
