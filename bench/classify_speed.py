"""Offline throughput of `drsnd classify` on every recording, 1 and 2 threads.

    python bench/classify_speed.py ../shared/cwru   (prints JSON)
"""
import glob
import json
import os
import resource
import subprocess
import sys
import time

from scipy.io import wavfile

data = sys.argv[1]
files = sorted(glob.glob(os.path.join(data, "*.wav")))
audio_s = 0.0
for f in files:
    rate, x = wavfile.read(f, mmap=True)
    audio_s += len(x) / rate
out = {"files": len(files), "audio_seconds": audio_s, "runs": []}
for threads in (1, 2):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(["target/release/drsnd", "classify", "--json", "--threads", str(threads), *files],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    frames = sum(1 for line in p.stdout.splitlines() if line.startswith('{"type":"frame"'))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["runs"].append({"threads": threads, "frames": frames, "wall_s": wall, "cpu_s": cpu,
                        "frames_per_s": frames / wall, "times_real_time": audio_s / wall})
print(json.dumps(out, indent=2))
