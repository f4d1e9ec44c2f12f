"""A fleet on one box: N daemons (one real-time WAV stream each, a fault
recording that changes state every few seconds) publishing to one
mosquitto, and one subscriber of every event. Checks that every event each
daemon raised (read from its own socket) reached the subscriber, and
reports the broker's and the daemons' CPU.

usage: fleet.py DRSND MODEL WAV_DIR OUT.json [--daemons 50] [--seconds 40]"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flapping_wav(wav_dir, out, seconds):
    """IR_14 and OR6_21 in turn, 3 s each (12 kHz float WAVs of ../shared/cwru)."""
    from scipy.io import wavfile
    parts = []
    for name in ["1797_IR_14.wav", "1797_OR6_21.wav"]:
        rate, x = wavfile.read(str(Path(wav_dir) / name))
        x = x.reshape(len(x), -1)[:, 0].astype(np.float32)
        parts.append(x[: 3 * rate])
    reps = int(seconds // 6) + 1
    x = np.concatenate([p for _ in range(reps) for p in parts])[: int(seconds * rate)]
    wavfile.write(str(out), rate, x)


def count_events(sock_path, counts, key, stop):
    for _ in range(200):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(sock_path))
            break
        except OSError:
            time.sleep(0.05)
    else:
        return
    f = s.makefile("r")
    for line in f:
        if '"type":"event"' in line:
            counts[key] += 1
        if stop.is_set():
            break


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drsnd")
    ap.add_argument("model")
    ap.add_argument("wav_dir")
    ap.add_argument("out")
    ap.add_argument("--daemons", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=40)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="drsnd-fleet-"))
    wav = tmp / "flap.wav"
    flapping_wav(a.wav_dir, wav, a.seconds)
    port = free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    got = tmp / "sub.txt"
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-t", "drsnd/v1/fleet/+/+/event", "-q", "1", "-F", "%t %p"],
        stdout=open(got, "w"), stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    daemons, counts, stop = [], {}, threading.Event()
    for i in range(a.daemons):
        d = tmp / f"n{i}"
        d.mkdir()
        (d / "drsnd.toml").write_text(
            f'model = "{os.path.abspath(a.model)}"\n[socket]\npath = "{d}/drsn.sock"\n[log]\nlevel = "warn"\n'
            f'[mqtt]\nbroker = "mqtt://127.0.0.1:{port}"\nsite = "fleet"\nnode = "n{i}"\nspool-dir = "{d}/spool"\n'
            f'[[source]]\nkind = "wav"\npath = "{wav}"\nstreams = ["pump"]\n')
        p = subprocess.Popen([a.drsnd, "run", "--config", str(d / "drsnd.toml")],
                             stderr=open(d / "log", "w"))
        daemons.append((p, d))
        counts[f"n{i}"] = 0
        threading.Thread(target=count_events, args=(d / "drsn.sock", counts, f"n{i}", stop),
                         daemon=True).start()
    time.sleep(3)
    t0 = time.monotonic()
    c0 = {p.pid: cpu_s(p.pid) for p, _ in daemons}
    b0 = cpu_s(broker.pid)
    time.sleep(a.seconds - 5)
    wall = time.monotonic() - t0
    daemon_cpu = sum(cpu_s(p.pid) - c0[p.pid] for p, _ in daemons)
    broker_cpu = cpu_s(broker.pid) - b0
    time.sleep(4)
    for p, _ in daemons:
        p.send_signal(signal.SIGTERM)
    for p, _ in daemons:
        p.wait(timeout=30)
    time.sleep(1.5)
    stop.set()
    sub.terminate()
    sub.wait()
    broker.terminate()
    broker.wait()
    delivered = {k: set() for k in counts}
    for line in got.read_text().splitlines():
        topic, payload = line.split(" ", 1)
        node = topic.split("/")[3]
        delivered[node].add(json.loads(payload)["id"])
    missing = {k: counts[k] - len(delivered[k]) for k in counts if counts[k] != len(delivered[k])}
    out = {
        "daemons": a.daemons,
        "seconds_measured": wall,
        "events_raised": sum(counts.values()),
        "events_delivered": sum(len(v) for v in delivered.values()),
        "nodes_missing_events": missing,
        "broker_cpu_percent_of_one_core": 100 * broker_cpu / wall,
        "daemons_cpu_percent_of_one_core": 100 * daemon_cpu / wall,
        "per_daemon_cpu_percent": 100 * daemon_cpu / wall / a.daemons,
    }
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
