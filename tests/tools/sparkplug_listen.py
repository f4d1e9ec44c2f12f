"""A Sparkplug B host for the tests: subscribes to spBv1.0/<group>/#
on a broker, decodes every message with pysparkplug (a Sparkplug library
independent of drsnd) and prints one JSON line per message on stdout. A
line `rebirth <node>` on stdin sends that node an NCMD Node Control/Rebirth.

usage: sparkplug_listen.py PORT GROUP
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
import pysparkplug as sp

DECODERS = {
    "NBIRTH": sp.NBirth,
    "DBIRTH": sp.DBirth,
    "NDATA": sp.NData,
    "DDATA": sp.DData,
    "DDEATH": sp.DDeath,
}


def metric(m):
    value = m.value
    if isinstance(value, bytes):
        value = value.hex()
    return {
        "name": m.name,
        "datatype": m.datatype.name,
        "value": value,
        "timestamp": m.timestamp,
        "is_historical": m.is_historical,
        "is_null": m.is_null,
    }


def on_message(client, group, msg):
    topic = sp.Topic.from_str(msg.topic)
    kind = topic.message_type.value if hasattr(topic.message_type, "value") else str(topic.message_type)
    out = {"type": kind, "node": topic.edge_node_id, "device": topic.device_id}
    try:
        if kind == "NDEATH":
            p = sp.NDeath.decode(msg.payload)
            out["timestamp"] = p.timestamp
            out["metrics"] = [metric(p.bd_seq_metric)]
        elif kind in DECODERS:
            p = DECODERS[kind].decode(msg.payload)
            out["timestamp"] = p.timestamp
            out["seq"] = getattr(p, "seq", None)
            out["metrics"] = [metric(m) for m in p.metrics]
        else:
            out["ignored"] = True
    except Exception as e:  # a payload the library cannot read is a finding
        out["error"] = repr(e)
    print(json.dumps(out), flush=True)


def commands(client, group):
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "rebirth":
            ncmd = sp.NCmd(
                timestamp=sp.get_current_timestamp(),
                metrics=(
                    sp.Metric(
                        timestamp=sp.get_current_timestamp(),
                        name="Node Control/Rebirth",
                        datatype=sp.DataType.BOOLEAN,
                        value=True,
                    ),
                ),
            )
            client.publish(f"spBv1.0/{group}/NCMD/{parts[1]}", ncmd.encode(), qos=0)


def main():
    port, group = int(sys.argv[1]), sys.argv[2]
    # A persistent session: what comes while the broker restarts is queued
    # for it (the test broker queues QoS 0 too), as a historian's would be.
    client = mqtt.Client(client_id=f"sparkplug-listen-{port}", clean_session=False, userdata=group)
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    ready = threading.Event()
    client.on_connect = lambda c, u, f, rc: (c.subscribe(f"spBv1.0/{group}/#", qos=1), ready.set())
    client.on_subscribe = lambda *a: print(json.dumps({"type": "subscribed"}), flush=True)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    threading.Thread(target=commands, args=(client, group), daemon=True).start()
    client.loop_forever()


if __name__ == "__main__":
    main()
