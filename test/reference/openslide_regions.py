"""Reads regions with OpenSlide, the reference reader the slide tests compare against.

Run with Debian's /usr/bin/python3 (python3-openslide). Input on stdin, JSON:
  {"path": "...", "regions": [[level, x, y, width, height], ...], "out": "/tmp/file.bin"}
Writes every region's RGBA bytes, one after the other, to "out", and prints JSON to stdout:
  {"levels": [[width, height, downsample], ...], "properties": {...}}
"""
import json
import sys

import openslide

request = json.load(sys.stdin)
slide = openslide.OpenSlide(request["path"])
with open(request["out"], "wb") as out:
    for level, x, y, width, height in request["regions"]:
        out.write(slide.read_region((x, y), level, (width, height)).tobytes())
json.dump(
    {
        "levels": [[w, h, d] for (w, h), d in zip(slide.level_dimensions, slide.level_downsamples)],
        "properties": dict(slide.properties),
    },
    sys.stdout,
)
