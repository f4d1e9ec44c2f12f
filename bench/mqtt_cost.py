"""Summarises bench/run.sh --steps mqtt: the daemon's CPU with [mqtt] off,
on (summaries every second), and on with Sparkplug B and Home Assistant
discovery, at 16 real-time streams with units, medians over the alternating
rounds, per stream; then the 50-daemon fleet."""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])


def figures(r):
    threads = r["cpu_seconds_by_thread_since_start"]
    wall = r["wall_seconds"]
    return {
        "cpu": r["cpu_percent_of_one_core"],
        "mqtt": 100 * threads.get("mqtt", 0.0) / wall,
        "sparkplug": 100 * threads.get("sparkplug", 0.0) / wall,
        "p99": r["latency_ms"]["p99"],
        "rss": r.get("rss_mib", r.get("memory", {}).get("rss_mib", 0.0)) or 0.0,
    }


rows = {}
for key in ["off", "on", "plants"]:
    runs = [figures(json.loads(p.read_text())) for p in sorted(out.glob(f"mqtt-*-{key}.json"))]
    if runs:
        rows[key] = ({k: statistics.median(r[k] for r in runs) for k in runs[0]}, runs)
print("# The MQTT sink's cost: 16 real-time streams with units = \"g\", frames = \"summary\"\n")
print("Medians over alternating rounds; CPU in % of one core. `mqtt thread` is the sink's own thread, "
      "`sparkplug thread` the Sparkplug connection's.\n")
print("| variant | rounds | daemon CPU % | mqtt thread % | sparkplug thread % | per stream % | p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for key, name in [("off", "[mqtt] off"), ("on", "[mqtt] on"), ("plants", "on + sparkplug + homeassistant")]:
    if key in rows:
        m, runs = rows[key]
        print(f"| {name} | {len(runs)} | {m['cpu']:.2f} | {m['mqtt']:.3f} | {m['sparkplug']:.3f} | "
              f"{m['cpu'] / 16:.3f} | {m['p99']:.2f} |")
if "off" in rows and "on" in rows:
    pairs = [b["cpu"] - a["cpu"] for a, b in zip(rows["off"][1], rows["on"][1])]
    print(f"\nAdded per stream, median of the rounds' differences: {statistics.median(pairs) / 16:.3f} % of a core "
          f"(rounds: {', '.join(f'{p / 16:+.3f}' for p in pairs)}); the sink's own thread: "
          f"{rows['on'][0]['mqtt'] / 16:.4f} % per stream.")
if "on" in rows and "plants" in rows:
    pairs = [b["cpu"] - a["cpu"] for a, b in zip(rows["on"][1], rows["plants"][1])]
    print(f"\nSparkplug B and discovery on top, per stream, median of the rounds' differences: "
          f"{statistics.median(pairs) / 16:.3f} % of a core (rounds: {', '.join(f'{p / 16:+.3f}' for p in pairs)}); "
          f"the Sparkplug thread: {rows['plants'][0]['sparkplug'] / 16:.4f} % per stream.")
f = out / "mqtt-fleet.json"
if f.exists():
    r = json.loads(f.read_text())
    print(f"\n## {r['daemons']} daemons, one real-time stream each, one mosquitto\n")
    print(f"- events raised (read from each daemon's socket): {r['events_raised']}; delivered to one "
          f"QoS 1 subscriber (distinct ids): {r['events_delivered']}; nodes missing events: {r['nodes_missing_events'] or 'none'}")
    print(f"- mosquitto: {r['broker_cpu_percent_of_one_core']:.2f} % of a core; the daemons together "
          f"{r['daemons_cpu_percent_of_one_core']:.1f} %, {r['per_daemon_cpu_percent']:.2f} % each, "
          f"over {r['seconds_measured']:.0f} s")
