//! Reading phone numbers runs off the runtime's threads.
//!
//! Its own test binary, so its one process starts with libphonenumber's metadata
//! undecoded: in the `it` binary or the library's tests another test would already have
//! decoded it, and the decode this test watches would not happen.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use vendasta_bridge::{
    contact::{Contact, Phone},
    delivery::worker::map_contact,
};

#[tokio::test(flavor = "current_thread")]
async fn other_tasks_keep_running_while_the_first_contact_with_a_phone_is_mapped() {
    // Arrange: a task that counts its turns on the runtime's only thread, and a contact
    // whose phone number makes `phonenumber` decode its metadata.
    let turns = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&turns);
    let ticker = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
    let contact = Contact {
        phones: vec![Phone {
            number: "613 555 0123".to_string(),
            default_region: Some("CA".to_string()),
        }],
        ..Contact::default()
    };

    // Act
    let customer = map_contact(&contact, &[]).await.unwrap();

    // Assert: the ticker ran while the number was read. Read on this thread, the mapping
    // would return before the ticker had its first turn.
    let during = turns.load(Ordering::Relaxed);
    ticker.abort();
    assert!(during > 0, "no other task ran while the contact was mapped");
    assert_eq!(customer.attributes.phone_numbers, ["+16135550123"]);
    assert_eq!(customer.dropped_phones, 0);
}
