//! The Kubernetes executor: carries out a planned [`KubernetesAction`] against the API server
//! through kube's dynamic API and discovery, and records what changed.
//!
//! Layout: [`change`] (what an action changed), [`scale`] (through the `scale` subresource), [`workload`] (restart, set_image),
//! [`rollback`] (ReplicaSet and ControllerRevision history), [`object`] (patch, delete,
//! create), [`metadata`] (label, annotate), [`node`] (cordon, uncordon), [`observe`] (read a
//! target for verification), [`undo`] (put back what a reversible action changed), [`events`]
//! (the Kubernetes Event about each action, for `kubectl describe`), [`error`] (the one error
//! type and its retry classification).
//!
//! Every read-modify-write sends the `resourceVersion` it read as a precondition, so a
//! concurrent writer produces a 409 instead of a lost update; the executor then re-reads and
//! tries again, at most [`MAX_CONFLICT_ATTEMPTS`] times. Every write uses the field manager
//! [`FIELD_MANAGER`].

mod change;
mod error;
pub mod events;
mod observe;
mod undo;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use tokio::sync::RwLock;

pub use change::{Change, ChangeDetail};
pub use error::{Error, Result};
pub use undo::{UndoPlan, Undone};

use crate::rules::action::{ActionKind, KubernetesAction, TargetParams};

/// The field manager of every write Reflex makes (visible in `managedFields`).
pub const FIELD_MANAGER: &str = "reflex";

/// Bound on one API request. The API server answers reads and writes in milliseconds; 30 s
/// covers a loaded control plane while keeping a hung connection from holding an executor
/// slot (kube's own read timeout is sized for watches, minutes long).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a read-modify-write is attempted when the object keeps changing (409).
/// Conflicts clear within one or two re-reads unless a controller fights over the same field;
/// past five the caller's backoff is the better tool.
pub const MAX_CONFLICT_ATTEMPTS: u32 = 5;

/// Carries out Kubernetes actions. Cheap to share (`Arc`) between tasks; the discovery cache
/// is filled lazily, one kind at a time.
pub struct KubeExecutor {
    client: Client,
    /// `(apiVersion, kind)` → resource and capabilities. Bounded by the kinds the rules name
    /// (`api_version` and `kind` are literal in rules), so it never grows with event data.
    discovery: RwLock<HashMap<(String, String), Resolved>>,
    request_timeout: Duration,
    /// Publishes the Event about each action (`kubernetes.events`); `None`: no Events.
    events: Option<events::EventPublisher>,
}

/// A kind resolved through discovery.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) resource: ApiResource,
    pub(crate) caps: ApiCapabilities,
}

impl Resolved {
    fn namespaced(&self) -> bool {
        self.caps.scope == Scope::Namespaced
    }

    fn has_subresource(&self, name: &str) -> bool {
        self.caps.subresources.iter().any(|(r, _)| r.plural == name)
    }
}

/// One API call, for error messages: the RBAC verb and resource it needs and the object.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    verb: &'static str,
    /// `plural` or `plural/subresource`.
    resource: String,
    group: String,
    namespace: Option<String>,
    /// The object, e.g. `apps/v1 Deployment shop/web`.
    what: String,
}

impl Op {
    fn new(verb: &'static str, res: &ApiResource, sub: Option<&str>, target: &str) -> Self {
        Op {
            verb,
            resource: match sub {
                Some(s) => format!("{}/{s}", res.plural),
                None => res.plural.clone(),
            },
            group: res.group.clone(),
            namespace: None,
            what: target.to_owned(),
        }
    }

    fn in_namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_owned);
        self
    }

    /// Turns a client error into the module's error for this call.
    fn classify(&self, err: kube::Error) -> Error {
        let kube::Error::Api(status) = &err else {
            return match err {
                kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unavailable {
                    verb: self.verb,
                    what: self.what.clone(),
                    source: err,
                },
                other => Error::Client {
                    verb: self.verb,
                    what: self.what.clone(),
                    source: other,
                },
            };
        };
        let message = status.message.clone();
        match status.code {
            403 => Error::Forbidden {
                verb: self.verb,
                resource: self.resource.clone(),
                group: self.group.clone(),
                namespace: self.namespace.clone(),
                message,
            },
            404 => Error::NotFound {
                what: self.what.clone(),
                message,
            },
            409 if status.reason == "AlreadyExists" => Error::AlreadyExists {
                what: self.what.clone(),
                message,
            },
            // One conflict; the retry loop counts attempts.
            409 => Error::Conflict {
                what: self.what.clone(),
                attempts: 1,
            },
            429 | 500..=599 => Error::Unavailable {
                verb: self.verb,
                what: self.what.clone(),
                source: err,
            },
            code => Error::Rejected {
                verb: self.verb,
                what: self.what.clone(),
                code,
                message,
            },
        }
    }
}

