//! Free-form YAML parameters (webhook bodies, patches, manifests, Kafka values, log fields): any
//! YAML value whose string leaves are templates, kept with the location of every node so a bad
//! template deep inside a body is reported at its own line and column.
//!
//! Rendering is structural: each string leaf renders on its own and is placed into the JSON tree
//! as a value, so quotes, newlines or braces in event data can never break the document.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use crate::rules::diagnostic::Diagnostics;
use crate::rules::template::{RenderContext, RenderError, Scope, Template};

/// A free-form YAML value with located nodes. In the JSON schema it is any value.
#[derive(Debug, Clone)]
pub struct FreeForm(pub Spanned<Node>);

/// One node of a [`FreeForm`] value.
#[derive(Debug, Clone)]
pub enum Node {
    /// `null` / `~` / empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or float.
    Number(serde_json::Number),
    /// A string: a template when it contains `{{`, `{%` or `{#`.
    String(String),
    /// A sequence.
    Seq(Vec<Spanned<Node>>),
    /// A mapping, in file order. Keys are literal (never templates).
    Map(Vec<(String, Spanned<Node>)>),
}

impl FreeForm {
    /// Where the value starts.
    pub fn location(&self) -> Location {
        self.0.referenced
    }

    /// The root node.
    pub fn node(&self) -> &Node {
        &self.0.value
    }
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Spanned<Node>> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// A word for the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                serde_json::Number::from_f64(v)
                    .map(Node::Number)
                    .ok_or_else(|| E::custom(format!("{v} cannot be represented in JSON")))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries: Vec<(String, Spanned<Node>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for FreeForm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Spanned::<Node>::deserialize(deserializer).map(FreeForm)
    }
}

impl JsonSchema for FreeForm {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "FreeForm".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        serde_json::Value::json_schema(generator)
    }
}

/// A compiled free-form value: constant subtrees are folded into JSON once at load.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    /// No template below this node.
    Const(serde_json::Value),
    /// A templated string leaf and its parameter path (for errors).
    Leaf { path: String, template: Template },
    /// A sequence with at least one template below it.
    Seq(Vec<Compiled>),
    /// A mapping with at least one template below it.
    Map(Vec<(String, Compiled)>),
}

impl Compiled {
    /// Compiles every string leaf of `value` as an action template; `path` names the parameter
    /// (`body`, `patch`, ...). Reports every bad leaf.
    pub(crate) fn compile(
        value: &FreeForm,
        path: &str,
        diags: &mut Diagnostics,
    ) -> Option<Compiled> {
        compile_node(&value.0, path, diags)
    }

    /// Renders to JSON. Errors name the leaf (`body.text`, `patch[0].value`).
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<serde_json::Value, RenderError> {
        match self {
            Compiled::Const(v) => Ok(v.clone()),
            Compiled::Leaf { path, template } => template
                .render_value(ctx)
                .map_err(|e| e.in_param(path.clone())),
            Compiled::Seq(items) => items
                .iter()
                .map(|item| item.render(ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(serde_json::Value::Array),
            Compiled::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    map.insert(key.clone(), value.render(ctx)?);
                }
                Ok(serde_json::Value::Object(map))
            }
        }
    }

    /// The constant value, when nothing below is templated.
    pub(crate) fn as_const(&self) -> Option<&serde_json::Value> {
        match self {
            Compiled::Const(v) => Some(v),
            _ => None,
        }
    }
}

fn compile_node(node: &Spanned<Node>, path: &str, diags: &mut Diagnostics) -> Option<Compiled> {
    match &node.value {
        Node::Null => Some(Compiled::Const(serde_json::Value::Null)),
        Node::Bool(b) => Some(Compiled::Const(serde_json::Value::Bool(*b))),
        Node::Number(n) => Some(Compiled::Const(serde_json::Value::Number(n.clone()))),
        Node::String(s) => {
            let template = Template::compile_at(s, node.referenced, Scope::Action, diags)?;
            if template.is_constant() {
                Some(Compiled::Const(serde_json::Value::String(s.clone())))
            } else {
                Some(Compiled::Leaf {
                    path: path.to_owned(),
                    template,
                })
            }
        }
        Node::Seq(items) => {
            let compiled: Vec<Option<Compiled>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| compile_node(item, &format!("{path}[{i}]"), diags))
                .collect();
            let compiled: Vec<Compiled> = compiled.into_iter().collect::<Option<_>>()?;
            if let Some(consts) = compiled
                .iter()
                .map(Compiled::as_const)
                .collect::<Option<Vec<_>>>()
            {
                return Some(Compiled::Const(serde_json::Value::Array(
                    consts.into_iter().cloned().collect(),
                )));
            }
            Some(Compiled::Seq(compiled))
        }
        Node::Map(entries) => {
            let compiled: Vec<Option<(String, Compiled)>> = entries
                .iter()
                .map(|(k, v)| {
                    if k.contains("{{") || k.contains("{%") {
                        // Keys stay literal so the shape of a body or manifest is fixed by the
                        // rule; say so rather than silently sending `{{ ... }}` as a key.
                        diags.error(
                            v.referenced,
                            format!("`{path}`: mapping keys are not templates (`{k}`)"),
                            Some(
                                "only values are rendered; move the varying part into a value"
                                    .into(),
                            ),
                        );
                        return None;
                    }
                    Some((k.clone(), compile_node(v, &format!("{path}.{k}"), diags)?))
                })
                .collect();
            let compiled: Vec<(String, Compiled)> = compiled.into_iter().collect::<Option<_>>()?;
            if compiled.iter().all(|(_, v)| v.as_const().is_some()) {
                let map = compiled
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        Compiled::Const(v) => Some((k, v)),
                        _ => None,
                    })
                    .collect();
                return Some(Compiled::Const(serde_json::Value::Object(map)));
            }
            Some(Compiled::Map(compiled))
        }
    }
}
