//! CDEvents (the CD Foundation's CI/CD vocabulary) are CloudEvents whose `type` starts with
//! `dev.cdevents.` and whose data is the CDEvent (`context`, `subject`, optional `customData`).
//! They keep [`Format::Cloudevents`](crate::event::Format::Cloudevents) and `@type` is the
//! CDEvents type with its version (`dev.cdevents.pipelinerun.finished.0.2.0`), so rules select
//! `types: [dev.cdevents.pipelinerun.finished.*]` and read `subject.content.outcome`. The
//! subject's `id` and `type` are added as the attributes `cdevents_subject_id` and
//! `cdevents_subject_type` (when the data has them), and the event type without its version as
//! `cdevents_type` (`dev.cdevents.pipelinerun.finished`), for rules and outcomes that must not
//! depend on the spec version.

use serde_json::Value;

use crate::event::Metadata;

/// The prefix every CDEvents type has.
pub const TYPE_PREFIX: &str = "dev.cdevents.";

/// Adds the CDEvents attributes to a CloudEvent's metadata if it is a CDEvent.
pub(super) fn annotate(meta: &mut Metadata, payload: &Value) {
    let Some(event_type) = meta.event_type.as_deref() else {
        return;
    };
    let Some(rest) = event_type.strip_prefix(TYPE_PREFIX) else {
        return;
    };
    // `subject.predicate.MAJOR.MINOR.PATCH[-pre]`: the first two parts name the event.
    let name: Vec<&str> = rest.splitn(3, '.').take(2).collect();
    let unversioned = format!("{TYPE_PREFIX}{}", name.join("."));
    meta.attributes
        .insert("cdevents_type".to_owned(), Value::String(unversioned));
    let subject = payload.get("subject");
    for (key, attribute) in [
        ("id", "cdevents_subject_id"),
        ("type", "cdevents_subject_type"),
    ] {
        if let Some(v) = subject.and_then(|s| s.get(key)).filter(|v| v.is_string()) {
            meta.attributes.insert(attribute.to_owned(), v.clone());
        }
    }
}
