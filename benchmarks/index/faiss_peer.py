"""FAISS side of bench:index. Run with Debian's /usr/bin/python3 (python3-faiss, python3-numpy).

  faiss_peer.py VECTORS.f32 QUERIES.f32 DIM OUT.json [--gt GT.i32] [--index CACHE.faiss] [--gt-only]

Builds (or loads) an IndexHNSWFlat with M=16, efConstruction=100 on inner product (the vectors are
unit length, so this is cosine), computes exact top-10 ground truth with IndexFlatIP when --gt is
given and the file is absent, then searches one query at a time on one thread at several efSearch
values and prints JSON: build/load seconds, and per ef recall@10, p50/p99 ms and QPS.
"""
import json
import os
import sys
import time

import faiss
import numpy as np

vectors_path, queries_path, dim, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
args = sys.argv[5:]
gt_path = args[args.index("--gt") + 1] if "--gt" in args else None
index_path = args[args.index("--index") + 1] if "--index" in args else None

vectors = np.fromfile(vectors_path, dtype=np.float32).reshape(-1, dim)
queries = np.fromfile(queries_path, dtype=np.float32).reshape(-1, dim)
result = {"n": int(vectors.shape[0]), "dim": dim}

if gt_path and not os.path.exists(gt_path):
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    _, gt = flat.search(queries, 10)
    gt.astype(np.int32).tofile(gt_path)
    result["groundTruthSeconds"] = time.perf_counter() - started
gt = np.fromfile(gt_path, dtype=np.int32).reshape(-1, 10) if gt_path else None
if "--gt-only" in args:
    with open(out_path, "w") as f:
        json.dump(result, f)
    sys.exit(0)

if index_path and os.path.exists(index_path):
    started = time.perf_counter()
    index = faiss.read_index(index_path)
    result["loadSeconds"] = time.perf_counter() - started
else:
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    started = time.perf_counter()
    index.add(vectors)
    result["buildSeconds"] = time.perf_counter() - started
    result["buildThreads"] = faiss.omp_get_max_threads()
    if index_path:
        faiss.write_index(index, index_path)
        result["bytesPerVector"] = os.path.getsize(index_path) / vectors.shape[0]

faiss.omp_set_num_threads(1)
result["ef"] = []
for ef in [16, 32, 64, 128, 256]:
    index.hnsw.efSearch = ef
    latencies = []
    found = []
    for q in queries:
        started = time.perf_counter()
        _, labels = index.search(q.reshape(1, -1), 10)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(labels[0])
    latencies.sort()
    entry = {"ef": ef, "p50Ms": latencies[len(latencies) // 2], "p99Ms": latencies[int(len(latencies) * 0.99)], "qps": len(latencies) / (sum(latencies) / 1000)}
    if gt is not None:
        entry["recall10"] = float(np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, gt)]))
    result["ef"].append(entry)

with open(out_path, "w") as f:
    json.dump(result, f)