/// `apps/v1 Deployment shop/web`, `v1 Node n1`.
pub(crate) fn describe(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    match namespace {
        Some(ns) => format!("{api_version} {kind} {ns}/{name}"),
        None => format!("{api_version} {kind} {name}"),
    }
}

fn describe_target(t: &TargetParams) -> String {
    describe(&t.api_version, &t.kind, t.namespace.as_deref(), &t.name)
}

/// Re-checks a name that goes into an API path. The planner already validated it; this keeps
/// a hand-built parameter object from addressing another path.
fn check_name(action: ActionKind, field: &str, name: &str) -> Result<()> {
    check_name_as(action.as_str(), field, name)
}

/// [`check_name`] for a call made as `action`, which may be no action kind (`observe`, `undo`).
fn check_name_as(action: &'static str, field: &str, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '%', '?', '#'])
        || name.chars().any(char::is_control);
    if bad {
        return Err(Error::InvalidParams {
            action,
            reason: format!("`{field}` `{name}` is not a valid object name"),
        });
    }
    Ok(())
}

/// Runs a read-modify-write until it does not hit a conflict, at most
/// [`MAX_CONFLICT_ATTEMPTS`] times: `$attempt` is an `async` block, re-created (so the object is
/// re-read) on every attempt. A macro rather than a function taking an async closure because
/// such closures make the caller's future lose `Send` (rust-lang/rust#110338-style
/// higher-ranked lifetime errors), and the pipeline spawns executions.
macro_rules! retry_conflicts {
    ($what:expr, $attempt:expr) => {{
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            match $attempt.await {
                Err($crate::actions::kubernetes::Error::Conflict { .. })
                    if attempts < $crate::actions::kubernetes::MAX_CONFLICT_ATTEMPTS =>
                {
                    $crate::actions::kubernetes::conflict_pause(attempts).await;
                }
                Err($crate::actions::kubernetes::Error::Conflict { .. }) => {
                    break Err($crate::actions::kubernetes::Error::Conflict {
                        what: ($what).to_owned(),
                        attempts,
                    });
                }
                other => break other,
            }
        }
    }};
}

/// The pause before re-reading after the `attempts`-th conflict: short and slightly spread, so
/// two writers that collided do not collide again in lockstep. The sub-second clock is jitter
/// enough here.
pub(crate) async fn conflict_pause(attempts: u32) {
    let spread = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros() % 50_000)
            .unwrap_or_default(),
    );
    let pause = Duration::from_millis(20 * u64::from(attempts)) + Duration::from_micros(spread);
    tokio::time::sleep(pause).await;
}

// Declared after `retry_conflicts!` so they can use it.
mod metadata;
mod node;
mod object;
mod rollback;
mod scale;
mod workload;

