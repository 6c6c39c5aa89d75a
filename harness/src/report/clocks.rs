//! Each node's clock over time, from the clock nemesis's own reports: a
//! mark where a fault moved a clock (an offset, a strobe, a rate) and
//! where its heal put it back, drawn as one lane per node.
use faultline_checkers::Event;

/// A node's clock from `at_ns` on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockMark {
    pub at_ns: u64,
    pub node: String,
    /// The offset in ms; None for a strobe or a rate, which move.
    pub offset_ms: Option<i64>,
    /// What the lane says: `-10.0 s`, `strobe ±10.0 s`, `x0.5`, `0`.
    pub label: String,
}

/// The marks of one nemesis completion (an effect, or a heal's list of them).
pub fn marks_of(event: &Event) -> Vec<ClockMark> {
    let effects = match &event.value {
        serde_json::Value::Array(effects) => effects.iter().collect(),
        effect => vec![effect],
    };
    effects.into_iter().flat_map(|effect| marks_of_effect(event.time_ns, effect)).collect()
}

fn marks_of_effect(at_ns: u64, effect: &serde_json::Value) -> Vec<ClockMark> {
    let mark = |node: &str, offset_ms: Option<i64>, label: String| ClockMark { at_ns, node: node.to_string(), offset_ms, label };
    let seconds = |ms: i64| format!("{:+.1} s", ms as f64 / 1_000.0);
    if let Some(offsets) = effect["clock-offsets-ms"].as_object() {
        return offsets.iter().filter_map(|(node, ms)| Some(mark(node, Some(ms.as_i64()?), seconds(ms.as_i64()?)))).collect();
    }
    if let (Some(node), Some(ms)) = (effect["clock-strobe"].as_str(), effect["offset-ms"].as_i64()) {
        return vec![mark(node, None, format!("strobe {}", seconds(ms)))];
    }
    if let (Some(node), Some(rate)) = (effect["clock-rate"].as_str(), effect["rate"].as_f64()) {
        return vec![mark(node, None, format!("x{rate}"))];
    }
    let reset = effect["clocks-reset"].as_array().into_iter().flatten();
    reset.filter_map(|node| Some(mark(node.as_str()?, Some(0), "0".to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: &str) -> Event {
        serde_json::from_str(&format!(r#"{{"process":"nemesis","type":"ok","f":"clock-skew","value":{value},"time_ns":5}}"#)).unwrap()
    }

    #[test]
    fn offsets_strobes_rates_and_resets_become_marks() {
        let skew = marks_of(&event(r#"{"clock-offsets-ms":{"n1":-2500,"n2":1000}}"#));
        assert_eq!(skew.len(), 2);
        assert_eq!((skew[0].node.as_str(), skew[0].offset_ms, skew[0].label.as_str()), ("n1", Some(-2500), "-2.5 s"));
        assert_eq!(marks_of(&event(r#"{"clock-strobe":"n3","offset-ms":10000,"period-ms":200}"#))[0].label, "strobe +10.0 s");
        assert_eq!(marks_of(&event(r#"{"clock-rate":"n2","rate":0.5}"#))[0].label, "x0.5");
        let heal = marks_of(&event(r#"[{"restarted":["n1"]},{"clocks-reset":["n1","n3"]}]"#));
        assert_eq!(heal.iter().map(|m| (m.node.as_str(), m.offset_ms)).collect::<Vec<_>>(), [("n1", Some(0)), ("n3", Some(0))]);
        assert!(marks_of(&event(r#"{"killed":["n1"]}"#)).is_empty());
    }
}
