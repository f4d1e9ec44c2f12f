//! Home Assistant MQTT discovery (`[mqtt] homeassistant = true`): one
//! device per stream, its entities reading the plain topics drsnd already
//! publishes (the retained `state`, the frame summaries), available while
//! the node's `status` says online. Configs are retained; a config of this
//! node for a stream it no longer has is cleared (an empty retained
//! message), found by subscribing to the node's own config topics.

use super::topics::Topics;
use crate::protocol::Hello;
use serde_json::{json, Value};

/// What HA allows in a node or object id.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The node id of this box in discovery topics.
pub fn node_id(node: &str) -> String {
    format!("drsnd_{}", id_part(node))
}

/// The filter that finds every config of this node.
pub fn filter(prefix: &str, node: &str) -> String {
    format!("{prefix}/+/{}/+/config", node_id(node))
}

/// Whether `topic` is a config of this node (as `filter` matches).
pub fn is_config(prefix: &str, node: &str, topic: &str) -> bool {
    let parts: Vec<&str> = topic.split('/').collect();
    parts.len() == 5 && parts[0] == prefix && parts[2] == node_id(node) && parts[4] == "config"
}

/// One entity: component, key, and its config without the shared parts.
fn entities(t: &Topics, stream: &str) -> Vec<(&'static str, &'static str, Value)> {
    let state = t.state(stream);
    let frame = t.frame(stream);
    let measured = |name: &str, field: &str, unit: Option<&str>, icon: &str| {
        let mut v = json!({
            "name": name,
            "state_topic": frame,
            "value_template": format!("{{{{ value_json.{field} | default(None) }}}}"),
            "state_class": "measurement",
            "icon": icon,
        });
        if let Some(u) = unit {
            v["unit_of_measurement"] = json!(u);
        }
        v
    };
    vec![
        (
            "sensor",
            "state",
            json!({
                "name": "State",
                "state_topic": state,
                "value_template": "{{ value_json.state.state }}",
                "json_attributes_topic": state,
                "json_attributes_template": "{{ {'since': value_json.since, 'family_source': value_json.family_source | default(None)} | tojson }}",
                "icon": "mdi:heart-pulse",
            }),
        ),
        (
            "sensor",
            "family",
            json!({
                "name": "Fault family",
                "state_topic": state,
                "value_template": "{{ value_json.state.class if value_json.state.state == 'fault' else 'none' }}",
                "icon": "mdi:cog-outline",
            }),
        ),
        (
            "sensor",
            "anomaly",
            measured("Anomaly", "anomaly", None, "mdi:chart-bell-curve"),
        ),
        (
            "sensor",
            "velocity_rms",
            measured(
                "Velocity RMS",
                "velocity_rms_mm_s",
                Some("mm/s"),
                "mdi:vibrate",
            ),
        ),
        (
            "sensor",
            "kurtosis",
            measured(
                "Kurtosis",
                "kurtosis",
                None,
                "mdi:chart-bell-curve-cumulative",
            ),
        ),
        (
            "sensor",
            "iso_zone",
            json!({
                "name": "ISO zone",
                "state_topic": frame,
                "value_template": "{{ value_json.iso_zone | default(None) }}",
                "icon": "mdi:alpha-z-box-outline",
            }),
        ),
        (
            "binary_sensor",
            "alarm",
            json!({
                "name": "Alarm",
                "state_topic": state,
                "value_template": "{{ 'ON' if value_json.state.state in ['fault', 'anomaly', 'no-signal'] else 'OFF' }}",
                "device_class": "problem",
            }),
        ),
    ]
}

/// Every config topic and payload for the streams of `hello`.
pub fn configs(prefix: &str, node: &str, t: &Topics, hello: &Hello) -> Vec<(String, String)> {
    let nid = node_id(node);
    let mut out = Vec::new();
    for s in &hello.streams {
        let sid = id_part(&s.name);
        let device = json!({
            "identifiers": [format!("{nid}_{sid}")],
            "name": format!("{} {}", node, s.name),
            "manufacturer": "drsnd",
            "model": format!("{} {}", hello.model.name, hello.model.version),
            "sw_version": hello.daemon,
        });
        for (component, key, mut v) in entities(t, &s.name) {
            let object = format!("{sid}_{key}");
            v["unique_id"] = json!(format!("{nid}_{object}"));
            v["object_id"] = json!(format!("{}_{}_{key}", id_part(node), sid));
            v["device"] = device.clone();
            v["availability"] = json!([{
                "topic": t.status(),
                "value_template": "{{ value_json.status }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }]);
            v["origin"] = json!({"name": "drsnd", "sw_version": hello.daemon});
            out.push((
                format!("{prefix}/{component}/{nid}/{object}/config"),
                v.to_string(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_topics_are_the_nodes_and_ids_are_safe() {
        assert_eq!(node_id("box 7.local"), "drsnd_box_7_local");
        assert_eq!(
            filter("homeassistant", "box1"),
            "homeassistant/+/drsnd_box1/+/config"
        );
        assert!(is_config(
            "homeassistant",
            "box1",
            "homeassistant/sensor/drsnd_box1/pump_state/config"
        ));
        assert!(!is_config(
            "homeassistant",
            "box1",
            "homeassistant/sensor/drsnd_box2/pump_state/config"
        ));
        assert!(!is_config(
            "ha",
            "box1",
            "homeassistant/sensor/drsnd_box1/pump_state/config"
        ));
    }
}
