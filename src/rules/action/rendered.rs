//! The rendered action an executor receives: one variant per action kind, carrying the kind's
//! typed, validated parameters. [`super::CompiledAction::render`] produces it; executors match
//! on it, so a kind always arrives with its own parameters.
//!
//! Serialized (planned actions in `reflex replay`, outcome records), an action is
//! `{"kind": "<kind>", "params": {<the parameters>}}`, the shape outcomes have always had.

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::kubernetes::TargetParams;
use super::{
    ActionKind, AnnotateAction, CreateAction, DeleteAction, KafkaAction, LabelAction, LogAction,
    NodeAction, PatchAction, PatchType, RestartAction, RollbackAction, ScaleAction, SecretRef,
    SetImageAction, WebhookAction, WebhookUrl,
};

/// A rendered action: what to do, with its typed parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// An action on the Kubernetes API.
    Kubernetes(KubernetesAction),
    /// `webhook`: send an HTTP request.
    Webhook(WebhookAction),
    /// `kafka`: produce a record.
    Kafka(KafkaAction),
    /// `log`: record a message in the outcome only.
    Log(LogAction),
}

/// A rendered action on the Kubernetes API (what the Kubernetes executor carries out).
#[derive(Debug, Clone, PartialEq)]
pub enum KubernetesAction {
    /// `scale`.
    Scale(ScaleAction),
    /// `restart`.
    Restart(RestartAction),
    /// `set_image`.
    SetImage(SetImageAction),
    /// `rollback`.
    Rollback(RollbackAction),
    /// `patch`.
    Patch(PatchAction),
    /// `delete`.
    Delete(DeleteAction),
    /// `create`.
    Create(CreateAction),
    /// `cordon`.
    Cordon(NodeAction),
    /// `uncordon`.
    Uncordon(NodeAction),
    /// `label`.
    Label(LabelAction),
    /// `annotate`.
    Annotate(AnnotateAction),
}

impl From<KubernetesAction> for Action {
    fn from(action: KubernetesAction) -> Self {
        Action::Kubernetes(action)
    }
}

impl Action {
    /// Its kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Kubernetes(k) => k.kind(),
            Action::Webhook(_) => ActionKind::Webhook,
            Action::Kafka(_) => ActionKind::Kafka,
            Action::Log(_) => ActionKind::Log,
        }
    }

    /// An action from its kind and JSON parameters (the `kind` and `params` of an outcome
    /// record); the error says which field does not fit the kind's parameters.
    pub fn from_parts(kind: ActionKind, params: Value) -> Result<Action, serde_json::Error> {
        fn typed<T: DeserializeOwned>(params: Value) -> Result<T, serde_json::Error> {
            serde_json::from_value(params)
        }
        use KubernetesAction as K;
        Ok(match kind {
            ActionKind::Scale => K::Scale(typed(params)?).into(),
            ActionKind::Restart => K::Restart(typed(params)?).into(),
            ActionKind::SetImage => K::SetImage(typed(params)?).into(),
            ActionKind::Rollback => K::Rollback(typed(params)?).into(),
            ActionKind::Patch => K::Patch(typed(params)?).into(),
            ActionKind::Delete => K::Delete(typed(params)?).into(),
            ActionKind::Create => K::Create(typed(params)?).into(),
            ActionKind::Cordon => K::Cordon(typed(params)?).into(),
            ActionKind::Uncordon => K::Uncordon(typed(params)?).into(),
            ActionKind::Label => K::Label(typed(params)?).into(),
            ActionKind::Annotate => K::Annotate(typed(params)?).into(),
            ActionKind::Webhook => Action::Webhook(typed(params)?),
            ActionKind::Kafka => Action::Kafka(typed(params)?),
            ActionKind::Log => Action::Log(typed(params)?),
        })
    }

    /// The parameters as JSON, as outcome records carry them.
    pub fn params_json(&self) -> Value {
        // Every parameter type is plain data with string map keys, which always encodes.
        serde_json::to_value(Params(self)).unwrap_or(Value::Null)
    }

    /// Whether executing the action twice has the same effect as once, as far as its receiver
    /// is concerned. The pipeline re-executes an action whose earlier attempt started but never
    /// recorded an end (a crash) only when this holds; otherwise it cannot know whether the
    /// first attempt took effect.
    ///
    /// Absolute changes qualify (set replicas to 5, set this image, cordon, set a label, a
    /// merge or apply patch); relative or creating ones do not (scale +1, restart, rollback to
    /// "the previous" revision, create, delete). A webhook qualifies when its rule declares
    /// `idempotent_receiver` (the receiver drops a repeated `Idempotency-Key`); a Kafka publish
    /// always does: Kafka delivery is at-least-once for every consumer anyway, and the repeat
    /// carries the same idempotency key (`ce_id`, or the `idempotency-key` header) to
    /// deduplicate on.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Action::Kubernetes(k) => match k {
                KubernetesAction::Scale(a) => a.replicas.is_some(),
                KubernetesAction::Rollback(a) => a.to_revision.is_some(),
                KubernetesAction::Patch(a) => {
                    matches!(a.patch_type, PatchType::Merge | PatchType::Apply)
                }
                KubernetesAction::SetImage(_)
                | KubernetesAction::Cordon(_)
                | KubernetesAction::Uncordon(_)
                | KubernetesAction::Label(_)
                | KubernetesAction::Annotate(_) => true,
                KubernetesAction::Restart(_)
                | KubernetesAction::Delete(_)
                | KubernetesAction::Create(_) => false,
            },
            Action::Webhook(a) => a.idempotent_receiver,
            Action::Kafka(_) | Action::Log(_) => true,
        }
    }

    /// The object the action acts on, as `kind/namespace/name` (Kubernetes objects, lower-case
    /// kind), `node/<name>`, `kafka/<topic>`, `webhook/<scheme://host/path>` (query and
    /// credentials removed: they may hold secrets) or, for a URL read from a secret,
    /// `webhook/env:NAME` / `webhook/file:/path` (the reference, never the URL). `None` for
    /// `log` and `create` (the object does not exist yet).
    pub fn target(&self) -> Option<String> {
        match self {
            Action::Kubernetes(k) => match k.object() {
                ObjectRef::Existing(t) => {
                    let kind = t.kind.to_lowercase();
                    Some(match &t.namespace {
                        Some(namespace) => format!("{kind}/{namespace}/{}", t.name),
                        None => format!("{kind}/{}", t.name),
                    })
                }
                ObjectRef::Node(node) => Some(format!("node/{node}")),
                ObjectRef::Created(_) => None,
            },
            Action::Kafka(a) => Some(format!("kafka/{}", a.topic)),
            Action::Webhook(a) => Some(match &a.url {
                WebhookUrl::Rendered(url) => format!("webhook/{}", public_url(url)),
                WebhookUrl::Secret(SecretRef::Env(name)) => format!("webhook/env:{name}"),
                WebhookUrl::Secret(SecretRef::File(path)) => format!("webhook/file:{path}"),
            }),
            Action::Log(_) => None,
        }
    }
}

