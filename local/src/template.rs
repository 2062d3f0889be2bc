//! Reading template.yaml: resources by type, function environments and intrinsic functions
//! (`!Ref`, `!GetAtt`, and their long forms), resolved against a local stack.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_norway::Value;

/// A reference the template makes to a parameter or another resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intrinsic {
    Ref(String),
    GetAtt(String, String),
}

/// `Fn::If [condition, then, else]`.
fn if_parts(v: &Value) -> Option<(String, Value, Value)> {
    let args = match v {
        Value::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "If" => {
            t.value.as_sequence()?
        }
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::If")?.as_sequence()?,
        _ => return None,
    };
    match args.as_slice() {
        [cond, then, otherwise] => {
            Some((cond.as_str()?.to_owned(), then.clone(), otherwise.clone()))
        }
        _ => None,
    }
}

/// The parsed SAM template.
#[derive(Debug, Clone)]
pub struct Template {
    pub doc: Value,
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The workspace binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub properties: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            doc: serde_norway::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
        })
    }

    /// The project's template.yaml.
    pub fn project() -> Result<Self> {
        Self::load(&crate::workspace_root().join("template.yaml"))
    }

    /// The logical ids of every resource of the template.
    pub fn resource_ids(&self) -> Vec<String> {
        self.doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(id, _)| id.as_str().map(str::to_owned))
            .collect()
    }

    /// (logical id, properties) of every resource of `kind`, in template order.
    pub fn resources_of(&self, kind: &str) -> Vec<(String, Value)> {
        let Some(resources) = self.doc.get("Resources").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .filter_map(|(id, r)| {
                Some((
                    id.as_str()?.to_owned(),
                    r.get("Properties").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionSpec>> {
        let resources = self
            .doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("no Resources"))?;
        let mut out = Vec::new();
        for (id, r) in resources {
            if r.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = id.as_str().unwrap_or_default().to_owned();
            let binary = r
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{logical_id}: Metadata.BuildProperties.Binary missing"))?
                .to_owned();
            out.push(FunctionSpec {
                logical_id,
                binary,
                properties: r.get("Properties").cloned().unwrap_or(Value::Null),
            });
        }
        Ok(out)
    }

    /// Default values of the template's parameters.
    pub fn parameter_defaults(&self) -> BTreeMap<String, String> {
        let Some(params) = self.doc.get("Parameters").and_then(Value::as_mapping) else {
            return BTreeMap::new();
        };
        params
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v.get("Default")?)?)))
            .collect()
    }

    /// A function's variables: Globals first, its own on top (unresolved).
    pub fn function_env(&self, logical_id: &str) -> Result<BTreeMap<String, Value>> {
        let vars = |v: Option<&Value>| -> BTreeMap<String, Value> {
            v.and_then(|e| e.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let function = self
            .doc
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .ok_or_else(|| anyhow!("no resource {logical_id} in template"))?;
        let mut env = vars(self.doc.get("Globals").and_then(|g| g.get("Function")));
        env.extend(vars(function.get("Properties")));
        Ok(env)
    }
}

/// A plain scalar as text.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The intrinsic a value is, if any (short `!Ref x` or long `{Ref: x}` form).
pub fn intrinsic(v: &Value) -> Option<Intrinsic> {
    let get_att = |target: &Value| -> Option<Intrinsic> {
        match target {
            Value::String(s) => {
                let (res, att) = s.split_once('.')?;
                Some(Intrinsic::GetAtt(res.to_owned(), att.to_owned()))
            }
            Value::Sequence(seq) if seq.len() == 2 => Some(Intrinsic::GetAtt(
                seq[0].as_str()?.to_owned(),
                seq[1].as_str()?.to_owned(),
            )),
            _ => None,
        }
    };
    match v {
        Value::Tagged(tagged) => match tagged.tag.to_string().trim_start_matches('!') {
            "Ref" => Some(Intrinsic::Ref(tagged.value.as_str()?.to_owned())),
            "GetAtt" => get_att(&tagged.value),
            _ => None,
        },
        Value::Mapping(m) if m.len() == 1 => {
            if let Some(r) = m.get("Ref") {
                return Some(Intrinsic::Ref(r.as_str()?.to_owned()));
            }
            m.get("Fn::GetAtt").and_then(get_att)
        }
        _ => None,
    }
}

/// Resolves a scalar or intrinsic with `lookup`; `None` for `AWS::NoValue`. `Fn::If`
/// evaluates the template's `Conditions` (Equals, Not, And, Or).
pub fn resolve(
    template: &Template,
    v: &Value,
    lookup: &dyn Fn(&Intrinsic) -> Option<String>,
) -> Result<Option<String>> {
    if let Some(s) = scalar(v) {
        return Ok(Some(s));
    }
    if let Some((condition, then, otherwise)) = if_parts(v) {
        let branch = if template.condition(&condition, lookup)? {
            then
        } else {
            otherwise
        };
        return resolve(template, &branch, lookup);
    }
    if let Some(text) = sub_text(v) {
        return substitute(&text, lookup).map(Some);
    }
    match intrinsic(v) {
        Some(Intrinsic::Ref(r)) if r == "AWS::NoValue" => Ok(None),
        Some(i) => lookup(&i)
            .map(Some)
            .ok_or_else(|| anyhow!("cannot resolve {i:?} locally")),
        None => bail!("unsupported template value {v:?}"),
    }
}

/// The string of a `!Sub` in its one-argument form (short or long).
pub fn sub_text(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "Sub" => {
            tagged.value.as_str().map(str::to_owned)
        }
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::Sub")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `${Name}` (a Ref) and `${Name.Attribute}` (a GetAtt) replaced by their local values.
fn substitute(text: &str, lookup: &dyn Fn(&Intrinsic) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| anyhow!("unclosed ${{ in {text:?}"))?;
        let name = &rest[start + 2..start + end];
        let wanted = match name.split_once('.') {
            Some((res, att)) => Intrinsic::GetAtt(res.to_owned(), att.to_owned()),
            None => Intrinsic::Ref(name.to_owned()),
        };
        let value = lookup(&wanted).ok_or_else(|| anyhow!("cannot resolve {wanted:?} locally"))?;
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Template {
    /// Evaluates a named condition.
    pub fn condition(
        &self,
        name: &str,
        lookup: &dyn Fn(&Intrinsic) -> Option<String>,
    ) -> Result<bool> {
        let expr = self
            .doc
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| anyhow!("no condition {name}"))?;
        self.evaluate(expr, lookup)
    }

    fn evaluate(
        &self,
        expr: &Value,
        lookup: &dyn Fn(&Intrinsic) -> Option<String>,
    ) -> Result<bool> {
        let (op, args) = match expr {
            Value::Tagged(t) => (
                format!("Fn::{}", t.tag.to_string().trim_start_matches('!')),
                t.value.clone(),
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().ok_or_else(|| anyhow!("empty condition"))?;
                (k.as_str().unwrap_or_default().to_owned(), v.clone())
            }
            _ => bail!("unsupported condition {expr:?}"),
        };
        // `!Condition Name` (short form) and `{"Condition": "Name"}` name another condition.
        if let ("Fn::Condition" | "Condition", Some(name)) = (op.as_str(), args.as_str()) {
            return self.condition(name, lookup);
        }
        let args = args.as_sequence().cloned().unwrap_or_default();
        match op.as_str() {
            "Fn::Equals" if args.len() == 2 => {
                Ok(resolve(self, &args[0], lookup)? == resolve(self, &args[1], lookup)?)
            }
            "Fn::Not" if args.len() == 1 => Ok(!self.evaluate(&args[0], lookup)?),
            "Fn::And" => args
                .iter()
                .try_fold(true, |acc, a| Ok(acc && self.evaluate(a, lookup)?)),
            "Fn::Or" => args
                .iter()
                .try_fold(false, |acc, a| Ok(acc || self.evaluate(a, lookup)?)),
            _ => bail!("unsupported condition {op}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_may_name_other_conditions() {
        let template = Template {
            doc: serde_norway::from_str(
                "Parameters: {}\nConditions:\n  Yes: !Equals [a, a]\n  No: !Equals [a, b]\n  \
                 Both: !And [!Condition Yes, !Condition No]\n  \
                 Either: !Or [!Condition Yes, {Condition: No}]\n",
            )
            .unwrap(),
        };
        let lookup = |_: &Intrinsic| None;
        assert!(template.condition("Either", &lookup).unwrap());
        assert!(!template.condition("Both", &lookup).unwrap());
    }

    #[test]
    fn sub_replaces_refs_and_attributes_and_names_what_it_cannot() {
        let lookup = |i: &Intrinsic| match i {
            Intrinsic::Ref(name) if name == "LiveApi" => Some("abc123".to_owned()),
            Intrinsic::Ref(name) if name == "AWS::Region" => Some("us-east-1".to_owned()),
            Intrinsic::GetAtt(res, att) if res == "Queue" && att == "Arn" => {
                Some("arn:q".to_owned())
            }
            _ => None,
        };
        assert_eq!(
            substitute(
                "https://${LiveApi}.execute-api.${AWS::Region}.amazonaws.com/live",
                &lookup
            )
            .unwrap(),
            "https://abc123.execute-api.us-east-1.amazonaws.com/live"
        );
        assert_eq!(substitute("${Queue.Arn}/x", &lookup).unwrap(), "arn:q/x");
        assert!(substitute("${Nothing}", &lookup).is_err());
        assert!(substitute("${LiveApi", &lookup).is_err());
    }
}