/// Parses `apps/v1` / `v1` into (group, version).
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl KubeExecutor {
    /// An executor using `client` (whose identity needs the RBAC `reflex rbac` prints).
    pub fn new(client: Client) -> Self {
        KubeExecutor {
            client,
            discovery: RwLock::new(HashMap::new()),
            request_timeout: REQUEST_TIMEOUT,
            events: None,
        }
    }

    /// Overrides the per-request bound ([`REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The client, for callers that share it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Carries out one planned Kubernetes action. Conflicts are retried inside; the error says
    /// whether the caller should retry ([`Error::retryable`]).
    pub async fn execute(&self, action: &KubernetesAction) -> Result<Change> {
        match action {
            KubernetesAction::Scale(p) => self.scale(p).await,
            KubernetesAction::Restart(p) => self.restart(p).await,
            KubernetesAction::SetImage(p) => self.set_image(p).await,
            KubernetesAction::Rollback(p) => self.rollback(p).await,
            KubernetesAction::Patch(p) => self.patch(p).await,
            KubernetesAction::Delete(p) => self.delete(p).await,
            KubernetesAction::Create(p) => self.create(p).await,
            KubernetesAction::Cordon(p) => self.set_unschedulable(p, true).await,
            KubernetesAction::Uncordon(p) => self.set_unschedulable(p, false).await,
            KubernetesAction::Label(p) => {
                self.set_metadata(ActionKind::Label, &p.target, "labels", &p.labels)
                    .await
            }
            KubernetesAction::Annotate(p) => {
                self.set_metadata(
                    ActionKind::Annotate,
                    &p.target,
                    "annotations",
                    &p.annotations,
                )
                .await
            }
        }
    }

    /// Runs one API call with the per-request bound, classifying its error for `op`.
    async fn call<T>(&self, op: &Op, request: impl Future<Output = kube::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(result) => result.map_err(|e| op.classify(e)),
            Err(_) => Err(Error::Timeout {
                verb: op.verb,
                what: op.what.clone(),
                limit: self.request_timeout,
            }),
        }
    }

    /// Resolves `api_version`/`kind` through discovery (cached).
    pub(crate) async fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(found) = self.discovery.read().await.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let what = format!("{api_version} {kind}");
        let lookup = kube::discovery::pinned_kind(&self.client, &gvk);
        let resolved = match tokio::time::timeout(self.request_timeout, lookup).await {
            Err(_) => {
                return Err(Error::Timeout {
                    verb: "discover",
                    what,
                    limit: self.request_timeout,
                });
            }
            Ok(Ok((resource, caps))) => Resolved { resource, caps },
            Ok(Err(kube::Error::Discovery(_))) => {
                return Err(Error::NotFound {
                    what: format!("kind {what}"),
                    message: format!(
                        "the API server does not serve `{kind}` in `{api_version}` \
                         (is its CustomResourceDefinition installed?)"
                    ),
                });
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                return Err(Error::NotFound {
                    what: format!("API version {api_version}"),
                    message: format!(
                        "the API server does not serve `{api_version}` \
                         (is the CustomResourceDefinition for `{kind}` installed?)"
                    ),
                });
            }
            Ok(Err(err)) => {
                let op = Op {
                    verb: "discover",
                    resource: if group.is_empty() {
                        format!("/api/{version}")
                    } else {
                        format!("/apis/{group}/{version}")
                    },
                    group: group.to_owned(),
                    namespace: None,
                    what,
                };
                return Err(op.classify(err));
            }
        };
        self.discovery.write().await.insert(key, resolved.clone());
        Ok(resolved)
    }

    /// The dynamic API for `res`, in `namespace` when the kind is namespaced. A namespace for a
    /// cluster-scoped kind, or none for a namespaced one, is invalid.
    pub(crate) fn api(
        &self,
        action: ActionKind,
        res: &Resolved,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>> {
        self.api_as(action.as_str(), res, namespace)
    }

    /// [`Self::api`] for a call made as `action` (see [`check_name_as`]).
    fn api_as(
        &self,
        action: &'static str,
        res: &Resolved,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>> {
        match (res.namespaced(), namespace) {
            (true, Some(ns)) => {
                check_name_as(action, "namespace", ns)?;
                Ok(Api::namespaced_with(self.client.clone(), ns, &res.resource))
            }
            (false, None) => Ok(Api::all_with(self.client.clone(), &res.resource)),
            (true, None) => Err(Error::InvalidParams {
                action,
                reason: format!(
                    "`{}` objects live in a namespace, but no namespace was given",
                    res.resource.kind
                ),
            }),
            (false, Some(ns)) => Err(Error::InvalidParams {
                action,
                reason: format!(
                    "`{}` objects are cluster-scoped, but namespace `{ns}` was given",
                    res.resource.kind
                ),
            }),
        }
    }

    /// Resolves a target and checks its name: (resolved kind, API, description).
    async fn target(
        &self,
        action: ActionKind,
        t: &TargetParams,
    ) -> Result<(Resolved, Api<DynamicObject>, String)> {
        self.target_as(action.as_str(), t).await
    }

    /// [`Self::target`] for a call made as `action` (see [`check_name_as`]).
    async fn target_as(
        &self,
        action: &'static str,
        t: &TargetParams,
    ) -> Result<(Resolved, Api<DynamicObject>, String)> {
        check_name_as(action, "target.name", &t.name)?;
        let res = self.resolve(&t.api_version, &t.kind).await?;
        let api = self.api_as(action, &res, t.namespace.as_deref())?;
        Ok((res, api, describe_target(t)))
    }
}

/// Patch parameters with Reflex's field manager.
fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
