/**
 * Slide mosaics (after Yottixel): a few representative tiles per slide, found by k-means on the
 * tile embeddings, so that "slides like this one" compares a dozen tiles instead of thousands.
 */

export interface MosaicOptions {
  /** Most clusters (default 12); fewer for slides with few tiles. */
  maxClusters?: number;
  /** Representatives per cluster: the tiles nearest its centre (default 2). */
  perCluster?: number;
  seed?: number;
}

/** Indices of the representative vectors (unit vectors, cosine geometry). */
export function mosaicOf(vectors: Float32Array[], options: MosaicOptions = {}): number[] {
  const count = vectors.length;
  const perCluster = options.perCluster ?? 2;
  // Every tile is chosen whatever the clustering: a tile image (one tile) skips k-means.
  if (count <= perCluster) return Array.from({ length: count }, (_, index) => index);
  const clusters = Math.min(options.maxClusters ?? 12, Math.max(1, Math.round(Math.sqrt(count / 2))));
  const { assignment, centres } = kMeans(vectors, clusters, options.seed ?? 1);
  const chosen: number[] = [];
  centres.forEach((centre, cluster) => {
    const members = assignment.flatMap((assigned, index) => (assigned === cluster ? [index] : []));
    members.sort((a, b) => dot(vectors[b] as Float32Array, centre) - dot(vectors[a] as Float32Array, centre));
    chosen.push(...members.slice(0, perCluster));
  });
  return chosen.sort((a, b) => a - b);
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}

/** Spherical k-means with k-means++ seeding; deterministic for a seed. */
function kMeans(vectors: Float32Array[], k: number, seed: number): { assignment: number[]; centres: Float32Array[] } {
  let state = seed >>> 0 || 1;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const dimension = (vectors[0] as Float32Array).length;
  const centres: Float32Array[] = [Float32Array.from(vectors[Math.floor(random() * vectors.length)] as Float32Array)];
  while (centres.length < k) {
    const distances = vectors.map((vector) => Math.max(0, 1 - Math.max(...centres.map((centre) => dot(vector, centre)))));
    const total = distances.reduce((sum, d) => sum + d, 0);
    if (total === 0) break;
    let pick = random() * total;
    let index = 0;
    while (index < distances.length - 1 && (pick -= distances[index] ?? 0) > 0) index++;
    centres.push(Float32Array.from(vectors[index] as Float32Array));
  }
  const assignment = new Array<number>(vectors.length).fill(0);
  for (let iteration = 0; iteration < 20; iteration++) {
    let moved = false;
    vectors.forEach((vector, index) => {
      let best = 0;
      let bestScore = -Infinity;
      centres.forEach((centre, cluster) => {
        const score = dot(vector, centre);
        if (score > bestScore) {
          bestScore = score;
          best = cluster;
        }
      });
      if (assignment[index] !== best) moved = true;
      assignment[index] = best;
    });
    centres.forEach((centre, cluster) => {
      centre.fill(0);
      vectors.forEach((vector, index) => {
        if (assignment[index] === cluster) for (let d = 0; d < dimension; d++) centre[d] = (centre[d] ?? 0) + (vector[d] ?? 0);
      });
      const norm = Math.hypot(...centre);
      if (norm > 0) for (let d = 0; d < dimension; d++) centre[d] = (centre[d] ?? 0) / norm;
    });
    if (!moved && iteration > 0) break;
  }
  return { assignment, centres };
}
