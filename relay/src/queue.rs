//! The bounded queue between ingest and the batcher, counted in documents.
//!
//! Ingest reserves room for a whole request at once ([`QueueSender::try_reserve`]): a
//! request is either queued entirely or refused with 429, never half-queued. On shutdown
//! the batcher closes the receiving side; further reservations fail with
//! [`QueueError::Closed`] while what is queued is still drained.

use tokio::sync::mpsc;

/// One document ready for the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDocument {
    /// The document's `id`, to match `UnprocessedTraceSegments` entries to documents.
    pub id: Option<String>,
    /// Exactly the JSON sent to X-Ray or written as one line.
    pub json: String,
}

/// Why room could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// Fewer free slots than documents.
    Full {
        /// Free slots at the time.
        free: usize,
    },
    /// The batcher has stopped taking documents (shutdown).
    Closed,
}

/// The sending side, shared by the HTTP handlers and the UDP daemon listener.
#[derive(Debug, Clone)]
pub struct QueueSender {
    /// The channel; its capacity is the queue's.
    tx: mpsc::Sender<QueuedDocument>,
}

/// The receiving side, owned by the batcher.
pub type QueueReceiver = mpsc::Receiver<QueuedDocument>;

/// Room reserved for some documents; unused slots are released when it is dropped.
pub type Reservation<'a> = mpsc::PermitIterator<'a, QueuedDocument>;

/// A queue holding up to `capacity` documents (at least 1).
pub fn channel(capacity: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (QueueSender { tx }, rx)
}

impl QueueSender {
    /// Reserves `n` slots at once, or none.
    ///
    /// # Errors
    /// [`QueueError::Full`] when fewer than `n` slots are free; [`QueueError::Closed`]
    /// after shutdown began.
    pub fn try_reserve(&self, n: usize) -> Result<Reservation<'_>, QueueError> {
        if self.tx.is_closed() {
            return Err(QueueError::Closed);
        }
        self.tx.try_reserve_many(n).map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => QueueError::Full {
                free: self.tx.capacity(),
            },
            mpsc::error::TrySendError::Closed(()) => QueueError::Closed,
        })
    }

    /// Most documents the queue holds.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Documents queued or reserved now.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// Whether the receiving side stopped taking documents.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document numbered `n`.
    fn doc(n: usize) -> QueuedDocument {
        QueuedDocument {
            id: None,
            json: n.to_string(),
        }
    }

    /// A reservation is all or nothing, and unused slots come back.
    #[test]
    fn reserves_all_or_nothing() {
        let (tx, mut rx) = channel(3);
        {
            let mut reservation = tx.try_reserve(2).unwrap();
            reservation.next().unwrap().send(doc(1));
            // The second slot is dropped unused.
        }
        assert_eq!(tx.depth(), 1);
        assert_eq!(tx.try_reserve(3).unwrap_err(), QueueError::Full { free: 2 });
        assert!(tx.try_reserve(2).is_ok());
        assert_eq!(rx.try_recv().unwrap(), doc(1));
        rx.close();
        assert_eq!(tx.try_reserve(1).unwrap_err(), QueueError::Closed);
    }
}
