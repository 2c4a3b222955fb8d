//! Feeds `prost::Message::decode` the messages hosts and placement nodes decode from the
//! network: internal (`ForwardRequest`, `ForwardResponse`, `StoredReminder`,
//! `CreateReminderRequest`, `RecordFiringsRequest`, `FetchDueRequest`, `HostReport`,
//! `PlacementOrder`, `RaftPayload`, `ListRemindersResponse`) and public (`AppToHost`,
//! `InvokeRequest`, `CreateActorReminderRequest`), then gives a decoded `StoredReminder`
//! to `rookery_core::reminders::reminder_from_wire`.
//!
//! Checks: nothing panics; a reminder `reminder_from_wire` accepts survives
//! `reminder_to_wire` and `reminder_from_wire` again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use rookery_core::reminders::{reminder_from_wire, reminder_to_wire};
use rookery_proto::internal::v1 as internal;
use rookery_proto::v1 as public;

fuzz_target!(|data: &[u8]| {
    let _ = internal::ForwardRequest::decode(data);
    let _ = internal::ForwardResponse::decode(data);
    let _ = internal::CreateReminderRequest::decode(data);
    let _ = internal::RecordFiringsRequest::decode(data);
    let _ = internal::FetchDueRequest::decode(data);
    let _ = internal::HostReport::decode(data);
    let _ = internal::PlacementOrder::decode(data);
    let _ = internal::RaftPayload::decode(data);
    let _ = internal::ListRemindersResponse::decode(data);
    let _ = public::AppToHost::decode(data);
    let _ = public::InvokeRequest::decode(data);
    let _ = public::CreateActorReminderRequest::decode(data);

    let Ok(wire) = internal::StoredReminder::decode(data) else {
        return;
    };
    let Ok(reminder) = reminder_from_wire(wire) else {
        return;
    };
    let again = reminder_from_wire(reminder_to_wire(&reminder))
        .unwrap_or_else(|e| panic!("{reminder:?} does not come back: {e}"));
    assert_eq!(again, reminder);
});
