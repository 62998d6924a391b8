"""OpenSlide side of the slide benchmark: reads the given regions once each, in order, and prints
JSON with regions per second and peak RSS. Run with Debian's /usr/bin/python3 (python3-openslide).
Usage: openslide_reader.py SLIDE REGIONS.json"""
import json
import resource
import sys
import time

import openslide

slide_path, regions_path = sys.argv[1], sys.argv[2]
with open(regions_path) as f:
    regions = json.load(f)
slide = openslide.OpenSlide(slide_path)
start = time.perf_counter()
for x, y, w, h in regions:
    slide.read_region((x, y), 0, (w, h))
elapsed = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"regionsPerSecond": len(regions) / elapsed, "seconds": elapsed, "peakRssMiB": peak_kib / 1024}))
