//! `--set section.field=value`: a field path and a YAML value, applied to a
//! spec. The one place a spec goes through a tree: a path names a field by
//! text, and only the tree knows fields by name. Flags with a typed value
//! (`--nodes 3`) set the spec's fields directly instead.
use serde_json::Value;

use super::spec::{one_line, SpecFile};
use crate::fields::SpecError;

impl SpecFile {
    /// Apply `path=value` overrides (`cluster.nodes=3`); the value is read as
    /// YAML, so `nemesis.faults=[kill, pause]` works too.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<SpecFile, SpecError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut tree = serde_json::to_value(self).map_err(|e| value_error("spec", e.to_string()))?;
        for (path, text) in overrides {
            let value: Value =
                serde_saphyr::from_str(text).map_err(|error| value_error(path, one_line(&error.to_string())))?;
            set_path(&mut tree, path, value)?;
        }
        serde_path_to_error::deserialize(tree).map_err(|error| {
            let field = error.path().to_string();
            SpecError::Parse { path: format!("overrides ({field})"), message: one_line(&error.into_inner().to_string()) }
        })
    }
}

fn value_error(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::Value { field: field.to_string(), message: message.into() }
}

/// Set `path` (`cluster.nodes`) in the spec's tree. Sections that are
/// absent (optional ones such as `cluster.generic`) are created; whether a
/// field exists at all is decided when the tree is read back as a spec
/// (and a system's fields when the system reads them), which refuse
/// unknown fields.
fn set_path(tree: &mut Value, path: &str, value: Value) -> Result<(), SpecError> {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(value_error(path, "empty field name in the path"));
    }
    for (index, part) in parts.iter().enumerate() {
        let object = node
            .as_object_mut()
            .ok_or_else(|| value_error(path, format!("{part:?} is not inside a section")))?;
        if index + 1 == parts.len() {
            object.insert(part.to_string(), value);
            return Ok(());
        }
        let child = object.entry(part.to_string()).or_insert(Value::Null);
        if child.is_null() {
            *child = Value::Object(serde_json::Map::new());
        }
        node = child;
    }
    Err(value_error(path, "empty field path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(path: &str, value: &str) -> (String, String) {
        (path.to_string(), value.to_string())
    }

    #[test]
    fn overrides_reach_nested_fields_and_refuse_unknown_ones() {
        let overrides = vec![set("cluster.nodes", "3"), set("nemesis.faults", "[pause, link-drop]"), set("seed", "11")];
        let spec = SpecFile::default().with_overrides(&overrides).unwrap();
        assert_eq!(spec.cluster.nodes, 3);
        assert_eq!(spec.nemesis.faults, ["pause", "link-drop"]);
        assert_eq!(spec.seed, Some(11));
        let unknown = SpecFile::default().with_overrides(&[set("schedule.speed", "3")]);
        assert!(unknown.unwrap_err().to_string().contains("unknown field `speed`"));
        let typed = SpecFile::default().with_overrides(&[set("cluster.nodes", "many")]).unwrap_err().to_string();
        assert!(typed.contains("cluster.nodes"), "the error names the field: {typed}");
    }

    #[test]
    fn a_systems_fields_are_kept_for_the_system_to_read() {
        let generic = [set("cluster.generic.start", "exec x"), set("cluster.generic.client", "external")];
        let spec = SpecFile::default().with_overrides(&generic).unwrap();
        let section = &spec.cluster.options["generic"];
        assert_eq!(section["start"], "exec x", "an absent section is created");
        assert_eq!(section["client"], "external");
    }
}
