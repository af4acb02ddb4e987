//! The dead-letter contract (relay-tests' `dead_letters::contract`) on the
//! disk queue of `serve`. SQS (moto), the Azure poison queue (Azurite) and
//! the Pub/Sub dead-letter topic (its emulator) run the same contract in
//! their crates' tests.

#![allow(clippy::unwrap_used)] // test: fail loudly

use std::sync::Arc;
use std::time::Duration;

use relay_core::queue::disk::DiskQueue;
use relay_core::queue::{Disposition, QueuePolicy, QueuedEvent};
use relay_tests::dead_letters::{Backend, CASES, contract};

/// Retries come back at once: a letter's attempts are its leases.
const NO_BACKOFF: QueuePolicy = QueuePolicy {
    max_attempts: 100,
    initial_backoff: Duration::ZERO,
    max_backoff: Duration::ZERO,
};

#[tokio::test]
async fn the_disk_queue_keeps_the_dead_letter_contract() {
    let dir = std::env::temp_dir().join(format!("relay-dead-letters-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let queue = Arc::new(DiskQueue::open(&dir).unwrap());
    let ran = contract(Backend {
        name: "disk",
        store: queue.as_ref(),
        // As the worker does: leased once per attempt, then dead-lettered.
        write: Box::new(|letter| {
            let queue = queue.clone();
            Box::pin(async move {
                let key = QueuedEvent::from_json(&letter.body)
                    .map_or_else(|_| "unreadable".to_owned(), |m| m.ordering_key());
                queue.enqueue_raw(vec![(key, letter.body.clone())]).await?;
                for attempt in 1..=letter.attempts {
                    let lease = queue.lease_or_wait(Duration::from_secs(5)).await.unwrap();
                    assert_eq!(
                        (lease.body.as_str(), lease.attempt),
                        (letter.body.as_str(), attempt)
                    );
                    let disposition = if attempt == letter.attempts {
                        Disposition::DeadLetter {
                            reason: letter.reason.clone(),
                        }
                    } else {
                        Disposition::Retry {
                            reason: "transient".into(),
                        }
                    };
                    queue.settle(&lease, &disposition, &NO_BACKOFF);
                }
                Ok(())
            })
        }),
        drain_main: Box::new(|| {
            let queue = queue.clone();
            Box::pin(async move {
                let mut bodies = Vec::new();
                while let Some(lease) = queue.lease_or_wait(Duration::from_millis(300)).await {
                    queue.settle(&lease, &Disposition::Done, &NO_BACKOFF);
                    bodies.push(lease.body);
                }
                bodies
            })
        }),
    })
    .await;
    assert_eq!(ran, CASES.len());
    drop(queue);
    let _ = std::fs::remove_dir_all(&dir);
}