impl KubernetesAction {
    /// Its kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            KubernetesAction::Scale(_) => ActionKind::Scale,
            KubernetesAction::Restart(_) => ActionKind::Restart,
            KubernetesAction::SetImage(_) => ActionKind::SetImage,
            KubernetesAction::Rollback(_) => ActionKind::Rollback,
            KubernetesAction::Patch(_) => ActionKind::Patch,
            KubernetesAction::Delete(_) => ActionKind::Delete,
            KubernetesAction::Create(_) => ActionKind::Create,
            KubernetesAction::Cordon(_) => ActionKind::Cordon,
            KubernetesAction::Uncordon(_) => ActionKind::Uncordon,
            KubernetesAction::Label(_) => ActionKind::Label,
            KubernetesAction::Annotate(_) => ActionKind::Annotate,
        }
    }

    /// The object the action works on.
    pub fn object(&self) -> ObjectRef<'_> {
        match self {
            KubernetesAction::Scale(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Restart(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::SetImage(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Rollback(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Patch(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Delete(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Label(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Annotate(a) => ObjectRef::Existing(&a.target),
            KubernetesAction::Cordon(a) | KubernetesAction::Uncordon(a) => ObjectRef::Node(&a.node),
            KubernetesAction::Create(a) => ObjectRef::Created(a),
        }
    }
}

/// The object a Kubernetes action works on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObjectRef<'a> {
    /// An existing object, named by its target.
    Existing(&'a TargetParams),
    /// A node, by name (`cordon`, `uncordon`).
    Node(&'a str),
    /// The object a `create` makes, described by its manifest.
    Created(&'a CreateAction),
}

/// A URL without query, fragment and user information.
fn public_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The parameters of an action alone, serialized as the kind's parameter type.
struct Params<'a>(&'a Action);

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Action::Kubernetes(k) => match k {
                KubernetesAction::Scale(a) => a.serialize(s),
                KubernetesAction::Restart(a) => a.serialize(s),
                KubernetesAction::SetImage(a) => a.serialize(s),
                KubernetesAction::Rollback(a) => a.serialize(s),
                KubernetesAction::Patch(a) => a.serialize(s),
                KubernetesAction::Delete(a) => a.serialize(s),
                KubernetesAction::Create(a) => a.serialize(s),
                KubernetesAction::Cordon(a) | KubernetesAction::Uncordon(a) => a.serialize(s),
                KubernetesAction::Label(a) => a.serialize(s),
                KubernetesAction::Annotate(a) => a.serialize(s),
            },
            Action::Webhook(a) => a.serialize(s),
            Action::Kafka(a) => a.serialize(s),
            Action::Log(a) => a.serialize(s),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Action", 2)?;
        out.serialize_field("kind", &self.kind())?;
        out.serialize_field("params", &Params(self))?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Parts {
            kind: ActionKind,
            params: Value,
        }
        let parts = Parts::deserialize(d)?;
        Action::from_parts(parts.kind, parts.params).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn action(kind: ActionKind, params: Value) -> Action {
        Action::from_parts(kind, params).expect("parameters fit the kind")
    }

    fn webhook(url: Value, idempotent_receiver: Option<bool>) -> Action {
        let mut params = json!({
            "method": "POST", "url": url, "headers": {}, "secret_headers": {},
            "timeout_ms": 1000, "retries": 0, "success_status": [],
        });
        if let Some(flag) = idempotent_receiver {
            params["idempotent_receiver"] = json!(flag);
        }
        action(ActionKind::Webhook, params)
    }

    fn target() -> Value {
        json!({ "api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "checkout" })
    }

    #[test]
    fn a_kubernetes_target_reads_kind_namespace_and_name() {
        let restart = action(ActionKind::Restart, json!({ "target": target() }));
        assert_eq!(
            restart.target().as_deref(),
            Some("deployment/shop/checkout")
        );
        let cordon = action(ActionKind::Cordon, json!({ "node": "n1" }));
        assert_eq!(cordon.target().as_deref(), Some("node/n1"));
    }

    #[test]
    fn a_webhook_target_hides_credentials_and_query() {
        let hook = webhook(
            json!("https://user:pw@hooks.example/x/y?token=secret"),
            None,
        );
        assert_eq!(
            hook.target().as_deref(),
            Some("webhook/https://hooks.example/x/y")
        );
    }

    #[test]
    fn a_webhook_url_from_a_secret_is_targeted_by_its_reference() {
        let env = webhook(json!({ "env": "SLACK_URL" }), None);
        assert_eq!(env.target().as_deref(), Some("webhook/env:SLACK_URL"));
        let file = webhook(json!({ "file": "/s/url" }), None);
        assert_eq!(file.target().as_deref(), Some("webhook/file:/s/url"));
    }

    #[test]
    fn a_log_action_has_no_target() {
        let log = action(ActionKind::Log, json!({ "message": "m", "level": "info" }));
        assert_eq!(log.target(), None);
    }

    #[test]
    fn only_absolute_changes_count_as_safe_to_repeat() {
        let scale = |amount: Value| {
            let mut params = json!({ "target": target() });
            params
                .as_object_mut()
                .expect("object")
                .extend(amount.as_object().expect("object").clone());
            action(ActionKind::Scale, params)
        };
        assert!(scale(json!({"replicas": 3})).is_idempotent());
        assert!(!scale(json!({"change": {"add": 1}})).is_idempotent());
        let patch = |patch_type: &str| {
            action(
                ActionKind::Patch,
                json!({ "target": target(), "patch_type": patch_type, "patch": {} }),
            )
        };
        assert!(patch("merge").is_idempotent());
        assert!(patch("apply").is_idempotent());
        assert!(!patch("json").is_idempotent());
        assert!(!action(ActionKind::Restart, json!({ "target": target() })).is_idempotent());
        assert!(!webhook(json!("http://x"), None).is_idempotent());
        assert!(!webhook(json!("http://x"), Some(false)).is_idempotent());
        assert!(webhook(json!("http://x"), Some(true)).is_idempotent());
        let kafka = json!({ "topic": "t", "value": 1, "headers": {} });
        assert!(action(ActionKind::Kafka, kafka).is_idempotent());
    }

    #[test]
    fn an_action_serializes_as_kind_and_params_and_reads_back_the_same() {
        let params = json!({
            "target": target(), "replicas": null, "change": {"multiply": 1.5},
            "min": 2, "max": null,
        });
        let scale = action(ActionKind::Scale, params.clone());
        assert_eq!(scale.params_json(), params);
        let encoded = serde_json::to_value(&scale).expect("encodes");
        assert_eq!(encoded, json!({ "kind": "scale", "params": params }));
        let decoded: Action = serde_json::from_value(encoded).expect("decodes");
        assert_eq!(decoded, scale);
    }

    #[test]
    fn parameters_that_do_not_fit_the_kind_are_refused_naming_the_field() {
        let err = Action::from_parts(ActionKind::Scale, json!({ "target": "web" }))
            .expect_err("a target is an object");
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = Action::from_parts(ActionKind::Cordon, json!({ "topic": "t" }))
            .expect_err("a cordon needs a node");
        assert!(err.to_string().contains("`node`"), "{err}");
    }

    #[test]
    fn a_planned_action_serializes_with_kind_and_params_in_their_old_place() {
        let planned = crate::rules::PlannedAction {
            rule: "r".into(),
            action_index: 1,
            action: action(ActionKind::Cordon, json!({ "node": "n1" })),
            idempotency_key: "k".into(),
            event_id: "e".into(),
            dry_run: false,
            group_key: None,
            remediation: None,
        };
        let text = serde_json::to_string(&planned).expect("encodes");
        assert_eq!(
            text,
            r#"{"rule":"r","action_index":1,"kind":"cordon","params":{"node":"n1"},"idempotency_key":"k","event_id":"e","dry_run":false,"group_key":null}"#
        );
        let back: crate::rules::PlannedAction = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back, planned);
    }
}
